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


# --- added by h-poollayers: batch normalization ------------------------------------------------------------------
def batch_normalization(x, mean, variance, axis, offset=None, scale=None, epsilon=1e-3):
    """Normalizes ``x`` with given statistics along ``axis`` (``keras.ops.batch_normalization``).

    ``x * inv + (offset - mean * inv)`` with ``inv = scale / sqrt(variance + epsilon)``: Keras's formula, built from
    differentiable ops so gradients reach x, mean, variance, offset and scale.

    Args:
        x: input tensor.
        mean, variance: 1-D tensors of length ``x.shape[axis]``.
        axis: the feature axis (negative counts from the end).
        offset, scale: optional 1-D tensors (beta, gamma).
        epsilon: added to the variance.

    Example:
        >>> fastnn.ops.batch_normalization([[1.0, 2.0], [3.0, 4.0]], [2.0, 3.0], [1.0, 1.0], axis=-1,
        ...                                epsilon=0.0).numpy()
        array([[-1., -1.],
               [ 1.,  1.]], dtype=float32)
    """
    from fastnn.autograd.ops import elementwise as _ew
    from fastnn.autograd.ops import shape as _shape

    t = float_tensor(x, "batch_normalization")
    ndim = t.ndim
    if not isinstance(axis, int) or not -ndim <= axis < ndim:
        raise ValueError(f"batch_normalization: axis {axis!r} is out of range for an input of shape {t.shape}")
    axis = axis % ndim

    def per_channel(v, name):
        v = float_tensor(v, "batch_normalization")
        if v.ndim != 1 or v.shape[0] != t.shape[axis]:
            raise ValueError(f"batch_normalization: `{name}` must be 1-D of length x.shape[{axis}] = "
                             f"{t.shape[axis]}, but received shape {v.shape} (x shape {t.shape})")
        shape = [1] * ndim
        shape[axis] = t.shape[axis]
        return _shape.reshape(v, tuple(shape))

    mean = per_channel(mean, "mean")
    inv = _ew.divide(1.0, _ew.sqrt(_ew.add(per_channel(variance, "variance"), epsilon)))
    if scale is not None:
        inv = _ew.multiply(inv, per_channel(scale, "scale"))
    res = _ew.multiply(_ew.negative(mean), inv)
    if offset is not None:
        res = _ew.add(res, per_channel(offset, "offset"))
    return _ew.add(_ew.multiply(t, inv), res)


def _channels_last(a, axis):
    return a if axis == a.ndim - 1 else B.moveaxis(a, axis, -1)


def _activation(activation, op):
    if activation not in ("linear", "relu"):
        raise ValueError(f'{op}: activation must be "linear" or "relu", but received {activation!r}')
    return activation


def batch_norm_train(t, gamma, beta, axis, epsilon, activation="linear"):
    """BatchNormalization's training forward on ``B.batch_norm_train_forward``: the batch statistics over every axis
    but ``axis`` (non-negative). ``t`` is a float32 / float64 Tensor, gamma / beta Tensors of its dtype or None.
    activation="relu": relu(batch_norm(x)) as one node on the fused kernels (the bits of the two ops in a row, one
    pass over the activations fewer each way), for a caller that sees a ReLU following the normalization.

    Returns ``(y, mean, variance)``: y a Tensor (one node, backward ``B.batch_norm_backward`` for x, gamma and beta),
    mean and the biased variance (what Keras updates its moving statistics with) as buffers of length C."""
    relu = _activation(activation, "batch_norm_train") == "relu"
    a = t._data
    last = axis == a.ndim - 1
    xl = _channels_last(a, axis)
    g = None if gamma is None else gamma._data
    b = None if beta is None else beta._data
    yl, mean, var, rstd = B.batch_norm_train_forward(xl, g, b, epsilon, activation=activation)
    y = yl if last else B.moveaxis(yl, -1, axis)
    parents = (t,) + tuple(p for p in (gamma, beta) if p is not None)

    def backward(gy, needs):
        dx, dgamma, dbeta = B.batch_norm_backward(_channels_last(gy, axis), xl, mean, rstd, g,
                                                  relu_y=yl if relu else None)
        grads = [dx if last else B.moveaxis(dx, -1, axis)]
        if gamma is not None:
            grads.append(dgamma)
        if beta is not None:
            grads.append(dbeta)
        return tuple(grads)

    return record(y, parents, backward, "batch_norm_train"), mean, var


def batch_norm_inference(t, mean, variance, gamma, beta, axis, epsilon, activation="linear"):
    """BatchNormalization's inference forward on ``B.batch_norm_inference_forward`` with given statistics (buffers
    of t's dtype; they get no gradient: the moving statistics are not trained). Gradients reach x, gamma and beta.
    activation="relu": relu(batch_norm(x)) in one pass (the bits of the two ops in a row)."""
    relu = _activation(activation, "batch_norm_inference") == "relu"
    a = t._data
    last = axis == a.ndim - 1
    xl = _channels_last(a, axis)
    g = None if gamma is None else gamma._data
    b = None if beta is None else beta._data
    yl = B.batch_norm_inference_forward(xl, mean, variance, g, b, epsilon, activation=activation)
    y = yl if last else B.moveaxis(yl, -1, axis)
    parents = (t,) + tuple(p for p in (gamma, beta) if p is not None)

    def backward(gy, needs):
        if relu:  # the ReLU backward's rule (gy where y > 0, else 0), in gy's layout as the unfused ops run it
            yc = B.contiguous(y)
            gy = B.activation_backward(B.contiguous(gy), yc, yc, "relu")
        gl = _channels_last(gy, axis)
        rows = tuple(range(gl.ndim - 1))
        rstd = B.divide(1.0, B.sqrt(B.add(variance, epsilon)))
        dx = B.multiply(gl, rstd if g is None else B.multiply(rstd, g))
        grads = [dx if last else B.moveaxis(dx, -1, axis)]
        if gamma is not None:
            grads.append(B.sum(B.multiply(gl, B.multiply(B.subtract(xl, mean), rstd)), axis=rows))
        if beta is not None:
            grads.append(B.sum(gl, axis=rows))
        return tuple(grads)

    return record(y, parents, backward, "batch_norm_inference")
