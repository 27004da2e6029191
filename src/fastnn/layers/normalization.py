"""Normalization layers with Keras 3's names, arguments, weights and configs: BatchNormalization, and the
per-sample LayerNormalization, RMSNormalization, UnitNormalization and GroupNormalization (at the end: Keras's
formulas in Keras's order of operations on fastnn's differentiable ops).

Training runs on the batch-norm kernels (``B.batch_norm_train_forward`` / ``B.batch_norm_backward``) and updates
the moving statistics as Keras 3 does (``moving = moving * momentum + batch * (1 - momentum)``, the batch variance
being the biased one); inference, and a layer with ``trainable=False`` whatever ``training`` says, normalizes with
the moving statistics on ``B.batch_norm_inference_forward``.

Batch renormalization (``renorm=True``, Ioffe 2017) follows Keras 3.15's layer formula for formula: the same
kernel normalizes (without gamma and beta), then the output is ``normalized * (r * gamma) + (d * gamma + beta)``
with the corrections ``r = stddev / renorm_stddev`` and ``d = (mean - renorm_mean) / renorm_stddev`` clipped by
``renorm_clipping`` and held constant for the gradient (Keras's stop_gradient), built from autograd elementwise
ops; the extra non-trainable weights moving_stddev, renorm_mean and renorm_stddev follow Keras's update rules.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from fastnn import backend as B
from fastnn import constraints as _constraints
from fastnn import initializers as _initializers
from fastnn import regularizers as _regularizers
from fastnn.autograd import Tensor
from fastnn.autograd.ops import elementwise as _ew
from fastnn.autograd.ops import norm as _norm
from fastnn.autograd.ops import reduce as _reduce
from fastnn.autograd.ops import shape as _shape
from fastnn.layers.layer import InputSpec, Layer
from fastnn.layers.serialization import serialize_keras_object

_KERAS_EPSILON = 1e-7  # keras.backend.epsilon(): the masked statistics divide by (count + epsilon)


def _validate_renorm_clipping(renorm_clipping):
    """Keras's checks of renorm_clipping (its messages), plus a type check of the dict and its values (Keras fails
    later, or computes NaN, on those)."""
    if not isinstance(renorm_clipping, dict):
        raise TypeError("BatchNormalization: `renorm_clipping` must be a dict with optional keys 'rmax', 'rmin', "
                        f"'dmax', but received {renorm_clipping!r} of type {type(renorm_clipping).__name__}")
    keys = ["rmax", "rmin", "dmax"]
    if set(renorm_clipping) - set(keys):
        raise ValueError(f"Received invalid keys for `renorm_clipping` argument: {renorm_clipping}. Supported "
                         f"values: {keys}.")
    for key, value in renorm_clipping.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"BatchNormalization: renorm_clipping[{key!r}] must be a number (or None), but "
                            f"received {value!r} of type {type(value).__name__}")
        if math.isnan(value):
            raise ValueError(f"BatchNormalization: renorm_clipping[{key!r}] must not be NaN")
    rmax, rmin, dmax = (renorm_clipping.get(k) for k in ("rmax", "rmin", "dmax"))
    if rmax is not None and rmin is not None and rmax < rmin:
        raise ValueError("rmax should be greater than rmin in the `renorm_clipping` argument. Received: "
                         f"rmax={rmax}, rmin={rmin}.")
    if dmax is not None and dmax < 0:
        raise ValueError(f"dmax should be non-negative in the `renorm_clipping` argument. Received: dmax={dmax}.")


def _clone_initializer(initializer):
    """A fresh copy of an Initializer (so a seeded random one draws its values anew), as Keras's helper; other
    callables as they are."""
    return initializer.clone() if isinstance(initializer, _initializers.Initializer) else initializer


class BatchNormalization(Layer):
    """Normalizes its input over the batch (and every axis but ``axis``), then scales by gamma and shifts by beta.

    In training (``training=True`` and the layer trainable) it normalizes with the batch mean and variance and
    updates ``moving_mean`` / ``moving_variance`` as ``moving * momentum + batch * (1 - momentum)``; otherwise
    (inference, or ``trainable=False`` as in Keras 3) with the moving statistics.

    Args:
        axis: the feature axis (default -1; any existing axis).
        momentum: of the moving statistics. Default 0.99.
        epsilon: added to the variance. Default 1e-3.
        center: learn an offset beta. Default True.
        scale: learn a scale gamma. Default True.
        beta_initializer, gamma_initializer, moving_mean_initializer, moving_variance_initializer: defaults
            "zeros", "ones", "zeros", "ones".
        beta_regularizer, gamma_regularizer, beta_constraint, gamma_constraint.
        synchronized: accepted (one device: the local statistics are the global ones).
        renorm: use batch renormalization (training only; inference is the same for either value). Adds the
            non-trainable weights moving_stddev, renorm_mean and renorm_stddev.
        renorm_clipping: with renorm, a dict of optional "rmax", "rmin", "dmax" (defaults inf, 0, inf): r is
            clipped to [rmin, rmax] and d to [-dmax, dmax]. Other keys, rmax < rmin or dmax < 0: ValueError.
        renorm_momentum: of renorm_mean and renorm_stddev (the training-time statistics). Default 0.99.

    Weights (Keras's order): gamma, beta (trainable), moving_mean, moving_variance (non-trainable), with renorm then
    moving_stddev, renorm_mean, renorm_stddev (non-trainable), each of shape (input_shape[axis],). A mask (one axis
    less than the input) restricts the batch statistics to the unmasked positions, as in Keras.

    Example:
        >>> bn = BatchNormalization()
        >>> bn(np.ones((4, 3), "float32"), training=True).shape
        (4, 3)
        >>> [w.name for w in bn.weights]
        ['gamma', 'beta', 'moving_mean', 'moving_variance']
        >>> renorm = BatchNormalization(renorm=True, renorm_clipping={"rmax": 3.0, "rmin": 1 / 3, "dmax": 5.0})
        >>> renorm(np.ones((4, 3), "float32"), training=True).shape
        (4, 3)
        >>> [w.name for w in renorm.non_trainable_weights]
        ['moving_mean', 'moving_variance', 'moving_stddev', 'renorm_mean', 'renorm_stddev']
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, beta_constraint=None, gamma_constraint=None,
                 renorm=False, renorm_clipping=None, renorm_momentum=0.99, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        self.axis = int(axis)
        self.renorm = bool(renorm)
        if self.renorm:
            # Keras stores {} for a missing renorm_clipping when renorm is on (and the argument as given otherwise).
            renorm_clipping = {} if renorm_clipping is None else renorm_clipping
            _validate_renorm_clipping(renorm_clipping)
        self.renorm_clipping = renorm_clipping
        self.renorm_momentum = float(renorm_momentum)
        self.synchronized = bool(synchronized)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = _initializers.get(beta_initializer)
        self.gamma_initializer = _initializers.get(gamma_initializer)
        self.moving_mean_initializer = _initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = _initializers.get(moving_variance_initializer)
        self.beta_regularizer = _regularizers.get(beta_regularizer)
        self.gamma_regularizer = _regularizers.get(gamma_regularizer)
        self.beta_constraint = _constraints.get(beta_constraint)
        self.gamma_constraint = _constraints.get(gamma_constraint)
        self.supports_masking = True
        self.gamma = None
        self.beta = None
        self.moving_stddev = None
        self.renorm_mean = None
        self.renorm_stddev = None

    def _feature_axis(self, input_shape):
        rank = len(input_shape)
        if not -rank <= self.axis < rank:
            raise ValueError(f'Layer "{self.name}" (BatchNormalization): axis={self.axis} does not exist in an input '
                             f"of shape {tuple(input_shape)} (rank {rank})")
        return self.axis % rank

    def build(self, input_shape):
        axis = self._feature_axis(input_shape)
        channels = input_shape[axis]
        if channels is None:
            raise ValueError(f'Layer "{self.name}" (BatchNormalization): the axis {self.axis} of the input must be '
                             f"defined, but received input shape {tuple(input_shape)}")
        shape = (channels,)
        if self.scale:
            self.gamma = self.add_weight(shape=shape, name="gamma", initializer=self.gamma_initializer,
                                         regularizer=self.gamma_regularizer, constraint=self.gamma_constraint,
                                         trainable=True)
        if self.center:
            self.beta = self.add_weight(shape=shape, name="beta", initializer=self.beta_initializer,
                                        regularizer=self.beta_regularizer, constraint=self.beta_constraint,
                                        trainable=True)
        self.moving_mean = self.add_weight(shape=shape, name="moving_mean", initializer=self.moving_mean_initializer,
                                           trainable=False)
        self.moving_variance = self.add_weight(shape=shape, name="moving_variance",
                                               initializer=self.moving_variance_initializer, trainable=False)
        if self.renorm:
            # As Keras: the inference statistics are tracked as a standard deviation (moving_variance is derived
            # from it), initialized to the square root of the variance initializer's values; renorm_mean and
            # renorm_stddev are the training-time statistics the corrections r and d are measured against.
            def moving_stddev_initializer(shape, dtype=None):
                return B.sqrt(_clone_initializer(self.moving_variance_initializer)(shape, dtype=dtype))

            self.moving_stddev = self.add_weight(shape=shape, name="moving_stddev",
                                                 initializer=moving_stddev_initializer, trainable=False)
            self.renorm_mean = self.add_weight(shape=shape, name="renorm_mean",
                                               initializer=_clone_initializer(self.moving_mean_initializer),
                                               trainable=False)
            self.renorm_stddev = self.add_weight(shape=shape, name="renorm_stddev",
                                                 initializer=moving_stddev_initializer, trainable=False)
        self.input_spec = InputSpec(ndim=len(input_shape), axes={self.axis: channels})
        self.built = True

    def call(self, inputs, training=None, mask=None):
        if mask is not None and len(mask.shape) != len(inputs.shape) - 1:
            raise ValueError("The mask provided should be one dimension less than the inputs. Received: "
                             f"mask.shape={tuple(mask.shape)}, inputs.shape={tuple(inputs.shape)}")
        if inputs.dtype.kind != "f":
            inputs = _shape.cast(inputs, "float32")
        axis = self._feature_axis(inputs.shape)
        # Keras computes in result_type(inputs.dtype, "float32"): float16 inputs are upcast (BN overflows in them).
        compute = np.dtype(np.float64) if np.dtype(inputs.dtype) == np.float64 else np.dtype(np.float32)
        x = inputs if np.dtype(inputs.dtype) == compute else _shape.cast(inputs, str(compute))
        gamma = self._param(self.gamma, compute)
        beta = self._param(self.beta, compute)
        moving_mean = self._stat(self.moving_mean, compute)
        moving_variance = self._stat(self.moving_variance, compute)
        if training and self.trainable and self.renorm:
            y = self._renorm_training_forward(x, gamma, beta, axis, mask, compute)
        elif training and self.trainable:
            if mask is None:
                y, mean, variance = _norm.batch_norm_train(x, gamma, beta, axis, self.epsilon)
            else:
                mean_t, variance_t = self._masked_moments(x, mask, axis)
                y = _norm.batch_normalization(x, mean_t, variance_t, axis, offset=beta, scale=gamma,
                                              epsilon=self.epsilon)
                mean, variance = mean_t._data, variance_t._data
            # Keras 3: moving = moving * momentum + batch * (1 - momentum), in the compute dtype, then assigned.
            self.moving_mean.assign(B.add(B.multiply(moving_mean, self.momentum),
                                          B.multiply(mean, 1.0 - self.momentum)))
            self.moving_variance.assign(B.add(B.multiply(moving_variance, self.momentum),
                                              B.multiply(variance, 1.0 - self.momentum)))
        else:
            y = _norm.batch_norm_inference(x, moving_mean, moving_variance, gamma, beta, axis, self.epsilon)
        out_dtype = np.dtype(self.dtype)
        return y if np.dtype(y.dtype) == out_dtype else _shape.cast(y, str(out_dtype))

    def _renorm_training_forward(self, x, gamma, beta, axis, mask, compute):
        """Batch renormalization's training output, and its updates of the five statistics (Keras 3.15's call)."""
        if mask is None:
            # The fused kernel normalizes with the batch statistics; gamma and beta are applied after it, composed
            # with the corrections. Its backward is batch norm's, through the batch mean and variance.
            normalized, mean, variance = _norm.batch_norm_train(x, None, None, axis, self.epsilon)
        else:
            mean_t, variance_t = self._masked_moments(x, mask, axis)
            normalized = _norm.batch_normalization(x, mean_t, variance_t, axis, epsilon=self.epsilon)
            mean, variance = mean_t._data, variance_t._data
        r, d = self._renorm_corrections(mean, variance, compute)
        # (normalized * r + d) * gamma + beta = normalized * (r * gamma) + (d * gamma + beta). r and d are buffers,
        # constants of the graph: Keras stops their gradients, so none flows through them to the batch statistics.
        if gamma is not None:
            scale = _ew.multiply(gamma, r)
            offset = _ew.multiply(gamma, d)
        else:
            scale, offset = r, d
        if beta is not None:
            offset = _ew.add(offset, beta)
        per_channel = tuple(x.shape[axis] if i == axis else 1 for i in range(x.ndim))
        y = _ew.add(_ew.multiply(normalized, _shape.reshape(scale, per_channel)),
                    _shape.reshape(offset, per_channel))
        self._update_renorm_statistics(mean, variance, compute)
        return y

    def _renorm_corrections(self, mean, variance, compute):
        """Keras's r = stddev / renorm_stddev and d = (mean - renorm_mean) / renorm_stddev (renorm_stddev held at
        least sqrt(epsilon), against division by zero early in training), clipped to [rmin, rmax] / [-dmax, dmax]."""
        stddev = B.sqrt(B.add(variance, self.epsilon))
        renorm_mean = self._stat(self.renorm_mean, compute)
        renorm_stddev = B.maximum(self._stat(self.renorm_stddev, compute),
                                  B.sqrt(B.asarray(self.epsilon, dtype=compute)))
        r = B.divide(stddev, renorm_stddev)
        d = B.divide(B.subtract(mean, renorm_mean), renorm_stddev)
        rmin = self.renorm_clipping.get("rmin")
        rmax = self.renorm_clipping.get("rmax")
        dmax = self.renorm_clipping.get("dmax")
        # Python scalars keep the buffers' dtype (NumPy's weak scalars, as Keras's weak Python floats).
        if rmin is not None:
            r = B.maximum(r, rmin)
        if rmax is not None:
            r = B.minimum(r, rmax)
        if dmax is not None:
            d = B.clip(d, -dmax, dmax)
        return B.astype(r, compute, copy=False), B.astype(d, compute, copy=False)

    def _update_renorm_statistics(self, mean, variance, compute):
        """Keras's updates: renorm_mean / renorm_stddev with renorm_momentum, moving_mean / moving_stddev with
        momentum (the batch stddev being sqrt(variance + epsilon)), then moving_variance = relu(moving_stddev ** 2
        - epsilon) from the new moving_stddev (the relu against rounding below zero)."""
        stddev = B.sqrt(B.add(variance, self.epsilon))

        def moved(variable, batch, momentum):
            return B.add(B.multiply(self._stat(variable, compute), momentum), B.multiply(batch, 1.0 - momentum))

        self.renorm_mean.assign(moved(self.renorm_mean, mean, self.renorm_momentum))
        self.renorm_stddev.assign(moved(self.renorm_stddev, stddev, self.renorm_momentum))
        self.moving_mean.assign(moved(self.moving_mean, mean, self.momentum))
        new_moving_stddev = moved(self.moving_stddev, stddev, self.momentum)
        self.moving_stddev.assign(new_moving_stddev)
        self.moving_variance.assign(B.maximum(B.subtract(B.multiply(new_moving_stddev, new_moving_stddev),
                                                         self.epsilon), 0))

    @staticmethod
    def _param(variable, dtype):
        if variable is None:
            return None
        return variable if np.dtype(variable.dtype) == dtype else _shape.cast(variable, str(dtype))

    @staticmethod
    def _stat(variable, dtype):
        data = variable._data
        return data if data.dtype == dtype else B.astype(data, dtype)

    def _masked_moments(self, x, mask, axis):
        """Keras's masked statistics: the mean and variance of the unmasked positions (the mask broadcast over the
        last axis), each sum divided by (count + keras.backend.epsilon())."""
        reduction = tuple(i for i in range(x.ndim) if i != axis)
        keep = _shape.cast(_shape.broadcast_to(_shape.expand_dims(mask, -1), tuple(x.shape)), "bool")
        total = _reduce.sum(_ew.where(keep, x, 0), axis=reduction, keepdims=True)
        count = _reduce.sum(_shape.cast(keep, str(x.dtype)), axis=reduction, keepdims=True)
        mean = _ew.divide(total, _ew.add(count, _KERAS_EPSILON))
        difference = _ew.where(keep, _ew.subtract(x, mean), 0)
        variance = _ew.divide(_reduce.sum(_ew.square(difference), axis=reduction, keepdims=True),
                              _ew.add(count, _KERAS_EPSILON))
        channels = (x.shape[axis],)
        return _shape.reshape(mean, channels), _shape.reshape(variance, channels)

    def compute_output_shape(self, input_shape):
        self._feature_axis(input_shape)
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": serialize_keras_object(self.beta_initializer),
            "gamma_initializer": serialize_keras_object(self.gamma_initializer),
            "moving_mean_initializer": serialize_keras_object(self.moving_mean_initializer),
            "moving_variance_initializer": serialize_keras_object(self.moving_variance_initializer),
            "beta_regularizer": serialize_keras_object(self.beta_regularizer),
            "gamma_regularizer": serialize_keras_object(self.gamma_regularizer),
            "beta_constraint": serialize_keras_object(self.beta_constraint),
            "gamma_constraint": serialize_keras_object(self.gamma_constraint),
            "synchronized": self.synchronized,
            "renorm": self.renorm,
            "renorm_clipping": self.renorm_clipping,
            "renorm_momentum": self.renorm_momentum,
        })
        return config


