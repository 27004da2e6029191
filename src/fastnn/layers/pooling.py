"""Global pooling layers: GlobalAveragePooling1D/2D and GlobalMaxPooling1D/2D (Keras 3's
``keras.layers.Global*Pooling*``), built on the autograd reductions mean, max and sum.

(The windowed MaxPooling / AveragePooling layers come with their kernels.)
"""
from __future__ import annotations

from fastnn.autograd.ops import elementwise as _ew
from fastnn.autograd.ops import reduce as _reduce
from fastnn.autograd.ops import shape as _shape
from fastnn.layers.argument_validation import standardize_data_format
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
