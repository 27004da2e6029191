"""Property-based fuzzing of the convolution bindings (csrc/python/bind_conv.cpp), with the harness of
test_fuzz_bindings.py (``fastnn.testing.fuzz``): random geometries (batch 0-3, sizes 0-9, kernels 0-4, strides,
dilation, padding modes and explicit paddings, groups, valid or not), dtypes (float32 / float64 and ones that must
raise TypeError), memory layouts (the bindings take C-contiguous aligned native buffers only, anything else must
raise), NaN / inf / denormals, bias, activation, accumulation buffers and malformed hyper-parameters. A valid call of
a fast kernel must match its reference twin (checked against NumPy in tests/kernels/test_conv.py) to the float
tolerance of the sum of |terms|, with NaN in the same places; an invalid one must raise TypeError or ValueError.
test_fuzz_bindings.py's FUZZ_TARGETS names these targets."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fastnn import _C
from fastnn.testing import fuzz as fz

ERR = (TypeError, ValueError)
TARGETS = ("conv2d_forward", "conv2d_forward_ref", "conv2d_backward_input", "conv2d_backward_input_ref",
           "conv2d_backward_weight", "conv2d_backward_weight_ref", "conv_same_padding", "depthwise_conv2d_forward",
           "depthwise_conv2d_forward_ref", "depthwise_conv2d_backward_input", "depthwise_conv2d_backward_input_ref",
           "depthwise_conv2d_backward_weight", "depthwise_conv2d_backward_weight_ref")
EPS = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


def _same(size, kernel, stride, dilation):
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _hyper(data):
    """strides, dilation, padding and groups: mostly valid, sometimes not; returns them and whether strides, dilation
    and padding are valid (groups is checked by the caller: depthwise has none)."""
    def pick(valid, invalid, label):  # an invalid value one time in ~25
        return data.draw(st.sampled_from(valid * (24 // len(valid) + 1) + invalid), label=label)

    strides = pick([1, 1, 2, 3, (1, 2), (3, 1)], [0, (1, -1), 1.5, (1, 2, 3), "1"], "strides")
    dilation = pick([1, 1, 1, 2, (2, 1)], [0, (1, 0), None], "dilation")
    padding = pick(["valid", "same", "same", 1, (0, 1, 2, 0), (2, 2, 1, 1)], [-1, (0, 0, 0, -1), "full", (1, 1), True],
                   "padding")
    groups = pick([1, 1, 1, 2, 3], [0, -1], "groups")

    def ints(v, count):
        return isinstance(v, int) and not isinstance(v, bool) or (
            isinstance(v, tuple) and len(v) == count and all(isinstance(e, int) and not isinstance(e, bool) for e in v))

    ok = ints(strides, 2) and ints(dilation, 2) and min(_pair(strides)) >= 1 and min(_pair(dilation)) >= 1
    if isinstance(padding, str):
        ok = ok and padding in ("valid", "same")
    else:
        ok = ok and ints(padding, 4) and min(padding if isinstance(padding, tuple) else (padding,)) >= 0
    return dict(strides=strides, dilation=dilation, padding=padding, groups=groups), ok


def _geometry(x_shape, k_shape, hp, depthwise=False):
    """The output shape of a valid convolution, or None where the bindings must refuse the geometry. A depthwise
    kernel (KH, KW, C, M) is checked as the grouped kernel (KH, KW, 1, C*M) with groups = C."""
    n, h, w, c = x_shape
    if depthwise:
        if k_shape[2] != c:
            return None
        k_shape = (k_shape[0], k_shape[1], 1 if c else 0, c * k_shape[3] if c else k_shape[3])
        hp = dict(hp, groups=max(c, 1))
        out = _geometry(x_shape, k_shape, hp)
        return None if out is None else out[:3] + (k_shape[3] if c else 0,)
    kh, kw, cg, f = k_shape
    g = hp["groups"]
    if kh < 1 or kw < 1 or c % g or f % g or cg * g != c:
        return None
    (sh, sw), (dh, dw) = _pair(hp["strides"]), _pair(hp["dilation"])
    pad = hp["padding"]
    if pad == "valid":
        pads = (0, 0, 0, 0)
    elif pad == "same":
        pads = _same(h, kh, sh, dh) + _same(w, kw, sw, dw)
    else:
        pads = (pad,) * 4 if isinstance(pad, int) else pad
    spans = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    padded = (h + pads[0] + pads[1], w + pads[2] + pads[3])
    if spans[0] > padded[0] or spans[1] > padded[1]:
        return None
    return (n, (padded[0] - spans[0]) // sh + 1, (padded[1] - spans[1]) // sw + 1, f)


def _draw_case(data, target, depthwise=False):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    fz.case(target)
    hp, hp_ok = _hyper(data)
    g = hp["groups"] if hp["groups"] >= 1 else 1
    if not depthwise:
        hp_ok = hp_ok and hp["groups"] >= 1
    n = data.draw(st.integers(0, 3), label="n")
    sizes = st.sampled_from((0, 1, 2) + tuple(range(3, 10)) * 4)  # mostly large enough for the (dilated) kernel
    h, w = data.draw(sizes, label="h"), data.draw(sizes, label="w")
    cg, fg = data.draw(st.integers(0, 4), label="cg"), data.draw(st.integers(0, 4), label="fg")
    kh, kw = data.draw(st.sampled_from([1, 1, 2, 3, 3, 4] * 4 + [0]), label="kh"), data.draw(
        st.sampled_from([1, 1, 2, 3, 3, 4] * 4 + [0]), label="kw")
    c = cg * g + data.draw(st.sampled_from([0] * 30 + [1]), label="channel_mismatch")
    x_shape, k_shape = (n, h, w, c), (kh, kw, cg, fg * g)
    if depthwise:  # no groups argument; kernel (KH, KW, C, multiplier)
        del hp["groups"]
        k_shape = (kh, kw, cg + data.draw(st.sampled_from([0] * 30 + [1]), label="dw_channel_mismatch"), fg)
        x_shape = (n, h, w, cg)
    return rng, hp, hp_ok, x_shape, k_shape


def _array(data, rng, shape, dtype, label):
    rate = data.draw(st.sampled_from([0.0, 0.0, 0.0, 0.05]), label=f"{label}_special_rate")
    kind = data.draw(st.sampled_from(("c",) * 120 + fz.LAYOUTS + ("ndim",)), label=f"{label}_layout")
    x = fz.values(rng, shape, dtype, rate) if dtype in fz.FLOATS else np.ones(shape, dtype)
    if kind == "ndim":
        return x.reshape(x.shape[0], x.shape[1], x.shape[2] * x.shape[3]), False
    x = fz.layout(x, kind)
    return x, fz.c_ready(x)


def _dtype(data):
    return data.draw(st.sampled_from(fz.FLOATS * 40 + fz.BAD_DTYPES[:4]), label="dtype")


def _bound(fn, absolute_args, kw):
    """sum of |terms| of each output (the reference twin on absolute values), for the tolerance."""
    with np.errstate(all="ignore"):
        return fn(*absolute_args, **kw)


def _close(result, expected, bound, dtype):
    fz.assert_close(np.isnan(result), np.isnan(expected), 0, 0)
    finite = np.isfinite(expected) & np.isfinite(bound)
    infinite = np.isinf(expected)  # an infinite term (or a single overflowing product): the same infinity
    np.testing.assert_array_equal(result[infinite], expected[infinite])
    err = np.abs(result[finite].astype(np.float64) - expected[finite].astype(np.float64))
    assert np.all(err <= 8 * EPS[np.dtype(dtype)] * bound[finite] + np.finfo(dtype).tiny * 64), err.max(initial=0)


def _abs(a):
    return np.abs(fz.daz(a, a.dtype)).astype(a.dtype)


@given(st.data())
@settings(max_examples=fz.examples(1.0))
def test_conv2d_forward(data):
    _forward(data, reference=False)


@given(st.data())
@settings(max_examples=fz.examples(0.5))
def test_conv2d_forward_ref(data):
    _forward(data, reference=True)


def _forward(data, reference, depthwise=False):
    base = ("depthwise_" if depthwise else "") + "conv2d_forward"
    name = base + ("_ref" if reference else "")
    rng, hp, hp_ok, x_shape, k_shape = _draw_case(data, name, depthwise)
    dtype = _dtype(data)
    x, x_ok = _array(data, rng, x_shape, dtype, "x")
    w, w_ok = _array(data, rng, k_shape, data.draw(st.sampled_from([dtype] * 40 + list(fz.FLOATS)), label="wdtype"),
                     "w")
    bias_kind = data.draw(st.sampled_from([None, "ok"] * 12 + ["shape", "dtype"]), label="bias")
    channels_out = k_shape[2] * k_shape[3] if depthwise else k_shape[3]
    bias = None if bias_kind is None else fz.values(rng, (channels_out + (bias_kind == "shape"),),
                                                     np.float16 if bias_kind == "dtype" else dtype)
    activation = data.draw(st.sampled_from(["linear", "relu"] * 12 + ["tanh"]), label="activation")
    out_shape = _geometry(x_shape, k_shape, hp, depthwise) if hp_ok else None
    valid = (x_ok and w_ok and x.dtype == w.dtype and out_shape is not None and activation != "tanh"
             and bias_kind in (None, "ok"))
    fn = getattr(_C, name)
    if not valid:
        fz.expect(lambda: fn(x, w, bias, activation=activation, **hp), None, None, must_raise=ERR)
        return
    other = getattr(_C, base if reference else base + "_ref")

    def check(y, expected):
        assert y.shape == out_shape and y.dtype == dtype
        abs_bias = None if bias is None else _abs(bias)
        _close(y, expected, _bound(getattr(_C, base + "_ref"), (_abs(x), _abs(w), abs_bias), hp), dtype)

    fz.expect(lambda: fn(x, w, bias, activation=activation, **hp),
              lambda: other(x, w, bias, activation=activation, **hp), check, errors=())


@given(st.data())
@settings(max_examples=fz.examples(1.0))
def test_conv2d_backward_input(data):
    _backward_input(data, reference=False)


@given(st.data())
@settings(max_examples=fz.examples(0.5))
def test_conv2d_backward_input_ref(data):
    _backward_input(data, reference=True)


def _backward_input(data, reference, depthwise=False):
    base = ("depthwise_" if depthwise else "") + "conv2d_backward_input"
    name = base + ("_ref" if reference else "")
    rng, hp, hp_ok, x_shape, k_shape = _draw_case(data, name, depthwise)
    dtype = _dtype(data)
    out_shape = _geometry(x_shape, k_shape, hp, depthwise) if hp_ok else None
    dy_shape = out_shape if out_shape is not None else (1, 1, 1, k_shape[3])
    if out_shape is not None and data.draw(st.integers(0, 30), label="dy_mismatch") == 0:
        dy_shape = dy_shape[:3] + (dy_shape[3] + 1,)
    dy, dy_ok = _array(data, rng, dy_shape, dtype, "dy")
    w, w_ok = _array(data, rng, k_shape, dtype, "w")
    shape_arg = data.draw(st.sampled_from([x_shape] * 24 + [list(x_shape), x_shape[:3], (-1,) + x_shape[1:]]),
                          label="input_shape")
    valid = (dy_ok and w_ok and out_shape is not None and dy.shape == out_shape and len(shape_arg) == 4
             and min(shape_arg) >= 0)
    fn = getattr(_C, name)
    if not valid:
        fz.expect(lambda: fn(dy, w, shape_arg, **hp), None, None, must_raise=ERR)
        return
    other = getattr(_C, base if reference else base + "_ref")

    def check(dx, expected):
        assert dx.shape == x_shape and dx.dtype == dtype
        _close(dx, expected, _bound(getattr(_C, base + "_ref"), (_abs(dy), _abs(w), x_shape), hp), dtype)

    fz.expect(lambda: fn(dy, w, shape_arg, **hp), lambda: other(dy, w, x_shape, **hp), check, errors=())


@given(st.data())
@settings(max_examples=fz.examples(1.0))
def test_conv2d_backward_weight(data):
    _backward_weight(data, reference=False)


@given(st.data())
@settings(max_examples=fz.examples(0.5))
def test_conv2d_backward_weight_ref(data):
    _backward_weight(data, reference=True)


def _backward_weight(data, reference, depthwise=False):
    base = ("depthwise_" if depthwise else "") + "conv2d_backward_weight"
    name = base + ("_ref" if reference else "")
    rng, hp, hp_ok, x_shape, k_shape = _draw_case(data, name, depthwise)
    dtype = _dtype(data)
    out_shape = _geometry(x_shape, k_shape, hp, depthwise) if hp_ok else None
    x, x_ok = _array(data, rng, x_shape, dtype, "x")
    dy, dy_ok = _array(data, rng, out_shape if out_shape is not None else (1, 1, 1, k_shape[3]), dtype, "dy")
    with_bias = data.draw(st.booleans(), label="with_bias")
    acc = data.draw(st.sampled_from([None] * 12 + ["ok"] * 8 + ["shape", "readonly"]), label="dw")
    dw = None
    if acc is not None:
        dw = fz.values(rng, k_shape if acc != "shape" else k_shape[:3] + (k_shape[3] + 1,), dtype)
        dw.flags.writeable = acc != "readonly"
    dw0 = None if dw is None else dw.copy()
    valid = x_ok and dy_ok and out_shape is not None and dy.shape == out_shape and acc in (None, "ok")
    fn = getattr(_C, name)
    if not valid:
        fz.expect(lambda: fn(x, dy, k_shape, with_bias=with_bias, dw=dw, **hp), None, None, must_raise=ERR)
        return
    other = getattr(_C, base if reference else base + "_ref")

    def check(result, expected):
        got_dw, got_db = result
        want_dw, want_db = expected
        if dw0 is not None:
            assert got_dw is dw
            with np.errstate(all="ignore"):
                want_dw = (want_dw + fz.daz(dw0, dtype)).astype(dtype)
        assert got_dw.shape == k_shape and got_dw.dtype == dtype
        bound_dw, bound_db = _bound(getattr(_C, base + "_ref"), (_abs(x), _abs(dy), k_shape), hp)
        if dw0 is not None:
            bound_dw = bound_dw + _abs(dw0)
        _close(got_dw, want_dw, bound_dw, dtype)
        if with_bias:
            _close(got_db, want_db, bound_db, dtype)
        else:
            assert got_db is None

    fz.expect(lambda: fn(x, dy, k_shape, with_bias=with_bias, dw=dw, **hp),
              lambda: other(x, dy, k_shape, with_bias=with_bias, **hp), check, errors=())


@given(st.data())
@settings(max_examples=fz.examples(0.7))
def test_depthwise_conv2d_forward(data):
    _forward(data, reference=False, depthwise=True)


@given(st.data())
@settings(max_examples=fz.examples(0.3))
def test_depthwise_conv2d_forward_ref(data):
    _forward(data, reference=True, depthwise=True)


@given(st.data())
@settings(max_examples=fz.examples(0.7))
def test_depthwise_conv2d_backward_input(data):
    _backward_input(data, reference=False, depthwise=True)


@given(st.data())
@settings(max_examples=fz.examples(0.3))
def test_depthwise_conv2d_backward_input_ref(data):
    _backward_input(data, reference=True, depthwise=True)


@given(st.data())
@settings(max_examples=fz.examples(0.7))
def test_depthwise_conv2d_backward_weight(data):
    _backward_weight(data, reference=False, depthwise=True)


@given(st.data())
@settings(max_examples=fz.examples(0.3))
def test_depthwise_conv2d_backward_weight_ref(data):
    _backward_weight(data, reference=True, depthwise=True)


@given(st.data())
def test_conv_same_padding(data):
    fz.case("conv_same_padding")
    size = data.draw(st.integers(-2, 40), label="size")
    kernel, stride, dilation = (data.draw(st.integers(0, 6) | st.integers(1, 6), label=n)
                                for n in ("kernel", "stride", "dilation"))
    if size < 0 or min(kernel, stride, dilation) < 1:
        fz.expect(lambda: _C.conv_same_padding(size, kernel, stride, dilation), None, None, must_raise=ERR)
        return
    assert _C.conv_same_padding(size, kernel, stride, dilation) == _same(size, kernel, stride, dilation)


def test_every_target_here_exists():
    missing = [name for name in TARGETS if not hasattr(_C, name)]
    assert not missing, missing
