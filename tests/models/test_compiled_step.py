"""The compiled step (``compile(jit_compile=...)``: models/compiled.py over backend/recording.py) against eager
execution: the same bits for the losses, metrics, predictions and weights over whole fits (partial last batches,
shuffling, dropout, batch normalization, masks, regularizers, several outputs, sample and class weights); plans
recorded once per signature and replayed without the layers' Python; the eager fallback (one warning naming the
layer) for what cannot be traced; guards for data-dependent host values."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import fastnn
from fastnn import backend as B
from fastnn import layers as L
from fastnn.models import compiled as compiled_module
from fastnn.testing.compiled_step import assert_compiled_equals_eager as _assert_compiled_equals_eager
from fastnn.testing.compiled_step import assert_same as _same
from fastnn.testing.compiled_step import fit_evaluate_predict as _run

RNG = np.random.default_rng(0)


def _mlp():
    return fastnn.Sequential([L.Input((7,)), L.Dense(16, activation="relu"), L.Dense(16, activation="relu"),
                              L.Dropout(0.5), L.Dense(1)])


def _cnn():
    return fastnn.Sequential([
        L.Input((12, 12, 1)), L.Conv2D(4, 3, padding="same", activation="relu"), L.MaxPooling2D(2),
        L.Conv2D(16, 3, padding="same", activation="relu"), L.Conv2D(16, 3, padding="same", activation="relu"),
        L.MaxPooling2D(2), L.Flatten(), L.Dense(12, activation="relu"), L.Dropout(0.5),
        L.Dense(5, activation="softmax")])


def _resnet():
    inp = fastnn.Input((8, 8, 3))
    h = L.Activation("relu")(L.BatchNormalization()(L.Conv2D(16, 3, padding="same")(inp)))
    for _ in range(2):
        r = L.Activation("relu")(L.BatchNormalization()(L.Conv2D(16, 3, padding="same")(h)))
        r = L.BatchNormalization()(L.Conv2D(16, 3, padding="same")(r))
        h = L.Activation("relu")(L.Add()([h, r]))
    out = L.Dense(4, activation="softmax")(L.GlobalAveragePooling2D()(h))
    return fastnn.Model(inp, out)


def _lstm():
    return fastnn.Sequential([L.Input((9,), dtype="int32"), L.Embedding(30, 6, mask_zero=True), L.LSTM(5),
                              L.Dense(1, activation="sigmoid")])


def _sequences(n=26, steps=9, vocab=30):
    x = RNG.integers(1, vocab, (n, steps)).astype(np.int32)
    lengths = RNG.integers(1, steps + 1, n)
    x[np.arange(steps)[None, :] >= lengths[:, None]] = 0
    y = (x.sum(axis=1, keepdims=True) % 2).astype(np.float32)
    return x, y


def test_mlp_with_dropout_and_adam():
    x, y = RNG.standard_normal((30, 7)).astype(np.float32), RNG.standard_normal((30, 1)).astype(np.float32)
    _assert_compiled_equals_eager(_mlp, x, y, {"optimizer": "adam", "loss": "mse", "metrics": ["mae"]})


def test_cnn_with_pooling_softmax_and_accuracy():
    x = RNG.standard_normal((20, 12, 12, 1)).astype(np.float32)
    y = np.eye(5, dtype=np.float32)[RNG.integers(0, 5, 20)]
    _assert_compiled_equals_eager(_cnn, x, y, {"optimizer": "adam", "loss": "categorical_crossentropy",
                                               "metrics": ["accuracy"]})


def test_resnet_with_batch_normalization_statistics():
    x = RNG.standard_normal((14, 8, 8, 3)).astype(np.float32)
    y = RNG.integers(0, 4, (14,)).astype(np.int32)
    model = _assert_compiled_equals_eager(_resnet, x, y, {"optimizer": "adam",
                                                          "loss": "sparse_categorical_crossentropy",
                                                          "metrics": ["sparse_categorical_accuracy"]},
                                          {"batch_size": 4})
    moving = [w for w in model.non_trainable_weights if "moving_mean" in w.path]
    assert moving and all(np.abs(w.numpy()).sum() > 0 for w in moving)  # the statistics did move
    # The plans fused each BatchNormalization -> ReLU and Add -> ReLU pair (same bits, asserted above).
    for key, entry in model._compiled_steps.entries.items():
        src = entry.plan.source
        assert "B_activation_forward" not in src and src.count("B_add_relu(") == 2, src
        if key[0] == "train":
            assert src.count("relu_y=s") == 3 and src.count("relu_y=None") == 2, src


def test_a_pre_relu_value_used_elsewhere_is_not_fused():
    def build():
        inp = fastnn.Input((6, 6, 2))
        bn = L.BatchNormalization()(L.Conv2D(4, 3, padding="same")(inp))
        h = L.Activation("relu")(bn)
        s = L.Add()([h, bn])
        out = L.Dense(3)(L.Flatten()(L.Concatenate()([L.Activation("relu")(s), s])))
        return fastnn.Model(inp, out)

    x, y = RNG.standard_normal((12, 6, 6, 2)).astype(np.float32), RNG.standard_normal((12, 3)).astype(np.float32)
    model = _assert_compiled_equals_eager(build, x, y, {"optimizer": "adam", "loss": "mse"}, {"batch_size": 4})
    for entry in model._compiled_steps.entries.values():
        src = entry.plan.source
        assert "B_add_relu" not in src and "relu_y=s" not in src and src.count("B_activation_forward(") == 2, src


@pytest.mark.parametrize("after", ["relu", "lambda_relu", "add_relu"])
def test_a_relu_after_a_fused_pair_records_and_matches_eager(after):
    # Regression: once a BatchNormalization -> ReLU pair was fused (its ReLU backward removed), a later ReLU that
    # read the fused output looked up the removed line and recording raised TypeError.
    def build():
        inp = fastnn.Input((6, 6, 2))
        h = L.Activation("relu")(L.BatchNormalization()(L.Conv2D(4, 3, padding="same")(inp)))
        if after == "relu":
            h = L.Activation("relu")(h)
        elif after == "lambda_relu":
            h = L.Lambda(lambda t: fastnn.ops.relu(t) * 2.0)(h)
        else:
            h = L.Activation("relu")(L.Add()([h, L.Conv2D(4, 1)(h)]))
            h = L.Activation("relu")(h)
        return fastnn.Model(inp, L.Dense(3)(L.Flatten()(h)))

    x, y = RNG.standard_normal((12, 6, 6, 2)).astype(np.float32), RNG.standard_normal((12, 3)).astype(np.float32)
    model = _assert_compiled_equals_eager(build, x, y, {"optimizer": "adam", "loss": "mse"}, {"batch_size": 4})
    train = next(e.plan.source for k, e in model._compiled_steps.entries.items() if k[0] == "train")
    assert "relu_y=s" in train, train  # the first pair is still fused


def test_lstm_over_a_masked_embedding():
    x, y = _sequences()
    _assert_compiled_equals_eager(_lstm, x, y, {"optimizer": "adam", "loss": "binary_crossentropy",
                                                "metrics": ["accuracy"]})


def test_recurrent_wrappers_regularizers_and_a_python_activation():
    def build():
        return fastnn.Sequential([
            L.Input((5, 3)),
            L.Bidirectional(L.GRU(4, return_sequences=True, dropout=0.2, recurrent_dropout=0.1, seed=3)),
            L.TimeDistributed(L.Dense(3, activation=lambda t: t ** 2, kernel_regularizer="l2")),
            L.LSTM(3, activity_regularizer="l1"), L.Lambda(lambda t: fastnn.ops.tanh(t) * 2.0), L.Dense(2)])

    x, y = RNG.standard_normal((18, 5, 3)).astype(np.float32), RNG.standard_normal((18, 2)).astype(np.float32)
    _assert_compiled_equals_eager(build, x, y, {"optimizer": fastnn.optimizers.SGD(0.05, momentum=0.9,
                                                                                    clipnorm=1.0), "loss": "mse"})


def test_several_outputs_loss_weights_and_sample_weights():
    def build():
        inp = fastnn.Input((6,), name="x")
        h = L.Dense(8, activation="tanh")(inp)
        a = L.Dense(1, name="a")(h)
        b = L.Dense(3, activation="softmax", name="b")(L.Dropout(0.3)(h))
        return fastnn.Model(inp, {"a": a, "b": b})

    x = RNG.standard_normal((21, 6)).astype(np.float32)
    y = {"a": RNG.standard_normal((21, 1)).astype(np.float32),
         "b": np.eye(3, dtype=np.float32)[RNG.integers(0, 3, 21)]}
    sw = RNG.uniform(0.1, 2.0, 21).astype(np.float32)
    compile_kwargs = {"optimizer": "rmsprop", "loss": {"a": "mse", "b": "categorical_crossentropy"},
                      "loss_weights": {"a": 0.3, "b": 1.5}, "metrics": {"a": ["mae"], "b": ["accuracy"]}}
    _assert_compiled_equals_eager(build, x, y, compile_kwargs, {"batch_size": 5, "sample_weight": sw})


def test_class_weights_and_unshuffled_batches():
    x = RNG.standard_normal((19, 4)).astype(np.float32)
    y = RNG.integers(0, 3, (19,)).astype(np.int64)

    def build():
        return fastnn.Sequential([L.Input((4,)), L.Dense(3, activation="softmax")])

    _assert_compiled_equals_eager(build, x, y, {"optimizer": "adagrad", "loss": "sparse_categorical_crossentropy"},
                                  {"batch_size": 6, "class_weight": {0: 0.5, 1: 2.0, 2: 1.0}, "shuffle": False})


def test_plans_are_recorded_once_per_signature_and_replay_without_the_layers_python(monkeypatch):
    calls = []
    real = L.Dense.call
    monkeypatch.setattr(L.Dense, "call", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    x, y = RNG.standard_normal((30, 7)).astype(np.float32), RNG.standard_normal((30, 1)).astype(np.float32)
    fastnn.utils.set_random_seed(0)
    model = _mlp()
    model.compile("adam", "mse")
    assert model.jit_compile is True  # "auto"
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # 3 full batches and one of 6: two plans, recorded once each
    assert len(calls) == 3 * 2
    model.fit(x, y, batch_size=8, epochs=3, verbose=0)
    model.predict(x, batch_size=8, verbose=0)
    model.predict(x, batch_size=8, verbose=0)
    assert len(calls) == 3 * 4
    kinds = sorted(key[0] for key in model._compiled_steps.entries)
    assert kinds == ["predict", "predict", "train", "train"]
    assert B.add is B.current().add  # the recording functions are gone from the backend namespace


def test_jit_compile_false_and_run_eagerly_run_every_layer(monkeypatch):
    x, y = RNG.standard_normal((16, 7)).astype(np.float32), RNG.standard_normal((16, 1)).astype(np.float32)
    calls = []
    real = L.Dense.call
    monkeypatch.setattr(L.Dense, "call", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    for kwargs in ({"jit_compile": False}, {"run_eagerly": True}):
        calls.clear()
        model = _mlp()
        model.compile("adam", "mse", **kwargs)
        assert model.jit_compile is False
        model.fit(x, y, batch_size=8, epochs=2, verbose=0)
        assert len(calls) == 3 * 4
        assert "_compiled_steps" not in model.__dict__


def test_recompiling_drops_the_plans():
    x, y = RNG.standard_normal((16, 7)).astype(np.float32), RNG.standard_normal((16, 1)).astype(np.float32)
    model = _mlp()
    model.compile("adam", "mse")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert model._compiled_steps.entries
    model.compile("sgd", "mae")
    assert "_compiled_steps" not in model.__dict__


class _HostLayer(L.Layer):
    """Leaves the backend: computes a scale on the host from the batch's values (cannot be traced)."""

    def call(self, x):
        scale = float(np.abs(x.numpy()).mean())
        return x * scale


