"""Live cross-check of the optimizers against Keras 3 (TensorFlow backend): several steps of every optimizer on the
same weights and gradients, the base-class arguments (clipping, weight decay, EMA, gradient accumulation, loss
scaling), LossScaleOptimizer's dynamic scale, the learning-rate schedules, and the configs key for key. Skipped when
Keras is not installed.

Run with:  KERAS_BACKEND=tensorflow PYTHONPATH=src /work/kvenv/bin/python -m pytest tests/e2e/test_keras_optimizers.py
"""
from __future__ import annotations

import re

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")

import fastnn  # noqa: E402

SHAPES = ((4, 3), (3,), (2, 3, 2), (1, 5))
STEPS = 6


def _problem(dtype, seed=0, steps=STEPS, shapes=SHAPES, nonfinite_at=()):
    rng = np.random.default_rng(seed)
    inits = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(steps)]
    for t in nonfinite_at:
        grads[t][0][0, 0] = np.inf
    return inits, grads


def _run_keras(opt, inits, grads):
    vs = [keras.Variable(w.copy(), dtype=str(w.dtype)) for w in inits]
    for gs in grads:
        opt.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in gs], vs))
    return [np.asarray(v.numpy()) for v in vs], vs


def _run_fastnn(opt, inits, grads):
    vs = [fastnn.Variable(w.copy()) for w in inits]
    for gs in grads:
        opt.apply_gradients(zip(gs, vs))
    return [v.numpy() for v in vs], vs


def _close(got, want, dtype, adam=False):
    # float64: Keras keeps the learning rate in a float32 variable (0.001 -> 0.0010000000474974513), and
    # ops.cast(python_float, "float64") goes through a float32 tensor, so its hyper-parameters are float32-rounded:
    # Adam's sqrt(1 - 0.999^t) then differs by ~7e-6 relative from fastnn's (float64 beta_2 = 0.999).
    rtol, atol = (3e-5, 3e-5) if np.dtype(dtype) == np.float32 else (2e-5, 1e-6) if adam else (1e-6, 1e-8)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


