"""Property-based fuzzing of the broadcasting elementwise and reduction bindings (csrc/python/bind_binary.cpp), with
the harness of test_fuzz_bindings.py (``fastnn.testing.fuzz``): random shapes and broadcasting patterns (compatible
or not), dtypes (float32 / float64 and ones that must raise TypeError), memory layouts (the bindings take C-contiguous
aligned native buffers only, anything else must raise), NaN / inf / signed zeros / denormals, out= buffers (valid,
misshapen, mistyped, read-only, aliased), reduction axes (adjacent or not, out of range, duplicated) and Python
types. A valid call must equal NumPy's answer on the denormals-are-zero inputs (the kernels' rule, parallel.h), an
invalid one must raise TypeError or ValueError. test_fuzz_bindings.py's FUZZ_TARGETS names these targets."""
from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from fastnn import _C
from fastnn.testing import fuzz as fz

ERR = (TypeError, ValueError)
BINARY = ("add", "subtract", "multiply", "divide", "maximum", "minimum", "add_relu")


def _np_binary(op, a, b):
    """NumPy's function of a binary op name; add_relu = fastnn's ReLU (s < 0 ? 0 : s) of np.add."""
    if op == "add_relu":
        s = np.add(a, b)
        return np.where(s < 0, np.zeros_like(s), s)
    return getattr(np, op)(a, b)
COMPARE = ("equal", "not_equal", "less", "less_equal", "greater", "greater_equal")
TARGETS = ("binary", "compare", "where", "clip", "relu_mask_multiply", "dropout_mask_multiply", "reduce_sum",
           "reduce_mean", "reduce_max", "unbroadcast")


# The argument generators shared by the binding fuzzers (fastnn.testing.fuzz).
_rng = fz.draw_rng
_dtype = fz.draw_dtype
_array = fz.draw_array


def _bools(data, rng, shape, label):
    kind = data.draw(st.sampled_from(("c",) * 20 + ("bad_dtype", "sliced", "neg")), label=f"{label}_layout")
    b = np.asarray(rng.random(shape) < 0.5)
    if kind == "bad_dtype":
        return b.astype(np.float32)
    return fz.layout(b, kind) if kind != "c" else b


@st.composite
def _broadcast_pair(draw):
    """An output shape and an operand shape broadcasting to it (leading axes dropped, some sizes set to 1), or now
    and then one that does not broadcast."""
    out = draw(fz.shapes(max_dims=4))
    keep = draw(st.integers(0, len(out)))
    shape = [1 if draw(st.booleans()) and draw(st.booleans()) else s for s in out[len(out) - keep:]]
    if shape and draw(st.integers(0, 9)) == 0:
        shape[draw(st.integers(0, len(shape) - 1))] += 1  # usually incompatible now
    return out, tuple(shape)


def _broadcasts(*shapes):
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        return None


def _ftz(x, dtype):
    """The reference result with denormal results flushed (FTZ), in dtype."""
    with np.errstate(all="ignore"):
        return fz.daz(np.asarray(x, np.float64), dtype).astype(dtype)


def _d(x, dtype):
    """Inputs as the kernels see them: denormals as zeros, in dtype."""
    return fz.daz(x, dtype).astype(dtype)


def _close(out, ref, dtype, slack=1):
    # atol: a denormal-sized difference (FTZ of a result, or which of a denormal and a zero a tie returned)
    fz.assert_close(out, ref, 0, slack * np.finfo(dtype).tiny)


def _out(data, shape, dtype, inputs):
    """None, a valid out buffer, or a bad one; returns (out, valid)."""
    kind = data.draw(st.sampled_from([None] * 14 + ["ok", "ok", "ok", "shape", "dtype", "readonly", "alias", "list"]),
                     label="out")
    if kind is None:
        return None, True
    if kind == "ok":
        return np.full(shape, 7, dtype), True
    if kind == "shape":
        return np.zeros(tuple(shape) + (2,), dtype), False
    if kind == "dtype":
        return np.zeros(shape, np.float16), False
    if kind == "readonly":
        o = np.zeros(shape, dtype)
        o.flags.writeable = False
        return o, False
    if kind == "alias":
        # the first input as out: valid when it has the output's exact shape and dtype (an in-place update)
        x = inputs[0]
        ok = x.shape == tuple(shape) and x.dtype == np.dtype(dtype) and x.flags.writeable and fz.c_ready(x)
        return x, ok
    return [0.0], False


