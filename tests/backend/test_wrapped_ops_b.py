"""The shape/indexing, activation, loss, matmul and dense ops (autograd/ops/shape.py, activation.py, loss.py,
matmul.py, nn.py) compute through fastnn.backend only: forward values and gradients on the wrapped test backend
(whose buffers refuse NumPy) equal the CPU run's exactly.

The gradients are taken of the outputs themselves (the tape seeds them with ones, which is the gradient of their
sum), so these rows need no reduction op: they prove these modules on their own. test_wrapped_backend.py runs
the whole op table (with ops.sum as the loss)."""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import backend, ops
from fastnn.autograd.ops import loss as loss_ops
from fastnn.autograd.ops import nn as nn_ops
from fastnn.testing.op_table import OP_TABLE
from fastnn.testing.wrapped_backend import WrappedBuffer, use_wrapped_backend

# op-table rows whose forward and backward only go through the modules above (rows that compose elementwise or
# reduction ops, e.g. celu or cce_probs, are covered by test_wrapped_backend.py)
ROWS = """
reshape reshape_zero transpose transpose_axes expand_dims squeeze broadcast_to concatenate stack pad pad_reflect
pad_edge tile repeat repeat_flat take take_flat getitem_basic getitem_int getitem_ellipsis getitem_int_array
getitem_2d_arrays getitem_mixed one_hot moveaxis moveaxis_multi relu relu6 sigmoid tanh elu elu_alpha selu gelu
gelu_exact silu swish leaky_relu leaky_relu_slope softplus softsign hard_sigmoid softmax softmax_axis0
log_softmax log_softmax_axis1 sparsemax sparsemax_axis0 matmul matmul_operator sparse_cce_logits cce_logits
cce_logits_axis0
""".split()
_BY_NAME = {row.name: row for row in OP_TABLE}


def _id(row, shapes):
    return row.name + "-" + "-".join("x".join(map(str, s)) or "scalar" for s in shapes)


CASES = [pytest.param(_BY_NAME[name], shapes, id=_id(_BY_NAME[name], shapes))
         for name in ROWS for shapes in _BY_NAME[name].cases()]


def _run(fn, inputs, differentiable=None):
    """fn's output (as NumPy) and the gradients of its elements' sum wrt the float inputs, on the active backend."""
    # dtype given explicitly, so the comparison does not depend on how Variable infers a host array's dtype
    tensors = [fastnn.Variable(x, dtype=x.dtype) if x.dtype.kind == "f" else fastnn.Tensor(x) for x in inputs]
    diff = [t for t in tensors if isinstance(t, fastnn.Variable)]
    if differentiable is not None:
        diff = [t for t, d in zip(tensors, differentiable) if d]
    with fastnn.GradientTape() as tape:
        out = fn(*tensors)
    grads = tape.gradient(out, diff) if diff and out.dtype.kind == "f" else []
    return out, out.numpy(), [None if g is None else g.numpy() for g in grads]


def _assert_same_on_both_backends(fn, inputs, differentiable=None):
    _, expected, expected_grads = _run(fn, inputs, differentiable)
    with use_wrapped_backend():
        out, got, got_grads = _run(fn, inputs, differentiable)
        assert isinstance(out._data, WrappedBuffer)
    np.testing.assert_array_equal(got, expected)
    assert len(got_grads) == len(expected_grads)
    for g, e in zip(got_grads, expected_grads):
        assert (g is None) == (e is None)
        if e is not None:
            np.testing.assert_array_equal(g, e)
    return expected, expected_grads


@pytest.mark.parametrize("row,shapes", CASES)
def test_op_table_row_on_the_wrapped_backend(row, shapes):
    for dtype in (np.float32, np.float64):
        inputs = row.make_inputs(shapes, dtype)
        _assert_same_on_both_backends(row.fn, inputs, None if row.grad else [False] * len(inputs))


