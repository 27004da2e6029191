"""Live cross-check of ``fastnn.ops.moments`` against ``keras.ops.moments`` on TensorFlow: mean and variance
(float16, float32, float64; axes as lists, tuples, ints, negative, empty and None; keepdims; synchronized) and the
gradients of weighted combinations of the two outputs, one output alone included. Skipped when Keras is not
installed; tests/autograd/test_multi_output.py checks the same op against NumPy and finite differences.

Run with Keras in a separate environment, e.g.
    KERAS_BACKEND=tensorflow PYTHONPATH=$PWD/src /work/kvenv/bin/python -m pytest tests/e2e/test_keras_moments.py
"""
from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

import fastnn  # noqa: E402
from fastnn import ops as fops  # noqa: E402

if keras.backend.backend() != "tensorflow":  # pragma: no cover - the gradients below use tf.GradientTape
    pytest.skip("the Keras moments cross-check needs KERAS_BACKEND=tensorflow", allow_module_level=True)

CASES = [((4, 3), [0], False), ((4, 3), [1], True), ((2, 3, 4), [0, 2], False), ((2, 3, 4), (0, 1, 2), True),
         ((2, 3, 4), [-1], False), ((5,), 0, False), ((3, 2), None, False), ((2, 3), [], False),
         ((1, 1), [0, 1], True), ((16, 8), [0], False), ((0, 3), [0], False)]
TOLERANCE = {"float16": 2e-3, "float32": 2e-6, "float64": 1e-13}


def _data(shape, dtype, seed=0):
    # an offset mean, so the variance is a difference of large-ish numbers (where the formula matters)
    return np.random.default_rng(seed).normal(3.0, 2.0, size=shape).astype(dtype)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("shape,axes,keepdims", CASES)
def test_moments_match_keras(shape, axes, keepdims, dtype):
    x = _data(shape, dtype)
    k_mean, k_var = keras.ops.moments(x, axes, keepdims=keepdims)
    f_mean, f_var = fops.moments(x, axes, keepdims=keepdims)
    for f, k in ((f_mean, k_mean), (f_var, k_var)):
        k = np.asarray(k)
        assert f.dtype == k.dtype and f.shape == k.shape
        tol = TOLERANCE[dtype]
        np.testing.assert_allclose(f.numpy().astype(np.float64), k.astype(np.float64), rtol=tol, atol=tol)


def test_synchronized_and_float16_clipping_match_keras():
    x = _data((6, 2), "float32")
    for f, k in zip(fops.moments(x, [0], synchronized=True), keras.ops.moments(x, [0], synchronized=True)):
        np.testing.assert_allclose(f.numpy(), np.asarray(k), rtol=2e-6)
    big = np.array([-60000.0, 60000.0, 1.0], "float16")  # a variance beyond float16's range: clipped by both
    for f, k in zip(fops.moments(big, [0]), keras.ops.moments(big, [0])):
        np.testing.assert_array_equal(f.numpy(), np.asarray(k))


def test_integer_inputs_are_float32_in_fastnn():
    # keras.ops.moments hands integers to tf.nn.moments, which reduces in int32 (truncated means); fastnn treats
    # integers as its other float-only functions do (float32, as keras.ops.mean does), so the values are Keras's
    # moments of the float32 data.
    x = np.array([0, 1, 2, 3, 100], "int32")
    f_mean, f_var = fops.moments(x, [0])
    k_mean, k_var = keras.ops.moments(x.astype("float32"), [0])
    assert f_mean.dtype == np.float32 and np.asarray(keras.ops.moments(x, [0])[0]).dtype == np.int32
    np.testing.assert_allclose([float(f_mean), float(f_var)], [float(k_mean), float(k_var)], rtol=1e-6)


@pytest.mark.parametrize("which", ["mean", "variance", "both"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape,axes,keepdims", [c for c in CASES if 0 not in c[0]])
def test_gradients_match_keras(shape, axes, keepdims, dtype, which):
    x = _data(shape, dtype, seed=1)
    out_shape = np.shape(np.asarray(keras.ops.moments(x, axes, keepdims=keepdims)[0]))
    w_mean = np.linspace(0.5, 1.5, int(np.prod(out_shape))).reshape(out_shape).astype(dtype)
    w_var = np.linspace(-1.0, 2.0, int(np.prod(out_shape))).reshape(out_shape).astype(dtype)

    def objective(ops, mean, variance):
        parts = {"mean": [ops.multiply(mean, w_mean)], "variance": [ops.multiply(variance, w_var)]}
        parts["both"] = parts["mean"] + parts["variance"]
        return sum(ops.sum(p) for p in parts[which])

    tx = tf.Variable(x)
    with tf.GradientTape() as tape:
        k_loss = objective(keras.ops, *keras.ops.moments(tx, axes, keepdims=keepdims))
    k_grad = tape.gradient(k_loss, tx).numpy()

    fx = fastnn.Variable(x)
    with fastnn.GradientTape() as ftape:
        f_loss = objective(fops, *fops.moments(fx, axes, keepdims=keepdims))
    f_grad = ftape.gradient(f_loss, fx).numpy()
    assert f_grad.dtype == k_grad.dtype
    tol = 2e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(float(f_loss), float(k_loss), rtol=tol)
    np.testing.assert_allclose(f_grad, k_grad, rtol=tol, atol=tol)
