"""The fused batch norm + ReLU ops (``norm.batch_norm_train`` / ``batch_norm_inference`` with activation="relu", on
the kernels' activation= / relu_y= forms): the output and every gradient have exactly the bits of the unfused ops in
a row (the normalization, then ``ops.relu``), for either axis layout, with and without gamma / beta, both dtypes;
the training op's gradients also match float64 central differences."""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import ops
from fastnn.autograd.ops import norm
from fastnn.autograd.tensor import Tensor
from fastnn.testing.gradcheck import check_gradients

EPS = 1e-3


def _operands(rng, shape, axis, dtype, affine):
    x = (rng.standard_normal(shape) + 0.2).astype(dtype)
    c = shape[axis]
    gamma = Tensor((rng.standard_normal(c) + 1).astype(dtype)) if affine else None
    beta = Tensor(rng.standard_normal(c).astype(dtype)) if affine else None
    return x, gamma, beta


def _run(fn, x, gamma, beta, upstream):
    xv = fastnn.Variable(x)
    params = [p for p in (gamma, beta) if p is not None]
    pv = [fastnn.Variable(p.numpy()) for p in params]
    g, b = (pv + [None, None])[:2] if gamma is not None else (None, None)
    with fastnn.GradientTape() as tape:
        y = fn(xv, g, b)
        loss = ops.sum(ops.multiply(y, upstream))
    grads = tape.gradient(loss, [xv] + pv)
    return [y.numpy()] + [gr.numpy() for gr in grads]


def _same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(np.ascontiguousarray(a).view(np.uint8), np.ascontiguousarray(b).view(np.uint8))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,axis", [((4, 5, 5, 8), 3), ((4, 8, 5, 5), 1), ((33, 7), 1)])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("training", [True, False])
def test_fused_relu_gives_the_bits_of_the_unfused_ops(dtype, shape, axis, affine, training):
    rng = np.random.default_rng(5)
    x, gamma, beta = _operands(rng, shape, axis, dtype, affine)
    upstream = rng.standard_normal(shape).astype(dtype)
    mean = rng.standard_normal(shape[axis]).astype(dtype)
    var = (rng.random(shape[axis]) + 0.5).astype(dtype)

    def plain(xv, g, b):
        if training:
            return ops.relu(norm.batch_norm_train(xv, g, b, axis, EPS)[0])
        return ops.relu(norm.batch_norm_inference(xv, mean, var, g, b, axis, EPS))

    def fused(xv, g, b):
        if training:
            return norm.batch_norm_train(xv, g, b, axis, EPS, activation="relu")[0]
        return norm.batch_norm_inference(xv, mean, var, g, b, axis, EPS, activation="relu")

    for a, b in zip(_run(fused, x, gamma, beta, upstream), _run(plain, x, gamma, beta, upstream)):
        assert _same_bits(a, b)


def test_fused_train_op_matches_central_differences():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((6, 3, 3, 4)) + 0.3
    gamma, beta = rng.standard_normal(4) + 1, rng.standard_normal(4)
    check_gradients(lambda xv, g, b: norm.batch_norm_train(xv, g, b, 3, EPS, activation="relu")[0],
                    [x, gamma, beta], rtol=1e-5, atol=1e-7)


def test_bad_activation():
    x = Tensor(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match=r'batch_norm_train: activation must be "linear" or "relu"'):
        norm.batch_norm_train(x, None, None, 1, EPS, activation="gelu")
    with pytest.raises(ValueError, match=r'batch_norm_inference: activation must be "linear" or "relu"'):
        norm.batch_norm_inference(x, np.zeros(3, np.float32), np.ones(3, np.float32), None, None, 1, EPS,
                                  activation="tanh")
