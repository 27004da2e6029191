"""Sequential, functional and subclassed models; compile / fit / evaluate / predict against NumPy references;
bad input."""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import layers


@pytest.fixture(autouse=True)
def _fresh():
    fastnn.utils.clear_session()
    fastnn.utils.set_random_seed(0)


def _xy(n=64, d=4, out=1, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype("float32")
    y = (x @ rng.standard_normal((d, out))).astype("float32")
    return x, y


# -- Sequential ----------------------------------------------------------------------------------------------------
def test_sequential_construction_forms():
    a = fastnn.Sequential([fastnn.Input((4,)), layers.Dense(3), layers.Dense(2)])
    b = fastnn.Sequential([layers.Dense(3, input_shape=(4,)), layers.Dense(2)])
    c = fastnn.Sequential()
    c.add(fastnn.Input((4,)))
    c.add(layers.Dense(3))
    c.add(layers.Dense(2))
    for m in (a, b, c):
        assert m.built and len(m.layers) == 2 and m.count_params() == 4 * 3 + 3 + 3 * 2 + 2
        assert m.outputs[0].shape == (None, 2)
    d = fastnn.Sequential([layers.Dense(3), layers.Dense(2)])  # deferred: built on first call
    assert not d.built
    assert d(np.ones((5, 4), "float32")).shape == (5, 2) and d.built
    popped = a.pop()
    assert popped.units == 2 and len(a.layers) == 1 and a.outputs[0].shape == (None, 3)
    with pytest.raises(TypeError, match="no layers"):
        fastnn.Sequential().pop()
    with pytest.raises(ValueError, match="Only instances of `fastnn.layers.Layer`"):
        fastnn.Sequential([np.zeros(3)])
    with pytest.raises(ValueError, match="unique names"):
        fastnn.Sequential([layers.Dense(1, name="x"), layers.Dense(1, name="x")])


def test_layers_are_callable_eagerly_and_models_on_arrays():
    m = fastnn.Sequential([fastnn.Input((4,)), layers.Dense(3, activation="relu"), layers.Dense(2)])
    x = np.random.default_rng(0).standard_normal((6, 4)).astype("float32")
    y = m(x).numpy()
    k1, b1, k2, b2 = m.get_weights()
    np.testing.assert_allclose(y, np.maximum(x @ k1 + b1, 0) @ k2 + b2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.predict(x, verbose=0), y, rtol=1e-6)
    np.testing.assert_allclose(m.predict_on_batch(x), y, rtol=1e-6)


def test_model_input_shape_errors():
    m = fastnn.Sequential([fastnn.Input((4,)), layers.Dense(3), layers.Dense(2)])
    with pytest.raises(ValueError, match=r'layer "sequential" is incompatible .*expected shape=\(None, 4\), found '
                                         r"shape=\(2, 5\)"):
        m(np.ones((2, 5), "float32"))
    prebuilt = layers.Dense(2)  # dense_2, built for 5 features
    prebuilt(np.ones((1, 5), "float32"))
    with pytest.raises(ValueError, match=r'^Input 0 of layer "dense_2" is incompatible with the layer: expected axis '
                                         r"-1 of input shape to have value 5, but received input with shape "
                                         r"\(None, 2\)$"):
        m.add(prebuilt)  # the mistake is reported where it is made


def test_summary_format():
    m = fastnn.Sequential([fastnn.Input((10,)), layers.Dense(64, activation="relu"), layers.Dense(64),
                           layers.Dropout(0.5), layers.Dense(1)])
    out = []
    m.summary(print_fn=out.append)
    text = out[0]
    assert text.startswith('Model: "sequential"')
    assert "│ dense (Dense)                   │ (None, 64)             │           704 │" in text
    assert "│ dropout (Dropout)               │ (None, 64)             │             0 │" in text
    assert " Total params: 4,929 (19.25 KB)" in text
    assert " Trainable params: 4,929 (19.25 KB)" in text
    assert " Non-trainable params: 0 (0.00 B)" in text
    m.layers[0].trainable = False
    out = []
    m.summary(print_fn=out.append)
    assert " Trainable params: 4,225 (16.50 KB)" in out[0] and " Non-trainable params: 704 (2.75 KB)" in out[0]


# -- functional ----------------------------------------------------------------------------------------------------
def test_functional_multi_io_shared_and_nested():
    a, b = fastnn.Input((4,), name="a"), fastnn.Input((4,), name="b")
    shared = layers.Dense(3, activation="relu", name="shared")
    ha, hb = shared(a), shared(b)  # one layer, two calls
    merged = layers.Concatenate()([ha, hb])
    out1 = layers.Dense(1, name="out1")(merged)
    out2 = layers.Dense(2, activation="softmax", name="out2")(layers.Subtract()([ha, hb]))
    model = fastnn.Model(inputs=[a, b], outputs=[out1, out2])
    assert [l.name for l in model.layers][:2] == ["a", "b"]
    assert model.output_names == ["out1", "out2"]
    assert len(model.weights) == 6  # the shared layer counts once
    rng = np.random.default_rng(1)
    xa, xb = rng.standard_normal((8, 4)).astype("float32"), rng.standard_normal((8, 4)).astype("float32")
    p1, p2 = model.predict([xa, xb], verbose=0)
    k, bias = shared.get_weights()
    h1, h2 = np.maximum(xa @ k + bias, 0), np.maximum(xb @ k + bias, 0)
    k1, b1 = model.get_layer("out1").get_weights()
    np.testing.assert_allclose(p1, np.concatenate([h1, h2], 1) @ k1 + b1, rtol=1e-5, atol=1e-6)
    assert p2.shape == (8, 2)
    # dict inputs by input name
    np.testing.assert_allclose(model.predict({"a": xa, "b": xb}, verbose=0)[0], p1, rtol=1e-6)

    # nested: the model as a layer of another functional model, and a Sequential inside
    inner_seq = fastnn.Sequential([layers.Dense(2, name="inner_dense")])
    c, d = fastnn.Input((4,)), fastnn.Input((4,))
    o1, o2 = model([c, d])
    outer = fastnn.Model([c, d], inner_seq(o1 * 2.0))
    y = outer.predict([xa, xb], verbose=0)
    k3, b3 = inner_seq.get_weights()
    np.testing.assert_allclose(y, (p1 * 2.0) @ k3 + b3, rtol=1e-5, atol=1e-6)
    assert len(outer.weights) == 8

    # training updates the shared weights once per step, through both branches
    model.compile(optimizer="sgd", loss=["mse", "sparse_categorical_crossentropy"], loss_weights=[1.0, 0.5],
                  metrics=[["mae"], ["accuracy"]])
    hist = model.fit([xa, xb], [xa[:, :1], np.arange(8) % 2], epochs=2, batch_size=4, verbose=0)
    assert set(hist.history) == {"loss", "out1_loss", "out2_loss", "out1_mae", "out2_accuracy"}
    h = hist.history
    np.testing.assert_allclose(h["loss"][-1], h["out1_loss"][-1] + 0.5 * h["out2_loss"][-1], rtol=1e-4)


def test_functional_errors():
    a = fastnn.Input((4,))
    b = fastnn.Input((3,))
    out = layers.Dense(1)(layers.Concatenate()([a, b]))
    with pytest.raises(ValueError, match="Graph disconnected"):
        fastnn.Model(a, out)
    with pytest.raises(ValueError, match="inputs must be tensors from fastnn.Input"):
        fastnn.Model(np.zeros(3), out)
    model = fastnn.Model([a, b], out)
    with pytest.raises(ValueError, match="expects 2 input"):
        model(np.zeros((2, 4), "float32"))


def test_config_round_trips():
    seq = fastnn.Sequential([fastnn.Input((4,)), layers.Dense(3, activation="relu"), layers.Dropout(0.2),
                             layers.Dense(2)])
    clone = fastnn.Sequential.from_config(seq.get_config())
    assert [type(l) for l in clone.layers] == [type(l) for l in seq.layers]
    clone.set_weights(seq.get_weights())
    x = np.random.default_rng(2).standard_normal((3, 4)).astype("float32")
    np.testing.assert_allclose(clone.predict(x, verbose=0), seq.predict(x, verbose=0), rtol=1e-6)

    a, b = fastnn.Input((4,)), fastnn.Input((4,))
    shared = layers.Dense(3)
    out = layers.Add()([shared(a), shared(b)])
    f = fastnn.Model([a, b], layers.Dense(1)(out))
    g = fastnn.models.Functional.from_config(f.get_config())
    g.set_weights(f.get_weights())
    np.testing.assert_allclose(g.predict([x, 2 * x], verbose=0), f.predict([x, 2 * x], verbose=0), rtol=1e-6)


def test_subclassed_model():
    class MLP(fastnn.Model):
        def __init__(self):
            super().__init__()
            self.d1 = layers.Dense(8, activation="relu")
            self.drop = layers.Dropout(0.5)
            self.d2 = layers.Dense(1)

        def call(self, x, training=False):
            return self.d2(self.drop(self.d1(x), training=training))

    m = MLP()
    x, y = _xy(64)
    m.compile(optimizer="adam", loss="mse")
    h = m.fit(x, y, epochs=3, verbose=0)
    assert len(h.history["loss"]) == 3 and len(m.weights) == 4 and m.layers == [m.d1, m.drop, m.d2]
    assert m.predict(x, verbose=0).shape == (64, 1)


# -- training numbers against NumPy --------------------------------------------------------------------------------
def test_fit_matches_numpy_sgd_with_uneven_last_batch_and_sample_weights():
    x, y = _xy(10, 3)
    sw = np.linspace(0.5, 1.5, 10).astype("float32")
    m = fastnn.Sequential([fastnn.Input((3,)), layers.Dense(1, kernel_initializer="ones")])
    m.compile(optimizer=fastnn.optimizers.SGD(0.1), loss="mse")
    h = m.fit(x, y, batch_size=4, epochs=2, shuffle=False, sample_weight=sw, verbose=0)
    k, b = np.ones((3, 1)), np.zeros(1)
    for epoch in range(2):
        losses, sizes = [], []
        for s in range(0, 10, 4):
            xb, yb, wb = x[s:s + 4].astype("float64"), y[s:s + 4], sw[s:s + 4]
            err = xb @ k + b - yb
            per = (err ** 2).mean(axis=1)
            losses.append((per * wb).sum() / len(xb))  # sum_over_batch_size
            sizes.append(len(xb))
            g = 2 * err * wb[:, None] / len(xb)
            k, b = k - 0.1 * xb.T @ g, b - 0.1 * g.sum(0)
        # the epoch loss is the batch-size-weighted mean of the batch losses
        np.testing.assert_allclose(h.history["loss"][epoch], np.average(losses, weights=sizes), rtol=1e-5)
    np.testing.assert_allclose(m.get_weights()[0], k, rtol=1e-5)
    np.testing.assert_allclose(m.get_weights()[1], b, rtol=1e-5, atol=1e-6)


def test_class_weight_equals_sample_weight():
    x = np.random.default_rng(3).standard_normal((32, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    res = []
    for kw in ({"class_weight": {0: 1.0, 1: 3.0}}, {"sample_weight": np.where(y == 1, 3.0, 1.0)}):
        fastnn.utils.set_random_seed(5)
        m = fastnn.Sequential([fastnn.Input((4,)), layers.Dense(2, activation="softmax")])
        m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        res.append(m.fit(x, y, epochs=2, verbose=0, shuffle=False, **kw).history["loss"])
    np.testing.assert_allclose(res[0], res[1], rtol=1e-6)


def test_validation_split_uses_the_last_samples():
    x, y = _xy(50)
    m = fastnn.Sequential([fastnn.Input((4,)), layers.Dense(1)])
    m.compile(optimizer=fastnn.optimizers.SGD(0.0), loss="mse", metrics=["mae"])
    h = m.fit(x, y, epochs=1, validation_split=0.2, verbose=0)
    ev = m.evaluate(x[40:], y[40:], verbose=0, return_dict=True)
    assert h.history["val_loss"][0] == pytest.approx(ev["loss"], rel=1e-6)
    assert h.history["val_mae"][0] == pytest.approx(ev["mae"], rel=1e-6)
    h2 = m.fit(x, y, epochs=1, validation_data=(x[:10], y[:10]), verbose=0)
    assert h2.history["val_loss"][0] == pytest.approx(m.evaluate(x[:10], y[:10], verbose=0)[0], rel=1e-6)


def test_evaluate_predict_and_batch_methods():
    x, y = _xy(40, out=1)
    m = fastnn.Sequential([fastnn.Input((4,)), layers.Dense(1)])
    m.compile(optimizer="sgd", loss="mse", metrics=["mae", "mse"])
    res = m.evaluate(x, y, verbose=0)
    p = m.predict(x, batch_size=7, verbose=0)
    mse = float(np.mean((p - y) ** 2))
    assert isinstance(res, list) and res[0] == pytest.approx(mse, rel=1e-5)
    assert res[1] == pytest.approx(float(np.mean(np.abs(p - y))), rel=1e-5) and res[2] == pytest.approx(mse, rel=1e-5)
    d = m.evaluate(x, y, verbose=0, return_dict=True)
    assert list(d) == ["loss", "mae", "mse"]
    m2 = fastnn.Sequential([fastnn.Input((4,)), layers.Dense(1)])
    m2.compile(optimizer="sgd", loss="mse")
    assert isinstance(m2.evaluate(x, y, verbose=0), float)
    t1 = m.train_on_batch(x[:8], y[:8], return_dict=True)
    assert set(t1) == {"loss", "mae", "mse"}
    t2 = m.test_on_batch(x[:8], y[:8])
    assert len(t2) == 3
    # Keras 3 resets the metrics at each train_on_batch / test_on_batch call: the figures are that batch's alone,
    # not running means over the calls so far.
    p8 = m.predict(x[8:16], verbose=0)
    t3 = m.test_on_batch(x[8:16], y[8:16], return_dict=True)
    assert t3["mse"] == pytest.approx(float(np.mean((p8 - y[8:16]) ** 2)), rel=1e-5)
    assert t3["mae"] == pytest.approx(float(np.mean(np.abs(p8 - y[8:16]))), rel=1e-5)
    before = m.predict(x[16:24], verbose=0)
    t4 = m.train_on_batch(x[16:24], y[16:24], return_dict=True)
    assert t4["mse"] == pytest.approx(float(np.mean((before - y[16:24]) ** 2)), rel=1e-5)


def test_fit_options_initial_epoch_steps_per_epoch_and_reproducibility():
    x, y = _xy(64)

    def run():
        fastnn.utils.set_random_seed(42)
        m = fastnn.Sequential([fastnn.Input((4,)), layers.Dense(8, activation="relu"), layers.Dropout(0.3),
                               layers.Dense(1)])
        m.compile(optimizer="adam", loss="mse")
        return m, m.fit(x, y, epochs=3, batch_size=16, verbose=0)

    m1, h1 = run()
    m2, h2 = run()
    assert h1.history == h2.history
    for a, b in zip(m1.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(a, b)
    h = m1.fit(x, y, epochs=5, initial_epoch=3, verbose=0)
    assert h.epoch == [3, 4]
    seen = []
    cb = fastnn.callbacks.LambdaCallback(on_batch_end=lambda b, logs: seen.append(b))
    # As Keras: 4 batches, 3 per epoch: the second epoch continues the pass and stops when the data runs out.
    with pytest.warns(UserWarning, match="ran out of data"):
        m1.fit(x, y, epochs=2, steps_per_epoch=3, batch_size=16, verbose=0, callbacks=[cb])
    assert seen == [0, 1, 2, 0]


def test_custom_train_step_distillation():
    x, _ = _xy(64)
    teacher = fastnn.Sequential([fastnn.Input((4,)), layers.Dense(3, activation="softmax")])

    class Distiller(fastnn.Model):
        def __init__(self, student, teacher):
            super().__init__()
            self.student, self.teacher = student, teacher
            self.teacher.trainable = False

        def call(self, x, training=False):
            return self.student(x, training=training)

        def train_step(self, data):
            x, _ = data
            soft = self.teacher(x, training=False)
            with fastnn.GradientTape() as tape:
                pred = self.student(x, training=True)
                loss = fastnn.losses.KLDivergence()(soft, pred)
            grads = tape.gradient(loss, self.student.trainable_weights)
            self.optimizer.apply_gradients(zip(grads, self.student.trainable_weights))
            return {"kl": loss}

    student = fastnn.Sequential([fastnn.Input((4,)), layers.Dense(3, activation="softmax")])
    d = Distiller(student, teacher)
    d.compile(optimizer=fastnn.optimizers.Adam(0.05))
    t_before = teacher.get_weights()
    h = d.fit(x, np.zeros(64), epochs=20, verbose=0)
    assert h.history["kl"][-1] < 0.2 * h.history["kl"][0]
    for a, b in zip(teacher.get_weights(), t_before):
        np.testing.assert_array_equal(a, b)


# -- bad input -----------------------------------------------------------------------------------------------------
def test_training_errors():
    x, y = _xy(10)
    m = fastnn.Sequential([fastnn.Input((4,)), layers.Dense(1)])
    with pytest.raises(RuntimeError, match="You must call `compile\\(\\)` before using the model in `fit\\(\\)`"):
        m.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match="Could not interpret loss identifier: 'mse2'.*mean_squared_error"):
        m.compile(optimizer="sgd", loss="mse2")
    with pytest.raises(ValueError, match="Could not interpret metric identifier: 'acuracy'"):
        m.compile(optimizer="sgd", loss="mse", metrics=["acuracy"])
    with pytest.raises(ValueError, match="Could not interpret optimizer identifier: 'sgdd'"):
        m.compile(optimizer="sgdd", loss="mse")
    m.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="Data cardinality is ambiguous.*x size 10.*y size 9|y size 9.*x size 10"):
        m.fit(x, y[:9], verbose=0)
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 4|expected shape"):
        m.fit(x[:, :3], y, verbose=0)
    with pytest.raises(ValueError, match="batch_size"):
        m.fit(x, y, batch_size=0, verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        m.fit(x, y, validation_split=1.5, verbose=0)


def test_nan_loss_is_reported_and_terminate_on_nan_stops():
    x, y = _xy(64)
    y[5] = np.nan
    m = fastnn.Sequential([fastnn.Input((4,)), layers.Dense(1)])
    m.compile(optimizer="sgd", loss="mse")
    with pytest.warns(RuntimeWarning, match="loss became nan"):
        h = m.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[fastnn.callbacks.TerminateOnNaN()])
    assert len(h.history["loss"]) == 1 and np.isnan(h.history["loss"][0])


def test_frozen_nested_model_is_not_trained():
    base = fastnn.Sequential([fastnn.Input((4,)), layers.Dense(3, activation="relu")], name="base")
    base.trainable = False
    assert not base.layers[0].kernel.trainable
    inp = fastnn.Input((4,))
    model = fastnn.Model(inp, layers.Dense(1, name="head")(base(inp)))
    assert [w.path for w in model.trainable_weights] == ["head/kernel", "head/bias"]
    assert len(model.non_trainable_weights) == 2
    frozen = base.get_weights()
    x, y = _xy(32)
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=2, verbose=0)
    for a, b in zip(base.get_weights(), frozen):
        np.testing.assert_array_equal(a, b)
    out = []
    model.summary(print_fn=out.append)
    assert " Trainable params: 4 (16.00 B)" in out[0] and " Non-trainable params: 15 (60.00 B)" in out[0]
    base.trainable = True
    assert len(model.trainable_weights) == 4


def test_batches_are_views_without_shuffle_and_permutations_with():
    x = np.arange(40, dtype="float32").reshape(10, 4)
    y = np.arange(10, dtype="float32").reshape(10, 1)
    seen = []

    class Spy(fastnn.Model):
        def __init__(self):
            super().__init__()
            self.d = layers.Dense(1)

        def call(self, x):
            return self.d(x)

        def train_step(self, data):
            xb, yb = data[0], data[1]
            seen.append((xb, yb))
            return {}

    m = Spy()
    m.compile(optimizer="sgd", loss="mse")
    m.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    assert [len(b[0]) for b in seen] == [4, 4, 2]
    assert all(np.shares_memory(b[0], x) and np.shares_memory(b[1], y) for b in seen)  # slices, no copies
    np.testing.assert_array_equal(np.concatenate([b[1] for b in seen])[:, 0], np.arange(10))
    seen.clear()
    fastnn.utils.set_random_seed(1)
    m.fit(x, y, batch_size=4, epochs=2, shuffle=True, verbose=0)
    epochs = [np.concatenate([b[1] for b in seen[:3]])[:, 0], np.concatenate([b[1] for b in seen[3:]])[:, 0]]
    for order in epochs:
        assert sorted(order.tolist()) == list(range(10))  # every sample once per epoch
    assert epochs[0].tolist() != epochs[1].tolist() and epochs[0].tolist() != list(range(10))
    for xb, yb in seen:  # x and y stay paired
        np.testing.assert_array_equal(xb[:, 0] / 4, yb[:, 0])


def test_subclassed_model_build_creates_weights():
    class Net(fastnn.Model):
        def __init__(self):
            super().__init__()
            self.hidden = [layers.Dense(5, activation="relu"), layers.Dense(3)]

        def call(self, x):
            for layer in self.hidden:
                x = layer(x)
            return x

    net = Net()
    net.build((None, 4))
    assert net.built and net.count_params() == 4 * 5 + 5 + 5 * 3 + 3
    out = []
    net.summary(print_fn=out.append)
    assert "│ dense_1 (Dense)                 │ (None, 3)" in out[0]


def test_weighted_metrics_use_sample_weight_and_metrics_do_not():
    x, y = _xy(16)
    sw = np.zeros(16, "float32")
    sw[:8] = 1.0
    m = fastnn.Sequential([fastnn.Input((4,)), layers.Dense(1)])
    m.compile(optimizer=fastnn.optimizers.SGD(0.0), loss="mse", metrics=["mae"], weighted_metrics=["mae"])
    logs = m.evaluate(x, y, sample_weight=sw, verbose=0, return_dict=True)
    err = np.abs(m.predict(x, verbose=0) - y)[:, 0]
    assert logs["mae"] == pytest.approx(err.mean(), rel=1e-5)
    assert logs["weighted_mae"] == pytest.approx(err[:8].mean(), rel=1e-5)
    m.compile(optimizer=fastnn.optimizers.SGD(0.0), loss="mse", weighted_metrics=["mae"])
    logs = m.evaluate(x, y, sample_weight=sw, verbose=0, return_dict=True)
    assert sorted(logs) == ["loss", "mae"] and logs["mae"] == pytest.approx(err[:8].mean(), rel=1e-5)
