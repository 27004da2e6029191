"""Helpers shared by the op modules: argument conversion, dtype promotion, broadcasting and axes."""
from __future__ import annotations

import numbers

import numpy as np

from fastnn import backend as B
from fastnn.autograd import dtypes
from fastnn.autograd.tensor import Tensor


def tensor(x, op: str, dtype=None) -> Tensor:
    """``x`` as a Tensor (tensors are returned as they are, other data wrapped without copying arrays)."""
    if isinstance(x, Tensor):
        if dtype is not None and x._data.dtype != dtype:
            from fastnn.autograd.ops.shape import cast

            return cast(x, dtype)
        return x
    return Tensor._wrap(dtypes.to_buffer(x, dtype, op=op))


def float_tensor(x, op: str) -> Tensor:
    """``x`` as a float Tensor: bools and integers become float32 (Keras's floatx), like keras.ops does."""
    t = tensor(x, op)
    if t._data.dtype.kind != "f":
        from fastnn.autograd.ops.shape import cast

        t = cast(t, dtypes.floatx)
    return t


def is_weak(x) -> bool:
    return isinstance(x, (bool, int, float)) and not isinstance(x, np.generic)


def promote(op: str, *xs):
    """Converts the operands of an elementwise op to Tensors of one Keras-promoted dtype.

    Returns (tensors, buffers): tensors are the converted operands (Python scalars become constant tensors),
    buffers their data cast to the common dtype (the cast is part of the op, so gradients still reach the
    original tensor in its own dtype through the engine's cast).
    """
    ts = []
    kinds = []
    for x in xs:
        if is_weak(x):
            ts.append(x)
            kinds.append(type(x))
        else:
            t = tensor(x, op)
            ts.append(t)
            kinds.append(t._data.dtype)
    dt = dtypes.result_type(*kinds)
    out_t, bufs = [], []
    for t in ts:
        if isinstance(t, Tensor):
            d = t._data
            bufs.append(d if d.dtype == dt else B.astype(d, dt))
            out_t.append(t)
        else:
            b = B.asarray(t, dtype=dt)
            bufs.append(b)
            out_t.append(Tensor._wrap(b))
    return out_t, bufs


def broadcast_error(op: str, *shapes) -> ValueError:
    names = " and ".join(str(tuple(s)) for s in shapes)
    return ValueError(f"{op}: shapes {names} cannot be broadcast together")


def unbroadcast(g, shape):
    """Sums ``g`` (of a broadcast shape) down to ``shape``: the backward of broadcasting (``B.unbroadcast``; the
    op modules call that directly)."""
    return B.unbroadcast(g, shape)


def normalize_axis(axis, ndim: int, op: str):
    """None, or a sorted tuple of non-negative axes; raises ValueError naming the op for bad axes."""
    if axis is None:
        return None
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    out = []
    for a in axes:
        if isinstance(a, Tensor):
            a = int(a)
        if not isinstance(a, numbers.Integral) or isinstance(a, bool):
            raise TypeError(f"{op}: axis must be an int or a tuple of ints, but received {axis!r}")
        if not -ndim <= a < ndim:
            raise ValueError(f"{op}: axis {a} is out of bounds for an input of rank {ndim}")
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axis!r}")
    return tuple(sorted(out))


def keepdims_shape(shape, axes):
    """The shape of a reduction over ``axes`` with keepdims=True."""
    if axes is None:
        return (1,) * len(shape)
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


def int_shape(shape, op: str) -> tuple:
    if isinstance(shape, Tensor):
        shape = shape.tolist()
    if isinstance(shape, numbers.Integral):
        return (int(shape),)
    try:
        dims = tuple(shape)
    except TypeError:
        dims = None
    # Only integers: int(2.5) would silently truncate a float dimension to 2.
    if dims is None or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in dims):
        raise TypeError(f"{op}: shape must be an int or a sequence of ints, but received {shape!r}")
    return tuple(int(s) for s in dims)