# ------------------------------------------------------------------------------------- per-sample normalizations
def _rsqrt(t):
    """1 / sqrt(t) (Keras's ``ops.rsqrt``): sqrt correctly rounded, then one division."""
    return _ew.divide(1.0, _ew.sqrt(t))


def _layer_axes(layer, axis, op):
    """``axis`` (an int or a list / tuple of ints) checked, as the layer stores it before build."""
    if isinstance(axis, (list, tuple)):
        if any(isinstance(a, bool) or not isinstance(a, numbers.Integral) for a in axis):
            raise TypeError(f"Expected an int or a list/tuple of ints for the argument 'axis', but received: {axis!r}")
        return list(axis)
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"Expected an int or a list/tuple of ints for the argument 'axis', but received: {axis!r}")
    return int(axis)


def _check_axes_in(layer, axes, input_shape):
    for a in axes if isinstance(axes, list) else [axes]:
        if a >= len(input_shape) or a < -len(input_shape):
            raise ValueError(f"Axis {a} is out of bounds for input shape {tuple(input_shape)}. Received: "
                             f"axis={layer.axis}")


def _weight_shape(layer, axes, input_shape):
    """Keras's build: the axes sorted and the shape of the per-feature weights (input_shape at those axes)."""
    _check_axes_in(layer, axes, input_shape)
    axes = sorted(axes) if isinstance(axes, list) else [axes]
    shape = tuple(input_shape[a] for a in axes)
    if any(d is None for d in shape):
        raise ValueError(f'Layer "{layer.name}": the normalized axes {axes} of the input must be defined, but '
                         f"received input shape {tuple(input_shape)}")
    return axes, shape


