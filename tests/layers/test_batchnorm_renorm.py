"""BatchNormalization(renorm=True), batch renormalization, without Keras: its weights (Keras's names, order and
initial values), the training output and the updates of all five statistics against a float64 NumPy replay of
Keras 3.15's formulas over several steps, gradients against float64 central differences (with r and d held
constant, as Keras's stop_gradient holds them), clipping (r clipped to [rmin, rmax], d to [-dmax, dmax]; rmax = rmin
= 1 with dmax = 0 is plain batch norm), inference and trainable=False, masks, configs and bad arguments.
tests/e2e/test_keras_batchnorm_renorm.py checks the same against Keras itself."""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import layers as L
from fastnn import ops
from fastnn.testing.gradcheck import central_difference, check_gradients
from fastnn.testing.layer_harness import run_layer_test

EPSILON = 1e-3
STAT_NAMES = ["moving_mean", "moving_variance", "moving_stddev", "renorm_mean", "renorm_stddev"]


def _per_channel(v, axis, ndim):
    shape = [1] * ndim
    shape[axis] = -1
    return np.reshape(v, shape)


def _keras_renorm_step(x, state, gamma, beta, axis, clipping, momentum, renorm_momentum, epsilon=EPSILON,
                       keep=None):
    """Keras 3.15's BatchNormalization(renorm=True).call in training, in float64 NumPy: (output, new state, r, d).

    state: dict of the five statistics; gamma / beta arrays or None; keep: a bool mask of x's shape (the masked
    statistics divide by count + 1e-7, keras.backend.epsilon())."""
    axis = axis % x.ndim
    reduction = tuple(i for i in range(x.ndim) if i != axis)
    if keep is None:
        mean, variance = x.mean(reduction), x.var(reduction)
    else:
        count = keep.sum(reduction) + 1e-7
        mean = np.where(keep, x, 0).sum(reduction) / count
        variance = (np.where(keep, x - _per_channel(mean, axis, x.ndim), 0) ** 2).sum(reduction) / count
    stddev = np.sqrt(variance + epsilon)
    renorm_stddev = np.maximum(state["renorm_stddev"], np.sqrt(epsilon))
    r = stddev / renorm_stddev
    d = (mean - state["renorm_mean"]) / renorm_stddev
    if clipping.get("rmin") is not None:
        r = np.maximum(r, clipping["rmin"])
    if clipping.get("rmax") is not None:
        r = np.minimum(r, clipping["rmax"])
    if clipping.get("dmax") is not None:
        d = np.clip(d, -clipping["dmax"], clipping["dmax"])
    scale = r if gamma is None else r * gamma
    offset = d if gamma is None else d * gamma
    if beta is not None:
        offset = offset + beta
    normalized = (x - _per_channel(mean, axis, x.ndim)) / _per_channel(stddev, axis, x.ndim)
    y = normalized * _per_channel(scale, axis, x.ndim) + _per_channel(offset, axis, x.ndim)
    moving_stddev = state["moving_stddev"] * momentum + stddev * (1 - momentum)
    new_state = {
        "moving_mean": state["moving_mean"] * momentum + mean * (1 - momentum),
        "moving_stddev": moving_stddev,
        "moving_variance": np.maximum(moving_stddev ** 2 - epsilon, 0),
        "renorm_mean": state["renorm_mean"] * renorm_momentum + mean * (1 - renorm_momentum),
        "renorm_stddev": state["renorm_stddev"] * renorm_momentum + stddev * (1 - renorm_momentum),
    }
    return y, new_state, r, d


def _state(layer):
    return {name: getattr(layer, name).numpy().astype(np.float64) for name in STAT_NAMES}


def _randomize(layer, rng, renorm_mean=None, renorm_stddev=None):
    """Random gamma / beta and statistics (positive where they must be), so every term of the formulas counts."""
    channels = layer.moving_mean.shape[0]
    if layer.gamma is not None:
        layer.gamma.assign(rng.uniform(0.5, 1.5, channels))
    if layer.beta is not None:
        layer.beta.assign(rng.uniform(-0.5, 0.5, channels))
    layer.moving_mean.assign(rng.normal(size=channels))
    moving_stddev = rng.uniform(0.5, 1.5, channels)
    layer.moving_stddev.assign(moving_stddev)
    layer.moving_variance.assign(moving_stddev ** 2 - EPSILON)
    layer.renorm_mean.assign(rng.normal(size=channels) if renorm_mean is None else renorm_mean)
    layer.renorm_stddev.assign(rng.uniform(0.5, 3.0, channels) if renorm_stddev is None else renorm_stddev)


