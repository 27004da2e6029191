"""float64 central-difference gradient checks of the fused dense op and of layers / losses built on ops."""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import losses
from fastnn.autograd.ops.nn import dense
from fastnn.testing.gradcheck import check_gradients

rng = np.random.default_rng(0)


@pytest.mark.parametrize("activation", ["linear", "relu"])
@pytest.mark.parametrize("shape", [(5, 3), (2, 3, 3), (1, 3)])
def test_fused_dense_gradients(activation, shape):
    x = rng.standard_normal(shape)
    k = rng.standard_normal((3, 4))
    b = rng.standard_normal(4) * 0.1
    check_gradients(lambda x, k, b: dense(x, k, b, activation), [x, k, b])
    check_gradients(lambda x, k: dense(x, k, None, activation), [x, k])


def test_dense_zero_rows():
    out = dense(np.zeros((0, 3)), np.ones((3, 2)), np.zeros(2), "relu")
    assert out.shape == (0, 2)


@pytest.mark.parametrize("name", ["mse", "mae", "huber", "log_cosh", "kl_divergence", "poisson", "cosine_similarity",
                                  "msle", "binary_crossentropy", "categorical_crossentropy", "hinge"])
def test_loss_gradients(name):
    t = rng.uniform(0.1, 0.9, (4, 3))
    if name == "categorical_crossentropy":
        t = t / t.sum(-1, keepdims=True)
    p = rng.uniform(0.2, 0.8, (4, 3))
    fn = losses.get(name)
    check_gradients(lambda p: fn(t, p), [p], rtol=1e-4, atol=1e-6)


def test_merge_and_reshape_layer_gradients():
    a, b = rng.standard_normal((2, 6)), rng.standard_normal((2, 6))
    L = fastnn.layers
    for layer in (L.Add(dtype="float64"), L.Multiply(dtype="float64"), L.Average(dtype="float64"),
                  L.Maximum(dtype="float64"), L.Concatenate(dtype="float64")):
        check_gradients(lambda a, b: layer([a, b]), [a, b])
    check_gradients(lambda a: L.Permute((2, 1), dtype="float64")(L.Reshape((2, 3), dtype="float64")(a)), [a])
    check_gradients(lambda a: L.RepeatVector(3, dtype="float64")(a), [a])
