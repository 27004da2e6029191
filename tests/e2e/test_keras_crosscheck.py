"""Cross-check against Keras 3 (TensorFlow backend): identical weights give the same predictions, and two epochs
of training (shuffle=False) end at the same weights and losses. Skipped when Keras is not installed.

Run with Keras in a separate environment, e.g.
    PYTHONPATH=$PWD/src /work/venv-keras/bin/python -m pytest tests/e2e/test_keras_crosscheck.py
"""
from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")

import fastnn  # noqa: E402

INPUT_DIM, OUTPUT_DIM = 12, 3


def _data(n=256, seed=0, classes=None):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, INPUT_DIM)).astype("float32")
    if classes:
        w = rng.standard_normal((INPUT_DIM, classes))
        return x, np.argmax(x @ w, axis=1).astype("int64")
    w = rng.standard_normal((INPUT_DIM, OUTPUT_DIM)).astype("float32")
    return x, (np.tanh(x @ w) + 0.1 * rng.standard_normal((n, OUTPUT_DIM))).astype("float32")


def my_activation_function(x):
    return x ** 2


def _seed_mlp(lib, rate=0.5, activation="relu", out=OUTPUT_DIM, out_act=None):
    # Listing 1 of the seed: Dense 64 relu (input_shape), Dense 64 relu, Dropout 0.5, Dense.
    L = lib.layers
    return lib.models.Sequential([
        L.Dense(units=64, activation=activation, input_shape=(INPUT_DIM,)),
        L.Dense(units=64, activation=activation),
        L.Dropout(rate=rate),
        L.Dense(units=out, activation=out_act),
    ])


def _pair(build):
    keras.utils.set_random_seed(1)
    km = build(keras)
    fm = build(fastnn)
    fm.set_weights(km.get_weights())
    return km, fm


def _rel(a, b):
    return np.abs(a - b) / np.maximum(np.abs(b), 1e-6)


@pytest.mark.parametrize("activation", ["relu", my_activation_function], ids=["relu", "x_squared"])
def test_predictions_match_keras(activation):
    km, fm = _pair(lambda lib: _seed_mlp(lib, activation=activation))
    x, _ = _data(100, seed=3)
    kp = km.predict(x, verbose=0)
    fp = fm.predict(x, verbose=0)
    assert [w.shape for w in fm.get_weights()] == [w.shape for w in km.get_weights()]
    np.testing.assert_allclose(fp, kp, rtol=1e-5, atol=1e-6 * np.abs(kp).max())


OPTIMIZERS = [
    ("sgd_momentum_clipvalue", lambda lib: lib.optimizers.SGD(learning_rate=0.05, momentum=0.9, clipvalue=0.5)),
    ("adam", lambda lib: lib.optimizers.Adam(learning_rate=0.003)),
    ("adagrad", lambda lib: lib.optimizers.Adagrad(learning_rate=0.05)),
]


def _train_pair(build, make_opt, loss, x, y, metrics=None, epochs=2):
    km, fm = _pair(build)
    km.compile(optimizer=make_opt(keras), loss=loss, metrics=metrics)
    fm.compile(optimizer=make_opt(fastnn), loss=loss, metrics=metrics)
    kh = km.fit(x, y, batch_size=32, epochs=epochs, shuffle=False, verbose=0)
    fh = fm.fit(x, y, batch_size=32, epochs=epochs, shuffle=False, verbose=0)
    return km, fm, kh.history, fh.history