def test_renorm_weights_have_keras_names_order_and_initial_values():
    layer = L.BatchNormalization(renorm=True, moving_mean_initializer=fastnn.initializers.Constant(0.5),
                                 moving_variance_initializer=fastnn.initializers.Constant(4.0))
    layer.build((None, 3))
    assert [w.name for w in layer.weights] == ["gamma", "beta"] + STAT_NAMES
    assert [w.name for w in layer.trainable_weights] == ["gamma", "beta"]
    assert [w.name for w in layer.non_trainable_weights] == STAT_NAMES
    values = dict(zip([w.name for w in layer.weights], layer.get_weights()))
    expected = {"gamma": 1.0, "beta": 0.0, "moving_mean": 0.5, "moving_variance": 4.0, "moving_stddev": 2.0,
                "renorm_mean": 0.5, "renorm_stddev": 2.0}  # the stddevs: sqrt of the variance initializer's values
    for name, value in expected.items():
        assert values[name].shape == (3,) and values[name].dtype == np.float32
        np.testing.assert_array_equal(values[name], value, err_msg=name)
    # get_weights / set_weights round-trip all seven, in that order.
    other = L.BatchNormalization(renorm=True)
    other.build((None, 3))
    new = [np.full(3, i, "float32") for i in range(7)]
    other.set_weights(new)
    for got, want in zip(other.get_weights(), new):
        np.testing.assert_array_equal(got, want)
    # Without renorm, the four of plain batch norm only; without center and scale, the five statistics only.
    plain = L.BatchNormalization()
    plain.build((None, 3))
    assert [w.name for w in plain.weights] == ["gamma", "beta", "moving_mean", "moving_variance"]
    bare = L.BatchNormalization(renorm=True, center=False, scale=False)
    bare.build((None, 3))
    assert [w.name for w in bare.weights] == STAT_NAMES


def test_renorm_stddev_initializers_are_fresh_copies_of_a_random_variance_initializer():
    # Keras clones the variance initializer for each stddev: a seeded random one gives the same draws to each.
    init = fastnn.initializers.RandomUniform(1.0, 4.0, seed=3)
    layer = L.BatchNormalization(renorm=True, moving_variance_initializer=init)
    layer.build((None, 5))
    variance = layer.moving_variance.numpy()
    np.testing.assert_allclose(layer.moving_stddev.numpy(), np.sqrt(variance), rtol=1e-7)
    np.testing.assert_allclose(layer.renorm_stddev.numpy(), np.sqrt(variance), rtol=1e-7)


# (renorm_clipping, whether some r or d of the steps below must reach a bound)
CLIPPINGS = [({}, False), ({"rmax": 1.2, "rmin": 0.8, "dmax": 0.3}, True), ({"rmax": 1.5}, True),
             ({"rmin": 0.9, "dmax": 0.1}, True), ({"rmax": 3.0, "rmin": 0.0, "dmax": None}, False)]


@pytest.mark.parametrize("clipping,must_clip", CLIPPINGS, ids=[str(i) for i in range(len(CLIPPINGS))])
@pytest.mark.parametrize("axis,shape", [(-1, (8, 4)), (1, (3, 4, 2, 3)), (-2, (2, 5, 3))])
def test_renorm_training_output_and_statistics_follow_keras_formulas_over_steps(clipping, must_clip, axis, shape):
    rng = np.random.default_rng(0)
    layer = L.BatchNormalization(axis=axis, momentum=0.8, renorm=True, renorm_clipping=clipping,
                                 renorm_momentum=0.6, dtype="float64")
    layer.build(shape)
    _randomize(layer, rng)
    state = _state(layer)
    gamma, beta = layer.gamma.numpy(), layer.beta.numpy()
    clipped = False
    for step in range(4):
        x = rng.standard_normal(shape) * rng.uniform(0.3, 3.0) + rng.normal()
        expected, state, r, d = _keras_renorm_step(x, state, gamma, beta, axis, clipping, 0.8, 0.6)
        y = layer(x, training=True)
        assert y.dtype == np.float64
        np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12, atol=1e-12, err_msg=f"step {step}")
        for name in STAT_NAMES:
            np.testing.assert_allclose(getattr(layer, name).numpy(), state[name], rtol=1e-12, atol=1e-14,
                                       err_msg=f"{name} after step {step}")
        clipped |= bool(np.any(r == clipping.get("rmax")) or np.any(r == clipping.get("rmin"))
                        or np.any(np.abs(d) == clipping.get("dmax")))
    if must_clip:
        assert clipped  # the clipping of this case was exercised, not only the formula