def _compute(x):
    """x in Keras's compute dtype for these layers: result_type(x.dtype, float32) (float16 and ints -> float32)."""
    return x if x.dtype in (np.float32, np.float64) else _shape.cast(x, "float32")


def _as(weight, x, shape=None):
    """A weight cast to x's dtype and reshaped to ``shape`` (a broadcast shape) when given."""
    w = weight if weight.dtype == x.dtype else _shape.cast(weight, str(x.dtype))
    return _shape.reshape(w, shape) if shape is not None else w


def _scale_shift(x, mean, variance, gamma, beta, epsilon):
    """Keras's normalization formula, in its order: inv = rsqrt(variance + eps) (* gamma); x * inv + (-mean * inv
    (+ beta))."""
    inv = _rsqrt(_ew.add(variance, epsilon))
    if gamma is not None:
        inv = _ew.multiply(inv, gamma)
    res = _ew.multiply(_ew.negative(mean), inv)
    if beta is not None:
        res = _ew.add(res, beta)
    return _ew.add(_ew.multiply(x, inv), res)


def _set_affine(layer, beta_initializer, gamma_initializer, beta_regularizer, gamma_regularizer, beta_constraint,
                gamma_constraint):
    """The beta / gamma arguments of LayerNormalization and GroupNormalization, resolved onto the layer."""
    layer.beta_initializer = _initializers.get(beta_initializer)
    layer.gamma_initializer = _initializers.get(gamma_initializer)
    layer.beta_regularizer = _regularizers.get(beta_regularizer)
    layer.gamma_regularizer = _regularizers.get(gamma_regularizer)
    layer.beta_constraint = _constraints.get(beta_constraint)
    layer.gamma_constraint = _constraints.get(gamma_constraint)


