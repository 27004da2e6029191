"""Every row of fastnn.testing.op_table: forward against NumPy (float32, float64), gradients against float64
central finite differences (GradientTape and Tensor.backward() must agree exactly)."""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn.testing.gradcheck import check_gradients
from fastnn.testing.op_table import OP_TABLE


def _id(row, shapes):
    return row.name + "-" + "-".join("x".join(map(str, s)) or "scalar" for s in shapes)


CASES = [pytest.param(row, shapes, id=_id(row, shapes)) for row in OP_TABLE for shapes in row.cases()]
GRAD_CASES = [pytest.param(row, shapes, id=_id(row, shapes)) for row in OP_TABLE if row.grad for shapes in row.cases()]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("row,shapes", CASES)
def test_forward_matches_numpy(row, shapes, dtype):
    inputs = row.make_inputs(shapes, dtype)
    out = row.fn(*[fastnn.Tensor(x) for x in inputs])
    ref = np.asarray(row.ref(*[x.astype(np.float64) if x.dtype.kind == "f" else x for x in inputs]))
    assert isinstance(out, fastnn.Tensor)
    assert out.shape == ref.shape
    if row.preserves_dtype:
        assert out.dtype == dtype
    if ref.dtype.kind in "biu":
        np.testing.assert_array_equal(out.numpy(), ref)
        return
    rtol, atol = (row.rtol32, row.atol32) if dtype == np.float32 else (1e-10, 1e-12)
    np.testing.assert_allclose(np.asarray(out, np.float64), ref, rtol=rtol, atol=atol)


@pytest.mark.parametrize("row,shapes", GRAD_CASES)
def test_gradient_matches_finite_differences(row, shapes):
    inputs = row.make_inputs(shapes, np.float64)
    check_gradients(row.fn, inputs, row.differentiable(inputs), rtol=row.grad_rtol, atol=row.grad_atol)


def test_table_covers_the_issue_ops():
    required = (
        "add subtract multiply divide power negative square sqrt exp log log1p abs sign maximum minimum clip where "
        "equal greater less logical_and matmul dot sum mean max min argmax argmin var std logsumexp cumsum reshape "
        "transpose expand_dims squeeze concatenate stack split pad tile repeat take one_hot zeros_like ones_like "
        "cast relu relu6 sigmoid tanh softmax log_softmax elu selu gelu silu leaky_relu softplus softsign "
        "hard_sigmoid"
    ).split()
    required += (  # Keras 3.15's further activations (mish is keras.activations only; the others keras.ops too)
        "celu glu hard_shrink hard_silu hard_swish hard_tanh log_sigmoid mish soft_shrink sparse_plus sparse_sigmoid "
        "sparsemax squareplus tanh_shrink threshold expm1"
    ).split()
    names = {row.name for row in OP_TABLE}
    assert not [n for n in required if n not in names]
    assert {"sparse_cce_logits", "sparse_cce_probs", "cce_logits", "cce_probs", "bce_logits", "bce_probs"} <= names
