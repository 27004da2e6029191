"""The elementwise C++ kernels against NumPy and their reference twins: shape sweeps (size 1, zero size, large),
float32 and float64, 1 and 2 threads bit-identical, and the bindings' argument checks."""
from __future__ import annotations

import math

import numpy as np
import pytest

from fastnn import backend
from fastnn.testing.threads import count_parallel_regions

_C = backend._C
_erf = np.vectorize(math.erf, otypes=[np.float64])
SELU_A, SELU_S = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def _sig(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _U(x):
    return math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)


ACTIVATIONS = {
    # name: (alpha, forward reference, derivative reference)
    "relu": (1.0, lambda x: np.maximum(x, 0), lambda x: (x > 0) * 1.0),
    "relu6": (1.0, lambda x: np.clip(x, 0, 6), lambda x: ((x > 0) & (x < 6)) * 1.0),
    "sigmoid": (1.0, _sig, lambda x: _sig(x) * (1 - _sig(x))),
    "tanh": (1.0, np.tanh, lambda x: 1 - np.tanh(x) ** 2),
    "elu": (0.7, lambda x: np.where(x > 0, x, 0.7 * np.expm1(x)), lambda x: np.where(x > 0, 1, 0.7 * np.exp(x))),
    "selu": (1.0, lambda x: SELU_S * np.where(x > 0, x, SELU_A * np.expm1(x)),
             lambda x: SELU_S * np.where(x >= 0, 1, SELU_A * np.exp(x))),
    "gelu": (1.0, lambda x: 0.5 * x * (1 + _erf(x / math.sqrt(2))),
             lambda x: 0.5 * (1 + _erf(x / math.sqrt(2))) + x * np.exp(-x * x / 2) / math.sqrt(2 * math.pi)),
    "gelu_tanh": (1.0, lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))),
                  # d/dx 0.5 x (1 + tanh u) = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) u', u = c (x + k x^3)
                  lambda x: (0.5 * (1 + np.tanh(_U(x))) + 0.5 * x * (1 - np.tanh(_U(x)) ** 2)
                             * math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * x**2))),
    "silu": (1.0, lambda x: x * _sig(x), lambda x: _sig(x) * (1 + x * (1 - _sig(x)))),
    "leaky_relu": (0.2, lambda x: np.where(x >= 0, x, 0.2 * x), lambda x: np.where(x > 0, 1, 0.2)),
    "softplus": (1.0, lambda x: np.logaddexp(0, x), _sig),
    "softsign": (1.0, lambda x: x / (1 + np.abs(x)), lambda x: 1 / (1 + np.abs(x)) ** 2),
    "hard_sigmoid": (1.0, lambda x: np.clip(x + 3, 0, 6) / 6, lambda x: ((x > -3) & (x < 3)) / 6.0),
}
SIZES = [0, 1, 7, 1000, 100_003]
ROWS_COLS = [(0, 5), (5, 0), (1, 1), (3, 7), (1, 1000), (777, 10), (64, 513)]


