"""Live cross-check of the pooling and batch-normalization kernels (fastnn.backend's max_pool2d_* / avg_pool2d_* /
batch_norm_*) against TensorFlow's own ops, which Keras 3's layers call on the TensorFlow backend: max pooling forward
bit for bit and its gradient, average pooling (TensorFlow excludes "same" padding from the count) forward and
gradient, and the batch-norm training forward (tf.nn.moments + tf.nn.batch_normalization) with its gradients for x,
gamma and beta. Skipped when TensorFlow is not installed; tests/kernels/test_pool.py and test_batchnorm.py check the
same kernels against NumPy and finite differences.

Run with Keras in a separate environment, e.g.
    KERAS_BACKEND=tensorflow PYTHONPATH=$PWD/src /work/kvenv/bin/python -m pytest tests/e2e/test_tf_pool_batchnorm_kernels.py
"""
from __future__ import annotations

import itertools
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

tf = pytest.importorskip("tensorflow")

from fastnn import backend as B  # noqa: E402

SHAPES = [(2, 5, 7, 3), (1, 6, 6, 4), (3, 9, 4, 2), (1, 1, 1, 5)]
WINDOWS = [(1, 1), (2, 2), (3, 3), (2, 3)]
STRIDES = [(1, 1), (2, 2), (3, 2)]


def _cases():
    for shape, k, s, pad in itertools.product(SHAPES, WINDOWS, STRIDES, ["valid", "same"]):
        if pad == "valid" and (k[0] > shape[1] or k[1] > shape[2]):
            continue
        yield shape, k, s, pad


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pooling_matches_tensorflow(dtype):
    rng = np.random.default_rng(0)
    for shape, k, s, pad in _cases():
        x = rng.standard_normal(shape).astype(dtype)
        xt = tf.constant(x)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(xt)
            ym = tf.nn.max_pool2d(xt, k, s, pad.upper())
            ya = tf.nn.avg_pool2d(xt, k, s, pad.upper())
        dy = rng.standard_normal(ym.shape).astype(dtype)
        gm = tape.gradient(ym, xt, output_gradients=tf.constant(dy)).numpy()
        ga = tape.gradient(ya, xt, output_gradients=tf.constant(dy)).numpy()
        y, argmax = B.max_pool2d_forward(x, k, s, pad)
        np.testing.assert_array_equal(y, ym.numpy())
        tol = 1e-6 if dtype == np.float32 else 1e-14
        np.testing.assert_allclose(B.max_pool2d_backward(dy, argmax, shape), gm, rtol=tol, atol=tol)
        np.testing.assert_allclose(B.avg_pool2d_forward(x, k, s, pad), ya.numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(B.avg_pool2d_backward(dy, shape, k, s, pad), ga, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_norm_matches_tensorflow(dtype):
    rng = np.random.default_rng(1)
    for shape in [(500, 8), (4, 5, 5, 3), (1, 6)]:
        x = (rng.standard_normal(shape) * 3 + 10).astype(dtype)
        c = shape[-1]
        gamma, beta = rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)
        xt, gt, bt = tf.constant(x), tf.constant(gamma), tf.constant(beta)
        with tf.GradientTape() as tape:
            tape.watch([xt, gt, bt])
            mean, var = tf.nn.moments(xt, list(range(len(shape) - 1)))
            yt = tf.nn.batch_normalization(xt, mean, var, bt, gt, 1e-3)
        dy = rng.standard_normal(shape).astype(dtype)
        gx, gg, gb = tape.gradient(yt, [xt, gt, bt], output_gradients=tf.constant(dy))
        y, m, v, rstd = B.batch_norm_train_forward(x, gamma, beta, 1e-3)
        dx, dgamma, dbeta = B.batch_norm_backward(dy, x, m, rstd, gamma)
        tol = 1e-4 if dtype == np.float32 else 1e-10  # TensorFlow accumulates float32 in float32
        np.testing.assert_allclose(m, mean.numpy(), rtol=tol)
        np.testing.assert_allclose(v, var.numpy(), rtol=tol)
        np.testing.assert_allclose(y, yt.numpy(), rtol=tol, atol=tol)
        for got, want in [(dx, gx), (dgamma, gg), (dbeta, gb)]:
            want = want.numpy()
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(1.0, float(np.abs(want).max())))
