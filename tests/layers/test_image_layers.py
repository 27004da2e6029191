"""The image layers built on existing ops: ZeroPadding1D/2D, Cropping1D/2D, UpSampling1D/2D, SpatialDropout1D/2D,
GlobalAveragePooling1D/2D and GlobalMaxPooling1D/2D. Shapes and configs through the layer harness, values against
NumPy references (both data formats), float64 finite-difference gradients, the masked global average, and the
bad arguments / inputs with their messages. tests/e2e/test_keras_image_layers.py compares with live Keras."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import fastnn
from fastnn import layers as L
from fastnn.autograd.keras_attrs import get_keras_mask
from fastnn.testing.gradcheck import check_gradients
from fastnn.testing.layer_harness import run_layer_test

rng = np.random.default_rng(12)


def _images(shape, dtype="float32"):
    return rng.standard_normal(shape).astype(dtype)


def _to_first(x):
    """channels_last -> channels_first for a 3-D or 4-D array."""
    return np.moveaxis(x, -1, 1)


# -- the harness: eager and symbolic shapes, config round trip, a training step, a wrong-rank input -----------------
HARNESS_CASES = [
    (L.ZeroPadding1D, {}, (2, 3, 4), (2, 5, 4), (2, 3)),
    (L.ZeroPadding1D, {"padding": (0, 2), "data_format": "channels_first"}, (2, 3, 4), (2, 3, 6), (2, 3, 4, 1)),
    (L.ZeroPadding2D, {}, (2, 3, 4, 2), (2, 5, 6, 2), (2, 3, 4)),
    (L.ZeroPadding2D, {"padding": ((1, 0), (2, 3))}, (2, 3, 4, 2), (2, 4, 9, 2), None),
    (L.ZeroPadding2D, {"padding": (1, 2), "data_format": "channels_first"}, (2, 2, 3, 4), (2, 2, 5, 8), None),
    (L.Cropping1D, {}, (2, 5, 3), (2, 3, 3), (2, 5)),
    (L.Cropping1D, {"cropping": (0, 3)}, (2, 5, 3), (2, 2, 3), None),
    (L.Cropping2D, {}, (2, 4, 5, 3), (2, 4, 5, 3), (2, 4, 5)),
    (L.Cropping2D, {"cropping": ((1, 0), (2, 1))}, (2, 4, 5, 3), (2, 3, 2, 3), None),
    (L.Cropping2D, {"cropping": 1, "data_format": "channels_first"}, (2, 3, 4, 5), (2, 3, 2, 3), None),
    (L.UpSampling1D, {}, (2, 3, 4), (2, 6, 4), (2, 3, 4, 1)),
    (L.UpSampling1D, {"size": 3}, (2, 3, 4), (2, 9, 4), None),
    (L.UpSampling2D, {}, (2, 3, 4, 2), (2, 6, 8, 2), (2, 3, 4)),
    (L.UpSampling2D, {"size": (1, 3), "data_format": "channels_first"}, (2, 2, 3, 4), (2, 2, 3, 12), None),
    (L.UpSampling2D, {"size": (3, 2), "interpolation": "bilinear"}, (2, 3, 4, 2), (2, 9, 8, 2), None),
    (L.SpatialDropout1D, {"rate": 0.5}, (2, 3, 4), (2, 3, 4), (2, 3)),
    (L.SpatialDropout2D, {"rate": 0.3, "seed": 4}, (2, 3, 4, 5), (2, 3, 4, 5), (2, 3, 4)),
    (L.SpatialDropout2D, {"rate": 0.3, "data_format": "channels_first"}, (2, 3, 4, 5), (2, 3, 4, 5), None),
    (L.GlobalAveragePooling1D, {}, (2, 5, 3), (2, 3), (2, 5)),
    (L.GlobalAveragePooling1D, {"keepdims": True, "data_format": "channels_first"}, (2, 5, 3), (2, 5, 1), None),
    (L.GlobalAveragePooling2D, {}, (2, 3, 4, 5), (2, 5), (2, 3, 4)),
    (L.GlobalAveragePooling2D, {"keepdims": True}, (2, 3, 4, 5), (2, 1, 1, 5), None),
    (L.GlobalMaxPooling1D, {"data_format": "channels_first"}, (2, 5, 3), (2, 5), (2, 5, 3, 1)),
    (L.GlobalMaxPooling2D, {"keepdims": True, "data_format": "channels_first"}, (2, 3, 4, 5), (2, 3, 1, 1), None),
    (L.GlobalMaxPooling2D, {}, (2, 3, 4, 5), (2, 5), None),
]


@pytest.mark.parametrize("cls,kwargs,input_shape,output_shape,bad_shape", HARNESS_CASES,
                         ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(HARNESS_CASES)])
def test_layer_harness(cls, kwargs, input_shape, output_shape, bad_shape):
    run_layer_test(cls, kwargs, input_shape, output_shape, bad_input_shape=bad_shape,
                   bad_input_match="expected ndim" if bad_shape else None)


# -- values against NumPy ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_zero_padding_values(data_format):
    x1 = _images((2, 3, 4))
    x2 = _images((2, 3, 4, 2))
    if data_format == "channels_first":
        want1 = np.pad(_to_first(x1), ((0, 0), (0, 0), (2, 1)))
        want2 = np.pad(_to_first(x2), ((0, 0), (0, 0), (1, 0), (2, 3)))
        x1, x2 = _to_first(x1), _to_first(x2)
    else:
        want1 = np.pad(x1, ((0, 0), (2, 1), (0, 0)))
        want2 = np.pad(x2, ((0, 0), (1, 0), (2, 3), (0, 0)))
    np.testing.assert_array_equal(L.ZeroPadding1D((2, 1), data_format=data_format)(x1).numpy(), want1)
    np.testing.assert_array_equal(L.ZeroPadding2D(((1, 0), (2, 3)), data_format=data_format)(x2).numpy(), want2)
    # the int and symmetric-pair forms
    assert L.ZeroPadding1D(3).padding == (3, 3)
    assert L.ZeroPadding2D(2).padding == ((2, 2), (2, 2))
    assert L.ZeroPadding2D((1, 2)).padding == ((1, 1), (2, 2))


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_cropping_values(data_format):
    x1 = _images((2, 6, 3))
    np.testing.assert_array_equal(L.Cropping1D((2, 1))(x1).numpy(), x1[:, 2:5])
    np.testing.assert_array_equal(L.Cropping1D((2, 0))(x1).numpy(), x1[:, 2:])
    x2 = _images((2, 5, 6, 3))
    want = x2[:, 1:4, 2:]
    for crop, sliced in ((((1, 1), (2, 0)), want), (2, x2[:, 2:3, 2:4]), ((0, 1), x2[:, :, 1:5])):
        got_x = _to_first(x2) if data_format == "channels_first" else x2
        want_x = _to_first(sliced) if data_format == "channels_first" else sliced
        np.testing.assert_array_equal(L.Cropping2D(crop, data_format=data_format)(got_x).numpy(), want_x)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_upsampling_nearest_values(data_format):
    x1 = np.arange(2 * 3 * 2, dtype="float32").reshape(2, 3, 2)
    np.testing.assert_array_equal(L.UpSampling1D(3)(x1).numpy(), np.repeat(x1, 3, axis=1))
    x2 = _images((2, 3, 4, 2))
    want = np.repeat(np.repeat(x2, 2, axis=1), 3, axis=2)
    if data_format == "channels_first":
        x2, want = _to_first(x2), _to_first(want)
    got = L.UpSampling2D((2, 3), data_format=data_format)(x2)
    np.testing.assert_array_equal(got.numpy(), want)
    # integer images stay integer with "nearest"
    ints = np.arange(8, dtype="int32").reshape(1, 2, 2, 2)
    out = L.UpSampling2D(2)(ints)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out.numpy(), np.repeat(np.repeat(ints, 2, 1), 2, 2))


def _bilinear_reference(x, axis, factor):
    """Half-pixel-centre linear interpolation along one axis in float64, as an explicit (m, n) weight matrix."""
    n = x.shape[axis]
    m = n * factor
    weights = np.zeros((m, n))
    for i in range(m):
        position = (i + 0.5) / factor - 0.5
        below = int(np.floor(position))
        frac = position - below
        weights[i, min(max(below, 0), n - 1)] += 1 - frac
        weights[i, min(max(below + 1, 0), n - 1)] += frac
    return np.moveaxis(np.tensordot(weights, np.moveaxis(x, axis, 0), axes=1), 0, axis)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("size", [(2, 2), (3, 1), (1, 4), (2, 5)])
def test_upsampling_bilinear_values(data_format, size):
    x = rng.standard_normal((2, 3, 4, 2))
    want = _bilinear_reference(_bilinear_reference(x, 2, size[1]), 1, size[0])
    if data_format == "channels_first":
        x, want = _to_first(x), _to_first(want)
    got = L.UpSampling2D(size, data_format=data_format, interpolation="bilinear", dtype="float64")(x).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    got32 = L.UpSampling2D(size, data_format=data_format, interpolation="BILINEAR")(x.astype("float32"))
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32.numpy(), want, rtol=1e-5, atol=1e-5)


def test_upsampling_bilinear_of_a_constant_and_of_a_ramp():
    # A constant stays constant; a linear ramp stays linear away from the clamped borders.
    const = np.full((1, 3, 3, 1), 2.5, "float32")
    np.testing.assert_array_equal(L.UpSampling2D(2, interpolation="bilinear")(const).numpy(),
                                  np.full((1, 6, 6, 1), 2.5))
    ramp = np.arange(4, dtype="float64").reshape(1, 1, 4, 1)
    got = L.UpSampling2D((1, 2), interpolation="bilinear", dtype="float64")(ramp).numpy()[0, 0, :, 0]
    np.testing.assert_allclose(got, [0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3], atol=1e-12)
    ints = np.arange(4, dtype="int32").reshape(1, 1, 4, 1)
    assert L.UpSampling2D((1, 2), interpolation="bilinear")(ints).dtype == np.float32


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_global_pooling_values(keepdims, data_format):
    x1 = _images((3, 5, 4))
    x2 = _images((3, 4, 6, 2))
    if data_format == "channels_first":
        x1, x2 = _to_first(x1), _to_first(x2)
        axes1, axes2 = 2, (2, 3)
    else:
        axes1, axes2 = 1, (1, 2)
    for cls, fn, x, axes in ((L.GlobalAveragePooling1D, np.mean, x1, axes1), (L.GlobalMaxPooling1D, np.max, x1, axes1),
                             (L.GlobalAveragePooling2D, np.mean, x2, axes2),
                             (L.GlobalMaxPooling2D, np.max, x2, axes2)):
        layer = cls(data_format=data_format, keepdims=keepdims)
        got = layer(x).numpy()
        want = fn(x.astype("float64"), axis=axes, keepdims=keepdims)
        assert got.shape == want.shape == layer.compute_output_shape(x.shape)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_keras_aliases():
    assert L.GlobalAvgPool1D is L.GlobalAveragePooling1D and L.GlobalAvgPool2D is L.GlobalAveragePooling2D
    assert L.GlobalMaxPool1D is L.GlobalMaxPooling1D and L.GlobalMaxPool2D is L.GlobalMaxPooling2D


# -- the mask of GlobalAveragePooling1D --------------------------------------------------------------------------------
def _masked_sequences():
    x = rng.standard_normal((3, 5, 4)).astype("float32")
    keep = np.array([[1, 1, 1, 0, 0], [1, 0, 1, 0, 1], [1, 1, 1, 1, 1]], bool)
    return x, keep


@pytest.mark.parametrize("keepdims", [False, True])
def test_global_average_pooling_1d_averages_only_the_unmasked_steps(keepdims):
    x, keep = _masked_sequences()
    want = np.stack([x[i][keep[i]].mean(0) for i in range(3)])
    if keepdims:
        want = want[:, None]
    layer = L.GlobalAveragePooling1D(keepdims=keepdims)
    np.testing.assert_allclose(layer(x, mask=keep).numpy(), want, rtol=1e-6, atol=1e-6)
    # channels_first: the mask is still (batch, steps)
    first = L.GlobalAveragePooling1D(data_format="channels_first", keepdims=keepdims)
    np.testing.assert_allclose(first(_to_first(x), mask=keep).numpy(),
                               want if not keepdims else _to_first(want), rtol=1e-6, atol=1e-6)
    # the mask arrives through Masking; the pooled output carries none
    x_zeroed = np.where(keep[..., None], x, 0.0).astype("float32")
    y = layer(L.Masking(0.0)(x_zeroed))
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-6, atol=1e-6)
    assert get_keras_mask(y) is None


def test_global_average_pooling_1d_mask_in_a_functional_model_and_its_gradient():
    x, keep = _masked_sequences()
    x_zeroed = np.where(keep[..., None], x, 0.0).astype("float32")
    inputs = fastnn.Input((5, 4))
    model = fastnn.Model(inputs, L.GlobalAveragePooling1D()(L.Masking(0.0)(inputs)))
    want = np.stack([x[i][keep[i]].mean(0) for i in range(3)])
    np.testing.assert_allclose(model.predict(x_zeroed, verbose=0), want, rtol=1e-6, atol=1e-6)
    # d(mean of the kept steps)/dx: 1 / count on kept steps, 0 on masked ones
    xv = fastnn.Variable(x)
    with fastnn.GradientTape() as tape:
        y = L.GlobalAveragePooling1D()(xv, mask=keep)
        total = fastnn.ops.sum(y)
    grad = tape.gradient(total, xv).numpy()
    np.testing.assert_allclose(grad, np.broadcast_to((keep / keep.sum(1, keepdims=True))[..., None], x.shape),
                               rtol=1e-6)


def test_fully_masked_sample_gives_nan_like_keras():
    x = np.ones((1, 3, 2), "float32")
    with np.errstate(invalid="ignore"):
        y = L.GlobalAveragePooling1D()(x, mask=np.zeros((1, 3), bool)).numpy()
    assert np.isnan(y).all()


def test_other_image_layers_drop_a_mask_with_keras_warning_and_spatial_dropout_keeps_it():
    x, keep = _masked_sequences()
    x_zeroed = np.where(keep[..., None], x, 0.0).astype("float32")
    masked = L.Masking(0.0)(x_zeroed)
    with pytest.warns(UserWarning, match="does not support masking"):
        L.GlobalMaxPooling1D()(masked)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = L.SpatialDropout1D(0.5)(masked)
    np.testing.assert_array_equal(np.asarray(get_keras_mask(out)), keep)


# -- SpatialDropout ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls,kwargs,shape,channel_axis", [
    (L.SpatialDropout1D, {}, (4, 6, 16), 2),
    (L.SpatialDropout2D, {}, (4, 3, 5, 16), 3),
    (L.SpatialDropout2D, {"data_format": "channels_first"}, (4, 16, 3, 5), 1),
])
def test_spatial_dropout_drops_whole_channels(cls, kwargs, shape, channel_axis):
    x = np.abs(_images(shape)) + 0.5  # no zeros of its own
    layer = cls(0.4, seed=3, **kwargs)
    y = layer(x, training=True).numpy()
    kept = y != 0
    spatial = tuple(a for a in range(1, len(shape)) if a != channel_axis)
    # every (sample, channel) is all kept or all dropped, and the kept ones are scaled by 1 / (1 - rate)
    assert np.array_equal(kept.all(axis=spatial), kept.any(axis=spatial))
    assert 0 < kept.all(axis=spatial).mean() < 1
    np.testing.assert_allclose(y[kept], (x / np.float32(0.6))[kept], rtol=1e-6)
    # the same seed gives the same channels; inference is the identity
    np.testing.assert_array_equal(cls(0.4, seed=3, **kwargs)(x, training=True).numpy(), y)
    np.testing.assert_array_equal(layer(x).numpy(), x)
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x)
    np.testing.assert_array_equal(cls(0.0, **kwargs)(x, training=True).numpy(), x)


def test_spatial_dropout_gradient_is_the_channel_mask():
    x = fastnn.Variable(np.ones((2, 3, 3, 8), "float32"))
    layer = L.SpatialDropout2D(0.5, seed=1)
    with fastnn.GradientTape() as tape:
        y = layer(x, training=True)
        total = fastnn.ops.sum(y)
    np.testing.assert_array_equal(tape.gradient(total, x).numpy(), y.numpy())


def test_spatial_dropout_is_a_dropout_with_keras_config():
    layer = L.SpatialDropout2D(0.25, data_format="channels_first", seed=5, name="sd")
    assert isinstance(layer, L.Dropout)
    assert layer.get_config() == {"rate": 0.25, "seed": 5, "name": "sd", "dtype": "float32",
                                  "data_format": "channels_first"}
    assert L.SpatialDropout1D(0.1, name="s1").get_config() == {"rate": 0.1, "seed": None, "name": "s1",
                                                               "dtype": "float32"}
    clone = L.SpatialDropout2D.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


# -- gradients (float64 central differences) ---------------------------------------------------------------------------
GRADIENT_CASES = [
    (L.ZeroPadding1D, {"padding": (1, 2)}, (2, 3, 2)),
    (L.ZeroPadding2D, {"padding": ((1, 0), (0, 2)), "data_format": "channels_first"}, (1, 2, 3, 2)),
    (L.Cropping1D, {"cropping": (1, 1)}, (2, 4, 2)),
    (L.Cropping2D, {"cropping": ((1, 0), (1, 1))}, (1, 3, 4, 2)),
    (L.UpSampling1D, {"size": 3}, (2, 3, 2)),
    (L.UpSampling2D, {"size": (2, 3)}, (1, 2, 3, 2)),
    (L.UpSampling2D, {"size": (3, 2), "interpolation": "bilinear"}, (1, 3, 2, 2)),
    (L.UpSampling2D, {"size": 2, "interpolation": "bilinear", "data_format": "channels_first"}, (1, 2, 3, 3)),
    (L.GlobalAveragePooling1D, {}, (2, 4, 3)),
    (L.GlobalAveragePooling2D, {"keepdims": True}, (2, 3, 2, 3)),
    (L.GlobalMaxPooling1D, {"data_format": "channels_first"}, (2, 3, 4)),
    (L.GlobalMaxPooling2D, {}, (2, 3, 2, 3)),
]


@pytest.mark.parametrize("cls,kwargs,shape", GRADIENT_CASES, ids=[f"{c[0].__name__}-{i}" for i, c in
                                                                   enumerate(GRADIENT_CASES)])
def test_gradients_against_finite_differences(cls, kwargs, shape):
    layer = cls(dtype="float64", **kwargs)
    check_gradients(lambda x: layer(x), [rng.standard_normal(shape)])


def test_masked_global_average_gradient_against_finite_differences():
    _, keep = _masked_sequences()
    layer = L.GlobalAveragePooling1D(dtype="float64")
    check_gradients(lambda x: layer(x, mask=keep), [rng.standard_normal((3, 5, 4))])


def test_global_max_ties_share_the_gradient():
    x = fastnn.Variable(np.array([[[1.0], [3.0], [3.0], [2.0]]], "float32"))
    with fastnn.GradientTape() as tape:
        total = fastnn.ops.sum(L.GlobalMaxPooling1D()(x))
    np.testing.assert_array_equal(tape.gradient(total, x).numpy()[0, :, 0], [0, 0.5, 0.5, 0])


# -- configs and models ------------------------------------------------------------------------------------------------
def test_configs_hold_keras_arguments_and_round_trip():
    cases = [
        (L.ZeroPadding1D(padding=(1, 2)), {"padding": (1, 2), "data_format": "channels_last"}),
        (L.ZeroPadding2D(padding=1, data_format="channels_first"),
         {"padding": ((1, 1), (1, 1)), "data_format": "channels_first"}),
        (L.Cropping1D(cropping=3), {"cropping": (3, 3)}),
        (L.Cropping2D(cropping=(1, 2)), {"cropping": ((1, 1), (2, 2)), "data_format": "channels_last"}),
        (L.UpSampling1D(size=4), {"size": 4}),
        (L.UpSampling2D(size=3, interpolation="Bilinear"),
         {"size": (3, 3), "data_format": "channels_last", "interpolation": "bilinear"}),
        (L.GlobalAveragePooling1D(keepdims=True), {"data_format": "channels_last", "keepdims": True}),
        (L.GlobalMaxPooling2D(data_format="CHANNELS_FIRST"), {"data_format": "channels_first", "keepdims": False}),
    ]
    for layer, wanted in cases:
        config = layer.get_config()
        assert {k: config[k] for k in wanted} == wanted, (type(layer).__name__, config)
        assert set(config) == {"name", "trainable", "dtype"} | set(wanted)
        clone = type(layer).from_config(config)
        assert clone.get_config() == config


def test_automatic_names_follow_keras():
    fastnn.utils.clear_session()
    assert L.ZeroPadding2D().name == "zero_padding2d"
    assert L.UpSampling1D().name == "up_sampling1d"
    assert L.GlobalAveragePooling2D().name == "global_average_pooling2d"
    assert L.SpatialDropout2D(0.1).name == "spatial_dropout2d"
    assert L.Cropping2D().name == "cropping2d"
    assert L.Cropping2D().name == "cropping2d_1"


def test_a_model_of_image_layers_round_trips_through_its_config_and_json():
    fastnn.utils.set_random_seed(0)
    model = fastnn.Sequential([
        L.Input((6, 6, 3)), L.ZeroPadding2D(((1, 0), (0, 1))), L.Cropping2D(((0, 1), (1, 0))),
        L.UpSampling2D(2, interpolation="bilinear"), L.SpatialDropout2D(0.2), L.GlobalMaxPooling2D(keepdims=True),
        L.Reshape((3, 1)), L.UpSampling1D(2), L.ZeroPadding1D(1), L.Cropping1D((1, 0)), L.SpatialDropout1D(0.1),
        L.GlobalAveragePooling1D(), L.Dense(2),
    ])
    x = _images((2, 6, 6, 3))
    want = model.predict(x, verbose=0)
    assert want.shape == (2, 2)
    clone = fastnn.Sequential.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(clone.predict(x, verbose=0), want)
    # through JSON, as a .keras file stores it (tuples become lists)
    loaded = fastnn.Sequential.from_config(json.loads(json.dumps(model.get_config())))
    loaded.set_weights(model.get_weights())
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), want)
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(x, np.zeros((2, 2), "float32"), epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


# -- bad arguments and inputs ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make,error,match", [
    (lambda: L.ZeroPadding1D(-1), ValueError, r"`padding` argument must be a tuple of 2 integers.*>= 0"),
    (lambda: L.ZeroPadding1D((1, 2, 3)), ValueError, r"`padding` argument must be a tuple of 2 integers"),
    (lambda: L.ZeroPadding1D(1.5), ValueError, r"`padding` argument must be a tuple of 2 integers"),
    (lambda: L.ZeroPadding2D((1, 2, 3)), ValueError, r"`padding` should have two elements"),
    (lambda: L.ZeroPadding2D(-2), ValueError, r"`padding` cannot be negative"),
    (lambda: L.ZeroPadding2D(((1, -1), (0, 0))), ValueError, r"`1st entry of padding` argument.*>= 0"),
    (lambda: L.ZeroPadding2D("same"), ValueError, r"`padding` should be either an int"),
    (lambda: L.ZeroPadding2D(1, data_format="nhwc"), ValueError, r"`data_format` argument must be one of"),
    (lambda: L.Cropping1D((1,)), ValueError, r"`cropping` argument must be a tuple of 2 integers"),
    (lambda: L.Cropping2D(((0, 0), (1, 2, 3))), ValueError, r"`2nd entry of cropping` argument"),
    (lambda: L.Cropping2D(-1), ValueError, r"`cropping` cannot be negative"),
    (lambda: L.UpSampling1D(2.0), TypeError, r"Expected an integer value for `size`"),
    (lambda: L.UpSampling1D(0), ValueError, r"`size` should be a positive integer"),
    (lambda: L.UpSampling2D((2, 0)), ValueError, r"`size` argument must be a tuple of 2 integers.*> 0"),
    (lambda: L.UpSampling2D(interpolation="bicubic"), ValueError, r'`interpolation` must be one of "nearest", '
                                                                  r'"bilinear".*bicubic'),
    (lambda: L.SpatialDropout1D(1.0), ValueError, r"`rate`.*between 0 and 1"),
    (lambda: L.SpatialDropout2D(0.5, noise_shape=(1, 1, 1, 3)), TypeError, r"noise_shape"),
    (lambda: L.SpatialDropout2D(0.5, data_format="last"), ValueError, r"`data_format` argument must be one of"),
    (lambda: L.GlobalAveragePooling2D(data_format="nchw"), ValueError, r"`data_format` argument must be one of"),
    (lambda: L.GlobalMaxPooling1D(keepdims="yes"), ValueError, r"`keepdims` must be True or False"),
])
def test_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_cropping_more_than_the_input_names_the_layer():
    with pytest.raises(ValueError, match=r'"crop1".*must be smaller than the input length.*\(2, 3, 4\)'):
        L.Cropping1D((2, 1), name="crop1")(np.ones((2, 3, 4), "float32"))
    with pytest.raises(ValueError, match=r'"crop2".*should be smaller than the corresponding spatial dimension'):
        L.Cropping2D(((0, 0), (2, 2)), name="crop2")(np.ones((1, 5, 4, 2), "float32"))
    with pytest.raises(ValueError, match=r"should be smaller than the corresponding spatial dimension.*"
                                         r"input_shape=\(None, 8, 2, 2\)"):
        L.Cropping2D(1, data_format="channels_first")(fastnn.Input((8, 2, 2)))
    with pytest.raises(ValueError, match=r"must be smaller than the input length.*input_shape=\(None, 2, 3\)"):
        L.Cropping1D(1)(fastnn.Input((2, 3)))


@pytest.mark.parametrize("layer,shape", [
    (L.ZeroPadding2D(), (2, 3, 4)), (L.Cropping1D(), (2, 3)), (L.UpSampling2D(), (2, 3, 4, 5, 6)),
    (L.SpatialDropout2D(0.5), (2, 3, 4)), (L.GlobalAveragePooling1D(), (2, 3, 4, 5)), (L.GlobalMaxPooling2D(), (2, 3)),
])
def test_wrong_rank_inputs_are_refused_with_the_layer_name(layer, shape):
    with pytest.raises(ValueError, match=rf'layer "{layer.name}".*expected ndim={layer.input_spec.ndim}'):
        layer(np.ones(shape, "float32"))
