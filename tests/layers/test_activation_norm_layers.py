"""The activation, per-sample normalization, noise and rescaling layers without Keras: values against NumPy
references of their formulas, float64 central differences for the input and weight gradients, argument checks,
configs, the compiled step against eager execution, and a .keras round trip. (tests/e2e/
test_keras_activation_norm_layers.py checks the same layers against Keras itself.)"""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn.testing.compiled_step import assert_compiled_equals_eager
from fastnn.testing.gradcheck import check_gradients, check_weight_gradients

L = fastnn.layers
RNG = np.random.default_rng(0)


def _x(*shape, dtype="float64", seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _layer_norm_ref(x, axes, gamma, beta, eps):
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def test_values_match_numpy_references():
    x = _x(3, 4, 6)
    np.testing.assert_allclose(L.ReLU(max_value=0.5, negative_slope=0.1, threshold=0.2, dtype="float64")(x).numpy(),
                               np.where(x >= 0.5, 0.5, np.where(x >= 0.2, x, 0.1 * (x - 0.2))), rtol=1e-12)
    np.testing.assert_allclose(L.LeakyReLU(dtype="float64")(x).numpy(), np.where(x > 0, x, 0.3 * x), rtol=1e-12)
    np.testing.assert_allclose(L.ELU(0.7, dtype="float64")(x).numpy(), np.where(x > 0, x, 0.7 * np.expm1(x)),
                               rtol=1e-12)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(L.Softmax(axis=1, dtype="float64")(x).numpy(), e / e.sum(axis=1, keepdims=True),
                               rtol=1e-12)
    e = np.exp(x - x.max(axis=(1, 2), keepdims=True))
    np.testing.assert_allclose(L.Softmax(axis=[1, 2], dtype="float64")(x).numpy(),
                               e / e.sum(axis=(1, 2), keepdims=True), rtol=1e-12)

    prelu = L.PReLU(shared_axes=[1], dtype="float64")
    prelu.build(x.shape)
    assert tuple(prelu.alpha.shape) == (1, 6)
    alpha = _x(1, 6, seed=1)
    prelu.set_weights([alpha])
    np.testing.assert_allclose(prelu(x).numpy(), np.where(x > 0, x, alpha * x), rtol=1e-12)

    ln = L.LayerNormalization(axis=[1, 2], epsilon=1e-5, dtype="float64")
    ln.build(x.shape)
    gamma, beta = _x(4, 6, seed=2), _x(4, 6, seed=3)
    ln.set_weights([gamma, beta])
    np.testing.assert_allclose(ln(x).numpy(), _layer_norm_ref(x, (1, 2), gamma, beta, 1e-5), rtol=1e-10, atol=1e-12)
    assert ln.axis == [1, 2]

    rms = L.RMSNormalization(dtype="float64")
    rms.build(x.shape)
    scale = _x(6, seed=4)
    rms.set_weights([scale])
    np.testing.assert_allclose(rms(x).numpy(), x / np.sqrt((x ** 2).mean(-1, keepdims=True) + 1e-6) * scale,
                               rtol=1e-12)

    np.testing.assert_allclose(L.UnitNormalization(dtype="float64")(x).numpy(),
                               x / np.linalg.norm(x, axis=-1, keepdims=True), rtol=1e-12)
    np.testing.assert_array_equal(L.UnitNormalization()(np.zeros((2, 3), "float32")).numpy(), np.zeros((2, 3)))

    gn = L.GroupNormalization(groups=3, dtype="float64")
    gn.build(x.shape)
    gamma, beta = _x(6, seed=5), _x(6, seed=6)
    gn.set_weights([gamma, beta])
    grouped = x.reshape(3, 4, 3, 2)
    mean = grouped.mean(axis=(1, 3), keepdims=True)
    var = grouped.var(axis=(1, 3), keepdims=True)
    ref = ((grouped - mean) / np.sqrt(var + 1e-3)).reshape(x.shape) * gamma + beta
    np.testing.assert_allclose(gn(x).numpy(), ref, rtol=1e-10, atol=1e-12)

    pixels = np.arange(24, dtype="uint8").reshape(1, 2, 4, 3) * 10
    y = L.Rescaling(1 / 255.0, offset=-0.5)(pixels)
    assert y.dtype == "float32"
    np.testing.assert_allclose(y.numpy(), pixels.astype("float32") * np.float32(1 / 255.0) - 0.5, rtol=1e-6)
    per_channel = L.Rescaling([1.0, 2.0, 4.0])(pixels).numpy()
    np.testing.assert_allclose(per_channel, pixels * np.array([1.0, 2.0, 4.0]), rtol=1e-6)


def test_softmax_mask_zeroes_the_masked_positions_and_renormalizes_the_rest():
    x = _x(2, 5, dtype="float32")
    mask = np.array([[1, 1, 0, 1, 0], [0, 0, 0, 0, 1]], bool)
    y = L.Softmax()(x, mask=mask).numpy()
    assert np.all(y[~mask] == 0)
    np.testing.assert_allclose(y.sum(-1), 1.0, rtol=1e-6)
    e = np.where(mask, np.exp(x - np.where(mask, x, -np.inf).max(-1, keepdims=True)), 0)
    np.testing.assert_allclose(y, e / e.sum(-1, keepdims=True), rtol=1e-6)
    with pytest.raises(ValueError, match="broadcastable"):
        L.Softmax()(x, mask=np.ones((2, 3), bool))


@pytest.mark.parametrize("make", [
    lambda: L.ReLU(max_value=0.9, negative_slope=0.2, threshold=0.1, dtype="float64"),
    lambda: L.LeakyReLU(0.2, dtype="float64"),
    lambda: L.ELU(0.5, dtype="float64"),
    lambda: L.Softmax(axis=1, dtype="float64"),
    lambda: L.Softmax(axis=[1, 2], dtype="float64"),
    lambda: L.PReLU(alpha_initializer="he_normal", shared_axes=2, dtype="float64"),
    lambda: L.LayerNormalization(axis=[1, 2], gamma_initializer="he_normal", beta_initializer="he_normal",
                                 dtype="float64"),
    lambda: L.LayerNormalization(axis=1, scale=False, dtype="float64"),
    lambda: L.RMSNormalization(dtype="float64"),
    lambda: L.UnitNormalization(axis=[1, 2], dtype="float64"),
    lambda: L.GroupNormalization(groups=2, gamma_initializer="he_normal", beta_initializer="he_normal",
                                 dtype="float64"),
    lambda: L.GroupNormalization(groups=-1, axis=1, dtype="float64"),
    lambda: L.Rescaling(0.5, offset=2.0, dtype="float64"),
], ids=["relu", "leaky", "elu", "softmax", "softmax2", "prelu", "layernorm", "layernorm1", "rms", "unit", "group",
        "instance", "rescaling"])
def test_input_and_weight_gradients_match_central_differences(make):
    layer = make()
    x = _x(2, 3, 4, seed=7)
    x[np.abs(x) < 0.05] += 0.2  # away from the ReLU kinks, where differences are one-sided
    layer.build(x.shape)
    check_gradients(lambda t: layer(t), [x])
    check_weight_gradients(lambda: layer(x), layer.trainable_weights, _x(2, 3, 4, seed=8))


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="max_value"):
        L.ReLU(max_value=-1.0)
    with pytest.raises(ValueError, match="negative_slope"):
        L.ReLU(negative_slope=-0.5)
    with pytest.raises(ValueError, match="threshold"):
        L.ReLU(threshold=None)
    with pytest.raises(ValueError, match="negative_slope"):
        L.LeakyReLU(negative_slope=-1)
    with pytest.warns(UserWarning, match="alpha"):
        assert L.LeakyReLU(alpha=0.1).negative_slope == 0.1
    with pytest.raises(ValueError, match="shared_axes"):
        L.PReLU(shared_axes=[0])
    with pytest.raises(ValueError, match="axis"):
        L.Softmax(axis="last")
    with pytest.raises(TypeError, match="axis"):
        L.LayerNormalization(axis=1.5)
    with pytest.raises(ValueError, match="out of bounds"):
        L.LayerNormalization(axis=3)(np.ones((2, 3), "float32"))
    with pytest.raises(ValueError, match="groups"):
        L.GroupNormalization(groups=0)
    with pytest.raises(ValueError, match="multiple"):
        L.GroupNormalization(groups=3)(np.ones((2, 8), "float32"))
    with pytest.raises(ValueError, match="more than"):
        L.GroupNormalization(groups=16)(np.ones((2, 8), "float32"))
    with pytest.raises(ValueError, match="stddev"):
        L.GaussianNoise(1.5)
    with pytest.raises(ValueError, match="rate"):
        L.GaussianDropout(-0.1)
    with pytest.raises(ValueError, match="scale"):
        L.Rescaling(None)
    with pytest.raises(ValueError, match="scale"):
        L.Rescaling("half")