def _affine_config(layer):
    """Their config entries, in Keras's order."""
    return {name: serialize_keras_object(getattr(layer, name))
            for name in ("beta_initializer", "gamma_initializer", "beta_regularizer", "gamma_regularizer",
                         "beta_constraint", "gamma_constraint")}


class LayerNormalization(Layer):
    """Normalizes each sample over ``axis`` (default the last): ``(x - mean) / sqrt(variance + epsilon) * gamma +
    beta`` with the sample's mean and (biased) variance (``keras.layers.LayerNormalization``; Ba et al. 2016).

    Args:
        axis: an int or a list of ints, the axes normalized together (gamma / beta have their sizes).
        epsilon: default 1e-3. center / scale: whether to learn beta / gamma.
        beta_initializer ("zeros"), gamma_initializer ("ones"), regularizers and constraints for both.
        rms_scaling: Keras's deprecated flag (x / sqrt(variance + epsilon) * gamma, no beta), with its warning.

    Computed in float32 (float64 for float64 inputs); weights are never autocast, as in Keras.
    """

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, **kwargs):
        rms_scaling = kwargs.pop("rms_scaling", False)
        if rms_scaling:
            import warnings

            warnings.warn("You passed `rms_scaling=True`, which is deprecated. This argument incorrectly scales the "
                          "input by the variance, not the root mean square. To correctly use RMS Normalization, "
                          "please use `keras.layers.RMSNormalization` instead.", stacklevel=2)
        super().__init__(**kwargs)
        self.axis = _layer_axes(self, axis, "LayerNormalization")
        if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real) or epsilon < 0:
            raise ValueError(f"LayerNormalization: epsilon must be a number >= 0, but received epsilon={epsilon!r}")
        self.epsilon = epsilon
        self.center = bool(center)
        self.scale = bool(scale)
        self.rms_scaling = bool(rms_scaling)
        _set_affine(self, beta_initializer, gamma_initializer, beta_regularizer, gamma_regularizer, beta_constraint,
                    gamma_constraint)
        self.supports_masking = True
        self.autocast = False

    def build(self, input_shape):
        self.axis, shape = _weight_shape(self, self.axis, input_shape)
        self.gamma = self.beta = None
        if self.scale or self.rms_scaling:
            self.gamma = self.add_weight(name="gamma", shape=shape, initializer=self.gamma_initializer,
                                         regularizer=self.gamma_regularizer, constraint=self.gamma_constraint)
        if self.center and not self.rms_scaling:
            self.beta = self.add_weight(name="beta", shape=shape, initializer=self.beta_initializer,
                                        regularizer=self.beta_regularizer, constraint=self.beta_constraint)
        self.built = True

    def call(self, inputs):
        x = _compute(inputs if isinstance(inputs, Tensor) else Tensor(inputs))
        axes = [a % x.ndim for a in self.axis]
        broadcast = [1] * x.ndim
        for a in axes:
            broadcast[a] = x.shape[a]
        shape = None if axes == [x.ndim - 1] else tuple(broadcast)
        gamma = _as(self.gamma, x, shape) if self.gamma is not None else None
        if self.rms_scaling:
            variance = _reduce.var(x, axis=tuple(axes), keepdims=True)
            outputs = _ew.multiply(x, _rsqrt(_ew.add(variance, self.epsilon)))
            if gamma is not None:
                outputs = _ew.multiply(outputs, gamma)
        else:
            mean, variance = _norm.moments(x, axes=axes, keepdims=True)
            beta = _as(self.beta, x, shape) if self.beta is not None else None
            outputs = _scale_shift(x, mean, variance, gamma, beta, self.epsilon)
        return outputs if outputs.dtype == self.dtype else _shape.cast(outputs, self.dtype)

    def compute_output_shape(self, input_shape):
        _check_axes_in(self, self.axis, input_shape)
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({
            "axis": self.axis, "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
            "rms_scaling": self.rms_scaling,
            **_affine_config(self),
        })
        return config


