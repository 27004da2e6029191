"""Optimizers, losses, initializers, regularizers and constraints on the wrapped backend (whose buffers are not
NumPy arrays, ``fastnn.testing.wrapped_backend``): each run must give numbers EQUAL to the same run on the CPU
backend, so any computation that reaches around ``fastnn.backend`` in these modules fails here with BackendLeak.

Every case is a function returning a list of NumPy arrays (the user boundary: ``numpy()`` out), run once on each
backend. Gradients are given as host arrays and Tensors made from them, so an optimizer case exercises the
optimizer alone; the loss cases also take the gradient of the loss through the tape.
"""
from __future__ import annotations

import weakref

import math

import numpy as np
import pytest

import fastnn
from fastnn import backend, constraints, initializers, losses, optimizers, regularizers
from fastnn.autograd.keras_attrs import set_keras_mask
from fastnn.layers.layer import LayerVariable
from fastnn.testing.wrapped_backend import WrappedBuffer, use_wrapped_backend


def _both(run, *args):
    """``run(*args)`` on the CPU backend, then on the wrapped one; asserts the arrays are equal, dtypes included."""
    expected = run(*args)
    with use_wrapped_backend():
        got = run(*args)
    assert backend.name == "cpu"
    assert len(got) == len(expected)
    for i, (g, e) in enumerate(zip(got, expected)):
        assert isinstance(g, np.ndarray), f"entry {i} is {type(g).__name__}, not a NumPy array"
        assert g.dtype == e.dtype and g.shape == e.shape, f"entry {i}: {g.dtype}{g.shape} != {e.dtype}{e.shape}"
        np.testing.assert_array_equal(g, e, err_msg=f"entry {i}")
    return expected


def _host(x):
    """A private NumPy copy of a Tensor's value (no zero-copy view kept: it would make the variable copy on write)."""
    return np.array(x.numpy(), copy=True)


# -- optimizers -----------------------------------------------------------------------------------------------------
_SHAPES = [((3, 4), "float32", "kernel"), ((4,), "float32", "bias"), ((2, 3, 2), "float64", "deep")]


def _initial_values():
    rng = np.random.default_rng(11)
    return [rng.uniform(-1.0, 1.0, shape).astype(dt) for shape, dt, _ in _SHAPES]


def _gradients(step, nonfinite=False, scale=1.0):
    """The gradients of one step (of a loss scaled by ``scale``): host arrays for some variables and Tensors for the
    others, as callers pass both."""
    rng = np.random.default_rng(100 + step)
    grads = [(rng.standard_normal(shape) * 0.5 * scale).astype(dt) for shape, dt, _ in _SHAPES]
    if nonfinite:
        grads[1][2] = np.inf
    return [fastnn.Tensor(g) if i % 2 == 0 else g for i, g in enumerate(grads)]


def _schedule():
    return optimizers.schedules.ExponentialDecay(0.05, decay_steps=2, decay_rate=0.5)


