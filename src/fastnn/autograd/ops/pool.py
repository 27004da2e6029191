"""Windowed pooling: ``max_pool`` and ``average_pool`` (``keras.ops.max_pool`` / ``keras.ops.average_pool``) on the
NHWC pooling kernels ``B.max_pool2d_*`` / ``B.avg_pool2d_*``.

The 1-D forms (batch, steps, channels) run as images of height 1 (pool and stride 1 on that axis); channels_first
inputs are transposed to channels_last around the kernels and back. Max pooling saves the kernel's argmax for its
backward; average pooling leaves padded positions out of each window's count (TensorFlow's "same").
"""
from __future__ import annotations

import numbers

import numpy as np

from fastnn import backend as B
from fastnn.autograd.ops._util import float_tensor
from fastnn.autograd.tape import record


def _tuple(value, n, name, op):
    """``value`` (an int or ``n`` ints) as a tuple of ``n`` positive Python ints."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        values = (int(value),) * n
    else:
        try:
            values = tuple(value)
        except TypeError:
            raise ValueError(f"{op}: `{name}` must be an int or a tuple of {n} ints, but received "
                             f"{name}={value!r}") from None
        if len(values) != n or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values):
            raise ValueError(f"{op}: `{name}` must be an int or a tuple of {n} ints, but received {name}={value!r}")
        values = tuple(int(v) for v in values)
    if any(v <= 0 for v in values):
        raise ValueError(f"{op}: every entry of `{name}` must be > 0, but received {name}={value!r}")
    return values


def pool_arguments(shape, pool_size, strides, padding, data_format, op):
    """Checks the arguments of a pooling op for an input of ``shape`` and returns (pool, strides, padding,
    data_format) with 2-D pool / strides for the NHWC kernel (the 1-D forms get 1 on the height axis)."""
    rank = len(shape)
    if rank not in (3, 4):
        raise ValueError(f"{op}: the input must be 3-D (batch, steps, channels) or 4-D (batch, height, width, "
                         f"channels) (channels first with data_format='channels_first'), but received shape "
                         f"{tuple(shape)}")
    n = rank - 2
    pool = _tuple(pool_size, n, "pool_size", op)
    stride = pool if strides is None else _tuple(strides, n, "strides", op)
    pad = str(padding).lower() if isinstance(padding, str) else padding
    if pad not in ("valid", "same"):
        raise ValueError(f"{op}: `padding` must be 'valid' or 'same', but received padding={padding!r}")
    if data_format is None:
        data_format = "channels_last"
    fmt = str(data_format).lower()
    if fmt not in ("channels_last", "channels_first"):
        raise ValueError(f"{op}: `data_format` must be 'channels_last' or 'channels_first', but received "
                         f"data_format={data_format!r}")
    spatial = tuple(shape[2:]) if fmt == "channels_first" else tuple(shape[1:-1])
    if pad == "valid" and any(p > s for p, s in zip(pool, spatial)):
        raise ValueError(f"{op}: the pool window {pool} is larger than the input's spatial size {spatial} "
                         f"(input shape {tuple(shape)}, padding='valid')")
    if n == 1:
        pool, stride = (1,) + pool, (1,) + stride
    return pool, stride, pad, fmt


def _to_nhwc(x, fmt):
    """x as the (N, H, W, C) array the kernels take, and a function taking an NHWC result back to x's layout."""
    channels_first = fmt == "channels_first"
    if channels_first:
        x = B.transpose(x, (0,) + tuple(range(2, x.ndim)) + (1,))
    one_d = x.ndim == 3
    if one_d:
        x = B.reshape(x, (x.shape[0], 1) + tuple(x.shape[1:]))

    def back(y):
        if one_d:
            y = B.reshape(y, (y.shape[0],) + tuple(y.shape[2:]))
        if channels_first:
            y = B.transpose(y, (0, y.ndim - 1) + tuple(range(1, y.ndim - 1)))
        return y

    return x, back


