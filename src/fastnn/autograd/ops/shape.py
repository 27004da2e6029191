"""Shape and indexing ops: reshape, transpose, expand_dims, squeeze, broadcast_to, concatenate, stack, split,
pad, tile, repeat, take, one_hot, indexing (``tensor[...]``), cast and identity.

View-producing ops (reshape, transpose, basic slicing) share the input's buffer, as NumPy does; tensors are
immutable, so the sharing is invisible except through ``Variable.assign``.
"""
from __future__ import annotations

import itertools
import numbers

import numpy as np

from fastnn import backend as B
from fastnn.autograd import dtypes
from fastnn.autograd.ops._util import int_shape, normalize_axis, promote, tensor
from fastnn.autograd.tape import record
from fastnn.autograd.tensor import Tensor


def identity(x):
    """The same values, as a new graph node (gradients pass through)."""
    t = tensor(x, "identity")
    return record(t._data, (t,), lambda g, needs: (g,), "identity")


def cast(x, dtype):
    """x converted to ``dtype``. Differentiable between float dtypes; a cast to an integer dtype has no gradient."""
    t = tensor(x, "cast")
    dt = dtypes.standardize_dtype(dtype, "cast")
    a = t._data
    if a.dtype == dt:
        return t
    y = B.astype(a, dt)
    if dt.kind != "f" or a.dtype.kind != "f":
        return Tensor._wrap(y)
    src_dtype = a.dtype
    return record(y, (t,), lambda g, needs: (B.astype(g, src_dtype),), "cast")


def reshape(x, newshape):
    """x with a new shape of the same size (one axis may be -1)."""
    t = tensor(x, "reshape")
    a = t._data
    shape = int_shape(newshape, "reshape")
    try:
        y = B.reshape(a, shape)
    except ValueError:
        raise ValueError(f"reshape: cannot reshape a tensor of shape {a.shape} (size {a.size}) into shape {shape}") from None
    in_shape = a.shape
    return record(y, (t,), lambda g, needs: (B.reshape(g, in_shape),), "reshape")


def transpose(x, axes=None):
    """Permutes the axes (reverses them when ``axes`` is None)."""
    t = tensor(x, "transpose")
    a = t._data
    if axes is None:
        axes = tuple(range(a.ndim))[::-1]
    else:
        axes = tuple(int(i) for i in axes)
        if sorted(i % max(a.ndim, 1) for i in axes) != list(range(a.ndim)) or len(axes) != a.ndim:
            raise ValueError(f"transpose: axes {axes} are not a permutation of the {a.ndim} axes of shape {a.shape}")
        axes = tuple(i % a.ndim for i in axes)
    inverse = tuple(sorted(range(len(axes)), key=axes.__getitem__))
    return record(B.transpose(a, axes), (t,), lambda g, needs: (B.transpose(g, inverse),), "transpose")


def moveaxis(x, source, destination):
    """Moves axes to new positions (NumPy ``moveaxis``)."""
    t = tensor(x, "moveaxis")
    nd = t.ndim

    def axes(a, arg):
        seq = tuple(a) if isinstance(a, (tuple, list)) else (a,)
        out = []
        for v in seq:
            if not isinstance(v, numbers.Integral) or isinstance(v, bool):
                raise TypeError(f"moveaxis: {arg} must be an int or a sequence of ints, but received {a!r}")
            if not -nd <= v < nd:
                raise ValueError(f"moveaxis: {arg} axis {v} is out of bounds for an input of rank {nd}")
            out.append(int(v) % nd)
        if len(set(out)) != len(out):
            raise ValueError(f"moveaxis: repeated axis in {arg} {a!r}")
        return out

    src, dst = axes(source, "source"), axes(destination, "destination")
    if len(src) != len(dst):
        raise ValueError(f"moveaxis: source {source!r} and destination {destination!r} must have the same number "
                         "of elements")
    # NumPy's algorithm: the remaining axes in order, then each moved axis inserted at its destination.
    order = [a for a in range(nd) if a not in src]
    for d, s_ in sorted(zip(dst, src)):
        order.insert(d, s_)
    return transpose(t, tuple(order))


def expand_dims(x, axis):
    """Inserts axes of length 1 at ``axis`` (an int or a tuple)."""
    t = tensor(x, "expand_dims")
    a = t._data
    try:
        y = B.expand_dims(a, axis)
    except (ValueError, IndexError) as exc:
        raise ValueError(f"expand_dims: invalid axis {axis!r} for an input of shape {a.shape}: {exc}") from None
    in_shape = a.shape
    return record(y, (t,), lambda g, needs: (B.reshape(g, in_shape),), "expand_dims")


