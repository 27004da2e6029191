"""Reductions: sum, mean, max, min, argmax, argmin, var, std, logsumexp, cumsum, prod.

``axis`` is None (all axes), an int or a tuple of ints; ``keepdims`` keeps reduced axes with length 1. Forward and
backward compute through ``fastnn.backend`` only. A full reduction may give the backend's scalar; ``record`` and
``Tensor._wrap`` turn it into a 0-D buffer.
"""
from __future__ import annotations

import math

import numpy as np

from fastnn import backend as B
from fastnn.autograd.ops._util import float_tensor, keepdims_shape, normalize_axis, tensor
from fastnn.autograd.tape import record
from fastnn.autograd.tensor import Tensor


def _expand(g, shape, axes, keepdims):
    """The gradient of a reduction's output, broadcast back to the input shape (a read-only view)."""
    # Broadcasting aligns trailing axes, so only reduced axes that are not all leading need putting back as 1s.
    if not keepdims and axes is not None and axes != tuple(range(len(axes))):
        g = B.reshape(g, keepdims_shape(shape, axes))
    return B.broadcast_to(g, shape)


def sum(x, axis=None, keepdims=False):  # noqa: A001 - keras.ops name
    """Sum over ``axis``. Booleans sum to int32."""
    t = tensor(x, "sum")
    a = t._data
    axes = normalize_axis(axis, a.ndim, "sum")
    dtype = np.int32 if a.dtype == np.bool_ else None
    y = B.sum(a, axis=axes, keepdims=keepdims, dtype=dtype)

    def backward(g, needs):
        return (_expand(g, a.shape, axes, keepdims),)

    return record(y, (t,), backward, "sum")


def mean(x, axis=None, keepdims=False):
    """Mean over ``axis`` (integers give float32)."""
    t = float_tensor(x, "mean")
    a = t._data
    axes = normalize_axis(axis, a.ndim, "mean")
    count = a.size if axes is None else math.prod([a.shape[i] for i in axes])
    y = B.reduce_mean(a, axes, keepdims)

    def backward(g, needs):
        return (_expand(B.divide(g, a.dtype.type(count or 1)), a.shape, axes, keepdims),)

    return record(y, (t,), backward, "mean")


def _extremum(op, fn, x, axis, keepdims, initial):
    t = tensor(x, op)
    a = t._data
    axes = normalize_axis(axis, a.ndim, op)
    try:
        y = (fn(a, axis=axes, keepdims=keepdims) if initial is None else
             fn(a, axis=axes, keepdims=keepdims, initial=initial))
    except ValueError as exc:
        raise ValueError(f"{op}: {exc} (input shape {a.shape}; pass `initial` to reduce empty axes)") from None

    def backward(g, needs):
        # The gradient is shared equally among the elements that attain the extremum (as TensorFlow does).
        yk = y if keepdims else B.reshape(y, keepdims_shape(a.shape, axes))
        gk = g if keepdims else B.reshape(g, keepdims_shape(a.shape, axes))
        mask = B.equal(a, yk)
        count = B.sum(mask, axis=axes, keepdims=True)
        with B.errstate(invalid="ignore", divide="ignore"):
            return (B.astype(B.where(mask, B.divide(gk, count), 0), a.dtype, copy=False),)

    return record(y, (t,), backward, op)


def max(x, axis=None, keepdims=False, initial=None):  # noqa: A001
    """Maximum over ``axis``; ties share the gradient equally."""
    return _extremum("max", B.max, x, axis, keepdims, initial)


def min(x, axis=None, keepdims=False, initial=None):  # noqa: A001
    """Minimum over ``axis``; ties share the gradient equally."""
    return _extremum("min", B.min, x, axis, keepdims, initial)


amax = max
amin = min


def _arg(op, fn, x, axis, keepdims):
    a = tensor(x, op)._data
    if axis is not None:
        axis = normalize_axis(axis, a.ndim, op)
        if len(axis) != 1:
            raise ValueError(f"{op}: axis must be an int or None, but received {axis!r}")
        axis = axis[0]
    if a.size == 0:
        raise ValueError(f"{op}: attempt to get {op} of an empty tensor (shape {a.shape})")
    return Tensor._wrap(B.astype(B.asarray(fn(a, axis=axis, keepdims=keepdims)), np.int32))


def argmax(x, axis=None, keepdims=False):
    """Index of the maximum along ``axis`` (of the flattened input when None), as int32."""
    return _arg("argmax", B.argmax, x, axis, keepdims)