def test_renorm_float32_matches_the_float64_reference():
    rng = np.random.default_rng(1)
    clipping = {"rmax": 1.3, "rmin": 0.7, "dmax": 0.5}
    layer = L.BatchNormalization(renorm=True, renorm_clipping=clipping, momentum=0.9, renorm_momentum=0.5)
    layer.build((None, 6))
    _randomize(layer, rng)
    state = _state(layer)
    for _ in range(3):
        x = (rng.standard_normal((32, 6)) * 2 + 1).astype("float32")
        expected, state, _, _ = _keras_renorm_step(x.astype(np.float64), state, layer.gamma.numpy().astype(float),
                                                   layer.beta.numpy().astype(float), -1, clipping, 0.9, 0.5)
        y = layer(x, training=True)
        assert y.dtype == np.float32
        np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5, atol=1e-5)
        for name in STAT_NAMES:
            assert getattr(layer, name).dtype == np.float32
            np.testing.assert_allclose(getattr(layer, name).numpy(), state[name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("center,scale", [(True, True), (False, True), (True, False), (False, False)])
def test_renorm_without_center_or_scale_applies_r_and_d_alone(center, scale):
    rng = np.random.default_rng(2)
    layer = L.BatchNormalization(renorm=True, center=center, scale=scale, renorm_clipping={"dmax": 0.4},
                                 dtype="float64")
    layer.build((None, 3))
    _randomize(layer, rng)
    x = rng.standard_normal((7, 3)) * 2
    gamma = layer.gamma.numpy() if scale else None
    beta = layer.beta.numpy() if center else None
    expected, state, _, _ = _keras_renorm_step(x, _state(layer), gamma, beta, -1, {"dmax": 0.4}, 0.99, 0.99)
    np.testing.assert_allclose(layer(x, training=True).numpy(), expected, rtol=1e-12, atol=1e-12)
    for name in STAT_NAMES:
        np.testing.assert_allclose(getattr(layer, name).numpy(), state[name], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("axis,shape,clipping", [(-1, (6, 3), {}), (1, (2, 3, 2, 2), {"rmax": 1.1, "dmax": 0.2}),
                                                 (0, (3, 5), {"rmin": 0.95})])
def test_renorm_gradients_match_finite_differences_with_r_and_d_held_constant(axis, shape, clipping):
    """Keras stops the gradients of r and d: the gradient is that of the output with r and d frozen at this
    batch's values (the batch mean and variance still carry theirs), checked against float64 central differences
    of that function for the input, gamma and beta."""
    rng = np.random.default_rng(3)
    layer = L.BatchNormalization(axis=axis, renorm=True, renorm_clipping=clipping, dtype="float64")
    layer.build(shape)
    _randomize(layer, rng)
    x = rng.standard_normal(shape) * 1.5 + 0.3
    gamma, beta = layer.gamma.numpy().copy(), layer.beta.numpy().copy()
    state = _state(layer)
    _, _, r, d = _keras_renorm_step(x, state, gamma, beta, axis, clipping, 0.99, 0.99)
    assert np.all(r != 1) and np.all(d != 0)  # the corrections are not the identity here
    weights = rng.uniform(0.5, 1.5, shape)
    ndim, a = len(shape), axis % len(shape)
    reduction = tuple(i for i in range(ndim) if i != a)

    def frozen(x_, gamma_, beta_):
        mean, variance = x_.mean(reduction, keepdims=True), x_.var(reduction, keepdims=True)
        normalized = (x_ - mean) / np.sqrt(variance + EPSILON)
        y = normalized * _per_channel(r * gamma_, a, ndim) + _per_channel(d * gamma_ + beta_, a, ndim)
        return float(np.sum(y * weights))

    xv = fastnn.Variable(x)
    with fastnn.GradientTape() as tape:
        loss = ops.sum(ops.multiply(layer(xv, training=True), weights))
    gx, ggamma, gbeta = (g.numpy() for g in tape.gradient(loss, [xv, layer.gamma, layer.beta]))
    np.testing.assert_allclose(gx, central_difference(lambda v: frozen(v, gamma, beta), x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ggamma, central_difference(lambda v: frozen(x, v, beta), gamma), rtol=1e-6,
                               atol=1e-8)
    np.testing.assert_allclose(gbeta, central_difference(lambda v: frozen(x, gamma, v), beta), rtol=1e-6, atol=1e-8)


def test_renorm_gradients_match_finite_differences_of_the_layer_where_the_clipping_saturates():
    """Where r and d sit at their clipping bounds they are constant near x, so the layer's own output (momenta 1:
    the calls leave the statistics alone) is checked against central differences directly."""
    rng = np.random.default_rng(4)
    shape = (5, 2, 3)
    clipping = {"rmax": 1.25, "rmin": 1.25, "dmax": 0.5}
    layer = L.BatchNormalization(renorm=True, renorm_clipping=clipping, momentum=1.0, renorm_momentum=1.0,
                                 dtype="float64")
    layer.build(shape)
    # renorm_mean far from the batch mean: |d| > dmax on every channel, with either sign.
    _randomize(layer, rng, renorm_mean=np.array([-20.0, 20.0, -20.0]), renorm_stddev=np.ones(3))
    x = rng.standard_normal(shape)
    before = layer.get_weights()
    _, _, r, d = _keras_renorm_step(x, _state(layer), layer.gamma.numpy(), layer.beta.numpy(), -1, clipping, 1, 1)
    np.testing.assert_array_equal(r, 1.25)
    np.testing.assert_array_equal(d, [0.5, -0.5, 0.5])
    check_gradients(lambda t: layer(t, training=True), [x], rtol=1e-6, atol=1e-8)
    weights = rng.uniform(0.5, 1.5, shape)
    with fastnn.GradientTape() as tape:
        loss = ops.sum(ops.multiply(layer(x, training=True), weights))
    grads = tape.gradient(loss, [layer.gamma, layer.beta])
    for variable, grad in zip((layer.gamma, layer.beta), grads):
        value = variable.numpy().copy()

        def objective(v, variable=variable):
            variable.assign(v)
            return float(np.sum(layer(x, training=True).numpy() * weights))

        numeric = central_difference(objective, value)
        variable.assign(value)
        np.testing.assert_allclose(grad.numpy(), numeric, rtol=1e-6, atol=1e-8)
    for got, want in zip(layer.get_weights(), before):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("axis,shape", [(-1, (8, 3)), (1, (2, 3, 4, 2))])
def test_clipping_r_to_one_and_d_to_zero_gives_plain_batch_norm(axis, shape):
    rng = np.random.default_rng(5)
    renorm = L.BatchNormalization(axis=axis, renorm=True, renorm_clipping={"rmax": 1, "rmin": 1, "dmax": 0},
                                  momentum=0.7, dtype="float64")
    plain = L.BatchNormalization(axis=axis, momentum=0.7, dtype="float64")
    renorm.build(shape)
    plain.build(shape)
    _randomize(renorm, rng)
    plain.set_weights(renorm.get_weights()[:4])
    weights = rng.uniform(0.5, 1.5, shape)
    for _ in range(2):
        x = rng.standard_normal(shape) * 2 + 1
        grads = []
        outputs = []
        for layer in (renorm, plain):
            xv = fastnn.Variable(x)
            with fastnn.GradientTape() as tape:
                y = layer(xv, training=True)
                loss = ops.sum(ops.multiply(y, weights))
            outputs.append(y.numpy())
            grads.append([g.numpy() for g in tape.gradient(loss, [xv, layer.gamma, layer.beta])])
        np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-12, atol=1e-12)
        for g_renorm, g_plain in zip(*grads):
            np.testing.assert_allclose(g_renorm, g_plain, rtol=1e-10, atol=1e-12)
        # The moving mean moves alike; the moving variance comes from the moving stddev under renorm.
        np.testing.assert_allclose(renorm.moving_mean.numpy(), plain.moving_mean.numpy(), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(renorm.moving_variance.numpy(),
                                   np.maximum(renorm.moving_stddev.numpy() ** 2 - EPSILON, 0), rtol=1e-12)


def test_renorm_inference_uses_the_moving_statistics_and_updates_nothing():
    rng = np.random.default_rng(6)
    layer = L.BatchNormalization(renorm=True, renorm_clipping={"rmax": 2.0}, dtype="float64")
    layer.build((None, 4))
    _randomize(layer, rng)
    # Inference reads moving_variance, not moving_stddev: make them disagree to tell which one is read.
    layer.moving_variance.assign(rng.uniform(0.5, 2.0, 4))
    before = layer.get_weights()
    x = rng.standard_normal((5, 4))
    gamma, beta, mean, variance = before[:4]
    expected = (x - mean) / np.sqrt(variance + EPSILON) * gamma + beta
    for training in (None, False):
        np.testing.assert_allclose(layer(x, training=training).numpy(), expected, rtol=1e-12, atol=1e-12)
    layer.trainable = False  # Keras 3: a frozen BatchNormalization runs in inference mode even in training
    np.testing.assert_allclose(layer(x, training=True).numpy(), expected, rtol=1e-12, atol=1e-12)
    assert layer.trainable_weights == []
    for got, want in zip(layer.get_weights(), before):
        np.testing.assert_array_equal(got, want)
    layer.trainable = True
    layer(x, training=True)
    for name in STAT_NAMES:
        assert not np.array_equal(getattr(layer, name).numpy(), dict(zip(["gamma", "beta"] + STAT_NAMES,
                                                                         before))[name]), name


def test_renorm_with_a_mask_uses_the_unmasked_positions():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 4, 3))
    mask = np.array([[True, True, False, True], [False, True, True, False]])
    clipping = {"rmax": 1.5, "rmin": 0.5, "dmax": 1.0}
    layer = L.BatchNormalization(renorm=True, renorm_clipping=clipping, momentum=0.5, renorm_momentum=0.5,
                                 dtype="float64")
    layer.build(x.shape)
    _randomize(layer, rng)
    keep = np.broadcast_to(mask[..., None], x.shape)
    expected, state, _, _ = _keras_renorm_step(x, _state(layer), layer.gamma.numpy(), layer.beta.numpy(), -1,
                                               clipping, 0.5, 0.5, keep=keep)
    y = layer(x, mask=fastnn.Tensor(mask), training=True)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-10, atol=1e-10)
    for name in STAT_NAMES:
        np.testing.assert_allclose(getattr(layer, name).numpy(), state[name], rtol=1e-10, atol=1e-12)


def test_renorm_model_fit_updates_the_statistics_and_trains():
    rng = np.random.default_rng(8)
    x = (rng.standard_normal((24, 4)) * 2 + 1).astype("float32")
    y = rng.standard_normal((24, 1)).astype("float32")
    fastnn.utils.clear_session()
    fastnn.utils.set_random_seed(0)
    model = fastnn.Sequential([fastnn.Input((4,)), L.Dense(3),
                               L.BatchNormalization(renorm=True, renorm_clipping={"rmax": 1.5, "dmax": 0.5},
                                                    renorm_momentum=0.5, momentum=0.5), L.Dense(1)])
    model.compile(optimizer=fastnn.optimizers.SGD(0.05), loss="mse")
    bn = model.layers[1]
    assert len(model.get_weights()) == 2 + 7 + 2
    dense = model.layers[0]
    # Replays the first batch by hand: the Dense output before the step drives the five statistics.
    h = dense(x[:8]).numpy().astype(np.float64)
    _, state, _, _ = _keras_renorm_step(h, _state(bn), bn.gamma.numpy().astype(float), bn.beta.numpy().astype(float),
                                        -1, {"rmax": 1.5, "dmax": 0.5}, 0.5, 0.5)
    model.train_on_batch(x[:8], y[:8])
    for name in STAT_NAMES:
        np.testing.assert_allclose(getattr(bn, name).numpy(), state[name], rtol=1e-5, atol=1e-6, err_msg=name)
    history = model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0).history["loss"]
    assert np.all(np.isfinite(history))
    before = bn.get_weights()
    model.predict(x, verbose=0)
    for got, want in zip(bn.get_weights(), before):
        np.testing.assert_array_equal(got, want)


