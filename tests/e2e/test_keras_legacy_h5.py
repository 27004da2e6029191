"""The legacy Keras HDF5 format against Keras 3 (TensorFlow backend), both directions:

- fastnn's ``save_model_to_hdf5`` file loads with ``keras.saving.load_model`` and predicts the same (compiled
  models come back compiled, with the same optimizer and loss);
- Keras 3's ``model.save("m.h5")`` loads with fastnn's ``load_model_from_hdf5``: the same predictions, the compile
  config, and the optimizer state of a trained model (every variable of Keras's optimizer, by position);
- a weights-only file written by Keras's own legacy writer
  (``keras.src.legacy.saving.legacy_h5_format.save_weights_to_hdf5_group``) loads into fastnn by order and by name,
  and fastnn's ``save_weights_to_hdf5`` file loads with Keras's ``model.load_weights("w.h5")`` (both ways).

Every model is built twice -- fastnn and Keras -- by ONE function parameterised by the library. About 15 s.

    KERAS_BACKEND=tensorflow PYTHONPATH=$PWD/src /work/kvenv/bin/python -m pytest tests/e2e/test_keras_legacy_h5.py
"""
from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")
pytest.importorskip("tensorflow")
h5py = pytest.importorskip("h5py")

import fastnn  # noqa: E402
from fastnn.saving import legacy_h5  # noqa: E402

RNG = np.random.default_rng(7)


def mlp(lib):
    L = lib.layers
    return lib.models.Sequential([L.Input((6,)), L.Dense(8, activation="relu"), L.BatchNormalization(),
                                  L.Dropout(0.2), L.Dense(3, activation="softmax")], name="mlp")


def cnn(lib):
    L = lib.layers
    return lib.models.Sequential([L.Input((8, 8, 2)), L.Conv2D(4, 3, padding="same", activation="relu"),
                                  L.BatchNormalization(), L.MaxPooling2D(), L.SeparableConv2D(3, 2),
                                  L.GlobalAveragePooling2D(), L.Dense(2)], name="cnn")


def recurrent(lib):
    L = lib.layers
    ids = L.Input((7,), dtype="int32", name="ids")
    x = L.Embedding(30, 5, name="embedding")(ids)
    x = L.Bidirectional(L.LSTM(4, return_sequences=True), name="bidirectional")(x)
    x = L.TimeDistributed(L.Dense(3), name="time_distributed")(x)
    x = L.GRU(3, name="gru")(x)
    return lib.models.Model(ids, L.Dense(2, name="head")(x), name="recurrent")


def nested(lib):
    L = lib.layers
    inner = lib.models.Sequential([L.Input((5,)), L.Dense(4, activation="tanh", name="inner_dense"),
                                   L.BatchNormalization(name="inner_bn")], name="inner")
    a, b = L.Input((5,), name="a"), L.Input((5,), name="b")
    shared = L.Dense(5, name="shared")
    ha, hb = inner(shared(a)), inner(shared(b))
    out = L.Dense(1, name="out")(L.Concatenate(name="concat")([ha, L.Add(name="add")([ha, hb])]))
    return lib.models.Model([a, b], out, name="nested")


BUILDERS = {"mlp": (mlp, (4, 6)), "cnn": (cnn, (3, 8, 8, 2)), "recurrent": (recurrent, "ids"),
            "nested": (nested, [(3, 5), (3, 5)])}


def _data(spec):
    if spec == "ids":
        return RNG.integers(0, 30, size=(3, 7)).astype("int32")
    if isinstance(spec, list):
        return [RNG.standard_normal(s).astype("float32") for s in spec]
    return RNG.standard_normal(spec).astype("float32")


def _randomize(model):
    """Non-trivial weights, BatchNormalization's moving statistics included (vectors positive, so that moving
    variances are)."""
    weights = []
    for w in model.get_weights():
        v = RNG.standard_normal(w.shape).astype(w.dtype) * 0.5
        weights.append(np.abs(v) + 0.5 if w.ndim == 1 else v)
    model.set_weights(weights)