@given(st.data())
def test_binary(data):
    _binary_or_compare(data, "binary")


@given(st.data())
def test_compare(data):
    _binary_or_compare(data, "compare")


def _binary_or_compare(data, which):
    rng = _rng(data)
    op = data.draw(st.sampled_from((BINARY if which == "binary" else COMPARE) + ("pow",)), label="op")
    fz.case(which)
    out_shape, b_shape = data.draw(_broadcast_pair(), label="shapes")
    if data.draw(st.booleans(), label="swap"):
        out_shape, b_shape = b_shape, out_shape
    dtype = _dtype(data)
    bdtype = data.draw(st.sampled_from([dtype] * 6 + list(fz.FLOATS)), label="bdtype")
    a, b = _array(data, rng, out_shape, dtype, "a"), _array(data, rng, b_shape, bdtype, "b")
    shape = _broadcasts(a.shape, b.shape)
    res_dtype = np.dtype(bool) if which == "compare" else a.dtype
    valid = fz.c_ready(a, b) and a.dtype == b.dtype and shape is not None and op != "pow"
    out, out_ok = _out(data, shape if shape is not None else (1,), res_dtype, [a, b])
    fn = getattr(_C, which)
    if not (valid and out_ok):
        fz.expect(lambda: fn(a, b, op, out), None, None, must_raise=ERR)
        return
    reference = data.draw(st.booleans(), label="reference")
    a_copy = a.copy()  # the reference must not see an in-place result

    def ref():
        with np.errstate(all="ignore"):
            r = (_np_binary(op, _d(a_copy, dtype), _d(b, dtype)) if which == "binary" else
                 getattr(np, op)(_d(a_copy, dtype), _d(b, dtype)))
        return r if which == "compare" else _ftz(r, dtype)

    def check(result, expected):
        assert result.shape == shape and result.dtype == res_dtype
        if out is not None:
            assert result is out
        if which == "compare":
            np.testing.assert_array_equal(result, expected)
        else:
            _close(result, expected, dtype)

    fz.expect(lambda: fn(a, b, op, out, reference), ref, check, errors=())


@given(st.data())
def test_where(data):
    rng = _rng(data)
    fz.case("where")
    out_shape, b_shape = data.draw(_broadcast_pair(), label="shapes")
    c_shape = data.draw(st.sampled_from([out_shape, b_shape, out_shape[1:], ()]), label="cond_shape")
    dtype = _dtype(data)
    cond = _bools(data, rng, c_shape, "cond")
    a = _array(data, rng, out_shape, dtype, "a")
    b = _array(data, rng, b_shape, data.draw(st.sampled_from([dtype] * 6 + list(fz.FLOATS)), label="bdtype"), "b")
    shape = _broadcasts(cond.shape, a.shape, b.shape)
    valid = (fz.c_ready(a, b) and a.dtype == b.dtype and cond.dtype == bool and cond.flags.c_contiguous
             and shape is not None)
    out, out_ok = _out(data, shape if shape is not None else (1,), a.dtype, [a, b])
    if not (valid and out_ok):
        fz.expect(lambda: _C.where(cond, a, b, out), None, None, must_raise=ERR)
        return
    reference = data.draw(st.booleans(), label="reference")
    expected = np.where(cond, a, b)  # a pure select: even denormals come through unchanged

    def check(result, _):
        assert result.shape == shape and result.dtype == a.dtype
        fz.assert_close(result, expected, 0, 0)
        np.testing.assert_array_equal(np.signbit(result), np.signbit(expected))

    fz.expect(lambda: _C.where(cond, a, b, out, reference), lambda: None, check, errors=())


BOUNDS = (None, 0.0, -0.0, 0.5, -1.0, 1, 2.5, np.nan, np.inf, -np.inf, 1e-40)


