"""Live cross-check of MultiHeadAttention against Keras 3 (TensorFlow backend): the same weights give the same
outputs, attention scores and gradients (inputs and every weight) with every mask source (the query's and value's
Keras masks, attention_mask, use_causal_mask, sliding_window, fully masked rows on both of Keras's paths),
value_dim / output_shape / use_gate / no bias, the same weight names, shapes and configs; a Keras transformer block
loads from its config, predicts, and trains the same; .keras files move both ways. Skipped without Keras;
tests/layers/test_attention.py holds the semantics without it.

    KERAS_BACKEND=tensorflow PYTHONPATH=$PWD/src /work/kvenv/bin/python -m pytest tests/e2e/test_keras_attention.py
"""
from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

import fastnn  # noqa: E402
from fastnn.testing import keras_parity  # noqa: E402

rand = keras_parity.random_input


def _pair(kwargs, q_shape, v_shape):
    k = keras.layers.MultiHeadAttention(name="mha", **kwargs)
    f = fastnn.layers.MultiHeadAttention(name="mha", **kwargs)
    k(rand(q_shape), rand(v_shape))
    f(rand(q_shape), rand(v_shape))
    assert [w.path for w in f.weights] == [w.path for w in k.weights]
    assert [tuple(w.shape) for w in f.weights] == [tuple(w.shape) for w in k.weights]
    weights = [rand(w.shape, seed=10 + i) * 0.5 for i, w in enumerate(k.weights)]
    k.set_weights(weights)
    f.set_weights(weights)
    return k, f


def _run_keras(layer, q, v, upstream, **kw):
    qv, vv = tf.Variable(q), tf.Variable(v)
    with tf.GradientTape() as tape:
        out = layer(qv, vv, **kw)
        y = out[0] if isinstance(out, tuple) else out
        objective = tf.reduce_sum(y * upstream)
    grads = tape.gradient(objective, [qv, vv] + list(layer.trainable_variables))
    return out, [np.asarray(g) for g in grads]


def _run_fastnn(layer, q, v, upstream, **kw):
    qv, vv = fastnn.Variable(q), fastnn.Variable(v)
    with fastnn.GradientTape() as tape:
        out = layer(qv, vv, **kw)
        y = out[0] if isinstance(out, tuple) else out
        objective = fastnn.ops.sum(fastnn.ops.multiply(y, upstream))
    grads = tape.gradient(objective, [qv, vv] + list(layer.trainable_weights))
    return out, [g.numpy() for g in grads]


MASK = np.array([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 0]], bool)
ATTENTION_MASK = np.random.default_rng(3).random((2, 5, 6)) > 0.3
ATTENTION_MASK[0, 2] = False  # a query row with every key masked


@pytest.mark.parametrize("kwargs,call,self_attention", [
    ({"num_heads": 2, "key_dim": 4}, {}, False),
    ({"num_heads": 3, "key_dim": 2, "value_dim": 5, "output_shape": 7}, {}, False),
    ({"num_heads": 2, "key_dim": 4, "use_bias": False}, {}, False),
    ({"num_heads": 2, "key_dim": 4, "use_gate": True}, {}, False),
    ({"num_heads": 2, "key_dim": 4}, {"use_causal_mask": True}, True),
    ({"num_heads": 2, "key_dim": 4, "sliding_window": 2}, {}, True),
    ({"num_heads": 2, "key_dim": 4}, {"attention_mask": ATTENTION_MASK}, False),
    ({"num_heads": 2, "key_dim": 4}, {"attention_mask": ATTENTION_MASK, "return_attention_scores": True}, False),
    ({"num_heads": 2, "key_dim": 4}, {"value_mask": MASK}, False),
    ({"num_heads": 2, "key_dim": 4}, {"return_attention_scores": True}, False),
], ids=["basic", "value_dim_output_shape", "no_bias", "gate", "causal", "sliding_window", "attention_mask",
        "attention_mask_scores", "value_mask", "scores"])
