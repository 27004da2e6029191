"""Keras 3's native format written and read by fastnn: .keras archives and .weights.h5 files.

Round trips for Sequential, functional (several inputs / outputs, shared layers, operations), nested models and one
model per layer family that together use every layer class fastnn exports; each checks the predictions, the
weights, the optimizer state and summary() of the loaded model; the HDF5 layout against Keras's paths; the error
cases (wrong extension, missing file, another architecture, skip_mismatch); and an interrupted training run that
resumes bit-identically.
"""
from __future__ import annotations

import io
import json
import zipfile

import h5py
import numpy as np
import pytest

import fastnn
from fastnn import layers as L
from fastnn.saving import saving_lib


def _rng(seed=0):
    return np.random.default_rng(seed)


def _summary(model):
    lines = []
    model.summary(print_fn=lambda line, *a, **k: lines.append(line))
    return "\n".join(lines)


def _as_list(y):
    if isinstance(y, dict):
        return [np.asarray(y[k]) for k in sorted(y)]
    if isinstance(y, (list, tuple)):
        return [np.asarray(v) for v in y]
    return [np.asarray(y)]


def _train(model, x, y, steps=2):
    model.compile(optimizer=fastnn.optimizers.Adam(0.01), loss="mse")
    for _ in range(steps):
        model.train_on_batch(x, y)


