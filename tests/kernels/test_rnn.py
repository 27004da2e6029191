"""The recurrence kernels (fastnn._C.rnn_forward / rnn_backward, through the backend wrappers) and their NumPy
specification (fastnn.testing.rnn_reference).

First the reference itself: its backward must be the exact gradient of its forward (float64 central finite
differences) for every cell and option. Then the C++ kernels against the reference over shape / option sweeps."""
from __future__ import annotations

import numpy as np
import pytest

from fastnn.testing import rnn_reference as ref

CELLS = list(ref.GATES)


def make_case(rng, cell, B, T, U, dtype=np.float64, mask_kind=None, M=0, with_bias=True, scale=0.7):
    """Random inputs of the contract's shapes. mask_kind: None, "end", "start", "inside", "all", "none_masked",
    "random"; M: 0 (no recurrent masks), 1 or G."""
    G = ref.GATES[cell]
    xproj = rng.standard_normal((B, T, G * U)).astype(dtype)
    R = (rng.standard_normal((U, G * U)) * scale / np.sqrt(max(U, 1))).astype(dtype)
    h0 = rng.standard_normal((B, U)).astype(dtype)
    c0 = rng.standard_normal((B, U)).astype(dtype) if cell == "lstm" else None
    mask = None
    if mask_kind is not None:
        mask = np.ones((B, T), bool)
        for b in range(B):
            n = int(rng.integers(0, T + 1))
            if mask_kind == "end":
                mask[b, T - n:] = False
            elif mask_kind == "start":
                mask[b, :n] = False
            elif mask_kind == "inside":
                lo = int(rng.integers(0, T))
                mask[b, lo:lo + n // 2 + 1] = False
            elif mask_kind == "all":
                mask[b] = False
            elif mask_kind == "random":
                mask[b] = rng.random(T) < 0.6
    rmasks = None
    if M:
        rmasks = ((rng.random((M, B, U)) < 0.7) / 0.7).astype(dtype)
    rbias = rng.standard_normal(G * U).astype(dtype) if (cell == "gru" and with_bias) else None
    return dict(xproj=xproj, R=R, h0=h0, c0=c0, mask=mask, recurrent_masks=rmasks, recurrent_bias=rbias)


def options(case, **kw):
    out = dict(mask=case["mask"], recurrent_masks=case["recurrent_masks"], recurrent_bias=case["recurrent_bias"])
    out.update(kw)
    return out


def weighted_loss(cell, fwd, case, weights, **kw):
    o, h, c, _ = fwd(cell, case["xproj"], case["R"], case["h0"], case["c0"], **options(case, **kw),
                     save_for_backward=False) if fwd is not ref.rnn_forward else \
        ref.rnn_forward(cell, case["xproj"], case["R"], case["h0"], case["c0"], **options(case, **kw))
    w_out, w_h, w_c = weights
    total = float(np.sum(o * w_out) + np.sum(h * w_h))
    if c is not None:
        total += float(np.sum(c * w_c))
    return total


def numeric_grads(cell, case, weights, names, eps=1e-6, **kw):
    grads = {}
    for name in names:
        x = case[name]
        g = np.zeros_like(x)
        for j in range(x.size):
            orig = x.flat[j]
            x.flat[j] = orig + eps
            up = weighted_loss(cell, ref.rnn_forward, case, weights, **kw)
            x.flat[j] = orig - eps
            down = weighted_loss(cell, ref.rnn_forward, case, weights, **kw)
            x.flat[j] = orig
            g.flat[j] = (up - down) / (2 * eps)
        grads[name] = g
    return grads


def check_reference_gradients(cell, case, rng, **kw):
    B, T, GU = case["xproj"].shape
    U = case["h0"].shape[1]
    weights = (rng.standard_normal((B, T, U)), rng.standard_normal((B, U)), rng.standard_normal((B, U)))
    o, h, c, ws = ref.rnn_forward(cell, case["xproj"], case["R"], case["h0"], case["c0"], **options(case, **kw))
    dx, dR, dh0, dc0, db = ref.rnn_backward(cell, ws, case["R"], weights[0], weights[1],
                                            weights[2] if cell == "lstm" else None, **options(case, **kw))
    names = ["xproj", "R", "h0"] + (["c0"] if cell == "lstm" else []) + \
        (["recurrent_bias"] if case["recurrent_bias"] is not None else [])
    num = numeric_grads(cell, case, weights, names, **kw)
    got = dict(xproj=dx, R=dR, h0=dh0, c0=dc0, recurrent_bias=db)
    for name in names:
        scale = 1.0 + np.abs(num[name]).max()
        np.testing.assert_allclose(got[name], num[name], rtol=0, atol=1e-6 * scale, err_msg=f"{cell} d{name} {kw}")
    assert (dc0 is None) == (cell != "lstm")
    assert (db is None) == (cell != "gru")


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("mask_kind", [None, "end", "start", "inside", "all", "random"])
@pytest.mark.parametrize("M", ["none", "one", "per_gate"])
def test_reference_backward_is_the_gradient_of_its_forward(cell, mask_kind, M):
    rng = np.random.default_rng(abs(hash((cell, mask_kind, M))) % 2**32)
    G = ref.GATES[cell]
    case = make_case(rng, cell, 3, 4, 2, mask_kind=mask_kind, M={"none": 0, "one": 1, "per_gate": G}[M])
    for reverse in (False, True):
        for zero in (False, True):
            check_reference_gradients(cell, case, rng, reverse=reverse, zero_output_for_mask=zero)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("activation", sorted(ref.ACTIVATIONS))
def test_reference_gradients_for_every_activation(cell, activation):
    rng = np.random.default_rng(len(activation) * 31 + len(cell))
    case = make_case(rng, cell, 2, 3, 2, mask_kind="random", M=1, scale=2.0)
    ract = "hard_sigmoid" if activation == "sigmoid" else activation
    check_reference_gradients(cell, case, rng, activation=activation, recurrent_activation="sigmoid")
    check_reference_gradients(cell, case, rng, activation="tanh", recurrent_activation=ract)


def test_reference_mask_carry_rule():
    """A masked step keeps the states and repeats the previous output (zeros before the first kept step)."""
    rng = np.random.default_rng(7)
    case = make_case(rng, "lstm", 2, 5, 3)
    mask = np.array([[False, True, False, True, False], [False, False, False, False, False]])
    o, h, c, _ = ref.rnn_forward("lstm", case["xproj"], case["R"], case["h0"], case["c0"], mask=mask)
    np.testing.assert_array_equal(o[0, 0], 0.0)
    np.testing.assert_array_equal(o[0, 2], o[0, 1])
    np.testing.assert_array_equal(o[0, 4], o[0, 3])
    np.testing.assert_array_equal(h[0], o[0, 3])
    np.testing.assert_array_equal(o[1], 0.0)
    np.testing.assert_array_equal(h[1], case["h0"][1])
    np.testing.assert_array_equal(c[1], case["c0"][1])
    oz, hz, cz, _ = ref.rnn_forward("lstm", case["xproj"], case["R"], case["h0"], case["c0"], mask=mask,
                                    zero_output_for_mask=True)
    np.testing.assert_array_equal(oz[0, 2], 0.0)
    np.testing.assert_array_equal(oz[0, 3], o[0, 3])
    np.testing.assert_array_equal(hz, h)
    # reverse reads the sequence from the end and writes outputs in processing order
    orv, hrv, _, _ = ref.rnn_forward("lstm", case["xproj"], case["R"], case["h0"], case["c0"], reverse=True)
    of, hf, _, _ = ref.rnn_forward("lstm", case["xproj"][:, ::-1].copy(), case["R"], case["h0"], case["c0"])
    np.testing.assert_array_equal(orv, of)
    np.testing.assert_array_equal(hrv, hf)
