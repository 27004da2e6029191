"""Preprocessing layers that are plain arithmetic on the inputs: Rescaling and Normalization (``keras.layers.Rescaling``,
``keras.layers.Normalization``, with ``adapt``)."""
from __future__ import annotations

import math
import numbers

from fastnn import backend as B
from fastnn.autograd import Tensor
from fastnn.autograd.ops import elementwise as _ew
from fastnn.autograd.ops import shape as _shape
from fastnn.layers.layer import Layer


# NumPy boundary: the user's scale / offset (numbers, lists or arrays) checked as host data
def _factor(arg, value):
    """A scale / offset: a number, or a list / tuple / array of numbers (per channel, broadcast over the last axis),
    kept as given for the config."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"Rescaling: `{arg}` must be a number or an array of numbers, but received {arg}={value!r}")
    if isinstance(value, numbers.Real):
        return value
    try:
        array = B.asarray(value, dtype="float64")
    except (TypeError, ValueError):
        raise ValueError(f"Rescaling: `{arg}` must be a number or an array of numbers, but received "
                         f"{arg}={value!r}") from None
    if array.dtype.kind != "f" or array.ndim > 3:
        raise ValueError(f"Rescaling: `{arg}` must be a number or an array of at most 3 dimensions, but received "
                         f"{arg}={value!r}")
    return value


class Rescaling(Layer):
    """``inputs * scale + offset`` in the layer's dtype (``keras.layers.Rescaling``): e.g. ``Rescaling(1 / 255)``
    maps uint8 pixels to [0, 1], ``Rescaling(1 / 127.5, offset=-1)`` to [-1, 1]. Integer inputs are cast to the
    layer's float dtype first; scale and offset may be per-channel arrays (broadcast over the last axis)."""

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = _factor("scale", scale)
        self.offset = _factor("offset", offset)
        self.supports_masking = True

    def call(self, inputs):
        x = inputs if isinstance(inputs, Tensor) else Tensor(B.asarray(inputs))
        if x.dtype != self.dtype:
            x = _shape.cast(x, self.dtype)
        scale = B.asarray(self.scale, dtype=self.dtype)
        offset = B.asarray(self.offset, dtype=self.dtype)
        return _ew.add(_ew.multiply(x, scale), offset)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"scale": self._plain(self.scale), "offset": self._plain(self.offset)})
        return config

    @staticmethod
    def _plain(value):
        return value.tolist() if hasattr(value, "tolist") and not isinstance(value, numbers.Real) else value


_KERAS_EPSILON = 1e-7  # keras.backend.epsilon(): the smallest standard deviation Normalization divides by


def _mean_and_variance(data, axes):
    """NumPy's mean and var over ``axes`` (var two-pass: the mean of the squared deviations), on the backend."""
    mean = B.mean(data, axis=axes)
    deviations = B.subtract(data, B.mean(data, axis=axes, keepdims=True))
    return mean, B.mean(B.multiply(deviations, deviations), axis=axes)


