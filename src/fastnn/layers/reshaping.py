"""Reshaping layers: Reshape, Permute, RepeatVector, and the image ones: ZeroPadding1D/2D, Cropping1D/2D,
UpSampling1D/2D (built on the autograd ops pad, getitem, broadcast_to, take: no kernel of their own)."""
from __future__ import annotations

import math
import numbers

import numpy as np

from fastnn import backend as B
from fastnn.autograd import Tensor
from fastnn.autograd.ops import elementwise as _ew
from fastnn.autograd.ops import shape as _shape
from fastnn.layers.argument_validation import standardize_data_format, standardize_pairs, standardize_tuple
from fastnn.layers.layer import InputSpec, Layer, shape_str


class Reshape(Layer):
    """Reshapes each sample to ``target_shape`` (without the batch axis; one entry may be -1)."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        try:
            target_shape = tuple(int(d) for d in target_shape)
        except TypeError:
            raise ValueError(f"Reshape: target_shape must be a tuple of ints, but received {target_shape!r}") from None
        if sum(d == -1 for d in target_shape) > 1 or any(d == 0 or d < -1 for d in target_shape):
            raise ValueError(f"Reshape: target_shape may hold at most one -1 and otherwise positive ints, but "
                             f"received {target_shape}")
        self.target_shape = target_shape
        self.built = True  # as Keras: built at construction, so its config has no build_config

    def _resolve(self, input_shape):
        rest = input_shape[1:]
        if any(d is None for d in rest):
            return tuple(None if d == -1 else d for d in self.target_shape)
        size = math.prod(rest)
        known = math.prod(d for d in self.target_shape if d != -1)
        if -1 in self.target_shape:
            if known == 0 or size % known:
                raise ValueError(f'Layer "{self.name}": cannot reshape an input of shape {shape_str(input_shape)} '
                                 f"into target_shape {self.target_shape}")
            return tuple(size // known if d == -1 else d for d in self.target_shape)
        if known != size:
            raise ValueError(f'Layer "{self.name}": the total size of the input {shape_str(input_shape)} ({size} '
                             f"per sample) must equal the size of target_shape {self.target_shape} ({known})")
        return self.target_shape

    def call(self, inputs):
        target = self._resolve(tuple(inputs.shape))
        return _shape.reshape(inputs, (inputs.shape[0],) + target)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self._resolve(tuple(input_shape))

    def get_config(self):
        config = super().get_config()
        config["target_shape"] = self.target_shape
        return config


class Permute(Layer):
    """Permutes the non-batch axes: ``dims`` is a permutation of 1..rank (e.g. (2, 1) swaps two axes)."""

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        dims = tuple(int(d) for d in dims)
        if sorted(dims) != list(range(1, len(dims) + 1)):
            raise ValueError(f"Invalid permutation argument `dims` for Permute Layer. The set of indices in `dims` "
                             f"must be consecutive and start from 1. Received dims={dims}")
        self.dims = dims
        self.input_spec = InputSpec(ndim=len(dims) + 1)

    def call(self, inputs):
        return _shape.transpose(inputs, (0,) + self.dims)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + tuple(input_shape[d] for d in self.dims)

    def get_config(self):
        config = super().get_config()
        config["dims"] = self.dims
        return config


class RepeatVector(Layer):
    """Repeats a (N, features) input n times: -> (N, n, features)."""

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n <= 0:
            raise ValueError(f"RepeatVector: n must be a positive int, but received n={n!r}")
        self.n = int(n)
        self.input_spec = InputSpec(ndim=2)

    def call(self, inputs):
        x = _shape.expand_dims(inputs, 1)
        return _shape.tile(x, (1, self.n, 1))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n, input_shape[1])

    def get_config(self):
        config = super().get_config()
        config["n"] = self.n
        return config


# -- image layers ---------------------------------------------------------------------------------------------------
def _spatial_axes(data_format, n_spatial):
    """The spatial axes of an (N, *spatial, C) or (N, C, *spatial) input."""
    first = 2 if data_format == "channels_first" else 1
    return tuple(range(first, first + n_spatial))


def _resized_shape(input_shape, axes, new_size):
    """input_shape with ``new_size(axis_index, length)`` on each of ``axes`` (None stays None)."""
    shape = list(input_shape)
    for i, axis in enumerate(axes):
        if shape[axis] is not None:
            shape[axis] = new_size(i, shape[axis])
    return tuple(shape)


class ZeroPadding1D(Layer):
    """Adds zeros at the start and end of the steps axis of a 3-D input.

    Args:
        padding: int (both ends), or a pair (left_pad, right_pad) of non-negative ints. Default 1.
        data_format: "channels_last" (default; (batch, steps, features)) or "channels_first"
            ((batch, features, steps)).

    Shapes: (batch, steps, features) -> (batch, steps + left_pad + right_pad, features).

    Example:
        >>> ZeroPadding1D(2)(np.ones((1, 3, 4), "float32")).shape
        (1, 7, 4)
    """

    def __init__(self, padding=1, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(data_format)
        self.padding = standardize_tuple(padding, 2, "padding", allow_zero=True)
        self.input_spec = InputSpec(ndim=3)

    def _axes(self):
        return _spatial_axes(self.data_format, 1)

    def call(self, inputs):
        pairs = [(0, 0)] * 3
        pairs[self._axes()[0]] = self.padding
        return _shape.pad(inputs, tuple(pairs))

    def compute_output_shape(self, input_shape):
        return _resized_shape(input_shape, self._axes(), lambda i, n: n + sum(self.padding))

    def get_config(self):
        config = super().get_config()
        config.update({"padding": self.padding, "data_format": self.data_format})
        return config


class ZeroPadding2D(Layer):
    """Adds rows and columns of zeros at the top, bottom, left and right of a 4-D image input.

    Args:
        padding: int (the same on every side), a pair (symmetric_height_pad, symmetric_width_pad), or a pair of
            pairs ((top_pad, bottom_pad), (left_pad, right_pad)); non-negative. Default (1, 1).
        data_format: "channels_last" (default; (batch, height, width, channels)) or "channels_first"
            ((batch, channels, height, width)).

    Shapes: (batch, h, w, c) -> (batch, h + top + bottom, w + left + right, c).

    Example:
        >>> ZeroPadding2D(((1, 0), (2, 2)))(np.ones((1, 3, 3, 2), "float32")).shape
        (1, 4, 7, 2)
    """

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(data_format)
        self.padding = standardize_pairs(padding, "padding", "pad")
        self.input_spec = InputSpec(ndim=4)

    def _axes(self):
        return _spatial_axes(self.data_format, 2)

    def call(self, inputs):
        pairs = [(0, 0)] * 4
        for axis, pair in zip(self._axes(), self.padding):
            pairs[axis] = pair
        return _shape.pad(inputs, tuple(pairs))

    def compute_output_shape(self, input_shape):
        return _resized_shape(input_shape, self._axes(), lambda i, n: n + sum(self.padding[i]))

    def get_config(self):
        config = super().get_config()
        config.update({"padding": self.padding, "data_format": self.data_format})
        return config


class Cropping1D(Layer):
    """Removes steps from the start and end of the steps axis (axis 1) of a (batch, steps, features) input.

    Args:
        cropping: int (both ends), or a pair (start_crop, end_crop) of non-negative ints. Default (1, 1).
            Together they must be smaller than the number of steps.

    Shapes: (batch, steps, features) -> (batch, steps - start_crop - end_crop, features).

    Example:
        >>> Cropping1D((1, 2))(np.ones((2, 5, 3), "float32")).shape
        (2, 2, 3)
    """

    def __init__(self, cropping=(1, 1), **kwargs):
        super().__init__(**kwargs)
        self.cropping = standardize_tuple(cropping, 2, "cropping", allow_zero=True)
        self.input_spec = InputSpec(ndim=3)

    def _check(self, input_shape, what):
        if input_shape[1] is not None and sum(self.cropping) >= input_shape[1]:
            raise ValueError(f'Layer "{self.name}": `cropping` parameter of `Cropping1D` layer must be smaller than '
                             f"the input length. Received: {what}={shape_str(input_shape)}, cropping={self.cropping}")

    def call(self, inputs):
        self._check(tuple(inputs.shape), "inputs.shape")
        start, end = self.cropping
        return _shape.getitem(inputs, (slice(None), slice(start, inputs.shape[1] - end), slice(None)))

    def compute_output_shape(self, input_shape):
        self._check(tuple(input_shape), "input_shape")
        return _resized_shape(input_shape, (1,), lambda i, n: n - sum(self.cropping))

    def get_config(self):
        config = super().get_config()
        config["cropping"] = self.cropping
        return config


class Cropping2D(Layer):
    """Removes rows and columns at the top, bottom, left and right of a 4-D image input.

    Args:
        cropping: int (the same on every side), a pair (symmetric_height_crop, symmetric_width_crop), or a pair of
            pairs ((top_crop, bottom_crop), (left_crop, right_crop)); non-negative, and each pair's sum smaller than
            its spatial size. Default ((0, 0), (0, 0)).
        data_format: "channels_last" (default) or "channels_first".

    Shapes: (batch, h, w, c) -> (batch, h - top - bottom, w - left - right, c).

    Example:
        >>> Cropping2D(((1, 0), (1, 1)))(np.ones((1, 4, 4, 3), "float32")).shape
        (1, 3, 2, 3)
    """

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(data_format)
        self.cropping = standardize_pairs(cropping, "cropping", "crop")
        self.input_spec = InputSpec(ndim=4)

    def _axes(self):
        return _spatial_axes(self.data_format, 2)

    def _check(self, input_shape, what):
        for axis, pair in zip(self._axes(), self.cropping):
            if input_shape[axis] is not None and sum(pair) >= input_shape[axis]:
                raise ValueError(f'Layer "{self.name}": Values in `cropping` argument should be smaller than the '
                                 f"corresponding spatial dimension of the input. Received: "
                                 f"{what}={shape_str(input_shape)}, cropping={self.cropping}")

    def call(self, inputs):
        self._check(tuple(inputs.shape), "inputs.shape")
        key = [slice(None)] * 4
        for axis, (start, end) in zip(self._axes(), self.cropping):
            key[axis] = slice(start, inputs.shape[axis] - end)
        return _shape.getitem(inputs, tuple(key))

    def compute_output_shape(self, input_shape):
        self._check(tuple(input_shape), "input_shape")
        return _resized_shape(input_shape, self._axes(), lambda i, n: n - sum(self.cropping[i]))

    def get_config(self):
        config = super().get_config()
        config.update({"cropping": self.cropping, "data_format": self.data_format})
        return config


def _repeat_nearest(x, axes, factors):
    """Each element of x repeated ``factors[i]`` times along ``axes[i]`` (keras.ops.repeat on each axis in turn):
    a length-1 axis after each repeated one, broadcast to the factor and merged back. The backward of the
    broadcast sums each block of copies."""
    shape = list(x.shape)
    expanded, broadcast = [], []
    for axis, n in enumerate(shape):
        expanded.append(n)
        broadcast.append(n)
        if axis in axes:
            expanded.append(1)
            broadcast.append(factors[axes.index(axis)])
    out_shape = tuple(n * factors[axes.index(axis)] if axis in axes else n for axis, n in enumerate(shape))
    y = _shape.broadcast_to(_shape.reshape(x, tuple(expanded)), tuple(broadcast))
    return _shape.reshape(y, out_shape)


def _bilinear_axis(x, axis, factor):
    """x resized ``factor`` times along ``axis`` by linear interpolation with half-pixel centres, as TensorFlow's
    resize_bilinear (what keras.ops.image.resize runs): source position (i + 0.5) * (n / m) - 0.5 computed in x's
    dtype, its floor and ceil clamped to [0, n - 1], and ``lower + (upper - lower) * (position - floor)``."""
    n = x.shape[axis]
    m = n * factor
    dt = x.dtype
    scale = B.divide(B.asarray(n, dt), B.asarray(m, dt))
    position = B.subtract(B.multiply(B.add(B.astype(B.arange(m), dt), 0.5), scale), 0.5)
    floor = B.floor(position)
    lower = B.maximum(B.astype(floor, np.int64), 0)
    upper = B.minimum(B.astype(B.ceil(position), np.int64), n - 1)
    weight_shape = [1] * x.ndim
    weight_shape[axis] = m
    weight = Tensor._wrap(B.reshape(B.subtract(position, floor), tuple(weight_shape)))
    below = _shape.take(x, lower, axis=axis)
    above = _shape.take(x, upper, axis=axis)
    return _ew.add(below, _ew.multiply(_ew.subtract(above, below), weight))


class UpSampling1D(Layer):
    """Repeats each step of a (batch, steps, features) input ``size`` times along the steps axis.

    Args:
        size: positive int, the repetition factor. Default 2.

    Shapes: (batch, steps, features) -> (batch, steps * size, features).

    Example:
        >>> UpSampling1D(3)(np.ones((2, 4, 5), "float32")).shape
        (2, 12, 5)
    """

    def __init__(self, size=2, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(size, numbers.Integral) or isinstance(size, bool):
            raise TypeError(f"Expected an integer value for `size`, got {type(size)}.")
        if size <= 0:
            raise ValueError(f"Argument `size` should be a positive integer. Received: size={size}")
        self.size = int(size)
        self.input_spec = InputSpec(ndim=3)

    def call(self, inputs):
        return _repeat_nearest(inputs, (1,), (self.size,))

    def compute_output_shape(self, input_shape):
        return _resized_shape(input_shape, (1,), lambda i, n: n * self.size)

    def get_config(self):
        config = super().get_config()
        config["size"] = self.size
        return config


_UPSAMPLING_INTERPOLATIONS = ("nearest", "bilinear")


class UpSampling2D(Layer):
    """Upsamples a 4-D image input by ``size`` = (rows, cols): nearest repeats each pixel, bilinear interpolates
    as keras.ops.image.resize (TensorFlow's half-pixel-centre bilinear resize, no antialiasing).

    Args:
        size: int or pair of positive ints, the factors for rows and columns. Default (2, 2).
        data_format: "channels_last" (default) or "channels_first".
        interpolation: "nearest" (default) or "bilinear" (Keras's other resize methods -- "bicubic", "area",
            "lanczos3", "lanczos5" -- are not implemented and are refused with a ValueError).

    Shapes: (batch, h, w, c) -> (batch, h * size[0], w * size[1], c). Integer inputs stay integer with "nearest";
    "bilinear" computes in float32 for them.

    Example:
        >>> UpSampling2D((2, 3))(np.ones((1, 2, 2, 1), "float32")).shape
        (1, 4, 6, 1)
    """

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(data_format)
        self.size = standardize_tuple(size, 2, "size")
        if not isinstance(interpolation, str) or interpolation.lower() not in _UPSAMPLING_INTERPOLATIONS:
            raise ValueError(f'UpSampling2D: `interpolation` must be one of "nearest", "bilinear" (fastnn does not '
                             f"implement Keras's other resize methods). Received: interpolation={interpolation!r}")
        self.interpolation = interpolation.lower()
        self.input_spec = InputSpec(ndim=4)

    def _axes(self):
        return _spatial_axes(self.data_format, 2)

    def call(self, inputs):
        rows, cols = self._axes()
        if self.interpolation == "nearest":
            return _repeat_nearest(inputs, (rows, cols), self.size)
        x = inputs if inputs.dtype.kind == "f" else _shape.cast(inputs, "float32")
        # TensorFlow interpolates along the width inside each pair of rows, then between the rows.
        return _bilinear_axis(_bilinear_axis(x, cols, self.size[1]), rows, self.size[0])

    def compute_output_shape(self, input_shape):
        return _resized_shape(input_shape, self._axes(), lambda i, n: n * self.size[i])

    def get_config(self):
        config = super().get_config()
        config.update({"size": self.size, "data_format": self.data_format, "interpolation": self.interpolation})
        return config
