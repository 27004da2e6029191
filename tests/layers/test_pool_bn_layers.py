"""MaxPooling1D/2D, AveragePooling1D/2D and BatchNormalization: output shapes, values against NumPy references,
float64 finite-difference gradients, BatchNormalization's moving statistics over training steps and model.fit,
trainable=False (inference mode), masks, configs and bad input."""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import layers as L
from fastnn import ops
from fastnn.autograd.ops.pool import global_average_pool2d
from fastnn.testing.gradcheck import check_gradients
from fastnn.testing.layer_harness import run_layer_test
from fastnn.testing.op_table import _ref_pool

POOL_CASES = [
    (L.MaxPooling2D, {}, (2, 4, 4, 3), "max"),
    (L.MaxPooling2D, {"pool_size": (3, 2), "strides": (2, 1), "padding": "same"}, (2, 5, 4, 2), "max"),
    (L.MaxPooling2D, {"pool_size": 2, "strides": 1, "data_format": "channels_first"}, (2, 3, 4, 5), "max"),
    (L.MaxPooling1D, {"pool_size": 3, "strides": 2, "padding": "same"}, (2, 7, 3), "max"),
    (L.MaxPooling1D, {"data_format": "channels_first"}, (2, 3, 6), "max"),
    (L.AveragePooling2D, {"pool_size": 2}, (2, 4, 6, 3), "avg"),
    (L.AveragePooling2D, {"pool_size": 3, "strides": 2, "padding": "SAME"}, (2, 5, 6, 2), "avg"),
    (L.AveragePooling2D, {"pool_size": (2, 3), "padding": "same", "data_format": "channels_first"}, (1, 2, 5, 5),
     "avg"),
    (L.AveragePooling1D, {"pool_size": 4, "strides": 1}, (2, 6, 3), "avg"),
    (L.AveragePooling1D, {"pool_size": 2, "padding": "same", "data_format": "channels_first"}, (2, 3, 5), "avg"),
]
POOL_IDS = [f"{c[0].__name__}-{i}" for i, c in enumerate(POOL_CASES)]


def _reference(layer, x, kind):
    return _ref_pool(x, layer.pool_size, layer.strides, layer.padding, layer.data_format, kind)


@pytest.mark.parametrize("cls,kwargs,shape,kind", POOL_CASES, ids=POOL_IDS)
def test_pooling_values_and_shapes(cls, kwargs, shape, kind):
    x = np.random.default_rng(0).standard_normal(shape).astype("float32")
    layer = cls(**kwargs)
    y = layer(x)
    ref = _reference(layer, x.astype(np.float64), kind)
    assert y.shape == ref.shape == layer.compute_output_shape(shape)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-6, atol=1e-6)
    symbolic = cls(**kwargs)(fastnn.Input(shape[1:]))
    assert tuple(symbolic.shape) == (None,) + ref.shape[1:]


