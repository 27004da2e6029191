"""Configs move between fastnn and Keras 3 both ways: the JSON of ``model.to_json()`` / ``serialize_keras_object``
that fastnn writes loads in Keras (``keras.models.model_from_json``, ``keras.saving.deserialize_keras_object``) and
Keras's loads in fastnn, into models with the same config and, with the same weights, the same outputs. The
models cover every layer class the two libraries share; compile configs, registered custom objects and lambdas
(refused in safe mode by both) included. Skipped when Keras is not installed.

    KERAS_BACKEND=tensorflow PYTHONPATH=$PWD/src /work/kvenv/bin/python -m pytest tests/e2e/test_keras_serialization.py
"""
from __future__ import annotations

import json
import os
import re

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")

import fastnn  # noqa: E402
from fastnn.saving import deserialize_keras_object, serialize_keras_object  # noqa: E402


def _named_function(x, k=1):
    return x * k


def _normalized(config):
    """JSON form; automatic InputLayer names (numbered by how many each library made before) as "input_layer";
    floats at float32 precision (Keras keeps learning rates and factors as float32)."""
    def fix(x):
        if isinstance(x, dict):
            return {k: fix(v) for k, v in x.items()}
        if isinstance(x, list):
            return [fix(v) for v in x]
        if isinstance(x, str):
            return re.sub(r"^input_layer(_\d+)?$", "input_layer", x)
        if isinstance(x, float):
            return float(np.float32(x))
        return x

    return fix(json.loads(json.dumps(config)))


# -- the models: together they hold every layer class of fastnn.layers that Keras has --------------------------
def _dense_stack(lib):
    L, I, R, C = lib.layers, lib.initializers, lib.regularizers, lib.constraints
    return lib.Sequential([
        lib.Input((6,), name="in_dense"),
        L.Masking(mask_value=0.0, name="mask"),
        L.Dense(8, activation="relu", kernel_initializer=I.HeNormal(seed=1), bias_initializer=I.Constant(0.1),
                kernel_regularizer=R.L1L2(0.01, 0.02), bias_regularizer="l2", activity_regularizer=R.L1(0.001),
                kernel_constraint=C.MaxNorm(3.0), bias_constraint="non_neg", name="d1"),
        L.BatchNormalization(momentum=0.9, epsilon=1e-4, name="bn"),
        L.Activation("tanh", name="act"), L.Dropout(0.2, seed=3, name="drop"), L.Identity(name="ident"),
        L.Dense(3, activation="softmax", name="d2")], name="dense_stack")


def _image(lib):
    L = lib.layers
    x = lib.Input((8, 8, 3), name="in_img")
    h = L.ZeroPadding2D(((1, 0), (0, 1)), name="zp")(x)
    h = L.Conv2D(4, 3, padding="same", activation="relu", name="conv")(h)
    h = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(h)
    h = L.SeparableConv2D(4, 3, padding="same", name="sep")(h)
    h = L.MaxPooling2D(name="mp")(h)
    h = L.Conv2DTranspose(3, 3, strides=2, padding="same", name="ct")(h)
    h = L.Cropping2D(((1, 0), (0, 1)), name="crop")(h)
    h = L.UpSampling2D(2, name="up")(h)
    h = L.AveragePooling2D(2, name="ap")(h)
    h = L.SpatialDropout2D(0.1, name="sd")(h)
    avg = L.GlobalAveragePooling2D(name="gap")(h)
    mx = L.GlobalMaxPooling2D(name="gmp")(h)
    return lib.Model(x, L.Concatenate(name="cat")([avg, mx]), name="image")


