"""Fused neural-network ops: ``dense`` = act(x @ kernel + bias) in one GEMM pass (bias and ReLU in the epilogue)."""
from __future__ import annotations

import math

from fastnn import backend as B
from fastnn.autograd.ops._util import float_tensor
from fastnn.autograd.tape import _state as _tape_state
from fastnn.autograd.tape import record
from fastnn.autograd.tensor import Tensor


def _operands(x, kernel, op):
    """(x tensor, kernel tensor, x's buffer in the kernel's dtype, the kernel's buffer): float Tensors (the layers'
    case) are used as they are, anything else goes through float_tensor."""
    tx = x if isinstance(x, Tensor) and x._data.dtype.kind == "f" else float_tensor(x, op)
    tk = kernel if isinstance(kernel, Tensor) and kernel._data.dtype.kind == "f" else float_tensor(kernel, op)
    k = tk._data
    a = tx._data
    return tx, tk, (a if a.dtype == k.dtype else B.astype(a, k.dtype)), k


def _with_bias(parents, bias, k, op):
    """(parents with the bias tensor appended, the bias tensor, its contiguous buffer in the kernel k's dtype), or
    (parents, None, None) without a bias."""
    if bias is None:
        return parents, None, None
    tb = bias if isinstance(bias, Tensor) and bias._data.dtype.kind == "f" else float_tensor(bias, op)
    b = tb._data
    return parents + (tb,), tb, B.contiguous(b if b.dtype == k.dtype else B.astype(b, k.dtype, copy=False))


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
    tx, tk, a, k = _operands(x, kernel, op)
    if a.ndim == 0 or a.shape[-1] != k.shape[0]:
        raise ValueError(f"dense: the last axis of x {a.shape} must match the first axis of the kernel {k.shape}")
    lead = a.shape[:-1]
    rows = math.prod(lead)
    units = k.shape[1]
    # Reshapes only when the shape changes (a 2-D x, the common case, skips them: less per-call overhead).
    a2 = B.contiguous(a if a.ndim == 2 else B.reshape(a, (rows, k.shape[0])))
    kc = B.contiguous(k)
    parents, tb, b = _with_bias((tx, tk), bias, k, op)
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


def dense_kept_rows(x, kernel, bias, keep):
    """y = x @ kernel (+ bias) on the rows of x whose ``keep`` is True, +0 on the others: a recurrent layer's input
    projection under a mask, where a masked timestep's projection is never read (the recurrence carries the state
    over it), so its GEMM rows are not computed. The kept rows are gathered into one compact GEMM (each row's bits
    are the GEMM's on that compact matrix); the gradient reaching a skipped row of x is +0, and skipped rows add
    nothing to the kernel's and bias's gradients (the recurrence's gradient there is zero anyway).

    Args:
        x: (..., in) float tensor; kernel (in, out) of x's dtype; bias optional (out,).
        keep: bool tensor or buffer of x's leading shape (the layer's (B, T) mask).

    Returns:
        (..., out) tensor.
    """
    op = "dense_kept_rows"
    tx, tk, a, k = _operands(x, kernel, op)
    if a.ndim < 2 or a.shape[-1] != k.shape[0]:
        raise ValueError(f"{op}: x {a.shape} must be (..., {k.shape[0]}) to match the kernel {k.shape}")
    keep_buf = keep._data if isinstance(keep, Tensor) else keep
    lead = a.shape[:-1]
    if tuple(keep_buf.shape) != lead:
        raise ValueError(f"{op}: keep must have x's leading shape {lead}, but received {tuple(keep_buf.shape)}")
    rows, units, features = math.prod(lead), k.shape[1], k.shape[0]
    a2 = B.contiguous(B.reshape(a, (rows, features)))
    kc = B.contiguous(k)
    keep_flat = B.reshape(keep_buf if keep_buf.dtype == bool else B.not_equal(keep_buf, 0), (rows,))
    kept = B.flatnonzero(keep_flat)  # its length is data: only kernels see it, never the host
    parents, tb, b = _with_bias((tx, tk), bias, k, op)
    a_kept = B.take(a2, kept, axis=0)
    y = B.zeros((rows, units), k.dtype)
    B.setitem(y, kept, B.gemm(a_kept, kc, bias=b))
    out = B.reshape(y, lead + (units,))
    st = _tape_state
    if not st.grad_enabled or not (st.tapes or tx._requires_grad or tk._requires_grad or
                                   (tb is not None and tb._requires_grad)):
        return record(out, parents, None, op)

    def backward(g, needs):
        g_kept = B.take(B.reshape(g, (rows, units)), kept, axis=0)
        grads = []
        if needs[0]:
            gx = B.zeros((rows, features), k.dtype)
            B.setitem(gx, kept, B.gemm(g_kept, kc, trans_b=True))
            grads.append(B.reshape(gx, a.shape))
        else:
            grads.append(None)
        grads.append(B.gemm(a_kept, g_kept, trans_a=True) if needs[1] else None)
        if b is not None:
            grads.append(B.bias_add_backward(g_kept) if needs[2] else None)
        return tuple(grads)

    return record(out, parents, backward, op)