@pytest.mark.parametrize("name,make_opt", OPTIMIZERS, ids=[o[0] for o in OPTIMIZERS])
@pytest.mark.parametrize("activation", ["relu", my_activation_function], ids=["relu", "x_squared"])
def test_two_epochs_of_training_match_keras(name, make_opt, activation):
    # Dropout's random masks cannot match another framework's generator, so the training comparison runs the
    # seed's MLP with Dropout(rate=0.0) (the layer stays in the graph); predictions above use rate 0.5.
    x, y = _data(256)
    if activation is my_activation_function:
        x = x * 0.3  # keep x ** 2 of x ** 2 in a range where float32 training is well conditioned
    km, fm, kh, fh = _train_pair(lambda lib: _seed_mlp(lib, rate=0.0, activation=activation), make_opt, "mse", x, y)
    np.testing.assert_allclose(fh["loss"], kh["loss"], rtol=1e-3)
    kp, fp = km.predict(x, verbose=0), fm.predict(x, verbose=0)
    np.testing.assert_allclose(fp, kp, rtol=1e-3, atol=1e-3 * np.abs(kp).max())
    kw, fw = km.get_weights(), fm.get_weights()
    for a, b in zip(fw, kw):
        if name == "adam":
            # Adam turns rounding noise in near-zero gradients into full-size steps: judge the bulk of the weights.
            # Error measured against each array's scale: elementwise relative error is meaningless for weights
            # that pass near zero.
            assert np.percentile(np.abs(a - b), 99) < 1e-3 * np.abs(b).max()
            np.testing.assert_allclose(a, b, rtol=0, atol=0.05 * np.abs(b).max())
        else:
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3 * np.abs(b).max())


def test_classifier_loss_and_accuracy_match_keras():
    x, y = _data(256, classes=4)
    km, fm, kh, fh = _train_pair(lambda lib: _seed_mlp(lib, rate=0.0, out=4, out_act="softmax"),
                                 lambda lib: lib.optimizers.Adam(0.003), "sparse_categorical_crossentropy", x, y,
                                 metrics=["accuracy"])
    assert sorted(fh) == sorted(kh)
    np.testing.assert_allclose(fh["loss"], kh["loss"], rtol=1e-3)
    np.testing.assert_allclose(fh["accuracy"], kh["accuracy"], atol=1.5 / 256)
    ke = km.evaluate(x, y, verbose=0, return_dict=True)
    fe = fm.evaluate(x, y, verbose=0, return_dict=True)
    assert fe["loss"] == pytest.approx(ke["loss"], rel=1e-3)


@pytest.mark.parametrize("loss", ["mae", "huber", "log_cosh", "mape", "msle", "poisson", "kl_divergence",
                                  "cosine_similarity", "hinge", "squared_hinge"])
def test_loss_functions_match_keras(loss):
    rng = np.random.default_rng(5)
    yt = rng.uniform(0.05, 1.0, (16, 5)).astype("float32")
    yp = rng.uniform(0.05, 1.0, (16, 5)).astype("float32")
    sw = rng.uniform(0, 2, 16).astype("float32")
    k = keras.losses.get(loss)
    f = fastnn.losses.get(loss)
    np.testing.assert_allclose(np.asarray(f(yt, yp)), np.asarray(k(yt, yp)), rtol=1e-5, atol=1e-6)
    kc = keras.losses.deserialize({"class_name": type(keras.losses.get({"class_name": _CLASS[loss], "config": {}})).__name__,
                                   "config": {}})
    fc = fastnn.losses.get(_CLASS[loss])
    np.testing.assert_allclose(float(fc(yt, yp, sample_weight=sw)), float(kc(yt, yp, sample_weight=sw)), rtol=1e-5)


_CLASS = {"mae": "MeanAbsoluteError", "huber": "Huber", "log_cosh": "LogCosh", "mape": "MeanAbsolutePercentageError",
          "msle": "MeanSquaredLogarithmicError", "poisson": "Poisson", "kl_divergence": "KLDivergence",
          "cosine_similarity": "CosineSimilarity", "hinge": "Hinge", "squared_hinge": "SquaredHinge"}


