"""Activation layers with Keras 3's names, arguments, weights and configs (``keras.layers.ReLU`` ...): ReLU,
LeakyReLU, PReLU, ELU and Softmax. Each is its Keras formula written with fastnn's differentiable ops, in the same
order of operations (PReLU's ``relu(x) + (-alpha) * relu(-x)``, Softmax's masked ``where`` before and after), so
outputs and gradients follow Keras's at the kinks too; all of them pass masks through."""
from __future__ import annotations

import numbers
import warnings

from fastnn import activations as _activations
from fastnn import constraints as _constraints
from fastnn import initializers as _initializers
from fastnn import regularizers as _regularizers
from fastnn.autograd import Tensor
from fastnn.autograd.ops import activation as _act
from fastnn.autograd.ops import elementwise as _ew
from fastnn.autograd.ops import reduce as _reduce
from fastnn.layers.layer import InputSpec, Layer, shape_str
from fastnn.layers.serialization import serialize_keras_object


def _number(layer, arg, value, *, allow_none=False):
    """``value`` as a float, or a ValueError naming the layer and the argument (bools and strings refused)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{layer}: `{arg}` must be a number, but received {arg}={value!r}")
    return value


class ReLU(Layer):
    """Rectified linear unit: ``max_value`` if x >= max_value, x if threshold <= x < max_value, else
    ``negative_slope * (x - threshold)`` (``keras.layers.ReLU``).

    Args:
        max_value: float >= 0 or None (unbounded, the default).
        negative_slope: float >= 0 (default 0).
        threshold: float >= 0 (default 0).
    """

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        max_value = _number("ReLU", "max_value", max_value, allow_none=True)
        if max_value is not None and max_value < 0.0:
            raise ValueError(f"max_value of a ReLU layer cannot be a negative value. Received: max_value={max_value}")
        if negative_slope is None or _number("ReLU", "negative_slope", negative_slope) < 0.0:
            raise ValueError(f"negative_slope of a ReLU layer cannot be None or a negative value. Received: "
                             f"negative_slope={negative_slope}")
        if threshold is None or _number("ReLU", "threshold", threshold) < 0.0:
            raise ValueError(f"threshold of a ReLU layer cannot be None or a negative value. Received: "
                             f"threshold={threshold}")
        self.max_value = max_value
        self.negative_slope = negative_slope
        self.threshold = threshold
        self.supports_masking = True
        self.built = True  # as Keras (_build_at_init): no weights, so its config has no build_config

    def call(self, inputs):
        return _activations.relu(inputs, negative_slope=self.negative_slope, max_value=self.max_value,
                                 threshold=self.threshold)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"max_value": self.max_value, "negative_slope": self.negative_slope,
                       "threshold": self.threshold})
        return config


class LeakyReLU(Layer):
    """``x`` for x >= 0, ``negative_slope * x`` below (``keras.layers.LeakyReLU``; default slope 0.3, Keras 3's).
    Keras 2's ``alpha=`` is accepted with Keras's deprecation warning."""

    def __init__(self, negative_slope=0.3, **kwargs):
        if "alpha" in kwargs:
            negative_slope = kwargs.pop("alpha")
            warnings.warn("Argument `alpha` is deprecated. Use `negative_slope` instead.", stacklevel=2)
        super().__init__(**kwargs)
        if negative_slope is None or _number("LeakyReLU", "negative_slope", negative_slope) < 0:
            raise ValueError(f"The negative_slope value of a Leaky ReLU layer cannot be None or negative value. "
                             f"Expected a float. Received: negative_slope={negative_slope}")
        self.negative_slope = negative_slope
        self.supports_masking = True
        self.built = True

    def call(self, inputs):
        return _activations.leaky_relu(inputs, negative_slope=self.negative_slope)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config["negative_slope"] = self.negative_slope
        return config


class PReLU(Layer):
    """Parametric ReLU: ``relu(x) - alpha * relu(-x)`` with a learned ``alpha`` per input element
    (``keras.layers.PReLU``); ``shared_axes`` (1-based, the batch axis excluded) share one alpha along them, e.g.
    ``shared_axes=[1, 2]`` for one slope per channel of an image.

    Args:
        alpha_initializer: default "Zeros" (the layer starts as a ReLU).
        alpha_regularizer, alpha_constraint: optional.
        shared_axes: an int or a list of ints, or None.

    Weights: ``alpha`` of shape ``input_shape[1:]`` with 1 on the shared axes.
    """

    def __init__(self, alpha_initializer="Zeros", alpha_regularizer=None, alpha_constraint=None, shared_axes=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.alpha_initializer = _initializers.get(alpha_initializer)
        self.alpha_regularizer = _regularizers.get(alpha_regularizer)
        self.alpha_constraint = _constraints.get(alpha_constraint)
        if shared_axes is None:
            self.shared_axes = None
        elif not isinstance(shared_axes, (list, tuple)):
            self.shared_axes = [shared_axes]
        else:
            self.shared_axes = list(shared_axes)
        for axis in self.shared_axes or ():
            if isinstance(axis, bool) or not isinstance(axis, numbers.Integral) or axis < 1:
                raise ValueError(f"PReLU: shared_axes holds input axes counted from 1 (the batch axis cannot be "
                                 f"shared), but received shared_axes={shared_axes!r}")

    def build(self, input_shape):
        param_shape = list(input_shape[1:])
        for axis in self.shared_axes or ():
            if axis > len(param_shape):
                raise ValueError(f'Layer "{self.name}": shared axis {axis} is beyond the input of shape '
                                 f"{shape_str(input_shape)}")
            param_shape[axis - 1] = 1
        if any(d is None for d in param_shape):
            raise ValueError(f'Layer "{self.name}": PReLU needs every non-shared axis of the input defined, but '
                             f"received input shape {shape_str(input_shape)} with shared_axes={self.shared_axes}")
        self.alpha = self.add_weight(shape=tuple(param_shape), name="alpha", initializer=self.alpha_initializer,
                                     regularizer=self.alpha_regularizer, constraint=self.alpha_constraint)
        axes = {}
        if self.shared_axes:
            for i in range(1, len(input_shape)):
                if i not in self.shared_axes:
                    axes[i] = input_shape[i]
        self.input_spec = InputSpec(ndim=len(input_shape), axes=axes)
        self.built = True

    def call(self, inputs):
        alpha = self.alpha
        if isinstance(inputs, Tensor) and inputs.dtype != alpha.dtype and inputs.dtype.kind == "f":
            from fastnn.autograd.ops import shape as _shape

            alpha = _shape.cast(alpha, str(inputs.dtype))
        positive = _act.relu(inputs)
        negative = _ew.multiply(_ew.negative(alpha), _act.relu(_ew.negative(inputs)))
        return _ew.add(positive, negative)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({
            "alpha_initializer": serialize_keras_object(self.alpha_initializer),
            "alpha_regularizer": serialize_keras_object(self.alpha_regularizer),
            "alpha_constraint": serialize_keras_object(self.alpha_constraint),
            "shared_axes": self.shared_axes,
        })
        return config


class ELU(Layer):
    """Exponential linear unit: ``x`` for x > 0, ``alpha * (exp(x) - 1)`` otherwise (``keras.layers.ELU``)."""

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = _number("ELU", "alpha", alpha)
        self.supports_masking = True
        self.built = True

    def call(self, inputs):
        return _activations.elu(inputs, alpha=self.alpha)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config["alpha"] = self.alpha
        return config


_LARGE_NEGATIVE = -1e9  # Keras's _large_negative_number for float32 / float64 (-3e4 for float16)


class Softmax(Layer):
    """Softmax over ``axis`` (an int, or a list / tuple of axes normalized together) (``keras.layers.Softmax``).

    With a mask (from the previous layer, or ``mask=`` broadcastable to the inputs; non-bool masks mean > 0.5),
    masked positions enter as -1e9 and come out as exactly 0, as in Keras."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        axes = axis if isinstance(axis, (list, tuple)) else [axis]
        if not axes or any(isinstance(a, bool) or not isinstance(a, numbers.Integral) for a in axes):
            raise ValueError(f"Softmax: axis must be an int or a non-empty list of ints, but received axis={axis!r}")
        self.axis = axis
        self.supports_masking = True
        self.built = True

    def call(self, inputs, mask=None):
        x = inputs if isinstance(inputs, Tensor) else Tensor(inputs)
        if mask is not None:
            m = mask if isinstance(mask, Tensor) else Tensor(mask)
            if m.ndim > x.ndim:
                raise ValueError(f"The `mask` must be broadcastable to `inputs` and must not have more dimensions. "
                                 f"Received: inputs.shape={tuple(x.shape)}, mask.shape={tuple(m.shape)}")
            for m_dim, i_dim in zip(tuple(m.shape)[::-1], tuple(x.shape)[::-1]):
                if m_dim != 1 and m_dim != i_dim:
                    raise ValueError(f"The `mask` must be broadcastable to `inputs`. Each mask dimension must be 1 "
                                     f"or match the corresponding input dimension. Received: "
                                     f"inputs.shape={tuple(x.shape)}, mask.shape={tuple(m.shape)}")
            if m.dtype != bool:
                m = _ew.greater(m, 0.5)
            large_negative = -3e4 if x.dtype == "float16" else _LARGE_NEGATIVE
            x = _ew.where(m, x, large_negative)
        if isinstance(self.axis, (list, tuple)) and len(self.axis) > 1:
            outputs = _ew.exp(_ew.subtract(x, _reduce.logsumexp(x, axis=tuple(self.axis), keepdims=True)))
        else:
            axis = self.axis[0] if isinstance(self.axis, (list, tuple)) else self.axis
            outputs = _activations.softmax(x, axis=axis)
        if mask is not None:
            outputs = _ew.where(m, outputs, 0.0)
        return outputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config["axis"] = self.axis
        return config
