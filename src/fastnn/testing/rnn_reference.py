"""A plain NumPy implementation of the recurrence kernel contract (rnn_forward / rnn_backward), written for
clarity, not speed: the specification the C++ kernels (fastnn._C.rnn_forward / rnn_backward) are tested against,
and what the recurrent layers can be developed against.

The input projection is not part of the recurrence: callers pass xproj = x @ W (+ bias), shape (B, T, G*U), and
the kernel runs, per step s in processing order (input time t = s, or T-1-s when reverse):

    lstm (G = 4, gates i, f, c, o):          z = xproj_t + [(h*m_k) @ R_k]_k
        i, f, o = ra(z_i), ra(z_f), ra(z_o); g = act(z_c); c' = f*c + i*g; h' = o*act(c')
    gru (reset_after, G = 3, gates z, r, h): rec = [(h*m_k) @ R_k]_k + recurrent_bias
        z = ra(x_z + rec_z); r = ra(x_r + rec_r); hh = act(x_h + r*rec_h); h' = z*h + (1-z)*hh
    gru_reset_before (G = 3):                z = ra(x_z + (h*m_0) @ R_z); r = ra(x_r + (h*m_1) @ R_r)
                                             hh = act(x_h + (r*h*m_2) @ R_h); h' = z*h + (1-z)*hh
    simple_rnn (G = 1):                      h' = act(xproj_t + (h*m_0) @ R)

R_k = recurrent_kernel[:, k*U:(k+1)*U]; m_k = recurrent_masks[k] (all gates share recurrent_masks[0] when
M = 1; no recurrent mask at all when recurrent_masks is None). The GRU's mixing term z*h uses the undropped h.

Masks (Keras's while-loop rule): at a step whose mask[b, t] is False the states (h, and c for lstm) keep their
previous values and the output is the previous step's output (zeros before the first step), or zeros when
zero_output_for_mask. outputs[:, s] is the output of processing step s (so with reverse, outputs[:, 0] belongs to
the last input step). h_last / c_last are the carried states after the last step.

rnn_backward returns the exact gradient of that forward: d_xproj (B, T, G*U), d_recurrent_kernel (U, G*U),
d_h0 (B, U), d_c0 (B, U) for lstm else None, d_recurrent_bias (G*U,) for gru else None. The workspace here is
just the forward's inputs (the backward replays the forward step by step and keeps every intermediate).

Example:
    >>> from fastnn.testing import rnn_reference as ref
    >>> out, h, c, ws = ref.rnn_forward("lstm", xproj, R, h0, c0)
    >>> dx, dR, dh0, dc0, db = ref.rnn_backward("lstm", ws, R, d_out, None, None)
"""
from __future__ import annotations

import numpy as np

GATES = {"lstm": 4, "gru": 3, "gru_reset_before": 3, "simple_rnn": 1}

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
_LEAKY_SLOPE = 0.2  # keras.activations.leaky_relu's default negative_slope


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _softplus(x):
    return np.logaddexp(x, 0.0)