def test_crossentropies_with_label_smoothing_match_keras():
    rng = np.random.default_rng(6)
    logits = rng.standard_normal((8, 4)).astype("float32")
    labels = rng.integers(0, 4, 8)
    onehot = np.eye(4, dtype="float32")[labels]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    for from_logits, pred in ((True, logits), (False, probs)):
        for ls in (0.0, 0.1):
            k = keras.losses.CategoricalCrossentropy(from_logits=from_logits, label_smoothing=ls)(onehot, pred)
            f = fastnn.losses.CategoricalCrossentropy(from_logits=from_logits, label_smoothing=ls)(onehot, pred)
            assert float(f) == pytest.approx(float(k), rel=1e-5)
        k = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)(labels, pred)
        f = fastnn.losses.SparseCategoricalCrossentropy(from_logits=from_logits)(labels, pred)
        assert float(f) == pytest.approx(float(k), rel=1e-5)
    yb = rng.integers(0, 2, (8, 1)).astype("float32")
    pb = rng.uniform(0.01, 0.99, (8, 1)).astype("float32")
    for ls in (0.0, 0.2):
        k = keras.losses.BinaryCrossentropy(label_smoothing=ls)(yb, pb)
        f = fastnn.losses.BinaryCrossentropy(label_smoothing=ls)(yb, pb)
        assert float(f) == pytest.approx(float(k), rel=1e-5)


def test_metrics_match_keras():
    rng = np.random.default_rng(7)
    yt = rng.integers(0, 2, (64, 1)).astype("float32")
    yp = rng.uniform(0, 1, (64, 1)).astype("float32")
    for name in ("AUC", "Precision", "Recall", "BinaryAccuracy", "RootMeanSquaredError"):
        k = getattr(keras.metrics, name)()
        f = getattr(fastnn.metrics, name)()
        k.update_state(yt[:32], yp[:32]); k.update_state(yt[32:], yp[32:])  # noqa: E702
        f.update_state(yt[:32], yp[:32]); f.update_state(yt[32:], yp[32:])  # noqa: E702
        assert float(f.result()) == pytest.approx(float(k.result()), rel=2e-3, abs=1e-6), name
    labels = rng.integers(0, 10, 64)
    scores = rng.uniform(0, 1, (64, 10)).astype("float32")
    for name in ("SparseTopKCategoricalAccuracy", "SparseCategoricalAccuracy"):
        k = getattr(keras.metrics, name)()
        f = getattr(fastnn.metrics, name)()
        assert float(f(labels, scores)) == pytest.approx(float(k(labels, scores)), rel=1e-6), name


def test_layer_names_and_weight_layouts_match_keras():
    for lib in (keras, fastnn):
        lib.utils.clear_session()
    km = _seed_mlp(keras)
    fm = _seed_mlp(fastnn)
    assert [l.name for l in fm.layers] == [l.name for l in km.layers]
    assert [w.name for w in fm.weights] == [w.name for w in km.weights]
    # Keras prefixes paths with the enclosing model's name scope ("sequential/dense/kernel"); fastnn's are
    # "dense/kernel". Compare the layer part.
    assert [w.path for w in fm.weights] == ["/".join(w.path.split("/")[-2:]) for w in km.weights]
    assert fm.count_params() == km.count_params()


MORE_OPTIMIZERS = [
    ("sgd_nesterov", lambda lib: lib.optimizers.SGD(0.02, momentum=0.9, nesterov=True, clipnorm=1.0)),
    ("adam_amsgrad_global_clipnorm", lambda lib: lib.optimizers.Adam(0.003, amsgrad=True, global_clipnorm=1.0)),
    ("adamw", lambda lib: lib.optimizers.AdamW(0.003)),
    ("sgd_weight_decay", lambda lib: lib.optimizers.SGD(0.05, momentum=0.5, weight_decay=0.1)),
    ("rmsprop_centered_momentum", lambda lib: lib.optimizers.RMSprop(0.002, momentum=0.5, centered=True)),
    ("adadelta", lambda lib: lib.optimizers.Adadelta(1.0)),
    ("adamax", lambda lib: lib.optimizers.Adamax(0.003)),
    ("nadam", lambda lib: lib.optimizers.Nadam(0.003)),
    ("sgd_exponential_decay", lambda lib: lib.optimizers.SGD(lib.optimizers.schedules.ExponentialDecay(0.1, 4, 0.5))),
    ("adam_cosine_decay", lambda lib: lib.optimizers.Adam(lib.optimizers.schedules.CosineDecay(0.01, 10))),
    ("sgd_piecewise", lambda lib: lib.optimizers.SGD(lib.optimizers.schedules.PiecewiseConstantDecay([5], [0.1, 0.01]))),
]