def _assert_same_state(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    assert len(wa) == len(wb)
    for u, v in zip(wa, wb):
        np.testing.assert_array_equal(u, v)
    if a.optimizer is not None:
        va, vb = a.optimizer.variables, b.optimizer.variables
        assert len(va) == len(vb)
        for u, v in zip(va, vb):
            np.testing.assert_array_equal(u.numpy(), v.numpy())


def _round_trip(model, x, tmp_path, name="m"):
    """Saves and loads ``model`` (trained, so the optimizer has state) and checks the copy."""
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = fastnn.saving.load_model(path)
    for got, want in zip(_as_list(loaded.predict(x, verbose=0)), _as_list(model.predict(x, verbose=0))):
        np.testing.assert_array_equal(got, want)
    _assert_same_state(model, loaded)
    assert _summary(loaded) == _summary(model)
    assert type(loaded) is type(model)
    # The weights file alone restores the same state into a fresh copy of the architecture.
    wpath = tmp_path / f"{name}.weights.h5"
    model.save_weights(wpath)
    fresh = fastnn.saving.load_model(path)
    for w in fresh.weights:
        w.assign(np.zeros(w.shape, w.dtype))
    fresh.load_weights(wpath)
    _assert_same_state(model, fresh)
    return loaded


def _targets(model, x, rng):
    return [rng.standard_normal(np.shape(y)).astype("float32") for y in _as_list(model.predict(x, verbose=0))]


def _fit_target(model, x, rng):
    ys = _targets(model, x, rng)
    return ys[0] if len(ys) == 1 else ys


# -- model families ---------------------------------------------------------------------------------------------------
def _dense_family():
    inp = fastnn.Input((6,))
    x = L.Dense(8, activation="relu")(inp)
    x = L.Activation("tanh")(x)
    x = L.Dropout(0.1)(x)
    x = L.Identity()(x)
    x = L.BatchNormalization()(x)
    x = L.Reshape((4, 2))(x)
    x = L.Permute((2, 1))(x)
    x = L.SimpleRNN(4)(L.Masking(0.0)(x))
    x = L.RepeatVector(2)(x)
    x = L.Flatten()(x)
    return fastnn.Model(inp, L.Dense(3)(x)), _rng(1).standard_normal((5, 6)).astype("float32")


def _conv2d_family():
    inp = fastnn.Input((10, 10, 3))
    x = L.Conv2D(4, 3, padding="same", activation="relu")(inp)
    x = L.DepthwiseConv2D(3, padding="same")(x)
    x = L.SeparableConv2D(4, 3)(x)
    x = L.BatchNormalization()(x)
    x = L.Conv2DTranspose(3, 3)(x)
    x = L.MaxPooling2D(2)(x)
    x = L.ZeroPadding2D(1)(x)
    x = L.Cropping2D(1)(x)
    x = L.UpSampling2D(2)(x)
    x = L.SpatialDropout2D(0.1)(x)
    x = L.AveragePooling2D(2)(x)
    a = L.GlobalAveragePooling2D()(x)
    b = L.GlobalMaxPooling2D()(x)
    return fastnn.Model(inp, L.Concatenate()([a, b])), _rng(2).standard_normal((2, 10, 10, 3)).astype("float32")


def _conv1d_family():
    inp = fastnn.Input((12, 3))
    x = L.Conv1D(4, 3, activation="relu")(inp)
    x = L.DepthwiseConv1D(3, padding="same")(x)
    x = L.SeparableConv1D(4, 3)(x)
    x = L.Conv1DTranspose(3, 3)(x)
    x = L.MaxPooling1D(2)(x)
    x = L.ZeroPadding1D(1)(x)
    x = L.Cropping1D(1)(x)
    x = L.UpSampling1D(2)(x)
    x = L.SpatialDropout1D(0.1)(x)
    x = L.AveragePooling1D(2)(x)
    a = L.GlobalAveragePooling1D()(x)
    b = L.GlobalMaxPooling1D()(x)
    return fastnn.Model(inp, L.Add()([a, b])), _rng(3).standard_normal((3, 12, 3)).astype("float32")


def _recurrent_family():
    inp = fastnn.Input((5,), dtype="int32")
    e = L.Embedding(20, 6, mask_zero=True)(inp)
    a = L.LSTM(4, return_sequences=True)(e)
    a = L.TimeDistributed(L.Dense(3))(a)
    a = L.GRU(3)(a)
    b = L.Bidirectional(L.SimpleRNN(2))(e)
    c = L.RNN(L.StackedRNNCells([L.LSTMCell(3), L.GRUCell(2), L.LSTMCell(2)]))(e)
    d = L.RNN(L.SimpleRNNCell(2))(e)
    f = L.Bidirectional(L.LSTM(2), backward_layer=L.GRU(2, go_backwards=True))(e)
    out = L.Concatenate()([a, b, c, d, f])
    x = np.array([[1, 4, 7, 0, 0], [3, 3, 9, 12, 19], [5, 0, 0, 0, 0]], dtype="int32")
    return fastnn.Model(inp, out), x


def _merging_family():
    i1, i2 = fastnn.Input((4,), name="left"), fastnn.Input((4,), name="right")
    shared = L.Dense(4, name="shared")
    a, b = shared(i1), shared(i2)  # one layer used twice: saved once
    merged = [L.Add()([a, b]), L.Subtract()([a, b]), L.Multiply()([a, b]), L.Average()([a, b]),
              L.Maximum()([a, b]), L.Minimum()([a, b]), a * b + a, L.Dot(axes=1)([a, b])]
    out1 = L.Dense(2, name="out1")(L.Concatenate()(merged))
    out2 = L.Dense(1, name="out2")(a)
    rng = _rng(4)
    return fastnn.Model([i1, i2], [out1, out2]), [rng.standard_normal((3, 4)).astype("float32") for _ in range(2)]


def _activation_norm_family():
    inp = fastnn.Input((6, 4))
    norm = L.Normalization()
    norm.adapt(_rng(5).standard_normal((20, 6, 4)).astype("float32") * 2 + 1)
    x = L.Rescaling(0.5, offset=0.1)(norm(inp))
    x = L.PReLU(alpha_initializer="he_normal")(L.Dense(8)(x))
    x = L.LayerNormalization(gamma_initializer="he_normal")(x)
    x = L.GroupNormalization(groups=4, beta_initializer="he_normal")(x)
    x = L.RMSNormalization()(L.LeakyReLU()(x))
    x = L.ELU()(L.GaussianNoise(0.1)(x))
    x = L.ReLU(max_value=4.0)(L.GaussianDropout(0.1)(x))
    x = L.UnitNormalization()(L.ActivityRegularization(l2=1e-3)(x))
    x = L.MultiHeadAttention(2, 3, use_gate=True)(x, x, use_causal_mask=True)
    x = L.AdditiveAttention()([L.Attention(use_scale=True, score_mode="concat")([x, x]), x])
    return fastnn.Model(inp, L.Softmax()(L.Dense(3)(L.Flatten()(x)))), \
        _rng(6).standard_normal((4, 6, 4)).astype("float32")


FAMILIES = {"dense": _dense_family, "conv2d": _conv2d_family, "conv1d": _conv1d_family,
            "recurrent": _recurrent_family, "merging": _merging_family, "activation_norm": _activation_norm_family}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_round_trip_per_layer_family(family, tmp_path):
    fastnn.utils.set_random_seed(0)
    model, x = FAMILIES[family]()
    _train(model, x, _fit_target(model, x, _rng(9)))
    _round_trip(model, x, tmp_path, family)


def test_the_families_cover_every_layer_class():
    # Each layer class fastnn exports appears in some family above (Lambda: in the serialization tests, it needs
    # safe_mode=False; Wrapper and Layer are base classes; InputLayer is in every model).
    used = set()
    for build in FAMILIES.values():
        model, _ = build()
        stack = list(model.layers)
        while stack:
            layer = stack.pop()
            used.add(type(layer).__name__)
            for attr in ("layer", "forward_layer", "backward_layer", "cell"):
                child = getattr(layer, attr, None)
                if isinstance(child, L.Layer):
                    stack.append(child)
            stack.extend(getattr(layer, "cells", []) or [])
    exported = {getattr(L, n).__name__ for n in L.__all__ if isinstance(getattr(L, n), type)}
    missing = exported - used - {"Layer", "Wrapper", "Lambda", "InputSpec", "KerasTensor"}
    assert not missing, missing


def test_sequential_round_trip_and_keras_layout(tmp_path):
    fastnn.utils.set_random_seed(1)
    model = fastnn.Sequential([fastnn.Input((3,)), L.Dense(4), L.BatchNormalization(), L.Dropout(0.1), L.Dense(2)])
    x = _rng().standard_normal((8, 3)).astype("float32")
    _train(model, x, _rng(1).standard_normal((8, 2)).astype("float32"))
    _round_trip(model, x, tmp_path)
    # The archive: Keras's three members, uncompressed; metadata with keras_version and date_saved.
    with zipfile.ZipFile(tmp_path / "m.keras") as zf:
        assert zf.namelist() == ["metadata.json", "config.json", "model.weights.h5"]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
        meta = json.loads(zf.read("metadata.json"))
        assert meta["keras_version"] == "3.15.1" and "date_saved" in meta
        config = json.loads(zf.read("config.json"))
        assert config["class_name"] == "Sequential" and config["compile_config"]["optimizer"]["class_name"] == "Adam"
    # The weights: Keras's groups (class-named in the layers list, no InputLayer in a Sequential), Adam's variables
    # iterations, learning_rate, then (momentum, velocity) per variable.
    with h5py.File(tmp_path / "m.weights.h5") as f:
        groups = []
        f.visititems(lambda n, o: groups.append(n) if n.endswith("vars") else None)
        assert sorted(groups) == ["layers/batch_normalization/vars", "layers/dense/vars", "layers/dense_1/vars",
                                  "layers/dropout/vars", "optimizer/vars", "vars"]
        assert f["layers/dense/vars"].attrs["name"] == model.layers[0].name
        assert f["vars"].attrs["name"] == model.name
        shapes = [f["optimizer/vars"][str(i)].shape for i in range(len(f["optimizer/vars"]))]
        assert shapes == [(), (), (3, 4), (3, 4), (4,), (4,), (4,), (4,), (4,), (4,), (4, 2), (4, 2), (2,), (2,)]
        assert f["optimizer/vars/0"].dtype == np.int64 and int(f["optimizer/vars/0"][()]) == 2
        np.testing.assert_array_equal(f["layers/batch_normalization/vars/2"][()],
                                      model.layers[1].moving_mean.numpy())


def test_nested_models_paths_and_round_trip(tmp_path):
    fastnn.utils.set_random_seed(2)
    inner = fastnn.Sequential([fastnn.Input((3,)), L.Dense(4, name="inner_dense")], name="inner")
    block_in = fastnn.Input((4,))
    block = fastnn.Model(block_in, L.Dense(4, activation="relu")(block_in), name="block")
    inp = fastnn.Input((3,))
    out = L.Dense(1)(block(inner(inp)))
    model = fastnn.Model(inp, out)
    x = _rng().standard_normal((4, 3)).astype("float32")
    _train(model, x, _rng(1).standard_normal((4, 1)).astype("float32"))
    _round_trip(model, x, tmp_path)
    with h5py.File(tmp_path / "m.weights.h5") as f:
        assert "layers/sequential/layers/dense/vars/0" in f  # the nested Sequential: no InputLayer
        assert f["layers/sequential/layers/dense/vars"].attrs["name"] == "inner_dense"
        assert "layers/functional/layers/input_layer/vars" in f  # a nested Functional lists its InputLayer
        assert "layers/functional/layers/dense/vars/1" in f
        assert "layers/input_layer/vars" in f


def test_recurrent_paths_match_keras(tmp_path):
    inp = fastnn.Input((5, 4))
    outs = [L.LSTM(3)(inp), L.Bidirectional(L.GRU(2))(inp),
            L.RNN(L.StackedRNNCells([L.LSTMCell(2), L.GRUCell(3)]))(inp), L.TimeDistributed(L.Dense(2))(inp)]
    model = fastnn.Model(inp, outs)
    model.save_weights(tmp_path / "r.weights.h5")
    with h5py.File(tmp_path / "r.weights.h5") as f:
        names = []
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    assert sorted(names) == sorted(
        [f"layers/lstm/cell/vars/{i}" for i in range(3)]
        + [f"layers/bidirectional/{d}_layer/cell/vars/{i}" for d in ("forward", "backward") for i in range(3)]
        + [f"layers/rnn/cell/cells/{c}/vars/{i}" for c in ("lstm_cell", "gru_cell") for i in range(3)]
        + [f"layers/time_distributed/layer/vars/{i}" for i in range(2)])


def test_subclassed_model_round_trips_weights(tmp_path):
    class Net(fastnn.Model):
        def __init__(self):
            super().__init__()
            self.d1 = L.Dense(3)
            self.blocks = [L.Dense(3), L.Dense(2)]

        def call(self, x):
            x = self.d1(x)
            for b in self.blocks:
                x = b(x)
            return x

    x = _rng().standard_normal((4, 5)).astype("float32")
    a, b = Net(), Net()
    a(x), b(x)
    a.save_weights(tmp_path / "n.weights.h5")
    b.load_weights(tmp_path / "n.weights.h5")
    np.testing.assert_array_equal(np.asarray(a(x)), np.asarray(b(x)))
    with h5py.File(tmp_path / "n.weights.h5") as f:  # Keras's walk: attributes sorted, then the layers list
        assert "d1/vars/0" in f and "blocks/dense/vars/0" in f and "blocks/dense_1/vars/0" in f


def test_every_optimizer_state_round_trips(tmp_path):
    x = _rng().standard_normal((6, 3)).astype("float32")
    y = _rng(1).standard_normal((6, 2)).astype("float32")
    O = fastnn.optimizers
    for opt in [O.SGD(0.1, momentum=0.9), O.Adam(amsgrad=True), O.AdamW(), O.Adagrad(), O.RMSprop(momentum=0.5,
                centered=True), O.Adadelta(), O.Adamax(), O.Nadam(), O.Lion(), O.Ftrl(), O.Lamb(), O.Adafactor(),
                O.Adam(use_ema=True, gradient_accumulation_steps=2), O.LossScaleOptimizer(O.SGD(momentum=0.5))]:
        model = fastnn.Sequential([fastnn.Input((3,)), L.Dense(4), L.Dense(2)])
        model.compile(optimizer=opt, loss="mse")
        for _ in range(3):
            model.train_on_batch(x, y)
        model.save(tmp_path / "o.keras")
        loaded = fastnn.saving.load_model(tmp_path / "o.keras")
        _assert_same_state(model, loaded)
        # and the next steps agree bit for bit
        model.train_on_batch(x, y)
        loaded.train_on_batch(x, y)
        _assert_same_state(model, loaded)


def test_resumed_training_is_bit_identical(tmp_path):
    def make():
        fastnn.utils.set_random_seed(7)
        m = fastnn.Sequential([fastnn.Input((4,)), L.Dense(8, activation="relu"), L.BatchNormalization(),
                               L.Dense(1)])
        m.compile(optimizer="adam", loss="mse")
        return m

    rng = _rng(3)
    x = rng.standard_normal((64, 4)).astype("float32")
    y = rng.standard_normal((64, 1)).astype("float32")
    whole = make()
    whole.fit(x, y, epochs=4, batch_size=16, shuffle=False, verbose=0)
    first = make()
    first.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    first.save(tmp_path / "mid.keras")
    resumed = fastnn.models.load_model(tmp_path / "mid.keras")
    resumed.fit(x, y, epochs=4, initial_epoch=2, batch_size=16, shuffle=False, verbose=0)
    _assert_same_state(whole, resumed)
    # the same through a weights file into a freshly built model
    again = make()
    again.load_weights(tmp_path / "mid.keras")
    again.fit(x, y, epochs=4, initial_epoch=2, batch_size=16, shuffle=False, verbose=0)
    _assert_same_state(whole, again)


def test_loaded_model_is_compiled_unless_asked(tmp_path):
    model = fastnn.Sequential([fastnn.Input((2,)), L.Dense(1)])
    model.compile(optimizer=fastnn.optimizers.SGD(0.05), loss="mae")
    model.save(tmp_path / "c.keras")
    loaded = fastnn.saving.load_model(tmp_path / "c.keras")
    assert isinstance(loaded.optimizer, fastnn.optimizers.SGD) and loaded.optimizer.learning_rate == 0.05
    assert fastnn.saving.load_model(tmp_path / "c.keras", compile=False).optimizer is None


def test_file_objects(tmp_path):
    model = fastnn.Sequential([fastnn.Input((2,)), L.Dense(1)])
    buf = io.BytesIO()
    saving_lib.save_model(model, buf)
    buf.seek(0)
    loaded = saving_lib.load_model(buf)
    _assert_same_state(model, loaded)


# -- errors ----------------------------------------------------------------------------------------------------------
def _dense_model(units=4, name=None):
    return fastnn.Sequential([fastnn.Input((3,)), L.Dense(units, name=name), L.Dense(2)])


def test_other_architecture_names_layer_and_shapes(tmp_path):
    _dense_model(4).save_weights(tmp_path / "a.weights.h5")
    other = _dense_model(5)
    before = other.get_weights()
    with pytest.raises(ValueError) as info:
        other.load_weights(tmp_path / "a.weights.h5")
    msg = str(info.value)
    assert "2 objects could not be loaded" in msg
    assert f"Layer '{other.layers[0].name}'" in msg and "(3, 5)" in msg and "(3, 4)" in msg
    for u, v in zip(before, other.get_weights()):  # nothing half-assigned
        np.testing.assert_array_equal(u, v)


def test_missing_layer_and_count_mismatch(tmp_path):
    fastnn.Sequential([fastnn.Input((3,)), L.Dense(3), L.Dense(3)]).save_weights(tmp_path / "two.weights.h5")
    deeper = fastnn.Sequential([fastnn.Input((3,)), L.Dense(3), L.Dense(3), L.Dense(3, name="extra")])
    with pytest.raises(ValueError, match="A total of 1 objects could not be loaded") as info:
        deeper.load_weights(tmp_path / "two.weights.h5")  # the third Dense has no group in the file
    assert "Layer 'extra' expected 2 variables, but received 0 variables" in str(info.value)
    fastnn.Sequential([fastnn.Input((3,)), L.Dense(2)]).save_weights(tmp_path / "one.weights.h5")
    no_bias = fastnn.Sequential([fastnn.Input((3,)), L.Dense(2, use_bias=False)])
    with pytest.raises(ValueError, match="expected 1 variables, but received 2"):
        no_bias.load_weights(tmp_path / "one.weights.h5")


def test_skip_mismatch_warns_and_loads_the_rest(tmp_path):
    src = _dense_model(4)
    src.save_weights(tmp_path / "a.weights.h5")
    dst = fastnn.Sequential([fastnn.Input((3,)), L.Dense(4), L.Dense(3)])
    before_last = dst.layers[1].get_weights()
    with pytest.warns(UserWarning, match="could not be loaded"):
        dst.load_weights(tmp_path / "a.weights.h5", skip_mismatch=True)
    for u, v in zip(dst.layers[0].get_weights(), src.layers[0].get_weights()):
        np.testing.assert_array_equal(u, v)
    for u, v in zip(dst.layers[1].get_weights(), before_last):
        np.testing.assert_array_equal(u, v)


def test_optimizer_count_mismatch_warns(tmp_path):
    a = _dense_model()
    a.compile(optimizer="adam", loss="mse")
    a.train_on_batch(np.ones((2, 3), "float32"), np.ones((2, 2), "float32"))
    a.save_weights(tmp_path / "a.weights.h5")
    b = _dense_model()
    b.compile(optimizer="sgd", loss="mse")
    with pytest.warns(UserWarning, match="Skipping variable loading for optimizer"):
        b.load_weights(tmp_path / "a.weights.h5")


def test_extension_and_path_errors(tmp_path):
    model = _dense_model()
    with pytest.raises(ValueError, match="Invalid filepath extension for saving"):
        model.save(tmp_path / "m.txt")
    with pytest.raises(ValueError, match=r"The filename must end in `\.weights\.h5`"):
        model.save_weights(tmp_path / "m.weights")
    with pytest.raises(ValueError, match="File format not supported"):
        fastnn.saving.load_model(tmp_path / "m.txt")
    with pytest.raises(ValueError, match="File not found"):
        fastnn.saving.load_model(tmp_path / "missing.keras")
    with pytest.raises(FileNotFoundError):
        model.load_weights(tmp_path / "missing.weights.h5")
    with pytest.raises(ValueError, match="File format not supported"):
        model.load_weights(tmp_path / "m.npz")
    (tmp_path / "d.keras").mkdir()
    with pytest.raises((ValueError, IsADirectoryError)):
        model.save(tmp_path / "d.keras")
    with pytest.raises(ValueError, match="directory"):
        fastnn.saving.load_model(tmp_path / "d.keras")
    with pytest.raises(ValueError, match="by_name"):
        model.load_weights(tmp_path / "x.weights.h5", by_name=True)
    unbuilt = fastnn.Sequential([L.Dense(2)])
    with pytest.raises(ValueError, match="not yet been built"):
        unbuilt.save_weights(tmp_path / "u.weights.h5")
    with pytest.raises(ValueError, match="not yet been built"):
        unbuilt.load_weights(tmp_path / "u.weights.h5")


def test_overwrite_false_asks(tmp_path, monkeypatch):
    model = _dense_model()
    model.save(tmp_path / "m.keras")
    before = (tmp_path / "m.keras").read_bytes()
    monkeypatch.setattr("builtins.input", lambda prompt="": "n")
    other = _dense_model()
    other.save(tmp_path / "m.keras", overwrite=False)
    assert (tmp_path / "m.keras").read_bytes() == before
    monkeypatch.setattr("builtins.input", lambda prompt="": "y")
    other.save(tmp_path / "m.keras", overwrite=False)
    assert (tmp_path / "m.keras").read_bytes() != before


def test_failed_save_leaves_previous_file(tmp_path, monkeypatch):
    model = _dense_model()
    model.save(tmp_path / "m.keras")
    before = (tmp_path / "m.keras").read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(saving_lib, "_weights_bytes", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        _dense_model().save(tmp_path / "m.keras")
    assert (tmp_path / "m.keras").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]


def test_optimizer_keys_are_never_reused():
    # CPython reuses the id of a collected object; the optimizer's state must not follow an id to a new variable.
    from fastnn.optimizers.optimizer import _var_key

    keys = set()
    for _ in range(200):
        v = fastnn.Variable(np.zeros(2, "float32"))
        k = _var_key(v)
        assert _var_key(v) == k
        assert k not in keys
        keys.add(k)
        del v
    opt = fastnn.optimizers.Adam()
    v1 = fastnn.Variable(np.ones(2, "float32"))
    opt.apply_gradients([(np.ones(2, "float32"), v1)])
    assert len(opt._slots) == 1


def test_lambda_needs_safe_mode_off(tmp_path):
    inp = fastnn.Input((3,))
    model = fastnn.Model(inp, L.Lambda(lambda t: t * 2.0 + 1.0)(L.Dense(2)(inp)))
    model.save(tmp_path / "lam.keras")
    with pytest.raises(ValueError, match="safe_mode=False"):
        fastnn.saving.load_model(tmp_path / "lam.keras")
    loaded = fastnn.saving.load_model(tmp_path / "lam.keras", safe_mode=False)
    x = _rng().standard_normal((2, 3)).astype("float32")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_public_names_from_a_fresh_interpreter():
    import subprocess
    import sys

    code = ("import fastnn\n"
            "names = ['save_model', 'load_model', 'save_weights', 'load_weights']\n"
            "assert all(callable(getattr(fastnn.saving, n)) for n in names)\n"
            "assert fastnn.models.load_model is not None and fastnn.models.save_model is not None\n"
            "m = fastnn.Sequential([fastnn.Input((2,)), fastnn.layers.Dense(1)])\n"
            "assert callable(m.save) and callable(m.save_weights) and callable(m.load_weights)\n")
    subprocess.run([sys.executable, "-c", code], check=True)
