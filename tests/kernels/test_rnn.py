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


# ---------------------------------------------------------------------------------------------------------------
# The C++ kernels (fastnn.backend.rnn_forward / rnn_backward and the _ref twins) against the NumPy reference
# ---------------------------------------------------------------------------------------------------------------
from fastnn import _C, backend  # noqa: E402
import fastnn  # noqa: E402

MASK_KINDS = [None, "end", "start", "inside", "all", "random"]
# (B, T, U): size 1, odd sizes, both sides of the 32-row block (32, 33, 65 rows: 1, 2, 3 blocks), U = 128.
SHAPES = [(1, 1, 1), (1, 4, 3), (3, 1, 5), (2, 5, 16), (5, 3, 33), (33, 3, 7), (32, 2, 9), (65, 2, 4), (2, 2, 128)]


def kernel_args(case):
    return case["xproj"], case["R"], case["h0"], case["c0"]


def run_both(cell, case, fwd, bwd, grads, **kw):
    o, h, c, ws = fwd(cell, *kernel_args(case), **options(case, **kw))
    d_out, d_h, d_c = grads
    g = bwd(cell, ws, case["R"], d_out, d_h, d_c if cell == "lstm" else None, **options(case, **kw))
    return (o, h, c), g


def random_grads(rng, B, T, U, dtype):
    return (rng.standard_normal((B, T, U)).astype(dtype), rng.standard_normal((B, U)).astype(dtype),
            rng.standard_normal((B, U)).astype(dtype))


def assert_close(actual, expected, dtype, what):
    if expected is None:
        assert actual is None, what
        return
    assert actual is not None and actual.dtype == dtype and actual.shape == expected.shape, what
    tol = 1e-10 if dtype == np.float64 else 2e-4
    scale = 1.0 + np.abs(expected).max() if expected.size else 1.0
    err = np.abs(actual.astype(np.float64) - expected).max() if expected.size else 0.0
    assert err <= tol * scale, f"{what}: max error {err:.3e} > {tol * scale:.3e}"


