"""Keras 3's native files across the two libraries: a .keras archive or .weights.h5 file that fastnn writes loads in
Keras 3 (TensorFlow backend) with the same weights, optimizer state and predictions, and the files Keras writes load
in fastnn the same way; for Sequential, functional (several inputs / outputs, a shared layer, operations), nested
models and one model per layer family of the layers both libraries have. Skipped when Keras is not installed.

Run with:  KERAS_BACKEND=tensorflow PYTHONPATH=src /work/kvenv/bin/python -m pytest tests/e2e/test_keras_saving.py
"""
from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")

import fastnn  # noqa: E402

# Forward passes of the two libraries differ by float32 rounding (different summation orders).
ATOL = 2e-5


# -- the same architectures, written once for either library (``K`` is ``fastnn`` or ``keras``) -----------------
def _sequential(K):
    L = K.layers
    return K.Sequential([K.Input((3,)), L.Dense(4, activation="relu"), L.BatchNormalization(), L.Dropout(0.1),
                         L.Dense(2)]), ("float", (8, 3))


def _dense_family(K):
    L = K.layers
    inp = K.Input((6,))
    x = L.Dense(8, activation="relu")(inp)
    x = L.Activation("tanh")(x)
    x = L.Identity()(x)
    x = L.Reshape((4, 2))(x)
    x = L.Permute((2, 1))(x)
    x = L.SimpleRNN(4)(L.Masking(0.0)(x))
    x = L.Flatten()(L.RepeatVector(2)(x))
    return K.Model(inp, L.Dense(3)(x)), ("float", (5, 6))


def _conv2d_family(K):
    L = K.layers
    inp = K.Input((10, 10, 3))
    x = L.Conv2D(4, 3, padding="same", activation="relu")(inp)
    x = L.DepthwiseConv2D(3, padding="same")(x)
    x = L.SeparableConv2D(4, 3)(x)
    x = L.BatchNormalization()(x)
    x = L.Conv2DTranspose(3, 3)(x)
    x = L.MaxPooling2D(2)(x)
    x = L.Cropping2D(1)(L.ZeroPadding2D(1)(x))
    x = L.SpatialDropout2D(0.1)(L.UpSampling2D(2)(x))
    x = L.AveragePooling2D(2)(x)
    out = L.Concatenate()([L.GlobalAveragePooling2D()(x), L.GlobalMaxPooling2D()(x)])
    return K.Model(inp, out), ("float", (2, 10, 10, 3))


def _conv1d_family(K):
    L = K.layers
    inp = K.Input((12, 3))
    x = L.Conv1D(4, 3, activation="relu")(inp)
    x = L.DepthwiseConv1D(3, padding="same")(x)
    x = L.SeparableConv1D(4, 3)(x)
    x = L.Conv1DTranspose(3, 3)(x)
    x = L.MaxPooling1D(2)(x)
    x = L.Cropping1D(1)(L.ZeroPadding1D(1)(x))
    x = L.SpatialDropout1D(0.1)(L.UpSampling1D(2)(x))
    x = L.AveragePooling1D(2)(x)
    return K.Model(inp, L.Add()([L.GlobalAveragePooling1D()(x), L.GlobalMaxPooling1D()(x)])), ("float", (3, 12, 3))


def _recurrent_family(K):
    L = K.layers
    inp = K.Input((5,), dtype="int32")
    e = L.Embedding(20, 6, mask_zero=True)(inp)
    a = L.TimeDistributed(L.Dense(3))(L.LSTM(4, return_sequences=True)(e))
    a = L.GRU(3)(a)
    b = L.Bidirectional(L.SimpleRNN(2))(e)
    c = L.RNN(L.StackedRNNCells([L.LSTMCell(3), L.GRUCell(2), L.LSTMCell(2)]))(e)
    d = L.RNN(L.SimpleRNNCell(2))(e)
    f = L.Bidirectional(L.LSTM(2), backward_layer=L.GRU(2, go_backwards=True))(e)
    return K.Model(inp, L.Concatenate()([a, b, c, d, f])), ("tokens", (3, 5))


