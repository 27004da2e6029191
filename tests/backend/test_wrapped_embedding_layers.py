"""Embedding, TimeDistributed and Masking on the wrapped backend (buffers that refuse NumPy): the lookup, its mask,
the table's gradient, one Adam step on the table (the per-lookup squares path) and TimeDistributed's reshaped and
per-slice paths compute through fastnn.backend only, with numbers equal to the CPU backend's."""
from __future__ import annotations

import numpy as np

import fastnn
from fastnn import layers
from fastnn.autograd.keras_attrs import get_keras_mask
from fastnn.autograd.ops.embedding import row_square_sums
from fastnn.testing.wrapped_backend import use_wrapped_backend


def _ids():
    ids = np.array([[3, 1, 1, 0, 0], [0, 2, 5, 2, 2]])
    return ids


def _run():
    fastnn.utils.set_random_seed(0)
    emb = layers.Embedding(6, 4, mask_zero=True)
    td = layers.TimeDistributed(layers.Dense(3, activation="tanh"))
    td_bn = layers.TimeDistributed(layers.BatchNormalization())
    optimizer = fastnn.optimizers.Adam(0.05)
    with fastnn.GradientTape() as tape:
        h = emb(_ids())
        mask = get_keras_mask(h)
        y = td(h)
        z = td_bn(y, training=True)
        loss = fastnn.ops.sum(fastnn.ops.multiply(z, z)) + fastnn.ops.sum(y)
    grads = tape.gradient(loss, [emb.embeddings] + td.trainable_weights)
    assert row_square_sums(grads[0]._data) is not None  # Adam takes the per-lookup squares path on both backends
    optimizer.apply(grads, [emb.embeddings] + td.trainable_weights)
    masked = layers.Masking(0.0)(h)
    return [h.numpy(), mask.numpy(), y.numpy(), z.numpy(), masked.numpy(), get_keras_mask(masked).numpy(),
            *[g.numpy() for g in grads], *[w for w in emb.get_weights() + td.get_weights()],
            *[np.asarray(v) for v in optimizer.variables]]


def test_embedding_timedistributed_masking_on_the_wrapped_backend():
    expected = _run()
    with use_wrapped_backend():
        got = _run()
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert isinstance(a, np.ndarray)
        np.testing.assert_array_equal(a, b)


def test_take_rows_on_the_wrapped_backend():
    def run():
        table = fastnn.Variable(np.arange(12.0).reshape(4, 3))
        with fastnn.GradientTape() as tape:
            y = fastnn.ops.take(table, np.array([[3, -1], [0, 0]]), axis=0)
            loss = fastnn.ops.sum(y)
        return y.numpy(), tape.gradient(loss, table).numpy()

    expected = run()
    with use_wrapped_backend():
        got = run()
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)