class RMSNormalization(Layer):
    """``x * rsqrt(mean(x^2 over axis) + epsilon) * scale`` (``keras.layers.RMSNormalization``, Zhang & Sennrich
    2019): no centering, one learned ``scale`` (ones) over the normalized axes. epsilon defaults to 1e-6."""

    def __init__(self, axis=-1, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.axis = _layer_axes(self, axis, "RMSNormalization")
        if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real) or epsilon < 0:
            raise ValueError(f"RMSNormalization: epsilon must be a number >= 0, but received epsilon={epsilon!r}")
        self.epsilon = epsilon

    def build(self, input_shape):
        self.axis, shape = _weight_shape(self, self.axis, input_shape)
        self.scale = self.add_weight(name="scale", shape=shape, initializer="ones")
        self.built = True

    def call(self, inputs):
        t = inputs if isinstance(inputs, Tensor) else Tensor(inputs)
        x = _compute(t)
        axes = tuple(a % x.ndim for a in self.axis)
        rrms = _rsqrt(_ew.add(_reduce.mean(_ew.square(x), axis=axes, keepdims=True), self.epsilon))
        outputs = _ew.multiply(_ew.multiply(x, rrms), _as(self.scale, x))
        return outputs if outputs.dtype == t.dtype else _shape.cast(outputs, str(t.dtype))

    def compute_output_shape(self, input_shape):
        _check_axes_in(self, self.axis, input_shape)
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"axis": self.axis, "epsilon": self.epsilon})
        return config


