"""fastnn.saving's serialization: serialize_keras_object / deserialize_keras_object for every object family (the
dicts Keras 3.15 writes), custom objects (registered, global dict, scope, custom_objects=), safe mode for Python
lambdas, to_json / model_from_json of Sequential / functional / nested / shared-layer models, compile configs."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import fastnn
from fastnn import layers
from fastnn.models import model_from_json
from fastnn.testing.layer_harness import _without_bytecode  # lambdas' marshalled bytes vary
from fastnn.saving import (SafeModeScope, custom_object_scope, deserialize_keras_object, get_custom_objects,
                           get_registered_name, get_registered_object, in_safe_mode, register_keras_serializable,
                           serialization_lib, serialize_keras_object)

RNG = np.random.default_rng(0)


def _json_round_trip(obj, **kwargs):
    """serialize -> JSON text -> deserialize: what a .keras file or to_json keeps."""
    return deserialize_keras_object(json.loads(json.dumps(serialize_keras_object(obj))), **kwargs)


def _plain(config):
    return json.loads(json.dumps(config))


def _dtype_policy(name="float32"):
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": name}, "registered_name": None}


# -- every family, as Keras 3.15 writes it ---------------------------------------------------------------------------
def test_objects_serialize_as_keras_writes_them():
    # The literal dicts are Keras 3.15.1's serialize_keras_object output for the same objects.
    assert serialize_keras_object(fastnn.initializers.GlorotUniform()) == {
        "module": "keras.initializers", "class_name": "GlorotUniform",
        "config": {"seed": None, "input_axes": None, "output_axes": None}, "registered_name": None}
    assert serialize_keras_object(fastnn.regularizers.L2(0.1)) == {
        "module": "keras.regularizers", "class_name": "L2", "config": {"l2": 0.1}, "registered_name": None}
    assert serialize_keras_object(fastnn.constraints.MaxNorm(2)) == {
        "module": "keras.constraints", "class_name": "MaxNorm", "config": {"max_value": 2, "axis": 0},
        "registered_name": None}
    assert serialize_keras_object(fastnn.losses.MeanSquaredError()) == {
        "module": "keras.losses", "class_name": "MeanSquaredError",
        "config": {"name": "mean_squared_error", "reduction": "sum_over_batch_size"}, "registered_name": None}
    function = {"module": "builtins", "class_name": "function", "registered_name": "function"}
    assert serialize_keras_object(fastnn.losses.mean_squared_error) == {**function, "config": "mean_squared_error"}
    assert serialize_keras_object(fastnn.activations.relu) == {**function, "config": "relu"}
    assert serialize_keras_object(fastnn.metrics.AUC(name="auc")) == {
        "module": "keras.metrics", "class_name": "AUC",
        "config": {"name": "auc", "dtype": "float32", "num_thresholds": 200, "curve": "ROC",
                   "summation_method": "interpolation", "multi_label": False, "num_labels": None,
                   "label_weights": None, "from_logits": False}, "registered_name": None}
    schedule = {"module": "keras.optimizers.schedules", "class_name": "ExponentialDecay",
                "config": {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.9, "staircase": False,
                           "name": "ExponentialDecay"}, "registered_name": None}
    assert serialize_keras_object(fastnn.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)) == schedule
    sgd = serialize_keras_object(fastnn.optimizers.SGD(fastnn.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)))
    assert (sgd["module"], sgd["class_name"], sgd["registered_name"]) == ("keras.optimizers", "SGD", None)
    assert sgd["config"]["learning_rate"] == schedule
    dense = layers.Dense(3, name="d")
    dense(fastnn.Input((4,)))
    entry = serialize_keras_object(dense)
    assert list(entry) == ["module", "class_name", "config", "registered_name", "build_config"]
    assert entry["build_config"] == {"input_shape": (None, 4)}
    assert entry["config"]["dtype"] == _dtype_policy()


def test_plain_values_serialize_as_keras():
    assert serialize_keras_object((1, 2, (3, None))) == (1, 2, (3, None))  # tuples stay tuples
    assert serialize_keras_object([1, "a", None, True]) == [1, "a", None, True]
    assert serialize_keras_object({"a": (1, 2)}) == {"a": (1, 2)}
    assert serialize_keras_object(np.float32(3.0)) == 3.0 and type(serialize_keras_object(np.int64(2))) is int
    assert serialize_keras_object(np.arange(3)) == {"class_name": "__numpy__",
                                                    "config": {"value": [0, 1, 2], "dtype": "int64"}}
    assert serialize_keras_object(b"ab") == {"class_name": "__bytes__", "config": {"value": "ab"}}
    assert serialize_keras_object(slice(1, 2)) == {"class_name": "__slice__",
                                                   "config": {"start": 1, "stop": 2, "step": None}}
    assert serialize_keras_object(Ellipsis) == {"class_name": "__ellipsis__", "config": {}}
    for value in ((1, 2), [1, (2, 3)], {"k": [1, 2]}, b"xyz", slice(None, 5, 2), Ellipsis, None, 2.5, "s"):
        back = _json_round_trip(value)
        assert back == (_plain(value) if isinstance(value, (list, tuple, dict)) else value)  # JSON has no tuples
    array = _json_round_trip(np.arange(6, dtype="float32").reshape(2, 3))
    assert array.dtype == np.float32 and array.tolist() == [[0, 1, 2], [3, 4, 5]]
    symbolic = _json_round_trip(fastnn.Input((3,), name="kt"))
    assert symbolic.shape == (None, 3) and symbolic._pre_serialization_keras_history == ["kt", 0, 0]
    tensor = _json_round_trip(fastnn.Tensor(np.ones((2,), "float32")))
    assert isinstance(tensor, fastnn.Tensor) and np.asarray(tensor).tolist() == [1.0, 1.0]


@pytest.mark.parametrize("obj", [
    fastnn.initializers.GlorotUniform(seed=3), fastnn.initializers.Constant(0.5), fastnn.initializers.Orthogonal(2.0),
    fastnn.initializers.VarianceScaling(2.0, "fan_out", "uniform"), fastnn.initializers.HeNormal(seed=1),
    fastnn.regularizers.L1L2(0.1, 0.2), fastnn.regularizers.L1(0.3), fastnn.constraints.MinMaxNorm(0.1, 2.0),
    fastnn.constraints.NonNeg(), fastnn.constraints.UnitNorm(axis=1),
    fastnn.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1), fastnn.losses.Huber(delta=2.0),
    fastnn.losses.SparseCategoricalCrossentropy(from_logits=True),
    fastnn.metrics.AUC(num_thresholds=50), fastnn.metrics.MeanAbsoluteError(), fastnn.metrics.Precision(0.3),
    fastnn.metrics.SparseCategoricalAccuracy(name="acc"),
    fastnn.optimizers.Adam(0.01, beta_1=0.8, amsgrad=True), fastnn.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
    fastnn.optimizers.RMSprop(0.002, rho=0.8), fastnn.optimizers.AdamW(weight_decay=0.01),
    fastnn.optimizers.SGD(fastnn.optimizers.schedules.CosineDecay(0.1, 100)),
    fastnn.optimizers.schedules.PiecewiseConstantDecay([10, 20], [0.1, 0.01, 0.001]),
    fastnn.optimizers.schedules.PolynomialDecay(0.1, 100, 0.01, power=2.0),
], ids=lambda o: type(o).__name__)
def test_family_objects_round_trip_through_json(obj):
    back = _json_round_trip(obj)
    assert type(back) is type(obj)
    assert _plain(back.get_config()) == _plain(obj.get_config())


def test_functions_round_trip_by_name():
    for fn in (fastnn.activations.relu, fastnn.activations.gelu, fastnn.losses.mean_squared_error,
               fastnn.losses.categorical_crossentropy, fastnn.metrics.binary_accuracy):
        assert _json_round_trip(fn) is fn
    assert fastnn.activations.deserialize(fastnn.activations.serialize(fastnn.activations.tanh)) is \
        fastnn.activations.tanh


def test_unknown_objects_raise_what_to_do():
    config = {"module": "my_lib.layers", "class_name": "NoSuchLayer", "config": {}, "registered_name": "NoSuchLayer"}
    with pytest.raises(TypeError, match=r"Could not locate class 'NoSuchLayer'.*custom_objects"):
        deserialize_keras_object(config)
    with pytest.raises(TypeError, match=r"Could not locate function 'nope'"):
        deserialize_keras_object({"module": "builtins", "class_name": "function", "config": "nope",
                                  "registered_name": "function"})
    with pytest.raises(ValueError, match="not a modeling function"):  # Keras refuses non-modeling APIs by name
        deserialize_keras_object({"module": "keras.models", "class_name": "load_model", "config": {},
                                  "registered_name": None})
    with pytest.raises(TypeError, match="Could not parse config"):
        deserialize_keras_object(object())
    with pytest.raises(TypeError, match="Cannot serialize object"):
        serialize_keras_object(object())
    with pytest.raises(TypeError, match="Expected 'config' to be a dict"):
        deserialize_keras_object({"module": "keras.layers", "class_name": "Dense", "config": 3,
                                  "registered_name": None})
    model = fastnn.Sequential([fastnn.Input((3,)), layers.Dense(2)])
    bad = json.loads(model.to_json())
    bad["config"]["layers"][1]["class_name"] = "Densse"
    with pytest.raises(TypeError, match=r"Could not locate class 'Densse'.*custom_objects"):
        model_from_json(json.dumps(bad))


# -- custom objects ----------------------------------------------------------------------------------------------
class Scale(layers.Layer):
    """A user's layer with an argument and a weight."""

    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="w")

    def call(self, x):
        return x * self.w * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def _custom_model(cls=Scale, activation="relu"):
    return fastnn.Sequential([fastnn.Input((3,)), layers.Dense(3, activation=activation), cls(factor=3.0)])


