"""Pooling layers with Keras 3's names, arguments and configs: GlobalAveragePooling1D/2D and GlobalMaxPooling1D/2D
(``keras.layers.Global*Pooling*``, built on the autograd reductions mean, max and sum) and the windowed
MaxPooling1D/2D and AveragePooling1D/2D (``fastnn.ops.max_pool`` / ``average_pool`` on the NHWC pooling kernels).
"""
from __future__ import annotations

import numpy as np

from fastnn.autograd.ops import elementwise as _ew
from fastnn.autograd.ops import reduce as _reduce
from fastnn.autograd.ops import shape as _shape
from fastnn.autograd.ops import pool as _pool
from fastnn.layers.argument_validation import standardize_data_format, standardize_tuple
from fastnn.layers.layer import InputSpec, Layer


class _GlobalPooling(Layer):
    """Base of the global pooling layers (Keras's BaseGlobalPooling): reduces every spatial axis of an
    (N, *spatial, C) or (N, C, *spatial) input, keeping them as length-1 axes with ``keepdims``."""

    def __init__(self, pool_dimensions, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(data_format)
        if not isinstance(keepdims, bool):
            raise ValueError(f"{type(self).__name__}: `keepdims` must be True or False. "
                             f"Received: keepdims={keepdims!r}")
        self.keepdims = keepdims
        self.pool_dimensions = pool_dimensions
        self.input_spec = InputSpec(ndim=pool_dimensions + 2)
        self.built = True  # as Keras (_build_at_init): no weights, no build_config

    def _axes(self):
        first = 2 if self.data_format == "channels_first" else 1
        return tuple(range(first, first + self.pool_dimensions))

    def compute_output_shape(self, input_shape):
        channels = input_shape[-1] if self.data_format == "channels_last" else input_shape[1]
        if not self.keepdims:
            return (input_shape[0], channels)
        ones = (1,) * (len(input_shape) - 2)
        if self.data_format == "channels_last":
            return (input_shape[0],) + ones + (channels,)
        return (input_shape[0], channels) + ones

    def get_config(self):
        config = super().get_config()
        config.update({"data_format": self.data_format, "keepdims": self.keepdims})
        return config


class GlobalAveragePooling1D(_GlobalPooling):
    """The mean over the steps axis of a 3-D input; with a mask (batch, steps) the mean of the unmasked steps
    only (a sample with every step masked gives NaN, as in Keras). The output carries no mask.

    Args:
        data_format: "channels_last" (default; (batch, steps, features)) or "channels_first"
            ((batch, features, steps)).
        keepdims: keep the steps axis with length 1. Default False.

    Shapes: (batch, steps, features) -> (batch, features), or (batch, 1, features) with keepdims.

    Example:
        >>> GlobalAveragePooling1D()(np.ones((2, 5, 3), "float32")).shape
        (2, 3)
    """

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(1, data_format=data_format, keepdims=keepdims, **kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        steps_axis = self._axes()[0]
        if mask is None:
            return _reduce.mean(inputs, axis=steps_axis, keepdims=self.keepdims)
        # Keras: zero the masked steps, then divide the sum by the number of unmasked steps.
        expanded = _shape.cast(_shape.expand_dims(mask, 2 if self.data_format == "channels_last" else 1), "bool")
        kept = _ew.where(expanded, inputs, 0)
        count = _reduce.sum(_shape.cast(expanded, kept.dtype), axis=steps_axis, keepdims=self.keepdims)
        return _ew.divide(_reduce.sum(kept, axis=steps_axis, keepdims=self.keepdims), count)

    def compute_mask(self, inputs, previous_mask):
        return None


class GlobalAveragePooling2D(_GlobalPooling):
    """The mean over the height and width axes of a 4-D image input.

    Args:
        data_format: "channels_last" (default) or "channels_first".
        keepdims: keep the spatial axes with length 1. Default False.

    Shapes: (batch, h, w, c) -> (batch, c), or (batch, 1, 1, c) with keepdims.

    Example:
        >>> GlobalAveragePooling2D()(np.ones((2, 4, 4, 3), "float32")).shape
        (2, 3)
    """

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(2, data_format=data_format, keepdims=keepdims, **kwargs)

    def call(self, inputs):
        dtype = getattr(inputs, "dtype", None)
        if self.data_format == "channels_last" and dtype in (np.float32, np.float64):
            # The NHWC kernel (sums over H * W per channel in one pass): the same mean to rounding, faster.
            pooled = _pool.global_average_pool2d(inputs)
            if self.keepdims:
                pooled = _shape.reshape(pooled, (pooled.shape[0], 1, 1, pooled.shape[1]))
            return pooled
        return _reduce.mean(inputs, axis=self._axes(), keepdims=self.keepdims)


class GlobalMaxPooling1D(_GlobalPooling):
    """The maximum over the steps axis of a 3-D input (tied maxima share the gradient equally, as in TensorFlow).

    Args:
        data_format: "channels_last" (default) or "channels_first".
        keepdims: keep the steps axis with length 1. Default False.

    Shapes: (batch, steps, features) -> (batch, features), or (batch, 1, features) with keepdims.

    Example:
        >>> GlobalMaxPooling1D()(np.ones((2, 5, 3), "float32")).shape
        (2, 3)
    """

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(1, data_format=data_format, keepdims=keepdims, **kwargs)

    def call(self, inputs):
        return _reduce.max(inputs, axis=self._axes(), keepdims=self.keepdims)


class GlobalMaxPooling2D(_GlobalPooling):
    """The maximum over the height and width axes of a 4-D image input (tied maxima share the gradient).

    Args:
        data_format: "channels_last" (default) or "channels_first".
        keepdims: keep the spatial axes with length 1. Default False.

    Shapes: (batch, h, w, c) -> (batch, c), or (batch, 1, 1, c) with keepdims.

    Example:
        >>> GlobalMaxPooling2D(keepdims=True)(np.ones((2, 4, 4, 3), "float32")).shape
        (2, 1, 1, 3)
    """

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(2, data_format=data_format, keepdims=keepdims, **kwargs)

    def call(self, inputs):
        return _reduce.max(inputs, axis=self._axes(), keepdims=self.keepdims)


# Keras's aliases (keras.layers.GlobalAvgPool2D is GlobalAveragePooling2D, ...).
GlobalAvgPool1D = GlobalAveragePooling1D
GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool1D = GlobalMaxPooling1D
GlobalMaxPool2D = GlobalMaxPooling2D


# --- added by h-poollayers: windowed pooling ---------------------------------------------------------------------
class _Pooling(Layer):
    """Base of the windowed pooling layers (Keras's BasePooling): ``pool_size`` windows moved by ``strides``
    (default: ``pool_size``) over the spatial axes of an (N, *spatial, C) or (N, C, *spatial) input."""

    def __init__(self, pool_size, strides, pool_dimensions, pool_mode, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = standardize_tuple(pool_size, pool_dimensions, "pool_size")
        strides = pool_size if strides is None else strides
        self.strides = standardize_tuple(strides, pool_dimensions, "strides")
        if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
            raise ValueError(f"{type(self).__name__}: argument `padding` must be either 'valid' or 'same'. "
                             f"Received: padding={padding!r}")
        self.padding = padding.lower()
        self.pool_mode = pool_mode
        self.data_format = standardize_data_format(data_format)
        self.pool_dimensions = pool_dimensions
        self.input_spec = InputSpec(ndim=pool_dimensions + 2)
        self.built = True  # as Keras (_build_at_init): no weights, no build_config

    def _spatial(self, input_shape):
        return tuple(input_shape[2:]) if self.data_format == "channels_first" else tuple(input_shape[1:-1])

    def _check_window(self, input_shape):
        """Keras's error for a window that does not fit a "valid" input (output size zero or negative)."""
        if self.padding != "valid":
            return
        for size, pool in zip(self._spatial(input_shape), self.pool_size):
            if size is not None and size < pool:
                raise ValueError(f'Layer "{self.name}" ({type(self).__name__}): computed output size would be zero '
                                 f"or negative. Received: inputs.shape={tuple(input_shape)}, "
                                 f"pool_size={self.pool_size}, strides={self.strides}, padding={self.padding}")

    def call(self, inputs):
        self._check_window(tuple(inputs.shape))
        op = _pool.max_pool if self.pool_mode == "max" else _pool.average_pool
        return op(inputs, pool_size=self.pool_size, strides=self.strides, padding=self.padding,
                  data_format=self.data_format)

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        self._check_window(input_shape)
        out = []
        for size, pool, stride in zip(self._spatial(input_shape), self.pool_size, self.strides):
            if size is None:
                out.append(None)
            elif self.padding == "valid":
                out.append((size - pool) // stride + 1)
            else:
                out.append((size - 1) // stride + 1)
        if self.data_format == "channels_last":
            return (input_shape[0],) + tuple(out) + (input_shape[-1],)
        return (input_shape[0], input_shape[1]) + tuple(out)

    def get_config(self):
        config = super().get_config()
        config.update({"pool_size": self.pool_size, "padding": self.padding, "strides": self.strides,
                       "data_format": self.data_format})
        return config


class MaxPooling1D(_Pooling):
    """The maximum over windows of ``pool_size`` steps, moved by ``strides``.

    Args:
        pool_size: int, the window length. Default 2.
        strides: int or None (default: ``pool_size``).
        padding: "valid" (default) or "same" (output length ceil(steps / strides); padding never wins).
        data_format: "channels_last" (default; (batch, steps, features)) or "channels_first".

    Shapes: (batch, steps, features) -> (batch, pooled_steps, features).

    Example:
        >>> MaxPooling1D(2)(np.ones((2, 6, 3), "float32")).shape
        (2, 3, 3)
    """

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, name=None, **kwargs):
        super().__init__(pool_size, strides, 1, "max", padding=padding, data_format=data_format, name=name, **kwargs)


class MaxPooling2D(_Pooling):
    """The maximum over ``pool_size`` windows of an image, moved by ``strides``.

    Args:
        pool_size: int or pair of ints. Default (2, 2).
        strides: int, pair or None (default: ``pool_size``).
        padding: "valid" (default) or "same" (TensorFlow's: the extra row / column at the bottom / right).
        data_format: "channels_last" (default) or "channels_first".

    Shapes: (batch, h, w, c) -> (batch, pooled_h, pooled_w, c).

    Example:
        >>> MaxPooling2D()(np.ones((2, 4, 4, 3), "float32")).shape
        (2, 2, 2, 3)
    """

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, name=None, **kwargs):
        super().__init__(pool_size, strides, 2, "max", padding=padding, data_format=data_format, name=name, **kwargs)


class AveragePooling1D(_Pooling):
    """The mean over windows of ``pool_size`` steps, moved by ``strides``; with "same" padding the padded
    positions are left out of each window's count (as in Keras).

    Args: as :class:`MaxPooling1D`, but ``pool_size`` has no default (as in Keras 3).

    Example:
        >>> AveragePooling1D(3, strides=1, padding="same")(np.ones((2, 5, 3), "float32")).shape
        (2, 5, 3)
    """

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, name=None, **kwargs):
        super().__init__(pool_size, strides, 1, "average", padding=padding, data_format=data_format, name=name,
                         **kwargs)


class AveragePooling2D(_Pooling):
    """The mean over ``pool_size`` windows of an image, moved by ``strides``; with "same" padding the padded
    positions are left out of each window's count (as in Keras).

    Args: as :class:`MaxPooling2D`, but ``pool_size`` has no default (as in Keras 3).

    Example:
        >>> AveragePooling2D(pool_size=3, strides=2, padding="same")(np.ones((2, 5, 5, 3), "float32")).shape
        (2, 3, 3, 3)
    """

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, name=None, **kwargs):
        super().__init__(pool_size, strides, 2, "average", padding=padding, data_format=data_format, name=name,
                         **kwargs)


# Keras's aliases (keras.layers.MaxPool2D is MaxPooling2D, ...).
MaxPool1D = MaxPooling1D
MaxPool2D = MaxPooling2D
AvgPool1D = AveragePooling1D
AvgPool2D = AveragePooling2D