@given(st.data())
def test_clip(data):
    rng = _rng(data)
    fz.case("clip")
    dtype = _dtype(data)
    x = _array(data, rng, data.draw(fz.shapes(), label="shape"), dtype, "x")
    lo = data.draw(st.sampled_from(BOUNDS + ("0", [0.0], True)), label="lo")
    hi = data.draw(st.sampled_from(BOUNDS), label="hi")
    valid = fz.c_ready(x) and type(lo) in (float, int, type(None))  # (no bound here overflows float32)
    out, out_ok = _out(data, x.shape, x.dtype, [x])
    if not (valid and out_ok):
        fz.expect(lambda: _C.clip(x, lo, hi, out), None, None, must_raise=ERR)
        return
    reference = data.draw(st.booleans(), label="reference")
    x_copy = x.copy()

    def ref():
        # the bounds are rounded to x's dtype (and a denormal bound compares as zero), as the kernel sees them
        def bound(v):
            return None if v is None else _d(np.asarray(v, np.float64), dtype)[()]

        xs = _d(x_copy, dtype)
        if lo is None and hi is None:
            return xs
        with np.errstate(all="ignore"):
            return np.clip(xs, bound(lo), bound(hi))

    def check(result, expected):
        assert result.shape == x.shape and result.dtype == x.dtype
        _close(result, expected, dtype)

    fz.expect(lambda: _C.clip(x, lo, hi, out, reference), ref, check, errors=())


@given(st.data())
def test_relu_mask_multiply(data):
    rng = _rng(data)
    fz.case("relu_mask_multiply")
    dtype = _dtype(data)
    shape = data.draw(fz.shapes(), label="shape")
    y_shape = data.draw(st.sampled_from([shape] * 8 + [shape + (1,), shape[1:]]), label="y_shape")
    g = _array(data, rng, shape, dtype, "g")
    y = _array(data, rng, y_shape, data.draw(st.sampled_from([dtype] * 6 + list(fz.FLOATS)), label="ydtype"), "y")
    valid = fz.c_ready(g, y) and g.dtype == y.dtype and g.shape == y.shape
    out, out_ok = _out(data, shape, g.dtype, [g, y])
    if not (valid and out_ok):
        fz.expect(lambda: _C.relu_mask_multiply(g, y, out), None, None, must_raise=ERR)
        return
    reference = data.draw(st.booleans(), label="reference")
    g_copy = g.copy()

    def ref():
        with np.errstate(all="ignore"):
            return _ftz(_d(g_copy, dtype) * (_d(y, dtype) > 0), dtype)

    fz.expect(lambda: _C.relu_mask_multiply(g, y, out, reference), ref,
              lambda result, expected: _close(result, expected, dtype), errors=())


@given(st.data())
def test_dropout_mask_multiply(data):
    rng = _rng(data)
    fz.case("dropout_mask_multiply")
    dtype = _dtype(data)
    x_shape, m_shape = data.draw(_broadcast_pair(), label="shapes")
    if data.draw(st.integers(0, 9), label="swap") == 0:
        x_shape, m_shape = m_shape, x_shape
    x = _array(data, rng, x_shape, dtype, "x")
    mask = _bools(data, rng, m_shape, "mask")
    scale = data.draw(st.sampled_from([2.0, 1 / 0.7, 1.0, 0.0, np.inf, 1e300]), label="scale")
    valid = (fz.c_ready(x) and mask.dtype == bool and mask.flags.c_contiguous
             and _broadcasts(x.shape, mask.shape) == x.shape and not (dtype == np.float32 and scale == 1e300))
    out, out_ok = _out(data, x.shape, x.dtype, [x])
    if not (valid and out_ok):
        fz.expect(lambda: _C.dropout_mask_multiply(x, mask, scale, out), None, None, must_raise=ERR)
        return
    reference = data.draw(st.booleans(), label="reference")
    x_copy = x.copy()

    def ref():
        with np.errstate(all="ignore"):
            s = np.asarray(scale).astype(dtype)
            return _ftz(_ftz(_d(x_copy, dtype) * mask, dtype) * s, dtype)

    fz.expect(lambda: _C.dropout_mask_multiply(x, mask, scale, out, reference), ref,
              lambda result, expected: _close(result, expected, dtype, 2), errors=())


def _draw_axis(data, ndim):
    choices = [None, None, None, 0, 0, -1, -1, 1, (0,), (0, 1), (0, 1), (1, 2), (-2, -1), (0, 2), ndim, (-1, -1), 1.5,
               (0, "1")]
    return data.draw(st.sampled_from(choices), label="axis")


def _axis_set(axis, shape):
    """The reduced axes, or None when NumPy would reject the axis argument."""
    nd = len(shape)
    items = list(range(nd)) if axis is None else list(axis) if isinstance(axis, tuple) else [axis]
    if not all(type(a) is int and -nd <= a < nd for a in items):
        return None
    norm = [a % nd for a in items] if nd else []
    return None if len(set(norm)) != len(norm) else sorted(norm)


