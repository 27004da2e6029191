"""Listing 8 of the article as printed -- Input -> Embedding(mask_zero=True) -> LSTM(dropout=0.2,
recurrent_dropout=0.2) -> Dense(1, sigmoid) -- trains and is deterministic for a seed. Its dropout masks cannot match
Keras's (other generators), so this needs no Keras: tests/e2e/test_keras_rnn_models.py compares the dropout-0 models
with Keras. Synthetic padded sequences with a learnable rule (label: whether token 1 occurs); a few seconds."""
from __future__ import annotations

import numpy as np

import fastnn
from fastnn.layers import LSTM, Dense, Embedding, Input
from fastnn.models import Model

VOCAB, DIM, UNITS, MAXLEN = 30, 16, 16, 16


def padded_sequences(n, seed):
    """n int32 sequences of length MAXLEN, zero-padded at the end or at the start (random lengths 3..MAXLEN), and
    float32 labels (n, 1): whether token 1 occurs. Token 1 is planted in half the sequences, so the classes balance."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, MAXLEN), np.int32)
    y = np.zeros((n, 1), np.float32)
    for i in range(n):
        length = int(rng.integers(3, MAXLEN + 1))
        seq = rng.integers(2, VOCAB, length)
        if i % 2:
            seq[rng.integers(0, length)] = 1
            y[i] = 1.0
        if rng.random() < 0.5:
            x[i, :length] = seq
        else:
            x[i, MAXLEN - length:] = seq
    return x, y


def listing8(dropout=0.2, recurrent_dropout=0.2, vocab_size=VOCAB, embedding_dim=DIM, latent_dim=UNITS,
             maxlen=MAXLEN):
    # As printed in the article (../shared/SEED_USAGE.md, listing 8), with fastnn's imports.
    inputs = Input(shape=(maxlen,))
    embedding = Embedding(vocab_size, embedding_dim, mask_zero=True)(inputs)
    lstm_out = LSTM(units=latent_dim, dropout=dropout, recurrent_dropout=recurrent_dropout)(embedding)
    dense_out = Dense(units=1, activation='sigmoid')(lstm_out)
    model = Model(inputs=[inputs], outputs=[dense_out])
    model.compile(loss="binary_crossentropy", optimizer=fastnn.optimizers.Adam(learning_rate=0.01),
                  metrics=["accuracy"])
    return model


def _train(seed, data_seed=0, epochs=6, weights=None, shuffle=True, **kwargs):
    """Builds listing 8 under ``seed`` (weights from ``weights`` if given), trains it, returns (model, history)."""
    x, y = padded_sequences(256, data_seed)
    fastnn.utils.set_random_seed(seed)
    model = listing8(**kwargs)
    if weights is not None:
        model.set_weights(weights)
    history = model.fit(x, y, epochs=epochs, batch_size=32, shuffle=shuffle, verbose=0)
    return model, history.history


def test_listing8_with_dropout_trains():
    model, history = _train(seed=0)
    losses = history["loss"]
    assert np.all(np.isfinite(losses)), losses
    assert losses[-1] < 0.8 * losses[0], losses  # the loss falls
    x, y = padded_sequences(256, seed=1)  # sequences it has not seen
    loss, accuracy = model.evaluate(x, y, verbose=0)
    assert accuracy > 0.75, (accuracy, losses)


def test_listing8_with_dropout_is_deterministic_for_a_seed():
    first, h1 = _train(seed=3, epochs=2)
    again, h2 = _train(seed=3, epochs=2)
    assert h1["loss"] == h2["loss"]
    for a, b in zip(first.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    # The dropout masks come from the seed: from the same initial weights and without shuffling, the same seed
    # repeats itself, another seed trains differently, and so does dropout 0.
    fastnn.utils.set_random_seed(3)
    initial = listing8().get_weights()
    _, same_seed = _train(seed=3, epochs=2, weights=initial, shuffle=False)
    _, same_again = _train(seed=3, epochs=2, weights=initial, shuffle=False)
    _, other_seed = _train(seed=4, epochs=2, weights=initial, shuffle=False)
    _, no_dropout = _train(seed=3, epochs=2, weights=initial, shuffle=False, dropout=0.0, recurrent_dropout=0.0)
    assert same_seed["loss"] == same_again["loss"]
    assert other_seed["loss"] != same_seed["loss"]
    assert no_dropout["loss"] != same_seed["loss"]
    assert no_dropout["loss"] != other_seed["loss"]