class UnitNormalization(Layer):
    """Scales each sample to unit L2 norm over ``axis``: ``x * min(rsqrt(sum(x^2)), 1e12)``
    (``keras.layers.UnitNormalization``); no weights. A zero vector stays zero."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)):
            if any(isinstance(a, bool) or not isinstance(a, numbers.Integral) for a in axis):
                raise TypeError(f"Invalid value for `axis` argument: expected an int or a list/tuple of ints. "
                                f"Received: axis={axis}")
            self.axis = list(axis)
        elif isinstance(axis, numbers.Integral) and not isinstance(axis, bool):
            self.axis = int(axis)
        else:
            raise TypeError(f"Invalid value for `axis` argument: expected an int or a list/tuple of ints. "
                            f"Received: axis={axis}")
        self.supports_masking = True
        self.built = True

    def call(self, inputs):
        x = inputs if isinstance(inputs, Tensor) else Tensor(inputs)
        axes = tuple(self.axis) if isinstance(self.axis, list) else self.axis
        square_sum = _reduce.sum(_ew.square(x), axis=axes, keepdims=True)
        with B.errstate(divide="ignore"):  # a zero vector: rsqrt(0) = inf, capped at 1 / epsilon below
            inv_norm = _rsqrt(square_sum)
        inv_norm = _ew.minimum(inv_norm, 1.0 / 1e-12)
        return _ew.multiply(x, inv_norm)

    def compute_output_shape(self, input_shape):
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        for a in axes:
            if a >= len(input_shape) or a < -len(input_shape):
                raise ValueError(f"Axis {self.axis} is out of bounds for input shape {tuple(input_shape)}.")
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config["axis"] = self.axis
        return config


class GroupNormalization(Layer):
    """Normalizes each sample over groups of channels (``keras.layers.GroupNormalization``, Wu & He 2018): the
    ``axis`` channels split into ``groups`` groups, each normalized with its mean and variance over the group's
    channels and every other non-batch axis, then per-channel gamma / beta. groups=-1 is instance normalization
    (one group per channel); groups=1 normalizes all channels together.

    Args: groups (32), axis (-1), epsilon (1e-3), center, scale, and the initializers, regularizers and
    constraints of beta and gamma, as LayerNormalization.
    """

    def __init__(self, groups=32, axis=-1, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, **kwargs):
        if isinstance(groups, bool) or not isinstance(groups, int) or (groups <= 0 and groups != -1):
            raise ValueError(f"Received an invalid value for argument `groups`, expected a positive integer (or "
                             f"`-1` for instance normalization). Received: groups={groups}")
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise TypeError(f"GroupNormalization: axis must be an int, but received axis={axis!r}")
        self.supports_masking = True
        self.autocast = False
        self.groups = groups
        self.axis = int(axis)
        self.epsilon = epsilon
        self.center = bool(center)
        self.scale = bool(scale)
        _set_affine(self, beta_initializer, gamma_initializer, beta_regularizer, gamma_regularizer, beta_constraint,
                    gamma_constraint)

    def build(self, input_shape):
        _check_axes_in(self, self.axis, input_shape)
        dim = input_shape[self.axis]
        if dim is None:
            raise ValueError(f"Axis {self.axis} of input tensor should have a defined dimension but the layer "
                             f"received an input with shape {tuple(input_shape)}.")
        if self.groups == -1:
            self.groups = dim
        if dim < self.groups:
            raise ValueError(f"Number of groups ({self.groups}) cannot be more than the number of channels ({dim}).")
        if dim % self.groups != 0:
            raise ValueError(f"Number of groups ({self.groups}) must be a multiple of the number of channels "
                             f"({dim}).")
        self.input_spec = InputSpec(ndim=len(input_shape), axes={self.axis: dim})
        self.gamma = self.beta = None
        if self.scale:
            self.gamma = self.add_weight(shape=(dim,), name="gamma", initializer=self.gamma_initializer,
                                         regularizer=self.gamma_regularizer, constraint=self.gamma_constraint)
        if self.center:
            self.beta = self.add_weight(shape=(dim,), name="beta", initializer=self.beta_initializer,
                                        regularizer=self.beta_regularizer, constraint=self.beta_constraint)
        self.built = True

    def call(self, inputs):
        t = inputs if isinstance(inputs, Tensor) else Tensor(inputs)
        shape = list(t.shape)
        axis = self.axis % len(shape)
        # (..., C, ...) -> (..., groups, C // groups, ...): Keras inserts the group axis before the channel axis.
        group_shape = shape[:axis] + [self.groups, shape[axis] // self.groups] + shape[axis + 1:]
        grouped = _compute(_shape.reshape(t, tuple(group_shape)))
        reduce_axes = tuple(a for a in range(1, len(group_shape)) if a != axis)  # all but batch and groups
        broadcast = [1] * len(group_shape)
        broadcast[axis], broadcast[axis + 1] = self.groups, shape[axis] // self.groups
        mean, variance = _norm.moments(grouped, axes=list(reduce_axes), keepdims=True)
        gamma = _as(self.gamma, grouped, tuple(broadcast)) if self.gamma is not None else None
        beta = _as(self.beta, grouped, tuple(broadcast)) if self.beta is not None else None
        normalized = _scale_shift(grouped, mean, variance, gamma, beta, self.epsilon)
        if normalized.dtype != t.dtype:
            normalized = _shape.cast(normalized, str(t.dtype))
        outputs = _shape.reshape(normalized, tuple(shape))
        return outputs if outputs.dtype == self.dtype else _shape.cast(outputs, self.dtype)

    def compute_output_shape(self, input_shape):
        _check_axes_in(self, self.axis, input_shape)
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({
            "groups": self.groups, "axis": self.axis, "epsilon": self.epsilon, "center": self.center,
            "scale": self.scale, **_affine_config(self),
        })
        return config
