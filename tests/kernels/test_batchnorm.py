"""The batch-normalization kernels (csrc/cpu/batchnorm.cpp, bindings in csrc/python/bind_batchnorm.cpp) over the
channel axis of an (M, C) view: training forward (batch mean, biased variance, rstd), inference forward and the
backward, against float64 NumPy references over shape sweeps, against their reference twins, the backward against
float64 central differences, a float32 batch of 2^20 rows around 1e4 (double accumulation), 1 vs 2 threads, and the
bad-input messages."""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn.testing.gradcheck import central_difference
from fastnn import backend

_C = backend._C
DTYPES = [np.float32, np.float64]
SHAPES = [(1, 1), (1, 7), (2, 1), (5, 3), (17, 33), (1000, 1), (300, 64), (4099, 5), (64, 1031)]
EPS = 1e-3


def tol(dtype):
    return dict(rtol=3e-6, atol=3e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)


def params(rng, c, dtype, scale, center):
    gamma = (rng.standard_normal(c) + 1).astype(dtype) if scale else None
    beta = rng.standard_normal(c).astype(dtype) if center else None
    return gamma, beta


def np_train(x, gamma, beta, eps):
    x = x.astype(np.float64)
    mean, var = x.mean(axis=0), x.var(axis=0)  # biased, as Keras normalizes with
    g = 1.0 if gamma is None else gamma.astype(np.float64)
    b = 0.0 if beta is None else beta.astype(np.float64)
    return g * (x - mean) / np.sqrt(var + eps) + b, mean, var


def np_backward(dy, x, mean, rstd, gamma):
    dy, x = dy.astype(np.float64), x.astype(np.float64)
    mean, rstd = mean.astype(np.float64), rstd.astype(np.float64)
    g = 1.0 if gamma is None else gamma.astype(np.float64)
    xhat = (x - mean) * rstd
    dbeta, dgamma = dy.sum(axis=0), (dy * xhat).sum(axis=0)
    dx = g * rstd * (dy - dbeta / len(x) - xhat * dgamma / len(x))
    return dx, dgamma, dbeta


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale,center", [(True, True), (False, True), (True, False), (False, False)])
def test_train_forward_matches_numpy(dtype, scale, center):
    rng = np.random.default_rng(0)
    for m, c in SHAPES:
        x = (rng.standard_normal((m, c)) * 2 + 0.5).astype(dtype)
        gamma, beta = params(rng, c, dtype, scale, center)
        y, mean, var, rstd = _C.batch_norm_train_forward(x, gamma, beta, EPS)
        ref_y, ref_mean, ref_var = np_train(x, gamma, beta, EPS)
        for a in (y, mean, var, rstd):
            assert a.dtype == dtype
        assert y.shape == (m, c) and mean.shape == var.shape == rstd.shape == (c,)
        np.testing.assert_allclose(y, ref_y, **tol(dtype))
        np.testing.assert_allclose(mean, ref_mean, **tol(dtype))
        np.testing.assert_allclose(var, ref_var, **tol(dtype))
        np.testing.assert_allclose(rstd, 1 / np.sqrt(ref_var + EPS), **tol(dtype))
        if m == 1:  # one row: zero variance, y = beta
            assert np.all(var == 0)
            np.testing.assert_array_equal(y, np.zeros((1, c), dtype) if beta is None else beta[None])


