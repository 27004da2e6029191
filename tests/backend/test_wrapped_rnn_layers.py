"""The recurrent layers on the wrapped backend (buffers that refuse NumPy): LSTM / GRU (both reset_after) /
SimpleRNN on the fused op, the Python cell loop (RNN over a cell, a Python activation), Bidirectional, masks, dropout
masks, stateful states and the gradients, with numbers equal to the CPU backend's."""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import layers as L
from fastnn.testing.wrapped_backend import use_wrapped_backend

MASK = np.array([[1, 1, 1, 0], [0, 0, 1, 1], [1, 0, 1, 0]], bool)

MAKERS = {
    "lstm": lambda: L.LSTM(3, return_sequences=True, return_state=True, dropout=0.2, recurrent_dropout=0.3, seed=2),
    "gru": lambda: L.GRU(3, return_sequences=True, go_backwards=True, dropout=0.2, seed=2),
    "gru_reset_before": lambda: L.GRU(3, reset_after=False, return_state=True, recurrent_dropout=0.2, seed=2),
    "simple_rnn": lambda: L.SimpleRNN(3, stateful=True, dropout=0.1, recurrent_dropout=0.1, seed=2),
    "rnn_cell_loop": lambda: L.RNN([L.LSTMCell(3, dropout=0.2, seed=1), L.GRUCell(2)], return_sequences=True),
    "python_activation": lambda: L.GRU(3, activation=lambda v: fastnn.ops.tanh(v) * 0.5),
    "bidirectional": lambda: L.Bidirectional(L.LSTM(3, return_sequences=True), merge_mode="ave"),
}


def _flat(y):
    if isinstance(y, (list, tuple)):
        return [t for item in y for t in _flat(item)]
    return [y]


def _run(name):
    fastnn.utils.set_random_seed(4)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 2)).astype("float32")
    layer = MAKERS[name]()
    layer(x)
    layer.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype("float32") for w in layer.get_weights()])
    xv = fastnn.Variable(x)
    with fastnn.GradientTape() as tape:
        ys = _flat(layer(xv, mask=fastnn.Tensor(MASK), training=True))
        loss = fastnn.ops.sum(fastnn.ops.stack([fastnn.ops.sum(fastnn.ops.square(y)) for y in ys]))
    grads = tape.gradient(loss, [xv] + layer.trainable_weights)
    again = _flat(layer(x))  # inference (and, stateful, from the carried states)
    return [y.numpy() for y in ys + again] + [g.numpy() for g in grads]


@pytest.mark.parametrize("name", list(MAKERS))
def test_recurrent_layers_on_the_wrapped_backend_equal_the_cpu(name):
    expected = _run(name)
    with use_wrapped_backend():
        got = _run(name)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)
