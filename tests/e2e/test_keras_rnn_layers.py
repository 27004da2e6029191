"""Live parity of the recurrent layers with Keras 3 (TensorFlow backend): given identical weights, LSTM, GRU
(reset_after True and False), SimpleRNN, RNN over cells (stacked too) and Bidirectional give Keras's outputs, states
and gradients w.r.t. the input, the initial states and every weight, with masks (zeros at the end, at the start,
inside, everything masked), return_sequences, return_state, go_backwards and initial_state; the configs match
Keras's key for key and Keras's configs load in fastnn. Skipped without Keras.

    KERAS_BACKEND=tensorflow PYTHONPATH=$PWD/src /work/kvenv/bin/python -m pytest tests/e2e/test_keras_rnn_layers.py
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
from fastnn.layers.serialization import serialize_layer  # noqa: E402
from fastnn.testing.keras_parity import random_input  # noqa: E402

B, T, FEATURES, UNITS = 4, 5, 3, 4

# One row per mask kind: zeros at the end, at the start, inside, and a row masked everywhere.
MASK = np.array([[1, 1, 1, 0, 0],
                 [0, 0, 1, 1, 1],
                 [1, 0, 1, 0, 1],
                 [0, 0, 0, 0, 0]], bool)


def _flat(y):
    """Outputs and states as one flat list (a stacked cell's states are nested)."""
    if isinstance(y, (list, tuple)):
        return [t for item in y for t in _flat(item)]
    return [y]


def _keras_run(layer, x, mask, initial_state, upstream_seed=7, **call_kwargs):
    xv = tf.Variable(x)
    states = None if initial_state is None else [tf.Variable(s) for s in initial_state]
    kwargs = dict(call_kwargs)
    if mask is not None:
        kwargs["mask"] = tf.constant(mask)
    if states is not None:
        kwargs["initial_state"] = states
    with tf.GradientTape() as tape:
        ys = _flat(layer(xv, **kwargs))
        ups = [random_input(tuple(y.shape), upstream_seed + i) for i, y in enumerate(ys)]
        objective = tf.add_n([tf.reduce_sum(y * u) for y, u in zip(ys, ups)])
    sources = [xv] + (states or []) + list(layer.trainable_weights)
    grads = tape.gradient(objective, sources)
    return [np.asarray(y) for y in ys], [None if g is None else np.asarray(g) for g in grads]


def _fastnn_run(layer, x, mask, initial_state, upstream_seed=7, **call_kwargs):
    xv = fastnn.Variable(x)
    states = None if initial_state is None else [fastnn.Variable(s) for s in initial_state]
    kwargs = dict(call_kwargs)
    if mask is not None:
        kwargs["mask"] = fastnn.Tensor(mask)
    if states is not None:
        kwargs["initial_state"] = states
    with fastnn.GradientTape() as tape:
        ys = _flat(layer(xv, **kwargs))
        ups = [random_input(tuple(y.shape), upstream_seed + i) for i, y in enumerate(ys)]
        objective = fastnn.ops.sum(fastnn.ops.stack([fastnn.ops.sum(fastnn.ops.multiply(y, u))
                                                     for y, u in zip(ys, ups)]))
    sources = [xv] + (states or []) + list(layer.trainable_weights)
    grads = tape.gradient(objective, sources)
    return [y.numpy() for y in ys], [None if g is None else g.numpy() for g in grads]


def _compare(klayer, flayer, x, mask=None, initial_state=None, rtol=2e-5, atol=2e-6, **call_kwargs):
    klayer(x) if initial_state is None else klayer(x, initial_state=[tf.constant(s) for s in initial_state])
    flayer(x) if initial_state is None else flayer(x, initial_state=list(initial_state))
    flayer.set_weights(klayer.get_weights())
    k_out, k_grads = _keras_run(klayer, x, mask, initial_state, **call_kwargs)
    f_out, f_grads = _fastnn_run(flayer, x, mask, initial_state, **call_kwargs)
    assert len(k_out) == len(f_out)
    for i, (k, f) in enumerate(zip(k_out, f_out)):
        assert k.shape == f.shape, (i, k.shape, f.shape)
        np.testing.assert_allclose(f, k, rtol=rtol, atol=atol, err_msg=f"output {i}")
    names = ["x"] + [f"state {i}" for i in range(len(initial_state or []))] + \
        [w.path for w in klayer.trainable_weights]
    for name, k, f in zip(names, k_grads, f_grads):
        if k is None:
            assert f is None or not np.any(f), name
            continue
        np.testing.assert_allclose(f, k, rtol=1e-4, atol=2e-5, err_msg=f"gradient of {name}")


def _pair(name, **kwargs):
    return getattr(keras.layers, name)(name="layer", **kwargs), getattr(fastnn.layers, name)(name="layer", **kwargs)


LAYERS = [("LSTM", {}), ("GRU", {}), ("GRU", {"reset_after": False}), ("SimpleRNN", {})]
OPTIONS = [{}, {"return_sequences": True}, {"return_state": True}, {"go_backwards": True},
           {"return_sequences": True, "return_state": True, "go_backwards": True},
           {"zero_output_for_mask": True}, {"zero_output_for_mask": True, "return_sequences": True, "go_backwards": True}]


@pytest.mark.parametrize("name,kwargs", LAYERS)
@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("masked", [False, True])
def test_layer_matches_keras(name, kwargs, options, masked):
    x = random_input((B, T, FEATURES), 1)
    klayer, flayer = _pair(name, units=UNITS, **kwargs, **options)
    _compare(klayer, flayer, x, MASK if masked else None)


@pytest.mark.parametrize("name,kwargs", LAYERS)
def test_initial_state_and_its_gradient_match_keras(name, kwargs):
    x = random_input((B, T, FEATURES), 2)
    n_states = 2 if name == "LSTM" else 1
    states = [random_input((B, UNITS), 10 + i) for i in range(n_states)]
    klayer, flayer = _pair(name, units=UNITS, return_sequences=True, return_state=True, **kwargs)
    _compare(klayer, flayer, x, MASK, initial_state=states)


@pytest.mark.parametrize("name,kwargs", [("LSTM", {"activation": "relu", "recurrent_activation": "hard_sigmoid"}),
                                         ("GRU", {"activation": "softsign", "use_bias": False}),
                                         ("SimpleRNN", {"activation": "relu"}),
                                         ("LSTM", {"unit_forget_bias": False, "use_bias": False}),
                                         # gelu is no kernel activation: the cell's Python step runs
                                         ("LSTM", {"activation": "gelu"}),
                                         ("GRU", {"recurrent_activation": "gelu", "reset_after": False})])
def test_other_activations_and_options_match_keras(name, kwargs):
    x = random_input((B, T, FEATURES), 3) * 0.5
    klayer, flayer = _pair(name, units=UNITS, return_sequences=True, **kwargs)
    _compare(klayer, flayer, x, MASK)


@pytest.mark.parametrize("cells", ["lstm", "stacked"])
def test_rnn_over_cells_matches_keras(cells):
    x = random_input((B, T, FEATURES), 4)

    def make(lib):
        if cells == "lstm":
            return lib.layers.RNN(lib.layers.LSTMCell(UNITS), return_sequences=True, name="layer")
        return lib.layers.RNN([lib.layers.GRUCell(3), lib.layers.SimpleRNNCell(UNITS), lib.layers.LSTMCell(2)],
                              return_state=True, go_backwards=True, name="layer")

    _compare(make(keras), make(fastnn), x, MASK)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional_matches_keras(merge_mode, return_sequences):
    x = random_input((B, T, FEATURES), 5)

    def make(lib):
        return lib.layers.Bidirectional(lib.layers.LSTM(UNITS, return_sequences=return_sequences),
                                        merge_mode=merge_mode, name="layer")

    _compare(make(keras), make(fastnn), x, MASK)


def test_bidirectional_with_states_backward_layer_and_initial_state_matches_keras():
    x = random_input((B, T, FEATURES), 6)
    states = [random_input((B, UNITS), 20 + i) for i in range(2)]

    def make(lib):
        return lib.layers.Bidirectional(lib.layers.GRU(UNITS, return_sequences=True, return_state=True),
                                        backward_layer=lib.layers.SimpleRNN(UNITS, return_sequences=True,
                                                                            return_state=True, go_backwards=True),
                                        name="layer")

    _compare(make(keras), make(fastnn), x, MASK, initial_state=states)


def _keras_config(layer):
    return keras.saving.serialize_keras_object(layer)


@pytest.mark.parametrize("make", [
    lambda lib: lib.layers.LSTM(3, dropout=0.2, recurrent_dropout=0.1, seed=4, return_sequences=True, name="a"),
    lambda lib: lib.layers.GRU(3, reset_after=False, kernel_regularizer="l2", go_backwards=True, name="a"),
    lambda lib: lib.layers.SimpleRNN(3, activation="relu", use_bias=False, stateful=True, name="a"),
    lambda lib: lib.layers.RNN(lib.layers.LSTMCell(3, unit_forget_bias=False), return_state=True, name="a"),
    lambda lib: lib.layers.RNN([lib.layers.GRUCell(2, name="g"), lib.layers.SimpleRNNCell(3, name="s")], name="a"),
    lambda lib: lib.layers.Bidirectional(lib.layers.LSTM(3, return_sequences=True, name="f"), merge_mode="sum",
                                         name="a"),
], ids=["lstm", "gru", "simple_rnn", "rnn_lstm_cell", "rnn_stacked", "bidirectional"])
def test_configs_match_keras_key_for_key_and_load(make):
    klayer, flayer = make(keras), make(fastnn)
    x = random_input((B, T, FEATURES), 8)
    klayer(x)
    flayer(x)
    expected = _keras_config(klayer)
    got = serialize_layer(flayer)
    assert got == expected
    # Keras's config loads in fastnn and writes the same config again.
    from fastnn.models.sequential import deserialize_layer

    clone = deserialize_layer(expected)
    clone(x)
    assert serialize_layer(clone) == expected
    assert [w.path for w in flayer.weights] == [w.path for w in klayer.weights]


@pytest.mark.parametrize("name", ["LSTM", "GRU", "SimpleRNN"])
def test_stateful_calls_and_reset_states_match_keras(name):
    x = random_input((B, T, FEATURES), 9)
    klayer, flayer = _pair(name, units=UNITS, stateful=True, return_sequences=True)
    klayer(x)
    flayer(x)
    flayer.set_weights(klayer.get_weights())
    klayer.reset_states()
    flayer.reset_states()
    for step in range(3):
        if step == 2:
            klayer.reset_states()
            flayer.reset_states()
        np.testing.assert_allclose(flayer(x).numpy(), np.asarray(klayer(x)), rtol=2e-5, atol=2e-6)


def test_masked_functional_model_predicts_and_trains_like_keras():
    # Masking -> Bidirectional(LSTM, sequences) -> GRU -> Dense: the mask flows through Bidirectional into the GRU.
    x = random_input((8, T, FEATURES), 10)
    x[:3, 3:] = 0.0
    x[3:5, :2] = 0.0
    x[5, 2] = 0.0
    y = random_input((8, 2), 11)

    def build(lib):
        inputs = lib.Input((T, FEATURES))
        h = lib.layers.Masking(0.0)(inputs)
        h = lib.layers.Bidirectional(lib.layers.LSTM(UNITS, return_sequences=True))(h)
        h = lib.layers.GRU(3)(h)
        return lib.Model(inputs, lib.layers.Dense(2)(h))

    kmodel, fmodel = build(keras), build(fastnn)
    fmodel.set_weights(kmodel.get_weights())
    np.testing.assert_allclose(fmodel.predict(x, verbose=0), kmodel.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    histories = []
    for lib, model in ((keras, kmodel), (fastnn, fmodel)):
        model.compile(optimizer=lib.optimizers.SGD(0.1), loss="mse")
        histories.append(model.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0).history["loss"])
    np.testing.assert_allclose(histories[1], histories[0], rtol=1e-5)
    for f, k in zip(fmodel.get_weights(), kmodel.get_weights()):
        np.testing.assert_allclose(f, k, rtol=1e-5, atol=1e-6)
