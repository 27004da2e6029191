"""Conv1D, Conv2D, DepthwiseConv2D, SeparableConv2D and Conv2DTranspose: output shapes, values against the NumPy
references of the op table, float64 finite-difference gradients through the fused ops and the layers, configs,
and Keras-style errors on bad arguments and inputs."""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import layers as L
from fastnn.autograd.ops import conv as C
from fastnn.testing.gradcheck import check_gradients
from fastnn.testing.layer_harness import run_layer_test
from fastnn.testing.op_table import _ref_conv2d, _ref_conv_transpose2d, _ref_depthwise2d

rng = np.random.default_rng(0)


def _relu(v):
    return np.maximum(v, 0)


def _conv_ref(layer, x):
    """The layer's output from its weights by the NumPy references (channels_last)."""
    w = [np.asarray(v, np.float64) for v in layer.get_weights()]
    x = np.asarray(x, np.float64)
    first = layer.data_format == "channels_first"
    if first:
        x = np.moveaxis(x, 1, -1)
    one_d = x.ndim == 3
    if one_d:
        x = x[:, None]
    stride = (1,) * one_d + tuple(layer.strides)
    dil = (1,) * one_d + tuple(layer.dilation_rate)
    pad = layer.padding
    k0 = w[0][None] if one_d else w[0]
    if isinstance(layer, L.Conv2DTranspose):
        out_pad = None if layer.output_padding is None else (0,) * one_d + tuple(layer.output_padding)
        y = _ref_conv_transpose2d(x, k0, stride, pad, out_pad, dil)
    elif isinstance(layer, L.SeparableConv2D):
        y = _ref_conv2d(_ref_depthwise2d(x, k0, stride, pad, dil), w[1][None] if one_d else w[1])
        w = w[1:]
    elif isinstance(layer, L.DepthwiseConv2D):
        y = _ref_depthwise2d(x, k0, stride, pad, dil)
    else:
        k = w[0][None] if one_d else w[0]
        if pad == "causal":
            pad = ((0, 0), (dil[1] * (k.shape[1] - 1), 0))
        y = _ref_conv2d(x, k, stride, pad, dil)
    if layer.use_bias:
        y = y + w[-1]
    if one_d:
        y = y[:, 0]
    y = {"relu": _relu, "tanh": np.tanh, "linear": lambda v: v}[fastnn.activations.serialize(layer.activation)](y)
    return np.moveaxis(y, -1, 1) if first else y


LAYER_CASES = [
    (lambda: L.Conv2D(4, 3), (2, 6, 7, 3)),
    (lambda: L.Conv2D(4, 3, padding="same", activation="relu"), (2, 5, 5, 2)),
    (lambda: L.Conv2D(3, (2, 4), strides=(2, 3), padding="same"), (2, 7, 9, 2)),  # even kernel, "same", strided
    (lambda: L.Conv2D(2, 3, dilation_rate=2, padding="same", activation="tanh"), (1, 7, 6, 3)),
    (lambda: L.Conv2D(6, 3, groups=3, use_bias=False), (2, 5, 5, 6)),
    (lambda: L.Conv2D(4, 2, strides=2, data_format="channels_first"), (2, 3, 6, 5)),
    (lambda: L.Conv2D(4, 1), (2, 4, 4, 3)),
    (lambda: L.Conv1D(4, 3), (2, 9, 3)),
    (lambda: L.Conv1D(4, 2, strides=2, padding="same", activation="relu"), (2, 9, 3)),
    (lambda: L.Conv1D(3, 3, padding="causal", dilation_rate=2), (2, 8, 2)),
    (lambda: L.Conv1D(4, 3, groups=2, data_format="channels_first"), (2, 4, 7)),
    (lambda: L.DepthwiseConv2D(3, depth_multiplier=2, padding="same"), (2, 5, 6, 3)),
    (lambda: L.DepthwiseConv2D(2, strides=2, activation="relu"), (2, 6, 6, 2)),
    (lambda: L.SeparableConv2D(5, 3, padding="same", depth_multiplier=2, activation="relu"), (2, 5, 5, 3)),
    (lambda: L.SeparableConv2D(4, 2, strides=2), (2, 6, 7, 2)),
    (lambda: L.Conv2DTranspose(4, 3), (2, 3, 4, 3)),
    (lambda: L.Conv2DTranspose(3, 3, strides=2, padding="same", activation="relu"), (2, 3, 4, 2)),
    (lambda: L.Conv2DTranspose(3, 3, strides=2, padding="same", output_padding=1), (1, 3, 3, 2)),
    (lambda: L.Conv2DTranspose(2, (2, 3), strides=(2, 1), padding="valid"), (2, 3, 3, 2)),
    (lambda: L.DepthwiseConv1D(3, depth_multiplier=2, strides=2, padding="same"), (2, 7, 3)),
    (lambda: L.SeparableConv1D(4, 3, padding="same", activation="relu", data_format="channels_first"), (2, 3, 6)),
    (lambda: L.Conv1DTranspose(3, 3, strides=2, padding="same", output_padding=1), (2, 4, 2)),
    (lambda: L.Conv1DTranspose(2, 2, strides=3), (2, 3, 2)),
]
IDS = [f"{make().__class__.__name__}-{i}" for i, (make, _) in enumerate(LAYER_CASES)]