def combos(cell):
    """Every mask kind x recurrent-mask layout x (reverse, zero_output_for_mask) once, over the shape sweep."""
    G = ref.GATES[cell]
    out = []
    i = 0
    for mask_kind in MASK_KINDS:
        for M in (0, 1, G) if G > 1 else (0, 1):
            reverse, zero = bool(i % 2), bool((i // 2) % 2)
            out.append((SHAPES[i % len(SHAPES)], mask_kind, M, reverse, zero))
            i += 1
    return out


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cell", CELLS)
def test_kernel_matches_reference(cell, dtype):
    rng = np.random.default_rng(CELLS.index(cell) * 7 + (dtype == np.float32))
    for (B, T, U), mask_kind, M, reverse, zero in combos(cell):
        case = make_case(rng, cell, B, T, U, dtype=dtype, mask_kind=mask_kind, M=M)
        case64 = {k: (None if v is None or v.dtype == bool else v.astype(np.float64)) if k != "mask" else v
                  for k, v in case.items()}
        grads = random_grads(rng, B, T, U, dtype)
        grads64 = tuple(g.astype(np.float64) for g in grads)
        kw = dict(reverse=reverse, zero_output_for_mask=zero)
        what = f"{cell} {dtype.__name__} B={B} T={T} U={U} mask={mask_kind} M={M} {kw}"
        exp_fwd, exp_bwd = run_both(cell, case64, ref.rnn_forward, ref.rnn_backward, grads64, **kw)
        for impl, fwd, bwd in (("fast", backend.rnn_forward, backend.rnn_backward),
                               ("ref twin", backend.rnn_forward_ref, backend.rnn_backward_ref)):
            got_fwd, got_bwd = run_both(cell, case, fwd, bwd, grads, **kw)
            for name, a, e in zip(("outputs", "h_last", "c_last"), got_fwd, exp_fwd):
                assert_close(a, e, dtype, f"{impl} {name} {what}")
            for name, a, e in zip(("d_xproj", "d_recurrent_kernel", "d_h0", "d_c0", "d_recurrent_bias"), got_bwd,
                                  exp_bwd):
                assert_close(a, e, dtype, f"{impl} {name} {what}")


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("activation", sorted(ref.ACTIVATIONS))
def test_kernel_activations_match_reference(cell, activation):
    rng = np.random.default_rng(len(activation) + 100 * CELLS.index(cell))
    case = make_case(rng, cell, 4, 3, 5, mask_kind="random", M=1, scale=1.5)
    grads = random_grads(rng, 4, 3, 5, np.float64)
    for act, ract in ((activation, "sigmoid"), ("tanh", activation)):
        exp = run_both(cell, case, ref.rnn_forward, ref.rnn_backward, grads, activation=act,
                       recurrent_activation=ract)
        got = run_both(cell, case, backend.rnn_forward, backend.rnn_backward, grads, activation=act,
                       recurrent_activation=ract)
        for a, e in zip(got[0] + got[1], exp[0] + exp[1]):
            assert_close(a, e, np.float64, f"{cell} {act} / {ract}")


@pytest.mark.parametrize("cell", CELLS)
def test_every_simd_path_matches_reference(simd_path, cell):
    rng = np.random.default_rng(3)
    for dtype in (np.float32, np.float64):
        case = make_case(rng, cell, 35, 4, 19, dtype=dtype, mask_kind="random", M=ref.GATES[cell])
        c64 = {k: v if v is None or v.dtype == bool else v.astype(np.float64) for k, v in case.items()}
        grads = random_grads(rng, 35, 4, 19, dtype)
        exp = run_both(cell, c64, ref.rnn_forward, ref.rnn_backward, tuple(g.astype(np.float64) for g in grads))
        got = run_both(cell, case, backend.rnn_forward, backend.rnn_backward, grads)
        for a, e in zip(got[0] + got[1], exp[0] + exp[1]):
            assert_close(a, e, dtype, f"{simd_path} {cell} {dtype.__name__}")


@pytest.mark.parametrize("cell", CELLS)
def test_inference_forward_equals_saved_forward(cell):
    rng = np.random.default_rng(11)
    for dtype in (np.float32, np.float64):
        case = make_case(rng, cell, 40, 5, 12, dtype=dtype, mask_kind="inside", M=1)
        saved = backend.rnn_forward(cell, *kernel_args(case), **options(case), save_for_backward=True)
        free = backend.rnn_forward(cell, *kernel_args(case), **options(case), save_for_backward=False)
        assert free[3] is None and saved[3] is not None
        for a, b in zip(saved[:3], free[:3]):
            if a is None:
                assert b is None
            else:
                np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cell", CELLS)
def test_one_and_two_threads_are_bit_identical(restore_threads, cell):
    rng = np.random.default_rng(5)
    G = ref.GATES[cell]
    for dtype in (np.float32, np.float64):
        # 70 rows: three blocks of rows; the final GEMM over 70 * 9 rows.
        case = make_case(rng, cell, 70, 9, 24, dtype=dtype, mask_kind="random", M=G)
        grads = random_grads(rng, 70, 9, 24, dtype)
        results = []
        previous = _C.oversubscription_guard()
        _C.set_oversubscription_guard("off")  # let the 2-thread run fork even on a busy machine
        try:
            for threads in (1, 2):
                fastnn.set_num_threads(threads)
                fwd, bwd = run_both(cell, case, backend.rnn_forward, backend.rnn_backward, grads, reverse=True)
                results.append([x for x in fwd + bwd if x is not None])
        finally:
            _C.set_oversubscription_guard(previous)
        for a, b in zip(*results):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("U", [8, 24, 128, 520])
def test_a_rows_results_do_not_depend_on_the_other_rows(cell, U):
    # The forward and backward compute only the kept rows of each step (padding costs no GEMM rows), so the
    # number of rows a step's product runs on changes with the other sequences' masks: a row's bits must not.
    # Rows of a masked batch (70 rows: three blocks; fully kept, fully masked and randomly masked rows) against
    # the same row run alone.
    rng = np.random.default_rng(17)
    for dtype in (np.float32, np.float64):
        case = make_case(rng, cell, 70, 9, U, dtype=dtype, mask_kind="random")
        case["mask"][:5] = True  # some fully kept rows
        case["mask"][5:8] = False  # some fully masked rows
        grads = random_grads(rng, 70, 9, U, dtype)
        for reverse in (False, True):
            batch = run_both(cell, case, backend.rnn_forward, backend.rnn_backward, grads, reverse=reverse)
            ws = backend.rnn_forward(cell, *kernel_args(case), **options(case), reverse=reverse)[3]
            for b in (0, 3, 6, 11, 40, 69):
                one = {k: (v[b:b + 1] if isinstance(v, np.ndarray) and k not in ("R", "recurrent_bias") else v)
                       for k, v in case.items()}
                alone = run_both(cell, one, backend.rnn_forward, backend.rnn_backward,
                                 tuple(g[b:b + 1] for g in grads), reverse=reverse)
                ws_one = backend.rnn_forward(cell, *kernel_args(one), **options(one), reverse=reverse)[3]
                # outputs, h, c; d_xproj, d_h0, d_c0 (d_recurrent_kernel and d_recurrent_bias sum over rows)
                pairs = list(zip(batch[0], alone[0])) + [(batch[1][i], alone[1][i]) for i in (0, 2, 3)]
                for got, want in pairs:
                    if got is not None:
                        np.testing.assert_array_equal(got[b:b + 1], want, err_msg=f"{cell} row {b}")
                for got, want in zip(ws[1:], ws_one[1:]):  # the saved buffers too (masked steps: zeros)
                    if got is not None:
                        np.testing.assert_array_equal(got[:, b:b + 1], want, err_msg=f"{cell} ws row {b}")


def test_reverse_reads_the_sequence_backwards():
    rng = np.random.default_rng(2)
    case = make_case(rng, "gru", 6, 7, 5, mask_kind="random")
    rev = backend.rnn_forward("gru", *kernel_args(case), **options(case), reverse=True)
    flipped = dict(case, xproj=np.ascontiguousarray(case["xproj"][:, ::-1]),
                   mask=np.ascontiguousarray(case["mask"][:, ::-1]))
    fwd = backend.rnn_forward("gru", *kernel_args(flipped), **options(flipped))
    np.testing.assert_array_equal(rev[0], fwd[0])
    np.testing.assert_array_equal(rev[1], fwd[1])


@pytest.mark.parametrize("cell", CELLS)
def test_absent_gradients_are_zeros(cell):
    rng = np.random.default_rng(9)
    case = make_case(rng, cell, 3, 4, 6, mask_kind="end")
    o, h, c, ws = backend.rnn_forward(cell, *kernel_args(case), **options(case))
    zeros = (np.zeros_like(o), np.zeros_like(h), None if c is None else np.zeros_like(c))
    a = backend.rnn_backward(cell, ws, case["R"], None, None, None, **options(case))
    b = backend.rnn_backward(cell, ws, case["R"], *zeros, **options(case))
    for x, y in zip(a, b):
        if x is None:
            assert y is None
        else:
            np.testing.assert_array_equal(x, y)
            assert not np.any(x)
    # only d_h_last: outputs' gradients absent
    d_h = rng.standard_normal(h.shape)
    got = backend.rnn_backward(cell, ws, case["R"], None, d_h, None, **options(case))
    exp = ref.rnn_backward(cell, ref.rnn_forward(cell, *kernel_args(case), **options(case))[3], case["R"], None, d_h,
                           None, **options(case))
    for x, y in zip(got, exp):
        assert_close(x, y, np.float64, f"{cell} d_h_last only")


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("B,T,U", [(0, 3, 4), (2, 0, 4), (2, 3, 0), (0, 0, 0)])
def test_empty_shapes(cell, B, T, U):
    rng = np.random.default_rng(0)
    case = make_case(rng, cell, B, T, U, mask_kind="random" if T else None)
    o, h, c, ws = backend.rnn_forward(cell, *kernel_args(case), **options(case))
    assert o.shape == (B, T, U) and h.shape == (B, U)
    np.testing.assert_array_equal(h, case["h0"])  # no step ran (or nothing to run)
    d_h = rng.standard_normal((B, U))
    dx, dR, dh0, dc0, db = backend.rnn_backward(cell, ws, case["R"], None, d_h, None, **options(case))
    G = ref.GATES[cell]
    assert dx.shape == (B, T, G * U) and dR.shape == (U, G * U) and dh0.shape == (B, U)
    assert not np.any(dR)
    if T == 0:
        np.testing.assert_array_equal(dh0, d_h)


# ---------------------------------------------------------------------------------------------------------------
# Bad input: a clear exception naming the function, never a crash
# ---------------------------------------------------------------------------------------------------------------
def good(cell="lstm", B=2, T=3, U=4, dtype=np.float64):
    rng = np.random.default_rng(0)
    case = make_case(rng, cell, B, T, U, dtype=dtype, mask_kind="random", M=1)
    return case


BAD_FORWARD = [
    (dict(cell="rnn"), ValueError, "rnn_forward: cell must be one of"),
    (dict(xproj=np.zeros((2, 3, 15))), ValueError, r"xproj must have shape \(batch, steps, 4 \* units = 16\)"),
    (dict(xproj=np.zeros((2, 16))), ValueError, "xproj must have shape"),
    (dict(xproj=np.zeros((2, 3, 16), np.int32)), TypeError, "xproj must be float32 or float64"),
    (dict(xproj=np.zeros((2, 3, 16), np.float32)), TypeError, "recurrent_kernel must have the dtype of xproj"),
    (dict(xproj=np.zeros((2, 6, 16))[:, ::2]), ValueError, "xproj must be C-contiguous"),
    (dict(xproj=[[1.0]]), TypeError, "xproj must be a NumPy array"),
    (dict(R=np.zeros((4, 12))), ValueError, r"recurrent_kernel must have shape \(units, 4 \* units\)"),
    (dict(R=np.zeros((4, 16, 1))), ValueError, "recurrent_kernel must have shape"),
    (dict(h0=np.zeros((2, 5))), ValueError, r"h0 must have shape \(2, 4\), but received shape \(2, 5\)"),
    (dict(h0=np.zeros((3, 4))), ValueError, r"h0 must have shape \(2, 4\)"),
    (dict(c0=None), ValueError, "the 'lstm' cell needs c0"),
    (dict(c0=np.zeros((2, 4), np.float32)), TypeError, "c0 must have the dtype of xproj"),
    (dict(mask=np.ones((2, 3), np.int8)), TypeError, "mask must be a bool array"),
    (dict(mask=np.ones((2, 4), bool)), ValueError, r"mask must have shape \(batch, steps\) = \(2, 3\)"),
    (dict(mask=np.ones((3, 2), bool).T), ValueError, "mask must be C-contiguous"),
    (dict(recurrent_masks=np.ones((2, 2, 4))), ValueError,
     "recurrent_masks must have shape .M, batch, units. with M = 1 or M = 4"),
    (dict(recurrent_masks=np.ones((1, 2, 5))), ValueError, r"recurrent_masks must have shape \(1, 2, 4\)"),
    (dict(recurrent_masks=np.ones((4, 2, 4), np.float32)), TypeError, "recurrent_masks must have the dtype"),
    (dict(recurrent_bias=np.zeros(16)), ValueError, "recurrent_bias is only for the 'gru' cell"),
    (dict(activation="gelu"), ValueError, "rnn_forward: activation must be one of"),
    (dict(recurrent_activation="nope"), ValueError, "recurrent_activation must be one of"),
]


@pytest.mark.parametrize("change,exc,match", BAD_FORWARD)
def test_bad_forward_input_raises(change, exc, match):
    case = good()
    args = dict(cell="lstm", xproj=case["xproj"], R=case["R"], h0=case["h0"], c0=case["c0"], mask=case["mask"],
                recurrent_masks=case["recurrent_masks"], recurrent_bias=None, activation="tanh",
                recurrent_activation="sigmoid")
    args.update(change)
    # the bindings themselves (the backend wrappers make arrays contiguous first)
    for fn in (_C.rnn_forward, _C.rnn_forward_ref):
        name = fn.__name__
        with pytest.raises(exc, match=match.replace("rnn_forward", name)):
            fn(args["cell"], args["xproj"], args["R"], args["h0"], args["c0"], mask=args["mask"],
               recurrent_masks=args["recurrent_masks"], recurrent_bias=args["recurrent_bias"],
               activation=args["activation"], recurrent_activation=args["recurrent_activation"])


def test_bad_forward_input_per_cell():
    case = good("gru", U=3)
    with pytest.raises(ValueError, match="c0 is only for the 'lstm' cell"):
        backend.rnn_forward("gru", case["xproj"], case["R"], case["h0"], np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"recurrent_bias must have shape \(9,\)"):
        backend.rnn_forward("gru", case["xproj"], case["R"], case["h0"], recurrent_bias=np.zeros(8))
    with pytest.raises(ValueError, match="M = 1 or M = 3"):
        backend.rnn_forward("gru", case["xproj"], case["R"], case["h0"], recurrent_masks=np.ones((4, 2, 3)))
    s = good("simple_rnn", U=3)
    with pytest.raises(ValueError, match=r"xproj must have shape \(batch, steps, 1 \* units = 3\)"):
        backend.rnn_forward("simple_rnn", case["xproj"], s["R"], s["h0"])


def test_bad_backward_input_raises():
    case = good()
    args = kernel_args(case)
    o, h, c, ws = backend.rnn_forward("lstm", *args)
    R = case["R"]
    with pytest.raises(ValueError, match="rnn_backward: workspace is None"):
        backend.rnn_backward("lstm", None, R, o, h, c)
    with pytest.raises(ValueError, match="workspace must be the tuple rnn_forward returned"):
        backend.rnn_backward("lstm", (1, 2, 3), R, o, h, c)
    with pytest.raises(ValueError, match="workspace must be the tuple"):
        backend.rnn_backward("lstm", [ws[0]] + list(ws[1:]), R, o, h, c)
    with pytest.raises(ValueError, match="workspace was made by the 'lstm' cell, but cell is 'gru'"):
        backend.rnn_backward("gru", ws, np.zeros((4, 12)), o, h, None)
    # a workspace of other shapes: its buffers are checked against each other and the recurrent kernel
    _, _, _, ws_small = backend.rnn_forward("lstm", *kernel_args(good(B=1)))
    mixed = (ws[0], ws[1], ws_small[2], ws[3], ws[4], ws[5])
    with pytest.raises(ValueError, match=r"workspace c_states must have shape \(4, 2, 4\)"):
        backend.rnn_backward("lstm", mixed, R, o, h, c)
    with pytest.raises(ValueError, match=r"workspace h_states must have shape \(steps \+ 1, batch, 5\)"):
        backend.rnn_backward("lstm", ws, np.zeros((5, 20)), None, None, None)
    wrong_dtype = (ws[0], ws[1].astype(np.float32)) + ws[2:]
    with pytest.raises(TypeError, match="workspace c_states must have the dtype"):
        backend.rnn_backward("lstm", wrong_dtype, R.astype(np.float32), None, None, None)
    with pytest.raises(TypeError, match="workspace pre must be a NumPy array"):
        backend.rnn_backward("lstm", ws[:3] + ("x",) + ws[4:], R, None, None, None)
    with pytest.raises(ValueError, match=r"d_outputs must have shape \(2, 3, 4\)"):
        backend.rnn_backward("lstm", ws, R, o[:, :2], h, c)
    with pytest.raises(ValueError, match=r"d_h_last must have shape \(2, 4\)"):
        backend.rnn_backward("lstm", ws, R, o, h[:1], c)
    with pytest.raises(TypeError, match="d_c_last must have the dtype"):
        backend.rnn_backward("lstm", ws, R, o, h, c.astype(np.float32))
    with pytest.raises(ValueError, match=r"rnn_backward: mask must have shape \(batch, steps\) = \(2, 3\)"):
        backend.rnn_backward("lstm", ws, R, o, h, c, mask=np.ones((2, 2), bool))
    with pytest.raises(ValueError, match="rnn_backward_ref: recurrent_masks must have shape"):
        backend.rnn_backward_ref("lstm", ws, R, o, h, c, recurrent_masks=np.ones((3, 2, 4)))
    g = good("gru")
    _, hg, _, wsg = backend.rnn_forward("gru", *kernel_args(g))
    with pytest.raises(ValueError, match="d_c_last is only for the 'lstm' cell"):
        backend.rnn_backward("gru", wsg, g["R"], None, hg, hg)
    with pytest.raises(ValueError, match="workspace c_states must be None for the 'gru' cell"):
        backend.rnn_backward("gru", (wsg[0], wsg[1], wsg[1]) + wsg[3:], g["R"], None, hg, None)


def test_backend_accepts_a_nonbool_mask_as_keras_casts_it():
    rng = np.random.default_rng(4)
    case = make_case(rng, "lstm", 3, 5, 4, mask_kind="random")
    as_bool = backend.rnn_forward("lstm", *kernel_args(case), mask=case["mask"])
    as_float = backend.rnn_forward("lstm", *kernel_args(case), mask=case["mask"].astype(np.float32))
    for a, b in zip(as_bool[:3], as_float[:3]):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(TypeError, match="rnn_forward: mask must be a bool array"):
        _C.rnn_forward("lstm", *kernel_args(case), mask=case["mask"].astype(np.float32))


@pytest.mark.parametrize("cell", ["lstm", "gru_reset_before"])
def test_every_gemm_path_matches_reference(gemm_path, cell):
    """The per-step products and the final dR GEMM on each GEMM algorithm (forced for every shape)."""
    rng = np.random.default_rng(8)
    case = make_case(rng, cell, 34, 3, 13, mask_kind="random", M=1)
    grads = random_grads(rng, 34, 3, 13, np.float64)
    exp = run_both(cell, case, ref.rnn_forward, ref.rnn_backward, grads, reverse=True)
    got = run_both(cell, case, backend.rnn_forward, backend.rnn_backward, grads, reverse=True)
    for a, e in zip(got[0] + got[1], exp[0] + exp[1]):
        assert_close(a, e, np.float64, f"{gemm_path} {cell}")


def test_backward_reads_a_read_only_workspace():
    rng = np.random.default_rng(12)
    case = make_case(rng, "lstm", 3, 4, 5)
    _, h, c, ws = backend.rnn_forward("lstm", *kernel_args(case))
    expected = backend.rnn_backward("lstm", ws, case["R"], None, h, c)
    for a in ws[1:]:
        a.setflags(write=False)
    got = backend.rnn_backward("lstm", ws, case["R"], None, h, c)
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)