def test_an_untraceable_layer_warns_once_and_runs_eagerly_with_eager_results():
    x, y = RNG.standard_normal((20, 3)).astype(np.float32), RNG.standard_normal((20, 1)).astype(np.float32)

    def build():
        return fastnn.Sequential([L.Input((3,)), _HostLayer(name="host"), L.Dense(1)])

    results = []
    for jit in (False, True):
        fastnn.utils.set_random_seed(2)
        model = build()
        model.compile("adam", "mse", jit_compile=jit)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            h = model.fit(x, y, batch_size=6, epochs=3, verbose=0)
            p = model.predict(x, batch_size=6, verbose=0)
        messages = [str(w.message) for w in caught if "cannot be traced" in str(w.message)]
        if jit:
            assert len(messages) == 2  # the train and the predict step, once each
            assert all('layer "host" (_HostLayer)' in m and "hands a buffer to the host" in m for m in messages)
        else:
            assert messages == []
        results.append((h.history, p, model.get_weights()))
    _same(results[0], results[1], "eager vs fallback")


def test_a_failed_guard_runs_that_batch_eagerly():
    # The hinge losses convert 0 / 1 labels to -1 / 1 after a host test of the labels (a guard in the plan):
    # batches alternate between the two kinds of labels.
    x = RNG.standard_normal((24, 4)).astype(np.float32)
    y = np.where(RNG.random((24, 1)) < 0.5, 1.0, 0.0).astype(np.float32)
    y[8:16] = 2.0 * y[8:16] - 1.0

    def build():
        return fastnn.Sequential([L.Input((4,)), L.Dense(4, activation="relu"), L.Dropout(0.25), L.Dense(1)])

    # One failure per epoch (the middle batch); the third gives the train signature up (eager from then on).
    model = _assert_compiled_equals_eager(build, x, y, {"optimizer": "adam", "loss": "hinge"},
                                          {"batch_size": 8, "shuffle": False}, epochs=3, kinds=("test", "predict"))
    (train,) = [e for key, e in model._compiled_steps.entries.items() if key[0] == "train"]
    assert train.plan is None and train.guard_failures == compiled_module._MAX_GUARD_FAILURES