@pytest.mark.parametrize("cls,kwargs,shape,kind", POOL_CASES, ids=POOL_IDS)
def test_pooling_gradients_match_finite_differences(cls, kwargs, shape, kind):
    layer = cls(dtype="float64", **kwargs)  # no cast of the float64 input to float32
    # Distinct values far apart: no ties, so max pooling is differentiable where it is checked.
    x = np.random.default_rng(1).permutation(np.prod(shape)).reshape(shape).astype(np.float64) * 0.1
    check_gradients(lambda t: layer(t), [x], rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("cls,kwargs,shape,kind", POOL_CASES, ids=POOL_IDS)
def test_pooling_layer_harness(cls, kwargs, shape, kind):
    fastnn.utils.clear_session()
    run_layer_test(cls, kwargs, shape, cls(**kwargs).compute_output_shape(shape))


def test_max_pooling_gradient_goes_to_the_window_maximum():
    x = fastnn.Variable(np.array([[[1.0], [5.0], [2.0], [3.0]]], "float32"))
    with fastnn.GradientTape() as tape:
        y = L.MaxPooling1D(2)(x)
    np.testing.assert_array_equal(y.numpy()[0, :, 0], [5.0, 3.0])
    np.testing.assert_array_equal(tape.gradient(y, x).numpy()[0, :, 0], [0.0, 1.0, 0.0, 1.0])


def test_average_pooling_same_leaves_padding_out_of_the_count():
    x = np.arange(1.0, 6.0, dtype="float32").reshape(1, 5, 1)
    y = L.AveragePooling1D(2, padding="same")(x).numpy()[0, :, 0]
    np.testing.assert_allclose(y, [1.5, 3.5, 5.0])  # the last window holds one real value: 5 / 1, not 5 / 2


def test_pooling_defaults_config_and_aliases():
    layer = L.MaxPooling2D()
    assert (layer.pool_size, layer.strides, layer.padding, layer.data_format) == ((2, 2), (2, 2), "valid",
                                                                                 "channels_last")
    assert L.AveragePooling1D(3).strides == (3,)
    assert L.MaxPool2D is L.MaxPooling2D and L.AvgPool1D is L.AveragePooling1D
    assert L.MaxPool1D is L.MaxPooling1D and L.AvgPool2D is L.AveragePooling2D
    layer = L.AveragePooling2D(pool_size=(3, 2), strides=1, padding="same", data_format="channels_first", name="p")
    config = layer.get_config()
    assert {k: config[k] for k in ("name", "pool_size", "strides", "padding", "data_format")} == {
        "name": "p", "pool_size": (3, 2), "strides": (1, 1), "padding": "same", "data_format": "channels_first"}
    again = L.AveragePooling2D.from_config(config)
    assert again.get_config() == config
    x = np.random.default_rng(2).standard_normal((1, 2, 4, 5)).astype("float32")
    np.testing.assert_array_equal(again(x).numpy(), layer(x).numpy())


@pytest.mark.parametrize("make,match", [
    (lambda: L.MaxPooling2D(pool_size=0), "pool_size"),
    (lambda: L.MaxPooling2D(strides=(1, 0)), "strides"),
    (lambda: L.MaxPooling2D(pool_size=(2, 2, 2)), "pool_size"),
    (lambda: L.AveragePooling1D(2, padding="full"), "padding"),
    (lambda: L.AveragePooling2D(2, data_format="nhwc"), "data_format"),
])
def test_pooling_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_pooling_bad_input():
    with pytest.raises(ValueError, match=r"max_pooling2d.*zero or negative.*\(2, 3, 5, 1\)"):
        L.MaxPooling2D(pool_size=4, name="max_pooling2d")(np.zeros((2, 3, 5, 1), "float32"))
    with pytest.raises(ValueError, match="zero or negative"):
        L.AveragePooling1D(6)(fastnn.Input((5, 2)))
    with pytest.raises(ValueError, match="ndim"):
        L.MaxPooling2D()(np.zeros((2, 4, 4), "float32"))
    with pytest.raises(ValueError, match="max_pool: the pool window"):
        ops.max_pool(np.zeros((1, 3, 3, 1), "float32"), 4)
    with pytest.raises(ValueError, match="average_pool.*3-D.*4-D"):
        ops.average_pool(np.zeros((4, 4), "float32"), 2)
    # "same" accepts any window: a 4 x 4 window over a 3 x 5 input pools the whole padded neighbourhood.
    assert L.MaxPooling2D(pool_size=4, padding="same")(np.zeros((2, 3, 5, 1), "float32")).shape == (2, 1, 2, 1)


def test_pooling_ops_keep_float16_and_float64():
    x = np.random.default_rng(3).standard_normal((1, 4, 4, 2))
    for dtype in ("float16", "float64"):
        for op, kind in ((ops.max_pool, "max"), (ops.average_pool, "avg")):
            y = op(x.astype(dtype), 2)
            assert y.dtype == np.dtype(dtype)
            np.testing.assert_allclose(y.numpy().astype(np.float64), _ref_pool(x.astype(dtype), 2, kind=kind),
                                       rtol=1e-3 if dtype == "float16" else 1e-12)


# -- BatchNormalization -----------------------------------------------------------------------------------------
def _bn_reference(x, axis, mean, variance, gamma, beta, epsilon):
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    return ((x - mean.reshape(shape)) / np.sqrt(variance.reshape(shape) + epsilon) * gamma.reshape(shape)
            + beta.reshape(shape))


def _set_affine(layer, rng):
    channels = layer.gamma.shape[0]
    layer.gamma.assign(rng.uniform(0.5, 1.5, channels).astype("float32"))
    layer.beta.assign(rng.uniform(-0.5, 0.5, channels).astype("float32"))


@pytest.mark.parametrize("axis,shape", [(-1, (8, 5)), (-1, (2, 3, 4, 3)), (1, (2, 3, 4, 4)), (0, (3, 4)),
                                        (-2, (2, 5, 3))])
def test_batch_norm_training_and_inference_values(axis, shape):
    rng = np.random.default_rng(4)
    x = (rng.standard_normal(shape) * 2 + 1).astype("float32")
    layer = L.BatchNormalization(axis=axis, momentum=0.8, epsilon=1e-2)
    layer.build(shape)
    _set_affine(layer, rng)
    gamma, beta = layer.gamma.numpy().astype(np.float64), layer.beta.numpy().astype(np.float64)
    ax = axis % len(shape)
    reduce_axes = tuple(i for i in range(len(shape)) if i != ax)
    x64 = x.astype(np.float64)
    mean, variance = x64.mean(axis=reduce_axes), x64.var(axis=reduce_axes)
    y = layer(x, training=True)
    np.testing.assert_allclose(y.numpy(), _bn_reference(x64, ax, mean, variance, gamma, beta, 1e-2), rtol=1e-5,
                               atol=1e-5)
    # Keras 3: moving = moving * momentum + batch * (1 - momentum), the batch variance being the biased one.
    np.testing.assert_allclose(layer.moving_mean.numpy(), mean * 0.2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.moving_variance.numpy(), 0.8 + variance * 0.2, rtol=1e-5)
    moving_mean, moving_variance = layer.moving_mean.numpy().copy(), layer.moving_variance.numpy().copy()
    y_inference = layer(x)  # training defaults to inference
    np.testing.assert_allclose(y_inference.numpy(), _bn_reference(x64, ax, moving_mean.astype(np.float64),
                                                                  moving_variance.astype(np.float64), gamma, beta,
                                                                  1e-2), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(layer.moving_mean.numpy(), moving_mean)  # inference leaves them alone


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("axis,shape", [(-1, (6, 3)), (1, (2, 3, 2, 2))])
def test_batch_norm_gradients_match_finite_differences(training, axis, shape):
    rng = np.random.default_rng(5)
    layer = L.BatchNormalization(axis=axis, dtype="float64", moving_mean_initializer="random_normal")
    layer.build(shape)
    _set_affine(layer, rng)
    x = rng.standard_normal(shape)
    gamma, beta = layer.gamma.numpy().copy(), layer.beta.numpy().copy()
    check_gradients(lambda t: layer(t, training=training), [x], rtol=1e-5, atol=1e-8)

    # gamma and beta: their gradients against finite differences of the layer's output in each of them.
    weights = rng.uniform(0.5, 1.5, shape)
    with fastnn.GradientTape() as tape:
        loss = ops.sum(ops.multiply(layer(fastnn.Tensor(x), training=training), fastnn.Tensor(weights)))
    grads = [g.numpy() for g in tape.gradient(loss, [layer.gamma, layer.beta])]
    for variable, value, grad in zip((layer.gamma, layer.beta), (gamma, beta), grads):
        numeric = np.zeros_like(value)
        for i in range(value.size):
            losses = []
            for step in (1e-6, -1e-6):
                shifted = value.copy()
                shifted[i] += step
                variable.assign(shifted)
                losses.append(float(np.sum(layer(x, training=training).numpy() * weights)))
            variable.assign(value)
            numeric[i] = (losses[0] - losses[1]) / 2e-6
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


def test_batch_norm_without_center_and_scale():
    layer = L.BatchNormalization(center=False, scale=False)
    x = np.random.default_rng(6).standard_normal((5, 3)).astype("float32")
    y = layer(x, training=True)
    assert [w.name for w in layer.weights] == ["moving_mean", "moving_variance"]
    np.testing.assert_allclose(y.numpy(), (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-3), rtol=1e-5, atol=1e-6)


def test_batch_norm_weights_in_keras_order():
    layer = L.BatchNormalization()
    layer.build((None, 4))
    assert [w.name for w in layer.weights] == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert [w.name for w in layer.trainable_weights] == ["gamma", "beta"]
    assert [w.name for w in layer.non_trainable_weights] == ["moving_mean", "moving_variance"]
    np.testing.assert_array_equal(np.concatenate(layer.get_weights()), [1] * 4 + [0] * 4 + [0] * 4 + [1] * 4)


def test_batch_norm_trainable_false_runs_in_inference_mode():
    layer = L.BatchNormalization(moving_mean_initializer="ones",
                                 moving_variance_initializer=fastnn.initializers.Constant(4.0))
    x = np.random.default_rng(7).standard_normal((6, 2)).astype("float32")
    layer.build(x.shape)
    layer.trainable = False
    y = layer(x, training=True)
    np.testing.assert_allclose(y.numpy(), (x - 1.0) / np.sqrt(4.0 + 1e-3), rtol=1e-6)
    np.testing.assert_array_equal(layer.moving_mean.numpy(), [1.0, 1.0])
    assert layer.trainable_weights == []


def _tiny_model(seed=0):
    fastnn.utils.clear_session()
    fastnn.utils.set_random_seed(seed)
    model = fastnn.Sequential([fastnn.Input((4,)), L.Dense(3), L.BatchNormalization(momentum=0.5), L.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    return model


def test_batch_norm_moving_statistics_follow_the_batches_during_fit():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((12, 4)).astype("float32") * 3 + 2
    y = rng.standard_normal((12, 1)).astype("float32")
    model = _tiny_model()
    dense, bn = model.layers[0], model.layers[1]
    # Replays the fit by hand: each batch's Dense output (with the weights before its step) updates the statistics.
    expected_mean, expected_variance = np.zeros(3), np.ones(3)
    for start in range(0, 12, 4):
        h = dense(x[start:start + 4]).numpy().astype(np.float64)
        expected_mean = expected_mean * 0.5 + h.mean(0) * 0.5
        expected_variance = expected_variance * 0.5 + h.var(0) * 0.5
        model.train_on_batch(x[start:start + 4], y[start:start + 4])
    np.testing.assert_allclose(bn.moving_mean.numpy(), expected_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.moving_variance.numpy(), expected_variance, rtol=1e-5, atol=1e-6)

    fitted = _tiny_model()
    fitted.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(fitted.layers[1].moving_mean.numpy(), bn.moving_mean.numpy(), rtol=1e-6)
    np.testing.assert_allclose(fitted.layers[1].moving_variance.numpy(), bn.moving_variance.numpy(), rtol=1e-6)
    # Evaluation and prediction use (and keep) the moving statistics.
    before = fitted.layers[1].moving_mean.numpy().copy()
    fitted.predict(x, verbose=0)
    fitted.evaluate(x, y, verbose=0)
    np.testing.assert_array_equal(fitted.layers[1].moving_mean.numpy(), before)


def test_batch_norm_with_a_mask_uses_the_unmasked_positions():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 4, 3)).astype("float32")
    mask = np.array([[True, True, False, True], [False, True, True, False]])
    layer = L.BatchNormalization(momentum=0.0)
    y = layer(x, mask=fastnn.Tensor(mask), training=True)
    kept = x[mask].astype(np.float64)
    count = kept.shape[0] + 1e-7
    mean = kept.sum(0) / count
    variance = ((kept - mean) ** 2).sum(0) / count
    np.testing.assert_allclose(layer.moving_mean.numpy(), mean, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(layer.moving_variance.numpy(), variance, rtol=1e-5)
    np.testing.assert_allclose(y.numpy(), (x - mean) / np.sqrt(variance + 1e-3), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="one dimension less"):
        L.BatchNormalization()(x, mask=fastnn.Tensor(np.ones((2, 4, 3), bool)), training=True)


def test_batch_norm_config_round_trip():
    layer = L.BatchNormalization(axis=1, momentum=0.9, epsilon=1e-5, center=False, gamma_initializer="zeros",
                                 gamma_regularizer="l2", gamma_constraint="non_neg", name="bn")
    config = layer.get_config()
    for key, value in {"axis": 1, "momentum": 0.9, "epsilon": 1e-5, "center": False, "scale": True,
                       "synchronized": False, "renorm": False, "name": "bn"}.items():
        assert config[key] == value
    assert config["gamma_initializer"]["class_name"] == "Zeros"
    assert L.BatchNormalization.from_config(config).get_config() == config


def test_batch_norm_layer_harness():
    fastnn.utils.clear_session()
    run_layer_test(L.BatchNormalization, {"axis": 1}, (2, 3, 4, 4), (2, 3, 4, 4), expected_num_trainable_weights=2,
                   expected_num_non_trainable_weights=2, bad_input_shape=(2, 5, 4, 4))


def test_batch_norm_bad_input():
    with pytest.raises(ValueError, match=r"axis=2 does not exist.*\(3, 4\)"):
        L.BatchNormalization(axis=2)(np.zeros((3, 4), "float32"))
    with pytest.raises(ValueError, match=r"axis=-3 does not exist"):
        L.BatchNormalization(axis=-3)(fastnn.Input((4,)))
    layer = L.BatchNormalization()
    layer(np.zeros((2, 4), "float32"))
    with pytest.raises(ValueError):
        layer(np.zeros((2, 5), "float32"))
    with pytest.raises(ValueError, match="invalid keys for `renorm_clipping`"):
        L.BatchNormalization(renorm=True, renorm_clipping={"rmx": 1.0})
    with pytest.raises(ValueError, match="batch_normalization: `mean`"):
        ops.batch_normalization(np.zeros((2, 3)), np.zeros(2), np.ones(3), axis=-1)


@pytest.mark.parametrize("keepdims", [False, True])
def test_global_average_pooling_2d_on_the_kernel_matches_numpy_and_finite_differences(keepdims):
    x = np.random.default_rng(10).standard_normal((3, 5, 6, 4))
    layer = L.GlobalAveragePooling2D(keepdims=keepdims, dtype="float64")
    y = layer(x)
    assert y.shape == layer.compute_output_shape(x.shape)
    np.testing.assert_allclose(y.numpy(), x.mean(axis=(1, 2), keepdims=keepdims), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(L.GlobalAveragePooling2D()(x.astype("float32")).numpy(), x.mean(axis=(1, 2)),
                               rtol=1e-5, atol=1e-6)
    check_gradients(lambda t: layer(t), [x], rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="global_average_pool2d.*4-D"):
        global_average_pool2d(np.zeros((2, 3)))