@pytest.mark.parametrize("x_shape,activation,use_bias", [
    ((5, 4), "relu", True), ((5, 4), "linear", False), ((2, 3, 4), "relu", True), ((0, 4), "relu", True),
    ((4,), "relu", True),
])
def test_dense_on_the_wrapped_backend(x_shape, activation, use_bias):
    rng = np.random.default_rng(1)
    inputs = [rng.standard_normal(x_shape).astype(np.float32), rng.standard_normal((4, 3)).astype(np.float32)]
    if use_bias:
        inputs.append(rng.standard_normal(3).astype(np.float32))
    y, grads = _assert_same_on_both_backends(lambda *t: nn_ops.dense(*t, activation=activation), inputs)
    assert y.shape == x_shape[:-1] + (3,) and len(grads) == len(inputs)
    if activation == "relu" and y.size:
        assert (y >= 0).all() and (y == 0).any()  # the mask matters: some outputs are clipped


@pytest.mark.parametrize("s1,s2", [((3,), (3,)), ((3,), (3, 2)), ((2, 3), (3,)), ((4, 2, 3), (3, 5)),
                                   ((2, 1, 2, 3), (3, 3, 2)), ((0, 3), (3, 2)), ((3, 2), (2, 0))])
def test_matmul_shapes_on_the_wrapped_backend(s1, s2):
    rng = np.random.default_rng(2)
    inputs = [rng.standard_normal(s1), rng.standard_normal(s2)]
    y, _ = _assert_same_on_both_backends(ops.matmul, inputs)
    np.testing.assert_allclose(y, np.matmul(*inputs), rtol=1e-12, atol=1e-12)


def test_matmul_of_strided_and_mixed_dtype_operands_on_the_wrapped_backend():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((4, 6))
    b = rng.standard_normal((5, 4)).astype(np.float32)
    # a transposed operand (GEMM reads it with trans flags), a float32/float64 mix promoted to float64
    _assert_same_on_both_backends(lambda x, w: ops.matmul(ops.transpose(x), ops.transpose(w)), [a, b])
    _assert_same_on_both_backends(lambda x, w: ops.matmul(x[:, ::2], w[:3, :]), [a, b])


def test_dot_on_the_wrapped_backend():
    rng = np.random.default_rng(4)
    _assert_same_on_both_backends(ops.dot, [rng.standard_normal((2, 3)), rng.standard_normal((4, 3, 2))])


def test_sigmoid_bce_from_logits_on_the_wrapped_backend():
    rng = np.random.default_rng(5)
    target, logits = rng.uniform(0, 1, (4, 3)), rng.standard_normal((4, 3)) * 3
    _assert_same_on_both_backends(lambda t, o: ops.binary_crossentropy(t, o, from_logits=True), [target, logits])


def test_ctc_loss_on_the_wrapped_backend():
    rng = np.random.default_rng(6)
    logits = rng.standard_normal((3, 6, 4)).astype(np.float32)
    labels = np.array([[1, 2, 2], [3, 0, 0], [1, 1, 1]])
    label_length, logit_length = np.array([3, 1, 3]), np.array([6, 4, 3])  # the last one cannot fit: inf
    fn = lambda o, t, tl, ol: loss_ops.ctc_loss(t, o, tl, ol, mask_index=0)  # noqa: E731
    losses, (dlogits, *_) = _assert_same_on_both_backends(fn, [logits, labels, label_length, logit_length],
                                                          [True, False, False, False])
    assert np.isfinite(losses[:2]).all() and np.isinf(losses[2])
    assert not dlogits[2].any() and not dlogits[1, 4:].any()


def test_errors_keep_their_messages_on_the_wrapped_backend():
    with use_wrapped_backend():
        x = fastnn.Tensor(np.ones((2, 3)))
        with pytest.raises(ValueError, match="cannot reshape"):
            ops.reshape(x, (4,))
        with pytest.raises(ValueError, match="inner dimensions differ"):
            ops.matmul(x, x)
        with pytest.raises(IndexError, match="getitem"):
            x[5]
        with pytest.raises(ValueError, match="lengths out of range"):
            loss_ops.ctc_loss(np.zeros((2, 1), np.int64), np.zeros((2, 3, 4)), np.ones(2, np.int64), np.array([4, 1]))
    assert backend.name == "cpu"