def argmin(x, axis=None, keepdims=False):
    """Index of the minimum along ``axis``, as int32."""
    return _arg("argmin", B.argmin, x, axis, keepdims)


def var(x, axis=None, keepdims=False):
    """Population variance (ddof=0) over ``axis``; integers give float32."""
    from fastnn.autograd.ops import elementwise as ew

    t = float_tensor(x, "var")
    centered = ew.subtract(t, mean(t, axis=axis, keepdims=True))
    return mean(ew.square(centered), axis=axis, keepdims=keepdims)


def std(x, axis=None, keepdims=False):
    """Population standard deviation (ddof=0) over ``axis``."""
    from fastnn.autograd.ops import elementwise as ew

    return ew.sqrt(var(x, axis=axis, keepdims=keepdims))


def logsumexp(x, axis=None, keepdims=False):
    """log(sum(exp(x))) over ``axis``, computed stably (shifted by the maximum)."""
    t = float_tensor(x, "logsumexp")
    a = t._data
    axes = normalize_axis(axis, a.ndim, "logsumexp")
    if a.size == 0:
        with B.errstate(divide="ignore"):
            yk = B.log(B.sum(B.exp(a), axis=axes, keepdims=True))
    else:
        m = B.max(a, axis=axes, keepdims=True)
        m = B.where(B.isfinite(m), m, 0)
        with B.errstate(divide="ignore", invalid="ignore", over="ignore"):
            yk = B.add(B.log(B.sum(B.exp(B.subtract(a, m)), axis=axes, keepdims=True)), m)
    y = yk if keepdims else B.reshape(yk, [s for i, s in enumerate(yk.shape) if axes is not None and i not in axes])

    def backward(g, needs):
        gk = g if keepdims else B.reshape(g, yk.shape)
        with B.errstate(invalid="ignore", over="ignore"):
            return (B.multiply(gk, B.exp(B.subtract(a, yk))),)

    return record(y, (t,), backward, "logsumexp")


def cumsum(x, axis=None, dtype=None):
    """Cumulative sum along ``axis`` (of the flattened input when None)."""
    t = tensor(x, "cumsum", dtype=dtype)
    a = t._data
    if axis is None:
        y = B.cumsum(B.reshape(a, -1))

        def backward(g, needs):  # the reversed cumulative sum, back in the input's shape
            return (B.reshape(B.flip(B.cumsum(B.flip(g)), 0), a.shape),)
    else:
        ax = normalize_axis(axis, a.ndim, "cumsum")[0]
        y = B.cumsum(a, axis=ax, dtype=np.int32 if a.dtype == np.bool_ else None)

        def backward(g, needs):
            return (B.flip(B.cumsum(B.flip(g, ax), axis=ax), ax),)

    return record(y, (t,), backward, "cumsum")


def prod(x, axis=None, keepdims=False, dtype=None):
    """Product over ``axis``. Gradient: the product of the other elements (exact with zeros)."""
    t = tensor(x, "prod", dtype=dtype)
    a = t._data
    axes = normalize_axis(axis, a.ndim, "prod")
    y = B.prod(a, axis=axes, keepdims=keepdims)

    def backward(g, needs):
        gk = B.reshape(g, keepdims_shape(a.shape, axes)) if not keepdims else g
        # Product of all others = exclusive cumulative products from both sides, along the flattened reduced axes.
        moved = B.moveaxis(a, axes, tuple(range(-len(axes), 0))) if axes is not None else B.reshape(a, -1)
        nred = len(axes) if axes is not None else 1
        lead = moved.shape[: moved.ndim - nred]
        flat = B.reshape(moved, lead + ((-1,) if moved.size else (math.prod(moved.shape[len(lead):]),)))
        ones = B.ones(lead + (1,), a.dtype)
        # cumprod([1, f0, ..., f(n-1)]) without its last entry: n exclusive products (none for an empty axis).
        all_but_last = (Ellipsis, slice(None, -1))
        left = B.getitem(B.cumprod(B.concatenate([ones, flat], axis=-1), axis=-1), all_but_last)
        right = B.flip(B.getitem(B.cumprod(B.concatenate([ones, B.flip(flat, -1)], axis=-1), axis=-1), all_but_last),
                       -1)
        others = B.reshape(B.multiply(left, right), moved.shape)
        if axes is not None:
            others = B.moveaxis(others, tuple(range(-len(axes), 0)), axes)
        else:
            others = B.reshape(others, a.shape)
        return (B.multiply(gk, others),)

    return record(y, (t,), backward, "prod")