def _adjacent(shape, axes):
    """What the kernels take: the reduced axes form one run once size-1 axes are ignored."""
    stage = 0
    for d, s in enumerate(shape):
        if s == 1:
            continue
        if d in axes:
            if stage == 2:
                return False
            stage = 1
        elif stage == 1:
            stage = 2
    return True


@given(st.data())
def test_reduce_sum(data):
    _reduction(data, "reduce_sum")


@given(st.data())
def test_reduce_mean(data):
    _reduction(data, "reduce_mean")


@given(st.data())
def test_reduce_max(data):
    _reduction(data, "reduce_max")


def _reduction(data, kind):
    rng = _rng(data)
    fz.case(kind)
    dtype = _dtype(data)
    x = _array(data, rng, data.draw(fz.shapes(), label="shape"), dtype, "x")
    axis = _draw_axis(data, x.ndim)
    keepdims = data.draw(st.booleans(), label="keepdims")
    axes = _axis_set(axis, x.shape)
    count = 0 if axes is None else int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    valid = (fz.c_ready(x) and axes is not None and _adjacent(x.shape, axes)
             and (kind == "reduce_sum" or count > 0))
    fn = getattr(_C, kind)
    if not valid:
        fz.expect(lambda: fn(x, axis, keepdims), None, None, must_raise=ERR)
        return
    reference = data.draw(st.booleans(), label="reference")
    np_fn = {"reduce_sum": np.sum, "reduce_mean": np.mean, "reduce_max": np.max}[kind]

    def ref():
        with np.errstate(all="ignore"):
            return np.asarray(np_fn(_d(x, dtype), axis=tuple(axes), keepdims=keepdims))

    def check(result, expected):
        assert result.shape == expected.shape and result.dtype == x.dtype
        if reference and kind != "reduce_max":  # the twins sum in double: pairwise-sum error bound
            mag = np.asarray(np.sum(np.abs(_d(x, dtype).astype(np.float64)), axis=tuple(axes), keepdims=keepdims))
            if kind == "reduce_mean":
                mag = mag / max(count, 1)
            finite = np.isfinite(expected) & np.isfinite(mag)
            fz.assert_close(np.where(finite, 0, result), np.where(finite, 0, expected), 0, 0)
            assert np.all(np.abs(result[finite] - expected[finite].astype(np.float64))
                          <= 4 * (count + 2) * np.finfo(dtype).eps * mag[finite] + (count + 1) * np.finfo(dtype).tiny)
        else:  # NumPy's order: equal but for FTZ of denormal partial sums
            _close(result, expected, dtype, count + 1)

    fz.expect(lambda: fn(x, axis, keepdims, reference), ref, check, errors=())


@given(st.data())
def test_unbroadcast(data):
    rng = _rng(data)
    fz.case("unbroadcast")
    dtype = _dtype(data)
    g_shape, shape = data.draw(_broadcast_pair(), label="shapes")
    g = _array(data, rng, g_shape, dtype, "g")
    as_type = data.draw(st.sampled_from(["tuple"] * 6 + ["list", "bad", "longer"]), label="shape_type")
    arg = list(shape) if as_type == "list" else (1.5,) + shape if as_type == "bad" else (2,) + g_shape \
        if as_type == "longer" else shape
    lead = g.ndim - len(shape)
    valid = fz.c_ready(g) and as_type in ("tuple", "list") and _broadcasts(g_shape, shape) == g_shape
    axes = []
    if valid:
        axes = list(range(lead)) + [lead + i for i, s in enumerate(shape) if s == 1 and g_shape[lead + i] != 1]
        valid = _adjacent(g_shape, axes)
    if not valid:
        fz.expect(lambda: _C.unbroadcast(g, arg), None, None, must_raise=ERR)
        return
    reference = data.draw(st.booleans(), label="reference")
    count = int(np.prod([g_shape[a] for a in axes], dtype=np.int64)) if axes else 1

    def ref():
        with np.errstate(all="ignore"):
            return np.sum(_d(g, dtype), axis=tuple(axes)).reshape(shape) if axes else _d(g, dtype)

    def check(result, expected):
        assert result.shape == shape and result.dtype == g.dtype
        if reference:
            fz.assert_close(result, expected, 4 * (count + 2) * np.finfo(dtype).eps, 1e-30)
        else:
            _close(result, expected, dtype, count + 1)

    fz.expect(lambda: _C.unbroadcast(g, arg, reference), ref, check, errors=())


def test_every_target_here_exists():
    missing = [name for name in TARGETS if not hasattr(_C, name)]
    assert not missing, missing