def _assert_same_model(model, clone, x):
    assert _without_bytecode(json.loads(clone.to_json())) == _without_bytecode(json.loads(model.to_json()))
    clone.set_weights(model.get_weights())
    got, want = clone.predict(x, verbose=0), model.predict(x, verbose=0)
    if isinstance(want, dict):
        got, want = [got[k] for k in sorted(want)], [want[k] for k in sorted(want)]
    for g, w in zip(got if isinstance(got, list) else [got], want if isinstance(want, list) else [want]):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)


def test_custom_objects_passed_to_the_loading_call():
    model = _custom_model()
    text = model.to_json()
    entry = json.loads(text)["config"]["layers"][2]
    assert (entry["module"], entry["class_name"], entry["registered_name"]) == (__name__, "Scale", "Scale")
    with pytest.raises(TypeError, match="Could not locate class 'Scale'"):
        model_from_json(text)
    clone = model_from_json(text, custom_objects={"Scale": Scale})
    assert isinstance(clone.layers[1], Scale) and clone.layers[1].factor == 3.0
    _assert_same_model(model, clone, RNG.standard_normal((4, 3)).astype("float32"))


def test_custom_objects_through_a_scope():
    model = _custom_model()
    with custom_object_scope({"Scale": Scale}):
        clone = model_from_json(model.to_json())
        with custom_object_scope({}):  # an inner scope replaces the outer one, as Keras's
            with pytest.raises(TypeError, match="Could not locate class 'Scale'"):
                model_from_json(model.to_json())
    with pytest.raises(TypeError):  # the scope is closed
        model_from_json(model.to_json())
    assert isinstance(clone.layers[1], Scale)