def test_outputs_scores_and_gradients_match_keras(kwargs, call, self_attention):
    q_shape, v_shape = (2, 5, 8), ((2, 5, 8) if self_attention else (2, 6, 8))
    k_layer, f_layer = _pair(kwargs, q_shape, v_shape)
    q = rand(q_shape, seed=1)
    v = q if self_attention else rand(v_shape, seed=2)
    out_shape = tuple(k_layer.compute_output_shape(q_shape, v_shape))
    upstream = rand(out_shape, seed=3)
    (k_out, k_g), (f_out, f_g) = _run_keras(k_layer, q, v, upstream, **call), _run_fastnn(f_layer, q, v, upstream, **call)
    if call.get("return_attention_scores"):
        np.testing.assert_allclose(f_out[1].numpy(), np.asarray(k_out[1]), rtol=1e-5, atol=1e-6)
        k_out, f_out = k_out[0], f_out[0]
    np.testing.assert_allclose(f_out.numpy(), np.asarray(k_out), rtol=1e-5, atol=1e-5)
    assert len(f_g) == len(k_g)
    for i, (f, k) in enumerate(zip(f_g, k_g)):
        np.testing.assert_allclose(f, k, rtol=1e-4, atol=1e-5, err_msg=str(i))
    assert f_layer.get_config() == k_layer.get_config()
    assert f_layer.get_build_config() == k_layer.get_build_config()


def test_the_query_and_value_masks_of_embeddings_flow_as_in_keras():
    tokens = np.array([[3, 5, 2, 0, 0], [7, 1, 4, 9, 0]], "int32")

    def build(lib):
        inp = lib.Input((5,), dtype="int32")
        e = lib.layers.Embedding(12, 8, mask_zero=True)(inp)
        a = lib.layers.MultiHeadAttention(2, 4)(e, e)
        return lib.Model(inp, lib.layers.GlobalAveragePooling1D()(a))

    km = build(keras)
    fm = build(fastnn)
    fm.set_weights(km.get_weights())
    np.testing.assert_allclose(fm.predict(tokens, verbose=0), km.predict(tokens, verbose=0), rtol=1e-5, atol=1e-6)


def _transformer(lib, dtype="float32"):
    L = lib.layers
    inp = lib.Input((6, 8))
    attended = L.MultiHeadAttention(2, 4, dropout=0.0)(inp, inp)
    h = L.LayerNormalization(epsilon=1e-6)(L.Add()([inp, attended]))
    ff = L.Dense(8)(L.Dense(16, activation="relu")(h))
    h = L.LayerNormalization(epsilon=1e-6)(L.Add()([h, ff]))
    return lib.Model(inp, L.Dense(3, activation="softmax")(L.GlobalAveragePooling1D()(h)))


def test_a_keras_transformer_block_loads_predicts_and_trains_the_same(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 6, 8)).astype("float32")
    y = np.eye(3, dtype="float32")[rng.integers(0, 3, 16)]
    keras.utils.set_random_seed(0)
    km = _transformer(keras)
    fm = fastnn.Model.from_config(km.get_config())
    fm.set_weights(km.get_weights())
    np.testing.assert_allclose(fm.predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    back = keras.Model.from_config(fm.get_config())
    back.set_weights(fm.get_weights())
    np.testing.assert_allclose(back.predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-6, atol=1e-6)
    km.save(str(tmp_path / "k.keras"))
    loaded = fastnn.models.load_model(str(tmp_path / "k.keras"))
    np.testing.assert_allclose(loaded.predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    fm.save(str(tmp_path / "f.keras"))
    k_loaded = keras.models.load_model(str(tmp_path / "f.keras"))
    np.testing.assert_allclose(k_loaded.predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    # SGD, not Adam: the key projection's bias has an exactly zero gradient (a constant q . b_k per query row,
    # which the softmax cancels), so both libraries hand the optimizer rounding noise there, and Adam's
    # m / sqrt(v) turns any noise into steps of size lr with the noise's (library-specific) sign.
    f_model, k_model, f_loss, k_loss = keras_parity.fit_pair(
        _transformer, lambda lib: lib.optimizers.SGD(0.05, momentum=0.9), x, y, weights=km.get_weights(), epochs=2)
    np.testing.assert_allclose(f_loss, k_loss, rtol=1e-5)
    keras_parity.assert_weights_close(f_model, k_model, rtol=1e-4, atol=1e-5)


def test_chained_attention_over_one_masked_embedding_matches_keras():
    # Keras's MultiHeadAttention clears its inputs' masks when it runs: a second attention over the same
    # embedding output then sees no value / key mask. fastnn mirrors it, so the numbers agree.
    tokens = np.array([[3, 5, 2, 0, 0, 0, 1], [0, 7, 1, 4, 9, 2, 2]], "int32")

    def build(lib):
        L = lib.layers
        inp = lib.Input((7,), dtype="int32")
        e = L.Embedding(20, 8, mask_zero=True)(inp)
        a = L.MultiHeadAttention(2, 4, dropout=0.1)(e, e, use_causal_mask=True)
        h = L.LayerNormalization()(L.Add()([e, a]))
        c = L.MultiHeadAttention(2, 3, value_dim=2, output_shape=5)(h, e, e)
        return lib.Model(inp, L.GlobalAveragePooling1D()(c))

    keras.utils.set_random_seed(1)
    km = build(keras)
    fm = build(fastnn)
    fm.set_weights(km.get_weights())
    np.testing.assert_allclose(fm.predict(tokens, verbose=0), km.predict(tokens, verbose=0), rtol=1e-5, atol=1e-6)


QM = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
VM = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 0, 1, 1, 1]], bool)


