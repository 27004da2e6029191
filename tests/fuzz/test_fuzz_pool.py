"""Property-based fuzzing of the pooling and batch-normalization bindings (csrc/python/bind_pool.cpp,
bind_batchnorm.cpp), with the harness of
test_fuzz_bindings.py (``fastnn.testing.fuzz``): random NHWC shapes (size 0 and 1, primes), windows, strides and
paddings (valid, same, explicit, and out-of-range ones that must raise), dtypes (float32 / float64 and ones that must
raise TypeError), memory layouts (only C-contiguous aligned native buffers are taken), NaN / inf / signed zeros /
denormals, forged argmax arrays (out of range, another image or channel: ValueError, never a write out of bounds) and
Python types. A valid call must equal the float64 NumPy reference on the denormals-are-zero inputs (the kernels' rule,
parallel.h); an invalid one must raise TypeError or ValueError. test_fuzz_bindings.py's FUZZ_TARGETS names these
targets."""
from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from fastnn import _C
from fastnn.testing import fuzz as fz

ERR = (TypeError, ValueError)
TARGETS = ("max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward",
           "global_avg_pool2d_forward", "global_avg_pool2d_backward", "global_max_pool2d_forward",
           "global_max_pool2d_backward", "batch_norm_train_forward", "batch_norm_inference_forward",
           "batch_norm_backward")
SIZES = (0, 1, 1, 2, 3, 3, 4, 5, 5, 7, 8, 13)


# The argument generators shared by the binding fuzzers (fastnn.testing.fuzz).
_rng = fz.draw_rng
_dtype = fz.draw_dtype
_array = fz.draw_array


def _nhwc(data):
    shape = tuple(data.draw(st.sampled_from(SIZES if i in (0, 3) else SIZES[1:]), label=f"dim{i}") for i in range(4))
    if data.draw(st.integers(0, 29), label="empty_spatial") == 0:
        shape = (shape[0], 0) + shape[2:]
    return shape if data.draw(st.integers(0, 19), label="rank_ok") else shape[1:]


def _pair(data, label):
    """(the argument passed, its values or None when the binding must refuse it)."""
    # valid choices first: hypothesis draws the first entries of a list most often
    v = data.draw(st.sampled_from([2, 1, 3, (1, 2), (2, 1), (3, 3), (2, 3), (2, 2)] * 16
                                  + [0, (0, 1), -1, (2,), 2.0, (1, True), 2 ** 41, "2"]), label=label)
    if type(v) is int:
        return v, ((v, v) if 1 <= v <= 2 ** 40 else None)
    if isinstance(v, tuple) and len(v) == 2 and all(type(e) is int and 1 <= e for e in v):
        return v, v
    return v, None


def _same(n, k, s):
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def _padding(data, shape, pool, strides):
    """(the argument, the pads or None when refused)."""
    v = data.draw(st.sampled_from(["valid", "same"] * 30 + ["full", (0, 0, 0, 0), (1, 0, 1, 0), (0, 1, 0, 1),
                                                           (1, 1, 1, 1), (2, 0, 0, 0), (0, 0, -1, 0), (1, 1), None]),
                  label="padding")
    if pool is None or strides is None or len(shape) != 4:
        return v, None
    if v == "valid":
        return v, (0, 0, 0, 0)
    if v == "same":
        return v, _same(shape[1], pool[0], strides[0]) + _same(shape[2], pool[1], strides[1])
    if isinstance(v, tuple) and len(v) == 4 and min(v) >= 0:
        return v, v
    return v, None


def _params_ok(shape, pool, strides, pads):
    if len(shape) != 4 or pool is None or strides is None or pads is None or shape[1] == 0 or shape[2] == 0:
        return False
    t, b, l, r = pads
    if t >= pool[0] or b >= pool[0] or l >= pool[1] or r >= pool[1]:
        return False
    return pool[0] <= shape[1] + t + b and pool[1] <= shape[2] + l + r


_windows = fz.pool_windows


def _d(x, dtype):
    """Inputs as the kernels see them: denormals as zeros, in float64."""
    return fz.daz(np.asarray(x, np.float64), dtype)