def test_a_bad_batch_raises_as_in_eager_mode():
    x, y = _sequences(16)
    model = _lstm()
    model.compile("adam", "binary_crossentropy")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    bad = x.copy()
    bad[3, 0] = -4
    model.compile("adam", "binary_crossentropy", jit_compile=False)
    with pytest.raises(ValueError) as eager:
        model.train_on_batch(bad[:8], y[:8])
    model.compile("adam", "binary_crossentropy")
    model.train_on_batch(x[:8], y[:8])  # records the plan
    with pytest.raises(ValueError) as replayed:
        model.train_on_batch(bad[:8], y[:8])
    assert str(replayed.value) == str(eager.value) and "must lie in [0, 30)" in str(eager.value)


def test_a_new_seed_or_a_frozen_layer_between_fits():
    x, y = RNG.standard_normal((24, 7)).astype(np.float32), RNG.standard_normal((24, 1)).astype(np.float32)
    results = []
    for jit in (False, True):
        fastnn.utils.set_random_seed(5)
        model = _mlp()
        model.compile("adam", "mse", jit_compile=jit)
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
        fastnn.utils.set_random_seed(11)  # a new global generator: the dropout masks follow it
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
        model.layers[0].trainable = False  # fewer trainable variables: a new signature
        h = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
        results.append((h.history, model.get_weights()))
    _same(results[0], results[1], "eager vs compiled")