# (class name, constructor kwargs): the same call on both libraries.
CASES = [
    ("Lion", {}), ("Lion", {"learning_rate": 0.01, "beta_1": 0.5, "beta_2": 0.9}),
    ("Lion", {"learning_rate": 0.01, "weight_decay": 0.1, "clipvalue": 0.5}),
    ("Lamb", {}), ("Lamb", {"learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-3}),
    ("Lamb", {"learning_rate": 0.01, "weight_decay": 0.05, "clipnorm": 1.0}),
    ("Adafactor", {}), ("Adafactor", {"learning_rate": 0.5}),
    ("Adafactor", {"learning_rate": 0.01, "beta_2_decay": -0.5, "epsilon_1": 1e-20, "epsilon_2": 1e-2,
                   "clip_threshold": 0.5, "relative_step": False}),
    ("Adafactor", {"learning_rate": 0.1, "global_clipnorm": 1.0, "weight_decay": 0.01}),
    ("Ftrl", {}), ("Ftrl", {"learning_rate": 0.1}),
    ("Ftrl", {"learning_rate": 0.1, "learning_rate_power": -0.7, "initial_accumulator_value": 0.2,
              "l1_regularization_strength": 0.01, "l2_regularization_strength": 0.02,
              "l2_shrinkage_regularization_strength": 0.03, "beta": 0.5}),
    ("Ftrl", {"learning_rate": 0.05, "learning_rate_power": 0.0, "l1_regularization_strength": 0.5}),
    ("Ftrl", {"learning_rate": 0.1, "weight_decay": 0.1, "clipnorm": 0.5}),
    # The base-class arguments on the fused kinds and the NumPy ones.
    ("SGD", {"learning_rate": 0.1, "momentum": 0.9, "use_ema": True, "ema_momentum": 0.7}),
    ("Adam", {"learning_rate": 0.01, "use_ema": True, "ema_momentum": 0.5, "ema_overwrite_frequency": 2}),
    ("Lamb", {"learning_rate": 0.01, "use_ema": True, "ema_overwrite_frequency": 3}),
    ("SGD", {"learning_rate": 0.1, "momentum": 0.5, "gradient_accumulation_steps": 2}),
    ("Adam", {"learning_rate": 0.01, "gradient_accumulation_steps": 3, "clipnorm": 0.5}),
    ("Nadam", {"learning_rate": 0.01, "gradient_accumulation_steps": 2, "weight_decay": 0.1}),
    ("Adafactor", {"learning_rate": 0.1, "gradient_accumulation_steps": 2}),
    ("Adam", {"learning_rate": 0.01, "gradient_accumulation_steps": 2, "use_ema": True, "ema_momentum": 0.5,
              "ema_overwrite_frequency": 2}),
    ("SGD", {"learning_rate": 0.1, "loss_scale_factor": 8.0}),
    ("Ftrl", {"learning_rate": 0.1, "loss_scale_factor": 4.0, "clipvalue": 0.3}),
    ("RMSprop", {"learning_rate": 0.01, "momentum": 0.5, "centered": True, "loss_scale_factor": 2.0,
                 "gradient_accumulation_steps": 2}),
    ("Adamax", {"learning_rate": 0.01, "use_ema": True, "global_clipnorm": 1.0}),
    ("AdamW", {"learning_rate": 0.01, "amsgrad": True, "use_ema": True, "ema_momentum": 0.9}),
    ("Adagrad", {"learning_rate": 0.1, "gradient_accumulation_steps": 2, "use_ema": True}),
    ("Adadelta", {"learning_rate": 1.0, "loss_scale_factor": 0.5, "weight_decay": 0.1}),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{c}-{i}" for i, (c, _) in enumerate(CASES)])
def test_optimizer_steps_match_keras(name, kwargs, dtype):
    inits, grads = _problem(dtype)
    kopt = getattr(keras.optimizers, name)(**kwargs)
    fopt = getattr(fastnn.optimizers, name)(**kwargs)
    want, kvars = _run_keras(kopt, inits, grads)
    got, fvars = _run_fastnn(fopt, inits, grads)
    adam = name in ("Adam", "AdamW")
    _close(got, want, dtype, adam)
    assert int(fopt.iterations.numpy()) == int(kopt.iterations.numpy())
    # optimizer.variables: the same count and sizes (model.summary()'s "Optimizer params" counts them).
    assert sorted(int(np.size(v.numpy())) for v in fopt.variables) == sorted(
        int(np.size(v.numpy())) for v in kopt.variables)
    if kwargs.get("use_ema"):  # finalize_variable_values: the variables take their moving averages
        kopt.finalize_variable_values(kvars)
        fopt.finalize_variable_values(fvars)
        _close([v.numpy() for v in fvars], [np.asarray(v.numpy()) for v in kvars], dtype, adam)
    kc, fc = kopt.get_config(), fopt.get_config()
    # Both uniquify default names ("adam", "adam_1", ...), each counting its own earlier objects.
    assert re.sub(r"_\d+$", "", kc["name"]) == re.sub(r"_\d+$", "", fc["name"])
    assert fc["learning_rate"] == pytest.approx(kc["learning_rate"], rel=1e-7)  # Keras: a float32 variable
    assert {k: v for k, v in fc.items() if k not in ("name", "learning_rate")} == \
        {k: v for k, v in kc.items() if k not in ("name", "learning_rate")}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_loss_scale_optimizer_matches_keras(dtype):
    # A growth every 2 finite steps; infinities at steps 2 and 5 skip those steps and halve the scale.
    inits, grads = _problem(dtype, steps=9, nonfinite_at=(2, 5))
    grads = [[g * 64.0 for g in gs] for gs in grads]  # as if the loss had been scaled
    kopt = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(0.01), initial_scale=16.0, dynamic_growth_steps=2)
    fopt = fastnn.optimizers.LossScaleOptimizer(fastnn.optimizers.Adam(0.01), initial_scale=16.0,
                                                dynamic_growth_steps=2)
    vk = [keras.Variable(w.copy(), dtype=dtype) for w in inits]
    vf = [fastnn.Variable(w.copy()) for w in inits]
    for gs in grads:
        kopt.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in gs], vk))
        fopt.apply_gradients(zip(gs, vf))
        assert float(fopt.dynamic_scale.numpy()) == float(kopt.dynamic_scale.numpy())
        assert int(fopt.step_counter.numpy()) == int(kopt.step_counter.numpy())
        assert int(fopt.iterations.numpy()) == int(kopt.iterations.numpy())
        _close([v.numpy() for v in vf], [np.asarray(v.numpy()) for v in vk], dtype, adam=True)
    assert sorted(int(np.size(v.numpy())) for v in fopt.variables) == sorted(
        int(np.size(v.numpy())) for v in kopt.variables)
    assert float(fopt.scale_loss(1.5)) == float(kopt.scale_loss(1.5))
    assert fopt.learning_rate == pytest.approx(float(kopt.learning_rate))
    kc, fc = kopt.get_config(), fopt.get_config()
    assert kc.keys() == fc.keys() and fc["initial_scale"] == kc["initial_scale"]
    assert fc["dynamic_growth_steps"] == kc["dynamic_growth_steps"]
    assert fc["inner_optimizer"].keys() == kc["inner_optimizer"].keys()
    assert fc["inner_optimizer"]["config"].keys() == kc["inner_optimizer"]["config"].keys()
    clone = fastnn.optimizers.LossScaleOptimizer.from_config(fc)
    assert clone.get_config() == fc
    from_keras = fastnn.optimizers.get(keras.optimizers.serialize(kopt))  # Keras's own dict, read by fastnn
    assert isinstance(from_keras, fastnn.optimizers.LossScaleOptimizer)
    assert isinstance(from_keras.inner_optimizer, fastnn.optimizers.Adam) and from_keras.initial_scale == 16.0