def test_noise_layers_train_noisy_and_infer_exactly():
    x = np.ones((500, 40), "float32")
    noise, drop = L.GaussianNoise(0.2, seed=1), L.GaussianDropout(0.2, seed=1)
    np.testing.assert_array_equal(noise(x).numpy(), x)
    np.testing.assert_array_equal(drop(x).numpy(), x)
    n = noise(x, training=True).numpy() - 1.0
    d = drop(x, training=True).numpy()
    assert abs(n.mean()) < 0.01 and abs(n.std() - 0.2) < 0.01
    assert abs(d.mean() - 1.0) < 0.01 and abs(d.std() - np.sqrt(0.2 / 0.8)) < 0.01
    act = L.ActivityRegularization(l1=0.1, l2=0.01)
    y = act(fastnn.ops.convert_to_tensor(np.full((4, 5), 2.0, "float32")))
    np.testing.assert_array_equal(y.numpy(), np.full((4, 5), 2.0))
    assert "activity_regularizer" not in act.get_config()


def _model():
    inputs = fastnn.Input((6, 5))
    h = L.Rescaling(0.5)(inputs)
    h = L.Dense(8)(h)
    h = L.PReLU(shared_axes=[1])(h)
    h = L.LayerNormalization()(h)
    h = L.GaussianNoise(0.1)(h)
    h = L.GroupNormalization(groups=4)(h)
    h = L.LeakyReLU()(h)
    h = L.RMSNormalization()(h)
    h = L.ReLU(max_value=3.0)(L.ELU()(h))
    h = L.GaussianDropout(0.2)(h)
    h = L.UnitNormalization()(L.ActivityRegularization(l2=1e-3)(h))
    h = L.Flatten()(h)
    return fastnn.Model(inputs, L.Softmax()(L.Dense(3)(h)))