def _sequence(lib):
    L = lib.layers
    x = lib.Input((12, 4), name="in_seq")
    h = L.Conv1D(6, 3, padding="causal", name="c1")(x)
    h = L.DepthwiseConv1D(3, padding="same", name="dw1")(h)
    h = L.SeparableConv1D(4, 3, padding="same", name="sep1")(h)
    h = L.Conv1DTranspose(4, 3, strides=2, name="ct1")(h)
    h = L.ZeroPadding1D(1, name="zp1")(h)
    h = L.Cropping1D((2, 1), name="cr1")(h)
    h = L.UpSampling1D(2, name="up1")(h)
    h = L.MaxPooling1D(2, name="mp1")(h)
    h = L.AveragePooling1D(2, name="ap1")(h)
    h = L.SpatialDropout1D(0.1, name="sd1")(h)
    return lib.Model(x, [L.GlobalAveragePooling1D(name="gap1")(h), L.GlobalMaxPooling1D(name="gmp1")(h)],
                     name="sequence")


def _attention(lib):
    L = lib.layers
    tokens = lib.Input((7,), dtype="int32", name="tokens")
    # (masks through chained attentions: tests/e2e/test_keras_attention.py, built natively in both libraries; the
    # LogicalOr / ConvertToTensor mask nodes of Keras's configs: the dot_attention case and test_masks.py)
    e = L.Embedding(20, 8, name="emb")(tokens)
    a = L.MultiHeadAttention(2, 4, dropout=0.1, name="self_attention")(e, e, use_causal_mask=True)
    h = L.LayerNormalization(name="ln_att")(L.Add(name="res")([e, a]))
    c = L.MultiHeadAttention(2, 3, value_dim=2, output_shape=5, name="cross")(h, e, e)
    return lib.Model(tokens, L.GlobalAveragePooling1D(name="gap")(c), name="attention")


def _dot_attention(lib):
    L = lib.layers
    tokens = lib.Input((6,), dtype="int32", name="tokens")
    v = L.Embedding(20, 4, mask_zero=True, name="emb")(tokens)  # Keras records its mask as NotEqual nodes
    q = L.Dense(4, name="to_q")(v)
    a = L.Attention(use_scale=True, score_mode="concat", name="luong")([q, v])
    b = L.AdditiveAttention(name="bahdanau")([a, v, v])
    c = L.Attention(name="causal")([b, b], use_causal_mask=True)
    return lib.Model(tokens, L.GlobalAveragePooling1D(name="gap")(c), name="dot_attention")


def _recurrent(lib):
    L = lib.layers
    tokens = lib.Input((7,), dtype="int32", name="tokens")
    h = L.Embedding(20, 4, mask_zero=True, name="emb")(tokens)
    h = L.LSTM(5, return_sequences=True, name="lstm")(h)
    h = L.Bidirectional(L.GRU(3, return_sequences=True, name="gru"), name="bi")(h)
    h = L.TimeDistributed(L.Dense(4, name="td_dense"), name="td")(h)
    h = L.RNN(L.StackedRNNCells([L.LSTMCell(3, name="lc"), L.GRUCell(3, name="gc"), L.SimpleRNNCell(2, name="sc")],
                                name="stack"), return_sequences=True, name="rnn")(h)
    return lib.Model(tokens, L.SimpleRNN(3, name="srnn")(h), name="recurrent")


def _merging(lib):
    L = lib.layers
    a, b = lib.Input((4,), name="a"), lib.Input((4,), name="b")
    inner_in = lib.Input((4,), name="inner_in")
    inner = lib.Model(inner_in, L.Dense(4, name="inner_dense")(inner_in), name="inner")
    shared = L.Dense(4, name="shared")
    sa, sb = shared(a), shared(inner(b))
    merged = [L.Add(name="addl")([sa, sb]), L.Subtract(name="sub")([sa, sb]), L.Multiply(name="mul")([sa, sb]),
              L.Average(name="avg")([sa, sb]), L.Maximum(name="max")([sa, sb]), L.Minimum(name="min")([sa, sb])]
    merged.append(L.Dot(axes=1, normalize=True, name="cos")([sa, sb]))
    h = L.Concatenate(name="cat")(merged)
    h = L.Reshape((5, 5), name="resh")(h)
    h = L.Permute((2, 1), name="perm")(h)
    h = L.Flatten(name="flat")(h)
    h = L.Lambda(_named_function, arguments={"k": 2}, name="lam")(h) * 0.5 + 1.0  # operation nodes, too
    r = L.RepeatVector(2, name="rep")(L.Dense(3, name="to_rep")(h))
    return lib.Model([a, b], [r, inner(sa)], name="merging")


