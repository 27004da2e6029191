"""The article's sequence model (listing 8 of ../shared/SEED_USAGE.md: Input -> Embedding(mask_zero=True) -> LSTM ->
Dense(1, sigmoid)) and the recurrent models Keras users reach for next -- stacked LSTM(return_sequences=True) -> LSTM,
GRU (Keras 3's reset_after=True and reset_after=False), SimpleRNN, Bidirectional(LSTM) -- against Keras 3 (TensorFlow
backend). Each model is built twice, fastnn and Keras, by ONE function parameterised by the module, and fastnn's
weights are copied into the Keras model (keras_parity.model_pair).

The data are padded integer sequences (token 0 is padding, masked by the Embedding): each batch of 8 holds
sequences with the zeros at the end, at the start, inside, none at all, and (for the predictions) one sequence
that is nothing but padding. Checked: (a) predictions at identical weights agree to 1e-5 relative, and a
sequence's prediction does not depend on where its padding is (zeros at the start or the end: the masked steps
carry the states); (b) two epochs of fit (shuffle=False, binary crossentropy, dropout 0) give Keras's per-epoch
losses, predictions and every weight: SGD with momentum to 1e-5 relative, Adam by the bulk of the weights as
tests/e2e/test_keras_article_models.py judges it, both with the embedding table trained (Keras's rule for a table
row of repeated tokens, see the Adam test) and frozen (the recurrent layers alone). The dropout / recurrent_dropout
0.2 listing cannot match Keras (the masks come from different generators); that it trains and is deterministic for
a seed is tests/models/test_rnn_training.py. Small shapes (vocabulary 40, 8-wide embeddings and states, length 12,
32 sequences): 24 tests, about 30 s of CPU (50 s on a busy 2-core machine), most of it Keras tracing its loops.

    KERAS_BACKEND=tensorflow PYTHONPATH=$PWD/src /work/kvenv/bin/python -m pytest tests/e2e/test_keras_rnn_models.py
"""
from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")
pytest.importorskip("tensorflow")

import fastnn  # noqa: E402
from fastnn.testing import keras_parity  # noqa: E402

VOCAB, DIM, UNITS, MAXLEN = 40, 8, 8, 12
SAMPLES, BATCH = 32, 8


# --- the models: one builder each, `lib` is fastnn or keras; `dtype` goes to every layer --------------------------
def listing8(lib, dtype="float32"):
    # As printed in the article, with the names filled in (vocab_size, embedding_dim, latent_dim, maxlen) and
    # dropout 0: the masks of dropout cannot match between two libraries.
    L = lib.layers
    inputs = L.Input(shape=(MAXLEN,))
    embedding = L.Embedding(VOCAB, DIM, mask_zero=True, dtype=dtype)(inputs)
    lstm_out = L.LSTM(units=UNITS, dtype=dtype)(embedding)
    dense_out = L.Dense(units=1, activation="sigmoid", dtype=dtype)(lstm_out)
    return lib.models.Model(inputs=[inputs], outputs=[dense_out])


def _embedded_rnn(recurrent):
    """Input -> Embedding(mask_zero=True) -> ``recurrent(L, dtype)`` (a tensor -> tensor function) -> Dense(1, sigmoid)."""
    def build(lib, dtype="float32"):
        L = lib.layers
        inputs = L.Input(shape=(MAXLEN,))
        x = L.Embedding(VOCAB, DIM, mask_zero=True, dtype=dtype)(inputs)
        x = recurrent(L, dtype)(x)
        return lib.models.Model(inputs, L.Dense(1, activation="sigmoid", dtype=dtype)(x))
    return build


def _stacked(L, dtype):
    first = L.LSTM(UNITS, return_sequences=True, dtype=dtype)
    second = L.LSTM(UNITS, dtype=dtype)
    return lambda x: second(first(x))


MODELS = {
    "listing8": listing8,
    "stacked_lstm": _embedded_rnn(_stacked),
    "gru": _embedded_rnn(lambda L, dtype: L.GRU(UNITS, dtype=dtype)),
    "gru_reset_before": _embedded_rnn(lambda L, dtype: L.GRU(UNITS, reset_after=False, dtype=dtype)),
    "simple_rnn": _embedded_rnn(lambda L, dtype: L.SimpleRNN(UNITS, dtype=dtype)),
    "bidirectional_lstm": _embedded_rnn(lambda L, dtype: L.Bidirectional(L.LSTM(UNITS, dtype=dtype), dtype=dtype)),
}

