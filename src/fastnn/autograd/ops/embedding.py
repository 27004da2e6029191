"""Embedding lookup: the rows of a (V, D) table at integer indices, on the backend's ``embedding_gather`` kernel; the
backward is the dense scatter-add ``embedding_scatter_add`` (the rows of repeated indices summed in index order, the
same bits for every thread count), a (V, D) gradient like the one Keras's optimizers receive once TensorFlow's
IndexedSlices are made dense.
"""
from __future__ import annotations

import numpy as np

from fastnn import backend as B
from fastnn.autograd.ops._util import tensor
from fastnn.autograd.tape import record
from fastnn.autograd.tensor import Tensor

_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


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
    work = dtype if dtype in _KERNEL_DTYPES else np.dtype(np.float32)
    a = t._data if work == dtype else B.astype(t._data, work)
    num_rows = t.shape[0]
    y = B.embedding_gather(a, idx)
    if work != dtype:
        y = B.astype(y, dtype)

    def backward(g, needs):
        g = g if g.dtype == work else B.astype(g, work)
        dt = B.embedding_scatter_add(g, idx, num_rows)
        return (dt if work == dtype else B.astype(dt, dtype),)

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
