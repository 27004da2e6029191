"""Derivatives at the kinks and ties of fastnn.ops / fastnn.activations equal TensorFlow's (literals from TF 2.21
via keras.ops / keras.activations under tf.GradientTape; the live cross-check is tests/e2e/test_keras_autograd.py).
"""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import activations, ops


def _value_and_grad(fn, x, dtype):
    v = fastnn.Variable(np.array(x, dtype))
    with fastnn.GradientTape() as tape:
        y = fn(v)
    return y.numpy(), tape.gradient(y, v).numpy()


OPS_KINKS = [
    # (name, fn, x, TF's d/dx)
    ("relu", ops.relu, [0.0], [0.0]),
    ("relu6", ops.relu6, [0.0, 6.0], [0.0, 0.0]),
    ("leaky_relu", ops.leaky_relu, [0.0], [0.2]),
    ("elu", ops.elu, [0.0], [1.0]),
    ("elu_alpha", lambda x: ops.elu(x, alpha=0.5), [0.0], [0.5]),
    ("selu", ops.selu, [0.0], [1.0507009873554805]),
    ("hard_sigmoid", ops.hard_sigmoid, [-3.0, 3.0], [0.0, 0.0]),
    ("softplus", ops.softplus, [0.0], [0.5]),
    ("softsign", ops.softsign, [0.0], [1.0]),
    ("gelu_approximate", lambda x: ops.gelu(x, approximate=True), [0.0], [0.5]),
    ("gelu_exact", lambda x: ops.gelu(x, approximate=False), [0.0], [0.5]),
    ("silu", ops.silu, [0.0], [0.5]),
    ("abs", ops.abs, [0.0], [0.0]),
    ("sign", ops.sign, [0.0], [0.0]),
    ("clip", lambda x: ops.clip(x, 0.0, 1.0), [-1.0, 0.0, 0.5, 1.0, 2.0], [0.0, 1.0, 1.0, 1.0, 0.0]),
    # keras.activations.relu's options, composed as Keras composes them (values checked below too)
    ("relu_max6", lambda x: activations.relu(x, max_value=6.0), [0.0, 1.0, 2.0, 6.0], [0.0, 1.0, 1.0, 0.0]),
    ("relu_threshold", lambda x: activations.relu(x, threshold=1.0), [0.0, 1.0, 2.0, 6.0], [0.0, 0.0, 1.0, 1.0]),
    ("relu_slope_threshold", lambda x: activations.relu(x, negative_slope=0.1, threshold=1.0), [0.0, 1.0, 2.0, 6.0],
     [0.1, 0.0, 1.0, 1.0]),
    ("relu_slope_max2", lambda x: activations.relu(x, negative_slope=0.1, max_value=2.0), [0.0, 1.0, 2.0, 6.0],
     [0.0, 1.0, 1.0, 0.0]),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name, fn, x, expected", OPS_KINKS, ids=[r[0] for r in OPS_KINKS])
def test_derivative_at_kinks_matches_tensorflow(name, fn, x, expected, dtype):
    _, g = _value_and_grad(fn, x, dtype)
    np.testing.assert_allclose(g, expected, rtol=1e-7 if dtype == "float32" else 1e-15, atol=0)


@pytest.mark.parametrize("kwargs, expected", [
    (dict(max_value=6.0), [0.0, 1.0, 2.0, 6.0]),
    (dict(threshold=1.0), [0.0, 0.0, 2.0, 6.0]),                 # x == threshold gives 0 (x > threshold keeps x)
    (dict(negative_slope=0.1, threshold=1.0), [-0.1, 0.0, 2.0, 6.0]),
    (dict(negative_slope=0.1, max_value=2.0), [0.0, 1.0, 2.0, 2.0]),
])
def test_activations_relu_options_values_match_keras(kwargs, expected):
    y = activations.relu(np.array([0.0, 1.0, 2.0, 6.0], "float32"), **kwargs)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-7)


def test_ties_of_maximum_minimum_where_go_to_the_first_argument():
    a = fastnn.Variable(np.array([1.0, 2.0, 3.0], "float32"))
    b = fastnn.Variable(np.array([1.0, 1.0, 4.0], "float32"))
    with fastnn.GradientTape(persistent=True) as tape:
        ymax, ymin, ywhere = ops.maximum(a, b), ops.minimum(a, b), ops.where(a >= b, a, b)
    for y, expected_a, expected_b in [(ymax, [1, 1, 0], [0, 0, 1]), (ymin, [1, 0, 1], [0, 1, 0]),
                                      (ywhere, [1, 1, 0], [0, 0, 1])]:
        ga, gb = tape.gradient(y, [a, b])
        np.testing.assert_array_equal(ga.numpy(), expected_a)
        np.testing.assert_array_equal(gb.numpy(), expected_b)
