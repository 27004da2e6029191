"""Live cross-check of BatchNormalization(renorm=True) against Keras 3 (TensorFlow backend): weight names, order
and initial values; given the same seven weights, the same outputs, input gradients and updated statistics in
training and in inference (1e-5 relative); a Dense -> BatchNormalization(renorm=True) -> Dense model trained a few
epochs with SGD (shuffle=False) to the same losses and all weights, the renorm statistics included; configs key for
key; a Keras Conv2D -> BatchNormalization(renorm=True) model's config loading into fastnn and training alike; the
same errors for bad renorm_clipping. Skipped when Keras is not installed; tests/layers/
test_batchnorm_renorm.py holds the semantics without Keras.

Run with Keras in a separate environment, e.g.
    KERAS_BACKEND=tensorflow PYTHONPATH=$PWD/src /work/kvenv/bin/python -m pytest tests/e2e/test_keras_batchnorm_renorm.py
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

WEIGHT_NAMES = ["gamma", "beta", "moving_mean", "moving_variance", "moving_stddev", "renorm_mean", "renorm_stddev"]

CASES = [
    ({"renorm": True}, (8, 5)),
    ({"renorm": True, "renorm_clipping": {"rmax": 1.2, "rmin": 0.8, "dmax": 0.3}, "momentum": 0.8,
      "renorm_momentum": 0.5}, (6, 4)),
    ({"renorm": True, "axis": 1, "renorm_clipping": {"rmax": 1.5}, "epsilon": 1e-5}, (4, 3, 5, 2)),
    ({"renorm": True, "renorm_clipping": {"rmin": 0.9, "dmax": 0.1}, "center": False}, (2, 4, 4, 3)),
    ({"renorm": True, "renorm_clipping": {"dmax": 0.5}, "center": False, "scale": False}, (6, 2, 3)),
    ({"renorm": True, "renorm_clipping": {"rmax": 1, "rmin": 1, "dmax": 0}, "axis": 0}, (3, 6)),
]
IDS = [str(i) for i in range(len(CASES))]


def _pair(kwargs, shape, seed=4):
    """A Keras and a fastnn layer with the same random weights (the stddevs positive, renorm_stddev partly below
    the batch stddevs and partly above, so r is both below and above 1)."""
    k_layer, f_layer = keras_parity.layer_pair("BatchNormalization", kwargs)
    k_layer.build(shape)
    f_layer.build(shape)
    rng = np.random.default_rng(seed)
    weights = []
    for w in k_layer.weights:
        name = w.name
        if name in ("gamma", "moving_variance", "moving_stddev"):
            value = rng.uniform(0.5, 1.5, w.shape)
        elif name == "renorm_stddev":
            value = rng.uniform(0.3, 4.0, w.shape)
        else:
            value = rng.normal(size=w.shape)
        weights.append(value.astype("float32"))
    k_layer.set_weights(weights)
    f_layer.set_weights(weights)
    return k_layer, f_layer


def _assert_same_weights(f_layer, k_layer, rtol=1e-5, atol=1e-6):
    assert [w.name for w in f_layer.weights] == [w.name for w in k_layer.weights]
    for w, f_w, k_w in zip(k_layer.weights, f_layer.get_weights(), k_layer.get_weights()):
        np.testing.assert_allclose(f_w, k_w, rtol=rtol, atol=atol, err_msg=w.name)


def test_weight_names_order_and_initial_values_match_keras():
    kwargs = {"renorm": True, "moving_mean_initializer": "ones", "moving_variance_initializer": "ones"}
    for extra in ({}, {"center": False}, {"scale": False, "center": False}):
        k_layer, f_layer = keras_parity.layer_pair("BatchNormalization", {**kwargs, **extra})
        k_layer.build((None, 3))
        f_layer.build((None, 3))
        assert [w.name for w in f_layer.weights] == [w.name for w in k_layer.weights]
        assert [w.name for w in f_layer.trainable_weights] == [w.name for w in k_layer.trainable_weights]
        assert [w.name for w in f_layer.non_trainable_weights] == [w.name for w in k_layer.non_trainable_weights]
        _assert_same_weights(f_layer, k_layer, rtol=0, atol=0)
    assert [w.name for w in k_layer.weights] == WEIGHT_NAMES[2:]
    k_layer, f_layer = keras_parity.layer_pair("BatchNormalization", {"renorm": True})
    k_layer.build((None, 2))
    f_layer.build((None, 2))
    assert [w.name for w in f_layer.weights] == [w.name for w in k_layer.weights] == WEIGHT_NAMES
    # Keras's weights load into fastnn's and back.
    f_layer.set_weights(k_layer.get_weights())
    k_layer.set_weights(f_layer.get_weights())


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("kwargs,shape", CASES, ids=IDS)
def test_outputs_gradients_and_statistics_match_keras(kwargs, shape, training):
    k_layer, f_layer = _pair(kwargs, shape)
    upstream = keras_parity.random_input(shape, seed=1)
    for step in range(3):  # the statistics of each step drive the next one's corrections
        x = keras_parity.random_input(shape, seed=10 + step) * (1 + step) + 0.5 - step
        k_y, k_g = keras_parity.keras_forward_and_gradient(k_layer, x, upstream, training=training)
        f_y, f_g = keras_parity.fastnn_forward_and_gradient(f_layer, x, upstream, training=training)
        np.testing.assert_allclose(f_y, k_y, rtol=1e-5, atol=1e-5, err_msg=f"step {step}")
        np.testing.assert_allclose(f_g, k_g, rtol=1e-5, atol=1e-5, err_msg=f"step {step}")
        _assert_same_weights(f_layer, k_layer)


@pytest.mark.parametrize("kwargs,shape", CASES[:3], ids=IDS[:3])
def test_gamma_and_beta_gradients_match_keras(kwargs, shape):
    k_layer, f_layer = _pair(kwargs, shape)
    x = keras_parity.random_input(shape) * 2 + 1
    upstream = keras_parity.random_input(shape, seed=1)
    with tf.GradientTape() as tape:
        objective = tf.reduce_sum(k_layer(x, training=True) * upstream)
    k_grads = tape.gradient(objective, k_layer.trainable_weights)
    with fastnn.GradientTape() as tape:
        objective = fastnn.ops.sum(fastnn.ops.multiply(f_layer(x, training=True), upstream))
    f_grads = tape.gradient(objective, f_layer.trainable_weights)
    for f_g, k_g in zip(f_grads, k_grads):
        np.testing.assert_allclose(f_g.numpy(), np.asarray(k_g), rtol=1e-5, atol=1e-5)


def test_frozen_renorm_batch_norm_runs_in_inference_mode_like_keras():
    k_layer, f_layer = _pair(CASES[1][0], (6, 4))
    k_layer.trainable = False
    f_layer.trainable = False
    x = keras_parity.random_input((6, 4)) * 3
    np.testing.assert_allclose(f_layer(x, training=True).numpy(), np.asarray(k_layer(x, training=True)), rtol=1e-5,
                               atol=1e-6)
    _assert_same_weights(f_layer, k_layer, rtol=0, atol=0)


def test_masked_renorm_batch_norm_matches_keras():
    k_layer, f_layer = _pair(CASES[1][0], (3, 5, 4))
    x = keras_parity.random_input((3, 5, 4))
    mask = np.array([[1, 1, 0, 1, 0], [0, 1, 1, 1, 1], [1, 1, 1, 1, 1]], bool)
    upstream = keras_parity.random_input((3, 5, 4), seed=2)
    k_y, k_g = keras_parity.keras_forward_and_gradient(k_layer, x, upstream, training=True, mask=mask)
    f_y, f_g = keras_parity.fastnn_forward_and_gradient(f_layer, x, upstream, training=True, mask=mask)
    np.testing.assert_allclose(f_y, k_y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(f_g, k_g, rtol=1e-5, atol=1e-5)
    _assert_same_weights(f_layer, k_layer)


@pytest.mark.parametrize("clipping", [None, {"rmax": 1.1, "rmin": 0.9, "dmax": 0.2}, {"dmax": 0.05}])
def test_dense_renorm_batch_norm_dense_trains_like_keras(clipping):
    rng = np.random.default_rng(6)
    x = (rng.standard_normal((32, 5)) * 2 + 1).astype("float32")
    y = rng.standard_normal((32, 2)).astype("float32")

    def build(lib):
        return lib.Sequential([lib.Input((5,)), lib.layers.Dense(4),
                               lib.layers.BatchNormalization(renorm=True, renorm_clipping=clipping, momentum=0.9,
                                                             renorm_momentum=0.8),
                               lib.layers.Dense(2)])

    keras.utils.set_random_seed(0)
    km, fm = build(keras), build(fastnn)
    assert [w.name for w in fm.weights] == [w.name for w in km.weights]
    fm.set_weights(km.get_weights())
    km.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.5), loss="mse")
    fm.compile(optimizer=fastnn.optimizers.SGD(0.05, momentum=0.5), loss="mse")
    k_hist = km.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0).history["loss"]
    f_hist = fm.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(f_hist, k_hist, rtol=1e-5)
    names = [w.path for w in km.weights]
    assert [w.name for w in fm.layers[1].weights] == WEIGHT_NAMES
    for name, f_w, k_w in zip(names, fm.get_weights(), km.get_weights()):
        np.testing.assert_allclose(f_w, k_w, rtol=1e-5, atol=1e-6, err_msg=name)
    renorm_mean = fm.layers[1].renorm_mean.numpy()
    assert np.abs(renorm_mean).max() > 0.05  # the renorm statistics did move away from their initial zeros
    np.testing.assert_allclose(fm.predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs", [{"renorm": True}, {"renorm": True, "renorm_clipping": {"rmax": 3.0}},
                                    {"renorm": True, "renorm_clipping": {"rmax": 2, "rmin": 0.5, "dmax": 1},
                                     "renorm_momentum": 0.9, "axis": 1},
                                    {"renorm": False, "renorm_clipping": {"rmax": 2.0}}])
def test_configs_match_keras_key_for_key(kwargs):
    k_layer, f_layer = keras_parity.layer_pair("BatchNormalization", kwargs)
    k_config, f_config = k_layer.get_config(), f_layer.get_config()
    assert list(f_config) == list(k_config)  # the same keys, in the same order
    for key in k_config:
        assert f_config[key] == k_config[key], key
    loaded = fastnn.layers.BatchNormalization.from_config(k_config)
    assert loaded.get_config() == k_config
    loaded.build((None, 3, 4))
    k_layer.build((None, 3, 4))
    assert [w.name for w in loaded.weights] == [w.name for w in k_layer.weights]


@pytest.mark.parametrize("clipping", [{"rmx": 1.0}, {"rmax": 0.5, "rmin": 2.0}, {"dmax": -1.0}])
def test_bad_renorm_clipping_fails_like_keras(clipping):
    with pytest.raises(ValueError) as k_error:
        keras.layers.BatchNormalization(renorm=True, renorm_clipping=clipping)
    with pytest.raises(ValueError) as f_error:
        fastnn.layers.BatchNormalization(renorm=True, renorm_clipping=clipping)
    k_message, f_message = str(k_error.value), str(f_error.value)
    if "rmx" in clipping:
        assert f_message == k_message
    else:  # Keras forgot the f-string prefix of these two ("Received: rmax={rmax}"): fastnn fills the values in
        assert f_message.split("Received:")[0] == k_message.split("Received:")[0] != ""
        assert "{" in k_message and "{" not in f_message


def test_a_keras_model_with_renorm_loads_predicts_and_trains_the_same():
    keras.utils.set_random_seed(1)
    K = keras.layers
    km = keras.Sequential([
        keras.Input((6, 5, 2)), K.Conv2D(3, 3, padding="same"),
        K.BatchNormalization(renorm=True, renorm_clipping={"rmax": 1.5, "rmin": 0.5, "dmax": 0.5},
                             renorm_momentum=0.7, momentum=0.9),
        K.MaxPooling2D(), K.Flatten(), K.Dense(2)])
    fm = fastnn.Sequential.from_config(km.get_config())
    fm.set_weights(km.get_weights())
    assert [w.name for w in fm.weights] == [w.name for w in km.weights]
    x = keras_parity.random_input((8, 6, 5, 2)) * 2 + 1
    y = keras_parity.random_input((8, 2), seed=3)
    np.testing.assert_allclose(fm.predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    km.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    fm.compile(optimizer=fastnn.optimizers.SGD(0.01), loss="mse")
    k_hist = km.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history["loss"]
    f_hist = fm.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(f_hist, k_hist, rtol=1e-5)
    for w, f_w, k_w in zip(km.weights, fm.get_weights(), km.get_weights()):
        np.testing.assert_allclose(f_w, k_w, rtol=1e-5, atol=1e-6, err_msg=w.path)
    back = keras.Sequential.from_config(fm.get_config())
    back.set_weights(fm.get_weights())
    np.testing.assert_allclose(back.predict(x, verbose=0), fm.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