@pytest.mark.parametrize("name,make_opt", MORE_OPTIMIZERS, ids=[o[0] for o in MORE_OPTIMIZERS])
def test_more_optimizers_match_keras(name, make_opt):
    x, y = _data(256)
    km, fm, kh, fh = _train_pair(lambda lib: _seed_mlp(lib, rate=0.0), make_opt, "mse", x, y)
    np.testing.assert_allclose(fh["loss"], kh["loss"], rtol=1e-3)
    # The bulk of the weights: each element's error relative to its array's scale, over the whole model. (Once one
    # op rounds differently from TensorFlow's, e.g. weight decay or a clip scale, Adam-type updates amplify the
    # rounding noise of near-zero gradients into visible steps on a few bias elements.)
    err = np.concatenate([(np.abs(a - b) / np.abs(b).max()).ravel()
                          for a, b in zip(fm.get_weights(), km.get_weights())])
    assert np.percentile(err, 99) < 1e-3 and err.max() < 2e-2


def test_functional_two_outputs_with_loss_weights_match_keras():
    def build(lib):
        inp = lib.Input((INPUT_DIM,))
        h = lib.layers.Dense(16, activation="relu")(inp)
        a = lib.layers.Dense(1, name="reg")(h)
        b = lib.layers.Dense(3, activation="softmax", name="cls")(lib.layers.Concatenate()([h, inp]))
        return lib.Model(inp, [a, b])

    x, y = _data(128)
    labels = np.argmax(y, axis=1)
    km, fm = _pair(build)
    for m, lib in ((km, keras), (fm, fastnn)):
        m.compile(optimizer=lib.optimizers.SGD(0.05), loss=["mse", "sparse_categorical_crossentropy"],
                  loss_weights=[0.3, 1.0])
    kh = km.fit(x, [y[:, :1], labels], batch_size=16, epochs=2, shuffle=False, verbose=0).history
    fh = fm.fit(x, [y[:, :1], labels], batch_size=16, epochs=2, shuffle=False, verbose=0).history
    assert sorted(fh) == sorted(kh) == ["cls_loss", "loss", "reg_loss"]
    for key in kh:
        np.testing.assert_allclose(fh[key], kh[key], rtol=1e-3)
    # evaluate's list order: loss, the per-output losses, then the rest by name
    np.testing.assert_allclose(fm.evaluate(x, [y[:, :1], labels], verbose=0),
                               km.evaluate(x, [y[:, :1], labels], verbose=0), rtol=1e-3)
    for a, b in zip(fm.get_weights(), km.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3 * np.abs(b).max())