def squeeze(x, axis=None):
    """Removes axes of length 1 (all of them when ``axis`` is None)."""
    t = tensor(x, "squeeze")
    a = t._data
    axes = normalize_axis(axis, a.ndim, "squeeze")
    if axes is not None:
        bad = [i for i in axes if a.shape[i] != 1]
        if bad:
            raise ValueError(f"squeeze: cannot squeeze axis {bad[0]} of shape {a.shape}: its length is not 1")
    y = B.squeeze(a, axis=axes)
    in_shape = a.shape
    return record(y, (t,), lambda g, needs: (B.reshape(g, in_shape),), "squeeze")


def broadcast_to(x, shape):
    """x broadcast to ``shape``."""
    t = tensor(x, "broadcast_to")
    a = t._data
    shape = int_shape(shape, "broadcast_to")
    try:
        y = B.broadcast_to(a, shape)
    except ValueError:
        raise ValueError(f"broadcast_to: cannot broadcast a tensor of shape {a.shape} to shape {shape}") from None
    in_shape = a.shape
    return record(y, (t,), lambda g, needs: (B.unbroadcast(g, in_shape),), "broadcast_to")


def concatenate(xs, axis=0):
    """Joins tensors along an existing axis."""
    if not isinstance(xs, (list, tuple)) or not xs:
        raise ValueError("concatenate: expected a non-empty list of tensors")
    ts, bufs = promote("concatenate", *xs)
    nd = bufs[0].ndim
    if nd == 0 or any(b.ndim != nd for b in bufs):
        raise ValueError(f"concatenate: all inputs need the same rank >= 1, but received shapes {[b.shape for b in bufs]}")
    ax = normalize_axis(axis, nd, "concatenate")[0]
    try:
        y = B.concatenate(bufs, axis=ax)
    except ValueError:
        raise ValueError(
            f"concatenate: the shapes {[b.shape for b in bufs]} must agree on every axis except axis {ax}"
        ) from None
    bounds = list(itertools.accumulate([0] + [b.shape[ax] for b in bufs]))

    def backward(g, needs):
        out = []
        for i, need in enumerate(needs):
            if need:
                idx = [slice(None)] * g.ndim
                idx[ax] = slice(bounds[i], bounds[i + 1])
                out.append(B.getitem(g, tuple(idx)))
            else:
                out.append(None)
        return tuple(out)

    return record(y, tuple(ts), backward, "concatenate")


def stack(x, axis=0):
    """Joins tensors of one shape along a new axis."""
    if not isinstance(x, (list, tuple)) or not x:
        raise ValueError("stack: expected a non-empty list of tensors")
    ts, bufs = promote("stack", *x)
    if any(b.shape != bufs[0].shape for b in bufs):
        raise ValueError(f"stack: all inputs must have the same shape, but received shapes {[b.shape for b in bufs]}")
    ax = normalize_axis(axis, bufs[0].ndim + 1, "stack")[0]
    y = B.stack(bufs, axis=ax)

    def backward(g, needs):
        return tuple(B.take(g, i, axis=ax) if need else None for i, need in enumerate(needs))

    return record(y, tuple(ts), backward, "stack")