SCHEDULES = [
    ("PolynomialDecay", {"initial_learning_rate": 0.1, "decay_steps": 10}),
    ("PolynomialDecay", {"initial_learning_rate": 0.1, "decay_steps": 10, "end_learning_rate": 0.01, "power": 2.0}),
    ("PolynomialDecay", {"initial_learning_rate": 0.1, "decay_steps": 7, "power": 0.5, "cycle": True}),
    ("InverseTimeDecay", {"initial_learning_rate": 0.1, "decay_steps": 5, "decay_rate": 0.5}),
    ("InverseTimeDecay", {"initial_learning_rate": 0.1, "decay_steps": 5, "decay_rate": 0.5, "staircase": True}),
    ("CosineDecayRestarts", {"initial_learning_rate": 0.1, "first_decay_steps": 5}),
    ("CosineDecayRestarts", {"initial_learning_rate": 0.1, "first_decay_steps": 4, "t_mul": 1.0, "m_mul": 0.5,
                             "alpha": 0.1}),
    ("CosineDecayRestarts", {"initial_learning_rate": 0.2, "first_decay_steps": 3, "t_mul": 1.5, "m_mul": 0.8,
                             "alpha": 0.05}),
    ("ExponentialDecay", {"initial_learning_rate": 0.1, "decay_steps": 4, "decay_rate": 0.5, "staircase": True}),
    ("PiecewiseConstantDecay", {"boundaries": [3, 7], "values": [0.1, 0.05, 0.01]}),
    ("CosineDecay", {"initial_learning_rate": 0.1, "decay_steps": 10, "alpha": 0.1}),
    ("CosineDecay", {"initial_learning_rate": 0.0, "decay_steps": 10, "warmup_target": 0.1, "warmup_steps": 5}),
]


@pytest.mark.parametrize("name,kwargs", SCHEDULES, ids=[f"{c}-{i}" for i, (c, _) in enumerate(SCHEDULES)])
def test_schedules_match_keras(name, kwargs):
    ks = getattr(keras.optimizers.schedules, name)(**kwargs)
    fs = getattr(fastnn.optimizers.schedules, name)(**kwargs)
    # Keras computes in float32; steps just off a restart boundary are compared, not ones on it.
    for step in range(0, 40):
        assert fs(step) == pytest.approx(float(ks(step)), rel=2e-5, abs=1e-7), step
    assert fastnn.optimizers.schedules.serialize(fs) == keras.optimizers.schedules.serialize(ks)
    back = fastnn.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(ks))
    assert type(back) is type(fs) and back.get_config() == ks.get_config()
    # A schedule inside an optimizer's config, and the optimizer reading Keras's config.
    kopt, fopt = keras.optimizers.SGD(learning_rate=ks), fastnn.optimizers.SGD(learning_rate=fs)
    # Both libraries uniquify default names ("sgd", "sgd_1", ...) with counters that earlier tests moved apart.
    assert re.sub(r"_\d+$", "", kopt.name) == re.sub(r"_\d+$", "", fopt.name) == "sgd"
    kc = kopt.get_config() | {"name": fopt.name}
    assert fopt.get_config() == kc
    assert fastnn.optimizers.SGD.from_config(kc).get_config() == kc


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "Adadelta", "Adamax", "Nadam", "Lion",
                                  "Lamb", "Adafactor", "Ftrl"])
