"""Every layer through the shared harness, plus layer-specific semantics and argument errors."""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import layers
from fastnn.testing.layer_harness import run_layer_test


@pytest.fixture(autouse=True)
def _fresh_names():
    fastnn.utils.clear_session()
    fastnn.utils.set_random_seed(0)


def test_dense():
    layer = run_layer_test(layers.Dense, {"units": 4, "activation": "relu"}, (3, 5), (3, 4),
                           expected_num_trainable_weights=2, bad_input_shape=(3, 6),
                           bad_input_match=r'Input 0 of layer "dense" is incompatible with the layer: expected axis '
                                           r"-1 of input shape to have value 5, but received input with shape \(3, 6\)")
    assert layer.kernel.shape == (5, 4) and layer.bias.shape == (4,)
    assert [w.path for w in layer.weights] == ["dense/kernel", "dense/bias"]


def test_dense_math_nd_and_no_bias():
    x = np.random.default_rng(1).standard_normal((2, 3, 5)).astype("float32")
    layer = layers.Dense(4, use_bias=False, activation="tanh")
    y = layer(x).numpy()
    assert y.shape == (2, 3, 4) and len(layer.weights) == 1
    np.testing.assert_allclose(y, np.tanh(x @ layer.kernel.numpy()), rtol=1e-5, atol=1e-6)
    run_layer_test(layers.Dense, {"units": 2}, (2, 3, 5), (2, 3, 2), expected_num_trainable_weights=2)


def test_dense_fused_relu_gradient_matches_numpy():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((7, 5)).astype("float64")
    layer = layers.Dense(3, activation="relu", dtype="float64", bias_initializer="random_normal")
    with fastnn.GradientTape() as tape:
        tape.watch(xt := fastnn.Tensor(x))
        y = layer(xt)
        loss = fastnn.ops.sum(y * y)
    gx, gk, gb = tape.gradient(loss, [xt, layer.kernel, layer.bias])
    k, b = layer.kernel.numpy(), layer.bias.numpy()
    pre = x @ k + b
    g = 2 * np.maximum(pre, 0) * (pre > 0)
    np.testing.assert_allclose(gx.numpy(), g @ k.T, rtol=1e-12)
    np.testing.assert_allclose(gk.numpy(), x.T @ g, rtol=1e-12)
    np.testing.assert_allclose(gb.numpy(), g.sum(0), rtol=1e-12)


def test_custom_activation_callable():
    layer = layers.Dense(3, activation=lambda t: t ** 2)
    x = np.ones((2, 4), "float32")
    y = layer(x).numpy()
    np.testing.assert_allclose(y, (x @ layer.kernel.numpy()) ** 2, rtol=1e-6)


def test_activation_dropout_flatten_identity():
    run_layer_test(layers.Activation, {"activation": "sigmoid"}, (2, 3), (2, 3))
    run_layer_test(layers.Dropout, {"rate": 0.5}, (4, 3), (4, 3))
    run_layer_test(layers.Flatten, {}, (2, 3, 4), (2, 12), bad_input_shape=None)
    run_layer_test(layers.Identity, {}, (2, 3), (2, 3))


def test_dropout_only_in_training_and_reproducible():
    x = np.ones((200, 50), "float32")
    d = layers.Dropout(0.5)
    np.testing.assert_array_equal(d(x).numpy(), x)
    np.testing.assert_array_equal(d(x, training=False).numpy(), x)
    fastnn.utils.set_random_seed(3)
    y = d(x, training=True).numpy()
    assert set(np.unique(y)) <= {0.0, 2.0}
    assert 0.4 < (y == 0).mean() < 0.6
    fastnn.utils.set_random_seed(3)
    np.testing.assert_array_equal(d(x, training=True).numpy(), y)
    ns = layers.Dropout(0.5, noise_shape=(None, 1))(x, training=True).numpy()
    assert all(len(np.unique(r)) == 1 for r in ns)


