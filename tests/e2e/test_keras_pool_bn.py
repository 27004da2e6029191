"""Live cross-check of MaxPooling1D/2D, AveragePooling1D/2D and BatchNormalization against Keras 3 (TensorFlow
backend): same inputs and weights, the same outputs and input gradients ("valid" and "same", strides, both data
formats), output shapes and configs (key for key; Keras's configs load into fastnn); BatchNormalization in training
and in inference, and a tiny Dense -> BatchNormalization -> Dense model trained 2 epochs with SGD (shuffle=False):
the same losses, weights, moving statistics and predictions to 1e-5. Skipped when Keras is not installed;
tests/layers/test_pool_bn_layers.py holds the semantics without Keras.

Run with Keras in a separate environment, e.g.
    KERAS_BACKEND=tensorflow PYTHONPATH=$PWD/src /work/kvenv/bin/python -m pytest tests/e2e/test_keras_pool_bn.py
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
from fastnn.testing import keras_parity  # noqa: E402

CASES = [
    ("MaxPooling2D", {}, (2, 4, 6, 3)),
    ("MaxPooling2D", {"pool_size": 3, "strides": 2, "padding": "same"}, (2, 5, 6, 3)),
    ("MaxPooling2D", {"pool_size": (2, 3), "strides": (1, 2)}, (2, 5, 7, 2)),
    ("MaxPooling2D", {"pool_size": 2, "strides": 1, "padding": "same", "data_format": "channels_first"},
     (2, 3, 4, 5)),
    ("MaxPooling1D", {}, (2, 7, 3)),
    ("MaxPooling1D", {"pool_size": 3, "strides": 2, "padding": "same", "data_format": "channels_first"}, (2, 3, 8)),
    ("AveragePooling2D", {"pool_size": 2}, (2, 4, 6, 3)),
    ("AveragePooling2D", {"pool_size": 3, "strides": 2, "padding": "same"}, (2, 5, 6, 3)),
    ("AveragePooling2D", {"pool_size": (3, 2), "strides": 1, "padding": "same", "data_format": "channels_first"},
     (2, 3, 5, 4)),
    ("AveragePooling2D", {"pool_size": (2, 3), "strides": (2, 1), "data_format": "channels_first"}, (2, 3, 5, 6)),
    ("AveragePooling1D", {"pool_size": 4, "strides": 3, "padding": "same"}, (2, 9, 3)),
    ("AveragePooling1D", {"pool_size": 2, "data_format": "channels_first"}, (2, 3, 7)),
]
IDS = [f"{name}-{i}" for i, (name, _, _) in enumerate(CASES)]


# The shared parity helpers (fastnn.testing.keras_parity).
_input = keras_parity.random_input
_keras_forward_and_gradient = keras_parity.keras_forward_and_gradient
_fastnn_forward_and_gradient = keras_parity.fastnn_forward_and_gradient
_pair = keras_parity.layer_pair


@pytest.mark.parametrize("name,kwargs,shape", CASES, ids=IDS)
def test_pooling_outputs_and_input_gradients_match_keras(name, kwargs, shape):
    k_layer, f_layer = _pair(name, kwargs)
    x = _input(shape)
    out_shape = tuple(k_layer.compute_output_shape(shape))
    upstream = _input(out_shape, seed=1)
    k_y, k_g = _keras_forward_and_gradient(k_layer, x, upstream)
    f_y, f_g = _fastnn_forward_and_gradient(f_layer, x, upstream)
    assert f_y.shape == k_y.shape == out_shape
    assert f_y.dtype == k_y.dtype
    np.testing.assert_allclose(f_y, k_y, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(f_g, k_g, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,kwargs,shape", CASES, ids=IDS)
def test_pooling_ops_match_keras_ops(name, kwargs, shape):
    op = "max_pool" if name.startswith("Max") else "average_pool"
    n = len(shape) - 2
    args = {"pool_size": kwargs.get("pool_size", (2,) * n), "strides": kwargs.get("strides"),
            "padding": kwargs.get("padding", "valid"), "data_format": kwargs.get("data_format")}
    x = _input(shape, seed=3)
    expected = np.asarray(getattr(keras.ops, op)(x, **args))
    np.testing.assert_allclose(getattr(fastnn.ops, op)(x, **args).numpy(), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name,kwargs,shape", CASES + [("BatchNormalization", {"axis": 1, "center": False}, (2, 3, 4)),
                                                      ("BatchNormalization", {"momentum": 0.9, "epsilon": 1e-5,
                                                                              "gamma_regularizer": "l2"}, (2, 3))],
                         ids=IDS + ["BatchNormalization-axis1", "BatchNormalization-args"])
def test_output_shapes_and_configs_match_keras(name, kwargs, shape):
    k_layer, f_layer = _pair(name, kwargs)
    symbolic = (None,) + shape[1:]
    assert tuple(f_layer.compute_output_shape(symbolic)) == tuple(k_layer.compute_output_shape(symbolic))
    k_config, f_config = k_layer.get_config(), f_layer.get_config()
    assert f_config == k_config
    loaded = getattr(fastnn.layers, name).from_config(k_config)
    assert loaded.get_config() == k_config
    assert tuple(loaded(fastnn.Input(shape[1:])).shape) == tuple(k_layer(keras.Input(shape[1:])).shape)


def test_pool_window_larger_than_the_input_fails_like_keras():
    with pytest.raises(ValueError, match="zero or negative"):
        keras.layers.MaxPooling2D(4)(keras.Input((3, 5, 1)))
    with pytest.raises(ValueError, match="zero or negative"):
        fastnn.layers.MaxPooling2D(4)(fastnn.Input((3, 5, 1)))


BN_CASES = [({}, (8, 5)), ({"axis": 1, "momentum": 0.8}, (4, 3, 5, 2)), ({"axis": -1, "epsilon": 1e-5}, (2, 4, 4, 3)),
            ({"center": False, "scale": False}, (6, 2, 3)), ({"axis": 0}, (3, 6))]


def _bn_pair(kwargs, shape, seed=4):
    k_layer, f_layer = _pair("BatchNormalization", kwargs)
    k_layer.build(shape)
    f_layer.build(shape)
    rng = np.random.default_rng(seed)
    weights = []
    for w in k_layer.weights:
        positive = "variance" in w.name or w.name == "gamma"
        value = rng.uniform(0.5, 1.5, w.shape) if positive else rng.normal(size=w.shape)
        weights.append(value.astype("float32"))
    k_layer.set_weights(weights)
    f_layer.set_weights(weights)
    return k_layer, f_layer


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("kwargs,shape", BN_CASES, ids=[str(i) for i in range(len(BN_CASES))])
def test_batch_norm_outputs_gradients_and_moving_statistics_match_keras(kwargs, shape, training):
    k_layer, f_layer = _bn_pair(kwargs, shape)
    x = _input(shape) * 2 + 0.5
    upstream = _input(shape, seed=1)
    k_y, k_g = _keras_forward_and_gradient(k_layer, x, upstream, training=training)
    f_y, f_g = _fastnn_forward_and_gradient(f_layer, x, upstream, training=training)
    np.testing.assert_allclose(f_y, k_y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(f_g, k_g, rtol=1e-5, atol=1e-5)
    for f_w, k_w in zip(f_layer.get_weights(), k_layer.get_weights()):
        np.testing.assert_allclose(f_w, k_w, rtol=1e-5, atol=1e-6)


def test_frozen_batch_norm_runs_in_inference_mode_like_keras():
    k_layer, f_layer = _bn_pair({}, (6, 3))
    k_layer.trainable = False
    f_layer.trainable = False
    x = _input((6, 3)) * 3
    np.testing.assert_allclose(f_layer(x, training=True).numpy(), np.asarray(k_layer(x, training=True)), rtol=1e-5,
                               atol=1e-6)
    for f_w, k_w in zip(f_layer.get_weights(), k_layer.get_weights()):
        np.testing.assert_array_equal(f_w, k_w)


def test_masked_batch_norm_matches_keras():
    k_layer, f_layer = _bn_pair({"momentum": 0.5}, (3, 5, 4))
    x = _input((3, 5, 4))
    mask = np.array([[1, 1, 0, 1, 0], [0, 1, 1, 1, 1], [1, 1, 1, 1, 1]], bool)
    upstream = _input((3, 5, 4), seed=2)
    k_y, k_g = _keras_forward_and_gradient(k_layer, x, upstream, training=True, mask=mask)
    f_y, f_g = _fastnn_forward_and_gradient(f_layer, x, upstream, training=True, mask=mask)
    np.testing.assert_allclose(f_y, k_y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(f_g, k_g, rtol=1e-5, atol=1e-5)
    for f_w, k_w in zip(f_layer.get_weights(), k_layer.get_weights()):
        np.testing.assert_allclose(f_w, k_w, rtol=1e-5, atol=1e-6)


def test_batch_normalization_op_matches_keras():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 4)).astype("float32")
    mean, variance = rng.standard_normal(3).astype("float32"), rng.uniform(0.5, 2, 3).astype("float32")
    offset, scale = rng.standard_normal(3).astype("float32"), rng.standard_normal(3).astype("float32")
    for kwargs in ({}, {"offset": offset}, {"scale": scale, "offset": offset, "epsilon": 0.1}):
        np.testing.assert_allclose(fastnn.ops.batch_normalization(x, mean, variance, 1, **kwargs).numpy(),
                                   np.asarray(keras.ops.batch_normalization(x, mean, variance, 1, **kwargs)),
                                   rtol=1e-6, atol=1e-6)


def test_dense_batch_norm_dense_trains_like_keras():
    rng = np.random.default_rng(6)
    x = (rng.standard_normal((24, 5)) * 2 + 1).astype("float32")
    y = rng.standard_normal((24, 2)).astype("float32")

    def build(lib):
        return lib.Sequential([lib.Input((5,)), lib.layers.Dense(4), lib.layers.BatchNormalization(momentum=0.9),
                               lib.layers.Dense(2)])

    keras.utils.set_random_seed(0)
    km, fm = build(keras), build(fastnn)
    fm.set_weights(km.get_weights())
    km.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.5), loss="mse")
    fm.compile(optimizer=fastnn.optimizers.SGD(0.05, momentum=0.5), loss="mse")
    k_hist = km.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history["loss"]
    f_hist = fm.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(f_hist, k_hist, rtol=1e-5)
    names = [w.path if hasattr(w, "path") else w.name for w in km.weights]
    assert [w.name for w in fm.layers[1].weights] == ["gamma", "beta", "moving_mean", "moving_variance"]
    for name, f_w, k_w in zip(names, fm.get_weights(), km.get_weights()):
        np.testing.assert_allclose(f_w, k_w, rtol=1e-5, atol=1e-6, err_msg=name)
    moving = fm.layers[1].moving_mean.numpy()
    assert np.abs(moving).max() > 0.05  # the statistics did move away from their initial zeros
    np.testing.assert_allclose(fm.predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_a_keras_model_of_pooling_and_batch_norm_loads_and_predicts_the_same():
    keras.utils.set_random_seed(0)
    K = keras.layers
    km = keras.Sequential([
        keras.Input((9, 8, 3)), K.MaxPooling2D(), K.BatchNormalization(),
        K.AveragePooling2D(3, strides=1, padding="same"),
        K.MaxPooling2D((2, 1), data_format="channels_first"), K.Reshape((8, 3)), K.AveragePooling1D(2),
        K.MaxPooling1D(2, padding="same"), K.BatchNormalization(axis=1, center=False), K.GlobalAveragePooling1D(),
        K.Dense(2),
    ])
    rng = np.random.default_rng(7)
    km.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32") for w in km.get_weights()])
    fm = fastnn.Sequential.from_config(km.get_config())
    fm.set_weights(km.get_weights())
    assert [type(layer).__name__ for layer in fm.layers] == [type(layer).__name__ for layer in km.layers]
    x = _input((3, 9, 8, 3))
    np.testing.assert_allclose(fm.predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    back = keras.Sequential.from_config(fm.get_config())
    back.set_weights(fm.get_weights())
    np.testing.assert_allclose(back.predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