def test_renorm_layer_harness():
    fastnn.utils.clear_session()
    run_layer_test(L.BatchNormalization, {"axis": 1, "renorm": True, "renorm_clipping": {"rmax": 2.0}},
                   (2, 3, 4, 4), (2, 3, 4, 4), expected_num_trainable_weights=2,
                   expected_num_non_trainable_weights=5, bad_input_shape=(2, 5, 4, 4))


def test_renorm_config_round_trip_matches_keras_defaults():
    layer = L.BatchNormalization(renorm=True, name="bn")
    config = layer.get_config()
    # Keras stores {} for a missing renorm_clipping when renorm is on, and the argument as given otherwise.
    assert config["renorm"] is True and config["renorm_clipping"] == {} and config["renorm_momentum"] == 0.99
    assert L.BatchNormalization().get_config()["renorm_clipping"] is None
    clipping = {"rmax": 3.0, "rmin": 0.25, "dmax": 5.0}
    layer = L.BatchNormalization(renorm=True, renorm_clipping=clipping, renorm_momentum=0.9, name="bn")
    config = layer.get_config()
    assert config["renorm_clipping"] == clipping and config["renorm_momentum"] == 0.9
    loaded = L.BatchNormalization.from_config(config)
    assert loaded.get_config() == config
    loaded.build((None, 2))
    assert [w.name for w in loaded.weights] == ["gamma", "beta"] + STAT_NAMES