OPTIMIZERS = {
    "sgd": lambda: optimizers.SGD(0.1),
    "sgd-momentum": lambda: optimizers.SGD(0.1, momentum=0.9),
    "sgd-nesterov": lambda: optimizers.SGD(0.1, momentum=0.9, nesterov=True),
    "sgd-clipnorm": lambda: optimizers.SGD(0.1, clipnorm=0.5),
    "sgd-clipvalue": lambda: optimizers.SGD(0.1, clipvalue=0.2),
    "sgd-global_clipnorm": lambda: optimizers.SGD(0.1, global_clipnorm=0.7),
    "sgd-schedule": lambda: optimizers.SGD(_schedule(), momentum=0.5),
    "sgd-loss_scale_factor": lambda: optimizers.SGD(0.1, loss_scale_factor=8.0),
    "adam": lambda: optimizers.Adam(0.01),
    "adam-amsgrad": lambda: optimizers.Adam(0.01, amsgrad=True),
    "adam-weight_decay": lambda: optimizers.Adam(0.01, weight_decay=0.1),
    "adamw": lambda: optimizers.AdamW(0.01),
    "adamw-excluded": lambda: _excluding(optimizers.AdamW(0.01, weight_decay=0.2), ["bias"]),
    "adagrad": lambda: optimizers.Adagrad(0.1),
    "rmsprop": lambda: optimizers.RMSprop(0.01),
    "rmsprop-momentum-centered": lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True),
    "adadelta": lambda: optimizers.Adadelta(1.0),
    "adamax": lambda: optimizers.Adamax(0.01),
    "nadam": lambda: optimizers.Nadam(0.01),
    "lion": lambda: optimizers.Lion(0.01),
    "ftrl": lambda: optimizers.Ftrl(0.1, l1_regularization_strength=0.01, l2_regularization_strength=0.02,
                                    l2_shrinkage_regularization_strength=0.03, beta=0.1),
    "lamb": lambda: optimizers.Lamb(0.01, weight_decay=0.01),
    "adafactor": lambda: optimizers.Adafactor(0.1),
    "ema": lambda: optimizers.Adam(0.01, use_ema=True, ema_momentum=0.9, ema_overwrite_frequency=3),
    "gradient_accumulation": lambda: optimizers.Adam(0.01, gradient_accumulation_steps=2),
    "gradient_accumulation-sgd-clipnorm": lambda: optimizers.SGD(0.1, momentum=0.9, clipnorm=0.5,
                                                                 gradient_accumulation_steps=3),
    "loss_scale": lambda: optimizers.LossScaleOptimizer(optimizers.SGD(0.1, momentum=0.5), initial_scale=4.0,
                                                        dynamic_growth_steps=2),
    "loss_scale-adam-ema": lambda: optimizers.LossScaleOptimizer(optimizers.Adam(0.01, use_ema=True),
                                                                 initial_scale=16.0, dynamic_growth_steps=1),
}


def _excluding(optimizer, names):
    optimizer.exclude_from_weight_decay(var_names=names)
    return optimizer


def _optimizer_run(name, steps=5):
    """A few steps of the optimizer (a non-finite gradient at step 2 for the loss-scale optimizers), the variables
    after each, then finalize_variable_values, the optimizer's variables and its iterations."""
    optimizer = OPTIMIZERS[name]()
    # dtype given: on the wrapped backend a NumPy array is host data, whose float64 a Variable does not keep
    variables = [fastnn.Variable(v, dtype=dt, name=n) for v, (_, dt, n) in zip(_initial_values(), _SHAPES)]
    out = []
    for step in range(steps):
        nonfinite = step == 2 and isinstance(optimizer, optimizers.LossScaleOptimizer)
        loss_scale = float(optimizer.scale_loss(1.0)) if isinstance(optimizer, optimizers.LossScaleOptimizer) else 1.0
        grads = _gradients(step, nonfinite, loss_scale)
        if step % 2:
            optimizer.apply_gradients(zip(grads, variables))
        else:
            optimizer.apply(grads, variables)
        out += [_host(v) for v in variables]
        assert all(backend.is_buffer(v._data) for v in variables)
    optimizer.finalize_variable_values(variables)
    out += [_host(v) for v in variables]
    out += [np.array(t.numpy(), copy=True) for t in optimizer.variables]
    out.append(np.array(optimizer.iterations.numpy(), copy=True))
    out.append(np.array(optimizer.learning_rate))
    return out


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_on_the_wrapped_backend(name):
    result = _both(_optimizer_run, name)
    # the variables moved: the fused kernel wrote the Variables' own buffers on both backends
    last = result[4 * len(_SHAPES):5 * len(_SHAPES)]
    assert all(not np.array_equal(r, b) for r, b in zip(last, _initial_values()))


def test_the_fused_update_writes_the_variables_buffer_on_the_wrapped_backend():
    with use_wrapped_backend():
        v = fastnn.Variable(np.ones((2, 3), np.float32))
        assert isinstance(v._data, WrappedBuffer)
        buffer = weakref.ref(v._data)  # a strong reference would itself make the buffer shared (copy-on-write)
        optimizers.Adam(0.1).apply([np.ones((2, 3), np.float32)], [v])
        assert v._data is buffer()  # updated in place: nothing else held the buffer
        assert float(v.numpy()[0, 0]) != 1.0