def _check_max(y, argmax, x, pool, strides, pads, dtype):
    """y is each window's maximum (NaN if it holds one), argmax a position of its window holding y."""
    xd = _d(x, dtype)
    win, iwin = _windows(xd, pool, strides, pads, -np.inf)
    with np.errstate(invalid="ignore"):
        ref = np.max(win, axis=3)
    assert y.shape == ref.shape and y.dtype == dtype and argmax.shape == ref.shape and argmax.dtype == np.int64
    fz.assert_close(_d(y, dtype), ref, 0, 0)
    assert np.all((iwin == argmax[:, :, :, None, :]).any(axis=3)), "argmax outside its window"
    fz.assert_close(xd.reshape(-1)[argmax], ref, 0, 0)


def _check_avg(y, x, pool, strides, pads, dtype):
    xd = _d(x, dtype)
    win, iwin = _windows(xd, pool, strides, pads, 0.0)
    count = (iwin >= 0).sum(axis=3)
    with np.errstate(all="ignore"):
        ref = win.sum(axis=3) / np.maximum(count, 1)
        mag = np.abs(win).sum(axis=3) / np.maximum(count, 1)
    _close_bound(y, ref, mag, pool[0] * pool[1], dtype)


def _close_bound(y, ref, mag, terms, dtype):
    """Equal to ref within a summation error bound (terms additions in dtype), NaN / inf where ref has them."""
    assert y.shape == ref.shape and y.dtype == dtype
    y64 = y.astype(np.float64)
    finite = np.isfinite(ref) & np.isfinite(mag) & (mag < np.finfo(dtype).max / 4)
    fz.assert_close(np.where(finite, 0, y64), np.where(finite, 0, ref), 0, 0)
    assert np.all(np.abs(y64[finite] - ref[finite]) <= 4 * (terms + 2) * np.finfo(dtype).eps * mag[finite]
                  + 4 * np.finfo(dtype).tiny)