# name -> (f(x), f'(x)). The derivative at a kink is TensorFlow's (relu 0 at 0; relu6 and hard_sigmoid 0 at the
# ends of the linear part; elu the linear side's slope at 0).
ACTIVATIONS = {
    "tanh": (np.tanh, lambda x: 1.0 - np.tanh(x) ** 2),
    "sigmoid": (_sigmoid, lambda x: _sigmoid(x) * (1.0 - _sigmoid(x))),
    "relu": (lambda x: np.maximum(x, 0.0), lambda x: (x > 0).astype(x.dtype)),
    "linear": (lambda x: x, lambda x: np.ones_like(x)),
    # Keras 3: x / 6 + 0.5 clipped to [0, 1] (= relu6(x + 3) / 6)
    "hard_sigmoid": (lambda x: np.clip(x / 6.0 + 0.5, 0.0, 1.0),
                     lambda x: ((x > -3.0) & (x < 3.0)).astype(x.dtype) / 6.0),
    "relu6": (lambda x: np.clip(x, 0.0, 6.0), lambda x: ((x > 0.0) & (x < 6.0)).astype(x.dtype)),
    "elu": (lambda x: np.where(x >= 0, x, np.expm1(np.minimum(x, 0.0))),
            lambda x: np.where(x >= 0, 1.0, np.exp(np.minimum(x, 0.0)))),
    "selu": (lambda x: _SELU_SCALE * np.where(x >= 0, x, _SELU_ALPHA * np.expm1(np.minimum(x, 0.0))),
             lambda x: _SELU_SCALE * np.where(x >= 0, 1.0, _SELU_ALPHA * np.exp(np.minimum(x, 0.0)))),
    "softplus": (_softplus, _sigmoid),
    "softsign": (lambda x: x / (1.0 + np.abs(x)), lambda x: 1.0 / (1.0 + np.abs(x)) ** 2),
    "silu": (lambda x: x * _sigmoid(x), lambda x: _sigmoid(x) * (1.0 + x * (1.0 - _sigmoid(x)))),
    "leaky_relu": (lambda x: np.where(x < 0, _LEAKY_SLOPE * x, x), lambda x: np.where(x < 0, _LEAKY_SLOPE, 1.0)),
}
ACTIVATIONS["swish"] = ACTIVATIONS["silu"]


