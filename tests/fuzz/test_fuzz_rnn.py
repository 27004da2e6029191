"""Property-based fuzzing of the recurrence bindings (csrc/python/bind_rnn.cpp: rnn_forward, rnn_backward and their
_ref twins) with the harness of test_fuzz_bindings.py (``fastnn.testing.fuzz``): random cells, shapes (0, 1, odd,
across the 32-row block), dtypes (float32 / float64 and ones that must raise TypeError), memory layouts (only
C-contiguous aligned native buffers are accepted), NaN / inf / denormals, optional arguments present, absent, of the
wrong shape or given to the wrong cell, and forged workspaces. A valid call with finite inputs must equal the NumPy
specification (fastnn.testing.rnn_reference) on the denormals-are-zero inputs; with non-finite inputs it must return
arrays of the right shapes; an invalid one must raise TypeError or ValueError. test_fuzz_bindings.py's FUZZ_TARGETS
names these targets."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fastnn import _C
from fastnn.testing import fuzz as fz
from fastnn.testing import rnn_reference as ref

ERR = (TypeError, ValueError)
CELLS = tuple(ref.GATES)
ACTS = ("tanh", "sigmoid", "relu", "linear", "hard_sigmoid", "softsign", "elu")
SIZES_B = (2, 3, 1, 5, 33, 0)
SIZES_T = (3, 1, 2, 0)
SIZES_U = (3, 1, 2, 8, 0)


def _arr(data, rng, shape, dtype, label, scale=1.0):
    """A float argument (or an integer / object one for a refused dtype) in a drawn layout."""
    rate = data.draw(st.sampled_from([0.0] * 6 + [0.05]), label=f"{label}_special_rate")
    kind = data.draw(st.sampled_from(("c",) * 30 + fz.LAYOUTS), label=f"{label}_layout")
    if dtype in fz.FLOATS:
        x = fz.values(rng, shape, dtype, rate, scale=scale)
    else:
        x = np.asarray(rng.integers(0, 2, size=shape)).astype(dtype)
    if kind == "bcast":
        x = fz.repeat_rows(x)
    return fz.layout(x, kind)


def _shape(data, shape, label):
    """Usually `shape`, sometimes one axis off by one (must raise)."""
    if shape and data.draw(st.integers(0, 14), label=f"{label}_misshape") == 0:
        shape = list(shape)
        shape[data.draw(st.integers(0, len(shape) - 1), label=f"{label}_axis")] += 1
        return tuple(shape), False
    return tuple(shape), True


def _dtype(data, dtype, label):
    return np.dtype(data.draw(st.sampled_from((dtype,) * 25 + fz.FLOATS + fz.BAD_DTYPES), label=f"{label}_dtype"))


def _d64(x, dtype):
    return None if x is None else fz.daz(np.asarray(x, np.float64), dtype)


def _check(got, expected, dtype, finite):
    for g, e in zip(got, expected):
        if e is None:
            assert g is None
            continue
        assert g.shape == e.shape and g.dtype == dtype, (g.shape, e.shape, g.dtype)
        if not finite:
            continue
        scale = 1.0 + (np.abs(e).max() if e.size else 0.0)
        tol = 1e-9 if dtype == np.float64 else 2e-3
        err = np.abs(g.astype(np.float64) - e).max() if e.size else 0.0
        assert err <= tol * scale, (err, tol * scale)


FORWARD_DEFECTS = ("dtype", "xproj_shape", "kernel_shape", "kernel_dtype", "h0_shape", "h0_dtype", "c0_missing",
                   "c0_extra", "c0_shape", "mask_dtype", "mask_shape", "rmasks_count", "rmasks_shape", "rbias_cell",
                   "rbias_shape", "activation", "layout")


def _draw_call(data):
    """A forward call's arguments and whether they are valid: valid most of the time, otherwise with one defect."""
    rng = fz.draw_rng(data)
    defect = data.draw(st.sampled_from((None,) * 24 + FORWARD_DEFECTS), label="defect")
    cell = data.draw(st.sampled_from(CELLS), label="cell")
    G = ref.GATES[cell]
    B = data.draw(st.sampled_from(SIZES_B), label="B")
    T = data.draw(st.sampled_from(SIZES_T), label="T")
    U = data.draw(st.sampled_from(SIZES_U), label="U")
    dtype = np.dtype(data.draw(st.sampled_from(fz.FLOATS), label="dtype"))
    other = np.dtype(np.float32 if dtype == np.float64 else np.float64)

    def arr(shape, dt, label, scale=1.0, layout="c"):
        x = fz.values(rng, shape, dt, data.draw(st.sampled_from([0.0] * 6 + [0.05]), label=f"{label}_special"),
                      scale=scale)
        return fz.layout(x, layout) if layout != "c" else x

    def grow(shape):
        shape = list(shape)
        shape[data.draw(st.integers(0, len(shape) - 1), label="grown_axis")] += 1
        return tuple(shape)

    if defect == "dtype":
        bad = np.dtype(data.draw(st.sampled_from(fz.BAD_DTYPES), label="bad_dtype"))
        xproj = np.asarray(rng.integers(0, 2, (B, T, G * U))).astype(bad)
    else:
        xproj = arr(grow((B, T, G * U)) if defect == "xproj_shape" else (B, T, G * U), dtype, "xproj")
    kernel = arr(grow((U, G * U)) if defect == "kernel_shape" else (U, G * U),
                 other if defect == "kernel_dtype" else dtype, "kernel", scale=0.5 / np.sqrt(max(U, 1)))
    h0 = arr(grow((B, U)) if defect == "h0_shape" else (B, U), other if defect == "h0_dtype" else dtype, "h0")
    c0 = None
    if (cell == "lstm" and defect != "c0_missing") or defect == "c0_extra":
        c0 = arr(grow((B, U)) if defect == "c0_shape" else (B, U), dtype, "c0")
    mask = None
    if data.draw(st.booleans(), label="give_mask") or defect in ("mask_dtype", "mask_shape"):
        mask = np.asarray(rng.random(grow((B, T)) if defect == "mask_shape" else (B, T)) < 0.6)
        if defect == "mask_dtype":
            mask = mask.astype(np.float32)
    rmasks = None
    M = data.draw(st.sampled_from([0, 1, G]), label="M")
    if defect == "rmasks_count":
        M = G + 1
    if M or defect == "rmasks_shape":
        M = M or 1
        rmasks = arr(grow((M, B, U)) if defect == "rmasks_shape" else (M, B, U), dtype, "rmasks")
    rbias = None
    if (cell == "gru" and data.draw(st.booleans(), label="give_rbias")) or defect in ("rbias_cell", "rbias_shape"):
        rbias = arr(grow((G * U,)) if defect == "rbias_shape" else (G * U,), dtype, "rbias")
    act = data.draw(st.sampled_from(ACTS), label="activation")
    ract = data.draw(st.sampled_from(("sigmoid",) * 4 + ACTS), label="recurrent_activation")
    if defect == "activation":
        ract = "bogus"
    args = dict(xproj=xproj, recurrent_kernel=kernel, h0=h0, c0=c0, mask=mask, recurrent_masks=rmasks,
                recurrent_bias=rbias)
    if defect == "layout":
        name = data.draw(st.sampled_from(["xproj", "recurrent_kernel", "h0"]), label="bad_layout_arg")
        kind = data.draw(st.sampled_from(["rows", "neg", "f", "sliced", "misaligned", "swapped"]), label="layout")
        new = fz.layout(args[name], kind)
        if fz.c_ready(new):
            defect = None  # (a layout of a tiny array can still be C-contiguous)
        args[name] = new
    # Some defects are no defect for some cells (c0 is only read by lstm, recurrent_bias only allowed for gru).
    harmless = {"c0_missing": cell != "lstm", "c0_shape": cell != "lstm", "c0_extra": cell == "lstm",
                "rbias_cell": cell == "gru"}
    valid = defect is None or harmless.get(defect, False)
    kw = dict(activation=act, recurrent_activation=ract, reverse=data.draw(st.booleans(), label="reverse"),
              zero_output_for_mask=data.draw(st.booleans(), label="zero_output_for_mask"))
    return cell, args, kw, bool(valid), dtype, rng, (B, T, U)


