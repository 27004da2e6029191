"""Property-based fuzzing of every public op, driven by the op table (``fastnn.testing.op_table``).

Per row: random shapes (any shape for shape-agnostic unary rows, the row's own cases otherwise), float32 / float64,
inputs in every memory layout the harness knows (transposed, sliced, negative strides, padded rows, misaligned,
byte-swapped) wrapped as Tensors without copying, NaN / inf / signed zeros sprinkled in, and a backward pass for
differentiable rows whose gradient values must match float64 central differences of the row's NumPy reference. The
forward must equal the NumPy reference (NaN in the same places); bad dtypes passed to an op must raise TypeError.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastnn
from fastnn import ops
from fastnn.testing import fuzz as fz
from fastnn.testing.op_table import OP_TABLE, UNARY_SHAPES

EXAMPLES = {"ci": 20, "sanitize": 5, "long": 500}[fz.PROFILE]
OP_SPECIALS = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0])
# Rows whose NumPy reference is not defined the same way at NaN / inf (or whose kinks make inf meaningless):
# they are fuzzed over layouts and shapes with finite values only.
NO_SPECIALS = {
    "power", "pow_scalar", "rpow_scalar", "operators", "logsumexp_large", "softmax_large", "softplus_large",
    "sigmoid_large", "std", "var", "cce_probs", "bce_probs", "bce_logits", "sparse_cce_probs", "cce_logits",
    "cce_logits_axis0", "sparse_cce_logits", "getitem_bool", "equal", "argmax", "argmin", "softmax_axes",
    "logsumexp", "dot", "matmul", "matmul_operator", "dense_kept_rows",
}
BAD_DTYPES = ("U3", np.complex64, object, "datetime64[s]")


def _any_shape(row):
    return list(row.shapes) == list(UNARY_SHAPES) and tuple(row.kinds) == ("float",)


@pytest.mark.parametrize("row", OP_TABLE, ids=lambda r: r.name)
@settings(max_examples=EXAMPLES)
@given(data=st.data())
def test_op(row, data):
    fz.case(f"ops.{row.name}")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    dtype = data.draw(st.sampled_from(fz.FLOATS), label="dtype")
    if _any_shape(row):
        shapes = (data.draw(fz.shapes(max_dims=4), label="shape"),)
    else:
        shapes = data.draw(st.sampled_from(list(row.cases())), label="shapes")
    inputs = row.make_inputs(shapes, dtype, seed=int(rng.integers(2**31)))
    rate = 0.0 if row.name in NO_SPECIALS else data.draw(st.sampled_from([0.0, 0.0, 0.1]), label="special_rate")
    for i, (kind, x) in enumerate(zip(row.kinds, inputs)):
        if kind == "float" and rate and x.size:
            mask = rng.random(x.shape) < rate
            x[mask] = rng.choice(OP_SPECIALS, size=int(mask.sum())).astype(x.dtype)
    views = [fz.layout(x, data.draw(st.sampled_from(("c", "c", "c", "neg", "f", "sliced", "rows", "misaligned",
                                                     "swapped")), label=f"layout{i}"))
             for i, x in enumerate(inputs)]

    bad = data.draw(st.integers(0, 9), label="bad") == 9 and getattr(ops, getattr(row.fn, "__name__", ""), None) is row.fn
    if bad:
        args = list(views)
        i = data.draw(st.integers(0, len(args) - 1), label="bad_position")
        bad_dtype = data.draw(st.sampled_from(BAD_DTYPES), label="bad_dtype")
        args[i] = np.zeros(np.shape(args[i]), bad_dtype)
        fz.expect(lambda: row.fn(*args), None, None, must_raise=TypeError)
        return

    tensors = [fastnn.Tensor(v) for v in views]
    ref_inputs = [x.astype(np.float64) if x.dtype.kind == "f" else x for x in inputs]

    def reference():
        with np.errstate(all="ignore"):
            return np.asarray(row.ref(*ref_inputs))

    def check(out, ref):
        assert isinstance(out, fastnn.Tensor)
        assert out.shape == ref.shape
        if row.preserves_dtype:
            assert out.dtype == dtype
        if ref.dtype.kind in "biu":
            np.testing.assert_array_equal(out.numpy(), ref)
            return
        rtol, atol = (row.rtol32, row.atol32) if dtype == np.float32 else (1e-10, 1e-12)
        with np.errstate(all="ignore"):
            expected = ref.astype(out.dtype) if out.dtype.kind == "f" else ref
        fz.assert_close(out.numpy(), expected, rtol * 2, atol * 2)

    with np.errstate(all="ignore"):
        out = fz.expect(lambda: row.fn(*tensors), reference, check, errors=())

    # Backward through the same views (C++ backward kernels included): shapes, dtypes and values of the gradients.
    diff = row.differentiable(inputs) if row.grad else []
    if diff and out is not None and out.dtype.kind == "f":
        # Random output weights: a plain sum would hide errors that keep it (softmax's rows sum to 1 whatever).
        weights = rng.standard_normal(out.shape)
        with fastnn.GradientTape() as tape:
            for i in diff:
                tape.watch(tensors[i])
            loss = ops.sum(ops.multiply(row.fn(*tensors), ops.convert_to_tensor(weights.astype(out.dtype))))
        grads = tape.gradient(loss, [tensors[i] for i in diff])
        finite = rate == 0.0 and np.all(np.isfinite(out.numpy())) and all(
            np.all(np.isfinite(x)) for x in inputs if x.dtype.kind == "f")
        for i, g in zip(diff, grads):
            assert g is None or (g.shape == tensors[i].shape and g.dtype == tensors[i].dtype)
            if g is not None and finite:
                assert np.all(np.isfinite(g.numpy())) or row.name in ("sqrt", "log", "divide", "rdiv_scalar")
            if finite:
                _check_gradient_values(row, ref_inputs, i, None if g is None else g.numpy(), dtype, rng,
                                       weights.astype(out.dtype).astype(np.float64))


def _check_gradient_values(row, ref_inputs, i, grad, dtype, rng, weights):
    """The gradient of sum(weights * op(...)) with respect to input i against float64 central differences of the row's NumPy
    reference: element by element for small inputs, along two random directions for larger ones (two reference
    evaluations each, whatever the size). The inputs are the op table's, kept away from kinks."""
    x = ref_inputs[i]
    grad = np.zeros(x.shape) if grad is None else np.asarray(grad, np.float64)
    if not np.all(np.isfinite(grad)) or x.size == 0:
        return

    def objective(xi):
        args = list(ref_inputs)
        args[i] = xi
        with np.errstate(all="ignore"):
            return float(np.sum(np.asarray(row.ref(*args), np.float64) * weights))

    eps = 1e-6 * max(1.0, float(np.max(np.abs(x))))
    if x.size <= 8:
        directions = [np.eye(x.size)[j].reshape(x.shape) for j in range(x.size)]
    else:
        directions = [rng.standard_normal(x.shape) for _ in range(2)]
    # float64 gradients are exact to rounding, so the central difference's own error dominates: a tight check that
    # catches any wrong formula. float32 ones carry float32 rounding, amplified where the op cancels (a saturated
    # softmax of 1000 x): a looser relative bound and an absolute floor, still far below a wrong formula's error.
    rtol, atol = (2e-3, 1e-3) if dtype == np.float32 else (1e-5, 1e-9)
    for v in directions:
        numeric = (objective(x + eps * v) - objective(x - eps * v)) / (2 * eps)
        analytic = float(np.sum(grad * v))
        scale = float(np.sum(np.abs(grad * v))) + abs(numeric)
        assert abs(analytic - numeric) <= rtol * scale + atol * float(np.sqrt(np.sum(v * v))), (
            f"{row.name}: gradient of input {i} along a direction is {analytic}, central differences give {numeric}")