def test_compiled_step_gives_the_eager_bits_with_every_layer_traced():
    x = RNG.standard_normal((24, 6, 5)).astype("float32")
    y = np.eye(3, dtype="float32")[RNG.integers(0, 3, 24)]
    assert_compiled_equals_eager(_model, x, y, {"optimizer": "adam", "loss": "categorical_crossentropy"})


def test_keras_file_round_trip(tmp_path):
    fastnn.utils.set_random_seed(0)
    model = _model()
    x = RNG.standard_normal((4, 6, 5)).astype("float32")
    before = model.predict(x, verbose=0)
    path = tmp_path / "layers.keras"
    model.save(path)
    loaded = fastnn.models.load_model(path)
    assert [type(layer).__name__ for layer in loaded.layers] == [type(layer).__name__ for layer in model.layers]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), before)


def test_normalization_adapts_to_the_data_and_inverts():
    x = _x(50, 3, 4, dtype="float32") * 2.0 + 5.0
    norm = L.Normalization(axis=[1, 2])
    norm.adapt(x)
    np.testing.assert_allclose(norm.adapt_mean.numpy(), x.mean(0), rtol=1e-6)
    np.testing.assert_allclose(norm.adapt_variance.numpy(), x.var(0), rtol=1e-5)
    y = norm(x).numpy()
    np.testing.assert_allclose(y, (x - x.mean(0)) / np.sqrt(x.var(0)), rtol=1e-4, atol=1e-5)
    batched = L.Normalization(axis=[1, 2])
    batched.adapt(iter([x[:13], x[13:40], (x[40:], None)]))  # a generator of batches, (x, y) tuples too
    for a, b in zip(batched.get_weights(), norm.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    inverse = L.Normalization(axis=[1, 2], invert=True)
    inverse.adapt(x)
    np.testing.assert_allclose(inverse(y).numpy(), x, rtol=1e-5)
    scalar = L.Normalization(axis=None, mean=5.0, variance=4.0)
    np.testing.assert_allclose(scalar(x).numpy(), (x - 5.0) / 2.0, rtol=1e-6)
    with pytest.raises(ValueError, match="both"):
        L.Normalization(mean=1.0)
    with pytest.raises(ValueError, match="incompatible"):
        norm.adapt(_x(5, 3, 5, dtype="float32"))
    with pytest.raises(ValueError, match="empty"):
        L.Normalization().adapt([])
    with pytest.raises(TypeError, match="axis"):
        L.Normalization(axis="last")


def test_a_model_with_an_adapted_normalization_trains_compiled_as_eager_and_saves(tmp_path):
    x = (RNG.standard_normal((32, 5)) * 4 + 3).astype("float32")
    y = x.sum(-1, keepdims=True)

    def build():
        norm = L.Normalization()
        norm.adapt(x)
        return fastnn.Sequential([fastnn.Input((5,)), norm, L.Dense(4, activation="relu"), L.Dense(1)])

    model = assert_compiled_equals_eager(build, x, y, {"optimizer": "adam", "loss": "mse"})
    model.save(tmp_path / "norm.keras")
    loaded = fastnn.models.load_model(tmp_path / "norm.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