def test_returned_variance_feeds_keras_moving_statistics():
    # Keras 3: moving = moving * momentum + batch * (1 - momentum), with the biased batch variance.
    rng = np.random.default_rng(1)
    x = rng.standard_normal((10, 4))
    _, mean, var, _ = _C.batch_norm_train_forward(x)
    momentum, moving_mean, moving_var = 0.99, np.zeros(4), np.ones(4)
    moving_mean = moving_mean * momentum + mean * (1 - momentum)
    moving_var = moving_var * momentum + var * (1 - momentum)
    np.testing.assert_allclose(var, x.var(axis=0, ddof=0), rtol=1e-14)
    np.testing.assert_allclose(moving_var, 0.99 + 0.01 * x.var(axis=0), rtol=1e-14)
    np.testing.assert_allclose(moving_mean, 0.01 * x.mean(axis=0), rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_inference_forward_matches_numpy(dtype):
    rng = np.random.default_rng(2)
    for (m, c), (scale, center) in zip(SHAPES + [(0, 3)], [(True, True), (False, False), (True, False)] * 4):
        x = rng.standard_normal((m, c)).astype(dtype)
        mean = rng.standard_normal(c).astype(dtype)
        var = rng.random(c).astype(dtype)
        gamma, beta = params(rng, c, dtype, scale, center)
        y = _C.batch_norm_inference_forward(x, mean, var, gamma, beta, 1e-2)
        g = 1.0 if gamma is None else gamma.astype(np.float64)
        b = 0.0 if beta is None else beta.astype(np.float64)
        ref = g * (x.astype(np.float64) - mean) / np.sqrt(var.astype(np.float64) + 1e-2) + b
        assert y.dtype == dtype and y.shape == (m, c)
        np.testing.assert_allclose(y, ref, **tol(dtype))
        np.testing.assert_allclose(y, _C.batch_norm_inference_forward(x, mean, var, gamma, beta, 1e-2, True),
                                   rtol=2 * np.finfo(dtype).eps, atol=2 * np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", [True, False])
def test_backward_matches_numpy(dtype, scale):
    rng = np.random.default_rng(3)
    for m, c in SHAPES:
        x = (rng.standard_normal((m, c)) + 3).astype(dtype)
        gamma, _ = params(rng, c, dtype, scale, False)
        _, mean, _, rstd = _C.batch_norm_train_forward(x, gamma, None, EPS)
        dy = rng.standard_normal((m, c)).astype(dtype)
        dx, dgamma, dbeta = _C.batch_norm_backward(dy, x, mean, rstd, gamma)
        ref = np_backward(dy, x, mean, rstd, gamma)
        for got, want in zip((dx, dgamma, dbeta), ref):
            assert got.dtype == dtype and got.shape == want.shape
            scale_ = max(1.0, float(np.abs(want).max())) if want.size else 1.0
            np.testing.assert_allclose(got, want, rtol=tol(dtype)["rtol"], atol=tol(dtype)["atol"] * scale_ * 4)


_numeric = central_difference


@pytest.mark.parametrize("m,c", [(1, 2), (3, 1), (5, 3), (8, 4)])
def test_backward_matches_central_differences(m, c):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((m, c)) * 2 + 1
    gamma, beta = rng.standard_normal(c) + 1, rng.standard_normal(c)
    dy = rng.standard_normal((m, c))

    def loss(x_, g_, b_):
        return np.sum(dy * _C.batch_norm_train_forward(x_, g_, b_, EPS)[0])

    _, mean, _, rstd = _C.batch_norm_train_forward(x, gamma, beta, EPS)
    dx, dgamma, dbeta = _C.batch_norm_backward(dy, x, mean, rstd, gamma)
    np.testing.assert_allclose(dx, _numeric(lambda v: loss(v, gamma, beta), x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dgamma, _numeric(lambda v: loss(x, v, beta), gamma), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dbeta, _numeric(lambda v: loss(x, gamma, v), beta), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fast_matches_reference_twin(dtype):
    rng = np.random.default_rng(5)
    # float32: both sum in double, so they agree to the final rounding; float64: to the summation-order error
    ulp = dict(rtol=4 * np.finfo(np.float32).eps, atol=4 * np.finfo(np.float32).eps) if dtype == np.float32 else \
        dict(rtol=1e-11, atol=1e-11)
    for m, c in SHAPES + [(70000, 3)]:
        x = (rng.standard_normal((m, c)) + 1).astype(dtype)
        gamma, beta = params(rng, c, dtype, True, True)
        fast = _C.batch_norm_train_forward(x, gamma, beta, EPS)
        ref = _C.batch_norm_train_forward(x, gamma, beta, EPS, reference=True)
        for a, b in zip(fast, ref):
            np.testing.assert_allclose(a, b, **ulp)
        dy = rng.standard_normal((m, c)).astype(dtype)
        fast = _C.batch_norm_backward(dy, x, ref[1], ref[3], gamma)
        slow = _C.batch_norm_backward(dy, x, ref[1], ref[3], gamma, reference=True)
        for a, b in zip(fast, slow):
            np.testing.assert_allclose(a, b, rtol=ulp["rtol"], atol=ulp["atol"] * max(1.0, float(np.abs(b).max())))


def test_float32_large_batch_with_a_large_mean_stays_accurate():
    rng = np.random.default_rng(6)
    m = 1 << 20
    x = (1e4 + rng.standard_normal((m, 2)) * np.array([1.0, 0.01])).astype(np.float32)
    y, mean, var, rstd = _C.batch_norm_train_forward(x)
    x64 = x.astype(np.float64)
    ref_mean, ref_var = x64.mean(axis=0), x64.var(axis=0)
    # the float32 statistics are the float64 ones rounded once
    np.testing.assert_allclose(mean, ref_mean, rtol=np.finfo(np.float32).eps)
    np.testing.assert_allclose(var, ref_var, rtol=2 * np.finfo(np.float32).eps)
    # a float32 one-pass accumulation (E[x^2] - E[x]^2) would have lost the variance entirely here
    naive = np.mean(x * x, axis=0, dtype=np.float32) - np.mean(x, axis=0, dtype=np.float32) ** 2
    assert abs(naive[1] - ref_var[1]) > ref_var[1]
    ref_y = (x64 - ref_mean) / np.sqrt(ref_var + EPS)
    np.testing.assert_allclose(y, ref_y, rtol=1e-5, atol=1e-5)
    dy = rng.standard_normal((m, 2)).astype(np.float32)
    dx, dgamma, dbeta = _C.batch_norm_backward(dy, x, mean, rstd)
    ref = np_backward(dy, x, mean, rstd, None)
    np.testing.assert_allclose(dbeta, ref[2], rtol=1e-6, atol=1e-3)
    np.testing.assert_allclose(dgamma, ref[1], rtol=1e-6, atol=1e-3)
    np.testing.assert_allclose(dx, ref[0], rtol=1e-5, atol=1e-5 * float(np.abs(ref[0]).max()))


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_and_two_threads_are_bit_identical(restore_threads, dtype):
    if not fastnn.build_info()["openmp"]:
        pytest.skip("built without OpenMP: one thread only")
    rng = np.random.default_rng(7)
    previous_guard = _C.oversubscription_guard()
    _C.set_oversubscription_guard("off")  # every region may fork: the 2-thread run is really parallel
    try:
        for m, c in [(200003, 3), (5000, 64), (777, 300)]:
            x = (rng.standard_normal((m, c)) + 5).astype(dtype)
            gamma, beta = params(rng, c, dtype, True, True)
            dy = rng.standard_normal((m, c)).astype(dtype)
            results = []
            for threads in (1, 2):
                fastnn.set_num_threads(threads)
                before = fastnn.build_info()["parallel_regions"]
                y, mean, var, rstd = _C.batch_norm_train_forward(x, gamma, beta, EPS)
                out = [y, mean, var, rstd, *_C.batch_norm_backward(dy, x, mean, rstd, gamma),
                       _C.batch_norm_inference_forward(x, mean, var, gamma, beta, EPS)]
                if threads == 2:
                    assert fastnn.build_info()["parallel_regions"] - before >= 4
                results.append(out)
            for one, two in zip(*results):
                assert np.array_equal(one, two)
    finally:
        _C.set_oversubscription_guard(previous_guard)


# -- bad input ------------------------------------------------------------------------------------------------------

X = np.zeros((4, 3), np.float32)
V = np.ones(3, np.float32)


@pytest.mark.parametrize("call,error,match", [
    (lambda: _C.batch_norm_train_forward(X, epsilon=0.0), ValueError,
     r"batch_norm_train_forward: epsilon must be positive and finite, but received 0"),
    (lambda: _C.batch_norm_train_forward(X, epsilon=-1e-3), ValueError, r"epsilon must be positive"),
    (lambda: _C.batch_norm_train_forward(X, epsilon=float("nan")), ValueError, r"epsilon must be positive"),
    (lambda: _C.batch_norm_inference_forward(X, V, V, epsilon=float("inf")), ValueError,
     r"batch_norm_inference_forward: epsilon must be positive and finite"),
    (lambda: _C.batch_norm_train_forward(X.reshape(2, 2, 3)), ValueError,
     r"batch_norm_train_forward: x must be 2-D, but received shape \(2, 2, 3\)"),
    (lambda: _C.batch_norm_train_forward(np.zeros((0, 3), np.float32)), ValueError,
     r"x has no rows \(shape \(0, 3\)\)"),
    (lambda: _C.batch_norm_train_forward(X.astype(np.int64)), TypeError, r"x must be float32 or float64"),
    (lambda: _C.batch_norm_train_forward(X, np.ones(4, np.float32)), ValueError,
     r"gamma must have shape \(3,\) \(x's channel count\), but received shape \(4,\)"),
    (lambda: _C.batch_norm_train_forward(X, None, np.ones(3)), TypeError,
     r"beta must have x's dtype \(float32\), but received float64"),
    (lambda: _C.batch_norm_train_forward(X, [1.0, 1.0, 1.0]), TypeError, r"gamma must be a NumPy array or None"),
    (lambda: _C.batch_norm_train_forward(np.zeros((4, 6), np.float32)[:, ::2]), ValueError, r"x must be C-contiguous"),
    (lambda: _C.batch_norm_inference_forward(X, None, V), TypeError, r"mean must be an array, but received None"),
    (lambda: _C.batch_norm_inference_forward(X, V, np.ones((3, 1), np.float32)), ValueError,
     r"var must have shape \(3,\)"),
    (lambda: _C.batch_norm_backward(np.zeros((4, 2), np.float32), X, V, V), ValueError,
     r"batch_norm_backward: dy must have x's shape \(4, 3\), but received shape \(4, 2\)"),
    (lambda: _C.batch_norm_backward(X.astype(np.float64), X, V, V), TypeError, r"dy must have x's dtype"),
    (lambda: _C.batch_norm_backward(X, X, V, np.ones(2, np.float32)), ValueError, r"rstd must have shape \(3,\)"),
    (lambda: _C.batch_norm_backward(X[:0], X[:0], V, V), ValueError, r"batch_norm_backward: x has no rows"),
])
def test_bad_input_messages(call, error, match):
    with pytest.raises(error, match=match):
        call()


# -- batch norm fused with a following ReLU (activation="relu", relu_y=) ----------------------------------------------
# The fused forms exist for a caller that sees BatchNormalization then a ReLU (the compiled step's tracer): they must
# give exactly the bits of the two kernels in a row, the ReLU as fastnn's activation kernels compute it (forward
# x < 0 ? 0 : x, NaN and -0 passed; backward dy where y > 0, else +0), on every SIMD path and thread count.

def _relu_case(rng, m, c, dtype):
    x = (rng.standard_normal((m, c)) * 2 + 0.3).astype(dtype)
    if m * c > 4:
        x.flat[rng.integers(0, m * c, 2)] = x.flat[0]  # ties and exact zeros of the pre-activation are likely
    gamma, beta = params(rng, c, dtype, True, True)
    dy = rng.standard_normal((m, c)).astype(dtype)
    dy.flat[:: max(1, (m * c) // 5)] *= -1.0
    return x, gamma, beta, dy


def _same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a.view(np.uint8), b.view(np.uint8))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("threads", [1, 2])
def test_relu_fusion_gives_the_bits_of_the_two_kernels(simd_path, restore_threads, dtype, threads):
    fastnn.set_num_threads(threads)
    rng = np.random.default_rng(11)
    for m, c in SHAPES + [(5000, 64)]:
        x, gamma, beta, dy = _relu_case(rng, m, c, dtype)
        for reference in (False, True):
            y, mean, var, rstd = _C.batch_norm_train_forward(x, gamma, beta, EPS, reference)
            fused = _C.batch_norm_train_forward(x, gamma, beta, EPS, reference, activation="relu")
            relu_y = _C.activation_forward(y, "relu")
            assert _same_bits(fused[0], relu_y)
            for a, b in zip(fused[1:], (mean, var, rstd)):
                assert _same_bits(a, b)
            unfused = _C.batch_norm_backward(_C.activation_backward(dy, y, relu_y, "relu"), x, mean, rstd, gamma,
                                             reference)
            for a, b in zip(_C.batch_norm_backward(dy, x, mean, rstd, gamma, reference, relu_y=fused[0]), unfused):
                assert _same_bits(a, b)
            yi = _C.batch_norm_inference_forward(x, mean, var, gamma, beta, EPS, reference)
            assert _same_bits(_C.batch_norm_inference_forward(x, mean, var, gamma, beta, EPS, reference,
                                                              activation="relu"),
                              _C.activation_forward(yi, "relu"))


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_fusion_passes_nan_and_signed_zero_as_the_relu_kernel(dtype):
    x = np.array([[1.0, 0.0], [np.nan, 0.0], [-1.0, 0.0]], dtype)
    gamma, beta = np.array([1.0, -1.0], dtype), np.array([0.0, -0.0], dtype)  # channel 1: y = -0 everywhere
    y = _C.batch_norm_inference_forward(x, np.zeros(2, dtype), np.ones(2, dtype), gamma, beta, EPS)
    assert np.signbit(y[0, 1]) and y[0, 1] == 0  # the case of interest: a -0 pre-activation
    fused = _C.batch_norm_inference_forward(x, np.zeros(2, dtype), np.ones(2, dtype), gamma, beta, EPS,
                                            activation="relu")
    assert _same_bits(fused, _C.activation_forward(y, "relu"))
    assert np.isnan(fused[1, 0]) and fused[2, 0] == 0


def test_relu_fusion_matches_numpy():
    rng = np.random.default_rng(3)
    x, gamma, beta, dy = _relu_case(rng, 300, 64, np.float64)
    y, mean, var, rstd = _C.batch_norm_train_forward(x, gamma, beta, EPS, activation="relu")
    ref_y, _, _ = np_train(x, gamma, beta, EPS)
    np.testing.assert_allclose(y, np.maximum(ref_y, 0), **tol(np.float64))
    dx, dgamma, dbeta = _C.batch_norm_backward(dy, x, mean, rstd, gamma, relu_y=y)
    for got, want in zip((dx, dgamma, dbeta), np_backward(np.where(ref_y > 0, dy, 0.0), x, mean, rstd, gamma)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("call,error,match", [
    (lambda: _C.batch_norm_train_forward(X, activation="gelu"), ValueError,
     r'batch_norm_train_forward: activation must be "linear" or "relu", but received "gelu"'),
    (lambda: _C.batch_norm_inference_forward(X, V, V, activation="Relu"), ValueError,
     r'batch_norm_inference_forward: activation must be "linear" or "relu"'),
    (lambda: _C.batch_norm_backward(X, X, V, V, relu_y=X.astype(np.float64)), TypeError,
     r"batch_norm_backward: relu_y must have x's dtype \(float32\), but received float64"),
    (lambda: _C.batch_norm_backward(X, X, V, V, relu_y=X[:2]), ValueError,
     r"batch_norm_backward: relu_y must have x's shape \(4, 3\), but received shape \(2, 3\)"),
    (lambda: _C.batch_norm_backward(X, X, V, V, relu_y=np.zeros((4, 6), np.float32)[:, ::2]), ValueError,
     r"relu_y must be C-contiguous"),
    (lambda: _C.batch_norm_backward(X, X, V, V, relu_y=[[0.0] * 3] * 4), TypeError,
     r"relu_y must be a NumPy array or None"),
])
def test_relu_fusion_bad_input_messages(call, error, match):
    with pytest.raises(error, match=match):
        call()