def test_every_public_op_is_fuzzed():
    """Every name in fastnn.ops that computes something appears in an op-table row (and so is fuzzed above)."""
    import inspect

    covered_sources = "\n".join(inspect.getsource(inspect.getmodule(OP_TABLE[0].__class__)).splitlines())
    public = [n for n in dir(ops) if not n.startswith("_") and callable(getattr(ops, n))]
    # Creation helpers take shapes, not arrays; they are fuzzed in test_creation_ops below.
    creation = {"zeros", "ones", "full", "arange", "convert_to_tensor", "convert_to_numpy", "full_like"}
    missing = [n for n in public if n not in creation and f"ops.{n}" not in covered_sources]
    assert not missing, f"public ops with no op-table row (add one to fastnn/testing/op_table.py): {missing}"


@settings(max_examples=EXAMPLES * 5)
@given(data=st.data())
def test_creation_ops(data):
    """Creation ops with random (also negative, huge and non-integer) shapes and dtypes: a tensor of that shape or
    a TypeError / ValueError / MemoryError, never a crash."""
    fz.case("ops.creation")
    shape = data.draw(st.one_of(fz.shapes(max_dims=3), st.tuples(st.integers(-3, 3), st.integers(-3, 3)),
                                st.just((2**40, 2**40)), st.just((2.5,)), st.just("x")), label="shape")
    dtype = data.draw(st.sampled_from(["float32", "float64", "int32", "bool", "complex64", "object", "nope"]))
    fn = data.draw(st.sampled_from(["zeros", "ones", "full"]), label="fn")
    call = (lambda: getattr(ops, fn)(shape, 1.5, dtype=dtype)) if fn == "full" else \
        (lambda: getattr(ops, fn)(shape, dtype=dtype))
    try:
        out = call()
    except (TypeError, ValueError, MemoryError):
        fz.RAISED["ops.creation"] += 1
        return
    assert out.shape == tuple(shape) and out.dtype == np.dtype(dtype)
