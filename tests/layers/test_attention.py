"""MultiHeadAttention without Keras: a NumPy reference of the attention, central differences of the input and
weight gradients (float64), causality, the masks, dropout only in training, bad arguments, the compiled step's
bits against eager execution, and a .keras round trip (tests/e2e/test_keras_attention.py checks it against Keras)."""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn.testing.compiled_step import assert_compiled_equals_eager
from fastnn.testing.gradcheck import check_gradients, check_weight_gradients

L = fastnn.layers
RNG = np.random.default_rng(0)


def _reference(layer, q, v, mask=None):
    """softmax(q k^T / sqrt(kd)) v per head, in float64, from the layer's weights."""
    wq, bq, wk, bk, wv, bv, wo, bo = [w.numpy().astype(np.float64) for w in layer.weights]
    Q = np.einsum("btd,dhk->bhtk", q, wq) + bq[None, :, None, :]
    K = np.einsum("bsd,dhk->bhsk", v, wk) + bk[None, :, None, :]
    V = np.einsum("bsd,dhk->bhsk", v, wv) + bv[None, :, None, :]
    scores = np.einsum("bhtk,bhsk->bhts", Q, K) / np.sqrt(wq.shape[-1])
    if mask is not None:
        scores = np.where(mask[:, None], scores, -1e30)
    p = np.exp(scores - scores.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return np.einsum("bhts,bhsk,hko->bto", p, V, wo) + bo


def test_values_match_a_numpy_reference_with_and_without_masks():
    layer = L.MultiHeadAttention(3, 4, value_dim=2, bias_initializer="he_normal", dtype="float64")
    q, v = RNG.standard_normal((2, 5, 6)), RNG.standard_normal((2, 7, 6))
    np.testing.assert_allclose(layer(q, v).numpy(), _reference(layer, q, v), rtol=1e-10, atol=1e-12)
    mask = RNG.random((2, 5, 7)) > 0.3
    mask[:, :, 0] = True
    np.testing.assert_allclose(layer(q, v, attention_mask=mask).numpy(), _reference(layer, q, v, mask), rtol=1e-10,
                               atol=1e-12)
    causal = np.tril(np.ones((5, 5), bool))[None].repeat(2, 0)
    np.testing.assert_allclose(layer(q, q[:, :, :6], use_causal_mask=True).numpy(),
                               _reference(layer, q, q, causal), rtol=1e-10, atol=1e-12)
    out, scores = layer(q, v, return_attention_scores=True)
    assert out.shape == (2, 5, 6) and scores.shape == (2, 3, 5, 7)
    np.testing.assert_allclose(scores.numpy().sum(-1), 1.0, rtol=1e-12)


def test_causal_outputs_do_not_depend_on_later_steps():
    layer = L.MultiHeadAttention(2, 3)
    x = RNG.standard_normal((1, 6, 4)).astype("float32")
    y = layer(x, x, use_causal_mask=True).numpy()
    x2 = x.copy()
    x2[:, 4:] += 5.0
    y2 = layer(x2, x2, use_causal_mask=True).numpy()
    np.testing.assert_array_equal(y[:, :4], y2[:, :4])
    assert not np.allclose(y[:, 4:], y2[:, 4:])


@pytest.mark.parametrize("kwargs,call", [({}, {}), ({"use_gate": True, "value_dim": 3, "output_shape": 5}, {}),
                                         ({}, {"use_causal_mask": True, "return_attention_scores": True})])
def test_input_and_weight_gradients_match_central_differences(kwargs, call):
    layer = L.MultiHeadAttention(2, 3, bias_initializer="he_normal", dtype="float64", **kwargs)
    q, v = RNG.standard_normal((2, 4, 5)), RNG.standard_normal((2, 4, 5))

    def out(a, b):
        y = layer(a, b, **call)
        return y[0] if isinstance(y, tuple) else y

    check_gradients(out, [q, v])
    check_weight_gradients(lambda: out(q, v), layer.trainable_weights, RNG.standard_normal(out(q, v).shape))


def test_dropout_only_in_training_and_bad_arguments():
    layer = L.MultiHeadAttention(2, 4, dropout=0.5, seed=1)
    x = RNG.standard_normal((2, 6, 8)).astype("float32")
    np.testing.assert_array_equal(layer(x, x).numpy(), layer(x, x).numpy())
    assert not np.allclose(layer(x, x, training=True).numpy(), layer(x, x).numpy())
    with pytest.raises(ValueError, match="num_heads"):
        L.MultiHeadAttention(0, 4)
    with pytest.raises(ValueError, match="key_dim"):
        L.MultiHeadAttention(2, "4")
    with pytest.raises(ValueError, match="dropout"):
        L.MultiHeadAttention(2, 4, dropout=1.5)
    with pytest.raises(ValueError, match="sliding_window"):
        L.MultiHeadAttention(2, 4, sliding_window=0)
    with pytest.raises(ValueError, match="flash_attention"):
        L.MultiHeadAttention(2, 4, flash_attention=True)
    with pytest.raises(ValueError, match="except the last one"):
        L.MultiHeadAttention(2, 4)(x, x, x[:, :3])
    with pytest.raises(ValueError, match="sequence, features"):
        L.MultiHeadAttention(2, 4)(x[:, None], x[:, None])
    with pytest.raises(ValueError, match="attention_axes"):
        L.MultiHeadAttention(2, 4, attention_axes=(2,))(x, x)


def _model():
    inp = fastnn.Input((6, 8))
    a = L.MultiHeadAttention(2, 4, dropout=0.2, seed=5)(inp, inp, use_causal_mask=True)
    h = L.LayerNormalization()(L.Add()([inp, a]))
    c = L.MultiHeadAttention(2, 3, use_gate=True)(h, inp)
    return fastnn.Model(inp, L.Dense(3, activation="softmax")(L.GlobalAveragePooling1D()(c)))


def test_compiled_step_gives_the_eager_bits_and_the_file_round_trips(tmp_path):
    x = RNG.standard_normal((24, 6, 8)).astype("float32")
    y = np.eye(3, dtype="float32")[RNG.integers(0, 3, 24)]
    model = assert_compiled_equals_eager(_model, x, y, {"optimizer": "adam", "loss": "categorical_crossentropy"})
    model.save(tmp_path / "mha.keras")
    loaded = fastnn.models.load_model(tmp_path / "mha.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_dot_and_additive_attention_values_masks_and_gradients():
    q, v = RNG.standard_normal((2, 4, 3)), RNG.standard_normal((2, 5, 3))
    dot = L.Attention(use_scale=True, dtype="float64")
    dot([q, v])
    dot.set_weights([np.array(0.7)])
    s = 0.7 * np.einsum("btd,bsd->bts", q, v)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    np.testing.assert_allclose(dot([q, v]).numpy(), p @ v, rtol=1e-12)
    q_mask = np.array([[1, 1, 0, 1], [1, 1, 1, 1]], bool)
    v_mask = np.array([[1, 1, 1, 0, 0], [1, 0, 1, 1, 1]], bool)
    out, weights = dot([q, v], mask=[q_mask, v_mask], return_attention_scores=True)
    assert np.all(weights.numpy()[~np.broadcast_to(v_mask[:, None], weights.shape)] < 1e-12)
    assert np.all(out.numpy()[~q_mask] == 0)
    check_gradients(lambda a, b: dot([a, b]), [q, v])
    check_gradients(lambda a, b: dot([a, b], mask=[q_mask, v_mask]), [q, v])
    additive = L.AdditiveAttention(dtype="float64")
    additive([q, v])
    scale = additive.scale.numpy()
    s = (scale * np.tanh(q[:, :, None, :] + v[:, None, :, :])).sum(-1)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    np.testing.assert_allclose(additive([q, v]).numpy(), p @ v, rtol=1e-12)
    check_gradients(lambda a, b: additive([a, b], use_causal_mask=True), [q, v[:, :4]])
    check_weight_gradients(lambda: additive([q, v]), additive.trainable_weights, RNG.standard_normal((2, 4, 3)))
    concat = L.Attention(score_mode="concat", use_scale=True, dtype="float64")
    concat([q, v])
    check_weight_gradients(lambda: concat([q, v]), concat.trainable_weights, RNG.standard_normal((2, 4, 3)))
    with pytest.raises(ValueError, match="score_mode"):
        L.Attention(score_mode="general")
    with pytest.raises(ValueError, match="list of inputs"):
        L.Attention()(q)
    with pytest.raises(ValueError, match="length 2 or 3"):
        L.Attention()([q])