def test_reshaping_layers():
    run_layer_test(layers.Reshape, {"target_shape": (4, 3)}, (2, 12), (2, 4, 3), bad_input_shape=(2, 13))
    run_layer_test(layers.Reshape, {"target_shape": (-1, 2)}, (2, 3, 4), (2, 6, 2))
    run_layer_test(layers.Permute, {"dims": (2, 1)}, (2, 3, 4), (2, 4, 3), bad_input_shape=(2, 3))
    run_layer_test(layers.RepeatVector, {"n": 3}, (2, 4), (2, 3, 4), bad_input_shape=(2, 3, 4))
    x = np.arange(24, dtype="float32").reshape(2, 3, 4)
    np.testing.assert_array_equal(layers.Permute((2, 1))(x).numpy(), x.transpose(0, 2, 1))
    np.testing.assert_array_equal(layers.RepeatVector(2)(x[:, 0]).numpy(), np.stack([x[:, 0]] * 2, 1))


def _double(t):
    return t * 2.0


def _first_two(t):
    return t[:, :2]


def test_lambda_layer():
    # Named functions are written by name, as Keras writes them: built-in ones load by themselves...
    run_layer_test(layers.Lambda, {"function": fastnn.activations.tanh}, (2, 3), (2, 3))
    # ... a user's function through custom_objects.
    layer = layers.Lambda(_first_two, output_shape=(2,))
    assert layer(np.ones((2, 3), "float32")).shape == (2, 2)
    config = layer.get_config()
    assert config["function"] == {"module": "builtins", "class_name": "function", "config": "_first_two",
                                  "registered_name": "function"}
    with pytest.raises(TypeError, match="custom_objects"):
        layers.Lambda.from_config(config)
    clone = layers.Lambda.from_config(config, custom_objects={"_first_two": _first_two})
    assert clone(np.ones((2, 3), "float32")).shape == (2, 2) and clone.get_config() == config


def test_lambda_python_lambdas_load_only_outside_safe_mode():
    scale = 3.0
    layer = layers.Lambda(lambda t: t * scale, name="lam")
    config = layer.get_config()
    assert config["function"]["class_name"] == "__lambda__" and config["function"]["config"]["closure"] == (3.0,)
    with pytest.raises(ValueError, match="safe_mode=False"):
        layers.Lambda.from_config(config)
    clone = layers.Lambda.from_config(config, safe_mode=False)
    np.testing.assert_allclose(clone(np.ones((1, 2), "float32")).numpy(), [[3.0, 3.0]])


def test_lambda_mask_follows_keras():
    # Issue 10 made masks flow; Lambda's mask (refused before) is Keras's compute_mask.
    assert not layers.Lambda(_double).supports_masking
    layer = layers.Lambda(_double, mask=lambda x, m: m)
    assert layer.supports_masking and layer.compute_mask(None, "m") == "m"
    config = layer.get_config()
    assert config["mask"]["class_name"] == "__lambda__"
    clone = layers.Lambda.from_config(config, custom_objects={"_double": _double}, safe_mode=False)
    assert clone.compute_mask(None, "m") == "m"


@pytest.mark.parametrize("cls,fn", [
    (layers.Add, lambda a, b: a + b), (layers.Subtract, lambda a, b: a - b), (layers.Multiply, lambda a, b: a * b),
    (layers.Average, lambda a, b: (a + b) / 2), (layers.Maximum, np.maximum), (layers.Minimum, np.minimum)])
def test_merging_layers(cls, fn):
    layer = run_layer_test(cls, {}, [(2, 3), (2, 3)], (2, 3), bad_input_shape=[(2, 3), (2, 4)])
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((2, 3)).astype("float32"), rng.standard_normal((2, 3)).astype("float32")
    np.testing.assert_allclose(layer([a, b]).numpy(), fn(a, b), rtol=1e-6)


def test_concatenate():
    layer = run_layer_test(layers.Concatenate, {"axis": -1}, [(2, 3), (2, 4)], (2, 7),
                           bad_input_shape=[(3, 3), (2, 4)])
    a, b = np.ones((2, 3), "float32"), np.zeros((2, 4), "float32")
    np.testing.assert_array_equal(layer([a, b]).numpy(), np.concatenate([a, b], -1))
    x = fastnn.Input((3,))
    with pytest.raises(ValueError, match="Concatenate"):
        layers.Concatenate(axis=0)([x, fastnn.Input((4,))]).shape  # noqa: B018
    with pytest.raises(ValueError, match="exactly 2 inputs"):
        layers.Subtract()([x, x, x])
    with pytest.raises(ValueError, match="list of inputs"):
        layers.Add()(x)