def test_sample_weight_class_weight_and_regularizer_match_keras():
    def build(lib):
        return lib.models.Sequential([
            lib.Input((INPUT_DIM,)),
            lib.layers.Dense(16, activation="tanh", kernel_regularizer=lib.regularizers.L2(0.01)),
            lib.layers.Dense(4, activation="softmax", bias_regularizer="l1"),
        ])

    x, labels = _data(96, classes=4)
    sw = np.linspace(0.2, 2.0, 96).astype("float32")
    for kw in ({"sample_weight": sw}, {"class_weight": {0: 1.0, 1: 2.0, 2: 0.5, 3: 1.5}}):
        km, fm = _pair(build)
        for m, lib in ((km, keras), (fm, fastnn)):
            m.compile(optimizer=lib.optimizers.Adagrad(0.1), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        kh = km.fit(x, labels, batch_size=32, epochs=2, shuffle=False, verbose=0, **kw).history
        fh = fm.fit(x, labels, batch_size=32, epochs=2, shuffle=False, verbose=0, **kw).history
        np.testing.assert_allclose(fh["loss"], kh["loss"], rtol=1e-3)
        np.testing.assert_allclose(fh["accuracy"], kh["accuracy"], atol=1.5 / 96)
        for a, b in zip(fm.get_weights(), km.get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3 * np.abs(b).max())


def test_reshaping_and_merging_layers_match_keras():
    def build(lib):
        L = lib.layers
        a, b = lib.Input((INPUT_DIM,)), lib.Input((INPUT_DIM,))
        h = L.Dense(8, activation="tanh")(a)
        g = L.Dense(8, activation="sigmoid")(b)
        merged = [L.Add()([h, g]), L.Subtract()([h, g]), L.Multiply()([h, g]), L.Average()([h, g]),
                  L.Maximum()([h, g]), L.Minimum()([h, g])]
        c = L.Concatenate()(merged)
        r = L.Permute((2, 1))(L.Reshape((6, 8))(c))
        rep = L.Flatten()(L.RepeatVector(2)(L.Dense(3)(L.Flatten()(r))))
        out = L.Dense(2, activation=lambda t: t ** 2)(L.Activation("relu")(rep))
        return lib.Model([a, b], out)

    km, fm = _pair(build)
    x1, _ = _data(20, seed=8)
    x2, _ = _data(20, seed=9)
    np.testing.assert_allclose(fm.predict([x1, x2], verbose=0), km.predict([x1, x2], verbose=0), rtol=1e-5,
                               atol=1e-6)


def _numbers_out(text):
    import re

    text = re.sub(r"\d+(ms|us|s)/step", "T/step", text)  # timings differ, units with them
    return re.sub(r"\d+(\.\d+)?(e[-+]\d+)?", "N", text)


def test_progress_line_format_matches_keras(capsys):
    x, y = _data(256)
    for verbose in (2,):
        km, fm = _pair(lambda lib: _seed_mlp(lib, rate=0.0))
        for m, lib in ((km, keras), (fm, fastnn)):
            m.compile(optimizer="sgd", loss="mse", metrics=["mae"])
        capsys.readouterr()
        km.fit(x, y, epochs=2, verbose=verbose, validation_split=0.25)
        k = capsys.readouterr().out
        fm.fit(x, y, epochs=2, verbose=verbose, validation_split=0.25)
        f = capsys.readouterr().out
        assert _numbers_out(f) == _numbers_out(k), (f, k)


def test_progress_bar_final_lines_match_keras(capsys):
    """verbose=1: fastnn prints, off a terminal, exactly the final frame of each of Keras's redrawn bars."""
    import re

    x, y = _data(256)
    km, fm = _pair(lambda lib: _seed_mlp(lib, rate=0.0))
    for m in (km, fm):
        m.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    capsys.readouterr()
    km.fit(x, y, epochs=2, verbose=1, validation_split=0.25)
    k = capsys.readouterr().out
    fm.fit(x, y, epochs=2, verbose=1, validation_split=0.25)
    f = capsys.readouterr().out
    k_lines = []
    for line in k.split("\n"):
        frame = re.sub(r"\x1b\[[0-9;]*m", "", line.split("\r")[-1].replace("\b", "")).rstrip()
        if frame:
            k_lines.append(frame)
    f_lines = [l.rstrip() for l in f.split("\n") if l.strip()]
    assert [_numbers_out(l) for l in f_lines] == [_numbers_out(l) for l in k_lines], (f_lines, k_lines)