def test_renorm_bad_arguments_fail_with_keras_messages():
    with pytest.raises(ValueError, match=r"Received invalid keys for `renorm_clipping` argument: .*'rmx'.*"
                                         r"Supported values: \['rmax', 'rmin', 'dmax'\]"):
        L.BatchNormalization(renorm=True, renorm_clipping={"rmx": 1.0})
    with pytest.raises(ValueError, match=r"rmax should be greater than rmin .*rmax=0.5, rmin=2"):
        L.BatchNormalization(renorm=True, renorm_clipping={"rmax": 0.5, "rmin": 2})
    with pytest.raises(ValueError, match=r"dmax should be non-negative .*dmax=-0.1"):
        L.BatchNormalization(renorm=True, renorm_clipping={"dmax": -0.1})
    with pytest.raises(TypeError, match="renorm_clipping.*must be a dict"):
        L.BatchNormalization(renorm=True, renorm_clipping=[("rmax", 1.0)])
    with pytest.raises(TypeError, match=r"renorm_clipping\['rmin'\] must be a number"):
        L.BatchNormalization(renorm=True, renorm_clipping={"rmin": "0.5"})
    with pytest.raises(ValueError, match=r"renorm_clipping\['dmax'\] must not be NaN"):
        L.BatchNormalization(renorm=True, renorm_clipping={"dmax": float("nan")})
    # Equal bounds, None values and a zero dmax are valid (Keras's checks are strict inequalities).
    L.BatchNormalization(renorm=True, renorm_clipping={"rmax": 1, "rmin": 1, "dmax": 0})
    L.BatchNormalization(renorm=True, renorm_clipping={"rmax": None, "rmin": 0.5})
    # As in Keras, renorm_clipping is not looked at without renorm.
    assert L.BatchNormalization(renorm_clipping={"rmx": 1}).get_config()["renorm_clipping"] == {"rmx": 1}


def test_renorm_stddev_is_held_at_least_sqrt_epsilon_in_the_corrections():
    # Keras divides by max(renorm_stddev, sqrt(epsilon)): a zero (or tiny) renorm_stddev does not blow r and d up.
    rng = np.random.default_rng(9)
    layer = L.BatchNormalization(renorm=True, epsilon=1e-2, dtype="float64")
    layer.build((None, 3))
    _randomize(layer, rng, renorm_stddev=np.array([0.0, 0.01, 1.0]))
    x = rng.standard_normal((6, 3))
    expected, state, r, _ = _keras_renorm_step(x, _state(layer), layer.gamma.numpy(), layer.beta.numpy(), -1, {},
                                               0.99, 0.99, epsilon=1e-2)
    np.testing.assert_allclose(r[:2], np.sqrt(x.var(0)[:2] + 1e-2) / 0.1, rtol=1e-12)
    np.testing.assert_allclose(layer(x, training=True).numpy(), expected, rtol=1e-12, atol=1e-12)
    # The update itself starts from the stored value (0 stays a valid start), as Keras's.
    np.testing.assert_allclose(layer.renorm_stddev.numpy(), state["renorm_stddev"], rtol=1e-12)