class Normalization(Layer):
    """Feature-wise standardization ``(x - mean) / max(sqrt(variance), 1e-7)`` (``keras.layers.Normalization``),
    with ``invert=True`` its inverse ``mean + x * max(sqrt(variance), 1e-7)``.

    The statistics are given (``mean=`` and ``variance=``, broadcast over the kept axes) or learned by
    ``adapt(data)`` from a NumPy array, a Tensor or an iterable of batches (merged batch by batch with Keras's
    weighted update), and then live in the non-trainable weights ``mean`` and ``variance`` (and ``count``, which
    Keras 3.15 creates and leaves at 0), which ``get_weights`` / ``set_weights`` and the Keras files carry.

    Args:
        axis: the axes kept (one statistic per index along them); default -1, None or () for one scalar.
        mean, variance: optional fixed statistics. invert: apply the inverse transform.
    """

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        if axis is None:
            axis = ()
        elif isinstance(axis, numbers.Integral) and not isinstance(axis, bool):
            axis = (int(axis),)
        elif isinstance(axis, (list, tuple)) and all(isinstance(a, numbers.Integral) and not isinstance(a, bool)
                                                     for a in axis):
            axis = tuple(int(a) for a in axis)
        else:
            raise TypeError(f"Normalization: axis must be an int, a list / tuple of ints or None, but received "
                            f"axis={axis!r}")
        self.axis = axis
        self.input_mean = mean
        self.input_variance = variance
        self.invert = bool(invert)
        self.supports_masking = True
        self._fixed = None  # (mean, variance) buffers broadcast to the input's rank, when given
        if (mean is not None) != (variance is not None):
            raise ValueError(f"When setting values directly, both `mean` and `variance` must be set. Received: "
                             f"mean={mean} and variance={variance}")
        if mean is not None:
            mean_shape, variance_shape = B.asarray(mean).shape, B.asarray(variance).shape
            if mean_shape != variance_shape:
                raise ValueError(f"When setting values directly, `mean` and `variance` must have the same shape. "
                                 f"Received: mean shape {mean_shape} and variance shape {variance_shape}")
            if len(mean_shape) > len(self.axis):
                raise ValueError(f"The rank of `mean` must be less than or equal to the number of axes "
                                 f"({len(self.axis)}). Received: mean shape {mean_shape} for axis {self.axis}")

    def build(self, input_shape):
        if input_shape is None:
            return
        input_shape = tuple(input_shape)
        ndim = len(input_shape)
        if any(a < -ndim or a >= ndim for a in self.axis):
            raise ValueError(f"All `axis` values must be in the range [-ndim, ndim). Received inputs with "
                             f"ndim={ndim}, while axis={self.axis}")
        self._keep_axis = tuple(sorted(d if d >= 0 else d + ndim for d in self.axis))
        for d in self._keep_axis:
            if input_shape[d] is None:
                raise ValueError(f"All `axis` values to be kept must have a known shape. Received axis={self.axis}, "
                                 f"inputs.shape={input_shape}, with unknown axis at index {d}")
        self._build_input_shape = input_shape
        self._reduce_axis = tuple(d for d in range(ndim) if d not in self._keep_axis)
        self._broadcast_shape = tuple(input_shape[d] if d in self._keep_axis else 1 for d in range(ndim))
        self._mean_and_var_shape = tuple(input_shape[d] for d in self._keep_axis)
        if self.input_mean is None:
            self.adapt_mean = self.add_weight(name="mean", shape=self._mean_and_var_shape, initializer="zeros",
                                              trainable=False)
            self.adapt_variance = self.add_weight(name="variance", shape=self._mean_and_var_shape,
                                                  initializer="ones", trainable=False)
            self.count = self.add_weight(name="count", shape=(), dtype="int64", initializer="zeros",
                                         trainable=False)
        else:
            self._fixed = tuple(self._broadcast_given(v, ndim) for v in (self.input_mean, self.input_variance))
        self.built = True

    # NumPy boundary: the user's fixed statistics (numbers, lists or arrays) read as host data
    def _broadcast_given(self, value, ndim):
        v = B.asarray(value, dtype=self.dtype)
        if v.ndim > 0:  # its trailing axes are the last kept axes
            expanded = [1] * ndim
            for i in range(1, v.ndim + 1):
                expanded[self._keep_axis[-i]] = v.shape[-i]
            v = B.reshape(v, tuple(expanded))
        return B.array(B.broadcast_to(v, self._broadcast_shape))

    # NumPy boundary: adapt reads the user's data (arrays, Tensors or batches of them) on the host
    def adapt(self, data):
        """Computes the mean and variance of ``data`` over the non-kept axes and stores them in the weights."""
        import itertools

        if isinstance(data, Tensor):
            data = data.numpy()
        if B.is_buffer(data):
            batches, input_shape = None, data.shape
        elif hasattr(data, "__iter__") and not isinstance(data, (str, bytes)):
            it = iter(data)
            first = next(it, None)
            if first is None:
                raise ValueError("adapt() received an empty iterable (no batches). Expected at least one batch. "
                                 "Pass a non-empty iterable of arrays or tensors, e.g. layer.adapt([x]).")
            first = first[0] if isinstance(first, tuple) else first
            if not hasattr(first, "shape"):
                raise TypeError(f"adapt() expects an iterable that yields arrays or tensors with a `.shape` "
                                f"attribute. Got an element of type {type(first).__name__}.")
            batches, input_shape = itertools.chain([first], it), tuple(first.shape)
        else:
            raise TypeError(f"Unsupported data type: {type(data)}. `adapt` supports `np.ndarray`, fastnn tensors and "
                            f"iterables of batches (e.g. list, generator).")
        if self.input_mean is not None:
            raise ValueError("Normalization: adapt() cannot be used when `mean` and `variance` were given")
        if not self.built:
            self.build(input_shape)
        else:
            self._check_kept_shape(input_shape)
        if batches is None:
            self._check_kept_shape(data.shape)
            total_mean, total_var = _mean_and_variance(data, self._reduce_axis)
        else:
            total_mean = B.zeros(self._mean_and_var_shape, self.dtype)
            total_var = B.zeros(self._mean_and_var_shape, self.dtype)
            count = 0
            for batch in batches:
                batch = batch[0] if isinstance(batch, tuple) else batch
                batch = B.asarray(batch.numpy() if isinstance(batch, Tensor) else batch, dtype=self.dtype)
                self._check_kept_shape(batch.shape)
                batch_mean, batch_var = _mean_and_variance(batch, self._reduce_axis)
                batch_count = math.prod(batch.shape[d] for d in self._reduce_axis)
                count += batch_count
                batch_weight = float(batch_count) / count
                existing_weight = 1.0 - batch_weight
                new_mean = total_mean * existing_weight + batch_mean * batch_weight
                total_var = ((total_var + (total_mean - new_mean) ** 2) * existing_weight
                             + (batch_var + (batch_mean - new_mean) ** 2) * batch_weight)
                total_mean = new_mean
        self.adapt_mean.assign(B.asarray(total_mean, dtype=self.dtype))
        self.adapt_variance.assign(B.asarray(total_var, dtype=self.dtype))
        # (Keras 3.15 never writes its count weight: it stays 0 there, and so here, so the files agree.)

    def _check_kept_shape(self, shape):
        if len(shape) != len(self._build_input_shape) or any(
                shape[d] != self._build_input_shape[d] for d in self._keep_axis):
            raise ValueError(f"The layer was built with input_shape={self._build_input_shape}, but adapt() is being "
                             f"called with data with an incompatible shape, data.shape={tuple(shape)}")

    def call(self, inputs):
        if not self.built:
            raise ValueError("You must call `.build(input_shape)` on the layer before using it.")
        x = inputs if isinstance(inputs, Tensor) else Tensor(B.asarray(inputs))
        if x.dtype != self.dtype:
            x = _shape.cast(x, self.dtype)
        if self._fixed is not None:
            mean, variance = self._fixed
        else:
            mean = _shape.reshape(self.adapt_mean, self._broadcast_shape)
            variance = _shape.reshape(self.adapt_variance, self._broadcast_shape)
        spread = _ew.maximum(_ew.sqrt(variance), _KERAS_EPSILON)
        if self.invert:
            return _ew.add(mean, _ew.multiply(x, spread))
        return _ew.divide(_ew.subtract(x, mean), spread)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"axis": self.axis, "invert": self.invert, "mean": self._listed(self.input_mean),
                       "variance": self._listed(self.input_variance)})
        return config

    @staticmethod
    def _listed(value):
        """Keras writes ``np.array(value).tolist()``: None stays None, numbers and arrays become (nested) lists."""
        return None if value is None else B.asarray(value).tolist()

    def get_build_config(self):
        return {"input_shape": self._build_input_shape} if self._build_input_shape else None

    def build_from_config(self, config):
        if config:
            self.build(config["input_shape"])