def _act(name):
    if name not in ACTIVATIONS:
        raise ValueError(f"rnn reference: unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def _check(cell, xproj, recurrent_kernel, h0, c0, mask, recurrent_masks, recurrent_bias):
    if cell not in GATES:
        raise ValueError(f"rnn reference: unknown cell {cell!r}; expected one of {sorted(GATES)}")
    G = GATES[cell]
    B, T, GU = xproj.shape
    U = h0.shape[1]
    assert GU == G * U and recurrent_kernel.shape == (U, G * U) and h0.shape == (B, U)
    assert (c0 is not None) == (cell == "lstm") and (c0 is None or c0.shape == (B, U))
    assert mask is None or mask.shape == (B, T)
    assert recurrent_masks is None or (recurrent_masks.shape[0] in (1, G) and recurrent_masks.shape[1:] == (B, U))
    assert recurrent_bias is None or (cell == "gru" and recurrent_bias.shape == (G * U,))
    return G, B, T, U


def _gate_masks(recurrent_masks, G, B, U, dtype):
    """One (B, U) multiplier per gate (ones when there are no recurrent masks)."""
    if recurrent_masks is None:
        return [np.ones((B, U), dtype)] * G
    if recurrent_masks.shape[0] == 1:
        return [recurrent_masks[0]] * G
    return [recurrent_masks[k] for k in range(G)]


def _run(cell, xproj, R, h0, c0, mask, recurrent_masks, recurrent_bias, activation, recurrent_activation, reverse,
         zero_output_for_mask):
    """The forward, keeping every step's intermediates in `tape` (a list of dicts, one per processing step)."""
    G, B, T, U = _check(cell, xproj, R, h0, c0, mask, recurrent_masks, recurrent_bias)
    dtype = xproj.dtype
    act, _ = _act(activation)
    ra, _ = _act(recurrent_activation)
    ms = _gate_masks(recurrent_masks, G, B, U, dtype)
    Rk = [R[:, k * U:(k + 1) * U] for k in range(G)]
    brec = np.zeros(G * U, dtype) if recurrent_bias is None else recurrent_bias
    h = h0.copy()
    c = None if c0 is None else c0.copy()
    y_prev = np.zeros((B, U), dtype)
    outputs = np.zeros((B, T, U), dtype)
    tape = []
    for s in range(T):
        t = T - 1 - s if reverse else s
        x = xproj[:, t, :]
        xs = [x[:, k * U:(k + 1) * U] for k in range(G)]
        rec = dict(h=h, c=c)
        if cell == "lstm":
            z = [xs[k] + (h * ms[k]) @ Rk[k] for k in range(4)]
            i, f, g, o = ra(z[0]), ra(z[1]), act(z[2]), ra(z[3])
            c_new = f * c + i * g
            h_new = o * act(c_new)
            rec.update(z=z, i=i, f=f, g=g, o=o, c_new=c_new)
        elif cell == "gru":
            r_ = [(h * ms[k]) @ Rk[k] + brec[k * U:(k + 1) * U] for k in range(3)]
            zg = ra(xs[0] + r_[0])
            rg = ra(xs[1] + r_[1])
            a_h = xs[2] + rg * r_[2]
            hh = act(a_h)
            h_new = zg * h + (1 - zg) * hh
            rec.update(pz=xs[0] + r_[0], pr=xs[1] + r_[1], rh=r_[2], zg=zg, rg=rg, a_h=a_h, hh=hh)
        elif cell == "gru_reset_before":
            pz = xs[0] + (h * ms[0]) @ Rk[0]
            pr = xs[1] + (h * ms[1]) @ Rk[1]
            zg, rg = ra(pz), ra(pr)
            a_h = xs[2] + (rg * h * ms[2]) @ Rk[2]
            hh = act(a_h)
            h_new = zg * h + (1 - zg) * hh
            rec.update(pz=pz, pr=pr, zg=zg, rg=rg, a_h=a_h, hh=hh)
        else:  # simple_rnn
            a = xs[0] + (h * ms[0]) @ Rk[0]
            h_new = act(a)
            rec.update(a=a)
        keep = np.ones((B, 1), bool) if mask is None else mask[:, t][:, None]
        rec["keep"] = keep
        h = np.where(keep, h_new, h)
        if c is not None:
            c = np.where(keep, c_new, c)
        y = np.where(keep, h_new, 0.0 if zero_output_for_mask else y_prev).astype(dtype)
        outputs[:, s, :] = y
        y_prev = y
        tape.append(rec)
    return outputs, h, c, tape


def rnn_forward(cell, xproj, recurrent_kernel, h0, c0=None, *, mask=None, recurrent_masks=None,
                recurrent_bias=None, activation="tanh", recurrent_activation="sigmoid", reverse=False,
                zero_output_for_mask=False, save_for_backward=True):
    """-> (outputs (B, T, U), h_last (B, U), c_last (B, U) or None, workspace or None)."""
    outputs, h, c, _ = _run(cell, xproj, recurrent_kernel, h0, c0, mask, recurrent_masks, recurrent_bias,
                            activation, recurrent_activation, reverse, zero_output_for_mask)
    workspace = None
    if save_for_backward:
        workspace = (xproj.copy(), h0.copy(), None if c0 is None else c0.copy())
    return outputs, h, c, workspace


def rnn_backward(cell, workspace, recurrent_kernel, d_outputs, d_h_last, d_c_last, *, mask=None,
                 recurrent_masks=None, recurrent_bias=None, activation="tanh", recurrent_activation="sigmoid",
                 reverse=False, zero_output_for_mask=False):
    """-> (d_xproj, d_recurrent_kernel, d_h0, d_c0 or None, d_recurrent_bias or None)."""
    xproj, h0, c0 = workspace
    R = recurrent_kernel
    _, _, _, tape = _run(cell, xproj, R, h0, c0, mask, recurrent_masks, recurrent_bias, activation,
                         recurrent_activation, reverse, zero_output_for_mask)
    G, B, T, U = _check(cell, xproj, R, h0, c0, mask, recurrent_masks, recurrent_bias)
    dtype = xproj.dtype
    _, dact = _act(activation)
    _, dra = _act(recurrent_activation)
    ms = _gate_masks(recurrent_masks, G, B, U, dtype)
    Rk = [R[:, k * U:(k + 1) * U] for k in range(G)]

    d_xproj = np.zeros_like(xproj)
    dR = np.zeros_like(R)
    dbrec = np.zeros(G * U, dtype)
    dh = np.zeros((B, U), dtype) if d_h_last is None else d_h_last.astype(dtype).copy()
    dc = None
    if cell == "lstm":
        dc = np.zeros((B, U), dtype) if d_c_last is None else d_c_last.astype(dtype).copy()
    dy_carry = np.zeros((B, U), dtype)  # gradient reaching y_s through y_{s+1} = y_s (masked step s+1)
    for s in range(T - 1, -1, -1):
        t = T - 1 - s if reverse else s
        rec = tape[s]
        keep = rec["keep"]
        h = rec["h"]
        gy = dy_carry + (0.0 if d_outputs is None else d_outputs[:, s, :])
        # The candidate h_new feeds h_s (if kept) and y_s (if kept).
        dh_new = np.where(keep, dh + gy, 0.0)
        dh_prev = np.where(keep, 0.0, dh)  # a masked step carries h through
        dy_carry = np.where(keep | zero_output_for_mask, 0.0, gy)
        dgate = [None] * G  # d(pre-activation) of each gate, the recurrent-product side
        dx = [None] * G  # d(xproj_t) of each gate
        if cell == "lstm":
            c = rec["c"]
            c_new = rec["c_new"]
            z = rec["z"]
            i, f, g, o = rec["i"], rec["f"], rec["g"], rec["o"]
            act_c = _act(activation)[0](c_new)
            dc_new = np.where(keep, dc, 0.0) + dh_new * o * dact(c_new)
            do = dh_new * act_c
            di, df, dg = dc_new * g, dc_new * c, dc_new * i
            dc = np.where(keep, 0.0, dc) + dc_new * f
            dgate = [di * dra(z[0]), df * dra(z[1]), dg * dact(z[2]), do * dra(z[3])]
            dx = dgate
        elif cell == "gru":
            zg, rg, hh = rec["zg"], rec["rg"], rec["hh"]
            dzg = dh_new * (h - hh)
            dhh = dh_new * (1 - zg)
            dh_prev = dh_prev + dh_new * zg
            da_h = dhh * dact(rec["a_h"])
            drg = da_h * rec["rh"]
            dpz, dpr = dzg * dra(rec["pz"]), drg * dra(rec["pr"])
            dx = [dpz, dpr, da_h]
            dgate = [dpz, dpr, da_h * rg]
        elif cell == "gru_reset_before":
            zg, rg, hh = rec["zg"], rec["rg"], rec["hh"]
            dzg = dh_new * (h - hh)
            dhh = dh_new * (1 - zg)
            dh_prev = dh_prev + dh_new * zg
            da_h = dhh * dact(rec["a_h"])
            d_rhm = da_h @ Rk[2].T  # d(r * h * m_2)
            drg = d_rhm * h * ms[2]
            dh_prev = dh_prev + d_rhm * rg * ms[2]
            dR[:, 2 * U:] += (rg * h * ms[2]).T @ da_h
            dpz, dpr = dzg * dra(rec["pz"]), drg * dra(rec["pr"])
            dx = [dpz, dpr, da_h]
            dgate = [dpz, dpr, None]  # the h gate's recurrent product is handled above
        else:
            da = dh_new * dact(rec["a"])
            dx = dgate = [da]
        for k in range(G):
            d_xproj[:, t, k * U:(k + 1) * U] = dx[k]
            if dgate[k] is None:
                continue
            dh_prev = dh_prev + (dgate[k] @ Rk[k].T) * ms[k]
            dR[:, k * U:(k + 1) * U] += (h * ms[k]).T @ dgate[k]
            dbrec[k * U:(k + 1) * U] += dgate[k].sum(axis=0)
        dh = dh_prev
    return (d_xproj, dR, dh, dc if cell == "lstm" else None, dbrec if cell == "gru" else None)