def test_default_configs_match_keras(name):
    kc = getattr(keras.optimizers, name)().get_config()
    fc = getattr(fastnn.optimizers, name)().get_config()
    assert fc.keys() == kc.keys()
    for key in kc:
        if key == "name":
            # Both uniquify default names ("sgd", "sgd_1", ...), each counting its own earlier objects.
            assert re.sub(r"_\d+$", "", kc[key]) == re.sub(r"_\d+$", "", fc[key])
        elif key == "learning_rate":
            assert fc[key] == pytest.approx(kc[key], rel=1e-7)  # Keras keeps it in a float32 variable
        else:
            assert fc[key] == kc[key], key
    ks = keras.optimizers.serialize(getattr(keras.optimizers, name)())
    fs = fastnn.optimizers.serialize(getattr(fastnn.optimizers, name)())
    assert fs.keys() == ks.keys() and fs["module"] == ks["module"] and fs["class_name"] == ks["class_name"]
    assert type(fastnn.optimizers.get(ks)) is getattr(fastnn.optimizers, name)


def _dense_model(lib, w, b):
    m = lib.Sequential([lib.Input((4,)), lib.layers.Dense(2)])
    m.layers[0].set_weights([w, b])
    return m


@pytest.mark.parametrize("make", [
    lambda lib: lib.optimizers.SGD(0.1, use_ema=True, ema_momentum=0.5),
    lambda lib: lib.optimizers.Adam(0.05, use_ema=True, ema_momentum=0.8, ema_overwrite_frequency=3),
    lambda lib: lib.optimizers.SGD(0.1, loss_scale_factor=16.0),
    lambda lib: lib.optimizers.Lamb(0.05, gradient_accumulation_steps=2),
    lambda lib: lib.optimizers.LossScaleOptimizer(lib.optimizers.SGD(0.1), initial_scale=4.0, dynamic_growth_steps=3),
], ids=["ema", "ema_overwrite", "loss_scale_factor", "accumulation", "loss_scale_optimizer"])
def test_fit_matches_keras(make):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, 4)).astype("float32")
    y = rng.standard_normal((40, 2)).astype("float32")
    w = rng.standard_normal((4, 2)).astype("float32")
    b = np.zeros(2, "float32")
    results = []
    for lib in (keras, fastnn):
        m = _dense_model(lib, w, b)
        m.compile(optimizer=make(lib), loss="mse")
        h = m.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        results.append((h.history["loss"], [np.asarray(a) for a in m.get_weights()]))
    (kl, kw), (fl, fw) = results
    # Keras computes Adam's 1 - 0.999^t in float32 (cancellation: ~1e-5 relative), fastnn in float64.
    np.testing.assert_allclose(fl, kl, rtol=1e-4)
    for a, b_ in zip(fw, kw):
        np.testing.assert_allclose(a, b_, rtol=1e-4, atol=1e-5)


def test_exclude_from_weight_decay_matches_keras():
    inits, grads = _problem("float32", shapes=((3,), (3,), (2, 2)))
    names = ["kernel", "bias", "gamma"]
    results = []
    for lib in (keras, fastnn):
        vs = [lib.Variable(w.copy(), name=n) for w, n in zip(inits, names)]
        opt = lib.optimizers.AdamW(0.1, weight_decay=0.5)
        opt.exclude_from_weight_decay(var_names=["^bi", "gam+a"])
        for gs in grads:
            opt.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in gs] if lib is keras else gs, vs))
        results.append([np.asarray(v.numpy()) for v in vs])
    _close(results[1], results[0], "float32")
