"""Live cross-check of the activation, per-sample normalization, noise and rescaling layers against Keras 3
(TensorFlow backend): ReLU, LeakyReLU, PReLU, ELU, Softmax (with masks), LayerNormalization, RMSNormalization,
UnitNormalization, GroupNormalization, GaussianNoise, GaussianDropout, ActivityRegularization and Rescaling.
Same inputs, arguments and weights: the same outputs, input and weight gradients, output shapes, weight names and
shapes, and configs (key for key); Keras's configs load into fastnn; a Keras model of these layers predicts and
trains the same in fastnn, and its fastnn config builds the Keras model back. Skipped without Keras;
tests/layers/test_activation_norm_layers.py holds the semantics without it.

    KERAS_BACKEND=tensorflow PYTHONPATH=$PWD/src /work/kvenv/bin/python -m pytest tests/e2e/test_keras_activation_norm_layers.py
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
    ("ReLU", {}, (3, 7)),
    ("ReLU", {"max_value": 0.8, "negative_slope": 0.1, "threshold": 0.2}, (3, 4, 5)),
    ("ReLU", {"max_value": 6.0}, (4, 6)),
    ("LeakyReLU", {}, (3, 7)),
    ("LeakyReLU", {"negative_slope": 0.05}, (2, 3, 4)),
    ("PReLU", {}, (3, 6)),
    ("PReLU", {"shared_axes": [1, 2]}, (2, 4, 5, 3)),
    ("PReLU", {"shared_axes": 1, "alpha_initializer": "ones"}, (2, 4, 3)),
    ("ELU", {}, (3, 7)),
    ("ELU", {"alpha": 0.5}, (3, 7)),
    ("Softmax", {}, (3, 7)),
    ("Softmax", {"axis": 1}, (2, 5, 3)),
    ("Softmax", {"axis": [1, 2]}, (2, 4, 3)),
    ("Softmax", {"axis": (2,)}, (2, 4, 3)),
    ("LayerNormalization", {}, (4, 9)),
    ("LayerNormalization", {"axis": [1, 2], "epsilon": 1e-5}, (2, 3, 4, 5)),
    ("LayerNormalization", {"axis": 1, "center": False}, (2, 6, 3)),
    ("LayerNormalization", {"scale": False}, (2, 3, 8)),
    ("RMSNormalization", {}, (4, 9)),
    ("RMSNormalization", {"epsilon": 1e-3}, (2, 3, 8)),
    ("UnitNormalization", {}, (4, 9)),
    ("UnitNormalization", {"axis": [1, 2]}, (2, 3, 4)),
    ("GroupNormalization", {"groups": 4}, (2, 3, 8)),
    ("GroupNormalization", {"groups": 2, "axis": 1}, (2, 6, 4, 3)),
    ("GroupNormalization", {"groups": -1}, (2, 5, 5, 4)),
    ("GroupNormalization", {"groups": 1, "center": False, "epsilon": 1e-5}, (3, 4, 6)),
    ("GaussianNoise", {"stddev": 0.3}, (3, 7)),
    ("GaussianDropout", {"rate": 0.4, "seed": 2}, (3, 7)),
    ("ActivityRegularization", {"l1": 0.01, "l2": 0.1}, (3, 7)),
    ("Rescaling", {"scale": 1.0 / 255.0}, (2, 4, 4, 3)),
    ("Rescaling", {"scale": 2.0, "offset": -1.0}, (3, 5)),
]
IDS = [f"{name}-{i}" for i, (name, _, _) in enumerate(CASES)]


def _random_weights(layer, seed):
    """Non-trivial weights (so gamma, beta, alpha all matter), the same for both libraries."""
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(w.shape) * 0.5 + (1.0 if "gamma" in w.name or "scale" in w.name else 0.0))
            .astype("float32") for w in layer.weights]


def _keras_run(layer, x, upstream, **kw):
    xv = tf.Variable(x)
    with tf.GradientTape() as tape:
        y = layer(tf.identity(xv), **kw)  # a tensor: Keras's activity loss reads .ndim, which a Variable lacks
        objective = tf.reduce_sum(y * upstream)
    grads = tape.gradient(objective, [xv] + list(layer.trainable_variables))
    return np.asarray(y), [np.asarray(g) for g in grads]


def _fastnn_run(layer, x, upstream, **kw):
    xv = fastnn.Variable(x)
    with fastnn.GradientTape() as tape:
        y = layer(xv, **kw)
        objective = fastnn.ops.sum(fastnn.ops.multiply(y, upstream))
    grads = tape.gradient(objective, [xv] + list(layer.trainable_weights))
    return y.numpy(), [g.numpy() for g in grads]


@pytest.mark.parametrize("name,kwargs,shape", CASES, ids=IDS)
def test_outputs_and_gradients_match_keras(name, kwargs, shape):
    k_layer, f_layer = keras_parity.layer_pair(name, kwargs)
    x = keras_parity.random_input(shape)
    if name == "Rescaling":
        x = np.abs(x) * 100
    k_layer.build(shape)
    f_layer.build(shape)
    assert [w.shape for w in f_layer.weights] == [tuple(w.shape) for w in k_layer.weights]
    assert [w.name for w in f_layer.weights] == [w.name for w in k_layer.weights]
    if k_layer.weights:
        weights = _random_weights(k_layer, 3)
        k_layer.set_weights(weights)
        f_layer.set_weights(weights)
    upstream = keras_parity.random_input(shape, seed=1)
    k_y, k_g = _keras_run(k_layer, x, upstream)
    f_y, f_g = _fastnn_run(f_layer, x, upstream)
    assert f_y.shape == k_y.shape and f_y.dtype == k_y.dtype
    np.testing.assert_allclose(f_y, k_y, rtol=2e-6, atol=2e-6)
    assert len(f_g) == len(k_g)
    for f, k in zip(f_g, k_g):
        np.testing.assert_allclose(f, k, rtol=2e-5, atol=2e-5)
    if name == "ActivityRegularization":
        np.testing.assert_allclose(sum(float(np.asarray(v)) for v in f_layer.losses),
                                   sum(float(np.asarray(v)) for v in k_layer.losses), rtol=1e-5)


@pytest.mark.parametrize("name,kwargs,shape", CASES, ids=IDS)
def test_output_shapes_and_configs_match_keras(name, kwargs, shape):
    k_layer, f_layer = keras_parity.layer_pair(name, kwargs)
    symbolic = (None,) + shape[1:]
    assert tuple(f_layer.compute_output_shape(symbolic)) == tuple(k_layer.compute_output_shape(symbolic))
    assert f_layer.get_config() == k_layer.get_config()
    k_out = k_layer(keras.Input(shape[1:]))
    f_out = f_layer(fastnn.Input(shape[1:]))
    assert tuple(f_out.shape) == tuple(k_out.shape)
    k_config = k_layer.get_config()  # after build: LayerNormalization's axis becomes a list, groups=-1 a count
    assert f_layer.get_config() == k_config
    loaded = getattr(fastnn.layers, name).from_config(k_config)
    assert loaded.get_config() == k_config


@pytest.mark.parametrize("name,kwargs", [("GaussianNoise", {"stddev": 0.5}), ("GaussianDropout", {"rate": 0.3})])
def test_noise_layers_are_the_identity_in_inference_and_noisy_like_keras_in_training(name, kwargs):
    k_layer, f_layer = keras_parity.layer_pair(name, dict(kwargs, seed=4))
    x = np.abs(keras_parity.random_input((200, 50))) + 1.0
    np.testing.assert_array_equal(f_layer(x).numpy(), x)
    np.testing.assert_array_equal(np.asarray(k_layer(x)), x)
    k_y, f_y = np.asarray(k_layer(x, training=True)), f_layer(x, training=True).numpy()
    if name == "GaussianNoise":
        k_noise, f_noise = k_y - x, f_y - x
    else:
        k_noise, f_noise = k_y / x, f_y / x
    # each library's own random numbers, with the same distribution
    assert abs(f_noise.mean() - k_noise.mean()) < 0.02
    assert abs(f_noise.std() - k_noise.std()) < 0.02


def test_softmax_with_a_mask_matches_keras():
    x = keras_parity.random_input((3, 4, 6))
    upstream = keras_parity.random_input((3, 4, 6), seed=1)
    for mask in (np.random.default_rng(5).random((3, 4, 6)) > 0.4,                       # full-shape bool mask
                 (np.random.default_rng(6).random((3, 1, 6)) > 0.3).astype("float32")):  # broadcast float mask
        k_layer, f_layer = keras_parity.layer_pair("Softmax", {})
        k_y, k_g = _keras_run(k_layer, x, upstream, mask=mask)
        f_y, f_g = _fastnn_run(f_layer, x, upstream, mask=mask)
        np.testing.assert_allclose(f_y, k_y, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(f_g[0], k_g[0], rtol=1e-5, atol=1e-6)
        assert np.all(f_y[np.broadcast_to(mask, x.shape) == 0] == 0)


def _build(lib, dtype="float32"):
    L = lib.layers
    inputs = lib.Input((6, 6, 3))
    h = L.Rescaling(0.5, offset=-0.25)(inputs)
    h = L.Conv2D(8, 3, padding="same")(h)
    h = L.GroupNormalization(groups=4)(h)
    h = L.PReLU(shared_axes=[1, 2])(h)
    h = L.Reshape((36, 8))(h)
    h = L.LayerNormalization()(h)
    h = L.Dense(8)(h)
    h = L.LeakyReLU(0.1)(h)
    h = L.RMSNormalization()(h)
    h = L.ELU()(h)
    h = L.GaussianNoise(0.0)(h)
    h = L.ActivityRegularization(l2=1e-3)(h)
    h = L.UnitNormalization()(h)
    h = L.ReLU(max_value=6.0)(L.Flatten()(h))
    return lib.Model(inputs, L.Softmax()(L.Dense(4)(h)))


def test_a_keras_model_of_these_layers_loads_predicts_and_trains_the_same():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 6, 6, 3)).astype("float32")
    y = np.eye(4, dtype="float32")[rng.integers(0, 4, 32)]
    keras.utils.set_random_seed(0)
    km = _build(keras)
    for w in km.weights:  # non-trivial PReLU slopes and normalization weights
        if "alpha" in w.path or "gamma" in w.path or "beta" in w.path or "scale" in w.path:
            w.assign(rng.standard_normal(w.shape).astype("float32") * 0.3 + (1.0 if "alpha" not in w.path else 0))
    fm = fastnn.Model.from_config(km.get_config())
    fm.set_weights(km.get_weights())
    assert [type(layer).__name__ for layer in fm.layers] == [type(layer).__name__ for layer in km.layers]
    np.testing.assert_allclose(fm.predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    back = keras.Model.from_config(fm.get_config())
    back.set_weights(fm.get_weights())
    np.testing.assert_allclose(back.predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-6, atol=1e-6)

    f_model, k_model, f_loss, k_loss = keras_parity.fit_pair(
        _build, lambda lib: lib.optimizers.SGD(0.05), x, y, weights=km.get_weights(), epochs=2)
    np.testing.assert_allclose(f_loss, k_loss, rtol=1e-4)
    keras_parity.assert_weights_close(f_model, k_model, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("kwargs,shape", [({}, (40, 5)), ({"axis": [1, 2]}, (30, 3, 4)), ({"axis": None}, (20, 6)),
                                          ({"axis": 1, "invert": True}, (25, 4, 3))])
def test_normalization_adapts_and_normalizes_like_keras(kwargs, shape):
    x = keras_parity.random_input(shape) * 3.0 + 2.0
    k_layer, f_layer = keras_parity.layer_pair("Normalization", kwargs)
    k_layer.adapt(x)
    f_layer.adapt(x)
    assert [w.name for w in f_layer.weights] == [w.name for w in k_layer.weights]
    for f, k in zip(f_layer.get_weights(), k_layer.get_weights()):
        assert f.dtype == k.dtype and f.shape == k.shape
        np.testing.assert_allclose(f, k, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(f_layer(x).numpy(), np.asarray(k_layer(x)), rtol=1e-5, atol=1e-6)
    assert f_layer.get_config() == k_layer.get_config()
    assert f_layer.get_build_config() == k_layer.get_build_config()
    # batches merged with Keras's weighted update
    k_batched, f_batched = keras_parity.layer_pair("Normalization", kwargs)
    k_batched.adapt([x[:7], x[7:19], x[19:]])
    f_batched.adapt([x[:7], x[7:19], x[19:]])
    for f, k in zip(f_batched.get_weights(), k_batched.get_weights()):
        np.testing.assert_allclose(f, k, rtol=1e-5, atol=1e-6)


def test_normalization_with_given_statistics_and_a_keras_file(tmp_path):
    x = keras_parity.random_input((6, 4, 3))
    for kwargs in ({"mean": 0.5, "variance": 4.0}, {"axis": 2, "mean": [1.0, 2.0, 3.0], "variance": [1.0, 4.0, 9.0]},
                   {"axis": (1, 2), "mean": [0.1, 0.2, 0.3], "variance": [2.0, 2.0, 2.0], "invert": True}):
        k_layer, f_layer = keras_parity.layer_pair("Normalization", kwargs)
        np.testing.assert_allclose(f_layer(x).numpy(), np.asarray(k_layer(x)), rtol=1e-6, atol=1e-7)
        assert f_layer.get_config() == k_layer.get_config()
    km = keras.Sequential([keras.Input((4, 3)), keras.layers.Normalization(axis=-1), keras.layers.Flatten(),
                           keras.layers.Dense(2)])
    km.layers[0].adapt(x * 2 + 1)
    path = str(tmp_path / "norm.keras")
    km.save(path)
    fm = fastnn.models.load_model(path)
    np.testing.assert_allclose(fm.predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    fm.save(str(tmp_path / "back.keras"))
    back = keras.models.load_model(str(tmp_path / "back.keras"))
    np.testing.assert_allclose(back.predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-6, atol=1e-6)


DOT_CASES = [((4, 6), (4, 6), 1, False), ((4, 6), (4, 6), -1, True), ((3, 5, 6), (3, 7, 6), 2, False),
             ((3, 5, 6), (3, 5, 4), (1, 1), False), ((2, 3, 4, 5), (2, 5, 6), (3, 1), False),
             ((2, 4, 6), (2, 6), (2, 1), True), ((3, 6), (3, 4, 6), (1, 2), False)]


@pytest.mark.parametrize("shape1,shape2,axes,normalize", DOT_CASES)
def test_dot_matches_keras(shape1, shape2, axes, normalize):
    k_layer, f_layer = keras_parity.layer_pair("Dot", {"axes": axes, "normalize": normalize})
    a, b = keras_parity.random_input(shape1, seed=1), keras_parity.random_input(shape2, seed=2)
    out_shape = tuple(k_layer.compute_output_shape([shape1, shape2]))
    assert tuple(f_layer.compute_output_shape([shape1, shape2])) == out_shape
    upstream = keras_parity.random_input(out_shape, seed=3)
    av, bv = tf.Variable(a), tf.Variable(b)
    with tf.GradientTape() as tape:
        k_y = k_layer([av, bv])
        objective = tf.reduce_sum(k_y * upstream)
    k_ga, k_gb = tape.gradient(objective, [av, bv])
    fa, fb = fastnn.Variable(a), fastnn.Variable(b)
    with fastnn.GradientTape() as tape:
        f_y = f_layer([fa, fb])
        objective = fastnn.ops.sum(fastnn.ops.multiply(f_y, upstream))
    f_ga, f_gb = tape.gradient(objective, [fa, fb])
    np.testing.assert_allclose(f_y.numpy(), np.asarray(k_y), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(f_ga.numpy(), np.asarray(k_ga), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(f_gb.numpy(), np.asarray(k_gb), rtol=1e-5, atol=1e-6)
    assert f_layer.get_config() == k_layer.get_config()
    k_out = k_layer([keras.Input(shape1[1:]), keras.Input(shape2[1:])])
    f_out = f_layer([fastnn.Input(shape1[1:]), fastnn.Input(shape2[1:])])
    assert tuple(f_out.shape) == tuple(k_out.shape)


def test_dot_refuses_what_keras_refuses():
    for kwargs, shapes in (({"axes": 0}, [(2, 3), (2, 3)]), ({"axes": 1}, [(2, 3), (2, 4)])):
        k_layer, f_layer = keras_parity.layer_pair("Dot", kwargs)
        x = [keras_parity.random_input(s) for s in shapes]
        with pytest.raises(ValueError):
            k_layer(x)
        with pytest.raises(ValueError):
            f_layer(x)
    with pytest.raises(TypeError):
        fastnn.layers.Dot("last")
    with pytest.raises(ValueError):
        fastnn.layers.Dot((1, 2, 3))


def test_a_softmax_layer_before_the_crossentropy_trains_as_in_keras():
    # Keras's Softmax layer output carries its logits (TensorFlow backend), so categorical_crossentropy takes the
    # log-softmax of the logits instead of the clipped probabilities: far from saturation both agree, near it only
    # the logits path does; fastnn must take the same path.
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((32, 6)) * 8).astype("float32")  # large logits: saturated probabilities
    y = np.eye(4, dtype="float32")[rng.integers(0, 4, 32)]

    def build(lib, dtype="float32"):
        inp = lib.Input((6,))
        return lib.Model(inp, lib.layers.Softmax()(lib.layers.Dense(4)(inp)))

    f_model, k_model, f_loss, k_loss = keras_parity.fit_pair(build, lambda lib: lib.optimizers.SGD(0.1), x, y)
    np.testing.assert_allclose(f_loss, k_loss, rtol=1e-5)
    keras_parity.assert_weights_close(f_model, k_model, rtol=1e-4, atol=1e-5)