def _reference_forward(cell, args, kw, dtype):
    a64 = {k: (v if k == "mask" else _d64(v, dtype)) for k, v in args.items()}
    with np.errstate(all="ignore"):
        return ref.rnn_forward(cell, a64["xproj"], a64["recurrent_kernel"], a64["h0"], a64["c0"], mask=a64["mask"],
                               recurrent_masks=a64["recurrent_masks"], recurrent_bias=a64["recurrent_bias"], **kw)


def _finite(*arrays):
    return all(a is None or np.all(np.isfinite(np.asarray(a, np.float64))) for a in arrays)


def _call_forward(fn, cell, args, kw, save=True):
    return fn(cell, args["xproj"], args["recurrent_kernel"], args["h0"], args["c0"], mask=args["mask"],
              recurrent_masks=args["recurrent_masks"], recurrent_bias=args["recurrent_bias"],
              save_for_backward=save, **kw)


@settings(max_examples=fz.examples(1.0, at_least=20))
@given(st.data())
def test_rnn_forward(data):
    cell, args, kw, ok, dtype, rng, _ = _draw_call(data)
    fn = data.draw(st.sampled_from([_C.rnn_forward, _C.rnn_forward_ref]), label="impl")
    fz.case(fn.__name__)
    if not ok:
        fz.expect(lambda: _call_forward(fn, cell, args, kw), None, None, must_raise=ERR)
        return
    finite = _finite(*args.values())
    with np.errstate(all="ignore"):
        got = _call_forward(fn, cell, args, kw, save=data.draw(st.booleans(), label="save"))
    expected = _reference_forward(cell, args, kw, dtype)
    _check(got[:3], expected[:3], dtype, finite and _finite(*expected[:3]))


