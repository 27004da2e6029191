"""The recurrent layers without Keras: LSTM / GRU / SimpleRNN / RNN over cells / StackedRNNCells / Bidirectional
through the layer harness, against a NumPy step loop written here (Keras's equations and mask carry rule, float64),
the fused path against the Python cell path with the same weights, every option (masks at the end / start / inside /
everywhere, return_sequences, return_state, go_backwards, stateful + reset_states, initial_state, unroll,
zero_output_for_mask, dropout and recurrent dropout), float64 finite differences of the layers' gradients (input,
initial states, every weight), the fused op's node (one per call, nothing saved without a gradient), masks out, and
bad input (clear errors naming the layer). Keras itself is compared in tests/e2e/test_keras_rnn_layers.py."""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import backend as B
from fastnn import layers as L
from fastnn.autograd.keras_attrs import get_keras_mask
from fastnn.autograd.ops.rnn import rnn_sequence
from fastnn.autograd.tape import MultiNode
from fastnn.testing.gradcheck import check_gradients
from fastnn.testing.layer_harness import run_layer_test

MASKS = {
    "end": np.array([[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]], bool),
    "start": np.array([[0, 0, 1, 1], [0, 1, 1, 1], [1, 1, 1, 1]], bool),
    "inside": np.array([[1, 0, 1, 1], [1, 1, 0, 1], [1, 0, 0, 1]], bool),
    "all": np.array([[0, 0, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]], bool),
}


def _rng(seed=0):
    return np.random.default_rng(seed)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# --- the NumPy step loop (Keras's cell equations, gates i f c o / z r h, and backend.rnn's carry rule) ---------