def test_custom_objects_through_the_global_dict():
    model = _custom_model()
    get_custom_objects()["Scale"] = Scale
    try:
        clone = model_from_json(model.to_json())
    finally:
        del get_custom_objects()["Scale"]
    assert isinstance(clone.layers[1], Scale)


def test_registered_classes_and_functions():
    @register_keras_serializable(package="serial_test")
    class Shift(layers.Layer):
        def __init__(self, offset=1.0, **kwargs):
            super().__init__(**kwargs)
            self.offset = offset

        def call(self, x):
            return x + self.offset

        def get_config(self):
            return {**super().get_config(), "offset": self.offset}

    @register_keras_serializable(package="serial_test", name="half_relu")
    def half_relu(x):
        return fastnn.activations.relu(x) * 0.5

    try:
        assert get_registered_name(Shift) == "serial_test>Shift"
        assert get_registered_object("serial_test>Shift") is Shift
        assert get_registered_name(half_relu) == "serial_test>half_relu"
        model = _custom_model(cls=lambda factor: Shift(offset=factor), activation=half_relu)
        config = json.loads(model.to_json())["config"]["layers"]
        assert config[1]["config"]["activation"] == {"module": "builtins", "class_name": "function",
                                                     "config": "serial_test>half_relu",
                                                     "registered_name": "function"}
        assert config[2]["registered_name"] == "serial_test>Shift"
        clone = model_from_json(model.to_json())  # no custom_objects needed
        assert type(clone.layers[1]) is Shift and clone.layers[0].activation is half_relu
        _assert_same_model(model, clone, RNG.standard_normal((4, 3)).astype("float32"))
    finally:
        for key in ("serial_test>Shift", "serial_test>half_relu"):
            obj = fastnn.saving.object_registration.GLOBAL_CUSTOM_OBJECTS.pop(key)
            fastnn.saving.object_registration.GLOBAL_CUSTOM_NAMES.pop(obj)
    with pytest.raises(ValueError, match="Cannot register a class that does not have a get_config"):
        register_keras_serializable()(type("NoConfig", (), {}))