def _keras_predict(model, x):
    return np.asarray(model.predict(x, verbose=0))


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_fastnn_h5_loads_in_keras(name, tmp_path):
    build, spec = BUILDERS[name]
    model = build(fastnn)
    _randomize(model)
    x = _data(spec)
    path = tmp_path / "fastnn.h5"
    legacy_h5.save_model_to_hdf5(model, path)
    loaded = keras.saving.load_model(path, compile=False)
    assert [l.name for l in loaded.layers] == [l.name for l in model.layers]
    np.testing.assert_allclose(_keras_predict(loaded, x), model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


def test_fastnn_compiled_h5_loads_compiled_in_keras(tmp_path):
    model = mlp(fastnn)
    model.compile(optimizer=fastnn.optimizers.Adam(0.003), loss="categorical_crossentropy", metrics=["accuracy"])
    x = _data((16, 6))
    y = np.eye(3, dtype="float32")[RNG.integers(0, 3, 16)]
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    legacy_h5.save_model_to_hdf5(model, tmp_path / "fastnn.h5")
    loaded = keras.saving.load_model(tmp_path / "fastnn.h5")
    assert isinstance(loaded.optimizer, keras.optimizers.Adam)
    assert float(loaded.optimizer.learning_rate) == pytest.approx(0.003)
    assert int(loaded.optimizer.iterations) == 2
    np.testing.assert_allclose(_keras_predict(loaded, x), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    keras_loss = loaded.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    assert keras_loss == pytest.approx(model.evaluate(x, y, verbose=0, return_dict=True)["loss"], rel=1e-5)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_keras_h5_loads_in_fastnn(name, tmp_path):
    build, spec = BUILDERS[name]
    model = build(keras)
    _randomize(model)
    x = _data(spec)
    model.save(tmp_path / "keras.h5")
    loaded = legacy_h5.load_model_from_hdf5(tmp_path / "keras.h5", compile=False)
    assert [l.name for l in loaded.layers] == [l.name for l in model.layers]
    np.testing.assert_allclose(loaded.predict(x, verbose=0), _keras_predict(model, x), rtol=1e-5, atol=1e-5)


def test_keras_trained_h5_restores_compile_and_optimizer_state(tmp_path):
    model = mlp(keras)
    model.compile(optimizer=keras.optimizers.RMSprop(0.002, momentum=0.5), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    x = _data((16, 6))
    y = np.eye(3, dtype="float32")[RNG.integers(0, 3, 16)]
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    model.save(tmp_path / "keras.h5")
    loaded = legacy_h5.load_model_from_hdf5(tmp_path / "keras.h5")
    assert type(loaded.optimizer) is fastnn.optimizers.RMSprop
    assert loaded.optimizer.learning_rate == pytest.approx(0.002)
    keras_state = [np.asarray(v) for v in model.optimizer.variables]
    fastnn_state = [np.asarray(v) for v in loaded.optimizer.variables]
    assert len(fastnn_state) == len(keras_state)
    for k, f in zip(keras_state, fastnn_state):
        np.testing.assert_allclose(f, k, rtol=1e-6)
    assert int(np.asarray(loaded.optimizer.iterations)) == 4
    np.testing.assert_allclose(loaded.predict(x, verbose=0), _keras_predict(model, x), rtol=1e-5, atol=1e-6)
    logs = loaded.evaluate(x, y, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(model.evaluate(x, y, verbose=0, return_dict=True)["loss"], rel=1e-5)


def test_keras_legacy_weights_file_loads_by_order_and_by_name(tmp_path):
    from keras.src.legacy.saving import legacy_h5_format

    k_model = nested(keras)
    _randomize(k_model)
    path = tmp_path / "keras_weights.h5"
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, k_model)
    x = _data([(3, 5), (3, 5)])
    expected = _keras_predict(k_model, x)
    by_order = nested(fastnn)
    legacy_h5.load_weights_from_hdf5(by_order, path)
    np.testing.assert_allclose(by_order.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)
    by_name = nested(fastnn)
    legacy_h5.load_weights_from_hdf5(by_name, path, by_name=True)
    np.testing.assert_allclose(by_name.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("by_name", [False, True])
def test_fastnn_weights_file_loads_in_keras(by_name, tmp_path):
    model = recurrent(fastnn)
    _randomize(model)
    legacy_h5.save_weights_to_hdf5(model, tmp_path / "fastnn_weights.h5")
    k_model = recurrent(keras)
    k_model.load_weights(tmp_path / "fastnn_weights.h5", by_name=by_name)
    x = _data("ids")
    np.testing.assert_allclose(_keras_predict(k_model, x), model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
