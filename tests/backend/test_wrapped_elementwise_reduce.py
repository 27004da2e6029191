"""The elementwise, reduction and creation ops on the wrapped backend, beyond the op table's rows: integer and bool
inputs, Tensor bounds, empty reductions, ``initial``, one-argument ``where``, creation functions and
``convert_to_numpy``. Each case runs on the CPU backend and on the wrapped one (whose buffers refuse NumPy), and
the values, dtypes and gradients must be equal."""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import ops
from fastnn.testing.wrapped_backend import BackendLeak, WrappedBuffer, use_wrapped_backend

RNG = np.random.default_rng(3)
X34 = RNG.uniform(-2, 2, (3, 4))
POS34 = RNG.uniform(0.5, 2, (3, 4))
ROW4 = RNG.uniform(-2, 2, (4,))
INT34 = RNG.integers(-3, 4, (3, 4))
BOOL34 = RNG.random((3, 4)) < 0.5
TIES = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])

# (id, function of the input tensors, inputs). Float inputs become Variables (their gradients are compared too).
CASES = [
    ("add_bias_float32", lambda a, b: ops.add(a, b), [X34.astype(np.float32), ROW4.astype(np.float32)]),
    ("add_bias_reversed", lambda a, b: ops.add(b, a), [X34, ROW4]),
    ("add_int_float", lambda a, b: ops.add(a, b), [INT34, X34]),
    ("subtract_scalar_left", lambda a: ops.subtract(3, a), [X34]),
    ("multiply_bool_float", lambda m, a: ops.multiply(m, a), [BOOL34, X34]),
    ("divide_ints", lambda a, b: ops.divide(a, b), [INT34, INT34 + 5]),
    ("divide_by_zero", lambda a, b: ops.divide(a, b * 0.0), [X34, POS34]),
    ("power_int_exponent", lambda a: ops.power(a, 3), [X34]),
    ("power_negative_base", lambda a, b: ops.power(a, b), [X34, np.full((3, 4), 2.0)]),
    ("maximum_ties", lambda a, b: ops.maximum(a, b), [TIES, TIES[:, ::-1].copy()]),
    ("minimum_broadcast", lambda a, b: ops.minimum(a, b), [X34, ROW4]),
    ("abs_int", lambda a: ops.abs(a), [INT34]),
    ("square_int", lambda a: ops.square(a), [INT34]),
    ("sign_float32", lambda a: ops.sign(a), [X34.astype(np.float32)]),
    ("sqrt_int", lambda a: ops.sqrt(a), [np.abs(INT34)]),
    ("log_with_zero", lambda a: ops.log(a * 0.0 + 1.0) + ops.log1p(a), [POS34]),
    ("clip_tensor_bounds", lambda a, lo, hi: ops.clip(a, lo, hi), [X34, np.float64(-0.5), np.float64(0.5)]),
    ("clip_bool", lambda m: ops.clip(m, 0, 1), [BOOL34]),
    ("clip_int_float_bounds", lambda a: ops.clip(a, -1.5, 2.5), [INT34]),
    ("where_int_cond", lambda c, a, b: ops.where(c, a, b), [INT34, X34, ROW4]),
    ("where_scalar_branch", lambda c, a: ops.where(c, a, 0.0), [BOOL34, X34]),
    ("compare_chain", lambda a, b: ops.logical_and(ops.greater(a, b), ops.less_equal(a, 1.0)), [X34, ROW4]),
    ("logical_not_int", lambda a: ops.logical_not(a), [INT34]),
    ("sum_bool", lambda m: ops.sum(m, axis=0), [BOOL34]),
    ("sum_int_all", lambda a: ops.sum(a), [INT34]),
    ("sum_keepdims_all", lambda a: ops.sum(a, keepdims=True), [X34]),
    ("mean_int", lambda a: ops.mean(a, axis=1), [INT34]),
    ("mean_empty_axis", lambda a: ops.mean(a, axis=0), [np.zeros((0, 3))]),
    ("mean_empty_all", lambda a: ops.mean(a), [np.zeros((0, 3))]),
    ("mean_axes_tuple", lambda a: ops.mean(a, axis=(0, 2), keepdims=True), [RNG.uniform(-1, 1, (2, 3, 4))]),
    ("max_ties_all", lambda a: ops.max(a), [TIES]),
    ("max_ties_keepdims", lambda a: ops.max(a, axis=1, keepdims=True), [TIES]),
    ("min_initial_empty", lambda a: ops.min(a, axis=0, initial=5.0), [np.zeros((0, 3))]),
    ("max_initial", lambda a: ops.max(a, axis=-1, initial=0.5), [X34]),
    ("argmax_all", lambda a: ops.argmax(a), [X34]),
    ("argmin_keepdims", lambda a: ops.argmin(a, axis=0, keepdims=True), [X34]),
    ("var_int", lambda a: ops.var(a), [INT34]),
    ("std_axis_keepdims", lambda a: ops.std(a, axis=0, keepdims=True), [X34]),
    ("logsumexp_all_keepdims", lambda a: ops.logsumexp(a, keepdims=True), [X34]),
    ("logsumexp_empty", lambda a: ops.logsumexp(a, axis=0), [np.zeros((0, 3))]),
    ("logsumexp_inf", lambda a: ops.logsumexp(a - np.inf, axis=1), [X34]),
    ("cumsum_bool", lambda m: ops.cumsum(m, axis=1), [BOOL34]),
    ("cumsum_dtype", lambda a: ops.cumsum(a, axis=0, dtype="float32"), [X34]),
    ("prod_all", lambda a: ops.prod(a), [X34]),
    ("prod_axes_with_zero", lambda a: ops.prod(a * ops.greater(a, -1.0), axis=(0, 2)), [RNG.uniform(-2, 2, (2, 3, 4))]),
    ("prod_keepdims_empty", lambda a: ops.prod(a, axis=1, keepdims=True), [np.zeros((3, 0))]),
    ("zeros_ones_full", lambda a: ops.zeros((2, 3)) + ops.ones(3, "float64") + ops.full((2, 3), 1.5) * a,
     [np.float64(2.0)]),
    ("full_tensor_fill", lambda a: ops.full((2, 2), ops.max(a)), [X34]),
    ("full_like_ones_like", lambda a: ops.full_like(a, 2.5) * a + ops.ones_like(a, dtype="int32") + ops.zeros_like(a),
     [X34]),
    ("arange", lambda a: ops.arange(1, 7, 2) * a, [np.float64(0.5)]),
    ("arange_numpy_scalar", lambda a: ops.arange(np.float64(0.5), 3) + a, [np.float64(1.0)]),
    ("convert_to_tensor", lambda a: ops.convert_to_tensor(a, dtype="float32") * 2.0, [X34]),
]