def _activations_and_norms(lib):
    L = lib.layers
    inputs = lib.Input((5, 6, 4), name="img")
    h = L.Rescaling(1 / 127.5, offset=-1.0, name="rescale")(inputs)
    h = L.Normalization(axis=-1, mean=[0.1, 0.2, 0.3, 0.4], variance=[1.0, 2.0, 3.0, 4.0], name="norm")(h)
    h = L.GroupNormalization(groups=2, name="gn")(h)
    h = L.PReLU(shared_axes=[1, 2], name="prelu")(h)
    h = L.Reshape((30, 4), name="to_seq")(h)
    h = L.LayerNormalization(axis=[1, 2], epsilon=1e-5, name="ln")(h)
    h = L.LeakyReLU(0.2, name="leaky")(h)
    h = L.RMSNormalization(name="rms")(h)
    h = L.ELU(0.5, name="elu")(h)
    h = L.GaussianNoise(0.1, seed=1, name="noise")(h)
    h = L.GaussianDropout(0.2, name="gdrop")(h)
    h = L.ActivityRegularization(l1=1e-3, name="actreg")(h)
    h = L.UnitNormalization(name="unit")(h)
    h = L.ReLU(max_value=6.0, negative_slope=0.1, name="relu")(L.Flatten(name="flat")(h))
    return lib.Model(inputs, L.Softmax(name="softmax")(L.Dense(3, name="head")(h)), name="activations_and_norms")


CASES = {"dense_stack": (_dense_stack, lambda rng: rng.standard_normal((3, 6))),
         "activations_and_norms": (_activations_and_norms, lambda rng: rng.standard_normal((2, 5, 6, 4))),
         "image": (_image, lambda rng: rng.standard_normal((2, 8, 8, 3))),
         "sequence": (_sequence, lambda rng: rng.standard_normal((2, 12, 4))),
         "recurrent": (_recurrent, lambda rng: rng.integers(0, 20, (2, 7))),
         "attention": (_attention, lambda rng: rng.integers(0, 20, (2, 7))),
         "dot_attention": (_dot_attention, lambda rng: rng.integers(0, 20, (2, 6))),
         "merging": (_merging, lambda rng: [rng.standard_normal((3, 4)), rng.standard_normal((3, 4))])}
CUSTOM = {"_named_function": _named_function}


def _inputs(case):
    data = CASES[case][1](np.random.default_rng(0))
    cast = lambda a: a.astype("int32") if a.dtype.kind == "i" else a.astype("float32")  # noqa: E731
    return [cast(a) for a in data] if isinstance(data, list) else cast(data)


def _outputs(model, x):
    out = model(x, training=False)
    return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]