@pytest.mark.parametrize("make,match", [
    (lambda: layers.Dense(0), r"units=0"),
    (lambda: layers.Dense(-3), r"units=-3"),
    (lambda: layers.Dense(2.5), r"units"),
    (lambda: layers.Dropout(1.5), r"rate=1.5"),
    (lambda: layers.Dropout(-0.1), r"rate"),
    (lambda: layers.Dense(3, activation="relux"), r"activation function identifier: 'relux'.*relu"),
    (lambda: layers.Dense(3, kernel_initializer="glorot"), r"initializer identifier: 'glorot'.*glorot_uniform"),
    (lambda: layers.Reshape((0, 2)), r"target_shape"),
    (lambda: layers.Permute((1, 3)), r"dims"),
    (lambda: layers.RepeatVector(0), r"n=0"),
])
def test_invalid_layer_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_unknown_keyword_argument():
    with pytest.raises(TypeError, match="Unrecognized keyword arguments passed to Dense: {'unit': 3}"):
        layers.Dense(3, unit=3)


def test_automatic_names():
    names = [layers.Dense(1).name, layers.Dense(1).name, layers.Dropout(0.1).name, layers.Dense(1).name,
             layers.RepeatVector(2).name]
    assert names == ["dense", "dense_1", "dropout", "dense_2", "repeat_vector"]


def test_trainable_freezing_and_weights():
    layer = layers.Dense(2)
    layer.build((None, 3))
    assert len(layer.trainable_weights) == 2 and not layer.non_trainable_weights
    layer.trainable = False
    assert not layer.trainable_weights and len(layer.non_trainable_weights) == 2
    assert not layer.kernel.trainable
    layer.trainable = True
    assert layer.kernel.trainable
    with pytest.raises(ValueError, match="expected 2 weight"):
        layer.set_weights([np.zeros((3, 2))])
    with pytest.raises(ValueError, match="shape mismatch"):
        layer.set_weights([np.zeros((3, 3)), np.zeros(2)])
    assert layer.count_params() == 8
    with pytest.raises(ValueError, match="isn't built"):
        layers.Dense(2).count_params()


def test_user_subclassed_layer_with_weights():
    class Scale(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="w")
            self.b = self.add_weight(shape=(), initializer="zeros", trainable=False, name="b")

        def call(self, x):
            return x * self.w + self.b

    run_layer_test(Scale, {}, (2, 3), (2, 3), expected_num_trainable_weights=1,
                   expected_num_non_trainable_weights=1)
    first, second = Scale().name, Scale().name  # Keras's naming: the snake-case class name, numbered
    assert first.startswith("scale_") and second == f"scale_{int(first.split('_')[1]) + 1}"


def test_regularizers_add_losses():
    layer = layers.Dense(2, kernel_regularizer=fastnn.regularizers.L2(0.5), bias_regularizer="l1",
                         kernel_initializer="ones", bias_initializer="ones")
    layer.build((None, 3))
    got = [float(l) for l in layer.losses]
    assert got == pytest.approx([0.5 * 6.0, 0.01 * 2.0])
    assert float(fastnn.regularizers.L1L2(l1=0.1, l2=0.2)(np.array([1.0, -2.0]))) == pytest.approx(0.1 * 3 + 0.2 * 5)


def test_activity_regularizer_is_divided_by_batch_size_and_reset_per_call():
    d = layers.Dense(2, activity_regularizer=fastnn.regularizers.L1(1.0), kernel_initializer="ones")
    x = np.ones((4, 3), "float32")
    y = d(x)
    assert [float(l) for l in d.losses] == pytest.approx([float(np.abs(y.numpy()).sum()) / 4])
    d(x)
    assert len(d.losses) == 1
    m = fastnn.Sequential([fastnn.Input((3,)), d])
    m(x)
    m(x)
    assert len(m.losses) == 1
