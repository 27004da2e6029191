"""Matrix products on fastnn's GEMM: matmul (NumPy semantics, batched, broadcasting) and dot."""
from __future__ import annotations

import numpy as np

from fastnn import backend
from fastnn.autograd import dtypes
from fastnn.autograd.ops._util import unbroadcast
from fastnn.autograd.tape import record
from fastnn.autograd.tensor import Tensor

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _as_float_array(x, op: str, arg: str) -> np.ndarray:
    """x's buffer as float32/float64 without copying; Python data becomes float32 (Keras's floatx)."""
    if isinstance(x, Tensor):
        array = x._data
    elif isinstance(x, np.ndarray):
        array = x
    elif isinstance(x, np.generic):
        array = np.asarray(x)
    else:
        try:
            array = np.asarray(x, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{op}: {arg} must be an array of numbers, but received {type(x).__name__}") from exc
    array = backend.native(array)
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


def matmul_arrays(a: np.ndarray, b: np.ndarray, shape1=None, shape2=None) -> np.ndarray:
    """NumPy ``matmul`` of two float buffers of one dtype, on the GEMM kernel (no autograd)."""
    if a.ndim == 2 and b.ndim == 2 and a.shape[1] == b.shape[0] and a.size and b.size:
        # The common case (a Dense layer, and its backward products) goes straight to the kernel.
        if a.strides[1] == a.itemsize and b.strides[1] == b.itemsize:
            return backend.gemm(a, b)
        sa, trans_a = _gemm_operand(a)
        sb, trans_b = _gemm_operand(b)
        return backend.gemm(sa, sb, trans_a=trans_a, trans_b=trans_b)
    shape1 = a.shape if shape1 is None else shape1
    shape2 = b.shape if shape2 is None else shape2
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(
            f"matmul: inputs must have at least 1 dimension, but received shapes {a.shape} and {b.shape}"
        )
    squeeze_m = a.ndim == 1
    squeeze_n = b.ndim == 1
    if squeeze_m:
        a = a[np.newaxis, :]
    if squeeze_n:
        b = b[:, np.newaxis]
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(
            f"matmul: inner dimensions differ: x1 has shape {shape1} (K = {a.shape[-1]}) and x2 has shape "
            f"{shape2} (K = {b.shape[-2]})"
        )
    try:
        batch_shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(
            f"matmul: the leading (batch) axes of x1 {shape1} and x2 {shape2} cannot be broadcast"
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


def matmul(x1, x2):
    """Matrix product with NumPy's ``matmul`` semantics, computed by fastnn's GEMM; differentiable.

    Args:
        x1: array of shape (..., M, K), or (K,) (promoted to (1, K) and the axis removed afterwards).
        x2: array of shape (..., K, N), or (K,) (promoted to (K, 1)).
            Leading axes broadcast against each other. float32 and float64 (mixed inputs give float64); integer,
            bool and float16 inputs raise TypeError.

    Returns:
        Tensor of shape broadcast(...) + (M, N), with the promoted axes removed.

    Example:
        >>> matmul(np.ones((5, 2, 3), np.float32), np.ones((3, 4), np.float32)).shape
        (5, 2, 4)
    """
    a = _as_float_array(x1, "matmul", "x1")
    b = _as_float_array(x2, "matmul", "x2")
    shape1, shape2 = np.shape(a), np.shape(b)
    if a.dtype != b.dtype:
        dtype = np.promote_types(a.dtype, b.dtype)
        a, b = a.astype(dtype, copy=False), b.astype(dtype, copy=False)
    y = matmul_arrays(a, b, shape1, shape2)
    t1 = x1 if isinstance(x1, Tensor) else Tensor._wrap(a)
    t2 = x2 if isinstance(x2, Tensor) else Tensor._wrap(b)

    def backward(g, needs):
        if a.ndim == 1 and b.ndim == 1:  # inner product: g is 0-D
            return (g * b if needs[0] else None, g * a if needs[1] else None)
        a2 = a[np.newaxis, :] if a.ndim == 1 else a
        b2 = b[:, np.newaxis] if b.ndim == 1 else b
        g2 = g
        if a.ndim == 1:
            g2 = np.expand_dims(g2, -2)
        if b.ndim == 1:
            g2 = np.expand_dims(g2, -1)
        ga = gb = None
        if needs[0]:
            ga = unbroadcast(matmul_arrays(g2, np.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape)
        if needs[1]:
            gb = unbroadcast(matmul_arrays(np.swapaxes(a2, -1, -2), g2), b2.shape).reshape(b.shape)
        return ga, gb

    return record(y, (t1, t2), backward, "matmul")


def dot(x1, x2):
    """NumPy ``dot``: scalars multiply, 1-D/2-D operands are matrix products, N-D x1 with N-D x2 sums over the
    last axis of x1 and the second-to-last of x2."""
    from fastnn.autograd.ops import elementwise, shape

    t1 = x1 if isinstance(x1, Tensor) else Tensor._wrap(dtypes.to_buffer(x1, op="dot"))
    t2 = x2 if isinstance(x2, Tensor) else Tensor._wrap(dtypes.to_buffer(x2, op="dot"))
    if t1.ndim == 0 or t2.ndim == 0:
        return elementwise.multiply(t1, t2)
    if t2.ndim <= 2:
        return matmul(t1, t2)
    k = t2.shape[-2]
    if t1.shape[-1] != k:
        raise ValueError(f"dot: shapes {t1.shape} and {t2.shape} are not aligned: {t1.shape[-1]} (dim {t1.ndim - 1}) "
                         f"!= {k} (dim {t2.ndim - 2})")
    # Move x2's contraction axis to the front: (K, j..., N) -> (K, J*N), a 2-D product, then reshape. Sizes are
    # explicit because reshape(-1) is ambiguous for zero-size tensors.
    perm = (t2.ndim - 2,) + tuple(i for i in range(t2.ndim) if i != t2.ndim - 2)
    rest2 = int(np.prod([s for i, s in enumerate(t2.shape) if i != t2.ndim - 2]))
    rows1 = int(np.prod(t1.shape[:-1]))
    b2 = shape.reshape(shape.transpose(t2, perm), (k, rest2))
    out = matmul(shape.reshape(t1, (rows1, k)), b2)
    return shape.reshape(out, t1.shape[:-1] + t2.shape[:-2] + t2.shape[-1:])