def test_verify_mode_replays_and_compares_every_step(monkeypatch):
    monkeypatch.setattr(compiled_module, "_VERIFY", True)
    x = RNG.standard_normal((14, 8, 8, 3)).astype(np.float32)
    y = RNG.integers(0, 4, (14,)).astype(np.int32)
    _assert_compiled_equals_eager(_resnet, x, y, {"optimizer": "adam", "loss": "sparse_categorical_crossentropy"},
                                  {"batch_size": 4})
    xs, ys = _sequences()
    _assert_compiled_equals_eager(_lstm, xs, ys, {"optimizer": "adam", "loss": "binary_crossentropy"})


def test_a_plan_reads_the_variables_at_replay():
    x, y = RNG.standard_normal((16, 7)).astype(np.float32), RNG.standard_normal((16, 1)).astype(np.float32)
    model = _mlp()
    model.compile("adam", "mse")
    model.predict(x, batch_size=8, verbose=0)
    before = model.predict(x, batch_size=8, verbose=0)
    model.set_weights([w * 0.5 for w in model.get_weights()])
    after = model.predict(x, batch_size=8, verbose=0)
    assert not np.array_equal(before, after)
    model.compile("adam", "mse", jit_compile=False)
    np.testing.assert_array_equal(after, model.predict(x, batch_size=8, verbose=0))


def test_predict_from_several_threads_at_once():
    import threading

    x = RNG.standard_normal((64, 7)).astype(np.float32)
    model = _mlp()
    model.compile("adam", "mse", jit_compile=False)
    expected = model.predict(x, batch_size=8, verbose=0)
    model.compile("adam", "mse")  # plans recorded by whichever thread comes first; the others run eagerly meanwhile
    results, errors = [None] * 4, []

    def work(k):
        try:
            results[k] = [model.predict(x, batch_size=8, verbose=0) for _ in range(3)]
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for r in results:
        for p in r:
            np.testing.assert_array_equal(p, expected)