def _numpy_step(kind, w, x, states, act=np.tanh, ra=_sigmoid, rec_masks=None):
    kernel, rk, bias = w
    h = states[0]
    u = rk.shape[0]
    m = rec_masks if rec_masks is not None else [np.ones_like(h)] * (rk.shape[1] // u)
    col = lambda a, k: a[..., k * u:(k + 1) * u]  # noqa: E731
    if kind == "lstm":
        z = [x @ col(kernel, k) + (h * m[k]) @ col(rk, k) + (0 if bias is None else col(bias, k)) for k in range(4)]
        c = ra(z[1]) * states[1] + ra(z[0]) * act(z[2])
        h = ra(z[3]) * act(c)
        return h, [h, c]
    if kind == "simple_rnn":
        h = act(x @ kernel + (0 if bias is None else bias) + (h * m[0]) @ rk)
        return h, [h]
    reset_after = bias is not None and bias.ndim == 2 or kind == "gru"
    bin_, brec = (bias[0], bias[1]) if bias is not None and bias.ndim == 2 else (bias, None)
    xs = [x @ col(kernel, k) + (0 if bin_ is None else col(bin_, k)) for k in range(3)]
    rec = [(h * m[k]) @ col(rk, k) + (0 if brec is None else col(brec, k)) for k in range(3)]
    z = ra(xs[0] + rec[0])
    r = ra(xs[1] + rec[1])
    if reset_after:
        hh = act(xs[2] + r * rec[2])
    else:
        hh = act(xs[2] + (r * h * m[2]) @ col(rk, 2))
    h = z * h + (1 - z) * hh
    return h, [h]


def _numpy_rnn(kind, w, x, states, mask=None, go_backwards=False, zero_output_for_mask=False, **step_kwargs):
    """(outputs in processing order, final states)."""
    batch, steps = x.shape[:2]
    order = range(steps - 1, -1, -1) if go_backwards else range(steps)
    prev = np.zeros((batch, w[1].shape[0]))
    outs = []
    for t in order:
        y, new = _numpy_step(kind, w, x[:, t], states, **step_kwargs)
        if mask is not None:
            keep = mask[:, t][:, None]
            new = [np.where(keep, n, s) for n, s in zip(new, states)]
            y = np.where(keep, y, 0.0 if zero_output_for_mask else prev)
        states = new
        outs.append(y)
        prev = y
    return np.stack(outs, axis=1), states


LAYERS = {
    "lstm": lambda **kw: L.LSTM(3, dtype="float64", **kw),
    "gru": lambda **kw: L.GRU(3, dtype="float64", **kw),
    "gru_reset_before": lambda **kw: L.GRU(3, reset_after=False, dtype="float64", **kw),
    "simple_rnn": lambda **kw: L.SimpleRNN(3, dtype="float64", **kw),
}
CELLS = {
    "lstm": lambda **kw: L.LSTMCell(3, dtype="float64", **kw),
    "gru": lambda **kw: L.GRUCell(3, dtype="float64", **kw),
    "gru_reset_before": lambda **kw: L.GRUCell(3, reset_after=False, dtype="float64", **kw),
    "simple_rnn": lambda **kw: L.SimpleRNNCell(3, dtype="float64", **kw),
}


def _randomized(layer, x, seed=1):
    """Builds the layer and gives every weight random values (biases too, so no term hides behind a zero)."""
    layer(x)
    rng = _rng(seed)
    layer.set_weights([rng.uniform(-0.6, 0.6, w.shape) for w in layer.get_weights()])
    return layer


def _states(kind, batch=3, seed=5):
    n = 2 if kind == "lstm" else 1
    return [_rng(seed + i).standard_normal((batch, 3)) * 0.5 for i in range(n)]


@pytest.mark.parametrize("kind", list(LAYERS))
@pytest.mark.parametrize("mask_kind", [None] + list(MASKS))
@pytest.mark.parametrize("go_backwards", [False, True])
def test_layers_match_the_numpy_step_loop(kind, mask_kind, go_backwards):
    x = _rng(0).standard_normal((3, 4, 2))
    layer = _randomized(LAYERS[kind](return_sequences=True, return_state=True, go_backwards=go_backwards), x)
    mask = None if mask_kind is None else MASKS[mask_kind]
    h0 = _states(kind)
    got = layer(x, initial_state=h0, mask=mask)
    want_seq, want_states = _numpy_rnn(kind, layer.get_weights(), x, h0, mask, go_backwards)
    np.testing.assert_allclose(got[0].numpy(), want_seq, rtol=1e-12, atol=1e-12)
    for g, w in zip(got[1:], want_states):
        np.testing.assert_allclose(g.numpy(), w, rtol=1e-12, atol=1e-12)
    last = LAYERS[kind](go_backwards=go_backwards)
    last(x)
    last.set_weights(layer.get_weights())
    np.testing.assert_allclose(last(x, initial_state=h0, mask=mask).numpy(), want_seq[:, -1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", list(LAYERS))
@pytest.mark.parametrize("options", [{}, {"return_sequences": True}, {"go_backwards": True, "return_state": True},
                                     {"return_sequences": True, "zero_output_for_mask": True},
                                     {"return_sequences": True, "unroll": True}])
def test_fused_path_equals_the_python_cell_path(kind, options):
    x = _rng(2).standard_normal((3, 4, 2))
    mask = MASKS["inside"]
    zero = options.get("zero_output_for_mask", False)
    fused_options = {k: v for k, v in options.items() if k != "zero_output_for_mask"}
    fused = _randomized(LAYERS[kind](**fused_options), x)
    fused.zero_output_for_mask = zero
    python = L.RNN(CELLS[kind](), dtype="float64", **options)
    python(x)
    python.set_weights(fused.get_weights())
    for a, b in zip(_flat(fused(x, mask=mask)), _flat(python(x, mask=mask))):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-12)


def _flat(y):
    if isinstance(y, (list, tuple)):
        return [t for item in y for t in _flat(item)]
    return [y]


def test_a_python_activation_runs_the_cell_loop_and_matches_the_numpy_loop(monkeypatch):
    calls = []
    monkeypatch.setattr(B, "rnn_forward", lambda *a, **k: calls.append(1))  # must not be reached
    cube = lambda v: v * v * v * 0.1 + v  # noqa: E731 - no kernel has it
    x = _rng(3).standard_normal((3, 4, 2))
    layer = _randomized(L.LSTM(3, activation=cube, return_sequences=True, dtype="float64"), x)
    want, _ = _numpy_rnn("lstm", layer.get_weights(), x, [np.zeros((3, 3))] * 2, MASKS["end"],
                         act=lambda v: v ** 3 * 0.1 + v)
    np.testing.assert_allclose(layer(x, mask=MASKS["end"]).numpy(), want, rtol=1e-12, atol=1e-12)
    assert not calls


# --- dropout -------------------------------------------------------------------------------------------------
def _recorded_masks(cell):
    """Records the masks the cell draws (in draw order: input masks, then recurrent masks)."""
    drawn = []
    original = cell._create_dropout_mask

    def record(step_input, rate):
        m = original(step_input, rate)
        drawn.append([t.numpy() for t in m] if isinstance(m, list) else [m.numpy()])
        return m

    cell._create_dropout_mask = record
    return drawn


@pytest.mark.parametrize("kind", list(LAYERS))
@pytest.mark.parametrize("rates", [(0.3, 0.0), (0.0, 0.4), (0.3, 0.4)])
def test_dropout_masks_are_drawn_once_per_call_per_gate_as_keras(kind, rates):
    dropout, recurrent_dropout = rates
    x = _rng(4).standard_normal((3, 4, 2))
    layer = _randomized(LAYERS[kind](dropout=dropout, recurrent_dropout=recurrent_dropout, seed=11,
                                     return_sequences=True), x)
    drawn = _recorded_masks(layer.cell)
    got = layer(x, training=True, mask=MASKS["inside"]).numpy()
    assert len(drawn) == (dropout > 0) + (recurrent_dropout > 0)  # once per call, not per step
    gates = {"lstm": 4, "simple_rnn": 1}.get(kind, 3)
    per_gate = recurrent_dropout > 0 and kind != "simple_rnn"  # Keras's implementation 1
    input_masks = drawn[0] if dropout > 0 else None
    rec_masks = drawn[-1] if recurrent_dropout > 0 else None
    for masks, rate in ((input_masks, dropout), (rec_masks, recurrent_dropout)):
        if masks is not None:
            assert len(masks) == (gates if per_gate else 1)
            for m in masks:
                assert set(np.unique(m)) <= {0.0, 1.0 / (1.0 - rate)}
    # The NumPy loop with those masks: per gate, gate k's input is x * m_k (implementation 1).
    w = layer.get_weights()
    kernel = w[0]
    u = 3
    if input_masks is not None and len(input_masks) > 1:
        proj = [(x * m[:, None, :]) @ kernel[:, k * u:(k + 1) * u] for k, m in enumerate(input_masks)]
        xs = np.concatenate(proj, axis=-1)
    else:
        xs = (x if input_masks is None else x * input_masks[0][:, None, :]) @ kernel
    # Feed the projected input through an identity kernel so _numpy_rnn's step sees x @ kernel = xs.
    eye = np.eye(xs.shape[-1])
    rm = None if rec_masks is None else (rec_masks * gates if len(rec_masks) == 1 else rec_masks)
    zeros = [np.zeros((3, 3))] * (2 if kind == "lstm" else 1)
    want, _ = _numpy_rnn(kind, [eye, w[1], w[2]], xs, zeros, MASKS["inside"], rec_masks=rm)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # Inference uses no mask; a second training call draws new masks; the same seed repeats the numbers.
    inference, _ = _numpy_rnn(kind, w, x, zeros, MASKS["inside"])
    np.testing.assert_allclose(layer(x, mask=MASKS["inside"]).numpy(), inference, rtol=1e-12, atol=1e-12)
    again = layer(x, training=True, mask=MASKS["inside"]).numpy()
    assert not np.array_equal(again, got)
    twin = LAYERS[kind](dropout=dropout, recurrent_dropout=recurrent_dropout, seed=11, return_sequences=True)
    twin(x)
    twin.set_weights(w)
    np.testing.assert_array_equal(twin(x, training=True, mask=MASKS["inside"]).numpy(), got)


@pytest.mark.parametrize("kind", list(LAYERS))
def test_dropout_fused_path_equals_the_python_cell_path(kind):
    x = _rng(5).standard_normal((3, 4, 2))
    fused = _randomized(LAYERS[kind](dropout=0.25, recurrent_dropout=0.35, seed=3, return_sequences=True), x)
    python = L.RNN(CELLS[kind](dropout=0.25, recurrent_dropout=0.35, seed=3), return_sequences=True, dtype="float64")
    python(x)
    python.set_weights(fused.get_weights())
    np.testing.assert_allclose(fused(x, training=True).numpy(), python(x, training=True).numpy(), rtol=1e-12,
                               atol=1e-12)


# --- gradients: float64 central differences ------------------------------------------------------------------
def _layer_objective_gradients(layer, x, states, mask, upstream_seed=9, training=False):
    """Analytic d(sum(outputs * upstream))/d(x, states, weights) from a GradientTape."""
    xv = fastnn.Variable(x)
    sv = [fastnn.Variable(s) for s in states]
    with fastnn.GradientTape() as tape:
        ys = _flat(layer(xv, initial_state=sv or None, mask=mask, training=training))
        objective = _objective(ys, upstream_seed)
    grads = tape.gradient(objective, [xv] + sv + list(layer.trainable_weights), unconnected_gradients="zero")
    return [g.numpy() for g in grads]


def _objective(ys, seed):
    total = None
    for i, y in enumerate(ys):
        up = _rng(seed + i).uniform(0.5, 1.5, y.shape)
        term = fastnn.ops.sum(fastnn.ops.multiply(y, up))
        total = term if total is None else fastnn.ops.add(total, term)
    return total


def _numeric(layer, x, states, mask, upstream_seed=9, eps=1e-6):
    def value():
        with fastnn.no_grad():
            ys = _flat(layer(x, initial_state=[fastnn.Tensor(s) for s in states] or None, mask=mask))
            return float(_objective(ys, upstream_seed).numpy())

    grads = []
    for arr in [x] + states:
        g = np.zeros_like(arr)
        for i in range(arr.size):
            orig = arr.flat[i]
            arr.flat[i] = orig + eps
            up = value()
            arr.flat[i] = orig - eps
            down = value()
            arr.flat[i] = orig
            g.flat[i] = (up - down) / (2 * eps)
        grads.append(g)
    for w in layer.trainable_weights:
        base = w.numpy().copy()
        g = np.zeros_like(base)
        for i in range(base.size):
            p = base.copy()
            p.flat[i] += eps
            w.assign(p)
            up = value()
            p.flat[i] -= 2 * eps
            w.assign(p)
            down = value()
            g.flat[i] = (up - down) / (2 * eps)
        w.assign(base)
        grads.append(g)
    return grads


@pytest.mark.parametrize("kind", list(LAYERS))
@pytest.mark.parametrize("mask_kind", [None, "end", "start", "inside", "all"])
def test_layer_gradients_match_finite_differences(kind, mask_kind):
    x = _rng(6).standard_normal((3, 4, 2))
    layer = _randomized(LAYERS[kind](return_sequences=True, return_state=True,
                                     go_backwards=mask_kind in ("start", "all")), x)
    states = _states(kind)
    mask = None if mask_kind is None else MASKS[mask_kind]
    analytic = _layer_objective_gradients(layer, x, states, mask)
    numeric = _numeric(layer, x.copy(), [s.copy() for s in states], mask)
    for i, (a, n) in enumerate(zip(analytic, numeric)):
        np.testing.assert_allclose(a, n, rtol=1e-6, atol=1e-8, err_msg=f"gradient {i}")


@pytest.mark.parametrize("kind", list(LAYERS))
def test_layer_gradients_with_zero_output_for_mask_and_the_last_output(kind):
    x = _rng(7).standard_normal((3, 4, 2))
    layer = _randomized(LAYERS[kind](), x)
    layer.zero_output_for_mask = True
    analytic = _layer_objective_gradients(layer, x, [], MASKS["inside"])
    numeric = _numeric(layer, x.copy(), [], MASKS["inside"])
    for a, n in zip(analytic, numeric):
        np.testing.assert_allclose(a, n, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("kind", list(LAYERS))
@pytest.mark.parametrize("mask_kind", [None, "all", "inside"])
def test_last_output_from_the_states_values_and_gradients(kind, mask_kind, monkeypatch):
    # Default (zero) initial states, return_sequences=False: the last output is read from h_last (its gradient goes
    # in as d_h_last, no d_outputs at all); a row masked everywhere still outputs zeros.
    received = []
    original = B.rnn_backward

    def spy(*args, **kwargs):
        received.append(args[3] is None)
        return original(*args, **kwargs)

    monkeypatch.setattr(B, "rnn_backward", spy)
    x = _rng(23).standard_normal((3, 4, 2))
    layer = _randomized(LAYERS[kind](), x)
    mask = None if mask_kind is None else MASKS[mask_kind]
    zeros = [np.zeros((3, 3))] * (2 if kind == "lstm" else 1)
    want, _ = _numpy_rnn(kind, layer.get_weights(), x, zeros, mask)
    np.testing.assert_allclose(layer(x, mask=mask).numpy(), want[:, -1], rtol=1e-12, atol=1e-12)
    analytic = _layer_objective_gradients(layer, x, [], mask)
    assert received == [True]  # d_outputs None
    numeric = _numeric(layer, x.copy(), [], mask)
    for a, n in zip(analytic, numeric):
        np.testing.assert_allclose(a, n, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_layer_gradients_with_dropout_masks_match_finite_differences(kind):
    # training=True with a seeded cell: the masks are redrawn each call, so fix them for the numeric objective.
    x = _rng(8).standard_normal((3, 4, 2))
    layer = _randomized(LAYERS[kind](dropout=0.3, recurrent_dropout=0.3, seed=1, return_sequences=True), x)
    cell = layer.cell
    fixed = {}
    original = cell._create_dropout_mask

    def fixed_mask(step_input, rate):
        key = (tuple(step_input.shape), rate)
        if key not in fixed:
            fixed[key] = original(step_input, rate)
        return fixed[key]

    cell._create_dropout_mask = fixed_mask
    analytic = _layer_objective_gradients(layer, x, [], MASKS["end"], training=True)

    def value_training(xx):
        with fastnn.no_grad():
            return float(_objective(_flat(layer(xx, mask=MASKS["end"], training=True)), 9).numpy())

    eps = 1e-6
    num = np.zeros_like(x)
    for i in range(x.size):
        xp, xm = x.copy(), x.copy()
        xp.flat[i] += eps
        xm.flat[i] -= eps
        num.flat[i] = (value_training(xp) - value_training(xm)) / (2 * eps)
    np.testing.assert_allclose(analytic[0], num, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("cell", ["lstm", "gru", "gru_reset_before", "simple_rnn"])
@pytest.mark.parametrize("reverse,zero", [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize("recurrent_masks", [None, "shared", "per_gate"])
def test_fused_op_gradients_match_finite_differences(cell, reverse, zero, recurrent_masks):
    g = {"lstm": 4, "gru": 3, "gru_reset_before": 3, "simple_rnn": 1}[cell]
    rng = _rng(10)
    b, t, u = 2, 4, 3
    xproj = rng.standard_normal((b, t, g * u))
    rk = rng.standard_normal((u, g * u)) * 0.5
    h0 = rng.standard_normal((b, u)) * 0.5
    c0 = rng.standard_normal((b, u)) * 0.5
    rb = rng.standard_normal((g * u,)) * 0.5
    mask = np.array([[1, 0, 1, 1], [0, 1, 1, 0]], bool)
    m = None
    if recurrent_masks is not None:
        n = 1 if recurrent_masks == "shared" else g
        m = (rng.random((n, b, u)) > 0.3) / 0.7

    def fn(xp, r, h, *rest):
        rest = list(rest)
        c = rest.pop(0) if cell == "lstm" else None
        bias = rest.pop(0) if cell == "gru" else None
        outs = rnn_sequence(cell, xp, r, h, c, mask=mask, recurrent_masks=m, recurrent_bias=bias, reverse=reverse,
                            zero_output_for_mask=zero)
        total = fastnn.ops.sum(fastnn.ops.multiply(outs[0], 1.3))
        for k, o in enumerate(outs[1:]):
            total = fastnn.ops.add(total, fastnn.ops.sum(fastnn.ops.multiply(o, 0.7 + k)))
        return total

    inputs = [xproj, rk, h0] + ([c0] if cell == "lstm" else []) + ([rb] if cell == "gru" else [])
    check_gradients(fn, inputs, rtol=1e-6, atol=1e-8)


# --- the fused node ------------------------------------------------------------------------------------------
def test_one_multi_output_node_per_call_and_no_workspace_without_gradients(monkeypatch):
    saved = []
    original = B.rnn_forward

    def spy(*args, **kwargs):
        saved.append(kwargs["save_for_backward"])
        return original(*args, **kwargs)

    monkeypatch.setattr(B, "rnn_forward", spy)
    x = _rng(11).standard_normal((3, 4, 2)).astype("float32")
    layer = L.LSTM(3, return_sequences=True, return_state=True)
    outs = layer(x)  # the weights require grad: the node is recorded
    assert saved == [True]
    assert outs[0]._node is outs[1]._node is outs[2]._node and isinstance(outs[0]._node, MultiNode)
    assert outs[0]._node.name == "rnn_lstm"
    with fastnn.no_grad():
        layer(x)
    assert saved == [True, False]
    frozen = L.GRU(3)
    frozen(x)
    frozen.trainable = False
    y = frozen(x)  # nothing requires grad and no tape: nothing saved
    assert saved[-1] is False and y._node is None
    with fastnn.GradientTape() as tape:
        xv = fastnn.Tensor(x)
        tape.watch(xv)
        loss = fastnn.ops.sum(frozen(xv))
    assert saved[-1] is True
    assert tape.gradient(loss, xv).shape == x.shape


def test_gradient_flows_only_to_what_is_asked_and_twice_with_a_persistent_tape():
    x = fastnn.Variable(_rng(12).standard_normal((2, 3, 2)).astype("float32"))
    layer = L.SimpleRNN(4, return_sequences=True)
    with fastnn.GradientTape(persistent=True) as tape:
        y = layer(x)
        loss = fastnn.ops.sum(fastnn.ops.square(y))
    g1 = tape.gradient(loss, x).numpy()
    g2 = tape.gradient(loss, layer.cell.recurrent_kernel).numpy()
    assert g1.shape == (2, 3, 2) and g2.shape == (4, 4)
    np.testing.assert_array_equal(tape.gradient(loss, x).numpy(), g1)


# --- options ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(LAYERS))
def test_stateful_carries_states_between_calls_and_reset_states_zeroes_them(kind):
    x = _rng(13).standard_normal((3, 4, 2))
    layer = _randomized(LAYERS[kind](stateful=True, return_state=True), x)
    layer.reset_states()
    first = layer(x)
    second = layer(x)
    w = layer.get_weights()
    zeros = [np.zeros((3, 3))] * (2 if kind == "lstm" else 1)
    _, states1 = _numpy_rnn(kind, w, x, zeros)
    _, states2 = _numpy_rnn(kind, w, x, states1)
    for got, want in zip(first[1:], states1):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)
    for got, want in zip(second[1:], states2):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)
    assert len(layer.get_weights()) == 3  # the states are not weights
    layer.reset_states()
    for v in layer.states:
        assert not np.any(v.numpy())
    again = layer(x)
    np.testing.assert_allclose(again[0].numpy(), first[0].numpy(), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="batch size"):
        layer(x[:2])


def test_stacked_cells_match_two_layers_and_nested_states():
    x = _rng(14).standard_normal((3, 4, 2))
    stacked = L.RNN([L.LSTMCell(3, dtype="float64"), L.GRUCell(3, dtype="float64")], return_sequences=True,
                    return_state=True, dtype="float64")
    _randomized(stacked, x)
    first = L.RNN(L.LSTMCell(3, dtype="float64"), return_sequences=True, dtype="float64")
    second = L.RNN(L.GRUCell(3, dtype="float64"), return_sequences=True, return_state=True, dtype="float64")
    first(x)
    second(first(x))
    w = stacked.get_weights()
    first.set_weights(w[:3])
    second.set_weights(w[3:])
    out = stacked(x, mask=MASKS["inside"])
    want = second(first(x, mask=MASKS["inside"]), mask=MASKS["inside"])
    np.testing.assert_allclose(out[0].numpy(), want[0].numpy(), rtol=1e-12, atol=1e-12)
    assert isinstance(out[1], list) and len(out[1]) == 2  # the LSTM cell's [h, c]
    assert stacked.cell.state_size == [[3, 3], 3] and stacked.cell.output_size == 3
    first_cell = stacked.cell.cells[0]
    assert stacked.weights[0].path == f"{stacked.name}/{stacked.cell.name}/{first_cell.name}/kernel"
    # initial_state as a flat list is packed into the cells' structure; the wrong count names the layer.
    states = [np.full((3, 3), 0.1)] * 3
    stacked(x, initial_state=states)
    with pytest.raises(ValueError, match=f'"{stacked.name}" expects 3 initial state'):
        stacked(x, initial_state=states[:2])


class MinimalCell(L.Layer):
    """A user-written cell (Keras's documentation example): h = x @ W + h_prev @ U."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), initializer="random_uniform", name="kernel")
        self.recurrent_kernel = self.add_weight(shape=(self.units, self.units), initializer="random_uniform",
                                                name="recurrent_kernel")

    def call(self, inputs, states):
        h = fastnn.ops.matmul(inputs, self.kernel)
        output = fastnn.ops.add(h, fastnn.ops.matmul(states[0], self.recurrent_kernel))
        return output, [output]


def test_user_cell_runs_with_masks_and_gradients():
    x = _rng(15).standard_normal((3, 4, 2))
    layer = L.RNN(MinimalCell(3, dtype="float64"), return_sequences=True, dtype="float64")
    _randomized(layer, x)
    w = layer.get_weights()
    want, _ = _numpy_rnn("simple_rnn", [w[0], w[1], None], x, [np.zeros((3, 3))], MASKS["start"], act=lambda v: v)
    np.testing.assert_allclose(layer(x, mask=MASKS["start"]).numpy(), want, rtol=1e-12, atol=1e-12)
    analytic = _layer_objective_gradients(layer, x, [], MASKS["start"])
    numeric = _numeric(layer, x.copy(), [], MASKS["start"])
    for a, n in zip(analytic, numeric):
        np.testing.assert_allclose(a, n, rtol=1e-6, atol=1e-8)


def test_cells_weights_initializers_and_configs():
    cell = L.LSTMCell(3)
    cell.build((None, 2))
    assert [w.shape for w in cell.weights] == [(2, 12), (3, 12), (12,)]
    np.testing.assert_array_equal(cell.bias.numpy(), np.r_[np.zeros(3), np.ones(3), np.zeros(6)])  # unit_forget_bias
    rk = cell.recurrent_kernel.numpy()
    np.testing.assert_allclose(rk @ rk.T, np.eye(3), atol=1e-5)  # orthogonal rows
    gru = L.GRUCell(3)
    gru.build((None, 2))
    assert [w.shape for w in gru.weights] == [(2, 9), (3, 9), (2, 9)]
    gru_rb = L.GRUCell(3, reset_after=False, use_bias=False)
    gru_rb.build((None, 2))
    assert [w.shape for w in gru_rb.weights] == [(2, 9), (3, 9)]
    simple = L.SimpleRNNCell(3, kernel_regularizer="l2", recurrent_constraint="non_neg")
    simple.build((None, 2))
    assert len(simple.losses) == 1
    assert L.LSTM(3, recurrent_dropout=0.2).cell.implementation == 1  # as Keras
    for c in (cell, gru, gru_rb, simple):
        clone = type(c).from_config(c.get_config())
        assert clone.get_config() == c.get_config()
    with pytest.raises(ValueError, match="units"):
        L.LSTMCell(0)


@pytest.mark.parametrize("layer_cls,kwargs,weights", [
    (L.LSTM, {"units": 3}, 3), (L.GRU, {"units": 3}, 3), (L.GRU, {"units": 3, "reset_after": False}, 3),
    (L.SimpleRNN, {"units": 3, "return_sequences": True}, 3), (L.LSTM, {"units": 3, "use_bias": False}, 2),
])
def test_layer_harness(layer_cls, kwargs, weights):
    out_shape = (2, 5, 3) if kwargs.get("return_sequences") else (2, 3)
    run_layer_test(layer_cls, kwargs, (2, 5, 4), out_shape, expected_num_trainable_weights=weights,
                   bad_input_shape=(2, 4), bad_input_match="expected ndim=3")


def test_layer_harness_bidirectional():
    run_layer_test(L.Bidirectional, {"layer": L.GRU(3, return_sequences=True)}, (2, 5, 4), (2, 5, 6),
                   expected_num_trainable_weights=6, bad_input_shape=(2, 4))


def test_return_state_shapes_symbolic_and_masks_out():
    inputs = fastnn.Input((4, 2))
    out = L.LSTM(3, return_sequences=True, return_state=True)(inputs)
    assert [o.shape for o in out] == [(None, 4, 3), (None, 3), (None, 3)]
    x = _rng(16).standard_normal((3, 4, 2)).astype("float32")
    x[0, 3:] = 0.0
    x[2, 1:] = 0.0
    masked = L.Masking(0.0)(x)
    seq = L.LSTM(3, return_sequences=True)(masked)
    np.testing.assert_array_equal(get_keras_mask(seq).numpy(), np.any(x != 0, axis=-1))
    assert get_keras_mask(L.GRU(3)(masked)) is None  # consumed
    outs = L.SimpleRNN(3, return_sequences=True, return_state=True)(masked)
    assert get_keras_mask(outs[0]) is not None and get_keras_mask(outs[1]) is None
    # The mask the layer consumed: the masked LSTM equals the explicitly masked one.
    layer = L.LSTM(3)
    a = layer(masked).numpy()
    np.testing.assert_allclose(a, layer(x, mask=np.any(x != 0, axis=-1)).numpy(), rtol=1e-6)


def test_functional_model_with_masking_trains():
    inputs = fastnn.Input((4, 2))
    h = L.Masking(0.0)(inputs)
    h = L.Bidirectional(L.LSTM(3, return_sequences=True))(h)
    h = L.GRU(2)(h)
    model = fastnn.Model(inputs, L.Dense(1)(h))
    model.compile(optimizer=fastnn.optimizers.SGD(0.05), loss="mse")
    x = _rng(17).standard_normal((8, 4, 2)).astype("float32")
    x[:3, 2:] = 0.0
    y = _rng(18).standard_normal((8, 1)).astype("float32")
    losses = model.fit(x, y, epochs=3, batch_size=4, verbose=0, shuffle=False).history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    clone = fastnn.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


# --- Bidirectional -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
def test_bidirectional_merges_forward_and_flipped_backward(merge_mode):
    x = _rng(19).standard_normal((3, 4, 2))
    layer = L.Bidirectional(L.LSTM(3, return_sequences=True, dtype="float64"), merge_mode=merge_mode,
                            dtype="float64")
    _randomized(layer, x)
    mask = MASKS["end"]
    out = layer(x, mask=mask)
    w = layer.get_weights()
    zeros = [np.zeros((3, 3))] * 2
    fwd, _ = _numpy_rnn("lstm", w[:3], x, zeros, mask, zero_output_for_mask=True)
    bwd, _ = _numpy_rnn("lstm", w[3:], x, zeros, mask, go_backwards=True, zero_output_for_mask=True)
    bwd = bwd[:, ::-1]
    want = {"concat": np.concatenate([fwd, bwd], -1), "sum": fwd + bwd, "mul": fwd * bwd, "ave": (fwd + bwd) / 2,
            None: None}[merge_mode]
    if merge_mode is None:
        np.testing.assert_allclose(out[0].numpy(), fwd, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(out[1].numpy(), bwd, rtol=1e-12, atol=1e-12)
    else:
        np.testing.assert_allclose(out.numpy(), want, rtol=1e-12, atol=1e-12)
    assert layer.forward_layer.zero_output_for_mask and layer.backward_layer.go_backwards
    assert layer.forward_layer.name.startswith("forward_") and layer.backward_layer.name.startswith("backward_")


def test_bidirectional_states_initial_state_and_errors():
    x = _rng(20).standard_normal((3, 4, 2)).astype("float32")
    layer = L.Bidirectional(L.LSTM(3, return_state=True))
    out = layer(x)
    assert len(out) == 5 and out[0].shape == (3, 6)
    states = [o.numpy() for o in out[1:]]
    out2 = layer(x, initial_state=states)
    assert out2[0].shape == (3, 6)
    with pytest.raises(ValueError, match="go_backwards"):
        L.Bidirectional(L.LSTM(3), backward_layer=L.LSTM(3))
    with pytest.raises(ValueError, match="merge mode"):
        L.Bidirectional(L.LSTM(3), merge_mode="max")
    with pytest.raises(ValueError, match="return_sequences"):
        L.Bidirectional(L.LSTM(3), backward_layer=L.LSTM(3, go_backwards=True, return_sequences=True))
    stateful = L.Bidirectional(L.GRU(3, stateful=True))
    stateful(x)
    stateful.reset_states()
    assert len(stateful.states) == 2
    with pytest.raises(AttributeError, match="stateful"):
        layer.reset_states()


# --- bad input -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: L.LSTM(3, name="seq_lstm"), lambda: L.RNN(L.GRUCell(3), name="seq_lstm")])
def test_bad_input_raises_naming_the_layer(make):
    x = _rng(21).standard_normal((3, 4, 2)).astype("float32")
    layer = make()
    with pytest.raises(ValueError, match='"seq_lstm".*(3-D|ndim=3)'):
        layer(x[:, 0])
    layer(x)
    n = 2 if isinstance(layer, L.LSTM) else 1
    with pytest.raises(ValueError, match=rf'"seq_lstm" expects {n} initial state tensor\(s\).*received {n + 1}'):
        layer(x, initial_state=[np.zeros((3, 3), "float32")] * (n + 1))
    with pytest.raises(ValueError, match=r'"seq_lstm": initial_state\[0\] must have shape \(3, 3\).*\(3, 4\)'):
        layer(x, initial_state=[np.zeros((3, 4), "float32")] * n)
    with pytest.raises(ValueError, match=r'"seq_lstm": initial_state\[0\] must have shape \(3, 3\).*\(2, 3\)'):
        layer(x, initial_state=[np.zeros((2, 3), "float32")] * n)
    with pytest.raises(ValueError, match=r'"seq_lstm": the mask must have shape .*\(3, 4\).*\(3, 5\)'):
        layer(x, mask=np.ones((3, 5), bool))
    with pytest.raises(ValueError, match=r'"seq_lstm": the mask'):
        layer(x, mask=np.ones((3,), bool))


def test_bad_arguments():
    with pytest.raises(ValueError, match="use_cudnn"):
        L.LSTM(3, use_cudnn="maybe")
    with pytest.raises(ValueError, match="call"):
        L.RNN(object())
    with pytest.raises(ValueError, match="units"):
        L.GRU(-1)
    with pytest.raises(ValueError, match="stateful=True.*static"):
        fastnn.Model(*(lambda i: (i, L.LSTM(3, stateful=True)(i)))(fastnn.Input((4, 2))))


@pytest.mark.parametrize("built", [False, True])
def test_bidirectional_initial_weights(built):
    x = _rng(22).standard_normal((2, 4, 2)).astype("float32")
    source = L.Bidirectional(L.SimpleRNN(3))
    source(x)
    inner = L.SimpleRNN(3)
    if built:  # a built layer's rebuilt copies are built at once (as in Keras) and take the weights then
        inner(x)
    layer = L.Bidirectional(inner, weights=source.get_weights())
    assert layer.forward_layer.built == built
    np.testing.assert_array_equal(layer(x).numpy(), source(x).numpy())
