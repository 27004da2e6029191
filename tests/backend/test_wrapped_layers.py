"""The layers' own backend code on the wrapped backend (buffers that refuse NumPy): Dropout's mask and its
gradient, Masking's and the merges' masks, and the fit loop's batching helpers, with numbers equal to the CPU's.
(The full layer harness and the seed MLP are in test_wrapped_backend.py.)"""
from __future__ import annotations

import numpy as np

import fastnn
from fastnn import backend as B
from fastnn import layers
from fastnn.autograd.keras_attrs import get_keras_mask
from fastnn.layers.core import _dropout
from fastnn.models import model as _model
from fastnn.testing.wrapped_backend import WrappedBuffer, use_wrapped_backend


def _x():
    x = np.arange(1, 25, dtype="float32").reshape(2, 4, 3)
    x[0, 2:] = 0.0
    x[1, 1] = 0.0
    return x


def _dropout_run(noise_shape):
    fastnn.utils.set_random_seed(3)
    x = fastnn.Variable(_x())
    layer = layers.Dropout(0.4, noise_shape=noise_shape)
    with fastnn.GradientTape() as tape:
        y = layer(x, training=True)
    upstream = fastnn.Tensor(np.linspace(-1, 1, y.size, dtype="float32").reshape(y.shape))
    return y.numpy(), tape.gradient(y, x, output_gradients=upstream).numpy()


def test_dropout_mask_and_gradient_on_the_wrapped_backend():
    for noise_shape in (None, (None, 1, 3)):
        expected = _dropout_run(noise_shape)
        with use_wrapped_backend():
            got = _dropout_run(noise_shape)
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a, b)


def test_dropout_kernel_matches_the_former_numpy_expression():
    # Before the fused kernel Dropout multiplied by ((u >= rate) / (1 - rate)) cast to the input's dtype.
    u = np.random.default_rng(0).random((5, 7))
    for dtype in ("float32", "float64"):
        x = np.random.default_rng(1).standard_normal((5, 7)).astype(dtype)
        x[0, :3] = [np.inf, -np.inf, np.nan]
        former = x * ((u >= 0.3) / (1.0 - 0.3)).astype(dtype)
        keep = B.greater_equal(u, 0.3)
        np.testing.assert_array_equal(B.dropout_mask_multiply(x, keep, 1.0 / (1.0 - 0.3)), former)
        y = _dropout(fastnn.Tensor(x), keep, 1.0 / (1.0 - 0.3))
        assert y.dtype == dtype
        np.testing.assert_array_equal(y.numpy(), former)
        np.testing.assert_array_equal(np.signbit(y.numpy()), np.signbit(former))


def _masks():
    x = _x()
    a = fastnn.Tensor(x)
    b = fastnn.Tensor(x[::-1].copy())
    ma, mb = layers.Masking(0.0).compute_mask(a), layers.Masking(0.0).compute_mask(b)
    return [B.to_numpy(m._data) for m in (
        ma, layers.Add().compute_mask([a, b], [ma, mb]), layers.Concatenate().compute_mask([a, b], [ma, None]),
        layers.Concatenate(axis=1).compute_mask([a, b], [ma, mb]))]


def test_masks_on_the_wrapped_backend():
    expected = _masks()
    with use_wrapped_backend():
        got = _masks()
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)


def test_the_fit_loop_batching_on_the_wrapped_backend():
    def run():
        fastnn.utils.set_random_seed(5)
        x = _model._standardize(np.arange(40, dtype="float32").reshape(10, 4), "x")
        w = _model._class_weights_to_sample_weights(np.eye(3, dtype="float32")[[0, 1, 2, 1, 0, 2, 2, 1, 0, 0]],
                                                    {0: 0.5, 2: 3.0})
        batches = list(_model._BatchIterator(10, 4, True, fastnn.utils.rng(), None).epoch())
        sliced = [_model._slice(x, i) for i in batches]
        assert all(B.is_buffer(s) for s in sliced)
        joined = _model._to_host(_model._concatenate_outputs(sliced))
        return joined, B.to_numpy(w)

    expected = run()
    with use_wrapped_backend():
        got = run()
        assert isinstance(_model._standardize([1.0, 2.0], "x"), WrappedBuffer)
    for a, b in zip(got, expected):
        assert isinstance(a, np.ndarray)
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(expected[1], [0.5, 1, 3, 1, 0.5, 3, 3, 1, 0.5, 0.5])
