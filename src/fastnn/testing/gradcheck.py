"""Gradient checks against float64 central finite differences.

Example:
    >>> from fastnn.testing.gradcheck import check_gradients
    >>> check_gradients(lambda x: x ** 2, [np.array([1.0, 2.0])])
"""
from __future__ import annotations

import numpy as np


def central_difference(f, x, eps=1e-6):
    """d f / d x by float64 central differences, for a scalar-valued f of one NumPy array x (same shape as x)."""
    g = np.zeros_like(x)
    for i in range(x.size):
        xp, xm = x.copy(), x.copy()
        xp.flat[i] += eps
        xm.flat[i] -= eps
        g.flat[i] = (f(xp) - f(xm)) / (2 * eps)
    return g


def numeric_gradients(fn, inputs, wrt, weights, eps=1e-6):
    """Central finite differences of sum(fn(*inputs) * weights) with respect to inputs[i] for i in wrt."""
    import fastnn

    def objective(xs):
        with fastnn.no_grad():
            out = np.asarray(fn(*[fastnn.Tensor(x) for x in xs]), dtype=np.float64)
        return float(np.sum(out * weights))

    grads = []
    for i in wrt:
        xs = [np.array(x, copy=True) for x in inputs]
        g = np.zeros(xs[i].shape, np.float64)
        flat = xs[i].reshape(-1)
        gflat = g.reshape(-1)
        for k in range(flat.size):
            orig = flat[k]
            flat[k] = orig + eps
            up = objective(xs)
            flat[k] = orig - eps
            down = objective(xs)
            flat[k] = orig
            gflat[k] = (up - down) / (2 * eps)
        grads.append(g)
    return grads


def analytic_gradients(fn, inputs, wrt, weights):
    """Gradients of sum(fn(*inputs) * weights) from GradientTape and from Tensor.backward() on the same graph.

    Returns (tape_grads, backward_grads): lists of float64 arrays (zeros where a source is unconnected).
    """
    import fastnn

    tensors = [fastnn.Tensor(x) for x in inputs]
    for i in wrt:
        tensors[i].requires_grad = True
    with fastnn.GradientTape(persistent=True) as tape:
        for i in wrt:
            tape.watch(tensors[i])
        out = fn(*tensors)
        objective = fastnn.ops.sum(fastnn.ops.multiply(out, fastnn.ops.convert_to_tensor(weights, out.dtype)))
    tape_grads = tape.gradient(objective, [tensors[i] for i in wrt], unconnected_gradients="zero")
    tape_grads = [np.asarray(g, dtype=np.float64) for g in tape_grads]
    if objective._node is not None:
        objective.backward()
    backward_grads = [
        np.zeros(tensors[i].shape) if tensors[i].grad is None else np.asarray(tensors[i].grad, np.float64) for i in wrt
    ]
    return tape_grads, backward_grads


def check_gradients(fn, inputs, wrt=None, rtol=1e-4, atol=1e-6, eps=1e-6, seed=0):
    """Asserts that fastnn's gradients of ``fn`` match float64 central finite differences, and that
    GradientTape and Tensor.backward() agree exactly.

    Args:
        fn: a function of fastnn Tensors returning a Tensor.
        inputs: float64 NumPy arrays (others are passed as constants).
        wrt: indices of the inputs to differentiate (default: every float64 input).
        rtol, atol: tolerance of |analytic - numeric| <= atol + rtol * |numeric|.
    """
    inputs = [np.asarray(x) for x in inputs]
    if wrt is None:
        wrt = [i for i, x in enumerate(inputs) if x.dtype == np.float64]
    import fastnn

    with fastnn.no_grad():
        out_shape = np.shape(fn(*[fastnn.Tensor(x) for x in inputs]))
    rng = np.random.default_rng(seed)
    weights = rng.uniform(0.5, 1.5, size=out_shape)
    numeric = numeric_gradients(fn, inputs, wrt, weights, eps)
    tape_grads, backward_grads = analytic_gradients(fn, inputs, wrt, weights)
    for i, n, t, b in zip(wrt, numeric, tape_grads, backward_grads):
        assert t.shape == inputs[i].shape, f"input {i}: gradient shape {t.shape} != input shape {inputs[i].shape}"
        assert np.array_equal(t, b, equal_nan=True), f"input {i}: GradientTape and backward() differ:\n{t}\n{b}"
        err = np.abs(t - n)
        bound = atol + rtol * np.abs(n)
        if err.size and not np.all(err <= bound):
            k = np.unravel_index(np.argmax(err - bound), err.shape)
            raise AssertionError(
                f"input {i}: analytic gradient {t[k]!r} != numeric {n[k]!r} at {k} (|diff| {err[k]:.3e} > {bound[k]:.3e})"
            )


def check_weight_gradients(fn, variables, upstream, rtol=1e-5, atol=1e-7, eps=1e-6):
    """Asserts that the tape's gradients of ``sum(fn() * upstream)`` with respect to each Variable in
    ``variables`` (a layer's float64 weights) match central differences taken by assigning shifted values to the
    Variable (restored afterwards). ``fn()`` recomputes the output from the current values."""
    import fastnn

    for v in variables:
        value = v.numpy().copy()
        with fastnn.GradientTape() as tape:
            objective = fastnn.ops.sum(fastnn.ops.multiply(fn(), upstream))
        analytic = np.asarray(tape.gradient(objective, v).numpy(), np.float64)
        numeric = np.zeros(value.shape)
        try:
            for i in np.ndindex(value.shape):
                for sign in (1, -1):
                    shifted = value.copy()
                    shifted[i] += sign * eps
                    v.assign(shifted)
                    numeric[i] += sign * float((np.asarray(fn().numpy()) * upstream).sum()) / (2 * eps)
        finally:
            v.assign(value)
        np.testing.assert_allclose(analytic, numeric, rtol=rtol, atol=atol, err_msg=getattr(v, "path", str(v)))