@settings(max_examples=fz.examples(1.0, at_least=20))
@given(st.data())
def test_rnn_backward(data):
    cell, args, kw, ok, dtype, rng, (B, T, U) = _draw_call(data)
    fwd, bwd = data.draw(st.sampled_from([(_C.rnn_forward, _C.rnn_backward),
                                          (_C.rnn_forward_ref, _C.rnn_backward_ref)]), label="impl")
    fz.case(bwd.__name__)
    if not ok:
        return  # the forward target covers invalid forward arguments
    with np.errstate(all="ignore"):
        out = _call_forward(fwd, cell, args, kw)
    ws = out[3]
    valid = True
    forge = data.draw(st.sampled_from([None] * 8 + ["none", "list", "short", "cell", "swap", "dtype", "shape"]),
                      label="forge")
    if forge == "none":
        ws = None
    elif forge == "list":
        ws = list(ws)
    elif forge == "short":
        ws = ws[:4]
    elif forge == "cell":
        ws = (CELLS[(CELLS.index(cell) + 1) % len(CELLS)],) + ws[1:]
    elif forge == "swap":
        ws = (ws[0], ws[3], ws[2], ws[1], ws[4], ws[5])
        valid = ws[1].shape == ws[3].shape and T * U * B == 0 and ws[1].shape == out[3][1].shape \
            and ws[3].shape == out[3][3].shape
    elif forge == "dtype":
        other = np.float32 if dtype == np.float64 else np.float64
        ws = (ws[0], ws[1].astype(other)) + ws[2:]
    elif forge == "shape":
        ws = (ws[0], np.zeros((T + 2, B, U), dtype)) + ws[2:]
    valid &= forge is None or (forge == "swap" and valid)
    d_out = d_h = d_c = None
    if data.draw(st.booleans(), label="give_d_outputs"):
        shp, good = _shape(data, (B, T, U), "d_outputs")
        valid &= good
        d_out = _arr(data, rng, shp, _dtype(data, dtype, "d_outputs"), "d_outputs")
    if data.draw(st.booleans(), label="give_d_h"):
        d_h = _arr(data, rng, (B, U), _dtype(data, dtype, "d_h"), "d_h")
    if data.draw(st.sampled_from([cell == "lstm"] * 6 + [cell != "lstm"]), label="give_d_c"):
        valid &= cell == "lstm"
        d_c = _arr(data, rng, (B, U), dtype, "d_c")
    for g in (d_out, d_h, d_c):
        if g is not None:
            valid &= g.dtype == dtype and fz.c_ready(g)

    def call():
        return bwd(cell, ws, args["recurrent_kernel"], d_out, d_h, d_c, mask=args["mask"],
                   recurrent_masks=args["recurrent_masks"], recurrent_bias=args["recurrent_bias"], **kw)

    if not valid:
        fz.expect(call, None, None, must_raise=ERR)
        return
    with np.errstate(all="ignore"):
        got = call()
    a64 = {k: (v if k == "mask" else _d64(v, dtype)) for k, v in args.items()}
    with np.errstate(all="ignore"):
        _, _, _, ws64 = _reference_forward(cell, args, kw, dtype)
        expected = ref.rnn_backward(cell, ws64, a64["recurrent_kernel"], _d64(d_out, dtype), _d64(d_h, dtype),
                                    _d64(d_c, dtype), mask=args["mask"], recurrent_masks=a64["recurrent_masks"],
                                    recurrent_bias=a64["recurrent_bias"], **kw)
    finite = _finite(*args.values(), d_out, d_h, d_c, *expected, *out[:3])
    _check(got, expected, dtype, finite)