def _tol(dtype):
    return (2e-6, 1e-6) if dtype == np.float32 else (1e-13, 1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_forward_backward_vs_numpy(name, dtype):
    alpha, fwd, deriv = ACTIVATIONS[name]
    rng = np.random.default_rng(1)
    for n in SIZES:
        x = (rng.standard_normal(n) * 4).astype(dtype)
        x[np.abs(x) < 1e-3] = 0.5  # the kinks' derivative is convention
        y = _C.activation_forward(x, name, alpha)
        assert y.dtype == dtype and y.shape == x.shape
        rtol, atol = _tol(dtype)
        np.testing.assert_allclose(y, fwd(x.astype(np.float64)), rtol=rtol, atol=atol)
        dy = rng.standard_normal(n).astype(dtype)
        dx = _C.activation_backward(dy, x, y, name, alpha)
        with np.errstate(over="ignore"):  # gelu_tanh's formula overflows x**3 in float64 only beyond 1e100
            np.testing.assert_allclose(dx, dy * deriv(x.astype(np.float64)), rtol=10 * rtol, atol=10 * atol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activation_backward_against_float64_central_differences(dtype):
    # Independent of every formula above: the derivative of the NumPy forward reference in float64.
    x = np.array([-5.0, -2.5, -0.7, 0.3, 1.1, 2.9, 4.2, 7.5])
    h = 1e-6
    for name, (alpha, fwd, _) in ACTIVATIONS.items():
        numeric = (fwd(x + h) - fwd(x - h)) / (2 * h)
        xt = x.astype(dtype)
        dx = _C.activation_backward(np.ones_like(xt), xt, _C.activation_forward(xt, name, alpha), name, alpha)
        np.testing.assert_allclose(dx, numeric, rtol=1e-5 if dtype == np.float32 else 1e-8, atol=1e-7,
                                   err_msg=name)


# d act / dx at the kinks, as TensorFlow 2.21 computes them (keras.ops.<name> under tf.GradientTape; the live
# cross-check is tests/e2e/test_keras_autograd.py).
TF_KINK_DERIVATIVES = [
    ("relu", 1.0, [0.0], [0.0]),
    ("relu6", 1.0, [0.0, 6.0], [0.0, 0.0]),
    ("leaky_relu", 0.2, [0.0], [0.2]),
    ("leaky_relu", 0.1, [0.0], [0.1]),
    ("elu", 1.0, [0.0], [1.0]),
    ("elu", 0.5, [0.0], [0.5]),            # keras.ops.elu(x, 0.5) = where(x > 0, elu(x), 0.5 * elu(x))
    ("selu", 1.0, [0.0], [1.0507009873554805]),
    ("hard_sigmoid", 1.0, [-3.0, 3.0], [0.0, 0.0]),
    ("softplus", 1.0, [0.0], [0.5]),
    ("softsign", 1.0, [0.0], [1.0]),
    ("gelu", 1.0, [0.0], [0.5]),
    ("gelu_tanh", 1.0, [0.0], [0.5]),
    ("silu", 1.0, [0.0], [0.5]),
    ("sigmoid", 1.0, [0.0], [0.25]),
    ("tanh", 1.0, [0.0], [1.0]),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, alpha, xs, expected", TF_KINK_DERIVATIVES)
def test_activation_derivative_at_kinks_matches_tensorflow(name, alpha, xs, expected, dtype):
    x = np.array(xs, dtype)
    y = _C.activation_forward(x, name, alpha)
    dx = _C.activation_backward(np.ones_like(x), x, y, name, alpha)
    np.testing.assert_allclose(dx, expected, rtol=1e-7 if dtype == np.float32 else 1e-15, atol=0)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_extremes_are_stable(name):
    alpha = ACTIVATIONS[name][0]
    x = np.array([-1e4, -800.0, -50.0, 50.0, 800.0, 1e4, np.inf, -np.inf, np.nan])
    with np.errstate(all="ignore"):
        y = _C.activation_forward(x, name, alpha)
        ref = ACTIVATIONS[name][1](x)
    # Same values as the NumPy formulas (including NaN/inf where NumPy gives them); no crash, no overflow junk.
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_family_vs_numpy_and_reference(dtype):
    rng = np.random.default_rng(2)
    rtol, atol = _tol(dtype)
    for rows, cols in ROWS_COLS:
        x = (rng.standard_normal((rows, cols)) * 5).astype(dtype)
        xd = x.astype(np.float64)
        with np.errstate(all="ignore"):
            m = xd.max(axis=-1, keepdims=True) if cols else np.zeros((rows, 1))
            lse = m + np.log(np.exp(xd - m).sum(axis=-1, keepdims=True))
        for fwd, bwd, ref in [("softmax_forward", "softmax_backward", np.exp(xd - lse)),
                              ("log_softmax_forward", "log_softmax_backward", xd - lse)]:
            y = getattr(_C, fwd)(x)
            np.testing.assert_allclose(y, ref, rtol=rtol * 10, atol=atol * 10)
            np.testing.assert_allclose(y, getattr(_C, fwd)(x, reference=True), rtol=rtol * 10, atol=atol * 10)
            dy = rng.standard_normal(x.shape).astype(dtype)
            dx = getattr(_C, bwd)(dy, y)
            np.testing.assert_allclose(dx, getattr(_C, bwd)(dy, y, reference=True), rtol=rtol * 100, atol=atol * 100)
        sm = _C.softmax_forward(x).astype(np.float64)
        g = dy.astype(np.float64)
        np.testing.assert_allclose(_C.softmax_backward(dy, _C.softmax_forward(x)),
                                   sm * (g - (g * sm).sum(-1, keepdims=True)), rtol=1e-4, atol=1e-5 if dtype == np.float32 else 1e-12)
        # log_softmax: dx = dy - softmax(x) * sum(dy), from the float64 NumPy softmax (not from fastnn's kernels).
        np.testing.assert_allclose(_C.log_softmax_backward(dy, _C.log_softmax_forward(x)),
                                   g - np.exp(xd - lse) * g.sum(-1, keepdims=True),
                                   rtol=1e-4, atol=1e-5 if dtype == np.float32 else 1e-12)


def test_log_softmax_backward_against_float64_central_differences():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 6)) * 3
    dy = rng.standard_normal((4, 6))

    def objective(z):  # sum(dy * log_softmax(z)) with NumPy only
        m = z.max(-1, keepdims=True)
        return (dy * (z - m - np.log(np.exp(z - m).sum(-1, keepdims=True)))).sum()

    numeric = np.zeros_like(x)
    h = 1e-6
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        numeric[i] = (objective(x + e) - objective(x - e)) / (2 * h)
    np.testing.assert_allclose(_C.log_softmax_backward(dy, _C.log_softmax_forward(x)), numeric, rtol=1e-7,
                               atol=1e-8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_crossentropy_vs_numpy_and_reference(dtype):
    rng = np.random.default_rng(3)
    rtol, atol = _tol(dtype)
    for rows, cols in [(0, 4), (1, 1), (3, 7), (777, 10), (5, 1000)]:
        logits = (rng.standard_normal((rows, cols)) * 3).astype(dtype)
        ld = logits.astype(np.float64)
        m = ld.max(axis=1, keepdims=True) if rows else np.zeros((0, 1))
        logp = ld - m - np.log(np.exp(ld - m).sum(axis=1, keepdims=True))
        labels = rng.integers(0, cols, rows).astype(np.int64)
        loss, lse = _C.sparse_xent_forward(logits, labels)
        np.testing.assert_allclose(loss, -logp[np.arange(rows), labels], rtol=rtol * 10, atol=atol * 10)
        loss_ref, _ = _C.sparse_xent_forward(logits, labels, reference=True)
        np.testing.assert_allclose(loss, loss_ref, rtol=rtol * 10, atol=atol * 10)
        dloss = rng.uniform(0.5, 1.5, rows).astype(dtype)
        d = _C.sparse_xent_backward(dloss, logits, lse, labels)
        expected = np.exp(logp)
        expected[np.arange(rows), labels] -= 1
        np.testing.assert_allclose(d, dloss[:, None] * expected, rtol=rtol * 10, atol=atol * 10)

        target = rng.uniform(0, 1, (rows, cols)).astype(dtype)
        loss, lse = _C.dense_xent_forward(logits, target)
        np.testing.assert_allclose(loss, -(target * logp).sum(axis=1), rtol=rtol * 10, atol=atol * 100)
        np.testing.assert_allclose(loss, _C.dense_xent_forward(logits, target, reference=True)[0], rtol=rtol * 10,
                                   atol=atol * 100)
        d = _C.dense_xent_backward(dloss, logits, lse, target)
        expected = np.exp(logp) * target.sum(axis=1, keepdims=True) - target
        np.testing.assert_allclose(d, dloss[:, None] * expected, rtol=rtol * 10, atol=atol * 10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bias_add_vs_numpy_and_reference(dtype):
    rng = np.random.default_rng(4)
    for shape in [(0, 3), (1, 1), (5, 7), (1000, 3), (300, 257), (2, 3, 4)]:
        x = rng.standard_normal(shape).astype(dtype)
        b = rng.standard_normal(shape[-1]).astype(dtype)
        np.testing.assert_array_equal(_C.bias_add_forward(x, b), x + b)
        db = _C.bias_add_backward(x)
        rtol = 1e-5 if dtype == np.float32 else 1e-12
        ref = x.reshape(-1, shape[-1]).astype(np.float64).sum(axis=0)
        np.testing.assert_allclose(db, ref, rtol=rtol, atol=rtol * np.sqrt(max(x.size, 1)))
        np.testing.assert_allclose(db, _C.bias_add_backward(x, reference=True), rtol=rtol, atol=rtol * 10)


def test_results_do_not_depend_on_thread_count(restore_threads):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2000, 129)).astype(np.float32)
    labels = rng.integers(0, 129, 2000).astype(np.int64)
    outs = []
    counts = []
    for threads in (1, 2):
        backend.set_num_threads(threads)
        with count_parallel_regions() as seen:
            outs.append([
                _C.activation_forward(x, "gelu_tanh"),
                _C.softmax_forward(x),
                _C.log_softmax_forward(x),
                _C.sparse_xent_forward(x, labels)[0],
                _C.bias_add_backward(x),
            ])
        counts.append(seen.count)
    assert counts[0] == 0
    if backend.build_info()["openmp"]:
        assert counts[1] == 5, f"each of the 5 kernels should have split its rows over 2 threads: {counts[1]} did"
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


class TestBindingChecks:
    def test_dtype_errors_name_the_dtype(self):
        with pytest.raises(TypeError, match="relu: x must be float32 or float64, but received dtype int64"):
            _C.activation_forward(np.ones(3, np.int64), "relu")
        with pytest.raises(TypeError, match="softmax: x must be float32 or float64, but received dtype float16"):
            _C.softmax_forward(np.ones((2, 2), np.float16))
        with pytest.raises(TypeError, match="labels must be int64"):
            _C.sparse_xent_forward(np.ones((2, 2)), np.zeros(2, np.int32))
        with pytest.raises(TypeError, match="dtype"):
            _C.activation_backward(np.ones(3, np.float32), np.ones(3), np.ones(3), "relu")

    def test_shape_and_contiguity_errors(self):
        with pytest.raises(ValueError, match="C-contiguous"):
            _C.activation_forward(np.ones((4, 4))[:, ::2], "tanh")
        with pytest.raises(ValueError, match=r"dy must have the shape of x \(3,\)"):
            _C.activation_backward(np.ones(4), np.ones(3), np.ones(3), "relu")
        with pytest.raises(ValueError, match="at least 1 dimension"):
            _C.softmax_forward(np.array(1.0))
        with pytest.raises(ValueError, match="logits must be 2-D"):
            _C.sparse_xent_forward(np.ones(3), np.zeros(3, np.int64))
        with pytest.raises(ValueError, match=r"labels must have shape \(2,\)"):
            _C.sparse_xent_forward(np.ones((2, 3)), np.zeros(3, np.int64))
        with pytest.raises(ValueError, match="outside the valid range"):
            _C.sparse_xent_forward(np.ones((2, 3)), np.array([0, 3], np.int64))
        with pytest.raises(ValueError, match="bias must be 1-D"):
            _C.bias_add_forward(np.ones((2, 3)), np.ones(2))
        with pytest.raises(ValueError, match="unknown activation 'swishy'"):
            _C.activation_forward(np.ones(2), "swishy")