def test_the_models_hold_every_shared_layer_class():
    used = set()
    for build, _ in CASES.values():
        model = build(fastnn)
        stack = list(model.layers)
        while stack:
            layer = stack.pop()
            used.add(type(layer))
            stack += list(getattr(layer, "layers", [])) if isinstance(layer, fastnn.Model) else []
            for attr in ("layer", "forward_layer", "backward_layer", "cell"):
                if isinstance(getattr(layer, attr, None), fastnn.layers.Layer):
                    stack.append(getattr(layer, attr))
            stack += list(getattr(layer, "cells", []))
    exported = {getattr(fastnn.layers, n) for n in fastnn.layers.__all__
                if isinstance(getattr(fastnn.layers, n), type) and issubclass(getattr(fastnn.layers, n),
                                                                               fastnn.layers.Layer)
                and hasattr(keras.layers, n) and n not in ("Layer", "Wrapper")}
    missing = sorted(cls.__name__ for cls in exported - used - {fastnn.layers.InputLayer} if cls not in used)
    assert not missing, f"add these layer classes to a model: {missing}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_fastnn_json_loads_in_keras(case):
    fm = CASES[case][0](fastnn)
    text = fm.to_json()
    km = keras.models.model_from_json(text, custom_objects=CUSTOM)
    assert _normalized(json.loads(km.to_json())) == _normalized(json.loads(text))
    km.set_weights(fm.get_weights())
    x = _inputs(case)
    for k, f in zip(_outputs(km, x), _outputs(fm, x)):
        np.testing.assert_allclose(f, k, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("case", sorted(CASES))
def test_keras_json_loads_in_fastnn(case):
    km = CASES[case][0](keras)
    text = km.to_json()
    fm = fastnn.models.model_from_json(text, custom_objects=CUSTOM)
    assert _normalized(json.loads(fm.to_json())) == _normalized(json.loads(text))
    fm.set_weights(km.get_weights())
    x = _inputs(case)
    for k, f in zip(_outputs(km, x), _outputs(fm, x)):
        np.testing.assert_allclose(f, k, rtol=2e-5, atol=2e-5)


def _compile(lib, model):
    # An explicit name: both libraries number default names ("adam_3") by their own earlier objects.
    model.compile(optimizer=lib.optimizers.Adam(learning_rate=0.01, beta_1=0.8, clipnorm=1.0, name="adam"),
                  loss=["mse", lib.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)],
                  loss_weights=[1.0, 0.5], metrics=[["mae"], [lib.metrics.CategoricalAccuracy(name="cacc")]])
    return model


def _two_outputs(lib):
    x = lib.Input((4,), name="cx")
    h = lib.layers.Dense(4, name="ch")(x)
    return lib.Model(x, [lib.layers.Dense(1, name="reg")(h), lib.layers.Dense(2, name="cls")(h)], name="compiled")


def test_compile_configs_move_both_ways():
    fm, km = _compile(fastnn, _two_outputs(fastnn)), _compile(keras, _two_outputs(keras))

    def without_jit(config):
        return {k: v for k, v in _normalized(config).items() if k != "jit_compile"}

    # jit_compile="auto" resolves per library, and the config holds the resolved value (as Keras writes it): fastnn's
    # compiled step (True, as Keras's JAX backend resolves it), Keras on TensorFlow's CPU: False. Each file keeps its
    # value when the other library loads it.
    assert fm.get_compile_config()["jit_compile"] is True and km.get_compile_config()["jit_compile"] is False
    assert without_jit(fm.get_compile_config()) == without_jit(km.get_compile_config())
    in_keras = keras.models.model_from_json(fm.to_json())
    in_fastnn = fastnn.models.model_from_json(km.to_json())
    assert in_keras.compiled and in_fastnn.compiled
    assert without_jit(in_keras.get_compile_config()) == without_jit(km.get_compile_config())
    assert without_jit(in_fastnn.get_compile_config()) == without_jit(fm.get_compile_config())
    assert in_keras.jit_compile is True and in_fastnn.jit_compile is False
    assert type(in_fastnn.optimizer) is fastnn.optimizers.Adam
    assert np.float32(in_fastnn.optimizer.get_config()["learning_rate"]) == np.float32(0.01)