def test_the_loss_scale_optimizer_skips_non_finite_steps_on_the_wrapped_backend():
    def run():
        v = fastnn.Variable(np.ones(3, np.float32))
        opt = optimizers.LossScaleOptimizer(optimizers.SGD(0.5), initial_scale=8.0)
        opt.apply([np.array([1.0, np.nan, 1.0], np.float32)], [v])
        skipped = [_host(v), _host(opt.dynamic_scale), _host(opt.iterations)]
        opt.apply([np.full(3, 4.0, np.float32)], [v])
        return skipped + [_host(v), _host(opt.dynamic_scale), _host(opt.step_counter)]

    out = _both(run)
    np.testing.assert_array_equal(out[0], np.ones(3, np.float32))
    assert out[1] == 4.0 and out[2] == 0
    np.testing.assert_array_equal(out[3], np.full(3, 0.5, np.float32))  # 1 - 0.5 * 4 / 4


@pytest.mark.parametrize("name", ["sgd-momentum", "adam", "adafactor", "lamb", "gradient_accumulation", "ema"])
def test_scalar_variables(name):
    """0-D variables (and 0-D gradients) step like the others, on both backends."""

    def run():
        optimizer = OPTIMIZERS[name]()
        v = fastnn.Variable(np.array(2.0, np.float32))
        out = []
        for step in range(4):
            optimizer.apply([np.array(0.5 + step, np.float32)], [v])
            out.append(_host(v))
        return out

    out = _both(run)
    assert out[-1].shape == () and out[-1] != 2.0


def test_constraints_after_the_update_on_the_wrapped_backend():
    def run():
        kernel = LayerVariable(_initial_values()[0], name="kernel")
        kernel.constraint = constraints.MaxNorm(0.5, axis=0)
        bias = LayerVariable(_initial_values()[1], name="bias")
        bias.constraint = constraints.NonNeg()
        optimizer = optimizers.SGD(0.1, momentum=0.9)
        out = []
        for step in range(3):
            optimizer.apply(_gradients(step)[:2], [kernel, bias])
            out += [_host(kernel), _host(bias)]
        return out

    out = _both(run)
    assert (out[-1] >= 0).all() and (np.sqrt((out[-2] ** 2).sum(axis=0)) <= 0.5 + 1e-6).all()


# -- losses ---------------------------------------------------------------------------------------------------------
def _probabilities(rng, shape):
    p = rng.uniform(0.05, 1.0, shape)
    return (p / p.sum(axis=-1, keepdims=True)).astype("float32")


def _loss_data():
    rng = np.random.default_rng(5)
    labels = np.array([0, 2, 1, 2])
    return {
        "regression": (rng.standard_normal((4, 3)).astype("float32"), rng.standard_normal((4, 3)).astype("float32")),
        "positive": (rng.uniform(0.1, 2.0, (4, 3)).astype("float32"), rng.uniform(0.1, 2.0, (4, 3)).astype("float32")),
        "binary": ((rng.uniform(size=(4, 3)) > 0.5).astype("float32"), rng.uniform(0.05, 0.95, (4, 3)).astype("float32")),
        "binary-logits": ((rng.uniform(size=(4, 3)) > 0.5).astype("float32"),
                          rng.standard_normal((4, 3)).astype("float32") * 3),
        "signs": (np.sign(rng.standard_normal((4, 3))).astype("float32"), rng.standard_normal((4, 3)).astype("float32")),
        "one-hot": (np.eye(3, dtype="float32")[labels], _probabilities(rng, (4, 3))),
        "one-hot-logits": (np.eye(3, dtype="float32")[labels], rng.standard_normal((4, 3)).astype("float32")),
        "sparse": (labels, _probabilities(rng, (4, 3))),
        "sparse-ignored": (np.array([0, -1, 1, 2]), _probabilities(rng, (4, 3))),
        "sparse-logits": (labels.reshape(4, 1), rng.standard_normal((4, 3)).astype("float32")),
        "embeddings": (np.array([0, 1, 0, 1]), rng.standard_normal((4, 3)).astype("float32") * 0.5),
        "ctc": (np.array([[1, 2, 0], [3, 3, 1], [2, 0, 0], [1, 1, 0]]), rng.standard_normal((4, 6, 4)).astype("float32")),
    }


