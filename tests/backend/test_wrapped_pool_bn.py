"""The pooling layers, BatchNormalization (training, inference, masked, any axis) and the pooling /
batch_normalization ops on the wrapped backend, whose buffers refuse NumPy: forward values, input gradients and
moving statistics EQUAL to the CPU run, and the layer harness on it."""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import layers as L
from fastnn import ops
from fastnn.testing.layer_harness import run_layer_test
from fastnn.testing.wrapped_backend import WrappedBuffer, use_wrapped_backend

CASES = [
    (L.MaxPooling2D, {}, (2, 4, 4, 3)),
    (L.MaxPooling2D, {"pool_size": (3, 2), "strides": (2, 1), "padding": "same"}, (2, 5, 4, 2)),
    (L.MaxPooling1D, {"pool_size": 3, "strides": 2, "padding": "same", "data_format": "channels_first"}, (2, 3, 7)),
    (L.AveragePooling2D, {"pool_size": 3, "strides": 2, "padding": "same", "data_format": "channels_first"},
     (2, 2, 5, 6)),
    (L.AveragePooling1D, {"pool_size": 2}, (2, 6, 3)),
    (L.BatchNormalization, {}, (6, 3)),
    (L.BatchNormalization, {"axis": 1, "momentum": 0.5}, (2, 3, 4, 4)),
    (L.BatchNormalization, {"center": False, "scale": False}, (2, 4, 3)),
]
IDS = [f"{c[0].__name__}-{i}" for i, c in enumerate(CASES)]


def _run(cls, kwargs, shape, training=True, mask=None):
    fastnn.utils.clear_session()
    fastnn.utils.set_random_seed(0)
    x = fastnn.Variable(np.random.default_rng(1).standard_normal(shape).astype("float32"))
    layer = cls(**kwargs)
    with fastnn.GradientTape() as tape:
        y = layer(x, training=training) if mask is None else layer(x, training=training, mask=mask)
    upstream = fastnn.Tensor(np.linspace(-1, 1, y.size, dtype="float32").reshape(y.shape))
    grad = tape.gradient(y, x, output_gradients=upstream)
    assert isinstance(y._data, WrappedBuffer) == isinstance(x._data, WrappedBuffer)  # computed on x's backend
    return [y.numpy(), grad.numpy()] + [w.numpy() for w in layer.weights]


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("cls,kwargs,shape", CASES, ids=IDS)
def test_values_gradients_and_statistics_equal_the_cpu_run(cls, kwargs, shape, training):
    expected = _run(cls, kwargs, shape, training)
    with use_wrapped_backend():
        got = _run(cls, kwargs, shape, training)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert isinstance(a, np.ndarray)
        np.testing.assert_array_equal(a, b)


def test_masked_batch_norm_equals_the_cpu_run():
    mask = np.array([[1, 1, 0, 1], [0, 1, 1, 0]], bool)
    expected = _run(L.BatchNormalization, {}, (2, 4, 3), mask=mask)
    with use_wrapped_backend():
        got = _run(L.BatchNormalization, {}, (2, 4, 3), mask=fastnn.Tensor(mask))
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)


def test_batch_normalization_op_equals_the_cpu_run():
    rng = np.random.default_rng(2)
    arrays = [rng.standard_normal((2, 3, 4)), rng.standard_normal(3), rng.uniform(0.5, 2, 3), rng.standard_normal(3),
              rng.standard_normal(3)]

    def run():
        tensors = [fastnn.Variable(a) for a in arrays]
        with fastnn.GradientTape() as tape:
            y = ops.batch_normalization(tensors[0], tensors[1], tensors[2], 1, offset=tensors[3], scale=tensors[4])
            loss = ops.sum(ops.square(y))
        return [y.numpy()] + [g.numpy() for g in tape.gradient(loss, tensors)]

    expected = run()
    with use_wrapped_backend():
        got = run()
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)


def test_fit_with_batch_norm_equals_the_cpu_run():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((8, 4)).astype("float32"), rng.standard_normal((8, 1)).astype("float32")

    def fit():
        fastnn.utils.clear_session()
        fastnn.utils.set_random_seed(0)
        model = fastnn.Sequential([fastnn.Input((4,)), L.Dense(3), L.BatchNormalization(), L.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
        history = model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
        return [np.asarray(history.history["loss"])] + model.get_weights() + [model.predict(x, verbose=0)]

    expected = fit()
    with use_wrapped_backend():
        got = fit()
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cls,kwargs,shape", CASES, ids=IDS)
def test_layer_harness_on_the_wrapped_backend(cls, kwargs, shape):
    fastnn.utils.clear_session()
    weights = 2 if cls is L.BatchNormalization and kwargs.get("center", True) else 0
    with use_wrapped_backend():
        run_layer_test(cls, kwargs, shape, cls(**kwargs).compute_output_shape(shape),
                       expected_num_trainable_weights=weights,
                       expected_num_non_trainable_weights=2 if cls is L.BatchNormalization else 0)
