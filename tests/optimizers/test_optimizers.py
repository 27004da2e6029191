"""Every optimizer against a NumPy twin of Keras 3's update formula over several steps, both dtypes; clipping,
weight decay, schedules, constraints and bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest

import fastnn
from fastnn.testing.threads import count_parallel_regions
from fastnn import optimizers
from fastnn.optimizers import schedules

STEPS = 5


# -- NumPy references of keras/src/optimizers/*.py (computed in float64) -------------------------------------------
def ref_sgd(lr=0.01, momentum=0.0, nesterov=False):
    def step(w, g, s, t):
        if momentum:
            m = s.setdefault("m", np.zeros_like(w))
            m[:] = momentum * m - lr * g
            return w + (momentum * m - lr * g if nesterov else m)
        return w - lr * g
    return step


def ref_adam(lr=0.001, b1=0.9, b2=0.999, eps=1e-7, amsgrad=False):
    def step(w, g, s, t):
        m = s.setdefault("m", np.zeros_like(w))
        v = s.setdefault("v", np.zeros_like(w))
        m += (g - m) * (1 - b1)
        v += (g * g - v) * (1 - b2)
        vv = v
        if amsgrad:
            vh = s.setdefault("vh", np.zeros_like(w))
            vh[:] = np.maximum(vh, v)
            vv = vh
        alpha = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        return w - alpha * m / (np.sqrt(vv) + eps)
    return step


def ref_adagrad(lr=0.001, init=0.1, eps=1e-7):
    def step(w, g, s, t):
        a = s.setdefault("a", np.full_like(w, init))
        a += g * g
        return w - lr * g / np.sqrt(a + eps)
    return step


def ref_rmsprop(lr=0.001, rho=0.9, momentum=0.0, eps=1e-7, centered=False):
    def step(w, g, s, t):
        v = s.setdefault("v", np.zeros_like(w))
        v[:] = rho * v + (1 - rho) * g * g
        denom = v + eps
        if centered:
            a = s.setdefault("a", np.zeros_like(w))
            a[:] = rho * a + (1 - rho) * g
            denom = v - a * a + eps
        inc = lr * g / np.sqrt(denom)
        if momentum > 0:
            m = s.setdefault("m", np.zeros_like(w))
            m[:] = momentum * m + inc
            return w - m
        return w - inc
    return step


def ref_adadelta(lr=0.001, rho=0.95, eps=1e-7):
    def step(w, g, s, t):
        ag = s.setdefault("ag", np.zeros_like(w))
        ad = s.setdefault("ad", np.zeros_like(w))
        ag[:] = rho * ag + (1 - rho) * g * g
        delta = -np.sqrt(ad + eps) * g / np.sqrt(ag + eps)
        ad[:] = rho * ad + (1 - rho) * delta * delta
        return w + lr * delta
    return step


def ref_adamax(lr=0.001, b1=0.9, b2=0.999, eps=1e-7):
    def step(w, g, s, t):
        m = s.setdefault("m", np.zeros_like(w))
        u = s.setdefault("u", np.zeros_like(w))
        m += (g - m) * (1 - b1)
        u[:] = np.maximum(b2 * u, np.abs(g))
        return w - lr / (1 - b1 ** t) * m / (u + eps)
    return step


def ref_nadam(lr=0.001, b1=0.9, b2=0.999, eps=1e-7):
    def step(w, g, s, t):
        m = s.setdefault("m", np.zeros_like(w))
        v = s.setdefault("v", np.zeros_like(w))
        s["up"] = s.get("up", 1.0) * b1 * (1 - 0.5 * 0.96 ** t)
        u_t = b1 * (1 - 0.5 * 0.96 ** t)
        u_t1 = b1 * (1 - 0.5 * 0.96 ** (t + 1))
        up_t = s["up"]
        up_t1 = up_t * u_t1
        m += (g - m) * (1 - b1)
        v += (g * g - v) * (1 - b2)
        m_hat = u_t1 * m / (1 - up_t1) + (1 - u_t) * g / (1 - up_t)
        v_hat = v / (1 - b2 ** t)
        return w - m_hat * lr / (np.sqrt(v_hat) + eps)
    return step


def ref_lion(lr=0.001, b1=0.9, b2=0.99):
    def step(w, g, s, t):
        m = s.setdefault("m", np.zeros_like(w))
        w = w - lr * np.sign(m * b1 + g * (1 - b1))
        m[:] = m * b2 + g * (1 - b2)
        return w
    return step


def ref_ftrl(lr=0.001, power=-0.5, init=0.1, l1=0.0, l2=0.0, shrink=0.0, beta=0.0):
    def step(w, g, s, t):
        n = s.setdefault("n", np.full_like(w, init))
        z = s.setdefault("z", np.zeros_like(w))
        l2_reg = l2 + beta / (2 * lr)
        new_n = n + g * g
        z += g + 2 * shrink * w - (new_n ** -power - n ** -power) / lr * w
        n[:] = new_n
        return (np.clip(z, -l1, l1) - z) / (new_n ** -power / lr + 2 * l2_reg)
    return step


def ref_lamb(lr=0.001, b1=0.9, b2=0.999, eps=1e-7):
    def step(w, g, s, t):
        m = s.setdefault("m", np.zeros_like(w))
        v = s.setdefault("v", np.zeros_like(w))
        m += (g - m) * (1 - b1)
        v += (g * g - v) * (1 - b2)
        update = (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        w_norm, u_norm = np.linalg.norm(w), np.linalg.norm(update)
        ratio = w_norm / u_norm if w_norm > 0 and u_norm > 0 else 1.0
        return w - ratio * lr * update
    return step


def ref_adafactor(lr=0.001, decay=-0.8, eps1=1e-30, eps2=1e-3, clip=1.0):
    def rms(x):
        return np.sqrt(np.mean(x * x))

    def step(w, g, s, t):
        rho = min(lr, 1 / math.sqrt(t))
        alpha = max(eps2, rms(w)) * rho
        g2 = g * g + eps1
        b2t = 1 - t ** decay
        if w.ndim >= 2:
            r = s.setdefault("r", np.zeros(w.shape[:-1]))
            c = s.setdefault("c", np.zeros(w.shape[:-2] + w.shape[-1:]))
            r[...] = b2t * r + (1 - b2t) * g2.mean(axis=-1)
            c[...] = b2t * c + (1 - b2t) * g2.mean(axis=-2)
            v = (r / r.mean(axis=-1, keepdims=True))[..., None] * c[..., None, :]
        else:
            v = s.setdefault("v", np.zeros_like(w))
            v[...] = b2t * v + (1 - b2t) * g2
        u = g / np.sqrt(v)
        return w - alpha * u / max(1.0, rms(u) / clip)
    return step


CASES = [
    ("sgd", lambda: optimizers.SGD(0.1), ref_sgd(0.1)),
    ("sgd_momentum", lambda: optimizers.SGD(0.05, momentum=0.9), ref_sgd(0.05, 0.9)),
    ("sgd_nesterov", lambda: optimizers.SGD(0.05, momentum=0.8, nesterov=True), ref_sgd(0.05, 0.8, True)),
    ("adam", lambda: optimizers.Adam(0.01), ref_adam(0.01)),
    ("adam_amsgrad", lambda: optimizers.Adam(0.01, amsgrad=True), ref_adam(0.01, amsgrad=True)),
    ("adagrad", lambda: optimizers.Adagrad(0.05), ref_adagrad(0.05)),
    ("rmsprop", lambda: optimizers.RMSprop(0.01), ref_rmsprop(0.01)),
    ("rmsprop_centered_momentum", lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True),
     ref_rmsprop(0.01, momentum=0.5, centered=True)),
    ("adadelta", lambda: optimizers.Adadelta(1.0), ref_adadelta(1.0)),
    ("adamax", lambda: optimizers.Adamax(0.01), ref_adamax(0.01)),
    ("nadam", lambda: optimizers.Nadam(0.01), ref_nadam(0.01)),
    ("lion", lambda: optimizers.Lion(0.01), ref_lion(0.01)),
    ("lion_betas", lambda: optimizers.Lion(0.01, beta_1=0.5, beta_2=0.8), ref_lion(0.01, 0.5, 0.8)),
    ("ftrl", lambda: optimizers.Ftrl(0.1), ref_ftrl(0.1)),
    ("ftrl_regularized", lambda: optimizers.Ftrl(0.1, learning_rate_power=-0.7, initial_accumulator_value=0.3,
                                                 l1_regularization_strength=0.05, l2_regularization_strength=0.1,
                                                 l2_shrinkage_regularization_strength=0.02, beta=0.4),
     ref_ftrl(0.1, -0.7, 0.3, 0.05, 0.1, 0.02, 0.4)),
    ("lamb", lambda: optimizers.Lamb(0.01), ref_lamb(0.01)),
    ("adafactor", lambda: optimizers.Adafactor(0.1), ref_adafactor(0.1)),
    ("adafactor_args", lambda: optimizers.Adafactor(0.5, beta_2_decay=-0.5, epsilon_2=1e-2, clip_threshold=0.5),
     ref_adafactor(0.5, -0.5, 1e-30, 1e-2, 0.5)),
]


def _run(make, ref, dtype, shapes=((7, 5), (5,), (3, 2, 4)), steps=STEPS, seed=0):
    rng = np.random.default_rng(seed)
    inits = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(steps)]
    opt = make()
    vs = [fastnn.Variable(w.copy()) for w in inits]
    ws = [w.astype("float64") for w in inits]
    states = [{} for _ in shapes]
    for t in range(1, steps + 1):
        opt.apply_gradients(zip(grads[t - 1], vs))
        ws = [ref(w, g.astype("float64"), s, t) for w, g, s in zip(ws, grads[t - 1], states)]
    return [v.numpy() for v in vs], ws, opt


@pytest.mark.parametrize("name,make,ref", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_optimizer_matches_keras_formula(name, make, ref, dtype):
    got, want, opt = _run(make, ref, dtype)
    tol = 2e-5 if dtype == "float32" else 1e-12
    for g, w in zip(got, want):
        assert g.dtype == np.dtype(dtype)
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol)
    assert int(opt.iterations.numpy()) == STEPS


FUSED = [c for c in CASES if c[0] in ("sgd_nesterov", "adam_amsgrad", "adagrad", "rmsprop_centered_momentum",
                                       "adadelta", "adamax", "nadam", "lion", "ftrl_regularized", "lamb",
                                       "adafactor")]


@pytest.mark.parametrize("name,make,ref", FUSED, ids=[c[0] for c in FUSED])
def test_results_do_not_depend_on_thread_count(name, make, ref, restore_threads):
    # 3 * 2**17 elements: above the kernel's grain (2**17), so with 2 threads optimizer_update splits the tensor
    # (the 300 x 301 tensor this test used to update stayed below the grain and always ran on one thread).
    big = ((3, 1 << 17), (1 << 18,), (5,))
    fastnn.set_num_threads(1)
    a, want, _ = _run(make, ref, "float32", shapes=big, steps=2)
    fastnn.set_num_threads(2)
    with count_parallel_regions() as seen:
        b, _, _ = _run(make, ref, "float32", shapes=big, steps=2)
    if fastnn.build_info()["openmp"]:
        assert seen.count >= 1, "optimizer_update never ran on two threads"
    for x, y, w in zip(a, b, want):
        np.testing.assert_array_equal(x, y)
        np.testing.assert_allclose(x, w, rtol=2e-5, atol=2e-5)


def test_clipvalue_clipnorm_global_clipnorm():
    g = np.array([3.0, -4.0, 0.5], "float32")
    v = fastnn.Variable(np.zeros(3, "float32"))
    optimizers.SGD(1.0, clipvalue=1.0).apply_gradients([(g, v)])
    np.testing.assert_allclose(v.numpy(), [-1.0, 1.0, -0.5])
    v.assign(np.zeros(3))
    optimizers.SGD(1.0, clipnorm=1.0).apply_gradients([(g, v)])
    np.testing.assert_allclose(v.numpy(), -g / np.linalg.norm(g), rtol=1e-6)
    v.assign(np.zeros(3))
    w = fastnn.Variable(np.zeros(2, "float32"))
    g2 = np.array([1.0, 2.0], "float32")
    optimizers.SGD(1.0, global_clipnorm=2.0).apply_gradients([(g, v), (g2, w)])
    norm = math.sqrt(np.sum(g * g) + np.sum(g2 * g2))
    np.testing.assert_allclose(v.numpy(), -g * 2.0 / norm, rtol=1e-6)
    np.testing.assert_allclose(w.numpy(), -g2 * 2.0 / norm, rtol=1e-6)
    # Small gradients are not scaled up.
    v.assign(np.zeros(3))
    optimizers.SGD(1.0, clipnorm=100.0).apply_gradients([(g, v)])
    np.testing.assert_allclose(v.numpy(), -g, rtol=1e-6)


def test_weight_decay_is_applied_before_the_update():
    w0 = np.array([1.0, -2.0], "float32")
    g = np.array([0.5, 0.5], "float32")
    v = fastnn.Variable(w0.copy())
    optimizers.SGD(0.1, weight_decay=0.5).apply_gradients([(g, v)])
    np.testing.assert_allclose(v.numpy(), (w0 - w0 * 0.5 * 0.1) - 0.1 * g, rtol=1e-6)
    v2 = fastnn.Variable(w0.copy())
    opt = optimizers.AdamW(0.1, weight_decay=0.5)
    opt.exclude_from_weight_decay(var_list=[v2])
    opt.apply_gradients([(g, v2)])
    ref = ref_adam(0.1)(w0.astype("float64"), g.astype("float64"), {}, 1)
    np.testing.assert_allclose(v2.numpy(), ref, rtol=1e-5)


def test_learning_rate_schedules():
    e = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    assert e(0) == pytest.approx(0.1) and e(10) == pytest.approx(0.05) and e(5) == pytest.approx(0.1 * 0.5 ** 0.5)
    es = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5, staircase=True)
    assert es(9) == pytest.approx(0.1) and es(10) == pytest.approx(0.05)
    p = schedules.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])
    assert [p(0), p(10), p(11), p(20), p(21)] == [1.0, 1.0, 0.5, 0.5, 0.1]
    c = schedules.CosineDecay(1.0, decay_steps=100, alpha=0.1)
    assert c(0) == pytest.approx(1.0) and c(100) == pytest.approx(0.1) and c(50) == pytest.approx(0.55)
    cw = schedules.CosineDecay(0.0, decay_steps=10, warmup_target=1.0, warmup_steps=10)
    assert cw(5) == pytest.approx(0.5) and cw(10) == pytest.approx(1.0)
    # The optimizer evaluates its schedule at `iterations`.
    opt = optimizers.SGD(learning_rate=p)
    v = fastnn.Variable(np.zeros(1, "float32"))
    lrs = []
    for _ in range(12):
        lrs.append(opt.learning_rate)
        opt.apply_gradients([(np.ones(1, "float32"), v)])
    assert lrs[10] == 1.0 and lrs[11] == 0.5
    np.testing.assert_allclose(v.numpy(), [-(11 * 1.0 + 0.5)], rtol=1e-6)
    with pytest.raises(TypeError, match="not settable"):
        opt.learning_rate = 0.1


def test_learning_rate_setter_and_constraints():
    from fastnn import constraints

    opt = optimizers.SGD(0.1)
    opt.learning_rate = 0.5
    assert opt.learning_rate == 0.5
    layer = fastnn.layers.Dense(2, kernel_constraint="non_neg")
    layer.build((None, 3))
    opt.apply_gradients([(np.ones((3, 2), "float32") * 10, layer.kernel)])
    assert (layer.kernel.numpy() >= 0).all()
    np.testing.assert_allclose(constraints.MaxNorm(1.0)(np.array([[3.0], [4.0]])), [[0.6], [0.8]], rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(constraints.UnitNorm()(np.array([[3.0], [4.0]]))), 1.0, rtol=1e-5)


def test_string_identifiers_and_config_round_trip():
    for name, cls in [("sgd", optimizers.SGD), ("adam", optimizers.Adam), ("adamw", optimizers.AdamW),
                      ("adagrad", optimizers.Adagrad), ("rmsprop", optimizers.RMSprop),
                      ("adadelta", optimizers.Adadelta), ("adamax", optimizers.Adamax), ("nadam", optimizers.Nadam)]:
        opt = optimizers.get(name)
        assert isinstance(opt, cls)
        clone = cls.from_config(opt.get_config())
        assert clone.get_config() == opt.get_config()
    assert optimizers.Adam().epsilon == 1e-7 and optimizers.Adagrad().initial_accumulator_value == 0.1
    with pytest.raises(ValueError, match="Could not interpret optimizer identifier: 'adamm'.*adam, adamax"):
        optimizers.get("adamm")


def test_bad_input():
    with pytest.raises(ValueError, match="Only one of"):
        optimizers.SGD(clipnorm=1.0, clipvalue=1.0)
    with pytest.raises(ValueError, match="momentum"):
        optimizers.SGD(momentum=1.5)
    with pytest.raises(ValueError, match="learning_rate"):
        optimizers.Adam(learning_rate=-1.0)
    v = fastnn.Variable(np.zeros(3, "float32"))
    with pytest.raises(ValueError, match="gradient shape"):
        optimizers.SGD().apply_gradients([(np.zeros(4, "float32"), v)])
    with pytest.raises(ValueError, match="No gradients"):
        optimizers.SGD().apply_gradients([(None, v)])
    with pytest.raises(TypeError, match="Variable"):
        optimizers.SGD().apply_gradients([(np.zeros(3), np.zeros(3))])
    _C = fastnn.backend._C
    a = np.zeros(3, "float32")
    with pytest.raises(TypeError, match="dtype"):
        _C.optimizer_update("sgd", [a], [np.zeros(3, "float64")], [], None, {"lr": 0.1})
    with pytest.raises(ValueError, match="C-contiguous"):
        _C.optimizer_update("sgd", [a], [np.zeros(6, "float32")[::2]], [], None, {"lr": 0.1})
    with pytest.raises(ValueError, match="needs slots"):
        _C.optimizer_update("adam", [a], [np.zeros(3, "float32")], [], None, {"lr": 0.1})
    with pytest.raises(ValueError, match="overlaps"):
        _C.optimizer_update("sgd", [a], [a], [], None, {"lr": 0.1})
    with pytest.raises(ValueError, match="unknown kind"):
        _C.optimizer_update("foo", [a], [a.copy()], [], None, {})
    with pytest.raises(ValueError, match="writeable"):
        ro = np.zeros(3, "float32")
        ro.setflags(write=False)
        _C.optimizer_update("sgd", [ro], [a], [], None, {"lr": 0.1})


def test_custom_loop_with_gradient_tape():
    fastnn.utils.set_random_seed(0)
    x = np.random.default_rng(0).standard_normal((64, 3)).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [0.5]], "float32")
    layer = fastnn.layers.Dense(1)
    opt = optimizers.SGD(0.1)
    for _ in range(100):
        with fastnn.GradientTape() as tape:
            loss = fastnn.losses.MeanSquaredError()(y, layer(x))
        grads = tape.gradient(loss, layer.trainable_weights)
        opt.apply_gradients(zip(grads, layer.trainable_weights))
    assert float(loss) < 1e-3


def test_binding_rejects_every_malformed_list():
    _C = fastnn.backend._C
    a, g = np.zeros(3, "float32"), np.ones(3, "float32")
    m = np.zeros(3, "float32")
    cases = [
        (TypeError, "must be a NumPy array", lambda: _C.optimizer_update("sgd", [a], [[1.0, 2.0, 3.0]], [], None, {})),
        (ValueError, "1 variables but 2 gradients", lambda: _C.optimizer_update("sgd", [a], [g, g], [], None, {})),
        (ValueError, "has 2 arrays for 1 variables",
         lambda: _C.optimizer_update("sgd", [a], [g], [[m, m]], None, {"momentum": 0.9})),
        (ValueError, "at most 3 slot lists", lambda: _C.optimizer_update("adam", [a], [g], [[m]] * 4, None, {})),
        (ValueError, "grad_scales", lambda: _C.optimizer_update("sgd", [a], [g], [], [1.0, 2.0], {})),
        (ValueError, r"slots\[0\]\[0\] has shape \(4,\)",
         lambda: _C.optimizer_update("sgd", [a], [g], [[np.zeros(4, "float32")]], None, {"momentum": 0.9})),
        (TypeError, "share one dtype",
         lambda: _C.optimizer_update("sgd", [a, np.zeros(2)], [g, np.ones(2)], [], None, {})),
        (TypeError, "float32 or float64",
         lambda: _C.optimizer_update("sgd", [np.zeros(3, "int32")], [np.zeros(3, "int32")], [], None, {})),
        (ValueError, "overlaps", lambda: _C.optimizer_update("sgd", [a], [g], [[a]], None, {"momentum": 0.9})),
        (ValueError, "C-contiguous", lambda: _C.sum_squares([np.zeros(6)[::2]])),
        (TypeError, "float32 or float64", lambda: _C.sum_squares([np.zeros(3, "int64")])),
    ]
    for exc, match, fn in cases:
        with pytest.raises(exc, match=match):
            fn()
    np.testing.assert_array_equal(a, 0)  # nothing was written by a rejected call
    assert _C.sum_squares([np.arange(4.0), np.ones(2, "float32")]) == [14.0, 2.0]
    _C.optimizer_update("sgd", [], [], [], None, {})  # no variables: a no-op


# -- Keras 3.15 numbers (tests/e2e/test_keras_optimizers.py checks these live) ----------------------------------------
K_W0 = [[0.5, -1.0, 2.0], [0.25, 1.5, -0.75]]
K_GRADS = [[[0.1, -0.2, 0.3], [0.4, -0.5, 0.6]], [[-0.3, 0.1, 0.2], [0.05, 0.5, -0.4]],
           [[0.2, 0.2, -0.1], [-0.6, 0.3, 0.1]]]
KERAS_AFTER_3_STEPS = {
    "lion": (lambda: optimizers.Lion(0.1, beta_1=0.5),
             [[0.4, -1.1, 1.9], [0.15, 1.4, -0.85]]),
    "ftrl": (lambda: optimizers.Ftrl(0.5, l1_regularization_strength=0.05, l2_regularization_strength=0.1,
                                     l2_shrinkage_regularization_strength=0.02, beta=0.3),
             [[0.0, -0.0756879, 0.0], [0.0442609, 0.2617135, -0.3527898]]),
    "lamb": (lambda: optimizers.Lamb(0.1, weight_decay=0.1),
             [[0.4643454, -0.9001406, 1.4396465], [0.0502576, 1.4568192, -0.9393461]]),
    "adafactor": (lambda: optimizers.Adafactor(0.1),
                  [[0.5359896, -1.0484898, 1.8357311], [0.2595508, 1.4185055, -0.8011384]]),
    "sgd_ema": (lambda: optimizers.SGD(0.5, use_ema=True, ema_momentum=0.5, ema_overwrite_frequency=2),
                [[0.425, -1.025, 1.85], [0.3375, 1.475, -0.9999999]]),
    "sgd_accumulate": (lambda: optimizers.SGD(0.5, momentum=0.5, gradient_accumulation_steps=2),
                       [[0.55, -0.975, 1.875], [0.1375, 1.5, -0.8]]),
    "sgd_loss_scale": (lambda: optimizers.SGD(0.5, loss_scale_factor=4.0),
                       [[0.5, -1.0125, 1.95], [0.26875, 1.4625, -0.7875]]),
}


@pytest.mark.parametrize("name", sorted(KERAS_AFTER_3_STEPS))
def test_three_steps_give_keras_numbers(name):
    make, want = KERAS_AFTER_3_STEPS[name]
    v = fastnn.Variable(np.array(K_W0, "float32"))
    opt = make()
    for g in K_GRADS:
        opt.apply_gradients([(np.array(g, "float32"), v)])
    np.testing.assert_allclose(v.numpy(), want, rtol=1e-5, atol=1e-6)


def test_loss_scale_optimizer_gives_keras_numbers():
    v = fastnn.Variable(np.array(K_W0, "float32"))
    opt = optimizers.LossScaleOptimizer(optimizers.SGD(0.5), initial_scale=4.0, dynamic_growth_steps=2)
    assert float(opt.scale_loss(fastnn.Tensor(np.float32(1.5))).numpy()) == 6.0
    grads = [np.array(g, "float32") * 4 for g in K_GRADS]
    grads.insert(2, np.full((2, 3), np.nan, "float32"))  # skipped: the scale halves, the counter resets
    scales = []
    for g in grads:
        opt.apply_gradients([(g, v)])
        scales.append((float(opt.dynamic_scale.numpy()), int(opt.step_counter.numpy())))
    # Keras: finite, finite (growth after 2: scale 8), NaN (4, counter 0), finite (counter 1); 3 inner iterations.
    assert scales == [(4.0, 1), (8.0, 0), (4.0, 0), (4.0, 1)]
    np.testing.assert_allclose(v.numpy(), [[0.5, -1.05, 1.8], [0.325, 1.35, -0.9]], rtol=1e-6, atol=1e-7)
    assert int(opt.iterations.numpy()) == 3 and opt.learning_rate == 0.5
    assert opt.get_config()["inner_optimizer"]["class_name"] == "SGD"
    clone = optimizers.deserialize(optimizers.serialize(opt))
    assert isinstance(clone, optimizers.LossScaleOptimizer) and clone.get_config() == opt.get_config()
    with pytest.raises(ValueError, match="does not support `clipnorm`"):
        optimizers.LossScaleOptimizer(optimizers.SGD(), clipnorm=1.0)
    with pytest.raises(ValueError, match="dynamic=False"):
        optimizers.LossScaleOptimizer(optimizers.SGD(), dynamic=False)
    with pytest.raises(TypeError, match="inner_optimizer"):
        optimizers.LossScaleOptimizer("sgd")


def test_ema_accumulation_and_loss_scale_semantics():
    g = np.ones(2, "float32")
    # EMA: the average starts at the variable (momentum 0 on iteration 0); finalize_variable_values copies it in.
    v = fastnn.Variable(np.zeros(2, "float32"))
    opt = optimizers.SGD(1.0, use_ema=True, ema_momentum=0.5)
    opt.apply_gradients([(g, v)])  # v = -1, average = -1
    opt.apply_gradients([(g, v)])  # v = -2, average = 0.5 * -1 + 0.5 * -2 = -1.5
    np.testing.assert_allclose(v.numpy(), [-2, -2])
    opt.finalize_variable_values([v])
    np.testing.assert_allclose(v.numpy(), [-1.5, -1.5])
    with pytest.raises(ValueError, match="never updated"):
        opt.finalize_variable_values([fastnn.Variable(np.zeros(2, "float32"))])
    optimizers.SGD(1.0).finalize_variable_values([v])  # without use_ema: nothing happens
    np.testing.assert_allclose(v.numpy(), [-1.5, -1.5])
    # Accumulation: updates on every 2nd call with the mean gradient; iterations counts updates.
    v = fastnn.Variable(np.zeros(2, "float32"))
    opt = optimizers.SGD(1.0, gradient_accumulation_steps=2)
    opt.apply_gradients([(g, v)])
    np.testing.assert_array_equal(v.numpy(), [0, 0])
    assert int(opt.iterations.numpy()) == 0
    opt.apply_gradients([(3 * g, v)])
    np.testing.assert_array_equal(v.numpy(), [-2, -2])
    assert int(opt.iterations.numpy()) == 1
    # loss_scale_factor: scale_loss multiplies, apply divides.
    opt = optimizers.SGD(1.0, loss_scale_factor=8.0)
    assert opt.scale_loss(2.0) == 16.0
    v = fastnn.Variable(np.zeros(2, "float32"))
    opt.apply_gradients([(8 * g, v)])
    np.testing.assert_array_equal(v.numpy(), [-1, -1])


def test_fit_uses_scale_loss_and_finalizes_the_moving_average():
    x = np.random.default_rng(0).standard_normal((16, 3)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    weights = {}
    for key, opt in (("plain", optimizers.SGD(0.1)), ("scaled", optimizers.SGD(0.1, loss_scale_factor=1024.0)),
                     ("ema", optimizers.SGD(0.1, use_ema=True, ema_momentum=0.9))):
        model = fastnn.Sequential([fastnn.Input((3,)), fastnn.layers.Dense(1, kernel_initializer="zeros")])
        model.compile(optimizer=opt, loss="mse")
        model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
        weights[key] = model.get_weights()[0]
    # Scaling the loss and unscaling the gradients gives the plain run's weights (not 1024 times the step).
    np.testing.assert_allclose(weights["scaled"], weights["plain"], rtol=1e-5)
    # With use_ema the final weights are the moving average, which lags the plain run's.
    assert not np.allclose(weights["ema"], weights["plain"], rtol=1e-3)


def test_optimizer_update_rejects_overlap_across_variables():
    _C = fastnn.backend._C
    buf = np.zeros(8, "float32")
    a, b = buf[:4], buf[4:]
    other = np.zeros(4, "float32")
    g = np.ones(4, "float32")
    # Each array is disjoint from its own variable; the overlap is with another variable's array.
    with pytest.raises(ValueError, match=r"overlaps .*variables\[0\]|variables\[0\] overlaps"):
        _C.optimizer_update("sgd", [a, other], [g, a], [], None, {"lr": 0.1})
    with pytest.raises(ValueError, match="overlaps"):
        _C.optimizer_update("sgd", [a, b], [g, g], [[b, np.zeros(4, "float32")]], None, {"momentum": 0.9})
    with pytest.raises(ValueError, match="overlaps"):
        _C.optimizer_update("adam", [a, other], [g, g.copy()], [[np.zeros(4, "float32"), buf[2:6]],
                                                                 [np.zeros(4, "float32"), np.zeros(4, "float32")]],
                            None, {})
    with pytest.raises(ValueError, match="overlaps"):  # two slots of one variable sharing memory
        m = np.zeros(4, "float32")
        _C.optimizer_update("adam", [other], [g], [[m], [m]], None, {})
    np.testing.assert_array_equal(buf, 0)
    # The same read-only gradient for two variables is fine, and so are adjacent, disjoint slices.
    _C.optimizer_update("sgd", [a, b], [g, g], [], None, {"lr": 0.5})
    np.testing.assert_array_equal(buf, -0.5)


def test_new_schedules_and_serialization():
    p = schedules.PolynomialDecay(1.0, decay_steps=10, end_learning_rate=0.1, power=2.0)
    assert p(0) == 1.0 and p(5) == pytest.approx(0.9 * 0.25 + 0.1) and p(10) == pytest.approx(0.1) and p(50) == p(10)
    pc = schedules.PolynomialDecay(1.0, decay_steps=10, end_learning_rate=0.0, cycle=True)
    assert pc(0) == 1.0 and pc(15) == pytest.approx(1 - 15 / 20) and pc(20) == pytest.approx(0.0)
    it = schedules.InverseTimeDecay(1.0, decay_steps=2, decay_rate=0.5)
    assert it(4) == pytest.approx(0.5) and schedules.InverseTimeDecay(1.0, 2, 0.5, staircase=True)(3) == pytest.approx(
        1 / 1.5)
    r = schedules.CosineDecayRestarts(1.0, first_decay_steps=4, t_mul=2.0, m_mul=0.5)
    assert r(0) == 1.0 and r(2) == pytest.approx(0.5) and r(4) == pytest.approx(0.5) and r(8) == pytest.approx(0.25)
    assert r(12) == pytest.approx(0.5 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    # Keras 3.15's format (values checked against keras.optimizers.schedules.serialize in tests/e2e).
    assert schedules.serialize(p) == {
        "module": "keras.optimizers.schedules", "class_name": "PolynomialDecay", "registered_name": None,
        "config": {"initial_learning_rate": 1.0, "decay_steps": 10, "end_learning_rate": 0.1, "power": 2.0,
                   "cycle": False, "name": "PolynomialDecay"}}
    assert r.get_config() == {"initial_learning_rate": 1.0, "first_decay_steps": 4, "t_mul": 2.0, "m_mul": 0.5,
                              "alpha": 0.0, "name": "SGDRDecay"}
    for s in (p, pc, it, r, schedules.ExponentialDecay(0.1, 3, 0.5), schedules.CosineDecay(0.1, 5),
              schedules.PiecewiseConstantDecay([2], [0.1, 0.01])):
        back = schedules.deserialize(schedules.serialize(s))
        assert type(back) is type(s) and back.get_config() == s.get_config()
    opt = optimizers.Adam(learning_rate=r)
    assert opt.get_config()["learning_rate"] == schedules.serialize(r)
    assert optimizers.Adam.from_config(opt.get_config()).get_config() == opt.get_config()
    with pytest.raises(ValueError, match="decay identifier"):
        schedules.deserialize({"class_name": "NoSuchDecay", "config": {}})
    with pytest.raises(ValueError, match="first_decay_steps"):
        schedules.CosineDecayRestarts(1.0, 0)


def test_new_optimizers_identifiers_configs_and_bad_arguments():
    for name, cls in [("lion", optimizers.Lion), ("lamb", optimizers.Lamb), ("adafactor", optimizers.Adafactor),
                      ("ftrl", optimizers.Ftrl), ("Lion", optimizers.Lion)]:
        opt = optimizers.get(name)
        assert isinstance(opt, cls)
        assert cls.from_config(opt.get_config()).get_config() == opt.get_config()
    # Keras's default names (made unique as Keras's auto_name: a second Lion is "lion_1"; clear_session restarts
    # the count) and base config keys (tests/e2e compares every key with Keras).
    fastnn.utils.clear_session()
    assert [c().name for c in (optimizers.SGD, optimizers.RMSprop, optimizers.AdamW, optimizers.Lion)] == \
        ["sgd", "rm_sprop", "adam_w", "lion"]
    assert [optimizers.Lion().name, optimizers.Lion(name="mine").name, optimizers.Lion().name] == \
        ["lion_1", "mine", "lion_2"]
    cfg = optimizers.Ftrl().get_config()
    for key in ("use_ema", "ema_momentum", "ema_overwrite_frequency", "loss_scale_factor",
                "gradient_accumulation_steps", "l2_shrinkage_regularization_strength", "beta"):
        assert key in cfg
    assert optimizers.serialize(optimizers.SGD())["module"] == "keras.optimizers"
    bad = [(lambda: optimizers.SGD(gradient_accumulation_steps=1), "gradient_accumulation_steps"),
           (lambda: optimizers.SGD(gradient_accumulation_steps=2.5), "gradient_accumulation_steps"),
           (lambda: optimizers.Adam(use_ema=True, ema_momentum=1.5), "ema_momentum"),
           (lambda: optimizers.Adam(use_ema=True, ema_overwrite_frequency=0.5), "ema_overwrite_frequency"),
           (lambda: optimizers.Adam(loss_scale_factor=0.0), "loss_scale_factor"),
           (lambda: optimizers.Lion(beta_1=0.0), "beta_1"),
           (lambda: optimizers.Ftrl(learning_rate_power=0.5), "learning_rate_power"),
           (lambda: optimizers.Ftrl(l1_regularization_strength=-1.0), "l1_regularization_strength"),
           (lambda: optimizers.Ftrl(initial_accumulator_value=-0.1), "initial_accumulator_value")]
    for make, arg in bad:
        with pytest.raises(ValueError, match=arg):
            make()
    with pytest.warns(UserWarning, match="ema_overwrite_frequency"):
        optimizers.SGD(ema_overwrite_frequency=3)
    with pytest.warns(UserWarning, match="decay"):
        optimizers.SGD(decay=0.1)


def test_exclude_from_weight_decay_uses_keras_regex_on_names():
    g = np.zeros(2, "float32")
    kernel = fastnn.Variable(np.ones(2, "float32"), name="kernel")
    bias = fastnn.Variable(np.ones(2, "float32"), name="bias")
    gamma = fastnn.Variable(np.ones(2, "float32"), name="gamma")
    opt = optimizers.SGD(1.0, weight_decay=0.5)
    opt.exclude_from_weight_decay(var_names=["^bi", "gam+a"])  # regular expressions, as Keras
    opt.apply_gradients([(g, kernel), (g, bias), (g, gamma)])
    assert kernel.numpy().tolist() == [0.5, 0.5]
    assert bias.numpy().tolist() == [1, 1] and gamma.numpy().tolist() == [1, 1]


def test_adafactor_binding_checks_the_factored_moment_shapes():
    _C = fastnn.backend._C
    w, g = np.ones((2, 3, 4), "float32"), np.ones((2, 3, 4), "float32")
    r, c, v = np.zeros((2, 3), "float32"), np.zeros((2, 4), "float32"), np.zeros((2, 3, 4), "float32")
    with pytest.raises(ValueError, match=r"slots\[1\]\[0\] must have shape \(2, 4\)"):
        _C.optimizer_update("adafactor", [w], [g], [[r], [np.zeros((2, 3), "float32")], [v]], None, {})
    with pytest.raises(ValueError, match=r"slots\[0\]\[0\] must have shape \(\)"):  # rank 1: 0-d placeholders
        _C.optimizer_update("adafactor", [np.ones(3, "float32")], [np.ones(3, "float32")],
                            [[np.zeros(3, "float32")], [np.zeros((), "float32")], [np.zeros(3, "float32")]], None, {})
    with pytest.raises(ValueError, match="needs slots"):
        _C.optimizer_update("adafactor", [w], [g], [[r], [c]], None, {})
    np.testing.assert_array_equal(w, 1)
    _C.optimizer_update("adafactor", [w], [g], [[r], [c], [v]], None, {"lr": 0.1})
    assert (w < 1).all() and (r > 0).all() and (c > 0).all()


def test_variables_are_kerass_set():
    # Keras 3.15: iterations, learning_rate, then (use_ema) averages, (accumulation) accumulators, then the slots;
    # model.summary() counts these as the optimizer's parameters.
    vs = [fastnn.Variable(np.zeros(3, "float32")), fastnn.Variable(np.zeros((2, 2), "float32"))]
    grads = [np.ones(3, "float32"), np.ones((2, 2), "float32")]
    opt = optimizers.Adam(use_ema=True, gradient_accumulation_steps=2)
    opt.apply_gradients(zip(grads, vs))
    assert [int(np.size(v.numpy())) for v in opt.variables] == [1, 1, 3, 4, 3, 4, 3, 3, 4, 4]
    nadam = optimizers.Nadam()
    nadam.apply_gradients(zip(grads, vs))
    assert len(nadam.variables) == 7  # + Nadam's u_product
    lso = optimizers.LossScaleOptimizer(optimizers.SGD())
    lso.apply_gradients(zip(grads, vs))
    assert len(lso.variables) == 6  # its iterations, learning rate, step_counter, dynamic_scale; SGD's two


def test_learning_rate_setter_takes_a_callable_and_empty_apply_is_a_no_op():
    opt = optimizers.SGD(0.1)
    opt.learning_rate = lambda: 0.25  # Keras accepts a callable here too
    assert opt.learning_rate == 0.25
    with pytest.raises(ValueError, match="learning_rate"):
        opt.learning_rate = -1.0
    opt.apply([], [])
    assert int(opt.iterations.numpy()) == 0


def test_a_gradient_that_is_another_variables_buffer_is_copied_not_rejected():
    # optimizer_update rejects a gradient inside any variable of the call; apply() copies such gradients first
    # (a backward may hand back a variable's own buffer, a user may pass w.numpy()).
    a = fastnn.Variable(np.array([1.0, 2.0], "float32"))
    b = fastnn.Variable(np.array([10.0, 20.0], "float32"))
    optimizers.SGD(0.5).apply_gradients([(a._data, b), (b._data, a)])  # each gradient is the other variable
    np.testing.assert_allclose(b.numpy(), [9.5, 19.0])
    np.testing.assert_allclose(a.numpy(), [-4.0, -8.0])
    c = fastnn.Variable(np.arange(6.0, dtype="float32").reshape(2, 3))
    optimizers.Adam(0.1).apply_gradients([(c._data[::-1], c)])  # a reversed view of its own variable
    assert np.isfinite(c.numpy()).all()


def test_custom_schedule_must_define_get_config_and_apply_gradients_returns_the_call_count():
    class Halving(schedules.LearningRateSchedule):
        def __call__(self, step):
            return 0.5 ** step

    opt = optimizers.SGD(learning_rate=Halving(), gradient_accumulation_steps=2)
    with pytest.raises(NotImplementedError, match="get_config"):
        opt.get_config()
    v = fastnn.Variable(np.zeros(1, "float32"))
    for _ in range(3):
        counter = opt.apply_gradients([(np.ones(1, "float32"), v)])
    # Keras: apply_gradients returns the raw call counter; iterations counts updates; the schedule sees the calls.
    assert int(counter.numpy()) == 3 and int(opt.iterations.numpy()) == 1
    np.testing.assert_allclose(v.numpy(), [-0.5])  # one update, at call 2: lr = 0.5 ** 1, mean gradient 1


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_nadam_u_product_variable_has_the_variables_dtype(dtype):
    # Keras: backend.Variable(1.0, dtype=var_list[0].dtype), so summary()'s optimizer bytes count 4 for float32
    # (fastnn listed it as float64 whatever the model's dtype: 4 bytes more than Keras's summary).
    opt = optimizers.Nadam()
    v = fastnn.Variable(np.ones(3, dtype))
    opt.apply_gradients([(np.ones(3, dtype), v)])
    u_product = opt.variables[-1]
    assert u_product.dtype == np.dtype(dtype) and u_product.shape == ()