@pytest.mark.parametrize("make,shape", LAYER_CASES, ids=IDS)
def test_layer_matches_numpy_reference(make, shape):
    layer = make()
    x = rng.standard_normal(shape).astype(np.float32)
    y = layer(x)
    # a non-zero bias, so the fused epilogue's bias is checked too
    if layer.use_bias:
        weights = layer.get_weights()
        weights[-1] = rng.standard_normal(weights[-1].shape).astype(np.float32)
        layer.set_weights(weights)
        y = layer(x)
    assert tuple(y.shape) == layer.compute_output_shape(shape)
    assert y.dtype == np.float32
    np.testing.assert_allclose(np.asarray(y), _conv_ref(layer, x), rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("make,shape", LAYER_CASES, ids=IDS)
def test_layer_gradients_match_finite_differences(make, shape):
    """float64 layer: GradientTape gradients w.r.t. the input and every weight against central differences."""
    layer = make()
    layer = type(layer).from_config({**layer.get_config(), "dtype": "float64"})
    x = rng.standard_normal(shape)
    layer(x)
    weights = [rng.standard_normal(w.shape) * 0.5 for w in layer.get_weights()]
    layer.set_weights(weights)
    r = rng.standard_normal(layer.compute_output_shape(shape))

    def loss_value(x_):
        return float(np.sum(np.asarray(layer(x_)) * r))

    xt = fastnn.Variable(x)
    with fastnn.GradientTape() as tape:
        loss = fastnn.ops.sum(layer(xt) * r)
    grads = tape.gradient(loss, [xt] + list(layer.trainable_weights))
    eps = 1e-6
    # input
    numeric = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        d = np.zeros_like(x)
        d[i] = eps
        numeric[i] = (loss_value(x + d) - loss_value(x - d)) / (2 * eps)
    np.testing.assert_allclose(np.asarray(grads[0]), numeric, rtol=1e-5, atol=1e-7)
    # weights
    for j, w in enumerate(weights):
        numeric = np.zeros_like(w)
        for i in np.ndindex(w.shape):
            for sign in (1, -1):
                moved = [v.copy() for v in weights]
                moved[j][i] += sign * eps
                layer.set_weights(moved)
                numeric[i] += sign * loss_value(x) / (2 * eps)
        layer.set_weights(weights)
        np.testing.assert_allclose(np.asarray(grads[1 + j]), numeric, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("activation", ["linear", "relu"])
def test_fused_ops_gradients(activation):
    x = rng.standard_normal((2, 5, 4, 3))
    check_gradients(lambda x, k, b: C.conv_bias_act(x, k, b, 2, "same", None, 1, activation),
                    [x, rng.standard_normal((3, 2, 3, 4)), rng.standard_normal(4) * 0.1])
    check_gradients(lambda x, k, b: C.depthwise_conv_bias_act(x, k, b, 1, "same", None, 1, activation),
                    [x, rng.standard_normal((3, 3, 3, 2)), rng.standard_normal(6) * 0.1])
    check_gradients(lambda x, k, b: C.conv_transpose_bias_act(x, k, b, 2, "same", None, None, 1, activation),
                    [x, rng.standard_normal((3, 3, 2, 3)), rng.standard_normal(2) * 0.1])
    check_gradients(lambda x, k, b: C.conv_bias_act(x, k, b, 1, "causal", "channels_first", 2, activation),
                    [x[:, 0], rng.standard_normal((2, 4, 3)), rng.standard_normal(3) * 0.1])


def test_weights_names_layouts_and_initializers():
    conv = L.Conv2D(8, (3, 2), groups=2)
    conv.build((None, 9, 9, 4))
    assert [(w.name, tuple(w.shape)) for w in conv.weights] == [("kernel", (3, 2, 2, 8)), ("bias", (8,))]
    assert not np.asarray(conv.bias).any()
    # glorot_uniform over receptive-field fans: limit sqrt(6 / (3*2*2 + 3*2*8))
    limit = np.sqrt(6 / (3 * 2 * 2 + 3 * 2 * 8))
    k = np.asarray(conv.kernel)
    assert np.abs(k).max() <= limit and np.abs(k).max() > 0.8 * limit
    sep = L.SeparableConv2D(5, 3, depth_multiplier=2)
    sep.build((None, 8, 8, 3))
    assert [(w.name, tuple(w.shape)) for w in sep.weights] == [
        ("depthwise_kernel", (3, 3, 3, 2)), ("pointwise_kernel", (1, 1, 6, 5)), ("bias", (5,))]
    dw = L.DepthwiseConv2D(3, depth_multiplier=3, use_bias=False)
    dw.build((None, 8, 8, 2))
    assert [(w.name, tuple(w.shape)) for w in dw.weights] == [("kernel", (3, 3, 2, 3))]
    tr = L.Conv2DTranspose(6, 3)
    tr.build((None, 4, 4, 2))
    assert [(w.name, tuple(w.shape)) for w in tr.weights] == [("kernel", (3, 3, 6, 2)), ("bias", (6,))]
    c1 = L.Conv1D(4, 5)
    c1.build((None, 10, 3))
    assert [tuple(w.shape) for w in c1.weights] == [(5, 3, 4), (4,)]


@pytest.mark.parametrize("make", [lambda: L.Conv2D(4, (3, 2), strides=(2, 1), padding="same", groups=2,
                                                   activation="relu", use_bias=False, kernel_regularizer="l2"),
                                  lambda: L.Conv1D(3, 4, padding="causal", dilation_rate=2,
                                                   kernel_constraint="non_neg"),
                                  lambda: L.SeparableConv1D(3, 2, strides=2, depth_multiplier=2),
                                  lambda: L.DepthwiseConv1D(3, padding="same"),
                                  lambda: L.Conv1DTranspose(3, 3, strides=2, output_padding=1),
                                  lambda: L.DepthwiseConv2D(3, depth_multiplier=2, data_format="channels_first"),
                                  lambda: L.SeparableConv2D(5, 3, depth_multiplier=2, pointwise_regularizer="l1"),
                                  lambda: L.Conv2DTranspose(3, 3, strides=2, padding="same", output_padding=1)])
def test_config_round_trip(make):
    layer = make()
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    assert config["kernel_size"] == layer.kernel_size and config["padding"] == layer.padding


def test_keras_config_keys_and_defaults():
    config = L.Conv2D(4, 3).get_config()
    assert {k: config[k] for k in ("filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate",
                                   "groups", "activation", "use_bias")} == {
        "filters": 4, "kernel_size": (3, 3), "strides": (1, 1), "padding": "valid", "data_format": "channels_last",
        "dilation_rate": (1, 1), "groups": 1, "activation": "linear", "use_bias": True}
    assert config["kernel_initializer"]["class_name"] == "GlorotUniform"
    assert config["bias_initializer"]["class_name"] == "Zeros"
    assert L.Conv2DTranspose(2, 3).get_config()["output_padding"] is None
    assert L.DepthwiseConv2D(3).get_config()["depth_multiplier"] == 1


def test_in_a_model_fit_and_predict():
    model = fastnn.Sequential([fastnn.Input((8, 8, 1)), L.Conv2D(4, 3, activation="relu"),
                               L.SeparableConv2D(4, 3, padding="same"), L.DepthwiseConv2D(2, strides=2),
                               L.Conv2DTranspose(2, 2, strides=2), L.GlobalAveragePooling2D(), L.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    x = rng.standard_normal((6, 8, 8, 1)).astype(np.float32)
    history = model.fit(x, np.zeros((6, 2), np.float32), epochs=2, batch_size=3, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert model.predict(x, verbose=0).shape == (6, 2)


def test_channel_mismatch_after_build_is_refused():
    layer = L.Conv2D(2, 3)
    layer(np.zeros((1, 5, 5, 3), np.float32))
    with pytest.raises(ValueError, match="axis -1|3"):
        layer(np.zeros((1, 5, 5, 4), np.float32))


@pytest.mark.parametrize("make,shape,match", [
    (lambda: L.Conv2D(2, 5), (1, 4, 4, 1), "zero or negative.*larger than the input"),
    (lambda: L.Conv2D(2, 3, dilation_rate=3), (1, 6, 9, 1), "zero or negative"),
    (lambda: L.Conv1D(2, 4), (1, 3, 2), "zero or negative"),
    (lambda: L.Conv2D(2, 3), (1, 5, 5), "expects 4-D inputs|ndim=4"),
    (lambda: L.Conv2D(4, 3, groups=2), (1, 5, 5, 3), "input channels must be evenly divisible"),
    (lambda: L.Conv2D(2, 3), (1, 5, 5, None), "channel axis"),
])
def test_bad_inputs(make, shape, match):
    layer = make()
    with pytest.raises(ValueError, match=match):
        if None in shape:
            layer.build(shape)
        else:
            layer(np.zeros(shape, np.float32))


def test_kernel_too_large_for_a_later_input_is_refused():
    layer = L.Conv2D(2, 3)
    layer.build((None, None, None, 1))
    with pytest.raises(ValueError, match="zero or negative"):
        layer(np.zeros((1, 2, 8, 1), np.float32))


@pytest.mark.parametrize("make,match", [
    (lambda: L.Conv2D(0, 3), "filters"),
    (lambda: L.Conv2D(-2, 3), "filters"),
    (lambda: L.Conv2D(2, 0), "kernel_size"),
    (lambda: L.Conv2D(2, 3, strides=0), "strides"),
    (lambda: L.Conv2D(2, 3, strides=(1, -1)), "strides"),
    (lambda: L.Conv2D(2, 3, dilation_rate=0), "dilation_rate"),
    (lambda: L.Conv2D(2, (3, 3, 3)), "kernel_size"),
    (lambda: L.Conv2D(2, 3, strides=2, dilation_rate=2), "not supported in conjunction"),
    (lambda: L.Conv2D(3, 3, groups=2), "filters must be evenly divisible"),
    (lambda: L.Conv2D(3, 3, groups=0), "groups must be a positive integer"),
    (lambda: L.Conv2D(3, 3, padding="causal"), "padding"),
    (lambda: L.Conv2D(3, 3, padding="full"), "padding"),
    (lambda: L.Conv2D(3, 3, data_format="nhwc"), "data_format"),
    (lambda: L.DepthwiseConv2D(3, depth_multiplier=0), "depth_multiplier"),
    (lambda: L.Conv2DTranspose(3, 3, strides=2, output_padding=2), "output_padding"),
])
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_ops_bad_input():
    x = np.zeros((1, 5, 5, 3), np.float32)
    with pytest.raises(ValueError, match="multiple of the kernel's input channels"):
        fastnn.ops.conv(x, np.zeros((3, 3, 2, 4), np.float32))
    with pytest.raises(ValueError, match="divisible by groups"):
        fastnn.ops.conv(x, np.zeros((3, 3, 1, 4), np.float32))
    with pytest.raises(ValueError, match="no 3-D convolution|3-D .* or 4-D"):
        fastnn.ops.conv(np.zeros((1, 2, 2, 2, 3), np.float32), np.zeros((1, 1, 1, 3, 2), np.float32))
    with pytest.raises(ValueError, match="4-D kernel"):
        fastnn.ops.conv(x, np.zeros((3, 3, 4), np.float32))
    with pytest.raises(ValueError, match="larger than the padded input"):
        fastnn.ops.conv(x, np.zeros((7, 3, 3, 4), np.float32))
    with pytest.raises(ValueError, match="strides"):
        fastnn.ops.conv(x, np.zeros((3, 3, 3, 4), np.float32), strides=0)
    with pytest.raises(ValueError, match="padding"):
        fastnn.ops.conv(x, np.zeros((3, 3, 3, 4), np.float32), padding="causal")
    with pytest.raises(ValueError, match="kernel's input channels"):
        fastnn.ops.depthwise_conv(x, np.zeros((3, 3, 2, 1), np.float32))
    with pytest.raises(ValueError, match="kernel's last axis"):
        fastnn.ops.conv_transpose(x, np.zeros((3, 3, 2, 4), np.float32))
    with pytest.raises(ValueError, match="smaller than its stride"):
        fastnn.ops.conv_transpose(x, np.zeros((3, 3, 2, 3), np.float32), strides=2, output_padding=2)


@pytest.mark.parametrize("cls,kwargs,shape,n_weights", [
    (L.Conv2D, {"filters": 3, "kernel_size": 2, "strides": 2, "padding": "same", "activation": "relu"},
     (2, 5, 5, 2), 2),
    (L.DepthwiseConv1D, {"kernel_size": 3, "depth_multiplier": 2, "padding": "same"}, (2, 6, 2), 2),
    (L.SeparableConv1D, {"filters": 3, "kernel_size": 2, "strides": 2}, (2, 7, 2), 3),
    (L.Conv1DTranspose, {"filters": 2, "kernel_size": 3, "strides": 2, "padding": "same"}, (2, 4, 3), 2),
    (L.Conv2D, {"filters": 4, "kernel_size": 3, "groups": 2, "use_bias": False}, (2, 5, 5, 4), 1),
    (L.Conv1D, {"filters": 3, "kernel_size": 3, "padding": "causal"}, (2, 6, 2), 2),
    (L.DepthwiseConv2D, {"kernel_size": 3, "depth_multiplier": 2}, (2, 5, 5, 2), 2),
    (L.SeparableConv2D, {"filters": 3, "kernel_size": 3, "padding": "same"}, (2, 4, 4, 2), 3),
    (L.Conv2DTranspose, {"filters": 3, "kernel_size": 3, "strides": 2}, (2, 3, 3, 2), 2),
])
def test_layer_harness(cls, kwargs, shape, n_weights):
    out_shape = cls(**kwargs).compute_output_shape(shape)
    run_layer_test(cls, kwargs, shape, out_shape, expected_num_trainable_weights=n_weights,
                   bad_input_shape=shape[:-1] + (shape[-1] + 1,))


def test_conv_transpose_output_padding_without_a_matching_convolution_is_refused():
    # "same", stride 2, kernel 2, output_padding 0: output 4 whose "same" convolution has size 2, not 3 (TensorFlow
    # refuses it as well)
    with pytest.raises(ValueError, match="conv_transpose: output_padding=0 .* not the input's 3"):
        fastnn.ops.conv_transpose(np.zeros((1, 3, 3, 2), np.float32), np.zeros((2, 2, 3, 2), np.float32), strides=2,
                                  padding="same", output_padding=0)
