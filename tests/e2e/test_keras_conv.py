"""Live parity of the convolution layers with Keras 3 (TensorFlow backend): given identical weights, Conv1D, Conv2D,
DepthwiseConv2D, SeparableConv2D and Conv2DTranspose predict like Keras to 1e-5 relative (strided, dilated, "same"
with even kernels, grouped, causal), their gradients w.r.t. the input and every weight match tf.GradientTape's,
their output shapes and configs match, and a small Sequential CNN (Conv2D relu -> GlobalAveragePooling2D -> Dense
softmax) trained 2 epochs with SGD (shuffle=False) matches Keras's losses and weights to 1e-5. Skipped without
Keras.

    KERAS_BACKEND=tensorflow PYTHONPATH=$PWD/src /work/kvenv/bin/python -m pytest tests/e2e/test_keras_conv.py
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

CASES = [
    ("Conv2D", {"filters": 4, "kernel_size": 3}, (2, 7, 8, 3)),
    ("Conv2D", {"filters": 5, "kernel_size": 3, "padding": "same", "activation": "relu"}, (2, 6, 6, 3)),
    ("Conv2D", {"filters": 4, "kernel_size": (2, 4), "strides": (2, 3), "padding": "same"}, (2, 7, 10, 3)),
    ("Conv2D", {"filters": 3, "kernel_size": 2, "padding": "same"}, (2, 5, 6, 2)),  # even kernel: pad bottom/right
    ("Conv2D", {"filters": 4, "kernel_size": 3, "dilation_rate": (2, 3), "padding": "same"}, (2, 9, 10, 2)),
    ("Conv2D", {"filters": 3, "kernel_size": 3, "dilation_rate": 2, "activation": "tanh"}, (2, 9, 9, 2)),
    ("Conv2D", {"filters": 6, "kernel_size": 3, "groups": 3, "padding": "same"}, (2, 6, 6, 6)),
    ("Conv2D", {"filters": 8, "kernel_size": 2, "strides": 2, "groups": 2, "activation": "relu"}, (2, 8, 8, 4)),
    ("Conv2D", {"filters": 8, "kernel_size": 1}, (2, 5, 5, 16)),
    ("Conv2D", {"filters": 4, "kernel_size": 3, "strides": 2, "use_bias": False}, (3, 9, 9, 2)),
    ("Conv1D", {"filters": 4, "kernel_size": 3}, (2, 11, 3)),
    ("Conv1D", {"filters": 4, "kernel_size": 4, "strides": 2, "padding": "same", "activation": "relu"}, (2, 11, 3)),
    ("Conv1D", {"filters": 3, "kernel_size": 3, "padding": "causal", "dilation_rate": 2}, (2, 10, 2)),
    ("Conv1D", {"filters": 4, "kernel_size": 3, "groups": 2}, (2, 9, 4)),
    ("DepthwiseConv2D", {"kernel_size": 3, "depth_multiplier": 2, "padding": "same"}, (2, 6, 7, 3)),
    ("DepthwiseConv2D", {"kernel_size": 2, "strides": 2, "activation": "relu"}, (2, 6, 6, 4)),
    ("DepthwiseConv2D", {"kernel_size": 3, "dilation_rate": 2}, (2, 8, 8, 2)),
    ("SeparableConv2D", {"filters": 5, "kernel_size": 3, "padding": "same", "depth_multiplier": 2}, (2, 6, 6, 3)),
    ("SeparableConv2D", {"filters": 4, "kernel_size": 2, "strides": 2, "activation": "relu"}, (2, 7, 7, 2)),
    ("Conv2DTranspose", {"filters": 4, "kernel_size": 3}, (2, 4, 5, 3)),
    ("Conv2DTranspose", {"filters": 3, "kernel_size": 3, "strides": 2, "padding": "same"}, (2, 4, 5, 2)),
    ("Conv2DTranspose", {"filters": 3, "kernel_size": 4, "strides": 2, "padding": "same", "activation": "relu"},
     (2, 3, 3, 2)),
    ("Conv2DTranspose", {"filters": 2, "kernel_size": 3, "strides": 2, "padding": "same", "output_padding": 1},
     (2, 3, 4, 2)),
    ("Conv2DTranspose", {"filters": 2, "kernel_size": (3, 2), "strides": (2, 3), "output_padding": (1, 2)},
     (2, 3, 3, 2)),
    ("DepthwiseConv1D", {"kernel_size": 3, "depth_multiplier": 2, "strides": 2, "padding": "same"}, (2, 9, 3)),
    ("SeparableConv1D", {"filters": 4, "kernel_size": 3, "depth_multiplier": 2, "activation": "relu"}, (2, 9, 3)),
    ("Conv1DTranspose", {"filters": 3, "kernel_size": 3, "strides": 2, "padding": "same", "output_padding": 1},
     (2, 5, 2)),
    ("Conv1DTranspose", {"filters": 2, "kernel_size": 4, "strides": 3}, (2, 4, 3)),
    # channels_first: transposed around the NHWC kernels
    ("Conv2D", {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same", "data_format": "channels_first"},
     (2, 3, 7, 6)),
    ("Conv1D", {"filters": 3, "kernel_size": 2, "data_format": "channels_first", "activation": "relu"}, (2, 4, 7)),
    # no bias: Keras 3.15's DepthwiseConv2D (TensorFlow, CPU) adds bias[0] to every channel with channels_first
    # (its keras.ops.depthwise_conv is right, and fastnn adds the bias per channel as with channels_last)
    ("DepthwiseConv2D", {"kernel_size": 3, "depth_multiplier": 2, "data_format": "channels_first",
                         "use_bias": False}, (2, 2, 6, 6)),
    ("SeparableConv2D", {"filters": 3, "kernel_size": 3, "padding": "same", "data_format": "channels_first"},
     (2, 2, 5, 5)),
    ("Conv2DTranspose", {"filters": 3, "kernel_size": 3, "strides": 2, "data_format": "channels_first"},
     (2, 2, 4, 3)),
]
IDS = [f"{name}-{i}" for i, (name, _, _) in enumerate(CASES)]


def _random(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def _pair(name, kwargs, shape):
    """A built Keras layer with random weights (bias too) and the fastnn layer holding the same weights."""
    k_layer = getattr(keras.layers, name)(name="layer", **kwargs)
    k_layer.build(shape)
    weights = [_random(w.shape, seed=10 + i) * 0.5 for i, w in enumerate(k_layer.get_weights())]
    k_layer.set_weights(weights)
    f_layer = getattr(fastnn.layers, name)(name="layer", **kwargs)
    f_layer.build(shape)
    f_layer.set_weights(weights)
    return k_layer, f_layer


@pytest.mark.parametrize("name,kwargs,shape", CASES, ids=IDS)
def test_predictions_and_gradients_match_keras(name, kwargs, shape):
    k_layer, f_layer = _pair(name, kwargs, shape)
    assert [w.name for w in f_layer.weights] == [w.name for w in k_layer.weights]
    x = _random(shape, seed=1)
    k_y = np.asarray(k_layer(x))
    upstream = _random(k_y.shape, seed=2)

    xv = tf.Variable(x)
    with tf.GradientTape() as tape:
        objective = tf.reduce_sum(k_layer(xv) * upstream)
    k_grads = [np.asarray(g) for g in tape.gradient(objective, [xv] + list(k_layer.trainable_variables))]

    fx = fastnn.Variable(x)
    with fastnn.GradientTape() as tape:
        f_y = f_layer(fx)
        objective = fastnn.ops.sum(fastnn.ops.multiply(f_y, upstream))
    f_grads = [g.numpy() for g in tape.gradient(objective, [fx] + list(f_layer.trainable_weights))]

    assert f_y.shape == k_y.shape and f_y.dtype == k_y.dtype
    scale = np.abs(k_y).max()
    np.testing.assert_allclose(f_y.numpy(), k_y, rtol=1e-5, atol=1e-6 * scale)
    assert len(f_grads) == len(k_grads)
    for f_g, k_g in zip(f_grads, k_grads):
        np.testing.assert_allclose(f_g, k_g, rtol=1e-5, atol=1e-6 * np.abs(k_g).max())


@pytest.mark.parametrize("name,kwargs,shape", CASES, ids=IDS)
def test_output_shapes_and_configs_match_keras(name, kwargs, shape):
    k_layer = getattr(keras.layers, name)(name="layer", **kwargs)
    f_layer = getattr(fastnn.layers, name)(name="layer", **kwargs)
    first = kwargs.get("data_format") == "channels_first"
    spatial = (None,) * (len(shape) - 2)
    unknown_spatial = (None, shape[1]) + spatial if first else (None,) + spatial + shape[-1:]
    for s in (shape, (None,) + shape[1:], unknown_spatial):
        assert tuple(f_layer.compute_output_shape(s)) == tuple(k_layer.compute_output_shape(s))
    k_config = k_layer.get_config()
    assert f_layer.get_config() == k_config
    loaded = getattr(fastnn.layers, name).from_config(k_config)
    assert loaded.get_config() == k_config


def test_keras_and_fastnn_refuse_a_kernel_larger_than_the_input():
    for lib in (keras, fastnn):
        with pytest.raises(ValueError, match="(?i)zero or negative"):
            lib.layers.Conv2D(2, 5)(np.zeros((1, 4, 4, 1), "float32"))


def _cnn(lib, seed):
    model = lib.Sequential([
        lib.Input((8, 8, 2)),
        lib.layers.Conv2D(6, 3, padding="same", activation="relu"),
        lib.layers.Conv2D(4, 2, strides=2, activation="relu"),
        lib.layers.GlobalAveragePooling2D(),
        lib.layers.Dense(3, activation="softmax"),
    ])
    return model


@pytest.mark.parametrize("clipvalue", [None, 0.05])
def test_tiny_cnn_trains_like_keras(clipvalue):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((24, 8, 8, 2)).astype("float32")
    y = np.eye(3, dtype="float32")[rng.integers(0, 3, 24)]
    k_model = _cnn(keras, 0)
    weights = [(_random(w.shape, seed=20 + i) * 0.4) for i, w in enumerate(k_model.get_weights())]
    k_model.set_weights(weights)
    f_model = _cnn(fastnn, 0)
    f_model.set_weights(weights)
    np.testing.assert_allclose(f_model.predict(x, verbose=0), k_model.predict(x, verbose=0), rtol=1e-5, atol=1e-7)

    for lib, model in ((keras, k_model), (fastnn, f_model)):
        model.compile(optimizer=lib.optimizers.SGD(0.1, momentum=0.9, clipvalue=clipvalue),
                      loss="categorical_crossentropy")
    k_hist = k_model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    f_hist = f_model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    np.testing.assert_allclose(f_hist["loss"], k_hist["loss"], rtol=1e-5)
    for f_w, k_w in zip(f_model.get_weights(), k_model.get_weights()):
        np.testing.assert_allclose(f_w, k_w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(f_model.predict(x, verbose=0), k_model.predict(x, verbose=0), rtol=1e-5, atol=1e-7)


OP_CASES = [
    ("conv", (2, 6, 7, 4), (3, 2, 2, 6), {"strides": (2, 1), "padding": "same"}),
    ("conv", (2, 9, 3), (3, 3, 4), {"dilation_rate": 2, "padding": "same"}),
    ("conv", (2, 3, 6, 6), (2, 2, 3, 4), {"data_format": "channels_first", "strides": 2}),
    ("depthwise_conv", (2, 6, 6, 3), (3, 3, 3, 2), {"strides": 2, "padding": "same"}),
    ("conv_transpose", (2, 3, 4, 2), (3, 3, 5, 2), {"strides": 2, "padding": "same"}),
    ("conv_transpose", (2, 3, 4, 2), (3, 3, 5, 2), {"strides": 2, "padding": "same", "output_padding": 0}),
    ("conv_transpose", (2, 3, 4, 2), (2, 4, 3, 2), {"strides": (3, 2), "padding": "valid", "output_padding": (2, 1)}),
    ("conv_transpose", (2, 3, 4, 2), (3, 3, 3, 2), {"dilation_rate": 2, "padding": "same"}),
    ("conv_transpose", (2, 5, 2), (3, 4, 2), {"strides": 2}),
]


@pytest.mark.parametrize("name,x_shape,k_shape,kwargs", OP_CASES)
def test_functional_ops_match_keras_ops(name, x_shape, k_shape, kwargs):
    x, k = _random(x_shape, seed=3), _random(k_shape, seed=4)
    expected = np.asarray(getattr(keras.ops, name)(x, k, **kwargs))
    got = getattr(fastnn.ops, name)(x, k, **kwargs).numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())


def test_separable_conv_op_matches_keras_ops():
    x, d, p = _random((2, 6, 6, 3), 5), _random((3, 3, 3, 2), 6), _random((1, 1, 6, 4), 7)
    expected = np.asarray(keras.ops.separable_conv(x, d, p, strides=2, padding="same"))
    got = fastnn.ops.separable_conv(x, d, p, strides=2, padding="same").numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())
