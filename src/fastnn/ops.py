"""The keras.ops-style functional API (same names and signatures as ``keras.ops``).

Only ``matmul`` exists so far; the rest of keras.ops arrives with the autograd tensor.
"""
from __future__ import annotations

import numpy as np

from fastnn import backend

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _as_float_array(x, op: str, arg: str) -> np.ndarray:
    """Returns x as a float32/float64 ndarray without copying arrays; Python data becomes float32 (Keras's floatx)."""
    if isinstance(x, np.ndarray):
        array = x
    elif isinstance(x, np.generic):
        array = np.asarray(x)
    else:
        try:
            array = np.asarray(x, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{op}: {arg} must be an array of numbers, but received {type(x).__name__}") from exc
    if array.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{op}: {arg} must be float32 or float64, but received dtype {array.dtype}")
    return array


def _gemm_ready(x: np.ndarray) -> np.ndarray:
    """x is (batch, rows, cols): returns it unchanged when each matrix has a unit stride along one of its
    axes (GEMM reads it directly, transposed if needed), else a contiguous copy."""
    rows, cols = x.shape[1:]
    row_stride, col_stride = x.strides[1:]
    item = x.itemsize
    if all(s % item == 0 for s in x.strides) and (
        col_stride == item or cols == 1 or row_stride == item or rows == 1
    ):
        return x
    return np.ascontiguousarray(x)


def _gemm_operand(x: np.ndarray):
    """A 2-D array as GEMM storage: (array contiguous along its last axis, transposed flag), copying only
    when neither axis has a unit stride."""
    item = x.itemsize
    rows, cols = x.shape
    if x.strides[1] == item or cols == 1:
        return x, False
    if x.strides[0] == item or rows == 1:
        return x.T, True
    return np.ascontiguousarray(x), False


def matmul(x1, x2):
    """Matrix product with NumPy's ``matmul`` semantics, computed by fastnn's GEMM.

    Args:
        x1: array of shape (..., M, K), or (K,) (promoted to (1, K) and the axis removed afterwards).
        x2: array of shape (..., K, N), or (K,) (promoted to (K, 1)).
            Leading axes broadcast against each other. float32 and float64 (mixed inputs give float64).

    Returns:
        ndarray of shape broadcast(...) + (M, N), with the promoted axes removed.

    Example:
        >>> matmul(np.ones((5, 2, 3), np.float32), np.ones((3, 4), np.float32)).shape
        (5, 2, 4)
    """
    if (
        type(x1) is np.ndarray and type(x2) is np.ndarray and x1.ndim == 2 and x2.ndim == 2
        and x1.dtype == x2.dtype and x1.dtype.char in "fd" and x1.shape[1] == x2.shape[0]
        and x1.strides[1] == x1.itemsize and x2.strides[1] == x2.itemsize and x1.size and x2.size
    ):
        return backend.gemm(x1, x2)  # the hot case (a Dense layer): no further bookkeeping
    a = _as_float_array(x1, "matmul", "x1")
    b = _as_float_array(x2, "matmul", "x2")
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(
            f"matmul: inputs must have at least 1 dimension, but received shapes {a.shape} and {b.shape}"
        )
    if a.dtype != b.dtype:
        dtype = np.promote_types(a.dtype, b.dtype)
        a, b = a.astype(dtype, copy=False), b.astype(dtype, copy=False)
    if a.ndim == 2 and b.ndim == 2 and a.shape[1] == b.shape[0] and a.size and b.size:
        # The common case (a Dense layer) goes straight to the kernel: no batch bookkeeping.
        sa, trans_a = _gemm_operand(a)
        sb, trans_b = _gemm_operand(b)
        return backend.gemm(sa, sb, trans_a=trans_a, trans_b=trans_b)
    squeeze_m = a.ndim == 1
    squeeze_n = b.ndim == 1
    if squeeze_m:
        a = a[np.newaxis, :]
    if squeeze_n:
        b = b[:, np.newaxis]
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(
            f"matmul: inner dimensions differ: x1 has shape {np.shape(x1)} (K = {a.shape[-1]}) and x2 has shape "
            f"{np.shape(x2)} (K = {b.shape[-2]})"
        )
    try:
        batch_shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(
            f"matmul: the leading (batch) axes of x1 {np.shape(x1)} and x2 {np.shape(x2)} cannot be broadcast"
        ) from None
    m, n = a.shape[-2], b.shape[-1]
    batch = int(np.prod(batch_shape))  # explicit: reshape(-1, ...) is ambiguous for zero-size arrays
    a3 = np.broadcast_to(a, batch_shape + a.shape[-2:]).reshape((batch,) + a.shape[-2:])
    b3 = np.broadcast_to(b, batch_shape + b.shape[-2:]).reshape((batch,) + b.shape[-2:])
    out = backend.batched_matmul(_gemm_ready(a3), _gemm_ready(b3)).reshape(batch_shape + (m, n))
    if squeeze_m:
        out = out[..., 0, :]
    if squeeze_n:
        out = out[..., 0]
    return out