# As in test_keras_article_models.py: hyperparameters exactly representable in float32 (Keras turns Python floats
# into float32 tensors first), so both libraries run the same numbers and the comparison measures the models.
SGD = lambda lib: lib.optimizers.SGD(learning_rate=2 ** -2, momentum=float(np.float32(0.9)))  # noqa: E731
ADAM = lambda lib: lib.optimizers.Adam(learning_rate=2 ** -7, beta_1=float(np.float32(0.9)),  # noqa: E731
                                       beta_2=float(np.float32(0.999)))


# --- the data ------------------------------------------------------------------------------------------------------
PADDING_KINDS = ("end", "start", "inside", "none")


def padded_sequences(n=SAMPLES, seed=0):
    """``n`` int32 token sequences of length MAXLEN (tokens 1..VOCAB-1, 0 = padding) and float32 labels (n, 1).
    Sequence i has the padding kind PADDING_KINDS[i % 4]: its zeros at the end (post-padding, Keras's
    pad_sequences(padding="post")), at the start (the "pre" default), at random places inside (between tokens, never
    the first or the last step), or none. Label: whether token 1, 2 or 3 occurs (learnable, about half the
    sequences). Also returns each sequence's tokens without the padding, to rebuild it padded the other way."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, MAXLEN), np.int32)
    tokens = []
    for i in range(n):
        kind = PADDING_KINDS[i % len(PADDING_KINDS)]
        length = MAXLEN if kind == "none" else int(rng.integers(2, MAXLEN - 1))
        seq = rng.integers(1, VOCAB, length).astype(np.int32)
        if kind == "end":
            x[i, :length] = seq
        elif kind == "start":
            x[i, MAXLEN - length:] = seq
        else:
            x[i] = rng.integers(1, VOCAB, MAXLEN)
            if kind == "inside":
                x[i, rng.choice(np.arange(1, MAXLEN - 1), MAXLEN - length, replace=False)] = 0
        tokens.append(x[i][x[i] != 0])
    y = np.array([[float(np.isin(t, (1, 2, 3)).any())] for t in tokens], np.float32)
    return x, y, tokens


def _padded_the_other_way(x, tokens):
    """The sequences with padding at the end moved to the start and vice versa (the others unchanged)."""
    out = x.copy()
    for i, t in enumerate(tokens):
        kind = PADDING_KINDS[i % len(PADDING_KINDS)]
        if kind in ("end", "start"):
            out[i] = 0
            if kind == "end":
                out[i, MAXLEN - len(t):] = t
            else:
                out[i, :len(t)] = t
    return out


def _perturbed_weights(model, seed=0, scale=0.2):
    """The model's weights plus seeded noise: the biases leave their zero / unit-forget-bias start, so every term of
    the cell shows in the predictions."""
    rng = np.random.default_rng(seed)
    return [w + rng.normal(0, scale, w.shape).astype(w.dtype) for w in model.get_weights()]


# --- the checks ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(MODELS))
def test_predictions_at_identical_weights_match_keras(name):
    x, _, tokens = padded_sequences()
    x = np.concatenate([x, np.zeros((1, MAXLEN), np.int32)])  # one sequence that is nothing but padding
    build = MODELS[name]
    fastnn.utils.set_random_seed(0)
    f_model, k_model = keras_parity.model_pair(build, weights=_perturbed_weights(build(fastnn)))
    assert [(w.name, tuple(w.shape)) for w in f_model.weights] == [(w.name, tuple(w.shape)) for w in k_model.weights]
    assert [type(layer).__name__ for layer in f_model.layers] == [type(layer).__name__ for layer in k_model.layers]
    expected = k_model.predict(x, batch_size=BATCH, verbose=0)
    got = f_model.predict(x, batch_size=BATCH, verbose=0)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)  # measured: within 2.4e-7 relative
    np.testing.assert_allclose(f_model(x).numpy(), expected, rtol=1e-5, atol=1e-7)  # the call, inference mode
    # The predictions spread (the weights reach them), and where the padding sits does not change a prediction:
    # masked steps carry the states, so zeros at the start or the end leave the same last output.
    assert np.ptp(got) > 1e-2, got
    other_way = f_model.predict(_padded_the_other_way(x[:-1], tokens), batch_size=BATCH, verbose=0)
    np.testing.assert_allclose(other_way, got[:-1], rtol=1e-6, atol=1e-7)


def _assert_runs_match(f_model, k_model, f_losses, k_losses, x, losses_rtol, predictions_rtol, predictions_atol):
    assert len(f_losses) == len(k_losses) == 2 and np.all(np.isfinite(f_losses))
    np.testing.assert_allclose(f_losses, k_losses, rtol=losses_rtol)
    np.testing.assert_allclose(f_model.predict(x, verbose=0), k_model.predict(x, verbose=0), rtol=predictions_rtol,
                               atol=predictions_atol)


def _assert_trained(f_model, initial, frozen_embedding=False):
    # Training moved every weight array (the padding row of the embedding never moves: masked steps have no
    # gradient), so the comparison of the weights judges the whole model's backward pass.
    table, table0 = f_model.get_weights()[0], initial[0]
    for w, w0 in zip(f_model.get_weights()[1:], initial[1:]):
        assert np.abs(w - w0).max() > 1e-4, (w.shape, float(np.abs(w - w0).max()))
    if frozen_embedding:
        np.testing.assert_array_equal(table, table0)
    else:
        assert np.abs(table - table0).max() > 1e-4
        np.testing.assert_array_equal(table[0], table0[0])


def _frozen_embedding(build):
    """``build`` with the Embedding's table frozen (trainable=False, set before compile in both libraries)."""
    def frozen(lib, dtype="float32"):
        model = build(lib, dtype)
        next(layer for layer in model.layers if type(layer).__name__ == "Embedding").trainable = False
        return model
    return frozen


