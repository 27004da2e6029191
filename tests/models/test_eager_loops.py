"""The eager loops' shortcuts pinned to the general code: callback dispatch only where a callback listens, the
functional graph plan against the general node walk, and nn.dense without a backward closure when no graph can be
recorded."""
import numpy as np
import pytest

import fastnn
from fastnn import callbacks, layers
from fastnn.autograd import GradientTape, Tensor, Variable, no_grad
from fastnn.autograd.ops import nn as _nn
from fastnn.models import functional as functional_mod


@pytest.fixture(autouse=True)
def _fresh():
    fastnn.utils.clear_session()
    fastnn.utils.set_random_seed(0)


def test_wants_sees_overrides_aliases_and_instance_hooks():
    class OnBatchEnd(callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            pass

    class OnPredict(callbacks.Callback):
        def on_predict_batch_end(self, batch, logs=None):
            pass

    assert not callbacks.CallbackList([callbacks.Callback(), callbacks.History()]).wants("on_train_batch_end")
    assert callbacks.CallbackList([OnBatchEnd()]).wants("on_train_batch_end")
    assert not callbacks.CallbackList([OnBatchEnd()]).wants("on_test_batch_end")
    assert callbacks.CallbackList([OnPredict()]).wants("on_predict_batch_end")
    assert not callbacks.CallbackList([OnPredict()]).wants("on_predict_batch_begin")
    assert callbacks.CallbackList([], add_progbar=True).wants("on_predict_batch_end")
    c = callbacks.Callback()
    c.on_test_batch_begin = lambda batch, logs=None: None
    assert callbacks.CallbackList([c]).wants("on_test_batch_begin")
    assert not callbacks.CallbackList([]).wants("on_train_batch_begin")


def _mlp():
    m = fastnn.Sequential([fastnn.Input((6,)), layers.Dense(8, activation="relu"), layers.Dropout(0.5),
                           layers.Dense(2)])
    m.compile(optimizer="adam", loss="mse", metrics=["mae"])
    return m


def test_callbacks_that_listen_still_get_every_batch_and_the_same_logs():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 6)).astype("float32")
    y = rng.standard_normal((40, 2)).astype("float32")
    seen = {"train": [], "test": [], "predict": []}

    class Rec(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen["train"].append((batch, dict(logs)))

        def on_test_batch_end(self, batch, logs=None):
            seen["test"].append((batch, dict(logs)))

        def on_predict_batch_end(self, batch, logs=None):
            seen["predict"].append((batch, logs["outputs"]))

    m = _mlp()
    h = m.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[Rec()], validation_data=(x, y))
    assert [b for b, _ in seen["train"]] == [0, 1, 2, 0, 1, 2]
    assert all(isinstance(v, float) for _, logs in seen["train"] for v in logs.values())
    assert set(seen["train"][-1][1]) == {"loss", "mae"}
    assert [b for b, _ in seen["test"]] == [0, 1, 2, 0, 1, 2]
    p = m.predict(x, batch_size=16, verbose=0, callbacks=[Rec()])
    assert [b for b, _ in seen["predict"]] == [0, 1, 2]
    assert np.array_equal(np.concatenate([o for _, o in seen["predict"]]), p)
    # The same model without listening callbacks gives the same history and predictions.
    fastnn.utils.clear_session()
    fastnn.utils.set_random_seed(0)
    m2 = _mlp()
    h2 = m2.fit(x, y, batch_size=16, epochs=2, verbose=0, validation_data=(x, y))
    assert h2.history == h.history
    assert np.array_equal(m2.predict(x, batch_size=16, verbose=0), p)


def _general_plan(monkeypatch):
    """Every node runs the general way (as before the plan existed)."""
    real = functional_mod.Functional._graph_plan

    def plan(self):
        return [(False, e[-1] if e[0] else e[1]) for e in real(self)]

    monkeypatch.setattr(functional_mod.Functional, "_graph_plan", plan)


