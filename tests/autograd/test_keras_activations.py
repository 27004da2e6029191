"""Keras 3.15's further activations: names, signatures, string lookup, serialization, argument errors and values at
a few points (literals computed with Keras 3.15.1 / TensorFlow 2.21; the live cross-check is
tests/e2e/test_keras_autograd.py)."""
from __future__ import annotations

import inspect

import numpy as np
import pytest

import fastnn
from fastnn import activations, ops

NEW = ["celu", "glu", "hard_shrink", "hard_silu", "hard_swish", "hard_tanh", "log_sigmoid", "mish", "soft_shrink",
       "sparse_plus", "sparse_sigmoid", "sparsemax", "squareplus", "tanh_shrink", "threshold"]
# keras.ops signatures (keras/src/ops/nn.py); mish exists only in keras.activations.
SIGNATURES = {
    "celu": "(x, alpha=1.0)", "glu": "(x, axis=-1)", "hard_shrink": "(x, threshold=0.5)", "hard_silu": "(x)",
    "hard_swish": "(x)", "hard_tanh": "(x)", "log_sigmoid": "(x)", "mish": "(x)",
    "soft_shrink": "(x, threshold=0.5)", "sparse_plus": "(x)", "sparse_sigmoid": "(x)", "sparsemax": "(x, axis=-1)",
    "squareplus": "(x, b=4)", "tanh_shrink": "(x)", "threshold": "(x, threshold, default_value)",
}


@pytest.mark.parametrize("name", NEW)
def test_activation_by_name_signature_and_serialization(name):
    fn = activations.get(name)
    assert fn is getattr(activations, name)
    assert str(inspect.signature(fn)) == SIGNATURES[name]
    if name != "mish":
        assert str(inspect.signature(getattr(ops, name))) == SIGNATURES[name]
    expected = "hard_silu" if name == "hard_swish" else name
    assert activations.serialize(fn) == expected
    assert activations.deserialize(activations.serialize(fn)) is getattr(activations, expected)


def test_dense_layer_accepts_the_new_names():
    x = np.linspace(-2, 2, 12, dtype="float32").reshape(3, 4)
    for name in ["celu", "mish", "hard_swish", "log_sigmoid", "squareplus", "sparsemax"]:
        layer = fastnn.layers.Dense(2, activation=name)
        assert layer(x).shape == (3, 2)
        assert layer.get_config()["activation"] == ("hard_silu" if name == "hard_swish" else name)


X = np.array([-3.0, -1.5, -1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 1.5, 3.0], "float32")
# Keras 3.15.1 (TensorFlow backend) values at X.
KERAS_VALUES = {
    "celu": [-0.950212955475, -0.776869833469, -0.632120549679, -0.393469333649, -0.221199214458, 0.0, 0.25, 0.5, 1.0,
        1.5, 3.0],
    "hard_shrink": [-3.0, -1.5, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.5, 3.0],
    "hard_silu": [-0.0, -0.375, -0.333333343267, -0.208333328366, -0.114583335817, 0.0, 0.135416671634, 0.291666656733,
        0.666666686535, 1.125, 3.0],
    "hard_tanh": [-1.0, -1.0, -1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 1.0, 1.0],
    "log_sigmoid": [-3.04858708382, -1.70141327381, -1.31326162815, -0.974076926708, -0.825939416885, -0.693147182465,
        -0.57593947649, -0.474076986313, -0.313261687756, -0.201413288713, -0.0485873520374],
    "mish": [-0.145647481084, -0.298099726439, -0.303401499987, -0.220743775368, -0.129926979542, 0.0, 0.169572412968,
        0.375245183706, 0.865098416805, 1.40337812901, 2.98653507233],
    "soft_shrink": [-2.5, -1.0, -0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 1.0, 2.5],
    "sparse_plus": [0.0, 0.0, 0.0, 0.0625, 0.140625, 0.25, 0.390625, 0.5625, 1.0, 1.5, 3.0],
    "sparse_sigmoid": [0.0, 0.0, 0.0, 0.25, 0.375, 0.5, 0.625, 0.75, 1.0, 1.0, 1.0],
    "squareplus": [0.302775621414, 0.5, 0.618034005165, 0.780776381493, 0.88278222084, 1.0, 1.13278222084, 1.28077638149,
        1.61803400517, 2.0, 3.30277562141],
    "tanh_shrink": [-2.00494527817, -0.594851672649, -0.238405823708, -0.0378828644753, -0.00508134067059, 0.0,
        0.00508134067059, 0.0378828644753, 0.238405823708, 0.594851672649, 2.00494527817],
}


@pytest.mark.parametrize("name", sorted(KERAS_VALUES))
def test_values_match_keras(name):
    np.testing.assert_allclose(activations.get(name)(X).numpy(), KERAS_VALUES[name], rtol=2e-6, atol=1e-7)


def test_threshold_glu_sparsemax_values():
    np.testing.assert_array_equal(ops.threshold(X, 0.5, -7.0).numpy(),
                                  np.where(X > 0.5, X, -7.0))  # 0.5 itself is replaced (x > threshold keeps x)
    g = ops.glu(np.array([[1.0, 2.0, 0.0, -1.0]], "float32")).numpy()
    np.testing.assert_allclose(g, [[0.5, 2.0 / (1.0 + np.e)]], rtol=1e-6)
    s = ops.sparsemax(np.array([[0.0, 0.5, 1.0], [1.0, 2.0, 3.0], [0.1, 0.1, 0.1]], "float32")).numpy()
    np.testing.assert_allclose(s, [[0.0, 0.25, 0.75], [0.0, 0.0, 1.0], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-6)
    np.testing.assert_allclose(s.sum(axis=-1), 1.0, rtol=1e-6)


def test_sparsemax_gradient_is_the_projection_jacobian():
    x = fastnn.Variable(np.array([[0.0, 0.5, 1.0]]))
    with fastnn.GradientTape() as tape:
        y = ops.sparsemax(x)
        loss = ops.sum(y * np.array([[1.0, 2.0, 5.0]]))
    # support {1, 2}: d/dx = s * (g - mean over the support of g) = [0, 2 - 3.5, 5 - 3.5]
    np.testing.assert_allclose(tape.gradient(loss, x).numpy(), [[0.0, -1.5, 1.5]])


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match=r"glu: axis size must be divisible by 2. Received: x.shape=\(2, 3\)"):
        ops.glu(np.ones((2, 3)))
    with pytest.raises(ValueError, match="glu: axis 2 is out of bounds"):
        ops.glu(np.ones((2, 4)), axis=2)
    with pytest.raises(ValueError, match="sparsemax: x must have at least 1 dimension"):
        ops.sparsemax(1.0)
    with pytest.raises(ValueError, match="celu: alpha must be non-zero"):
        ops.celu(np.ones(2), alpha=0.0)
    with pytest.raises(TypeError, match="squareplus: b must be a number"):
        ops.squareplus(np.ones(2), b="4")


def test_integer_inputs_become_float32():
    for name in NEW:
        if name in ("glu", "threshold"):
            continue
        out = activations.get(name)(np.array([[-2, 0, 1, 3]]))
        assert out.dtype == np.float32, name