@pytest.mark.parametrize("name", list(MODELS))
def test_float32_sgd_training_matches_keras(name):
    # Two epochs of 4 batches, SGD(0.25, momentum 0.9): losses, predictions and every weight to 1e-5 relative (the
    # 1e-6 absolute floor is for weights near zero). Measured (the C++ recurrence kernels, AVX-512): losses within
    # 9e-8, predictions within 2.4e-7, every weight within 15% of its tolerance (SimpleRNN; the others within 4%).
    x, y, _ = padded_sequences()
    fastnn.utils.set_random_seed(0)
    initial = MODELS[name](fastnn).get_weights()
    f_model, k_model, f_losses, k_losses = keras_parity.fit_pair(MODELS[name], SGD, x, y, weights=initial,
                                                                 batch_size=BATCH, loss="binary")
    _assert_runs_match(f_model, k_model, f_losses, k_losses, x, 1e-5, 1e-5, 1e-6)
    keras_parity.assert_weights_close(f_model, k_model, rtol=1e-5, atol=1e-6)
    _assert_trained(f_model, initial)


@pytest.mark.parametrize("frozen_embedding", [False, True], ids=["trained_embedding", "frozen_embedding"])
@pytest.mark.parametrize("name", list(MODELS))
def test_float32_adam_training_matches_keras(name, frozen_embedding):
    # Adam as test_keras_article_models.py judges it: errors relative to each array's scale, the 99th percentile of
    # all the weights together below 2e-5 and every one below 0.05; losses to 2e-5, predictions to 2e-5 absolute.
    # Measured (the C++ recurrence kernels, AVX-512), trained or frozen table alike: losses within 9e-8, predictions
    # within 1.2e-7, the 99th percentile <= 7.3e-7, every weight within 4.6e-6 of its array's scale. The table's own update is the subtle part: Keras's
    # Embedding gradient is a tf.IndexedSlices with one slice per token occurrence, and Keras's Adam squares the
    # SLICES before they are summed into the row, so a row whose token occurs k times in a batch gets
    # v += (1 - beta_2) * sum_k g_k**2 (not (sum_k g_k)**2 as from the dense gradient; m is linear, so the same).
    # The unfrozen runs (vocabulary 40, 96 tokens per batch: many repeats) check that fastnn follows that rule (with
    # the dense rule, measured before fastnn had it: losses 0.3% apart after two epochs, the table 0.23 of its scale).
    build = _frozen_embedding(MODELS[name]) if frozen_embedding else MODELS[name]
    x, y, _ = padded_sequences()
    fastnn.utils.set_random_seed(0)
    initial = build(fastnn).get_weights()
    f_model, k_model, f_losses, k_losses = keras_parity.fit_pair(build, ADAM, x, y, weights=initial,
                                                                 batch_size=BATCH, loss="binary")
    _assert_runs_match(f_model, k_model, f_losses, k_losses, x, 2e-5, 0, 2e-5)
    keras_parity.assert_bulk_of_weights_close(f_model, k_model, bulk=2e-5, quantile=99, everything=0.05)
    _assert_trained(f_model, initial, frozen_embedding)
