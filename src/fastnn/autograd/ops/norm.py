"""Normalization statistics: ``moments`` (mean and variance in one graph node with two outputs).

Batch normalization builds on it: its output and its saved batch statistics come from one node.
"""
from __future__ import annotations

import math

import numpy as np

from fastnn import backend as B
from fastnn.autograd.ops._util import float_tensor, keepdims_shape, normalize_axis
from fastnn.autograd.tape import record

_FLOAT16_MAX = float(np.finfo(np.float16).max)


def moments(x, axes, keepdims=False, synchronized=False):
    """The mean and the (population) variance of ``x`` over ``axes``, as ``keras.ops.moments``.

    Args:
        x: input tensor; integers and bools become float32.
        axes: an int or a list/tuple of axes to reduce (None: all axes).
        keepdims: keep the reduced axes with length 1.
        synchronized: Keras's flag for synchronizing the statistics across the replicas of a distribution
            strategy. fastnn runs on one device, where the local statistics are the global ones (TensorFlow's
            behaviour outside a strategy), so both values compute the same.

    Returns:
        ``(mean, variance)``: two tensors of x's dtype, the outputs of one graph node. The variance is the mean of
        the squared deviations from the mean (two passes, as ``tf.nn.moments``). float16 inputs are computed in
        float32 and the results clipped to float16's range before the cast back, as Keras does.

    Example:
        >>> mean, variance = fastnn.ops.moments([0.0, 1.0, 2.0, 3.0, 100.0], axes=[0])
        >>> float(mean), float(variance)
        (21.200000762939453, 1553.360107421875)
    """
    t = float_tensor(x, "moments")
    a = t._data
    axes = normalize_axis(axes, a.ndim, "moments")
    dtype = a.dtype
    upcast = dtype == np.float16  # float16's range is too small for the sums of statistics
    w = B.astype(a, np.float32) if upcast else a
    count = a.size if axes is None else math.prod(a.shape[i] for i in axes)
    divisor = w.dtype.type(count)
    kept = keepdims_shape(a.shape, axes)
    out_shape = kept if keepdims else tuple(s for i, s in enumerate(a.shape) if axes is not None and i not in axes)
    with B.errstate(invalid="ignore", divide="ignore"):  # no elements: 0 / 0 is NaN, as keras.ops.mean's
        mean = B.divide(B.sum(w, axis=axes, keepdims=True), divisor)
        centered = B.subtract(w, mean)
        variance = B.divide(B.sum(B.square(centered), axis=axes, keepdims=True), divisor)
    if upcast:
        mean32, variance32 = mean, variance
        mean = B.astype(B.clip(mean, -_FLOAT16_MAX, _FLOAT16_MAX), dtype)
        variance = B.astype(B.clip(variance, -_FLOAT16_MAX, _FLOAT16_MAX), dtype)
    mean = B.reshape(mean, out_shape)
    variance = B.reshape(variance, out_shape)

    def backward(gs, needs):
        g_mean, g_variance = gs
        gx = None
        if g_mean is not None:
            g_mean = B.reshape(g_mean, kept)
            if upcast:  # the clip passes no gradient where it clipped
                g_mean = _unclipped(B.astype(g_mean, np.float32), mean32)
            # d mean / dx = 1 / count
            gx = B.broadcast_to(B.divide(g_mean, divisor), a.shape)
        if g_variance is not None:
            g_variance = B.reshape(g_variance, kept)
            if upcast:
                g_variance = _unclipped(B.astype(g_variance, np.float32), variance32)
            # d variance / dx = 2 (x - mean) / count: the path through the mean adds sum(x - mean) = 0, which
            # tf.nn.moments drops by a stop_gradient, so it is left out here too.
            g_centered = B.multiply(B.multiply(B.divide(g_variance, divisor), 2), centered)
            gx = g_centered if gx is None else B.add(gx, g_centered)
        return (gx,)

    return record((mean, variance), (t,), backward, "moments")


def _unclipped(g, value):
    """``g`` where ``value`` lies within float16's range, 0 where the cast to float16 clipped it."""
    inside = B.logical_and(B.greater_equal(value, -_FLOAT16_MAX), B.less_equal(value, _FLOAT16_MAX))
    return B.where(inside, g, 0.0)
