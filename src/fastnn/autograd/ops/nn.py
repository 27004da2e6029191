"""Fused neural-network ops: ``dense`` = act(x @ kernel + bias) in one GEMM pass (bias and ReLU in the epilogue)."""
from __future__ import annotations

import math

from fastnn import backend as B
from fastnn.autograd.ops._util import float_tensor
from fastnn.autograd.tape import _state as _tape_state
from fastnn.autograd.tape import record
from fastnn.autograd.tensor import Tensor


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
    # Float Tensors (the layer's case) are used as they are; anything else goes through float_tensor.
    tx = x if isinstance(x, Tensor) and x._data.dtype.kind == "f" else float_tensor(x, op)
    tk = kernel if isinstance(kernel, Tensor) and kernel._data.dtype.kind == "f" else float_tensor(kernel, op)
    k = tk._data
    a = tx._data
    if a.dtype != k.dtype:
        a = B.astype(a, k.dtype)
    if a.ndim == 0 or a.shape[-1] != k.shape[0]:
        raise ValueError(f"dense: the last axis of x {a.shape} must match the first axis of the kernel {k.shape}")
    lead = a.shape[:-1]
    rows = math.prod(lead)
    units = k.shape[1]
    # Reshapes only when the shape changes (a 2-D x, the common case, skips them: less per-call overhead).
    a2 = B.contiguous(a if a.ndim == 2 else B.reshape(a, (rows, k.shape[0])))
    kc = B.contiguous(k)
    parents = (tx, tk)
    b = None
    tb = None
    if bias is not None:
        tb = bias if isinstance(bias, Tensor) and bias._data.dtype.kind == "f" else float_tensor(bias, op)
        b = tb._data
        b = B.contiguous(b if b.dtype == k.dtype else B.astype(b, k.dtype, copy=False))
        parents = parents + (tb,)
    relu = activation == "relu"
    if rows == 0:
        y = B.zeros((0, units), k.dtype)
    else:
        y = B.gemm(a2, kc, bias=b, activation="relu" if relu else "linear")
    out = y if a.ndim == 2 else B.reshape(y, lead + (units,))
    st = _tape_state
    if not st.grad_enabled or not (st.tapes or tx._requires_grad or tk._requires_grad or
                                   (tb is not None and tb._requires_grad)):
        # No graph can be recorded (record attaches none in exactly this case): no backward closure to build.
        return record(out, parents, None, "dense")

    def backward(g, needs):
        g2 = B.contiguous(g if g.ndim == 2 else B.reshape(g, (rows, units)))
        if relu:
            g2 = B.relu_mask_multiply(g2, y)
        out = []
        if needs[0]:
            if rows:
                gx = B.gemm(g2, kc, trans_b=True)
                out.append(gx if a.ndim == 2 else B.reshape(gx, a.shape))
            else:
                out.append(B.zeros(a.shape, a.dtype))
        else:
            out.append(None)
        if needs[1]:
            out.append(B.gemm(a2, g2, trans_a=True) if rows else B.zeros(k.shape, k.dtype))
        else:
            out.append(None)
        if b is not None:
            out.append(B.bias_add_backward(g2) if needs[2] else None)
        return tuple(out)

    return record(out, parents, backward, "dense")
