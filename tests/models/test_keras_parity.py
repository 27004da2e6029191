"""Behaviour that must match Keras 3.15 exactly, with Keras's numbers as literals (measured with Keras 3.15.1 on
TensorFlow 2.21; the live cross-checks are in tests/e2e/test_keras_models.py)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import fastnn
from fastnn import layers as L


# -- 1. layer order of functional models --------------------------------------------------------------------------
def test_functional_layers_are_ordered_by_depth_as_in_keras():
    x = fastnn.Input((4,), name="x")
    a = L.Dense(3, name="a")(x)
    b = L.Dense(3, name="b2")(L.Dense(5, name="b1")(x))
    model = fastnn.Model(x, L.Add(name="add")([a, b]))
    assert [l.name for l in model.layers] == ["x", "b1", "a", "b2", "add"]  # Keras 3.15
    assert [w.shape for w in model.get_weights()] == [(4, 5), (5,), (4, 3), (3,), (5, 3), (3,)]
    assert [c["name"] for c in model.get_config()["layers"]] == ["x", "b1", "a", "b2", "add"]


def test_layer_order_with_shared_nested_multiple_and_unused_inputs():
    a, b, u = fastnn.Input((4,), name="a"), fastnn.Input((4,), name="b"), fastnn.Input((4,), name="u")
    shared = L.Dense(4, name="shared")
    sa = shared(a)
    h = L.Dense(4, name="h")(b)
    sh = shared(h)
    inner_in = fastnn.Input((4,), name="inner_in")
    inner = fastnn.Model(inner_in, L.Dense(4, name="inner_d")(inner_in), name="inner")
    n = inner(sa)
    o1 = L.Dense(2, name="o1")(L.Concatenate(name="cat")([n, sh]))
    o2 = L.Add(name="o2")([sa, h])
    model = fastnn.Model([u, a, b], [o1, o2])
    # Keras 3.15: the shared layer takes its deepest node's depth; the unused input leads depth 0.
    assert [l.name for l in model.layers] == ["a", "b", "shared", "h", "inner", "cat", "u", "o1", "o2"]
    x = [np.ones((2, 4), "float32")] * 3
    p1, p2 = model.predict(x, verbose=0)
    assert p1.shape == (2, 2) and p2.shape == (2, 4)


# -- 2. class_weight ------------------------------------------------------------------------------------------------
def _cw_model():
    w = [np.array([[0.5, -0.2, 0.1], [0.3, 0.8, -0.6], [-0.4, 0.2, 0.9]], "float32"),
         np.array([0.1, 0.0, -0.1], "float32")]
    m = fastnn.Sequential([fastnn.Input((3,)), L.Dense(3, activation="softmax")])
    m.set_weights(w)
    m.compile(optimizer=fastnn.optimizers.SGD(0.0), loss="sparse_categorical_crossentropy",
              weighted_metrics=["accuracy"])
    return m


def _cw_data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((20, 3)).astype("float32"), rng.integers(0, 3, 20), rng


def test_class_weight_missing_class_weighs_one_and_validation_split_is_unweighted():
    x, y, _ = _cw_data()
    h = _cw_model().fit(x, y, batch_size=8, class_weight={0: 4.0, 2: 0.5}, validation_split=0.25, shuffle=False,
                        verbose=0).history
    keras = {"accuracy": 0.06383, "loss": 2.589417, "val_accuracy": 0.6, "val_loss": 0.796485}
    for k, v in keras.items():
        np.testing.assert_allclose(h[k][0], v, rtol=2e-5, err_msg=k)


def test_class_weight_with_weighted_validation_data():
    x, y, rng = _cw_data()
    sw = rng.uniform(0.5, 2.0, 5).astype("float32")
    h = _cw_model().fit(x[:15], y[:15], batch_size=8, class_weight={1: 3.0}, validation_data=(x[15:], y[15:], sw),
                        shuffle=False, verbose=0).history
    keras = {"accuracy": 0.173913, "loss": 2.382648, "val_accuracy": 0.660762, "val_loss": 1.184099}
    for k, v in keras.items():
        np.testing.assert_allclose(h[k][0], v, rtol=2e-5, err_msg=k)


def test_class_weight_and_sample_weight_together_raise_as_in_keras():
    x, y, _ = _cw_data()
    m = _cw_model()
    with pytest.raises(ValueError, match="class_weight` and `sample_weight"):
        m.fit(x, y, class_weight={0: 2.0}, sample_weight=np.ones(20), verbose=0)
    with pytest.raises(ValueError, match="`sample_weight` and `class_weight` cannot be specified"):
        m.train_on_batch(x, y, class_weight={0: 2.0}, sample_weight=np.ones(20))


# -- 3. log names and values ----------------------------------------------------------------------------------------
def _logs_data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, 3)).astype("float32")
    y = rng.uniform(size=(10, 1)).astype("float32")
    return x, y, rng.uniform(0.5, 2, 10).astype("float32"), rng


def _single_output():
    m = fastnn.Sequential([fastnn.Input((3,)), L.Dense(1, activation="sigmoid")])
    m.set_weights([np.array([[0.3], [-0.5], [0.2]], "float32"), np.array([0.1], "float32")])
    return m


def test_metric_named_in_metrics_and_weighted_metrics_logs_and_list_as_keras():
    x, y, sw, _ = _logs_data()
    m = _single_output()
    m.compile("sgd", "mse", metrics=["mae", "mse"], weighted_metrics=["mae", "mse"])
    logs = m.evaluate(x, y, sample_weight=sw, verbose=0, return_dict=True)
    assert list(logs) == ["loss", "mae", "mse", "weighted_mae", "weighted_mse"]
    # Keras 3.15 lists a value once per metric object named "mae" / "mse": 7 values for 5 keys.
    keras_list = [0.0584863, 0.2090990, 0.0520083, 0.2090990, 0.0520083, 0.2027839, 0.0475044]
    np.testing.assert_allclose(m.evaluate(x, y, sample_weight=sw, verbose=0), keras_list, rtol=2e-5)
    assert m.metrics_names == ["loss", "compile_metrics"]


def test_repeated_metric_names_get_keras_suffixes():
    x, y, sw, _ = _logs_data()
    m = _single_output()
    m.compile("sgd", "mse", metrics=["mae", "mae", fastnn.metrics.MeanAbsoluteError(),
                                     fastnn.metrics.MeanAbsoluteError(name="mae")], weighted_metrics=["mae", "mae"])
    logs = m.evaluate(x, y, sample_weight=sw, verbose=0, return_dict=True)
    assert list(logs) == ["loss", "mae", "mae_1", "mae_2", "mean_absolute_error", "weighted_mae", "weighted_mae_1"]
    assert len(m.evaluate(x, y, sample_weight=sw, verbose=0)) == 11  # Keras 3.15: 8 x mae, 2 x weighted_mae


def test_metric_objects_with_unique_names_are_not_prefixed():
    # Once Metric() names are made unique (auc, auc_1) the weighted AUC keeps its own name: auc_1, as in Keras.
    x, y, sw, _ = _logs_data()
    m = _single_output()
    m.compile("sgd", "mse", metrics=[fastnn.metrics.AUC(name="auc")], weighted_metrics=[fastnn.metrics.AUC(name="auc_1")])
    logs = m.evaluate(x, (y > 0.5).astype("float32"), sample_weight=sw, verbose=0, return_dict=True)
    assert list(logs) == ["auc", "auc_1", "loss"]


def _two_outputs():
    inp = fastnn.Input((3,), name="inp")
    model = fastnn.Model(inp, [L.Dense(1, name="a")(inp), L.Dense(2, name="b", activation="softmax")(inp)])
    model.set_weights([np.array([[0.3], [-0.5], [0.2]], "float32"), np.array([0.1], "float32"),
                       np.ones((3, 2), "float32") * np.array([0.2, -0.1], "float32"), np.zeros(2, "float32")])
    return model


@pytest.mark.parametrize("run_eagerly, a_loss, b_loss", [(False, 0.3543, 0.6526), (True, 0.3607, 0.6218)])
def test_multi_output_per_output_losses_with_partial_last_batch_as_keras(run_eagerly, a_loss, b_loss):
    x, y, _, rng = _logs_data()
    yc = rng.integers(0, 2, 10)
    m = _two_outputs()
    m.compile(fastnn.optimizers.SGD(0.0), ["mse", "sparse_categorical_crossentropy"], metrics=[["mae"], ["accuracy"]],
              weighted_metrics=[["mae"], []], run_eagerly=run_eagerly)
    logs = m.evaluate(x, [y, yc], batch_size=4, verbose=0, return_dict=True)
    # Keras 3.15 (TensorFlow): the plain mean of the batch values in its traced step, size-weighted when eager.
    keras = {"a_loss": a_loss, "a_mae": 0.4715, "a_weighted_mae": 0.4715, "b_accuracy": 0.7, "b_loss": b_loss,
             "loss": 0.9825}
    assert list(logs) == list(keras)
    np.testing.assert_allclose([logs[k] for k in keras], list(keras.values()), atol=6e-5)
    np.testing.assert_allclose(m.evaluate(x, [y, yc], batch_size=4, verbose=0),
                               [0.9825, a_loss, b_loss, 0.4715, 0.4715, 0.7], atol=6e-5)
    assert m.metrics_names == ["loss", "compile_metrics", "a_loss", "b_loss"]
    h = m.fit(x, [y, yc], batch_size=4, verbose=0, shuffle=False).history
    np.testing.assert_allclose(h["a_loss"][0], a_loss, atol=6e-5)


# -- 5. compile options -------------------------------------------------------------------------------------------
def _recording_callback():
    class Recorder(fastnn.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.events = []

        def on_train_batch_begin(self, batch, logs=None):
            self.events.append(("tb", batch))

        def on_train_batch_end(self, batch, logs=None):
            self.events.append(("te", batch, round(float(logs["loss"]), 5)))

        def on_test_batch_begin(self, batch, logs=None):
            self.events.append(("vb", batch))

        def on_test_batch_end(self, batch, logs=None):
            self.events.append(("ve", batch, round(float(logs["loss"]), 5)))

        def on_predict_batch_begin(self, batch, logs=None):
            self.events.append(("pb", batch))

        def on_predict_batch_end(self, batch, logs=None):
            self.events.append(("pe", batch, np.asarray(logs["outputs"]).shape))

    return Recorder()


def test_steps_per_execution_calls_batch_callbacks_per_execution_as_keras():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((10, 3)).astype("float32"), rng.standard_normal((10, 1)).astype("float32")
    m = fastnn.Sequential([fastnn.Input((3,)), L.Dense(1)])
    m.set_weights([np.array([[0.3], [-0.5], [0.2]], "float32"), np.array([0.1], "float32")])
    m.compile(fastnn.optimizers.SGD(0.1), "mse", steps_per_execution=3)
    r = _recording_callback()
    h = m.fit(x, y, batch_size=2, epochs=1, verbose=0, shuffle=False, callbacks=[r], validation_data=(x[:5], y[:5]))
    # Keras 3.15: 5 batches in executions of 3: batch indices (0, 2), (3, 5); the logs of each execution's last batch.
    assert r.events == [("tb", 0), ("te", 2, 0.55651), ("tb", 3), ("te", 5, 0.5919), ("vb", 0), ("ve", 2, 0.44816)]
    np.testing.assert_allclose(h.history["loss"], [0.5919], rtol=1e-5)
    r.events.clear()
    m.predict(x, batch_size=3, verbose=0, callbacks=[r])
    assert r.events == [("pb", 0), ("pe", 2, (9, 1)), ("pb", 3), ("pe", 5, (1, 1))]  # outputs of the execution


def test_compile_options_are_validated_and_jit_compile_resolves():
    m = fastnn.Sequential([fastnn.Input((3,)), L.Dense(1)])
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="steps_per_execution"):
            m.compile("sgd", "mse", steps_per_execution=bad)
    with pytest.raises(TypeError, match="run_eagerly"):
        m.compile("sgd", "mse", run_eagerly="yes")
    with pytest.raises(TypeError, match="auto_scale_loss"):
        m.compile("sgd", "mse", auto_scale_loss=None)
    with pytest.raises(ValueError, match="jit_compile"):
        m.compile("sgd", "mse", jit_compile="xla")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the compiled step exists: no warning any more
        m.compile("sgd", "mse", jit_compile=True)
    assert m.jit_compile is True
    with pytest.warns(UserWarning, match="`jit_compile` cannot also be True"):
        m.compile("sgd", "mse", jit_compile=True, run_eagerly=True)
    assert m.jit_compile is False and m.run_eagerly is True
    m.compile("sgd", "mse", run_eagerly=True)  # "auto" with run_eagerly: eager, silently (Keras's resolution)
    assert m.jit_compile is False
    m.compile("sgd", "mse", steps_per_execution=4)
    assert m.jit_compile is True and m.steps_per_execution == 4  # "auto": the compiled step
    assert m.get_compile_config()["steps_per_execution"] == 4 and m.get_compile_config()["jit_compile"] is True
    m.compile("sgd", "mse", jit_compile=False)
    assert m.jit_compile is False and m.get_compile_config()["jit_compile"] is False


# -- 4. get_config() as Keras 3.15 writes it ----------------------------------------------------------------------
_POLICY = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None}


def test_input_layer_and_dense_configs_are_keras_key_for_key():
    assert L.InputLayer(shape=(3,), name="inp").get_config() == {
        "batch_shape": (None, 3), "dtype": "float32", "sparse": False, "ragged": False, "name": "inp",
        "optional": False}
    assert L.Dense(3, name="d", activity_regularizer="l2").get_config() == {
        "name": "d", "trainable": True, "dtype": _POLICY,
        "activity_regularizer": {"module": "keras.regularizers", "class_name": "L2", "config": {"l2": 0.01},
                                 "registered_name": None},
        "units": 3, "activation": "linear", "use_bias": True,
        "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform",
                               "config": {"seed": None, "input_axes": None, "output_axes": None},
                               "registered_name": None},
        "bias_initializer": {"module": "keras.initializers", "class_name": "Zeros", "config": {},
                             "registered_name": None},
        "kernel_regularizer": None, "bias_regularizer": None, "kernel_constraint": None, "bias_constraint": None,
        "quantization_config": None}


def test_sequential_config_has_no_batch_input_shape_and_has_build_input_shape():
    model = fastnn.Sequential([L.Dense(3, input_shape=(4,), name="s1"), L.Dense(2, name="s2")], name="seq")
    config = model.get_config()
    assert set(config) == {"name", "trainable", "dtype", "layers", "build_input_shape"}
    assert config["dtype"] == _POLICY and config["build_input_shape"] == (None, 4)
    first = config["layers"][1]
    assert first["module"] == "keras.layers" and first["registered_name"] is None
    assert first["build_config"] == {"input_shape": (None, 4)}
    assert "batch_input_shape" not in first["config"]
    assert config["layers"][0]["class_name"] == "InputLayer" and "build_config" not in config["layers"][0]
    outer = fastnn.Sequential([fastnn.Input((4,)), model], name="outer")
    nested = outer.get_config()["layers"][1]
    assert (nested["module"], nested["class_name"], nested["compile_config"]) == ("keras", "Sequential", {})
    assert nested["config"]["build_input_shape"] == (None, 4)
    clone = fastnn.Sequential.from_config(outer.get_config())
    assert clone.get_config() == outer.get_config()


def test_functional_config_tensors_and_nested_model_node_indices_as_keras():
    x = fastnn.Input((4,), name="fx")
    inner_in = fastnn.Input((4,), name="ii")
    inner = fastnn.Model(inner_in, L.Dense(4, name="idd")(inner_in), name="inner")
    model = fastnn.Model(x, inner(x), name="outer_f")
    config = model.get_config()
    entry = config["layers"][1]
    assert (entry["module"], entry["class_name"], entry["registered_name"]) == \
        ("keras.src.models.functional", "Functional", "Functional")
    assert entry["build_config"] == {"input_shape": None} and entry["compile_config"] == {}
    # Keras: the call's tensor is {"class_name": "__keras_tensor__", ...}; `mask` is recorded for calls that take one
    assert entry["inbound_nodes"] == [{"args": ({"class_name": "__keras_tensor__", "config": {
        "shape": (None, 4), "dtype": "float32", "keras_history": ["fx", 0, 0]}},), "kwargs": {"mask": None}}]
    assert config["output_layers"] == ["inner", 1, 0]  # Keras counts the nested model's own node
    clone = fastnn.Model.from_config(config)
    assert clone.get_config() == config
    clone.set_weights(model.get_weights())
    v = np.ones((2, 4), "float32")
    np.testing.assert_allclose(clone.predict(v, verbose=0), model.predict(v, verbose=0))


def test_dtype_policy_dicts_are_read_back():
    layer = L.Dense.from_config(L.Dense(2, dtype="float64", name="d64").get_config())
    assert layer.dtype == "float64"
    with pytest.raises(ValueError, match="DTypePolicy"):
        L.Dense(2, dtype={"class_name": "DTypePolicyMap", "config": {}})


def test_input_tensor_becomes_the_graph_input_as_keras():
    t = fastnn.Input((3,), name="first")
    layer = L.InputLayer(input_tensor=t, name="second")
    assert layer.output_tensor is t and t._history[0] is layer and layer.batch_shape == (None, 3)
    model = fastnn.Model(fastnn.Input(tensor=t, name="third"), L.Dense(2)(t))
    assert model.layers[0].name == "third"
    with pytest.raises(ValueError, match="incompatible `shape`"):
        L.InputLayer(shape=(4,), input_tensor=t)
    with pytest.raises(ValueError, match="must be a KerasTensor"):
        fastnn.Input(tensor=np.ones((2, 3)))
    for kwargs, match in (({"ragged": True}, "ragged"), ({"optional": True}, "optional"),
                          ({"quantization_config": {"mode": "int8"}}, "quantization_config")):
        with pytest.raises(ValueError, match=match):
            (L.Dense(2, **kwargs) if "quantization_config" in kwargs else L.InputLayer(shape=(2,), **kwargs))


# -- 6. summary() as Keras 3.15 prints it (through rich, 80-column terminal) ------------------------------------
_BRANCH_KERAS = """\
Model: "branch"
┏━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━┓
┃ Layer (type)        ┃ Output Shape      ┃    Param # ┃ Connected to      ┃
┡━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━┩
│ x (InputLayer)      │ (None, 4)         │          0 │ -                 │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ a (Dense)           │ (None, 3)         │         15 │ x[0][0]           │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ b (Dense)           │ (None, 3)         │         15 │ x[0][0]           │
├─────────────────────┼───────────────────┼────────────┼───────────────────┤
│ add (Add)           │ (None, 3)         │          0 │ a[0][0], b[0][0]  │
└─────────────────────┴───────────────────┴────────────┴───────────────────┘
 Total params: 30 (120.00 B)
 Trainable params: 30 (120.00 B)
 Non-trainable params: 0 (0.00 B)"""

_NESTED_KERAS = """\
Model: "outer"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━┳━━━━━━━┓
┃ Layer (type)                ┃ Output Shape          ┃    Param # ┃ Trai… ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━╇━━━━━━━┩
│ inner (Sequential)          │ (None, 2)             │         23 │   Y   │
├─────────────────────────────┼───────────────────────┼────────────┼───────┤
│    └ i1 (Dense)             │ (None, 3)             │         15 │   Y   │
├─────────────────────────────┼───────────────────────┼────────────┼───────┤
│    └ i2 (Dense)             │ (None, 2)             │          8 │   Y   │
├─────────────────────────────┼───────────────────────┼────────────┼───────┤
│ o (Dense)                   │ (None, 1)             │          3 │   N   │
└─────────────────────────────┴───────────────────────┴────────────┴───────┘
 Total params: 26 (104.00 B)
 Trainable params: 23 (92.00 B)
 Non-trainable params: 3 (12.00 B)"""


def _summary_text(model, **kwargs):
    out = []
    model.summary(print_fn=out.append, **kwargs)
    return "\n".join(out)


def test_summary_of_branching_functional_model_as_keras(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    x = fastnn.Input((4,), name="x")
    model = fastnn.Model(x, L.Add(name="add")([L.Dense(3, name="a")(x), L.Dense(3, name="b")(x)]), name="branch")
    assert _summary_text(model) == _BRANCH_KERAS
    trainable = _summary_text(model, show_trainable=True).splitlines()
    assert trainable[2] == "┃ Layer (type)      ┃ Output Shape    ┃   Param # ┃ Connected to   ┃ Trai… ┃"
    assert trainable[10:12] == ["│ add (Add)         │ (None, 3)       │         0 │ a[0][0],       │   -   │",
                                "│                   │                 │           │ b[0][0]        │       │"]
    chain = fastnn.Model(x, L.Dense(2, name="c2")(L.Dense(3, name="c1")(x)), name="chain")
    assert "Connected to" not in _summary_text(chain)  # Keras prints a chain as a Sequential model


def test_summary_expand_nested_show_trainable_layer_range_as_keras(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    inner = fastnn.Sequential([fastnn.Input((4,)), L.Dense(3, name="i1"), L.Dense(2, name="i2")], name="inner")
    outer = fastnn.Sequential([fastnn.Input((4,)), inner, L.Dense(1, name="o")], name="outer")
    outer.layers[-1].trainable = False
    assert _summary_text(outer, expand_nested=True, show_trainable=True) == _NESTED_KERAS
    assert "i1" not in _summary_text(outer, layer_range=["inner", "o"])
    assert "inner" not in _summary_text(outer, layer_range=["o", "o"])
    with pytest.raises(ValueError, match="do not match the layer names"):
        outer.summary(layer_range=["nope", "o"])


def test_summary_lists_optimizer_params_once_built_and_counts_them_in_the_total(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    model = fastnn.Sequential([fastnn.Input((4,)), L.Dense(3, name="d1"), L.Dense(2, name="d2")], name="seqsum")
    model.compile(fastnn.optimizers.Adam(), "mse")
    assert "Optimizer params" not in _summary_text(model)  # Keras: not before the optimizer is built
    model.fit(np.ones((4, 4), "float32"), np.ones((4, 2), "float32"), verbose=0)
    variables = model.optimizer.variables
    n = sum(int(np.prod(v.shape)) for v in variables)
    n_bytes = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in variables)
    lines = _summary_text(model).splitlines()
    assert lines[-1] == f" Optimizer params: {n:,} ({n_bytes:.2f} B)"
    assert lines[-4] == f" Total params: {23 + n:,} ({92 + n_bytes:.2f} B)"
    assert n >= 46  # Adam's m and v for 23 weights, plus its counters (Keras: iterations and learning_rate)


# -- 5. autocast ----------------------------------------------------------------------------------------------------
def test_autocast_false_keeps_float64_inputs_as_keras():
    x = np.linspace(-1, 1, 6).reshape(2, 3)  # float64
    # Keras 3.15: autocast=True casts to the layer's float32; autocast=False keeps float64 (Dense promotes).
    for autocast, want in ((True, "float32"), (False, "float64")):
        dense = L.Dense(2, kernel_initializer="ones", autocast=autocast)
        assert dense(x).dtype == want
        assert L.Activation("relu", autocast=autocast)(x).dtype == want
        assert L.Add(autocast=autocast)([x, x]).dtype == want
    dense = L.Dense(2, kernel_initializer="ones", autocast=False)
    with fastnn.GradientTape() as tape:
        y = fastnn.ops.sum(dense(x))
    grads = tape.gradient(y, dense.trainable_weights)
    assert [g.dtype for g in grads] == ["float32", "float32"]
    np.testing.assert_allclose(grads[0], np.tile(x.sum(0)[:, None], (1, 2)), rtol=1e-6)
    assert L.Dense(2)(np.ones((1, 3), "int64")).dtype == "float32"
    with pytest.raises(TypeError, match="autocast"):
        L.Dense(2, autocast="no")
    with pytest.raises(TypeError, match="input_length"):
        L.Dense(2, input_length=3)


# -- 7. callbacks -------------------------------------------------------------------------------------------------
def test_callback_hooks_get_dicts_and_batch_aliases_as_keras():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 3)).astype("float32"), rng.standard_normal((8, 1)).astype("float32")
    m = fastnn.Sequential([fastnn.Input((3,)), L.Dense(1)])
    m.compile("sgd", "mse")
    seen = []

    class Both(fastnn.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen.append(("train_begin", logs))

        def on_train_batch_end(self, batch, logs=None):
            seen.append(("train_batch_end", batch))

        def on_batch_end(self, batch, logs=None):  # Keras: not called when on_train_batch_end is overridden
            seen.append(("batch_end", batch))

    class AliasOnly(fastnn.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append(("alias", batch, sorted(logs)))

    m.fit(x, y, batch_size=4, verbose=0, callbacks=[Both(), AliasOnly(),
                                                     fastnn.callbacks.LambdaCallback(
                                                         on_train_batch_begin=lambda b, logs: seen.append(("lb", b)))])
    assert seen == [("train_begin", {}), ("lb", 0), ("train_batch_end", 0), ("alias", 0, ["loss"]), ("lb", 1),
                    ("train_batch_end", 1), ("alias", 1, ["loss"])]


def test_validation_freq_list_as_keras():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 3)).astype("float32"), rng.standard_normal((8, 1)).astype("float32")
    m = fastnn.Sequential([fastnn.Input((3,)), L.Dense(1)])
    m.compile("sgd", "mse")
    h = m.fit(x, y, epochs=4, verbose=0, validation_data=(x, y), validation_freq=[1, 3])
    assert len(h.history["loss"]) == 4 and len(h.history["val_loss"]) == 2
    with pytest.raises(ValueError, match="validation_freq"):
        m.fit(x, y, epochs=1, verbose=0, validation_data=(x, y), validation_freq="2")


def test_evaluate_and_predict_validate_verbose():
    m = fastnn.Sequential([fastnn.Input((3,)), L.Dense(1)])
    m.compile("sgd", "mse")
    x = np.ones((2, 3), "float32")
    with pytest.raises(ValueError, match="evaluate: verbose"):
        m.evaluate(x, np.ones((2, 1), "float32"), verbose=3)
    with pytest.raises(ValueError, match="predict: verbose"):
        m.predict(x, verbose="loud")


def test_layer_entries_build_config_and_recorded_training_as_keras():
    x = fastnn.Input((4,), name="zx")
    h = x
    for layer in [L.Dense(4, name="zd"), L.Activation("relu", name="zact"), L.Dropout(0.5, name="zdrop"),
                  L.Identity(name="zid"), L.Reshape((2, 2), name="zresh"), L.Permute((2, 1), name="zperm"),
                  L.Flatten(name="zflat")]:
        h = layer(h)
    entries = {e["name"]: e for e in fastnn.Model(x, h).get_config()["layers"]}
    # Keras 3.15: layers built at construction write no build_config; Dropout's call records training=False.
    assert {n for n, e in entries.items() if "build_config" in e} == {"zd", "zperm", "zflat"}
    assert entries["zdrop"]["inbound_nodes"][0]["kwargs"] == {"training": False}
    assert entries["zd"]["inbound_nodes"][0]["kwargs"] == {}


def test_recorded_training_false_does_not_switch_dropout_off_in_fit():
    x = fastnn.Input((50,))
    model = fastnn.Model(x, L.Dropout(0.5)(x))
    model.compile("sgd", "mse")
    ones = np.ones((4, 50), "float32")
    assert np.array_equal(model.predict(ones, verbose=0), ones)
    with fastnn.GradientTape():
        out = model(ones, training=True).numpy()
    assert (out == 0).any() and np.allclose(out[out != 0], 2.0)


# -- subclassed models ----------------------------------------------------------------------------------------------
class _Subclassed(fastnn.Model):
    def __init__(self):
        super().__init__()
        self.dense = L.Dense(1, kernel_initializer="ones")
        self.tracker = fastnn.metrics.Mean(name="t")
        self._private = fastnn.metrics.Mean(name="p")

    def call(self, x):
        return self.dense(x)

    def train_step(self, data):
        super().train_step(data)
        self.tracker.update_state(3.0)
        return self.get_metrics_result()


def test_unbuilt_subclassed_model_updates_on_its_first_step_as_keras():
    m = _Subclassed()
    m.compile("sgd", "mse")
    h = m.fit(np.ones((4, 3), "float32"), np.ones((4, 1), "float32"), epochs=2, verbose=0)
    np.testing.assert_allclose(h.history["loss"], [4.0, 3.3855996], rtol=1e-6)  # Keras 3.15


def test_metric_attributes_join_model_metrics_as_keras():
    m = _Subclassed()
    m.compile("sgd", "mse", metrics=["mae"])
    assert m.metrics_names == ["loss", "compile_metrics", "t", "p"]  # Keras 3.15
    h = m.fit(np.ones((4, 3), "float32"), np.ones((4, 1), "float32"), epochs=2, verbose=0)
    assert sorted(h.history) == ["loss", "mae", "p", "t"] and h.history["t"] == [3.0, 3.0]  # reset every epoch


def test_callback_arguments_are_not_silently_ignored():
    with pytest.raises(ValueError, match="count_mode"):
        fastnn.callbacks.ProgbarLogger(count_mode="samples")
    with pytest.warns(UserWarning, match="epsilon"):
        fastnn.callbacks.ReduceLROnPlateau(epsilon=1e-3)


def test_progress_bar_ends_at_the_step_count_with_steps_per_execution(capsys):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((10, 3)).astype("float32"), rng.standard_normal((10, 1)).astype("float32")
    m = fastnn.Sequential([fastnn.Input((3,)), L.Dense(1)])
    m.compile("sgd", "mse", steps_per_execution=3)
    capsys.readouterr()
    m.fit(x, y, batch_size=2, verbose=2)
    m.evaluate(x, y, batch_size=2, verbose=2)
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(" ")[0] for line in lines] == ["5/5", "5/5"]  # Keras 3.15; was 6/5


def test_metrics_specs_of_multi_output_models_as_keras():
    inp = fastnn.Input((3,))
    m = fastnn.Model(inp, [L.Dense(1, name="a")(inp), L.Dense(1, name="b")(inp)])
    x, ys = np.ones((4, 3), "float32"), [np.ones((4, 1), "float32")] * 2
    # Keras 3.15: a list with one entry per output; a dict of output names; anything else is an error.
    for spec, keys in ((["mae", "mse"], ["a_loss", "a_mae", "b_loss", "b_mse", "loss"]),
                       ([["mae", "mse"], None], ["a_loss", "a_mae", "a_mse", "b_loss", "loss"]),
                       ({"b": ["mae"]}, ["a_loss", "b_loss", "b_mae", "loss"])):
        m.compile("sgd", "mse", metrics=spec)
        assert list(m.evaluate(x, ys, verbose=0, return_dict=True)) == keys
    for spec in (["mae"], ["mae", "mse", "mape"], {"c": "mae"}):
        m.compile("sgd", "mse", metrics=spec)
        with pytest.raises(ValueError, match="Invalid `metrics`"):
            m.evaluate(x, ys, verbose=0)
    with pytest.raises(ValueError, match="Expected `weighted_metrics` argument to be a list"):
        m.compile("sgd", "mse", weighted_metrics="mae")


def test_loss_specs_of_multi_output_models_as_keras():
    def model():
        inp = fastnn.Input((3,))
        return fastnn.Model(inp, [L.Dense(1, name="a", kernel_initializer="ones")(inp),
                                  L.Dense(1, name="b", kernel_initializer="ones")(inp)])

    x, ys = np.ones((4, 3), "float32"), [np.zeros((4, 1), "float32")] * 2
    m = model()
    m.compile("sgd", ["mse", None])
    assert m.evaluate(x, ys, verbose=0, return_dict=True) == {"loss": 9.0}  # Keras: no a_loss for a single loss
    with pytest.raises(ValueError, match=r"Expected keys \['a', 'b'\] in loss dict"):
        m.compile("sgd", {"a": "mse"})
        m.evaluate(x, ys, verbose=0)
    with pytest.raises(ValueError, match="no weight for the output"):
        m.compile("sgd", {"a": "mse", "b": "mae"}, loss_weights={"a": 2.0})
        m.evaluate(x, ys, verbose=0)
    with pytest.raises(TypeError, match="loss_weights"):
        m.compile("sgd", ["mse", "mae"], loss_weights=0.5)
        m.evaluate(x, ys, verbose=0)


# -- operators on symbolic tensors ---------------------------------------------------------------------------------
def test_symbolic_operators_are_keras_operations_not_layers():
    x, y = fastnn.Input((3,), name="x"), fastnn.Input((3,), name="y")
    h = L.Dense(3, name="d")(x)
    model = fastnn.Model([x, y], [3 + h * y, 2.0 - x, -x], name="ops")
    assert [l.name for l in model.layers] == ["x", "d", "y"]  # Keras 3.15: operations are not layers
    ops = [o for o in model.operations if o.name not in ("x", "y", "d")]
    assert [(type(o).__name__, o.name.split("_")[0]) for o in ops] == [
        ("Multiply", "multiply"), ("Add", "add"), ("Subtract", "subtract"), ("Negative", "negative")]
    entry = next(e for e in model.get_config()["layers"] if e["class_name"] == "Add")
    assert (entry["module"], entry["registered_name"], entry["config"]) == ("keras.src.ops.numpy", "Add",
                                                                            {"name": entry["name"]})
    assert entry["inbound_nodes"][0]["args"][0] == 3  # Keras's order: 3 + t is Add(3, t)
    xs = [np.ones((2, 3), "float32"), np.full((2, 3), 2.0, "float32")]
    out = model.predict(xs, verbose=0)
    assert [o.dtype for o in out] == ["float32"] * 3
    clone = fastnn.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    for a, b in zip(clone.predict(xs, verbose=0), out):
        np.testing.assert_allclose(a, b)


def test_vector_metric_results_stay_arrays_in_the_logs():
    class PerClass(fastnn.metrics.MeanAbsoluteError):
        def result(self):
            return np.array([super().result()], "float32")  # shape (1,), like F1Score on one class

    m = fastnn.Sequential([fastnn.Input((3,)), L.Dense(1)])
    m.compile("sgd", "mse", metrics=[PerClass(name="per_class")])
    x, y = np.ones((4, 3), "float32"), np.ones((4, 1), "float32")
    logs = m.evaluate(x, y, verbose=0, return_dict=True)
    assert isinstance(logs["loss"], float) and logs["per_class"].shape == (1,)  # Keras: array([...]) of shape (1,)


def test_models_convert_inputs_to_their_input_dtype_as_keras():
    # Keras 3.15: a Functional model converts each input to the dtype of its Input (it does not cast to the model's
    # own float32 policy), and a Sequential model to its InputLayer's dtype; so a float64 model computes on the
    # float64 data, not on a float32 rounding of it. (Found by the float64 parity runs of the article's models.)
    x = np.array([[1 / 3, 2 / 3, 1e-9]])  # not representable in float32
    weights = [np.array([[1.0], [1.0], [1.0]]), np.zeros(1)]
    inp = fastnn.Input((3,), dtype="float64")
    functional = fastnn.Model(inp, L.Dense(1, dtype="float64")(inp))
    sequential = fastnn.Sequential([fastnn.Input((3,), dtype="float64"), L.Dense(1, dtype="float64")])
    for model in (functional, sequential):
        model.set_weights(weights)
        y = model(x)
        assert y.dtype == "float64"
        np.testing.assert_allclose(y.numpy()[0, 0], x.sum(), rtol=1e-15)  # a float32 round trip: ~3e-8 off
    # a float32 Input still casts float64 data to float32, and a float32 model computes in float32
    inp = fastnn.Input((3,))
    model = fastnn.Model(inp, L.Dense(1, kernel_initializer="ones")(inp))
    assert model(x).dtype == "float32"
    np.testing.assert_allclose(model(x).numpy()[0, 0], x.astype("float32").sum(dtype="float32"), rtol=1e-7)
    # two inputs of different dtypes: each converted to its own Input's dtype
    a, b = fastnn.Input((3,), dtype="float64"), fastnn.Input((3,))
    two = fastnn.Model([a, b], [L.Identity(dtype="float64")(a), L.Identity()(b)])
    out64, out32 = two([x, x])
    assert out64.dtype == "float64" and out32.dtype == "float32"
    np.testing.assert_array_equal(out64.numpy(), x)


def test_one_element_output_lists_come_back_unpacked_as_keras():
    # Keras 3.15's Functional.call returns unpack_singleton(outputs): Model(inputs=[x], outputs=[y]) -- listing 8's
    # form -- calls and predicts ONE array (a tuple alike); a dict stays a dict; a symbolic call, compute_output_shape
    # and model.outputs keep the list (measured with Keras 3.15.1 on TensorFlow 2.21).
    x = np.zeros((2, 3), np.float32)
    inp = fastnn.Input((3,))
    out = L.Dense(1)(inp)
    for outputs in ([out], (out,)):
        model = fastnn.Model([inp], outputs)
        assert isinstance(model(x), fastnn.Tensor) and model(x).shape == (2, 1)
        assert isinstance(model.predict(x, verbose=0), np.ndarray) and model.predict(x, verbose=0).shape == (2, 1)
        assert isinstance(model.predict_on_batch(x), np.ndarray)
    model = fastnn.Model([inp], [out])
    assert isinstance(model(fastnn.Input((3,))), list) and model.compute_output_shape((None, 3)) == [(None, 1)]
    assert isinstance(model.outputs, list)
    model.compile(loss="mse", optimizer="sgd")
    assert model.fit(x, np.zeros((2, 1)), verbose=0).history["loss"] == [0.0]
    named = fastnn.Model([inp], {"a": out})
    assert isinstance(named(x), dict) and isinstance(named.predict(x, verbose=0), dict)
