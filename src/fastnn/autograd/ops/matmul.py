"""Matrix products on fastnn's GEMM: matmul (NumPy semantics, batched, broadcasting) and dot."""
from __future__ import annotations

import math

import numpy as np

from fastnn import backend as B
from fastnn.autograd import dtypes
from fastnn.autograd.tape import record
from fastnn.autograd.tensor import Tensor



def _as_float_array(x, op: str, arg: str):
    """x's buffer as float32/float64 without copying; Python data becomes float32 (Keras's floatx)."""
    if isinstance(x, Tensor):
        array = x._data
    elif isinstance(x, (np.ndarray, np.generic)):
        array = B.asarray(x)
    else:
        try:
            array = B.asarray(x, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{op}: {arg} must be an array of numbers, but received {type(x).__name__}") from exc
    array = B.native(array)
    if array.dtype not in dtypes.KERNEL_FLOAT_DTYPES:
        raise TypeError(f"{op}: {arg} must be float32 or float64, but received dtype {array.dtype}")
    return array


def _check_matmul_shapes(shape1, shape2):
    """Raises ValueError naming both shapes unless NumPy's matmul accepts them (ranks >= 1, inner dimensions
    equal, leading axes broadcastable)."""
    if not shape1 or not shape2:
        raise ValueError(f"matmul: inputs must have at least 1 dimension, but received shapes {shape1} and {shape2}")
    k1 = shape1[-1]
    k2 = shape2[-2] if len(shape2) > 1 else shape2[0]
    if k1 != k2:
        raise ValueError(
            f"matmul: inner dimensions differ: x1 has shape {shape1} (K = {k1}) and x2 has shape {shape2} (K = {k2})"
        )
    try:
        B.broadcast_shapes(shape1[:-2], shape2[:-2])
    except ValueError:
        raise ValueError(
            f"matmul: the leading (batch) axes of x1 {shape1} and x2 {shape2} cannot be broadcast"
        ) from None


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
    shape1, shape2 = a.shape, b.shape
    if a.dtype != b.dtype:
        dtype = np.promote_types(a.dtype, b.dtype)
        a, b = B.astype(a, dtype, copy=False), B.astype(b, dtype, copy=False)
    if a.ndim != 2 or b.ndim != 2 or shape1[1] != shape2[0]:
        _check_matmul_shapes(shape1, shape2)
    y = B.gemm_matmul(a, b)
    t1 = x1 if isinstance(x1, Tensor) else Tensor._wrap(a)
    t2 = x2 if isinstance(x2, Tensor) else Tensor._wrap(b)

    def backward(g, needs):
        if a.ndim == 1 and b.ndim == 1:  # inner product: g is 0-D
            return (B.multiply(g, b) if needs[0] else None, B.multiply(g, a) if needs[1] else None)
        a2 = B.reshape(a, (1,) + a.shape) if a.ndim == 1 else a
        b2 = B.reshape(b, b.shape + (1,)) if b.ndim == 1 else b
        g2 = g
        if a.ndim == 1:
            g2 = B.expand_dims(g2, -2)
        if b.ndim == 1:
            g2 = B.expand_dims(g2, -1)
        ga = gb = None
        # The 2-D case (no broadcasting, no promoted axis) skips unbroadcast and reshape: less per-call overhead.
        if needs[0]:
            ga = B.gemm_matmul(g2, B.swapaxes(b2, -1, -2))
            if a.ndim != 2 or b.ndim != 2:
                ga = B.reshape(B.unbroadcast(ga, a2.shape), a.shape)
        if needs[1]:
            gb = B.gemm_matmul(B.swapaxes(a2, -1, -2), g2)
            if a.ndim != 2 or b.ndim != 2:
                gb = B.reshape(B.unbroadcast(gb, b2.shape), b.shape)
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
    rest2 = math.prod(s for i, s in enumerate(t2.shape) if i != t2.ndim - 2)
    rows1 = math.prod(t1.shape[:-1])
    b2 = shape.reshape(shape.transpose(t2, perm), (k, rest2))
    out = matmul(shape.reshape(t1, (rows1, k)), b2)
    return shape.reshape(out, t1.shape[:-1] + t2.shape[:-2] + t2.shape[-1:])
