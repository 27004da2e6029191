"""The fused recurrence over a whole sequence (LSTM, GRU, SimpleRNN) as ONE graph node with several outputs.

The input projection is not part of it: the layers compute ``xproj = x @ kernel (+ bias)`` for all timesteps with
one matmul first, so dx and dkernel come from that matmul's backward as two large GEMMs. This op runs the
recurrence on ``fastnn.backend.rnn_forward`` (per step the recurrent GEMM and the fused gates) and its backward on
``fastnn.backend.rnn_backward`` (backpropagation through time, the recurrent kernel's gradient as one GEMM after the
sweep). Masked timesteps carry the state and the previous output forward exactly as Keras does.

Example:
    >>> outputs, h, c = rnn_sequence("lstm", xproj, recurrent_kernel, h0, c0)   # xproj (B, T, 4U)
"""
from __future__ import annotations

from fastnn import backend as B
from fastnn.autograd import tape as _tape
from fastnn.autograd.ops._util import tensor
from fastnn.autograd.tape import record
from fastnn.autograd.tensor import Tensor

# Cell kind -> gates per unit (G): xproj has G * units columns, the recurrent kernel (units, G * units).
GATES = {"lstm": 4, "gru": 3, "gru_reset_before": 3, "simple_rnn": 1}


def _gradient_may_be_wanted(parents) -> bool:
    """Whether ``record`` will attach a node for these inputs (recording on, and an input requires grad or a recording
    tape is connected to one); when not, the forward keeps nothing for a backward pass. It registers the accessed
    trainable variables with the tapes exactly as ``record`` does."""
    st = _tape._state
    if not st.grad_enabled:
        return False
    req = False
    for p in parents:
        if p._requires_grad:
            req = True
            break
    if st.tapes:
        # No short-circuit: _connected also registers every accessed trainable variable with the tape.
        connected = [t for t in st.tapes if t._recording and any([t._connected(p) for p in parents])]
        if connected:
            return True
    return req


def rnn_sequence(cell, xproj, recurrent_kernel, h0, c0=None, *, mask=None, recurrent_masks=None,
                 recurrent_bias=None, activation="tanh", recurrent_activation="sigmoid", reverse=False,
                 zero_output_for_mask=False):
    """Runs a recurrent cell over a whole sequence; differentiable in xproj, recurrent_kernel, h0, c0 and the
    recurrent bias.

    Args:
        cell: "lstm", "gru" (reset_after=True), "gru_reset_before" or "simple_rnn".
        xproj: (B, T, G*U) tensor, the input projection x @ kernel (+ input bias) of every timestep.
        recurrent_kernel: (U, G*U) tensor.
        h0: (B, U) initial state; c0: (B, U) initial carry (lstm only, else None).
        mask: optional (B, T) bool tensor or buffer: False steps carry the states and the previous output.
        recurrent_masks: optional (M, B, U) dropout masks of the state (M = 1 shared, or M = G one per gate);
            constants (no gradient).
        recurrent_bias: optional (G*U,) tensor ("gru" only: the recurrent bias inside the reset product).
        activation, recurrent_activation: kernel activation kinds ("tanh", "sigmoid", ...).
        reverse: read the sequence from the last step to the first (go_backwards); outputs in processing order.
        zero_output_for_mask: outputs at masked steps are 0 instead of the previous output.

    Returns:
        (outputs (B, T, U), h_last (B, U), c_last (B, U)) for lstm, (outputs, h_last) otherwise.
    """
    op = "rnn_sequence"
    if cell not in GATES:
        raise ValueError(f"{op}: cell must be one of {sorted(GATES)}, but received {cell!r}")
    tx = tensor(xproj, op)
    tr = tensor(recurrent_kernel, op)
    th = tensor(h0, op)
    parents = [tx, tr, th]
    tc = None
    if cell == "lstm":
        if c0 is None:
            raise ValueError(f"{op}: the lstm cell needs c0 (the initial carry), but received None")
        tc = tensor(c0, op)
        parents.append(tc)
    elif c0 is not None:
        raise ValueError(f"{op}: only the lstm cell has a carry state, but c0 was given for cell {cell!r}")
    tb = None
    if recurrent_bias is not None:
        tb = tensor(recurrent_bias, op)
        parents.append(tb)
    parents = tuple(parents)
    mask_buf = None if mask is None else (mask._data if isinstance(mask, Tensor) else mask)
    rmask_buf = None if recurrent_masks is None else (
        recurrent_masks._data if isinstance(recurrent_masks, Tensor) else recurrent_masks)
    options = dict(mask=mask_buf, recurrent_masks=rmask_buf, recurrent_bias=None if tb is None else tb._data,
                   activation=activation, recurrent_activation=recurrent_activation, reverse=bool(reverse),
                   zero_output_for_mask=bool(zero_output_for_mask))
    save = _gradient_may_be_wanted(parents)
    outputs, h_last, c_last, workspace = B.rnn_forward(cell, tx._data, tr._data, th._data,
                                                       None if tc is None else tc._data,
                                                       save_for_backward=save, **options)
    kernel_data = tr._data

    def backward(gs, needs):
        d_outputs, d_h_last = gs[0], gs[1]
        d_c_last = gs[2] if cell == "lstm" else None
        d_x, d_r, d_h0, d_c0, d_rb = B.rnn_backward(cell, workspace, kernel_data, d_outputs, d_h_last, d_c_last,
                                                     **options)
        grads = [d_x if needs[0] else None, d_r if needs[1] else None, d_h0 if needs[2] else None]
        if tc is not None:
            grads.append(d_c0 if needs[len(grads)] else None)
        if tb is not None:
            grads.append(d_rb if needs[len(grads)] else None)
        return tuple(grads)

    buffers = (outputs, h_last, c_last) if cell == "lstm" else (outputs, h_last)
    return record(buffers, parents, backward, f"rnn_{cell}")
