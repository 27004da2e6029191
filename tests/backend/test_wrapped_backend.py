"""The backend boundary, proved: the op table (forward and gradients), the layer harness and the seed's MLP
(`fit` / `evaluate` / `predict`) run on a backend whose buffers are not NumPy arrays
(``fastnn.testing.wrapped_backend``). Anything that computes on a buffer around ``fastnn.backend`` raises
``BackendLeak`` here. The wrapped backend runs the CPU backend's functions, so its numbers must equal the CPU
run's exactly."""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import backend, layers
from fastnn.testing.layer_harness import run_layer_test
from fastnn.testing.op_table import OP_TABLE
from fastnn.testing.wrapped_backend import BackendLeak, WrappedBuffer, use_wrapped_backend


def _id(row, shapes):
    return row.name + "-" + "-".join("x".join(map(str, s)) or "scalar" for s in shapes)


CASES = [pytest.param(row, shapes, id=_id(row, shapes)) for row in OP_TABLE for shapes in row.cases()]


def _forward_and_grads(row, inputs):
    tensors = [fastnn.Variable(x) if x.dtype.kind == "f" else fastnn.Tensor(x) for x in inputs]
    diff = [t for t in tensors if isinstance(t, fastnn.Variable)] if row.grad else []
    with fastnn.GradientTape() as tape:
        out = row.fn(*tensors)
        loss = fastnn.ops.sum(out) if out.dtype.kind == "f" else None
    grads = tape.gradient(loss, diff) if (diff and loss is not None) else []
    return out.numpy(), [None if g is None else g.numpy() for g in grads], out


@pytest.mark.parametrize("row,shapes", CASES)
def test_op_table_on_the_wrapped_backend(row, shapes):
    inputs = row.make_inputs(shapes, np.float64)
    expected, expected_grads, _ = _forward_and_grads(row, inputs)
    with use_wrapped_backend():
        got, got_grads, out = _forward_and_grads(row, inputs)
        assert isinstance(out._data, WrappedBuffer)
    np.testing.assert_array_equal(got, expected)
    assert len(got_grads) == len(expected_grads)
    for g, e in zip(got_grads, expected_grads):
        if e is None:
            assert g is None
        else:
            np.testing.assert_array_equal(g, e)


def test_the_wrapped_buffer_refuses_numpy_operators_and_methods():
    with use_wrapped_backend():
        buf = backend.asarray(np.ones(3))
        for attempt in (lambda: np.asarray(buf), lambda: np.exp(buf), lambda: buf * 2, lambda: np.ones(3) + buf,
                        lambda: buf.sum(), lambda: float(backend.sum(buf)), lambda: buf[0], lambda: bool(buf),
                        lambda: backend.add(buf, np.ones(3))):
            with pytest.raises(BackendLeak):
                attempt()
        assert backend.item(backend.sum(buf)) == 3.0
    assert backend.name == "cpu"


LAYER_CASES = [
    (layers.Dense, {"units": 4, "activation": "relu"}, (3, 5), (3, 4), 2),
    (layers.Dense, {"units": 2, "use_bias": False, "activation": "tanh"}, (2, 3, 5), (2, 3, 2), 1),
    (layers.Dense, {"units": 3, "activation": lambda t: t ** 2}, (2, 4), (2, 3), 2),
    (layers.Activation, {"activation": "softmax"}, (2, 5), (2, 5), 0),
    (layers.Dropout, {"rate": 0.5}, (4, 6), (4, 6), 0),
    (layers.Flatten, {}, (2, 3, 4), (2, 12), 0),
    (layers.Reshape, {"target_shape": (6, 2)}, (2, 3, 4), (2, 6, 2), 0),
    (layers.Add, {}, [(2, 3), (2, 3)], (2, 3), 0),
    (layers.Concatenate, {"axis": -1}, [(2, 3), (2, 4)], (2, 7), 0),
]


@pytest.mark.parametrize("cls,kwargs,input_shape,output_shape,n_weights", LAYER_CASES,
                         ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(LAYER_CASES)])
def test_layer_harness_on_the_wrapped_backend(cls, kwargs, input_shape, output_shape, n_weights):
    fastnn.utils.clear_session()
    fastnn.utils.set_random_seed(0)
    with use_wrapped_backend():
        layer = run_layer_test(cls, kwargs, input_shape, output_shape, expected_num_trainable_weights=n_weights)
        for w in layer.weights:
            assert isinstance(w._data, WrappedBuffer)


def _seed_mlp_run():
    """Listing 1 + 4 of the seed (Dense 64 relu, Dense 64 relu, Dropout 0.5, Dense 1; mse, adam)."""
    fastnn.utils.clear_session()
    fastnn.utils.set_random_seed(7)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((96, 10)).astype("float32")
    y = (x @ rng.standard_normal((10, 1)) + 0.1).astype("float32")
    model = fastnn.models.Sequential([
        layers.Input((10,)),
        layers.Dense(units=64, activation="relu"),
        layers.Dense(units=64, activation="relu"),
        layers.Dropout(rate=0.5),
        layers.Dense(units=1),
    ])
    model.compile(loss="mse", optimizer="adam", metrics=["mae"])
    history = model.fit(x, y, epochs=2, batch_size=32, validation_data=(x[:32], y[:32]), verbose=0)
    evaluation = model.evaluate(x, y, batch_size=32, verbose=0)
    prediction = model.predict(x, batch_size=32, verbose=0)
    return history.history, evaluation, prediction, [w.numpy() for w in model.weights]


def test_seed_mlp_fit_evaluate_predict_on_the_wrapped_backend():
    expected = _seed_mlp_run()
    with use_wrapped_backend():
        got = _seed_mlp_run()
    assert got[0] == expected[0]
    assert got[1] == expected[1]
    assert isinstance(got[2], np.ndarray)
    np.testing.assert_array_equal(got[2], expected[2])
    for g, e in zip(got[3], expected[3]):
        np.testing.assert_array_equal(g, e)