def _multi_io_shared(K):
    L = K.layers
    i1, i2 = K.Input((4,), name="left"), K.Input((4,), name="right")
    shared = L.Dense(4, name="shared")
    a, b = shared(i1), shared(i2)
    merged = [L.Add()([a, b]), L.Subtract()([a, b]), L.Multiply()([a, b]), L.Average()([a, b]),
              L.Maximum()([a, b]), L.Minimum()([a, b]), a * b + a]
    out1 = L.Dense(2, name="out1")(L.Concatenate()(merged))
    return K.Model([i1, i2], [out1, L.Dense(1, name="out2")(a)]), ("float2", (3, 4))


def _nested(K):
    L = K.layers
    inner = K.Sequential([K.Input((3,)), L.Dense(4, name="inner_dense")], name="inner")
    block_in = K.Input((4,))
    block = K.Model(block_in, L.Dense(4, activation="relu")(block_in), name="block")
    inp = K.Input((3,))
    return K.Model(inp, L.Dense(1)(block(inner(inp)))), ("float", (4, 3))


def _layer_options(K):
    # Options that change which variables a layer has: renorm's extra statistics, no center / scale, GRU without
    # reset_after (a 1-D bias), no biases, a Bidirectional with merge_mode="sum".
    L = K.layers
    inp = K.Input((6, 4))
    x = L.BatchNormalization(renorm=True)(inp)
    x = L.BatchNormalization(center=False, scale=False)(x)
    x = L.GRU(3, reset_after=False, return_sequences=True)(x)
    x = L.LSTM(2, use_bias=False, return_sequences=True)(x)
    x = L.Conv1D(2, 2, use_bias=False)(x)
    x = L.Bidirectional(L.GRU(2), merge_mode="sum")(x)
    return K.Model(inp, L.Dense(2, use_bias=False)(x)), ("float", (4, 6, 4))


ARCHITECTURES = {"sequential": _sequential, "dense": _dense_family, "conv2d": _conv2d_family,
                 "conv1d": _conv1d_family, "recurrent": _recurrent_family, "multi_io_shared": _multi_io_shared,
                 "nested": _nested, "layer_options": _layer_options}


def _data(spec, seed=0):
    kind, shape = spec
    rng = np.random.default_rng(seed)
    if kind == "tokens":
        x = rng.integers(1, 20, shape).astype("int32")
        x[0, 3:] = 0  # padding: the masks travel through the loaded models too
        x[2, 1:] = 0
        return x
    if kind == "float2":
        return [rng.standard_normal(shape).astype("float32") for _ in range(2)]
    return rng.standard_normal(shape).astype("float32")


def _as_list(y):
    return [np.asarray(v) for v in y] if isinstance(y, (list, tuple)) else [np.asarray(y)]


def _targets(model, x, seed=5):
    rng = np.random.default_rng(seed)
    ys = [rng.standard_normal(np.shape(y)).astype("float32") for y in _as_list(model.predict(x, verbose=0))]
    return ys[0] if len(ys) == 1 else ys


def _train(K, model, x, y):
    # run_eagerly: Keras traces no tf.function for two steps of a tiny model (seconds per model otherwise)
    model.compile(optimizer=K.optimizers.Adam(0.01), loss="mse", run_eagerly=True)
    for _ in range(2):
        model.train_on_batch(x, y)