def _graph_model():
    a = fastnn.Input((4,), name="a")
    b = fastnn.Input((4,), name="b")
    shared = layers.Dense(3, activation="relu")
    ha, hb = shared(a), shared(b)
    s = layers.Add()([ha, hb])
    d = layers.Dropout(0.3)(s)
    c = layers.Concatenate()([d, ha])
    out1 = layers.Dense(1)(c)
    out2 = layers.Dense(2, activation="softmax")(d)
    return fastnn.Model([a, b], [out1, out2])


@pytest.mark.parametrize("training", [None, True, False])
def test_functional_plan_matches_the_general_walk(training, monkeypatch):
    rng = np.random.default_rng(1)
    xa = rng.standard_normal((5, 4)).astype("float32")
    xb = rng.standard_normal((5, 4)).astype("float32")
    m = _graph_model()
    fastnn.utils.set_random_seed(7)
    fast = [t.numpy() for t in m([xa, xb], training=training)]
    with monkeypatch.context() as mp:
        _general_plan(mp)
        fastnn.utils.set_random_seed(7)
        ref = [t.numpy() for t in m([xa, xb], training=training)]
    assert all(np.array_equal(p, q) for p, q in zip(fast, ref))
    plan = m._graph_plan()
    assert sum(1 for e in plan if e[0]) >= 4 and any(not e[0] for e in plan)  # Add / Concatenate run generally


def test_functional_plan_follows_a_rebuilt_sequential():
    m = fastnn.Sequential([fastnn.Input((3,)), layers.Dense(2)])
    x = np.ones((2, 3), "float32")
    assert m(x).shape == (2, 2)
    m.add(layers.Dense(5))
    assert m(x).shape == (2, 5)


def test_masks_through_the_plan_match_the_general_walk(monkeypatch):
    inp = fastnn.Input((5,), dtype="int32")
    e = layers.Embedding(10, 3, mask_zero=True)(inp)
    h = layers.LSTM(4)(e)
    m = fastnn.Model(inp, layers.Dense(1)(h))
    x = np.array([[1, 2, 3, 0, 0], [4, 0, 0, 0, 0]])
    fast = m(x).numpy()
    with monkeypatch.context() as mp:
        _general_plan(mp)
        ref = m(x).numpy()
    assert np.array_equal(fast, ref)


def test_dense_without_a_graph_matches_and_a_tape_still_records():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 3)).astype("float32")
    k = rng.standard_normal((3, 2)).astype("float32")
    b = rng.standard_normal((2,)).astype("float32")
    kv, bv = Variable(k), Variable(b)
    y_graph = _nn.dense(Tensor(x), kv, bv, "relu")
    assert y_graph._node is not None
    with no_grad():
        y_nograd = _nn.dense(Tensor(x), kv, bv, "relu")
    assert y_nograd._node is None and np.array_equal(y_graph.numpy(), y_nograd.numpy())
    y_const = _nn.dense(Tensor(x), Tensor(k), Tensor(b), "relu")
    assert y_const._node is None and np.array_equal(y_const.numpy(), y_graph.numpy())
    # No input requires grad, but a tape watches x: the node (and its backward) are still recorded.
    tx = Tensor(x)
    with GradientTape() as tape:
        tape.watch(tx)
        y = _nn.dense(tx, Tensor(k), Tensor(b), "linear")
    g = tape.gradient(y, tx)
    assert np.allclose(np.asarray(g), np.ones((4, 2), "float32") @ k.T)


def test_one_tape_record_registers_every_accessed_variable():
    a, b, c = Variable(np.float32(2.0)), Variable(np.float32(3.0)), Variable(np.float32(5.0))
    with GradientTape() as tape:
        h = a * 2.0  # connected through a
        y = h + b  # first parent already connected: b is still registered (no short-circuit)
    assert {id(v) for v in tape.watched_variables()} == {id(a), id(b)}
    ga, gb = tape.gradient(y, [a, b])
    assert float(np.asarray(ga)) == 2.0 and float(np.asarray(gb)) == 1.0
    with GradientTape() as outer:
        with GradientTape() as inner:
            z = a * c
        gi = inner.gradient(z, c)
    assert float(np.asarray(gi)) == 2.0
    assert {id(v) for v in outer.watched_variables()} == {id(a), id(c)}
    with GradientTape() as paused:
        with paused.stop_recording():
            w = a * b
    assert w._node is None or paused not in w._node.tapes