def test_custom_functions_in_layer_configs_need_custom_objects():
    def my_activation(x):
        return fastnn.activations.tanh(x) * 2.0

    model = _custom_model(activation=my_activation)
    text = model.to_json()
    assert json.loads(text)["config"]["layers"][1]["config"]["activation"]["config"] == "my_activation"
    with pytest.raises(TypeError, match="Could not locate function 'my_activation'"):
        model_from_json(text, custom_objects={"Scale": Scale})
    clone = model_from_json(text, custom_objects={"Scale": Scale, "my_activation": my_activation})
    assert clone.layers[0].activation is my_activation


def test_custom_loss_metric_and_regularizer_classes_in_compile_and_layer_configs():
    @register_keras_serializable(package="serial_test")
    class ScaledMSE(fastnn.losses.Loss):
        def __init__(self, scale=1.0, **kwargs):
            super().__init__(**kwargs)
            self.scale = scale

        def call(self, y_true, y_pred):
            return fastnn.losses.mean_squared_error(y_true, y_pred) * self.scale

        def get_config(self):
            return {**super().get_config(), "scale": self.scale}

    try:
        model = fastnn.Sequential([fastnn.Input((3,)), layers.Dense(2, kernel_regularizer=fastnn.regularizers.L2(0.1))])
        model.compile("adam", loss=ScaledMSE(scale=2.0, name="scaled"), metrics=["mae"])
        clone = model_from_json(model.to_json())
        loss = clone.get_compile_config()["loss"]
        assert loss["registered_name"] == "serial_test>ScaledMSE" and loss["config"]["scale"] == 2.0
        assert isinstance(clone._loss_spec, ScaledMSE) and clone._loss_spec.scale == 2.0
        assert isinstance(clone.layers[0].kernel_regularizer, fastnn.regularizers.L2)
    finally:
        fastnn.saving.object_registration.GLOBAL_CUSTOM_NAMES.pop(
            fastnn.saving.object_registration.GLOBAL_CUSTOM_OBJECTS.pop("serial_test>ScaledMSE"))


# -- Python lambdas and safe mode -----------------------------------------------------------------------------------
KERAS_LAMBDA_MESSAGE = ("Requested the deserialization of a `Lambda` layer whose `function` is a Python lambda. This "
                        "carries a potential risk of arbitrary code execution and thus it is disallowed by default. "
                        "If you trust the source of the artifact, you can override this error by passing "
                        "`safe_mode=False` to the loading function, or calling")


def _lambda_model():
    offset = 0.5
    return fastnn.Sequential([fastnn.Input((3,)), layers.Dense(3),
                              layers.Lambda(lambda t: t * 2.0 + offset, output_shape=(3,), name="lam")])


def test_lambda_layers_are_refused_in_safe_mode_with_keras_message():
    model = _lambda_model()
    text = model.to_json()
    function = json.loads(text)["config"]["layers"][2]["config"]["function"]
    assert function["class_name"] == "__lambda__" and set(function["config"]) == {"code", "defaults", "closure"}
    assert function["config"]["closure"] == [0.5]
    with pytest.raises(ValueError) as info:
        model_from_json(text)
    assert str(info.value).startswith(KERAS_LAMBDA_MESSAGE)
    with pytest.raises(ValueError, match="safe_mode=False"):
        deserialize_keras_object(json.loads(text))  # safe_mode=True is the default
    with pytest.raises(ValueError, match="safe_mode=False"):  # Lambda.from_config alone fails closed too
        layers.Lambda.from_config(json.loads(text)["config"]["layers"][2]["config"])


def test_lambda_layers_load_with_safe_mode_off():
    model = _lambda_model()
    x = RNG.standard_normal((4, 3)).astype("float32")
    for load in (lambda c: deserialize_keras_object(c, safe_mode=False),
                 lambda c: layers.Lambda and _in_unsafe_scope(c)):
        clone = load(json.loads(model.to_json()))
        _assert_same_model(model, clone, x)
    # The function comes back working, its closure included.
    np.testing.assert_allclose(np.asarray(clone.layers[1].function(np.ones((1, 3), "float32"))), [[2.5, 2.5, 2.5]])