def _run(fn, inputs):
    tensors = [fastnn.Variable(x, dtype=x.dtype) if x.dtype.kind == "f" else fastnn.Tensor(x) for x in inputs]
    diff = [t for t in tensors if isinstance(t, fastnn.Variable)]
    with fastnn.GradientTape() as tape:
        out = fn(*tensors)
        loss = ops.sum(out) if out.dtype.kind == "f" else None
    grads = tape.gradient(loss, diff) if (diff and loss is not None) else []
    return out, out.numpy(), [None if g is None else g.numpy() for g in grads]


def _assert_equal(got, expected):
    assert isinstance(got, np.ndarray) and got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def _param(case_id, fn, inputs):
    return pytest.param(fn, [np.asarray(x) for x in inputs], id=case_id)


@pytest.mark.parametrize("fn,inputs", [_param(*c) for c in CASES])
def test_op_on_the_wrapped_backend_equals_the_cpu_run(fn, inputs):
    with np.errstate(all="ignore"):
        _, expected, expected_grads = _run(fn, inputs)
        with use_wrapped_backend():
            out, got, got_grads = _run(fn, inputs)
            assert isinstance(out._data, WrappedBuffer)
    _assert_equal(got, expected)
    assert len(got_grads) == len(expected_grads)
    for g, e in zip(got_grads, expected_grads):
        assert (g is None) == (e is None)
        if e is not None:
            _assert_equal(g, e)


def test_where_with_only_a_condition_gives_the_indices_on_the_wrapped_backend():
    expected = [i.numpy() for i in ops.where(BOOL34)]
    with use_wrapped_backend():
        got = ops.where(fastnn.Tensor(BOOL34))
        assert all(isinstance(i._data, WrappedBuffer) for i in got)
        got = [i.numpy() for i in got]
    assert len(got) == len(expected) == 2
    for g, e in zip(got, expected):
        _assert_equal(g, e)


def test_convert_to_numpy_hands_out_a_numpy_array_on_the_wrapped_backend():
    with use_wrapped_backend():
        t = ops.exp(fastnn.Tensor(X34))
        out = ops.convert_to_numpy(t)
        assert type(out) is np.ndarray
    _assert_equal(out, np.exp(X34))


def test_bias_add_fast_path_is_taken_on_the_wrapped_backend():
    # ops.add of (..., n) + (n,) runs the bias-add kernel on every backend, so the gradients agree bit for bit.
    with use_wrapped_backend():
        y = ops.add(fastnn.Variable(X34), fastnn.Variable(ROW4))
    assert y._node.name == "bias_add"


def test_prod_gradient_over_an_empty_axis_is_empty():
    # The product of no elements is 1 and depends on no input: the gradient is an empty array of the input's shape.
    x = fastnn.Variable(np.zeros((3, 0)))
    with fastnn.GradientTape() as tape:
        y = ops.sum(ops.prod(x, axis=1, keepdims=True))
    assert float(y) == 3.0
    assert tape.gradient(y, x).shape == (3, 0)