@pytest.mark.parametrize("name,kwargs", [("Attention", {}), ("Attention", {"use_scale": True}),
                                         ("Attention", {"score_mode": "concat", "use_scale": True}),
                                         ("AdditiveAttention", {}), ("AdditiveAttention", {"use_scale": False})])
@pytest.mark.parametrize("call,three", [({}, False), ({"mask": [QM, VM]}, True),
                                        ({"use_causal_mask": True, "return_attention_scores": True}, False)])
def test_dot_and_additive_attention_match_keras(name, kwargs, call, three):
    q = rand((2, 5, 4), seed=1)
    v = q if call.get("use_causal_mask") else rand((2, 6, 4), seed=2)
    inputs = [q, v, rand(v.shape, seed=4)] if three else [q, v]
    k_layer, f_layer = keras_parity.layer_pair(name, kwargs)
    k_layer(inputs)
    f_layer(inputs)
    assert [w.name for w in f_layer.weights] == [w.name for w in k_layer.weights]
    weights = [rand(w.shape, seed=7 + i) for i, w in enumerate(k_layer.weights)]
    k_layer.set_weights(weights)
    f_layer.set_weights(weights)
    upstream = rand((2, 5, 4), seed=3)
    k_vars = [tf.Variable(a) for a in inputs]
    with tf.GradientTape() as tape:
        k_out = k_layer([tf.identity(t) for t in k_vars], **call)  # tensors: Keras's ops reject a Variable here
        objective = tf.reduce_sum((k_out[0] if isinstance(k_out, tuple) else k_out) * upstream)
    k_g = tape.gradient(objective, k_vars + list(k_layer.trainable_variables))
    f_vars = [fastnn.Variable(a) for a in inputs]
    with fastnn.GradientTape() as tape:
        f_out = f_layer(f_vars, **call)
        objective = fastnn.ops.sum(fastnn.ops.multiply(f_out[0] if isinstance(f_out, tuple) else f_out, upstream))
    f_g = tape.gradient(objective, f_vars + list(f_layer.trainable_weights))
    if isinstance(k_out, tuple):
        np.testing.assert_allclose(f_out[1].numpy(), np.asarray(k_out[1]), rtol=1e-5, atol=1e-6)
        k_out, f_out = k_out[0], f_out[0]
    np.testing.assert_allclose(f_out.numpy(), np.asarray(k_out), rtol=1e-5, atol=1e-6)
    for f, k in zip(f_g, k_g):
        if k is None:
            assert f is None or not np.any(f.numpy())
        else:
            np.testing.assert_allclose(f.numpy(), np.asarray(k), rtol=1e-4, atol=1e-5)
    assert f_layer.get_config() == k_layer.get_config()
    assert getattr(fastnn.layers, name).from_config(k_layer.get_config()).get_config() == k_layer.get_config()


def test_attention_over_masked_embeddings_in_a_model_matches_keras():
    tokens = np.array([[3, 5, 2, 0, 0, 0], [7, 1, 4, 9, 2, 0]], "int32")

    def build(lib):
        L = lib.layers
        inp = lib.Input((6,), dtype="int32")
        e = L.Embedding(12, 4, mask_zero=True)(inp)
        a = L.Attention(use_scale=True)([e, e])
        b = L.AdditiveAttention()([a, e])
        return lib.Model(inp, L.GlobalAveragePooling1D()(b))

    keras.utils.set_random_seed(2)
    km = build(keras)
    fm = fastnn.Model.from_config(km.get_config())
    fm.set_weights(km.get_weights())
    np.testing.assert_allclose(fm.predict(tokens, verbose=0), km.predict(tokens, verbose=0), rtol=1e-5, atol=1e-6)
