"""Fused neural-network ops: ``dense`` = act(x @ kernel + bias) in one GEMM pass (bias and ReLU in the epilogue)."""
from __future__ import annotations

import numpy as np

from fastnn import backend
from fastnn.autograd.ops._util import float_tensor
from fastnn.autograd.tape import record


def dense(x, kernel, bias=None, activation="linear"):
    """y = act(x @ kernel + bias) over the last axis of x, computed by one GEMM call with a fused epilogue.

    Args:
        x: (..., in) float tensor.
        kernel: (in, out) float tensor of x's dtype.
        bias: optional (out,) tensor.
        activation: "linear" or "relu" (the backward takes the ReLU mask from the output).

    Returns:
        (..., out) tensor.
    """
    op = "dense"
    tx = float_tensor(x, op)
    tk = float_tensor(kernel, op)
    k = tk._data
    a = tx._data
    if a.dtype != k.dtype:
        a = a.astype(k.dtype)
    if a.ndim == 0 or a.shape[-1] != k.shape[0]:
        raise ValueError(f"dense: the last axis of x {a.shape} must match the first axis of the kernel {k.shape}")
    lead = a.shape[:-1]
    rows = int(np.prod(lead))
    a2 = backend.contiguous(a.reshape(rows, k.shape[0]))
    kc = backend.contiguous(k)
    parents = (tx, tk)
    b = None
    if bias is not None:
        tb = float_tensor(bias, op)
        b = backend.contiguous(tb._data.astype(k.dtype, copy=False))
        parents = parents + (tb,)
    relu = activation == "relu"
    if rows == 0:
        y = np.zeros((0, k.shape[1]), k.dtype)
    else:
        y = backend.gemm(a2, kc, bias=b, activation="relu" if relu else "linear")

    def backward(g, needs):
        g2 = backend.contiguous(g.reshape(rows, k.shape[1]))
        if relu:
            g2 = g2 * (y > 0)
        out = []
        out.append(backend.gemm(g2, kc, trans_b=True).reshape(a.shape) if needs[0] and rows else
                   (np.zeros(a.shape, a.dtype) if needs[0] else None))
        out.append(backend.gemm(a2, g2, trans_a=True) if needs[1] and rows else
                   (np.zeros(k.shape, k.dtype) if needs[1] else None))
        if b is not None:
            out.append(backend.bias_add_backward(g2) if needs[2] else None)
        return tuple(out)

    return record(y.reshape(lead + (k.shape[1],)), parents, backward, "dense")
