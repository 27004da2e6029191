"""Embedding lookup: the rows of a (V, D) table at integer indices, on the backend's ``embedding_gather`` kernel; the
backward is the dense scatter-add ``embedding_scatter_add`` (the rows of repeated indices summed in index order, the
same bits for every thread count).

What Keras's optimizers see differs: on TensorFlow the gradient of a lookup is ``tf.IndexedSlices``, one row per
lookup, and Keras's optimizers apply ``ops.square`` / ``ops.abs`` to it slice by slice before the slices are summed
into a dense slot. So Adam's velocity (and the squared-gradient slots of Adagrad, RMSprop, Nadam, Adadelta, Ftrl,
Lamb, Adafactor; Adamax's |g|) of an embedding table grow by sum_i g_i^2 over the lookups of each row, not by
(sum_i g_i)^2. Each dense gradient this backward returns is therefore registered with its lookup rows
(:func:`lookup_row_sums` computes those per-row sums on demand); the optimizers use them for a gradient that reaches
them unchanged (nothing else added to it: a regularizer's or a dense use's gradient makes it dense in Keras too).
"""
from __future__ import annotations

import weakref

import numpy as np

from fastnn import backend as B
from fastnn.backend import recording
from fastnn.autograd.dtypes import KERNEL_FLOAT_DTYPES
from fastnn.autograd.ops._util import tensor
from fastnn.autograd.tape import record
from fastnn.autograd.tensor import Tensor



# id(dense gradient buffer) -> (weak reference to it, the lookup's (d_out, indices, V))
_ROW_SUMS: dict = {}


def _register_lookup_rows(grad, d_out, idx, num_rows):
    key = id(grad)

    def forget(_ref, key=key):
        _ROW_SUMS.pop(key, None)

    _ROW_SUMS[key] = (weakref.ref(grad, forget), (d_out, idx, num_rows))


def lookup_row_sums(grad, statistic="square"):
    """(V, D) sums over the lookups of each table row of ``statistic`` ("square": g_i^2, "abs": |g_i|) of the
    gradient rows, when ``grad`` is exactly a dense gradient returned by an embedding lookup's backward (the same
    buffer, nothing added); else None. This is what Keras's optimizers add up for TensorFlow's IndexedSlices
    gradients, where ops.square / ops.abs act on each lookup's slice before the slices are summed."""
    entry = _ROW_SUMS.get(id(grad))
    if entry is None or entry[0]() is not grad:
        return None
    d_out, idx, num_rows = entry[1]
    values = B.multiply(d_out, d_out) if statistic == "square" else B.abs(d_out)
    return B.embedding_scatter_add(values, idx, num_rows)


def row_square_sums(grad):
    """:func:`lookup_row_sums` of the squares (Adam's, Adagrad's, RMSprop's g * g for an embedding table)."""
    return lookup_row_sums(grad, "square")


def index_buffer(indices, op):
    """An integer index argument (a Tensor or host data) as a buffer; floats are refused (the caller casts)."""
    idx = indices._data if isinstance(indices, Tensor) else B.asarray(indices)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{op}: indices must be integers, but received dtype {idx.dtype}")
    return idx


def embedding_lookup(table, indices):
    """``table[indices]``: (*indices.shape, D) rows of the (V, D) ``table``, differentiable in ``table``.

    Args:
        table: (V, D) float tensor (any float dtype; float32 / float64 run on the C++ kernels, others in float32).
        indices: integer tensor or array of any shape, every entry in [0, V).

    Raises ValueError (naming embedding_gather, the first bad value and V) for an index outside [0, V).

    Example:
        >>> embedding_lookup(fastnn.ops.arange(6.0).reshape((3, 2)), [[2, 0]]).numpy()
        array([[[4., 5.],
                [0., 1.]]], dtype=float32)
    """
    t = tensor(table, "embedding_lookup")
    if t.ndim != 2:
        raise ValueError(f"embedding_lookup: table must be 2-D (V, D), but received shape {tuple(t.shape)}")
    if t.dtype.kind != "f":
        raise TypeError(f"embedding_lookup: table must be a float tensor, but received dtype {t.dtype}")
    idx = index_buffer(indices, "embedding_lookup")
    return _gather_rows(t, idx, "embedding_lookup")


def _gather_rows(t, idx, name):
    """The recorded gather of rows of the 2-D float tensor t (its backward beside it)."""
    dtype = t._data.dtype
    work = dtype if dtype in KERNEL_FLOAT_DTYPES else np.dtype(np.float32)
    a = t._data if work == dtype else B.astype(t._data, work)
    num_rows = t.shape[0]
    y = B.embedding_gather(a, idx)
    if work != dtype:
        y = B.astype(y, dtype)

    def backward(g, needs):
        g = g if g.dtype == work else B.astype(g, work)
        dt = B.embedding_scatter_add(g, idx, num_rows)
        if work != dtype:
            return (B.astype(dt, dtype),)
        # Host bookkeeping a compiled step's plan repeats (backend/recording.py), or replays would lose it.
        recording.run_at_replay(_register_lookup_rows, dt, g, idx, num_rows)
        return (dt,)

    return record(y, (t,), backward, name)


def take_rows(t, idx):
    """``take(t, idx, axis=0)`` of a float tensor on the embedding kernels (t of any rank >= 1 seen as (V, rest)):
    negative indices count from the end; an index outside [-V, V) raises IndexError as take's NumPy path does."""
    from fastnn.autograd.ops.shape import reshape

    shape = tuple(t.shape)
    rows = shape[0]
    if idx.size and B.item(B.any(B.less(idx, 0))):
        idx = B.where(B.less(idx, 0), B.add(idx, rows), idx)
    flat = reshape(t, (rows, -1)) if t.ndim != 2 else t
    try:
        y = _gather_rows(flat, idx, "take")
    except ValueError as exc:
        raise IndexError(f"take: {exc} (input shape {shape}, axis 0)") from None
    return reshape(y, tuple(idx.shape) + shape[1:]) if t.ndim != 2 else y