def split(x, indices_or_sections, axis=0):
    """Splits x along ``axis`` into equal sections (an int) or at the given indices; returns a list.

    One graph node with one output per piece (views of x): its backward runs once and joins the pieces'
    gradients, zeros for the pieces that got none.
    """
    t = tensor(x, "split")
    a = t._data
    ax = normalize_axis(axis, a.ndim, "split")[0]
    n = a.shape[ax]
    if isinstance(indices_or_sections, numbers.Integral):
        k = int(indices_or_sections)
        if k <= 0 or n % k:
            raise ValueError(f"split: axis {ax} of length {n} (shape {a.shape}) cannot be split into {k} equal sections")
        bounds = [i * (n // k) for i in range(k + 1)]
    else:
        idx = [int(i) for i in indices_or_sections]
        bounds = [0] + [min(max(i if i >= 0 else i + n, 0), n) for i in idx] + [n]
    keys = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        key = [slice(None)] * a.ndim
        key[ax] = slice(lo, max(lo, hi))
        keys.append(tuple(key))
    pieces = tuple(B.getitem(a, key) for key in keys)
    # Increasing bounds (always, except for unsorted indices) tile the axis: the pieces' gradients are disjoint.
    # Unsorted indices give overlapping (and empty) pieces, whose gradients add up where they overlap.
    tiles = all(lo <= hi for lo, hi in zip(bounds[:-1], bounds[1:]))

    def backward(gs, needs):
        if tiles and all([g is not None for g in gs]):
            return (B.concatenate(gs, axis=ax),)
        gx = B.zeros(a.shape, a.dtype)  # zeros for the pieces that got no gradient
        for key, g in zip(keys, gs):
            if g is not None:
                B.setitem(gx, key, g if tiles else B.add(B.getitem(gx, key), g))
        return (gx,)

    return list(record(pieces, (t,), backward, "split"))


# NumPy boundary: normalises the user's pad_width (ints or nested sequences of ints, host data) to pairs
def _pad_pairs(pad_width, ndim: int) -> tuple:
    """pad_width as one (before, after) pair of Python ints per axis, broadcast as NumPy's ``pad`` does."""
    pairs = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (ndim, 2))
    return tuple((int(lo), int(hi)) for lo, hi in pairs.tolist())


def pad(x, pad_width, mode="constant", constant_values=None):
    """Pads x like NumPy's ``pad`` (modes constant, edge, reflect, symmetric, wrap are differentiable)."""
    t = tensor(x, "pad")
    a = t._data
    pairs = _pad_pairs(pad_width, a.ndim) if a.ndim else ()
    if any(lo < 0 or hi < 0 for lo, hi in pairs):
        raise ValueError(f"pad: pad_width must be non-negative, but received {pad_width!r}")
    # np.pad reads a 0-D input's empty pad_width only as a (0, 2) array (an empty tuple does not broadcast)
    pw = pairs if a.ndim else B.zeros((0, 2), np.int64)
    if mode == "constant":
        y = B.pad(a, pw, mode="constant", constant_values=0 if constant_values is None else constant_values)
        key = tuple(slice(lo, lo + s) for (lo, _), s in zip(pairs, a.shape))

        def backward(g, needs):
            return (B.getitem(g, key),)
    elif mode in ("edge", "reflect", "symmetric", "wrap"):
        if constant_values is not None:
            raise ValueError(f"pad: constant_values only applies to mode='constant', not {mode!r}")
        try:
            y = B.pad(a, pw, mode=mode)
        except ValueError as exc:
            raise ValueError(f"pad: {exc} (input shape {a.shape}, mode {mode!r})") from None
        # Each output element copies one input element: pad the input's flat indices the same way.
        src = B.reshape(B.pad(B.reshape(B.arange(a.size), a.shape), pw, mode=mode), (-1,))

        def backward(g, needs):
            summed = B.bincount(src, weights=B.reshape(g, (-1,)), minlength=a.size)
            return (B.reshape(B.astype(summed, a.dtype), a.shape),)
    else:
        raise ValueError(
            f"pad: mode must be one of 'constant', 'edge', 'reflect', 'symmetric', 'wrap', but received {mode!r}"
        )
    return record(y, (t,), backward, "pad")


def tile(x, repeats):
    """Repeats the whole of x ``repeats`` times along each axis (NumPy ``tile``)."""
    t = tensor(x, "tile")
    a = t._data
    reps = int_shape(repeats, "tile")
    if any(r < 0 for r in reps):
        raise ValueError(f"tile: repeats must be non-negative, but received {repeats!r}")
    y = B.tile(a, reps)
    nd = max(a.ndim, len(reps))
    shape = (1,) * (nd - a.ndim) + a.shape
    reps = (1,) * (nd - len(reps)) + reps

    def backward(g, needs):
        inter = []
        for r, s in zip(reps, shape):
            inter += [r, s]
        gx = B.sum(B.reshape(g, inter), axis=tuple(range(0, 2 * nd, 2)))
        return (B.reshape(gx, a.shape),)

    return record(y, (t,), backward, "tile")


def _index_buffer(indices):
    """An index argument (a Tensor, or host data: a list, a NumPy array, an int) as a buffer."""
    return indices._data if isinstance(indices, Tensor) else B.asarray(indices)


def repeat(x, repeats, axis=None):
    """Repeats each element (NumPy ``repeat``); ``repeats`` is an int or one count per element along axis."""
    t = tensor(x, "repeat")
    if axis is None:
        t = reshape(t, (-1,) if t.size else (0,))
        axis = 0
    ax = normalize_axis(axis, t.ndim, "repeat")[0]
    n = t.shape[ax]
    try:
        idx = B.repeat(B.arange(n), _index_buffer(repeats))
    except ValueError as exc:
        raise ValueError(f"repeat: {exc} (axis {ax} has length {n})") from None
    return take(t, idx, axis=ax)


def take(x, indices, axis=None):
    """Elements of x at ``indices`` along ``axis`` (of the flattened x when None); negative indices count from
    the end. Out-of-range indices raise IndexError."""
    t = tensor(x, "take")
    a = t._data
    idx = _index_buffer(indices)
    if idx.dtype.kind == "f":
        idx = B.astype(idx, np.int64)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"take: indices must be integers, but received dtype {idx.dtype}")
    if axis is None:
        flat = B.reshape(a, (-1,))
        try:
            y = B.take(flat, idx)
        except IndexError as exc:
            raise IndexError(f"take: {exc} (input shape {a.shape})") from None

        def backward(g, needs):
            gx = B.zeros(a.size, a.dtype)
            B.scatter_add(gx, idx, g)
            return (B.reshape(gx, a.shape),)
    else:
        ax = normalize_axis(axis, a.ndim, "take")[0]
        if ax == 0 and a.dtype.kind == "f" and a.size:  # row gathers (embedding tables) run on the C++ kernels
            from fastnn.autograd.ops.embedding import take_rows

            return take_rows(t, idx)
        try:
            y = B.take(a, idx, axis=ax)
        except IndexError as exc:
            raise IndexError(f"take: {exc} (input shape {a.shape}, axis {ax})") from None

        def backward(g, needs):
            gx = B.zeros(a.shape, a.dtype)
            B.scatter_add(gx, (slice(None),) * ax + (idx,), g)
            return (gx,)

    return record(y, (t,), backward, "take")


