"""Live cross-check of the image layers against Keras 3 (TensorFlow backend): ZeroPadding1D/2D, Cropping1D/2D,
UpSampling1D/2D (nearest and bilinear), SpatialDropout1D/2D, GlobalAveragePooling1D/2D (with a mask too) and
GlobalMaxPooling1D/2D. Same inputs and arguments: the same outputs, input gradients, output shapes and configs
(key for key); Keras's configs load into fastnn, and a Keras Sequential model of these layers predicts the same in
fastnn. Skipped when Keras is not installed; tests/layers/test_image_layers.py holds the semantics without Keras.

Run with Keras in a separate environment, e.g.
    KERAS_BACKEND=tensorflow PYTHONPATH=$PWD/src /work/kvenv/bin/python -m pytest tests/e2e/test_keras_image_layers.py
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
from fastnn.testing import keras_parity  # noqa: E402

CASES = [
    ("ZeroPadding1D", {}, (2, 5, 3)),
    ("ZeroPadding1D", {"padding": (0, 3), "data_format": "channels_first"}, (2, 3, 5)),
    ("ZeroPadding2D", {}, (2, 4, 5, 3)),
    ("ZeroPadding2D", {"padding": ((2, 0), (1, 3))}, (2, 4, 5, 3)),
    ("ZeroPadding2D", {"padding": (1, 2), "data_format": "channels_first"}, (2, 3, 4, 5)),
    ("Cropping1D", {}, (2, 5, 3)),
    ("Cropping1D", {"cropping": (2, 0)}, (2, 5, 3)),
    ("Cropping2D", {"cropping": ((1, 0), (2, 1))}, (2, 4, 5, 3)),
    ("Cropping2D", {"cropping": (1, 0), "data_format": "channels_first"}, (2, 3, 4, 5)),
    ("Cropping2D", {"cropping": 1}, (2, 4, 5, 3)),
    ("UpSampling1D", {}, (2, 4, 3)),
    ("UpSampling1D", {"size": 3}, (2, 4, 3)),
    ("UpSampling2D", {}, (2, 3, 4, 3)),
    ("UpSampling2D", {"size": (3, 1), "data_format": "channels_first"}, (2, 3, 4, 5)),
    ("UpSampling2D", {"size": (2, 2), "interpolation": "bilinear"}, (2, 5, 4, 3)),
    ("UpSampling2D", {"size": (3, 5), "interpolation": "bilinear"}, (2, 4, 3, 2)),
    ("UpSampling2D", {"size": (4, 3), "interpolation": "bilinear", "data_format": "channels_first"}, (2, 2, 3, 5)),
    ("SpatialDropout1D", {"rate": 0.3}, (2, 4, 3)),
    ("SpatialDropout2D", {"rate": 0.3, "data_format": "channels_first", "seed": 3}, (2, 3, 4, 5)),
    ("GlobalAveragePooling1D", {}, (3, 6, 4)),
    ("GlobalAveragePooling1D", {"keepdims": True, "data_format": "channels_first"}, (3, 6, 4)),
    ("GlobalAveragePooling2D", {}, (3, 5, 6, 4)),
    ("GlobalAveragePooling2D", {"keepdims": True, "data_format": "channels_first"}, (3, 5, 6, 4)),
    ("GlobalMaxPooling1D", {"keepdims": True}, (3, 6, 4)),
    ("GlobalMaxPooling2D", {}, (3, 5, 6, 4)),
    ("GlobalMaxPooling2D", {"keepdims": True, "data_format": "channels_first"}, (3, 5, 6, 4)),
]
IDS = [f"{name}-{i}" for i, (name, _, _) in enumerate(CASES)]


# The shared parity helpers (fastnn.testing.keras_parity).
_input = keras_parity.random_input
_keras_forward_and_gradient = keras_parity.keras_forward_and_gradient
_fastnn_forward_and_gradient = keras_parity.fastnn_forward_and_gradient
_pair = keras_parity.layer_pair


@pytest.mark.parametrize("name,kwargs,shape", CASES, ids=IDS)
def test_outputs_and_input_gradients_match_keras(name, kwargs, shape):
    k_layer, f_layer = _pair(name, kwargs)
    x = _input(shape)
    out_shape = tuple(k_layer.compute_output_shape(shape))
    upstream = _input(out_shape, seed=1)
    k_y, k_g = _keras_forward_and_gradient(k_layer, x, upstream)
    f_y, f_g = _fastnn_forward_and_gradient(f_layer, x, upstream)
    assert f_y.shape == k_y.shape == out_shape
    assert f_y.dtype == k_y.dtype
    np.testing.assert_allclose(f_y, k_y, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(f_g, k_g, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,kwargs,shape", CASES, ids=IDS)
def test_output_shapes_and_configs_match_keras(name, kwargs, shape):
    k_layer, f_layer = _pair(name, kwargs)
    symbolic = (None,) + shape[1:]
    assert tuple(f_layer.compute_output_shape(symbolic)) == tuple(k_layer.compute_output_shape(symbolic))
    k_config, f_config = k_layer.get_config(), f_layer.get_config()
    assert f_config == k_config
    # Keras's config builds the same fastnn layer; the symbolic call gives Keras's output shape
    loaded = getattr(fastnn.layers, name).from_config(k_config)
    assert loaded.get_config() == k_config
    k_out = k_layer(keras.Input(shape[1:]))
    f_out = loaded(fastnn.Input(shape[1:]))
    assert tuple(f_out.shape) == tuple(k_out.shape)


def test_bilinear_upsampling_is_tensorflow_exact_on_a_ramp_image():
    # Values with an exact float32 form: the half-pixel weights (0.25 / 0.75, 1/6 steps ...) are where a resize
    # differs from another; compare tightly.
    x = np.arange(2 * 3 * 4 * 2, dtype="float32").reshape(2, 3, 4, 2)
    for size in ((2, 2), (3, 3), (2, 5), (4, 1)):
        k = keras.layers.UpSampling2D(size, interpolation="bilinear")(x)
        f = fastnn.layers.UpSampling2D(size, interpolation="bilinear")(x)
        np.testing.assert_allclose(f.numpy(), np.asarray(k), rtol=1e-7, atol=1e-6)


@pytest.mark.parametrize("data_format,keepdims", [("channels_last", False), ("channels_last", True),
                                                  ("channels_first", False)])
def test_masked_global_average_pooling_matches_keras(data_format, keepdims):
    kwargs = {"data_format": data_format, "keepdims": keepdims}
    k_layer, f_layer = _pair("GlobalAveragePooling1D", kwargs)
    shape = (3, 6, 4) if data_format == "channels_last" else (3, 4, 6)
    x = _input(shape)
    mask = np.array([[1, 1, 0, 1, 0, 0], [0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]], bool)
    out_shape = tuple(k_layer.compute_output_shape(shape))
    upstream = _input(out_shape, seed=2)
    k_y, k_g = _keras_forward_and_gradient(k_layer, x, upstream, mask=mask)
    f_y, f_g = _fastnn_forward_and_gradient(f_layer, x, upstream, mask=mask)
    np.testing.assert_allclose(f_y, k_y, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(f_g, k_g, rtol=1e-5, atol=1e-6)


def test_masking_then_global_average_pooling_model_matches_keras():
    x = _input((4, 6, 3))
    x[0, 3:] = 0.0
    x[2, :2] = 0.0

    def build(lib):
        inputs = lib.Input((6, 3))
        pooled = lib.layers.GlobalAveragePooling1D()(lib.layers.Masking(0.0)(inputs))
        return lib.Model(inputs, lib.layers.Dense(2)(pooled))

    keras.utils.set_random_seed(0)
    km, fm = build(keras), build(fastnn)
    fm.set_weights(km.get_weights())
    np.testing.assert_allclose(fm.predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_spatial_dropout_matches_keras_in_inference_and_drops_channels_like_it_in_training():
    x = np.abs(_input((4, 5, 6, 16))) + 0.5
    for data_format, channel_axis in (("channels_last", 3), ("channels_first", 1)):
        k_layer, f_layer = _pair("SpatialDropout2D", {"rate": 0.5, "data_format": data_format, "seed": 1})
        np.testing.assert_array_equal(f_layer(x).numpy(), np.asarray(k_layer(x)))
        spatial = tuple(a for a in range(1, 4) if a != channel_axis)
        for y in (f_layer(x, training=True).numpy(), np.asarray(k_layer(x, training=True))):
            kept = y != 0
            # each library's own random channels, with the same structure and scale
            assert np.array_equal(kept.all(axis=spatial), kept.any(axis=spatial))
            np.testing.assert_allclose(y[kept], (x * 2)[kept], rtol=1e-6)


def test_a_keras_model_of_image_layers_loads_and_predicts_the_same():
    keras.utils.set_random_seed(0)
    K = keras.layers
    km = keras.Sequential([
        keras.Input((7, 6, 3)), K.ZeroPadding2D(((1, 0), (0, 2))), K.Cropping2D(((0, 1), (1, 1))),
        K.UpSampling2D((2, 1), interpolation="bilinear"), K.SpatialDropout2D(0.2), K.UpSampling2D(2),
        K.GlobalMaxPooling2D(keepdims=True), K.Reshape((3, 1)), K.UpSampling1D(2), K.ZeroPadding1D((1, 2)),
        K.Cropping1D((2, 1)), K.SpatialDropout1D(0.1), K.GlobalAveragePooling1D(), K.Dense(2),
    ])
    fm = fastnn.Sequential.from_config(km.get_config())
    fm.set_weights(km.get_weights())
    assert [type(layer).__name__ for layer in fm.layers] == [type(layer).__name__ for layer in km.layers]
    x = _input((3, 7, 6, 3))
    np.testing.assert_allclose(fm.predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    # and back: fastnn's model config builds the Keras model
    back = keras.Sequential.from_config(fm.get_config())
    back.set_weights(fm.get_weights())
    np.testing.assert_allclose(back.predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-6, atol=1e-6)