@given(st.data())
def test_max_pool2d(data):
    rng = _rng(data)
    fz.case("max_pool2d_forward")
    dtype = _dtype(data)
    shape = _nhwc(data)
    x = _array(data, rng, shape, dtype, "x")
    pool_arg, pool = _pair(data, "pool")
    strides_arg, strides = _pair(data, "strides")
    pad_arg, pads = _padding(data, shape, pool, strides)
    valid = fz.c_ready(x) and _params_ok(shape, pool, strides, pads)
    if not valid:
        fz.expect(lambda: _C.max_pool2d_forward(x, pool_arg, strides_arg, pad_arg), None, None, must_raise=ERR)
        return
    reference = data.draw(st.booleans(), label="reference")
    y, argmax = _C.max_pool2d_forward(x, pool_arg, strides_arg, pad_arg, reference)
    _check_max(y, argmax, x, pool, strides, pads, dtype)

    fz.case("max_pool2d_backward")
    dy = _array(data, rng, y.shape, data.draw(st.sampled_from([dtype] * 20 + list(fz.BAD_DTYPES)), label="dy_dtype"),
                "dy")
    forge = data.draw(st.sampled_from([None] * 5 + ["past_end", "negative", "other_image", "other_channel", "int32",
                                                    "shape", "input_shape"]), label="forge")
    a = argmax.copy()
    in_shape = shape
    ok = fz.c_ready(dy) and dy.dtype == dtype
    if forge in ("past_end", "negative", "other_image", "other_channel") and a.size:
        i = data.draw(st.integers(0, a.size - 1), label="forged_at")
        n_i, c_i = i // (a.size // shape[0]), i % shape[3]
        if forge == "past_end":
            a.flat[i] = x.size + data.draw(st.sampled_from([0, 1, 2 ** 40]), label="past")
        elif forge == "negative":
            a.flat[i] = -data.draw(st.sampled_from([1, 2 ** 62]), label="neg")
        elif forge == "other_image" and shape[0] > 1:
            a.flat[i] = ((n_i + 1) % shape[0]) * (x.size // shape[0]) + c_i
        elif forge == "other_channel" and shape[3] > 1:
            a.flat[i] = (a.flat[i] // shape[3]) * shape[3] + (c_i + 1) % shape[3]
        ok = ok and np.array_equal(a, argmax)
    elif forge == "int32":
        a = a.astype(np.int32)
        ok = False
    elif forge == "shape":
        a = np.zeros(a.shape[:-1] + (a.shape[-1] + 1,), np.int64)
        ok = False
    elif forge == "input_shape":
        in_shape = (shape[0], shape[1], shape[2], shape[3] + 1)
        ok = False
    if not ok:
        fz.expect(lambda: _C.max_pool2d_backward(dy, a, in_shape), None, None, must_raise=ERR)
        return

    def ref():
        dx = np.zeros(x.size)
        with np.errstate(all="ignore"):
            np.add.at(dx, argmax.reshape(-1), _d(dy, dtype).reshape(-1))
        return dx.reshape(shape)

    def check(dx, expected):
        assert dx.shape == shape and dx.dtype == dtype
        terms = max(1, -(-pool[0] // strides[0]) * -(-pool[1] // strides[1]))
        with np.errstate(all="ignore"):
            mag = np.zeros(x.size)
            np.add.at(mag, argmax.reshape(-1), np.abs(_d(dy, dtype)).reshape(-1))
        _close_bound(dx, expected, mag.reshape(shape), terms, dtype)

    fz.expect(lambda: _C.max_pool2d_backward(dy, a, in_shape, reference), ref, check, errors=())


@given(st.data())
def test_avg_pool2d(data):
    rng = _rng(data)
    fz.case("avg_pool2d_forward")
    dtype = _dtype(data)
    shape = _nhwc(data)
    x = _array(data, rng, shape, dtype, "x")
    pool_arg, pool = _pair(data, "pool")
    strides_arg, strides = _pair(data, "strides")
    pad_arg, pads = _padding(data, shape, pool, strides)
    valid = fz.c_ready(x) and _params_ok(shape, pool, strides, pads)
    if not valid:
        fz.expect(lambda: _C.avg_pool2d_forward(x, pool_arg, strides_arg, pad_arg), None, None, must_raise=ERR)
        return
    reference = data.draw(st.booleans(), label="reference")
    y = _C.avg_pool2d_forward(x, pool_arg, strides_arg, pad_arg, reference)
    _check_avg(y, x, pool, strides, pads, dtype)

    fz.case("avg_pool2d_backward")
    bad = data.draw(st.sampled_from([None] * 6 + ["dy_shape", "dy_dtype", "input_shape", "layout"]), label="bad")
    dy_shape = y.shape if bad != "dy_shape" else y.shape[:-1] + (y.shape[-1] + 1,)
    dy = _array(data, rng, dy_shape, np.dtype(np.int32) if bad == "dy_dtype" else dtype, "dy")
    if bad == "layout":
        dy = fz.layout(dy, "sliced")
    in_shape = (shape[0], shape[1], shape[2]) if bad == "input_shape" else shape
    if bad is not None and not (bad == "layout" and fz.c_ready(dy)):
        fz.expect(lambda: _C.avg_pool2d_backward(dy, in_shape, pool_arg, strides_arg, pad_arg), None, None,
                  must_raise=ERR)
        return
    if not fz.c_ready(dy):
        fz.expect(lambda: _C.avg_pool2d_backward(dy, in_shape, pool_arg, strides_arg, pad_arg), None, None,
                  must_raise=ERR)
        return

    def ref():
        _, iwin = _windows(np.zeros(shape), pool, strides, pads, 0.0)
        count = np.maximum((iwin >= 0).sum(axis=3, keepdims=True), 1)
        dx, mag = np.zeros(x.size), np.zeros(x.size)
        dyd = _d(dy, dtype)[:, :, :, None, :]
        with np.errstate(all="ignore"):
            g = np.broadcast_to(dyd / count, iwin.shape)
            np.add.at(dx, iwin[iwin >= 0], g[iwin >= 0])
            np.add.at(mag, iwin[iwin >= 0], np.abs(g[iwin >= 0]))
        return dx.reshape(shape), mag.reshape(shape)

    def check(dx, expected):
        _close_bound(dx, expected[0], expected[1], pool[0] * pool[1] + 1, dtype)

    fz.expect(lambda: _C.avg_pool2d_backward(dy, in_shape, pool_arg, strides_arg, pad_arg, reference), ref, check,
              errors=())


def _global_input(data):
    rng = _rng(data)
    dtype = _dtype(data)
    shape = _nhwc(data)
    return rng, dtype, shape, _array(data, rng, shape, dtype, "x")


@given(st.data())
def test_global_avg_pool2d(data):
    rng, dtype, shape, x = _global_input(data)
    fz.case("global_avg_pool2d_forward")
    valid = fz.c_ready(x) and len(shape) == 4 and shape[1] > 0 and shape[2] > 0
    if not valid:
        fz.expect(lambda: _C.global_avg_pool2d_forward(x), None, None, must_raise=ERR)
        return
    reference = data.draw(st.booleans(), label="reference")
    y = _C.global_avg_pool2d_forward(x, reference)
    xd = _d(x, dtype)
    hw = shape[1] * shape[2]
    with np.errstate(all="ignore"):
        _close_bound(y, xd.sum(axis=(1, 2)) / hw, np.abs(xd).sum(axis=(1, 2)) / hw, hw, dtype)

    fz.case("global_avg_pool2d_backward")
    bad = data.draw(st.sampled_from([None] * 8 + ["dy_shape", "dy_rank", "input_shape", "hw0"]), label="bad")
    dy_shape = {"dy_shape": (shape[0], shape[3] + 1), "dy_rank": (shape[0], 1, 1, shape[3])}.get(bad, y.shape)
    dy = _array(data, rng, dy_shape, dtype, "dy")
    in_shape = {"input_shape": list(shape) + [1], "hw0": (shape[0], 0, shape[2], shape[3])}.get(bad, shape)
    if bad is not None or not fz.c_ready(dy):
        fz.expect(lambda: _C.global_avg_pool2d_backward(dy, in_shape), None, None, must_raise=ERR)
        return

    def check(dx, _):
        with np.errstate(all="ignore"):
            expected = np.broadcast_to(_d(dy, dtype)[:, None, None, :] / hw, shape)
        _close_bound(dx, expected, np.abs(expected), 2, dtype)

    fz.expect(lambda: _C.global_avg_pool2d_backward(dy, in_shape, reference), lambda: None, check, errors=())


@given(st.data())
def test_global_max_pool2d(data):
    rng, dtype, shape, x = _global_input(data)
    fz.case("global_max_pool2d_forward")
    valid = fz.c_ready(x) and len(shape) == 4 and shape[1] > 0 and shape[2] > 0
    if not valid:
        fz.expect(lambda: _C.global_max_pool2d_forward(x), None, None, must_raise=ERR)
        return
    reference = data.draw(st.booleans(), label="reference")
    y, argmax = _C.global_max_pool2d_forward(x, reference)
    y4, a4 = y.reshape(shape[0], 1, 1, shape[3]), argmax.reshape(shape[0], 1, 1, shape[3])
    _check_max(y4, a4, x, (shape[1], shape[2]), (shape[1], shape[2]), (0, 0, 0, 0), dtype)

    fz.case("global_max_pool2d_backward")
    forge = data.draw(st.sampled_from([None] * 8 + ["past_end", "other_channel", "float_argmax"]), label="forge")
    dy = _array(data, rng, y.shape, dtype, "dy")
    a = argmax.copy()
    ok = fz.c_ready(dy)
    if forge == "past_end" and a.size:
        a.flat[0] = x.size
        ok = False
    elif forge == "other_channel" and a.size and shape[3] > 1:
        a.flat[0] = a.flat[1]
        ok = False
    elif forge == "float_argmax":
        a = a.astype(np.float64)
        ok = False
    if not ok:
        fz.expect(lambda: _C.global_max_pool2d_backward(dy, a, shape), None, None, must_raise=ERR)
        return

    def check(dx, _):
        expected = np.zeros(x.size)
        expected[argmax.reshape(-1)] = _d(dy, dtype).reshape(-1)
        assert dx.shape == shape and dx.dtype == dtype
        fz.assert_close(_d(dx, dtype), expected.reshape(shape), 0, 0)

    fz.expect(lambda: _C.global_max_pool2d_backward(dy, a, shape, reference), lambda: None, check, errors=())


# -- batch normalization over the channel axis of (M, C) (bind_batchnorm.cpp) ----------------------------------------

BN_SIZES = (3, 1, 2, 5, 8, 17, 64, 257, 1, 0)
EPSILONS = [1e-3] * 20 + [1e-5, 1.0, 0.0, -1e-3, float("nan"), float("inf")]


def _rows(data):
    shape = tuple(data.draw(st.sampled_from(BN_SIZES), label=f"bn_dim{i}") for i in range(2))
    rank = data.draw(st.sampled_from([2] * 19 + [1, 3]), label="bn_rank")
    return shape if rank == 2 else shape[:1] if rank == 1 else shape + (1,)


def _vector(data, rng, c, dtype, label, optional=True):
    """(the argument, whether it is valid)."""
    kind = data.draw(st.sampled_from(["ok"] * 24 + (["none"] * 8 if optional else ["none"]) +
                                     ["shape", "dtype", "list", "layout"]), label=label)
    if kind == "none":
        return None, optional
    if kind == "list":
        return [1.0] * c, False
    v = fz.values(rng, (c + 1 if kind == "shape" else c,), dtype if kind != "dtype" else np.float16, 0.05)
    if kind == "ok" and label == "var":
        v = np.abs(v)
    if kind == "layout":
        v = fz.layout(v, "sliced")
        return v, fz.c_ready(v)
    return v, kind == "ok"


def _bn_close(actual, expected, dtype, scale=None):
    """Agrees with the float64 reference (rounded to dtype) to rounding and summation-order error."""
    with np.errstate(all="ignore"):
        expected = np.asarray(expected, np.float64).astype(dtype).astype(np.float64)
        e_fin = expected[np.isfinite(expected)]
        mag = (1.0 + (float(np.abs(e_fin).max()) if e_fin.size else 0.0)) if scale is None else scale
    assert actual.dtype == dtype and actual.shape == expected.shape
    rtol = 1e-5 if dtype == np.float32 else 1e-9
    fz.assert_close(actual, expected, rtol, rtol * mag)


def _bn_train_ref(x, gamma, beta, eps, dtype):
    xd = _d(x, dtype)
    with np.errstate(all="ignore"):
        mean, var = xd.mean(axis=0), xd.var(axis=0)
        g = 1.0 if gamma is None else _d(gamma, dtype)
        b = 0.0 if beta is None else _d(beta, dtype)
        rstd = 1 / np.sqrt(var + eps)
        return g * (xd - mean) * rstd + b, mean, var, rstd


@given(st.data())
def test_batch_norm_train_forward(data):
    rng = _rng(data)
    fz.case("batch_norm_train_forward")
    dtype = _dtype(data)
    shape = _rows(data)
    x = _array(data, rng, shape, dtype, "x")
    c = shape[-1] if shape else 0
    gamma, g_ok = _vector(data, rng, c, dtype, "gamma")
    beta, b_ok = _vector(data, rng, c, dtype, "beta")
    eps = data.draw(st.sampled_from(EPSILONS), label="epsilon")
    valid = fz.c_ready(x) and len(shape) == 2 and shape[0] > 0 and g_ok and b_ok and eps > 0 and np.isfinite(eps)
    if not valid:
        fz.expect(lambda: _C.batch_norm_train_forward(x, gamma, beta, eps), None, None, must_raise=ERR)
        return
    reference = data.draw(st.booleans(), label="reference")

    def check(result, expected):
        y, mean, var, rstd = result
        ey, emean, evar, erstd = expected
        _bn_close(mean, emean, dtype)
        _bn_close(var, evar, dtype)
        _bn_close(rstd, erstd, dtype, scale=float(np.nanmax(np.where(np.isfinite(erstd), erstd, 0), initial=0)) + 1)
        if np.all(np.isfinite(var)):  # a variance that overflowed the dtype leaves y well defined but rstd lossy
            _bn_close(y, ey, dtype)

    fz.expect(lambda: _C.batch_norm_train_forward(x, gamma, beta, eps, reference),
              lambda: _bn_train_ref(x, gamma, beta, eps, dtype), check, errors=())


@given(st.data())
def test_batch_norm_inference_forward(data):
    rng = _rng(data)
    fz.case("batch_norm_inference_forward")
    dtype = _dtype(data)
    shape = _rows(data)
    x = _array(data, rng, shape, dtype, "x")
    c = shape[-1] if shape else 0
    mean, m_ok = _vector(data, rng, c, dtype, "mean", optional=False)
    var, v_ok = _vector(data, rng, c, dtype, "var", optional=False)
    gamma, g_ok = _vector(data, rng, c, dtype, "gamma")
    beta, b_ok = _vector(data, rng, c, dtype, "beta")
    eps = data.draw(st.sampled_from(EPSILONS), label="epsilon")
    valid = (fz.c_ready(x) and len(shape) == 2 and m_ok and v_ok and g_ok and b_ok and eps > 0 and np.isfinite(eps))
    if not valid:
        fz.expect(lambda: _C.batch_norm_inference_forward(x, mean, var, gamma, beta, eps), None, None,
                  must_raise=ERR)
        return
    reference = data.draw(st.booleans(), label="reference")

    def ref():
        with np.errstate(all="ignore"):
            g = 1.0 if gamma is None else _d(gamma, dtype)
            b = 0.0 if beta is None else _d(beta, dtype)
            return g * (_d(x, dtype) - _d(mean, dtype)) / np.sqrt(_d(var, dtype) + eps) + b

    fz.expect(lambda: _C.batch_norm_inference_forward(x, mean, var, gamma, beta, eps, reference), ref,
              lambda y, expected: _bn_close(y, expected, dtype), errors=())


@given(st.data())
def test_batch_norm_backward(data):
    rng = _rng(data)
    fz.case("batch_norm_backward")
    dtype = data.draw(st.sampled_from(fz.FLOATS), label="dtype")
    m, c = (data.draw(st.sampled_from(BN_SIZES), label=f"bn_dim{i}") for i in range(2))
    x = fz.values(rng, (m, c), dtype, data.draw(st.sampled_from([0.0, 0.0, 0.05]), label="x_special_rate"))
    gamma, g_ok = _vector(data, rng, c, dtype, "gamma")
    if m > 0 and g_ok:
        _, mean, _, rstd = _C.batch_norm_train_forward(x, gamma if gamma is not None else None)
    else:
        mean, rstd = np.zeros(c, dtype), np.ones(c, dtype)
    bad = data.draw(st.sampled_from([None] * 10 + ["dy_shape", "dy_dtype", "dy_layout", "mean", "rstd", "x_rank"]),
                    label="bad")
    dy = _array(data, rng, (m, c + 1) if bad == "dy_shape" else (m, c),
                np.dtype(np.float16) if bad == "dy_dtype" else dtype, "dy")
    if bad == "dy_layout":
        dy = fz.layout(dy, "sliced")
    if bad == "mean":
        mean = np.zeros(c + 1, dtype)
    if bad == "rstd":
        rstd = rstd.astype(np.float32 if dtype == np.float64 else np.float64)
    xa = x.reshape(m, c, 1) if bad == "x_rank" else x
    valid = m > 0 and g_ok and fz.c_ready(dy) and bad in (None, "dy_layout")
    if not valid:
        fz.expect(lambda: _C.batch_norm_backward(dy, xa, mean, rstd, gamma), None, None, must_raise=ERR)
        return
    reference = data.draw(st.booleans(), label="reference")

    def ref():
        with np.errstate(all="ignore"):
            g = 1.0 if gamma is None else _d(gamma, dtype)
            dyd, xd = _d(dy, dtype), _d(x, dtype)
            xhat = (xd - mean.astype(np.float64)) * rstd.astype(np.float64)
            dbeta, dgamma = dyd.sum(axis=0), (dyd * xhat).sum(axis=0)
            dx = g * rstd.astype(np.float64) * (dyd - dbeta / m - xhat * dgamma / m)
            return dx, dgamma, dbeta

    def check(result, expected):
        for got, want in zip(result, expected):
            _bn_close(got, want, dtype)

    fz.expect(lambda: _C.batch_norm_backward(dy, xa, mean, rstd, gamma, reference), ref, check, errors=())


@given(st.data())
def test_batch_norm_relu_fusion(data):
    """activation="relu" on both forwards and relu_y= on the backward: a valid call gives exactly the values of the
    unfused kernels with fastnn's ReLU after (before, for the backward's mask) on NaN / inf / signed-zero inputs
    (zero signs included; NaN payloads aside);
    a bad activation name or a relu_y of another dtype, shape, layout or type raises TypeError / ValueError."""
    rng = _rng(data)
    dtype = data.draw(st.sampled_from(fz.FLOATS), label="dtype")
    m, c = (data.draw(st.sampled_from(BN_SIZES[:-1]), label=f"bn_dim{i}") for i in range(2))
    x = fz.values(rng, (m, c), dtype, data.draw(st.sampled_from([0.0, 0.0, 0.05]), label="x_special_rate"))
    gamma, g_ok = _vector(data, rng, c, dtype, "gamma")
    beta, b_ok = _vector(data, rng, c, dtype, "beta")
    if not (g_ok and b_ok):
        return  # the plain forms' fuzzers cover bad gamma / beta
    reference = data.draw(st.booleans(), label="reference")
    activation = data.draw(st.sampled_from(["relu"] * 8 + ["linear", "gelu", "RELU", ""]), label="activation")
    ok = activation in ("relu", "linear")

    def same(a, b):  # the same values, NaN places and zero signs (a NaN's payload depends on operand order)
        nan = np.isnan(a)
        return (a.shape == b.shape and np.array_equal(nan, np.isnan(b)) and np.array_equal(a[~nan], b[~nan])
                and np.array_equal(np.signbit(a[~nan]), np.signbit(b[~nan])))

    def relu(v):
        return v if activation == "linear" else _C.activation_forward(v, "relu")

    fz.case("batch_norm_train_forward")
    call = lambda: _C.batch_norm_train_forward(x, gamma, beta, 1e-3, reference, activation=activation)  # noqa: E731
    if not ok:
        fz.expect(call, None, None, must_raise=ERR)
    else:
        y, mean, var, rstd = _C.batch_norm_train_forward(x, gamma, beta, 1e-3, reference)
        fused = call()
        assert same(fused[0], relu(y)) and all(same(a, b) for a, b in zip(fused[1:], (mean, var, rstd)))
    fz.case("batch_norm_inference_forward")
    mean, var = fz.values(rng, (c,), dtype), np.abs(fz.values(rng, (c,), dtype))
    call = lambda: _C.batch_norm_inference_forward(x, mean, var, gamma, beta, 1e-3, reference,  # noqa: E731
                                                   activation=activation)
    if not ok:
        fz.expect(call, None, None, must_raise=ERR)
    else:
        assert same(call(), relu(_C.batch_norm_inference_forward(x, mean, var, gamma, beta, 1e-3, reference)))

    fz.case("batch_norm_backward")
    y, mean, _, rstd = _C.batch_norm_train_forward(x, gamma, beta)
    relu_y = _C.batch_norm_train_forward(x, gamma, beta, activation="relu")[0]
    dy = fz.values(rng, (m, c), dtype, 0.05)
    bad = data.draw(st.sampled_from([None] * 8 + ["dtype", "shape", "layout", "list"]), label="bad_relu_y")
    arg = relu_y
    if bad == "dtype":
        arg = relu_y.astype(np.float32 if dtype == np.float64 else np.float64)
    elif bad == "shape":
        arg = np.zeros((m, c + 1), dtype)
    elif bad == "layout":
        arg = fz.layout(np.ascontiguousarray(np.repeat(relu_y, 2, axis=1)), "sliced")[:, :c] if c else relu_y[:, ::-1]
    elif bad == "list":
        arg = relu_y.tolist()
    call = lambda: _C.batch_norm_backward(dy, x, mean, rstd, gamma, reference, relu_y=arg)  # noqa: E731
    if bad is not None and not (bad == "layout" and fz.c_ready(arg) and arg.shape == x.shape):
        fz.expect(call, None, None, must_raise=ERR)
        return
    masked = _C.activation_backward(dy, y, relu_y, "relu")
    for a, b in zip(call(), _C.batch_norm_backward(masked, x, mean, rstd, gamma, reference)):
        assert same(a, b)