def _assert_same_weights_and_optimizer(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    assert len(wa) == len(wb)
    for u, v in zip(wa, wb):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    oa, ob = a.optimizer.variables, b.optimizer.variables
    assert [tuple(np.shape(v)) for v in oa] == [tuple(np.shape(v)) for v in ob]
    for u, v in zip(oa, ob):
        np.testing.assert_array_equal(np.asarray(u.numpy()), np.asarray(v.numpy()))


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_fastnn_files_load_in_keras(arch, tmp_path):
    fastnn.utils.set_random_seed(0)
    model, spec = ARCHITECTURES[arch](fastnn)
    x = _data(spec)
    _train(fastnn, model, x, _targets(model, x))
    model.save(tmp_path / "f.keras")
    loaded = keras.saving.load_model(tmp_path / "f.keras")
    _assert_same_weights_and_optimizer(model, loaded)
    for got, want in zip(_as_list(loaded.predict(x, verbose=0)), _as_list(model.predict(x, verbose=0))):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=ATOL)
    # The weights file alone, into Keras's own copy of the architecture.
    model.save_weights(tmp_path / "f.weights.h5")
    twin, _ = ARCHITECTURES[arch](keras)
    twin.load_weights(tmp_path / "f.weights.h5")
    for u, v in zip(twin.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(np.asarray(u), v)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_keras_files_load_in_fastnn(arch, tmp_path):
    keras.utils.set_random_seed(0)
    model, spec = ARCHITECTURES[arch](keras)
    x = _data(spec)
    _train(keras, model, x, _targets(model, x))
    model.save(tmp_path / "k.keras")
    loaded = fastnn.saving.load_model(tmp_path / "k.keras")
    _assert_same_weights_and_optimizer(model, loaded)
    for got, want in zip(_as_list(loaded.predict(x, verbose=0)), _as_list(model.predict(x, verbose=0))):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=ATOL)
    model.save_weights(tmp_path / "k.weights.h5")
    twin, _ = ARCHITECTURES[arch](fastnn)
    twin.load_weights(tmp_path / "k.weights.h5")
    for u, v in zip(twin.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(u, np.asarray(v))


def test_keras_continues_fastnns_adam_state(tmp_path):
    # fastnn trains three Adam steps and saves; Keras loads the file and both take the same fourth step.
    fastnn.utils.set_random_seed(3)
    L = fastnn.layers  # no Dropout: the two libraries' training-time randomness differs
    model = fastnn.Sequential([fastnn.Input((3,)), L.Dense(4, activation="relu"), L.BatchNormalization(),
                               L.Dense(2)])
    x = _data(("float", (8, 3)), seed=1)
    y = np.random.default_rng(2).standard_normal((8, 2)).astype("float32")
    model.compile(optimizer=fastnn.optimizers.Adam(0.01), loss="mse")
    for _ in range(3):
        model.train_on_batch(x, y)
    model.save(tmp_path / "a.keras")
    kmodel = keras.saving.load_model(tmp_path / "a.keras")
    assert int(kmodel.optimizer.iterations.numpy()) == 3
    model.train_on_batch(x, y)
    kmodel.train_on_batch(x, y)
    for u, v in zip(model.get_weights(), kmodel.get_weights()):
        np.testing.assert_allclose(u, np.asarray(v), rtol=1e-5, atol=1e-6)
    # and back: Keras's state after its step loads in fastnn, which takes a fifth step like Keras
    kmodel.save(tmp_path / "b.keras")
    back = fastnn.saving.load_model(tmp_path / "b.keras")
    back.train_on_batch(x, y)
    kmodel.train_on_batch(x, y)
    for u, v in zip(back.get_weights(), kmodel.get_weights()):
        np.testing.assert_allclose(u, np.asarray(v), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,kwargs", [("SGD", {"momentum": 0.9}), ("RMSprop", {"momentum": 0.5, "centered": True}),
                                         ("Adam", {"amsgrad": True}), ("Nadam", {}), ("Adafactor", {}),
                                         ("Adam", {"use_ema": True, "gradient_accumulation_steps": 2}),
                                         ("Adagrad", {}), ("Adadelta", {}), ("Adamax", {}), ("Lion", {}), ("Ftrl", {}),
                                         ("Lamb", {}), ("LossScaleOptimizer", {})])
def test_optimizer_variable_order_matches_keras(name, kwargs, tmp_path):
    # The same trained state, saved by each library: the optimizer groups hold the same shapes and dtypes in the
    # same order (Keras loads optimizer variables by position).
    import h5py

    x = np.random.default_rng(0).standard_normal((4, 3)).astype("float32")
    y = np.random.default_rng(1).standard_normal((4, 2)).astype("float32")
    layouts = []
    for K in (fastnn, keras):
        model = K.Sequential([K.Input((3,)), K.layers.Dense(4), K.layers.Dense(2, use_bias=False)])
        if name == "LossScaleOptimizer":
            optimizer = K.optimizers.LossScaleOptimizer(K.optimizers.SGD(momentum=0.5))
        else:
            optimizer = getattr(K.optimizers, name)(**kwargs)
        model.compile(optimizer=optimizer, loss="mse")
        for _ in range(2):
            model.train_on_batch(x, y)
        path = tmp_path / f"{K.__name__}.weights.h5"
        model.save_weights(path)
        with h5py.File(path) as f:
            layout = []
            f["optimizer"].visititems(lambda n, o: layout.append((n, o.shape, o.dtype))
                                      if isinstance(o, h5py.Dataset) else None)
            layouts.append(sorted(layout))
    assert layouts[0] == layouts[1]