def one_hot(x, num_classes, axis=-1, dtype=None, sparse=False):
    """One-hot encoding of integer x: a new axis of length ``num_classes`` (float32 by default); indices outside
    [0, num_classes) give all-zero vectors (as in TensorFlow)."""
    if sparse:
        raise ValueError("one_hot: sparse=True is not supported")
    a = tensor(x, "one_hot")._data
    if a.dtype.kind not in "iub":
        raise TypeError(f"one_hot: x must hold integers, but received dtype {a.dtype}")
    dt = dtypes.standardize_dtype(dtype, "one_hot") or dtypes.floatx
    y = B.astype(B.equal(B.getitem(a, (Ellipsis, None)), B.arange(int(num_classes))), dt)
    ax = normalize_axis(axis, a.ndim + 1, "one_hot")[0]
    if ax != a.ndim:
        y = B.moveaxis(y, -1, ax)
    return Tensor._wrap(y)


# -- indexing ---------------------------------------------------------------------------------------------------
def _index_part(k):
    if isinstance(k, Tensor):
        return k._data
    if isinstance(k, (list, np.ndarray)):
        return B.asarray(k)  # host index data (a list, the user's NumPy array) becomes a buffer
    return k


def _is_basic(key) -> bool:
    for k in key:
        if k is None or k is Ellipsis or isinstance(k, slice):
            continue
        if isinstance(k, numbers.Integral) and not isinstance(k, (bool, np.bool_)):
            continue
        return False
    return True


def getitem(x, key):
    """``x[key]`` with NumPy semantics: ints, slices, None, Ellipsis, integer arrays and boolean masks.
    Repeated integer indices accumulate their gradients."""
    t = tensor(x, "getitem")
    a = t._data
    key = tuple(_index_part(k) for k in key) if isinstance(key, tuple) else (_index_part(key),)
    try:
        y = B.getitem(a, key)
    except IndexError as exc:
        raise IndexError(f"getitem: {exc} (tensor shape {a.shape})") from None
    basic = _is_basic(key)
    if not B.is_buffer(y):  # a single element comes back as a scalar: make it a 0-D buffer
        y = B.asarray(y)

    def backward(g, needs):
        gx = B.zeros(a.shape, a.dtype)
        if basic:
            B.setitem(gx, key, g)
        else:
            B.scatter_add(gx, key, g)
        return (gx,)

    return record(y, (t,), backward, "getitem")