def _compute_dtype(t):
    """The kernels take float32 / float64: float16 (and bfloat16-like narrow floats) run in float32."""
    dtype = t._data.dtype
    return dtype if dtype in (np.float32, np.float64) else np.dtype(np.float32)


def max_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    """Max pooling over windows of ``pool_size`` (``keras.ops.max_pool``).

    Args:
        inputs: (batch, steps, channels) or (batch, height, width, channels) (channels first with
            ``data_format="channels_first"``).
        pool_size: int or tuple of ints (one per spatial axis).
        strides: int or tuple; None means ``pool_size``.
        padding: "valid" or "same" (TensorFlow's: the extra row / column at the bottom / right; padding never wins).
        data_format: "channels_last" (default) or "channels_first".

    Returns a tensor of the input's dtype. The gradient goes to the first maximum of each window.

    Example:
        >>> fastnn.ops.max_pool(np.arange(16.0).reshape(1, 4, 4, 1), 2).numpy()[0, :, :, 0]
        array([[ 5.,  7.],
               [13., 15.]])
    """
    t = float_tensor(inputs, "max_pool")
    pool, stride, pad, fmt = pool_arguments(t.shape, pool_size, strides, padding, data_format, "max_pool")
    dtype = t._data.dtype
    work = _compute_dtype(t)
    x = t._data if work == dtype else B.astype(t._data, work)
    x4, back = _to_nhwc(x, fmt)
    y4, argmax = B.max_pool2d_forward(x4, pool, stride, pad)
    x4_shape = tuple(x4.shape)
    y = back(y4)
    if work != dtype:
        y = B.astype(y, dtype)

    def backward(g, needs):
        g = B.astype(g, work) if g.dtype != work else g
        g4, back_x = _to_nhwc(g, fmt)
        dx = back_x(B.max_pool2d_backward(g4, argmax, x4_shape))
        return (dx if work == dtype else B.astype(dx, dtype),)

    return record(y, (t,), backward, "max_pool")


def average_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    """Average pooling over windows of ``pool_size`` (``keras.ops.average_pool``).

    Args: as :func:`max_pool`. With padding="same" the padded positions are left out of each window's count
    (TensorFlow's and Keras's semantics), so border windows average fewer values.

    Example:
        >>> fastnn.ops.average_pool(np.arange(16.0).reshape(1, 4, 4, 1), 2).numpy()[0, :, :, 0]
        array([[ 2.5,  4.5],
               [10.5, 12.5]])
    """
    t = float_tensor(inputs, "average_pool")
    pool, stride, pad, fmt = pool_arguments(t.shape, pool_size, strides, padding, data_format, "average_pool")
    dtype = t._data.dtype
    work = _compute_dtype(t)
    x = t._data if work == dtype else B.astype(t._data, work)
    x4, back = _to_nhwc(x, fmt)
    x4_shape = tuple(x4.shape)
    y = back(B.avg_pool2d_forward(x4, pool, stride, pad))
    if work != dtype:
        y = B.astype(y, dtype)

    def backward(g, needs):
        g = B.astype(g, work) if g.dtype != work else g
        g4, back_x = _to_nhwc(g, fmt)
        dx = back_x(B.avg_pool2d_backward(g4, x4_shape, pool, stride, pad))
        return (dx if work == dtype else B.astype(dx, dtype),)

    return record(y, (t,), backward, "average_pool")


def global_average_pool2d(inputs):
    """The mean over H and W of a channels_last (N, H, W, C) float32 / float64 tensor, (N, C), on
    ``B.global_avg_pool2d_forward`` / ``_backward`` (GlobalAveragePooling2D's fast path; other dtypes and layouts
    go through ``mean``)."""
    t = float_tensor(inputs, "global_average_pool2d")
    if t.ndim != 4:
        raise ValueError(f"global_average_pool2d: the input must be 4-D (batch, height, width, channels), but "
                         f"received shape {t.shape}")
    shape = tuple(t.shape)

    def backward(g, needs):
        return (B.global_avg_pool2d_backward(g, shape),)

    return record(B.global_avg_pool2d_forward(t._data), (t,), backward, "global_average_pool2d")
