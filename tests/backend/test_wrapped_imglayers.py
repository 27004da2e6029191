"""The image layers (ZeroPadding, Cropping, UpSampling nearest and bilinear, SpatialDropout, global pooling with
and without a mask) on the wrapped backend, whose buffers refuse NumPy: forward values and input gradients EQUAL
to the CPU run, and the layer harness (build, symbolic shapes, config round trip, a training step) on it."""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import layers as L
from fastnn.testing.layer_harness import run_layer_test
from fastnn.testing.wrapped_backend import WrappedBuffer, use_wrapped_backend

CASES = [
    (L.ZeroPadding1D, {"padding": (2, 1)}, (2, 5, 3)),
    (L.ZeroPadding2D, {"padding": ((1, 0), (2, 3)), "data_format": "channels_first"}, (2, 3, 4, 5)),
    (L.Cropping1D, {"cropping": (1, 2)}, (2, 5, 3)),
    (L.Cropping2D, {"cropping": ((1, 0), (1, 2))}, (2, 4, 5, 3)),
    (L.UpSampling1D, {"size": 3}, (2, 4, 3)),
    (L.UpSampling2D, {"size": (2, 3)}, (2, 3, 4, 2)),
    (L.UpSampling2D, {"size": (3, 2), "interpolation": "bilinear"}, (2, 3, 4, 2)),
    (L.UpSampling2D, {"size": 2, "interpolation": "bilinear", "data_format": "channels_first"}, (2, 2, 3, 4)),
    (L.SpatialDropout1D, {"rate": 0.4, "seed": 2}, (3, 4, 8)),
    (L.SpatialDropout2D, {"rate": 0.4, "seed": 2, "data_format": "channels_first"}, (3, 8, 4, 4)),
    (L.GlobalAveragePooling1D, {"keepdims": True}, (2, 5, 3)),
    (L.GlobalAveragePooling2D, {}, (2, 3, 4, 5)),
    (L.GlobalMaxPooling1D, {"data_format": "channels_first"}, (2, 5, 3)),
    (L.GlobalMaxPooling2D, {"keepdims": True}, (2, 3, 4, 5)),
]
IDS = [f"{c[0].__name__}-{i}" for i, c in enumerate(CASES)]


def _forward_and_gradient(cls, kwargs, shape, mask=None):
    fastnn.utils.clear_session()
    fastnn.utils.set_random_seed(0)
    x = fastnn.Variable(np.random.default_rng(1).standard_normal(shape).astype("float32"))
    layer = cls(**kwargs)
    with fastnn.GradientTape() as tape:
        y = layer(x, training=True) if mask is None else layer(x, mask=mask, training=True)
    upstream = fastnn.Tensor(np.linspace(-1, 1, y.size, dtype="float32").reshape(y.shape))
    grad = tape.gradient(y, x, output_gradients=upstream)
    assert isinstance(y._data, WrappedBuffer) == isinstance(x._data, WrappedBuffer)  # computed on x's backend
    return y.numpy(), grad.numpy()


@pytest.mark.parametrize("cls,kwargs,shape", CASES, ids=IDS)
def test_values_and_gradients_equal_the_cpu_run(cls, kwargs, shape):
    expected = _forward_and_gradient(cls, kwargs, shape)
    with use_wrapped_backend():
        got = _forward_and_gradient(cls, kwargs, shape)
        assert isinstance(fastnn.Tensor(np.ones(2))._data, WrappedBuffer)
    for a, b in zip(got, expected):
        assert isinstance(a, np.ndarray)
        np.testing.assert_array_equal(a, b)


def test_masked_global_average_pooling_equals_the_cpu_run():
    mask = np.array([[1, 1, 0, 0, 1], [0, 1, 1, 1, 1]], bool)
    for data_format, shape in (("channels_last", (2, 5, 3)), ("channels_first", (2, 3, 5))):
        args = (L.GlobalAveragePooling1D, {"data_format": data_format}, shape)
        expected = _forward_and_gradient(*args, mask=mask)
        with use_wrapped_backend():
            got = _forward_and_gradient(*args, mask=fastnn.Tensor(mask))
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cls,kwargs,shape", CASES, ids=IDS)
def test_layer_harness_on_the_wrapped_backend(cls, kwargs, shape):
    fastnn.utils.clear_session()
    with use_wrapped_backend():
        out_shape = cls(**kwargs).compute_output_shape(shape)
        run_layer_test(cls, kwargs, shape, out_shape)
