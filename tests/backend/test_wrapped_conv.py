"""The convolution layers (Conv1D/2D, DepthwiseConv1D/2D, SeparableConv1D/2D,
Conv1DTranspose/2DTranspose) on the wrapped
backend, whose buffers refuse NumPy: forward values and the gradients of the input and of every weight EQUAL to the
CPU run, and the layer harness (build, symbolic shapes, config round trip, a training step) on it. (The conv ops'
op-table rows run on it through tests/backend/test_wrapped_backend.py.)"""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import layers as L
from fastnn.testing.layer_harness import run_layer_test
from fastnn.testing.wrapped_backend import WrappedBuffer, use_wrapped_backend

CASES = [
    (L.Conv2D, {"filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"}, (2, 5, 6, 3)),
    (L.Conv2D, {"filters": 4, "kernel_size": (2, 3), "strides": 2, "groups": 2}, (2, 6, 7, 4)),
    (L.Conv2D, {"filters": 3, "kernel_size": 3, "dilation_rate": 2, "data_format": "channels_first",
                "activation": "tanh"}, (2, 2, 7, 7)),
    (L.Conv1D, {"filters": 3, "kernel_size": 3, "padding": "causal", "dilation_rate": 2}, (2, 8, 2)),
    (L.Conv1D, {"filters": 4, "kernel_size": 2, "strides": 2, "data_format": "channels_first"}, (2, 3, 9)),
    (L.DepthwiseConv2D, {"kernel_size": 3, "depth_multiplier": 2, "padding": "same", "activation": "relu"},
     (2, 5, 5, 3)),
    (L.SeparableConv2D, {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same"}, (2, 6, 6, 3)),
    (L.Conv2DTranspose, {"filters": 3, "kernel_size": 3, "strides": 2, "padding": "same", "output_padding": 1,
                         "activation": "relu"}, (2, 3, 4, 2)),
    (L.Conv2DTranspose, {"filters": 2, "kernel_size": 2, "data_format": "channels_first"}, (2, 3, 3, 4)),
    (L.DepthwiseConv1D, {"kernel_size": 3, "depth_multiplier": 2, "strides": 2}, (2, 7, 2)),
    (L.SeparableConv1D, {"filters": 3, "kernel_size": 2, "padding": "same", "activation": "relu"}, (2, 6, 2)),
    (L.Conv1DTranspose, {"filters": 2, "kernel_size": 3, "strides": 2, "output_padding": 1}, (2, 4, 3)),
]
IDS = [f"{c[0].__name__}-{i}" for i, c in enumerate(CASES)]


def _forward_and_gradients(cls, kwargs, shape):
    fastnn.utils.clear_session()
    fastnn.utils.set_random_seed(0)
    x = fastnn.Variable(np.random.default_rng(1).standard_normal(shape).astype("float32"))
    layer = cls(**kwargs, bias_initializer="random_normal")
    with fastnn.GradientTape() as tape:
        y = layer(x)
    upstream = fastnn.Tensor(np.linspace(-1, 1, y.size, dtype="float32").reshape(y.shape))
    grads = tape.gradient(y, [x] + list(layer.trainable_weights), output_gradients=upstream)
    assert isinstance(y._data, WrappedBuffer) == isinstance(x._data, WrappedBuffer)  # computed on x's backend
    return [y.numpy()] + [g.numpy() for g in grads]


@pytest.mark.parametrize("cls,kwargs,shape", CASES, ids=IDS)
def test_values_and_gradients_equal_the_cpu_run(cls, kwargs, shape):
    expected = _forward_and_gradients(cls, kwargs, shape)
    with use_wrapped_backend():
        got = _forward_and_gradients(cls, kwargs, shape)
        assert isinstance(fastnn.Tensor(np.ones(2))._data, WrappedBuffer)
    assert len(got) == len(expected) >= 3
    for a, b in zip(got, expected):
        assert isinstance(a, np.ndarray)
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cls,kwargs,shape", CASES, ids=IDS)
def test_layer_harness_on_the_wrapped_backend(cls, kwargs, shape):
    fastnn.utils.clear_session()
    with use_wrapped_backend():
        out_shape = cls(**kwargs).compute_output_shape(shape)
        n_weights = 3 if issubclass(cls, L.SeparableConv2D) else 2
        run_layer_test(cls, kwargs, shape, out_shape, expected_num_trainable_weights=n_weights,
                       bad_input_shape=shape[:-1] + (shape[-1] + 1,) if kwargs.get("data_format") is None else None)