def _in_unsafe_scope(config):
    with SafeModeScope(False):
        assert in_safe_mode() is False
        return deserialize_keras_object(config)  # the scope decides over the default safe_mode=True


def test_enable_unsafe_deserialization_switches_safe_mode_off_globally():
    assert in_safe_mode() is None
    serialization_lib.enable_unsafe_deserialization()
    try:
        assert in_safe_mode() is False
        clone = model_from_json(_lambda_model().to_json())
        assert isinstance(clone.layers[1], layers.Lambda)
    finally:
        serialization_lib._safe_mode_state.value = None


@pytest.mark.filterwarnings("ignore:The object being serialized includes a `lambda`")
def test_lambda_activations_and_plain_lambdas():
    model = fastnn.Sequential([fastnn.Input((3,)), layers.Dense(2, activation=lambda t: t * 3.0)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras's "The object being serialized includes a `lambda`" warning
        text = model.to_json()
    activation = json.loads(text)["config"]["layers"][1]["config"]["activation"]
    assert activation["class_name"] == "__lambda__" and "value" in activation["config"]
    with pytest.raises(ValueError, match="Requested the deserialization of a Python lambda"):
        model_from_json(text)
    clone = deserialize_keras_object(json.loads(text), safe_mode=False)
    _assert_same_model(model, clone, RNG.standard_normal((2, 3)).astype("float32"))
    # Keras 3.15 writes a lambda activation as the bare {"value": ...} of its function: refused the same way.
    keras_form = {"value": serialization_lib.func_dump(lambda t: t + 1.0)}
    with pytest.raises(ValueError, match="safe_mode=False"):
        layers.Dense.from_config({**layers.Dense(2).get_config(), "activation": keras_form})
    with SafeModeScope(False):
        dense = layers.Dense.from_config({**layers.Dense(2).get_config(), "activation": keras_form})
    assert float(dense.activation(np.float32(1.0))) == 2.0
    with pytest.warns(UserWarning, match="includes a `lambda`"):
        config = serialize_keras_object(lambda a, b=2: a * b)
    assert config["class_name"] == "__lambda__"
    with pytest.raises(ValueError, match="Requested the deserialization of a Python lambda"):
        deserialize_keras_object(config)
    assert deserialize_keras_object(_plain(config), safe_mode=False)(5) == 10


def test_lambda_with_named_function_and_arguments_needs_no_unsafe_mode():
    layer = layers.Lambda(fastnn.activations.relu, arguments={"max_value": 1.0, "negative_slope": 0.1})
    config = layer.get_config()
    assert config["function"] == {"module": "builtins", "class_name": "function", "config": "relu",
                                  "registered_name": "function"}
    assert config["arguments"] == {"max_value": 1.0, "negative_slope": 0.1}
    clone = _json_round_trip(layer)
    x = np.array([[-2.0, 0.5, 3.0]], "float32")
    np.testing.assert_allclose(np.asarray(clone(x)), [[-0.2, 0.5, 1.0]], rtol=1e-6)


# -- models through to_json / model_from_json ----------------------------------------------------------------------
def _sequential():
    return fastnn.Sequential([fastnn.Input((6,)), layers.Dense(8, activation="relu"), layers.Dropout(0.2),
                              layers.BatchNormalization(), layers.Dense(3, activation="softmax")], name="seq")


def _functional_multi():
    a, b = fastnn.Input((4,), name="a"), fastnn.Input((3,), name="b")
    shared = layers.Dense(5, activation="tanh", name="shared")
    h = layers.Concatenate(name="cat")([shared(a), layers.Dense(5, name="db")(b)])
    return fastnn.Model([a, b], [layers.Dense(1, name="o1")(h), layers.Dense(2, name="o2")(h)], name="multi")


def _shared_layer_chain():
    x = fastnn.Input((4,))
    dense = layers.Dense(4, activation="relu", name="twice")
    y = dense(dense(x))  # one layer, two nodes
    return fastnn.Model(x, layers.Add()([y, dense(x)]))


def _nested():
    inner_seq = fastnn.Sequential([fastnn.Input((4,)), layers.Dense(4, activation="tanh")], name="inner_seq")
    x = fastnn.Input((4,))
    inner_fn = fastnn.Model(x, layers.Dense(4, name="inner_dense")(x), name="inner_fn")
    x2 = fastnn.Input((4,))
    z = inner_fn(inner_fn(inner_seq(x2)))  # a nested model called twice: its weights are shared
    return fastnn.Model(x2, layers.Add()([z, x2 * 2.0]), name="outer")


def _dict_io():
    x = fastnn.Input((4,), name="features")
    return fastnn.Model({"features": x}, {"score": layers.Dense(2)(x), "raw": layers.Identity()(x)})


@pytest.mark.parametrize("build,inputs", [
    (_sequential, lambda: RNG.standard_normal((5, 6)).astype("float32")),
    (_functional_multi, lambda: [RNG.standard_normal((5, 4)).astype("float32"),
                                 RNG.standard_normal((5, 3)).astype("float32")]),
    (_shared_layer_chain, lambda: RNG.standard_normal((5, 4)).astype("float32")),
    (_nested, lambda: RNG.standard_normal((5, 4)).astype("float32")),
    (_dict_io, lambda: {"features": RNG.standard_normal((5, 4)).astype("float32")}),
], ids=["sequential", "functional_multi_io", "shared_layer", "nested_models", "dict_io"])
def test_models_round_trip_through_to_json(build, inputs):
    model = build()
    text = model.to_json()
    config = json.loads(text)
    assert config["class_name"] == type(model).__name__ and "build_config" in config
    clone = model_from_json(text)
    assert type(clone) is type(model) and clone.name == model.name
    assert [l.name for l in clone.layers] == [l.name for l in model.layers]
    assert [w.shape for w in clone.weights] == [w.shape for w in model.weights]  # shared weights stay shared
    assert _plain(clone.get_config()) == _plain(model.get_config())
    _assert_same_model(model, clone, inputs())
    texts = []
    for m in (model, clone):
        m.summary(print_fn=texts.append, expand_nested=True)
    assert texts[0] == texts[1]  # summary() of the loaded model equals the original's
    # get_config / from_config keep the same graph, too.
    again = type(model).from_config(model.get_config())
    assert _plain(again.get_config()) == _plain(model.get_config())


def test_shared_layer_and_nested_model_connectivity_survives():
    clone = model_from_json(_shared_layer_chain().to_json())
    twice = clone.get_layer("twice")
    assert len([n for n in twice._inbound_nodes if n in clone._nodes]) == 3 and len(clone.weights) == 2
    outer = model_from_json(_nested().to_json())
    inner_fn = outer.get_layer("inner_fn")
    assert isinstance(inner_fn, fastnn.models.Functional) and isinstance(outer.get_layer("inner_seq"),
                                                                         fastnn.Sequential)
    assert len(outer.weights) == 4  # inner_seq's 2 + inner_fn's 2, though inner_fn is called twice
    config = json.loads(outer.to_json())["config"]
    inner_entry = [e for e in config["layers"] if e["name"] == "inner_fn"][0]
    assert len(inner_entry["inbound_nodes"]) == 2
    assert config["output_layers"] == [outer.layers[-1].name, 0, 0]
    inner_seq_entry = [e for e in config["layers"] if e["name"] == "inner_seq"][0]
    assert inner_entry["inbound_nodes"][1]["args"][0]["config"]["keras_history"] == ["inner_fn", 0, 0]
    assert inner_entry["inbound_nodes"][0]["args"][0]["config"]["keras_history"] == ["inner_seq", 0, 0]
    assert inner_seq_entry["class_name"] == "Sequential"


def test_model_from_config_revives_functional_configs_and_subclasses():
    config = _functional_multi().get_config()
    assert isinstance(fastnn.Model.from_config(config), fastnn.models.Functional)

    @register_keras_serializable(package="serial_test")
    class Tower(fastnn.Model):
        def __init__(self, units=3, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.dense = layers.Dense(units)

        def call(self, x):
            return self.dense(x)

        def get_config(self):
            return {"units": self.units, "name": self.name}

    try:
        tower = Tower(units=5, name="tower")
        tower(np.ones((2, 3), "float32"))
        entry = serialize_keras_object(tower)
        assert entry["registered_name"] == "serial_test>Tower" and entry["config"] == {"units": 5, "name": "tower"}
        clone = _json_round_trip(tower)
        assert type(clone) is Tower and clone.units == 5 and clone.name == "tower"
    finally:
        fastnn.saving.object_registration.GLOBAL_CUSTOM_NAMES.pop(
            fastnn.saving.object_registration.GLOBAL_CUSTOM_OBJECTS.pop("serial_test>Tower"))

    class NoConfig(fastnn.Model):
        def __init__(self, units):
            super().__init__()

    with pytest.raises(TypeError, match="Unable to revive model from config"):
        NoConfig.from_config({"wrong": 1})


# -- compile configs ----------------------------------------------------------------------------------------------
def _compiled_model():
    model = _functional_multi()
    model.compile(optimizer=fastnn.optimizers.Adam(learning_rate=0.01, beta_1=0.8, clipnorm=1.0),
                  loss=["mse", fastnn.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)],
                  loss_weights=[1.0, 0.5], metrics=[["mae"], [fastnn.metrics.CategoricalAccuracy(name="cacc")]],
                  weighted_metrics=[["mse"], []], steps_per_execution=2)
    return model


def test_compile_config_has_keras_keys_and_no_live_objects():
    config = _compiled_model().get_compile_config()
    assert list(config) == ["optimizer", "loss", "loss_weights", "metrics", "weighted_metrics", "run_eagerly",
                            "steps_per_execution", "jit_compile"]
    assert config["optimizer"]["class_name"] == "Adam" and config["optimizer"]["module"] == "keras.optimizers"
    assert config["loss"][0] == "mse" and config["loss"][1]["class_name"] == "CategoricalCrossentropy"
    assert config["metrics"][1][0]["config"]["name"] == "cacc"
    assert json.loads(json.dumps(config)) == _plain(config)  # plain JSON all the way down
    assert fastnn.Sequential([fastnn.Input((2,)), layers.Dense(1)]).get_compile_config() == {}


def test_compile_config_is_restored():
    model = _compiled_model()
    clone = model_from_json(model.to_json())
    assert clone.compiled
    assert _plain(clone.get_compile_config()) == _plain(model.get_compile_config())
    assert type(clone.optimizer) is fastnn.optimizers.Adam
    assert clone.optimizer.get_config() == model.optimizer.get_config()
    assert clone.steps_per_execution == 2 and clone._loss_weights_spec == [1.0, 0.5]
    loss = clone._loss_spec[1]
    assert isinstance(loss, fastnn.losses.CategoricalCrossentropy) and loss.get_config() == \
        model._loss_spec[1].get_config()
    x = [RNG.standard_normal((8, 4)).astype("float32"), RNG.standard_normal((8, 3)).astype("float32")]
    y = [RNG.standard_normal((8, 1)).astype("float32"), np.eye(2, dtype="float32")[RNG.integers(0, 2, 8)]]
    clone.set_weights(model.get_weights())
    history = clone.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert set(history.history) == set(model.fit(x, y, epochs=1, batch_size=4, verbose=0).history)


def test_compile_from_config_builds_the_optimizer_and_respects_custom_compile():
    model = _sequential()
    model.compile_from_config({"optimizer": serialize_keras_object(fastnn.optimizers.SGD(0.05, momentum=0.5)),
                               "loss": {"module": "builtins", "class_name": "function",
                                        "config": "mean_squared_error", "registered_name": "function"},
                               "metrics": ["mae"]})
    assert model.compiled and model.optimizer.get_config()["momentum"] == 0.5
    assert model._loss_spec is fastnn.losses.mean_squared_error and model.optimizer.built

    class CustomCompile(fastnn.Sequential):
        def compile(self, *args, **kwargs):
            raise AssertionError("not called by compile_from_config")

    custom = CustomCompile([fastnn.Input((2,)), layers.Dense(1)])
    with pytest.warns(UserWarning, match="`compile\\(\\)` was not called as part of model loading"):
        custom.compile_from_config({"optimizer": "sgd", "loss": "mse"})
    assert not custom.compiled


# -- layers the layer tests do not run through the harness ----------------------------------------------------
@pytest.mark.parametrize("kwargs,n_weights", [
    ({"cell": layers.LSTMCell(3)}, 3), ({"cell": layers.GRUCell(3), "return_sequences": True}, 3),
    ({"cell": layers.SimpleRNNCell(3), "go_backwards": True}, 3),
    ({"cell": layers.StackedRNNCells([layers.SimpleRNNCell(3), layers.LSTMCell(2)])}, 6),
], ids=["lstm_cell", "gru_cell", "simple_cell", "stacked_cells"])
def test_rnn_with_cells_round_trips_as_the_harness_checks(kwargs, n_weights):
    # RNN(cell) is not run by the layer harness (one cell object cannot serve its two instances): the same
    # checks here, built layer -> Keras entry -> JSON -> built layer, same config and outputs.
    layer = layers.RNN(**kwargs)
    x = RNG.standard_normal((2, 5, 4)).astype("float32")
    units = 2 if isinstance(kwargs["cell"], layers.StackedRNNCells) else 3
    expected = (2, 5, units) if kwargs.get("return_sequences") else (2, units)
    assert tuple(layer(x).shape) == expected and len(layer.trainable_weights) == n_weights
    clone = _json_round_trip(layer)
    assert type(clone) is layers.RNN and clone.built
    assert _plain(serialize_keras_object(clone)) == _plain(serialize_keras_object(layer))
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(np.asarray(clone(x)), np.asarray(layer(x)), rtol=1e-6, atol=1e-6)


def test_time_distributed_through_the_harness():
    from fastnn.testing.layer_harness import run_layer_test

    run_layer_test(layers.TimeDistributed, {"layer": layers.Dense(3)}, (2, 4, 5), (2, 4, 3),
                   expected_num_trainable_weights=2)


def test_input_layer_and_cells_round_trip():
    inp = layers.InputLayer(shape=(3, 2), name="inp", dtype="float64")
    clone = _json_round_trip(inp)
    assert isinstance(clone, layers.InputLayer) and clone.batch_shape == (None, 3, 2) and clone.dtype == "float64"
    for cell in (layers.LSTMCell(4, dropout=0.1), layers.GRUCell(2, reset_after=False), layers.SimpleRNNCell(5)):
        back = _json_round_trip(cell)
        assert type(back) is type(cell) and _plain(back.get_config()) == _plain(cell.get_config())


def test_object_sharing_scope_marks_and_restores_shared_objects():
    init = fastnn.initializers.GlorotNormal(seed=4)
    model = fastnn.Sequential([fastnn.Input((3,)), layers.Dense(3, kernel_initializer=init, name="a"),
                               layers.Dense(2, kernel_initializer=init, name="b")])
    assert "shared_object_id" not in json.dumps(serialize_keras_object(model))  # only inside the scope
    with serialization_lib.ObjectSharingScope():
        config = _plain(serialize_keras_object(model))
    first, second = (entry["config"]["kernel_initializer"] for entry in config["config"]["layers"][1:])
    # As Keras 3.15 (checked): the id reaches only the second config, because the first one was copied into its
    # layer's config before the object was seen again.
    assert "shared_object_id" not in first and second["shared_object_id"] == id(init)
    # Deserializing: the first config that carries an id makes the object, later ones with that id reuse it.
    # (Inside layer configs Keras's initializers.get drops the id, so layers get their own objects there.)
    with serialization_lib.ObjectSharingScope():
        a, b = deserialize_keras_object([second, dict(second)])
        c = deserialize_keras_object(first)
    assert a is b and isinstance(a, fastnn.initializers.GlorotNormal) and c is not a
    a, b = deserialize_keras_object([second, dict(second)])  # outside a scope every config makes its own object
    assert a is not b


def test_dtype_policy_configs_deserialize_to_the_dtype_name():
    assert deserialize_keras_object(_dtype_policy("float64")) == "float64"
    assert layers.Dense(2, dtype=deserialize_keras_object(_dtype_policy("float64"))).dtype == "float64"


def test_malformed_model_configs_raise_value_or_type_errors():
    model = _functional_multi()
    base = json.loads(model.to_json())

    def damaged(edit):
        config = json.loads(json.dumps(base))
        edit(config)
        return config

    cases = [
        lambda c: c["config"]["layers"][2]["config"]["dtype"]["config"].pop("name"),  # missing key deep inside
        lambda c: c["config"]["layers"][3]["inbound_nodes"][0]["args"][0].__setitem__("class_name", "x"),
        lambda c: c["config"].__setitem__("output_layers", [["nowhere", 0, 0]]),
        lambda c: c["config"]["layers"][4]["inbound_nodes"][0]["args"][0][0]["config"].__setitem__(
            "keras_history", ["shared", 5, 0]),
        lambda c: c["config"].pop("layers"),
        lambda c: c["config"]["layers"][2].__setitem__("config", []),
    ]
    for edit in cases:
        with pytest.raises((ValueError, TypeError)):
            deserialize_keras_object(damaged(edit))
