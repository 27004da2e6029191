"""Every optimizer against a NumPy twin of Keras 3's update formula over several steps, both dtypes; clipping,
weight decay, schedules, constraints and bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest

import fastnn
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


def test_results_do_not_depend_on_thread_count(restore_threads):
    big = ((300, 301),)
    fastnn.set_num_threads(1)
    a, _, _ = _run(lambda: optimizers.Adam(0.01), ref_adam(0.01), "float32", shapes=big)
    fastnn.set_num_threads(2)
    b, _, _ = _run(lambda: optimizers.Adam(0.01), ref_adam(0.01), "float32", shapes=big)
    np.testing.assert_array_equal(a[0], b[0])


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