LOSSES = {
    "mse": (losses.MeanSquaredError, {}, "regression"),
    "mae": (losses.MeanAbsoluteError, {}, "regression"),
    "mape": (losses.MeanAbsolutePercentageError, {}, "positive"),
    "msle": (losses.MeanSquaredLogarithmicError, {}, "positive"),
    "cosine_similarity": (losses.CosineSimilarity, {"axis": -1}, "regression"),
    "huber": (losses.Huber, {"delta": 0.7}, "regression"),
    "log_cosh": (losses.LogCosh, {}, "regression"),
    "hinge-01": (losses.Hinge, {}, "binary"),
    "hinge-signs": (losses.Hinge, {}, "signs"),
    "squared_hinge": (losses.SquaredHinge, {}, "binary"),
    "categorical_hinge": (losses.CategoricalHinge, {}, "one-hot"),
    "kl_divergence": (losses.KLDivergence, {}, "one-hot"),
    "poisson": (losses.Poisson, {}, "positive"),
    "bce": (losses.BinaryCrossentropy, {}, "binary"),
    "bce-logits-smoothing": (losses.BinaryCrossentropy, {"from_logits": True, "label_smoothing": 0.1},
                             "binary-logits"),
    "binary_focal": (losses.BinaryFocalCrossentropy, {"gamma": 1.5}, "binary"),
    "binary_focal-balanced-logits": (losses.BinaryFocalCrossentropy, {"apply_class_balancing": True, "alpha": 0.3,
                                                                      "from_logits": True, "label_smoothing": 0.05},
                                     "binary-logits"),
    "cce": (losses.CategoricalCrossentropy, {}, "one-hot"),
    "cce-logits-smoothing": (losses.CategoricalCrossentropy, {"from_logits": True, "label_smoothing": 0.2},
                             "one-hot-logits"),
    "categorical_focal": (losses.CategoricalFocalCrossentropy, {}, "one-hot"),
    "categorical_focal-logits": (losses.CategoricalFocalCrossentropy, {"from_logits": True, "gamma": 1.0},
                                 "one-hot-logits"),
    "sparse_cce": (losses.SparseCategoricalCrossentropy, {}, "sparse"),
    "sparse_cce-logits": (losses.SparseCategoricalCrossentropy, {"from_logits": True}, "sparse-logits"),
    "sparse_cce-ignore_class": (losses.SparseCategoricalCrossentropy, {"ignore_class": -1}, "sparse-ignored"),
    "dice": (losses.Dice, {}, "binary"),
    "dice-axis": (losses.Dice, {"axis": -1}, "binary"),
    "tversky": (losses.Tversky, {"alpha": 0.3, "beta": 0.7, "axis": -1}, "binary"),
    "circle": (losses.Circle, {"gamma": 2.0}, "embeddings"),
    "generalized_cce": (losses.CategoricalGeneralizedCrossEntropy, {"q": 0.3}, "sparse"),
    "ctc": (losses.CTC, {}, "ctc"),
}
REDUCTIONS = ["sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None]
_SAMPLE_WEIGHT = np.array([0.5, 2.0, 0.0, 1.0], "float32")


def _loss_run(name, masked):
    """The loss (and its gradient with respect to y_pred) for every reduction, without and with sample weights."""
    cls, kwargs, data = LOSSES[name]
    y_true, y_pred = _loss_data()[data]
    out = []
    for reduction in REDUCTIONS:
        for sample_weight in (None, _SAMPLE_WEIGHT):
            loss = cls(reduction=reduction, **kwargs)
            pred = fastnn.Variable(y_pred)
            with fastnn.GradientTape() as tape:
                pred_value = pred.value
                if masked:
                    set_keras_mask(pred_value, np.array([True, False, True, True]))
                value = loss(y_true, pred_value, sample_weight=sample_weight)
                total = fastnn.ops.sum(value)
            (grad,) = tape.gradient(total, [pred])
            out += [_host(value), _host(grad)]
    return out


@pytest.mark.parametrize("name", list(LOSSES))
def test_loss_on_the_wrapped_backend(name):
    _both(_loss_run, name, False)


@pytest.mark.parametrize("name", ["mse", "bce", "sparse_cce-ignore_class", "circle"])
def test_masked_loss_on_the_wrapped_backend(name):
    _both(_loss_run, name, True)


def test_loss_functions_on_the_wrapped_backend():
    def run():
        data = _loss_data()
        return [_host(losses.mean_squared_error(*data["regression"])),
                _host(losses.sparse_categorical_crossentropy(*data["sparse-ignored"], ignore_class=-1)),
                _host(losses.categorical_generalized_cross_entropy(*data["sparse"], q=0.5)),
                _host(losses.reduce_weighted_values(fastnn.Tensor(data["positive"][0][:, 0]), _SAMPLE_WEIGHT,
                                                    mask=np.array([1, 1, 0, 1]), reduction="mean"))]

    _both(run)


# -- initializers ---------------------------------------------------------------------------------------------------
INITIALIZERS = {
    "zeros": (initializers.Zeros, {}),
    "ones": (initializers.Ones, {}),
    "constant": (initializers.Constant, {"value": 0.25}),
    "random_normal": (initializers.RandomNormal, {"mean": 0.5, "stddev": 2.0, "seed": 3}),
    "random_uniform": (initializers.RandomUniform, {"minval": -2.0, "maxval": 1.0, "seed": 4}),
    "truncated_normal": (initializers.TruncatedNormal, {"mean": 1.0, "stddev": 0.3, "seed": 5}),
    "variance_scaling-uniform": (initializers.VarianceScaling, {"scale": 2.0, "mode": "fan_out",
                                                                "distribution": "uniform", "seed": 6}),
    "variance_scaling-untruncated": (initializers.VarianceScaling, {"mode": "fan_avg",
                                                                    "distribution": "untruncated_normal", "seed": 7}),
    "variance_scaling-axes": (initializers.VarianceScaling, {"input_axes": [0], "output_axes": [1, 2], "seed": 8}),
    "glorot_uniform": (initializers.GlorotUniform, {"seed": 9}),
    "glorot_normal": (initializers.GlorotNormal, {"seed": 10}),
    "he_normal": (initializers.HeNormal, {"seed": 11}),
    "he_uniform": (initializers.HeUniform, {"seed": 12}),
    "lecun_normal": (initializers.LecunNormal, {"seed": 13}),
    "lecun_uniform": (initializers.LecunUniform, {"seed": 14}),
    "orthogonal": (initializers.Orthogonal, {"gain": 1.5, "seed": 15}),
    "identity": (initializers.Identity, {"gain": 2.0}),
    "glorot_uniform-global-generator": (initializers.GlorotUniform, {}),
    "truncated_normal-global-generator": (initializers.TruncatedNormal, {}),
}
_INIT_SHAPES = {"identity": [(3, 3), (2, 5)], "orthogonal": [(3, 5), (5, 3), (2, 3, 4)]}


def _initializer_run(name):
    cls, kwargs = INITIALIZERS[name]
    fastnn.utils.set_random_seed(21)
    init = cls(**kwargs)
    out = []
    for shape in _INIT_SHAPES.get(name, [(4, 3), (2, 3, 4), (50, 40)] if name != "variance_scaling-axes"
                                  else [(2, 3, 4)]):
        for dtype in ("float32", "float64", None):
            value = init(shape, dtype=dtype)
            assert backend.is_buffer(value), type(value)
            out.append(np.array(backend.to_numpy(value), copy=True))
            variable = fastnn.Variable(init, shape=shape, dtype=dtype)
            out.append(_host(variable))
    return out


@pytest.mark.parametrize("name", list(INITIALIZERS))
def test_initializer_on_the_wrapped_backend(name):
    _both(_initializer_run, name)


def _truncated_reference(rng, shape, mean, stddev):
    """The stream TruncatedNormal has always drawn: values beyond two standard deviations are redrawn in order."""
    out = rng.standard_normal(shape)
    bad = np.abs(out) > 2.0
    while bad.any():
        out[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 2.0
    return mean + stddev * out


def test_initializers_keep_their_random_streams():
    """The numbers of the seeded initializers, pinned to the NumPy formulas they were first written with (PCG64)."""
    rng = np.random.default_rng
    shape = (30, 20)
    expected = {
        "random_normal": (0.5 + 2.0 * rng(3).standard_normal(shape)).astype("float32"),
        "random_uniform": rng(4).uniform(-2.0, 1.0, shape).astype("float32"),
        "truncated_normal": _truncated_reference(rng(5), shape, 1.0, 0.3).astype("float32"),
        "variance_scaling-uniform": rng(6).uniform(-math.sqrt(6.0 / 20), math.sqrt(6.0 / 20), shape).astype("float32"),
        "variance_scaling-untruncated": (rng(7).standard_normal(shape) * math.sqrt(1.0 / 25)).astype("float32"),
        "glorot_normal": _truncated_reference(rng(10), shape, 0.0, math.sqrt(1.0 / 25) / 0.87962566103423978
                                              ).astype("float32"),
    }
    a = rng(15).standard_normal((30, 20))
    q, r = np.linalg.qr(a)
    expected["orthogonal"] = (1.5 * (q * np.sign(np.diag(r)))).astype("float32")
    for name, want in expected.items():
        cls, kwargs = INITIALIZERS[name]
        for use in (lambda: __import__("contextlib").nullcontext(), use_wrapped_backend):
            with use():
                got = np.array(backend.to_numpy(cls(**kwargs)(shape, dtype="float32")), copy=True)
            np.testing.assert_array_equal(got, want, err_msg=name)


# -- regularizers and constraints -----------------------------------------------------------------------------------
REGULARIZERS = {"l1": regularizers.L1(0.01), "l2": regularizers.L2(0.02), "l1_l2": regularizers.L1L2(0.01, 0.02)}


@pytest.mark.parametrize("name", list(REGULARIZERS))
def test_regularizer_on_the_wrapped_backend(name):
    def run():
        w = fastnn.Variable(_initial_values()[0])
        with fastnn.GradientTape() as tape:
            penalty = REGULARIZERS[name](w)
        (grad,) = tape.gradient(penalty, [w])
        return [_host(penalty), _host(grad)]

    _both(run)


CONSTRAINTS = {"max_norm": constraints.MaxNorm(0.8, axis=0), "max_norm-axis1": constraints.MaxNorm(1.0, axis=1),
               "non_neg": constraints.NonNeg(), "unit_norm": constraints.UnitNorm(axis=0),
               "min_max_norm": constraints.MinMaxNorm(0.5, 0.9, rate=0.7, axis=0), "identity": constraints.Constraint()}


@pytest.mark.parametrize("name", list(CONSTRAINTS))
def test_constraint_on_the_wrapped_backend(name):
    def run():
        out = []
        for w in _initial_values()[0], _initial_values()[2]:
            for given in (backend.asarray(w), w, fastnn.Tensor(w)):  # a buffer, the user's array, a Tensor
                projected = CONSTRAINTS[name](given)
                if name == "identity":  # the base class returns the weight as given (as Keras's does)
                    assert projected is given
                    projected = backend.asarray(given) if isinstance(given, np.ndarray) else given
                    projected = projected._data if isinstance(projected, fastnn.Tensor) else projected
                assert backend.is_buffer(projected)
                out.append(np.array(backend.to_numpy(projected), copy=True))
        return out

    _both(run)
