"""Reductions: sum, mean, max, min, argmax, argmin, var, std, logsumexp, cumsum.

``axis`` is None (all axes), an int or a tuple of ints; ``keepdims`` keeps reduced axes with length 1.
"""
from __future__ import annotations

import numpy as np

from fastnn.autograd.ops._util import float_tensor, keepdims_shape, normalize_axis, tensor, xp
from fastnn.autograd.tape import record
from fastnn.autograd.tensor import Tensor


def _expand(g, shape, axes, keepdims):
    """The gradient of a reduction's output, broadcast back to the input shape (a read-only view)."""
    if not keepdims:
        g = g.reshape(keepdims_shape(shape, axes))
    return xp.broadcast_to(g, shape)


def sum(x, axis=None, keepdims=False):  # noqa: A001 - keras.ops name
    """Sum over ``axis``. Booleans sum to int32."""
    t = tensor(x, "sum")
    a = t._data
    axes = normalize_axis(axis, a.ndim, "sum")
    dtype = np.int32 if a.dtype == np.bool_ else None
    y = xp.asarray(xp.sum(a, axis=axes, keepdims=keepdims, dtype=dtype))

    def backward(g, needs):
        return (_expand(g, a.shape, axes, keepdims),)

    return record(y, (t,), backward, "sum")


def mean(x, axis=None, keepdims=False):
    """Mean over ``axis`` (integers give float32)."""
    t = float_tensor(x, "mean")
    a = t._data
    axes = normalize_axis(axis, a.ndim, "mean")
    count = a.size if axes is None else int(np.prod([a.shape[i] for i in axes]))
    with np.errstate(invalid="ignore", divide="ignore"):
        y = xp.asarray(xp.sum(a, axis=axes, keepdims=keepdims) / a.dtype.type(count) if count else
                       xp.full(np.sum(a, axis=axes, keepdims=keepdims).shape, np.nan, a.dtype))

    def backward(g, needs):
        return (_expand(g / a.dtype.type(count or 1), a.shape, axes, keepdims),)

    return record(y, (t,), backward, "mean")


def _extremum(op, fn, x, axis, keepdims, initial):
    t = tensor(x, op)
    a = t._data
    axes = normalize_axis(axis, a.ndim, op)
    try:
        y = xp.asarray(fn(a, axis=axes, keepdims=keepdims) if initial is None else
                       fn(a, axis=axes, keepdims=keepdims, initial=initial))
    except ValueError as exc:
        raise ValueError(f"{op}: {exc} (input shape {a.shape}; pass `initial` to reduce empty axes)") from None

    def backward(g, needs):
        # The gradient is shared equally among the elements that attain the extremum (as TensorFlow does).
        yk = y if keepdims else y.reshape(keepdims_shape(a.shape, axes))
        gk = g if keepdims else g.reshape(keepdims_shape(a.shape, axes))
        mask = a == yk
        count = xp.sum(mask, axis=axes, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (xp.where(mask, gk / count, 0).astype(a.dtype, copy=False),)

    return record(y, (t,), backward, op)


def max(x, axis=None, keepdims=False, initial=None):  # noqa: A001
    """Maximum over ``axis``; ties share the gradient equally."""
    return _extremum("max", xp.max, x, axis, keepdims, initial)


def min(x, axis=None, keepdims=False, initial=None):  # noqa: A001
    """Minimum over ``axis``; ties share the gradient equally."""
    return _extremum("min", xp.min, x, axis, keepdims, initial)


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
    return Tensor._wrap(xp.asarray(fn(a, axis=axis, keepdims=keepdims)).astype(np.int32))


def argmax(x, axis=None, keepdims=False):
    """Index of the maximum along ``axis`` (of the flattened input when None), as int32."""
    return _arg("argmax", xp.argmax, x, axis, keepdims)


def argmin(x, axis=None, keepdims=False):
    """Index of the minimum along ``axis``, as int32."""
    return _arg("argmin", xp.argmin, x, axis, keepdims)


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
        with np.errstate(divide="ignore"):
            yk = xp.log(xp.sum(xp.exp(a), axis=axes, keepdims=True))
    else:
        m = xp.max(a, axis=axes, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            yk = xp.log(xp.sum(xp.exp(a - m), axis=axes, keepdims=True)) + m
    y = yk if keepdims else yk.reshape([s for i, s in enumerate(yk.shape) if axes is not None and i not in axes])

    def backward(g, needs):
        gk = g if keepdims else g.reshape(yk.shape)
        with np.errstate(invalid="ignore", over="ignore"):
            return (gk * xp.exp(a - yk),)

    return record(xp.asarray(y), (t,), backward, "logsumexp")


def cumsum(x, axis=None, dtype=None):
    """Cumulative sum along ``axis`` (of the flattened input when None)."""
    t = tensor(x, "cumsum", dtype=dtype)
    a = t._data
    if axis is None:
        flat = a.reshape(-1)
        y = xp.cumsum(flat)

        def backward(g, needs):
            return (xp.flip(xp.cumsum(xp.flip(g)), 0).reshape(a.shape),)
    else:
        ax = normalize_axis(axis, a.ndim, "cumsum")[0]
        y = xp.cumsum(a, axis=ax, dtype=np.int32 if a.dtype == np.bool_ else None)

        def backward(g, needs):
            return (xp.flip(xp.cumsum(xp.flip(g, ax), axis=ax), ax),)

    return record(y, (t,), backward, "cumsum")


def prod(x, axis=None, keepdims=False, dtype=None):
    """Product over ``axis``. Gradient: the product of the other elements (exact with zeros)."""
    t = tensor(x, "prod", dtype=dtype)
    a = t._data
    axes = normalize_axis(axis, a.ndim, "prod")
    y = xp.asarray(xp.prod(a, axis=axes, keepdims=keepdims))

    def backward(g, needs):
        gk = g.reshape(keepdims_shape(a.shape, axes)) if not keepdims else g
        # Product of all others = exclusive cumulative products from both sides, along the flattened reduced axes.
        moved = xp.moveaxis(a, axes, tuple(range(-len(axes), 0))) if axes is not None else a.reshape(-1)
        nred = len(axes) if axes is not None else 1
        lead = moved.shape[: moved.ndim - nred]
        flat = moved.reshape(lead + (-1,)) if moved.size else moved.reshape(lead + (int(np.prod(moved.shape[len(lead):])),))
        ones = xp.ones(lead + (1,), a.dtype)
        left = xp.cumprod(xp.concatenate([ones, flat[..., :-1]], axis=-1), axis=-1)
        right = xp.flip(xp.cumprod(xp.concatenate([ones, xp.flip(flat, -1)[..., :-1]], axis=-1), axis=-1), -1)
        others = (left * right).reshape(moved.shape)
        if axes is not None:
            others = xp.moveaxis(others, tuple(range(-len(axes), 0)), axes)
        else:
            others = others.reshape(a.shape)
        return (gk * others,)

    return record(y, (t,), backward, "prod")