def test_objects_of_every_family_move_both_ways():
    pairs = [(fastnn.initializers.TruncatedNormal(0.0, 0.5, seed=2), keras.initializers.TruncatedNormal(0.0, 0.5, 2)),
             (fastnn.regularizers.L1L2(0.1, 0.2), keras.regularizers.L1L2(0.1, 0.2)),
             (fastnn.constraints.MinMaxNorm(0.5, 2.0), keras.constraints.MinMaxNorm(0.5, 2.0)),
             (fastnn.losses.Huber(delta=2.0), keras.losses.Huber(delta=2.0)),
             (fastnn.metrics.AUC(num_thresholds=20, name="auc"), keras.metrics.AUC(num_thresholds=20, name="auc")),
             (fastnn.optimizers.RMSprop(0.002, rho=0.8, name="rms"), keras.optimizers.RMSprop(0.002, rho=0.8,
                                                                                               name="rms")),
             (fastnn.optimizers.schedules.CosineDecay(0.1, 100), keras.optimizers.schedules.CosineDecay(0.1, 100)),
             (fastnn.losses.mean_squared_error, keras.losses.mean_squared_error),
             (fastnn.activations.gelu, keras.activations.gelu)]
    for f, k in pairs:
        fc, kc = serialize_keras_object(f), keras.saving.serialize_keras_object(k)
        assert _normalized(fc) == _normalized(kc)
        k_back = keras.saving.deserialize_keras_object(json.loads(json.dumps(fc)))
        f_back = deserialize_keras_object(json.loads(json.dumps(kc)))
        if callable(f) and not hasattr(f, "get_config"):
            assert f_back is f and k_back is k
        else:
            assert type(k_back) is type(k) and type(f_back) is type(f)
            assert _normalized(f_back.get_config()) == _normalized(k_back.get_config())


def test_registered_custom_layers_share_their_registered_name():
    # The same class registered under the same "package>name" in both libraries loads in either.
    def define(lib):
        @lib.saving.register_keras_serializable(package="xlib")
        class Scale(lib.layers.Layer):
            def __init__(self, factor=1.0, **kwargs):
                super().__init__(**kwargs)
                self.factor = factor

            def call(self, x):
                return x * self.factor

            def get_config(self):
                return {**super().get_config(), "factor": self.factor}
        return Scale

    classes = {"fastnn": define(fastnn), "keras": define(keras)}
    try:
        fm = fastnn.Sequential([fastnn.Input((3,)), fastnn.layers.Dense(2, name="d"),
                                classes["fastnn"](factor=3.0, name="scale")])
        km = keras.models.model_from_json(fm.to_json())
        assert type(km.layers[1]) is classes["keras"] and km.layers[1].factor == 3.0
        back = fastnn.models.model_from_json(km.to_json())
        assert type(back.layers[1]) is classes["fastnn"] and back.layers[1].factor == 3.0
    finally:
        fastnn.saving.object_registration.GLOBAL_CUSTOM_NAMES.pop(
            fastnn.saving.object_registration.GLOBAL_CUSTOM_OBJECTS.pop("xlib>Scale"))
        from keras.src.saving import object_registration as k_registration

        k_registration.GLOBAL_CUSTOM_NAMES.pop(k_registration.GLOBAL_CUSTOM_OBJECTS.pop("xlib>Scale"))


def test_python_lambdas_are_refused_by_both_in_safe_mode_and_load_outside_it():
    def build(lib):
        return lib.Sequential([lib.Input((3,), name="lin"),
                               lib.layers.Lambda(lambda t: t * 2.0 + 1.0, name="lam")], name="lam_model")

    x = np.arange(6, dtype="float32").reshape(2, 3)
    for make, other_load, other_safe_load in (
            (lambda: build(fastnn), lambda c: keras.saving.deserialize_keras_object(c, safe_mode=False),
             lambda c: keras.saving.deserialize_keras_object(c)),
            (lambda: build(keras), lambda c: deserialize_keras_object(c, safe_mode=False),
             lambda c: deserialize_keras_object(c))):
        model = make()
        config = json.loads(model.to_json())
        with pytest.raises(ValueError, match="Requested the deserialization of a `Lambda` layer whose `function` "
                                             "is a Python lambda"):
            other_safe_load(config)
        loaded = other_load(config)
        np.testing.assert_allclose(np.asarray(loaded(x)), x * 2.0 + 1.0)
