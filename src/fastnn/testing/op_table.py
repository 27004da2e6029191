"""The op table that drives fastnn's op tests: one row per op (or per op configuration).

Each row names the op, calls it through ``fastnn.ops``, gives a NumPy reference, the input kinds and shapes to try
(broadcasting variants, 0-D, size-1 and zero-size axes), the domain of float inputs (kept away from kinks where
the derivative jumps) and the tolerances. ``tests/autograd/test_op_table.py`` runs every row forward in float32
and float64 against the reference and checks gradients against float64 central finite differences; adding an op
to the tests means adding a row here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from fastnn import activations, ops
from fastnn.autograd.ops import nn as _nn

UNARY_SHAPES = [(3, 4), (), (1,), (1, 1), (0, 3), (2, 1, 3)]
BINARY_SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (2, 3)), ((0, 3), (3,)), ((1, 1), (1,))]
REDUCE_SHAPES = [(3, 4), (2, 3, 4), (1, 1), (5,)]
ROW_SHAPES = [(3, 5), (2, 2, 4), (1, 1), (4, 1), (0, 3)]


@dataclass
class OpSpec:
    """One row of the op table.

    Attributes:
        name: test id.
        fn: calls the op; takes one argument per input.
        ref: NumPy reference over float64 arrays (same arguments).
        shapes: a list of shape tuples, one tuple of shapes (one per input) per case; a single shape stands for a
            one-input op.
        kinds: per input: "float" (differentiable, drawn from ``domain``), "prob" (positive, rows summing to ~1),
            "unit" (0..1), "bool", or "int:N" (integers in [0, N)).
        domain: (low, high) of float inputs.
        kinks: points float inputs keep 0.05 away from (where the derivative jumps).
        grad: whether to gradient-check (the float inputs).
        rtol32, atol32: forward tolerances in float32 (float64 uses 1e-10 / 1e-12).
        grad_rtol, grad_atol: gradient-check tolerances.
        preserves_dtype: the output has the float inputs' dtype.
    """

    name: str
    fn: Callable
    ref: Callable
    shapes: Sequence = field(default_factory=lambda: list(UNARY_SHAPES))
    kinds: Sequence[str] = ("float",)
    domain: tuple = (-2.0, 2.0)
    kinks: Sequence[float] = ()
    grad: bool = True
    rtol32: float = 1e-5
    atol32: float = 1e-6
    grad_rtol: float = 1e-4
    grad_atol: float = 1e-6
    preserves_dtype: bool = True

    def cases(self):
        for s in self.shapes:
            yield s if (isinstance(s, tuple) and s and isinstance(s[0], tuple)) or len(self.kinds) > 1 else (s,)

    def make_inputs(self, shapes, dtype, seed=0):
        rng = np.random.default_rng(seed)
        out = []
        for kind, shape in zip(self.kinds, shapes):
            if kind == "bool":
                out.append(rng.random(shape) < 0.5)
            elif kind.startswith("int:"):
                out.append(rng.integers(0, int(kind[4:]), size=shape).astype(np.int64))
            elif kind == "unit":
                out.append(rng.uniform(0.05, 0.95, size=shape).astype(dtype))
            elif kind == "prob":
                p = rng.uniform(0.1, 1.0, size=shape)
                if p.ndim:
                    p = p / np.maximum(p.sum(axis=-1, keepdims=True), 1e-12)
                out.append(p.astype(dtype))
            else:
                x = rng.uniform(*self.domain, size=shape)
                for k in self.kinks:
                    close = np.abs(x - k) < 0.05
                    x = np.where(close, k + np.where(x >= k, 0.1, -0.1), x)
                out.append(x.astype(dtype))
        return out

    def differentiable(self, inputs):
        return [i for i, (k, x) in enumerate(zip(self.kinds, inputs)) if k in ("float", "unit", "prob")]


# -- NumPy references -------------------------------------------------------------------------------------------
_erf = np.vectorize(math.erf, otypes=[np.float64])
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _sigmoid(x):
    return np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))


def _log_softmax(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    return x - m - np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))


def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def _ref_sparsemax(x, axis=-1):
    """The simplex projection by bisection on tau (sum(max(z - tau, 0)) = 1): independent of the sort-based op."""
    z = np.moveaxis(np.asarray(x, np.float64), axis, -1)
    if z.size == 0:
        return np.moveaxis(z, -1, axis)
    # -inf entries take no part (probability 0); a NaN or +inf makes the row NaN; an all -inf row is NaN too.
    poisoned = np.any(np.isnan(z) | (z == np.inf), axis=-1, keepdims=True) | np.all(z == -np.inf, -1, keepdims=True)
    finite_min = np.min(np.where(np.isfinite(z), z, np.inf), axis=-1, keepdims=True)
    z = np.where(z == -np.inf, np.where(np.isfinite(finite_min), finite_min, 0.0) - 2.0, z)
    z = np.where(poisoned, 0.0, z)
    lo = z.min(axis=-1, keepdims=True) - 1.0  # the sum is >= 1 here
    hi = z.max(axis=-1, keepdims=True)        # and 0 here
    for _ in range(200):
        mid = (lo + hi) / 2
        over = np.maximum(z - mid, 0).sum(axis=-1, keepdims=True) > 1
        lo, hi = np.where(over, mid, lo), np.where(over, hi, mid)
    return np.moveaxis(np.where(poisoned, np.nan, np.maximum(z - (lo + hi) / 2, 0)), -1, axis)


def _ref_glu(x, axis=-1):
    a, b = np.split(x, 2, axis=axis)
    return a * _sigmoid(b)


def _ref_soft_shrink(x, threshold):
    shrunk = np.sign(x) * np.maximum(np.abs(x) - threshold, 0)
    return np.where(np.isnan(x), 0.0, shrunk)  # Keras: NaN fails both comparisons and becomes 0


def _ref_sparse_plus(x):
    return np.where(x <= -1, 0.0, np.where(x < 1, (x + 1) ** 2 / 4, x))


def _ref_sparse_xent(labels, logits):
    if labels.ndim == logits.ndim:
        labels = labels[..., 0]
    logp = _log_softmax(logits)
    return -np.take_along_axis(logp, labels[..., None], axis=-1)[..., 0]


def _ref_cce_probs(target, output):
    out = output / output.sum(axis=-1, keepdims=True)
    return -np.sum(target * np.log(np.clip(out, 1e-7, 1 - 1e-7)), axis=-1)


def _ref_bce_probs(target, output):
    p = np.clip(output, 1e-7, 1 - 1e-7)
    return -(target * np.log(p) + (1 - target) * np.log(1 - p))


def _ref_bce_logits(target, x):
    return np.maximum(x, 0) - x * target + np.log1p(np.exp(-np.abs(x)))


def _ref_pad_reflect(x):
    return np.pad(x, ((1, 2), (2, 1)), mode="reflect")


F, FF, FFF = ("float",), ("float", "float"), ("float", "float", "float")

OP_TABLE = [
    # -- elementwise arithmetic (broadcasting) ------------------------------------------------------------------
    OpSpec("add", ops.add, np.add, BINARY_SHAPES, FF),
    OpSpec("subtract", ops.subtract, np.subtract, BINARY_SHAPES, FF),
    OpSpec("multiply", ops.multiply, np.multiply, BINARY_SHAPES, FF),
    OpSpec("divide", ops.divide, np.divide, BINARY_SHAPES, FF, domain=(0.5, 2.0)),
    OpSpec("power", ops.power, np.power, BINARY_SHAPES, FF, domain=(0.5, 2.0), rtol32=3e-5),
    OpSpec("maximum", ops.maximum, np.maximum, BINARY_SHAPES, FF),
    OpSpec("minimum", ops.minimum, np.minimum, BINARY_SHAPES, FF),
    OpSpec("add_scalar", lambda x: ops.add(x, 2.5), lambda x: x + 2.5),
    OpSpec("rsub_scalar", lambda x: 1.5 - x, lambda x: 1.5 - x),
    OpSpec("rdiv_scalar", lambda x: 2.0 / x, lambda x: 2.0 / x, domain=(0.5, 2.0)),
    OpSpec("pow_scalar", lambda x: x**3, lambda x: x**3),
    OpSpec("rpow_scalar", lambda x: 2.0**x, lambda x: 2.0**x),
    OpSpec("operators", lambda a, b: -(a * b - a / b + a**2) + abs(b),
           lambda a, b: -(a * b - a / b + a**2) + np.abs(b), BINARY_SHAPES[:3], FF, domain=(0.5, 2.0)),
    OpSpec("bias_add", ops.bias_add, np.add, [((3, 4), (4,)), ((2, 3, 5), (5,)), ((1, 1), (1,)), ((0, 3), (3,))], FF),
    OpSpec("negative", ops.negative, np.negative),
    OpSpec("square", ops.square, np.square),
    OpSpec("sqrt", ops.sqrt, np.sqrt, domain=(0.2, 3.0)),
    OpSpec("exp", ops.exp, np.exp),
    OpSpec("log", ops.log, np.log, domain=(0.2, 3.0)),
    OpSpec("log1p", ops.log1p, np.log1p, domain=(-0.5, 3.0)),
    OpSpec("abs", ops.abs, np.abs, kinks=(0.0,)),
    OpSpec("sign", ops.sign, np.sign, kinks=(0.0,)),
    OpSpec("clip", lambda x: ops.clip(x, -0.5, 0.7), lambda x: np.clip(x, -0.5, 0.7), kinks=(-0.5, 0.7)),
    OpSpec("where", ops.where, np.where, [((3, 4), (3, 4), (3, 4)), ((3, 4), (4,), (3, 1)), ((0, 2), (2,), ()),
                                          ((1,), (1, 1), (1,))], ("bool", "float", "float")),
    # -- comparisons and logic (no gradient) ---------------------------------------------------------------------
    OpSpec("equal", lambda a, b: ops.equal(a, ops.where(a > 0, a, b)), lambda a, b: np.equal(a, np.where(a > 0, a, b)),
           BINARY_SHAPES, FF, grad=False, preserves_dtype=False),
    OpSpec("greater", ops.greater, np.greater, BINARY_SHAPES, FF, grad=False, preserves_dtype=False),
    OpSpec("less", ops.less, np.less, BINARY_SHAPES, FF, grad=False, preserves_dtype=False),
    OpSpec("logical_and", ops.logical_and, np.logical_and, [((3, 4), (4,)), ((0,), (1,))], ("bool", "bool"),
           grad=False, preserves_dtype=False),
    # -- matrix products -----------------------------------------------------------------------------------------
    OpSpec("matmul", ops.matmul, np.matmul,
           [((3, 4), (4, 5)), ((4,), (4, 2)), ((3, 4), (4,)), ((4,), (4,)), ((2, 3, 4), (4, 2)),
            ((2, 1, 3, 4), (5, 4, 2)), ((0, 3), (3, 2)), ((2, 0), (0, 3)), ((1, 1), (1, 1))], FF, rtol32=1e-4,
           atol32=1e-5),
    OpSpec("matmul_operator", lambda a, b: a @ b, lambda a, b: a @ b, [((2, 3), (3, 4))], FF, rtol32=1e-4),
    # A masked recurrent layer's input projection: the rows whose keep is False are +0 and get no gradient.
    OpSpec("dense_kept_rows", lambda x, w, b, keep: _nn.dense_kept_rows(x, w, b, keep),
           lambda x, w, b, keep: np.where(np.asarray(keep)[..., None], x @ w + b, 0.0),
           [((3, 4, 5), (5, 6), (6,), (3, 4)), ((1, 1, 1), (1, 1), (1,), (1, 1)), ((2, 13, 7), (7, 33), (33,), (2, 13)),
            ((6, 3), (3, 2), (2,), (6,))], ("float", "float", "float", "bool"), rtol32=1e-4, atol32=1e-5),
    OpSpec("dot", ops.dot, np.dot, [((3, 4), (4, 5)), ((4,), (4,)), ((2, 3, 4), (4,)), ((2, 3), (4, 3, 2)),
                                    ((), (2, 3)), ((0, 2), (2, 3))], FF, rtol32=1e-4, atol32=1e-5),
    # -- reductions ----------------------------------------------------------------------------------------------
    OpSpec("sum", ops.sum, np.sum, REDUCE_SHAPES + [(0, 3), ()]),
    OpSpec("sum_axis", lambda x: ops.sum(x, axis=-1, keepdims=True), lambda x: np.sum(x, axis=-1, keepdims=True),
           REDUCE_SHAPES + [(0, 3)]),
    OpSpec("sum_axes", lambda x: ops.sum(x, axis=(0, 1)), lambda x: np.sum(x, axis=(0, 1)), [(3, 4), (2, 3, 4)]),
    OpSpec("mean", lambda x: ops.mean(x, axis=0), lambda x: np.mean(x, axis=0), REDUCE_SHAPES + [(3, 0)]),
    OpSpec("mean_all", ops.mean, np.mean, REDUCE_SHAPES),
    OpSpec("max", lambda x: ops.max(x, axis=-1), lambda x: np.max(x, axis=-1), REDUCE_SHAPES + [(0, 3)]),
    OpSpec("max_all", ops.max, np.max, REDUCE_SHAPES),
    OpSpec("min", lambda x: ops.min(x, axis=0, keepdims=True), lambda x: np.min(x, axis=0, keepdims=True),
           REDUCE_SHAPES + [(3, 0)]),
    OpSpec("argmax", lambda x: ops.argmax(x, axis=-1), lambda x: np.argmax(x, axis=-1), REDUCE_SHAPES, grad=False,
           preserves_dtype=False),
    OpSpec("argmin", ops.argmin, np.argmin, REDUCE_SHAPES, grad=False, preserves_dtype=False),
    OpSpec("var", lambda x: ops.var(x, axis=-1), lambda x: np.var(x, axis=-1), REDUCE_SHAPES),
    OpSpec("std", ops.std, np.std, [(3, 4), (2, 3, 4), (1, 3), (5,)]),  # std' is singular where std is 0
    # moments: one node with two outputs; the rows take each output alone and a combination of both.
    OpSpec("moments_mean", lambda x: ops.moments(x, [0])[0], lambda x: np.mean(x, axis=0), REDUCE_SHAPES),
    OpSpec("moments_variance", lambda x: ops.moments(x, -1, keepdims=True)[1],
           lambda x: np.var(x, axis=-1, keepdims=True), REDUCE_SHAPES),
    OpSpec("moments", lambda x: (lambda m, v: m * 0.5 + v)(*ops.moments(x, [0])),
           lambda x: np.mean(x, axis=0) * 0.5 + np.var(x, axis=0), REDUCE_SHAPES),
    OpSpec("logsumexp", lambda x: ops.logsumexp(x, axis=-1), lambda x: np.log(np.sum(np.exp(x), axis=-1)),
           REDUCE_SHAPES + [(0, 3)]),
    OpSpec("logsumexp_large", lambda x: ops.logsumexp(x * 1000.0),
           lambda x: np.max(x * 1000) + np.log(np.sum(np.exp(x * 1000 - np.max(x * 1000)))), REDUCE_SHAPES,
           grad_rtol=1e-3, grad_atol=1e-4),
    OpSpec("cumsum", lambda x: ops.cumsum(x, axis=0), lambda x: np.cumsum(x, axis=0), REDUCE_SHAPES + [(0, 3)]),
    OpSpec("cumsum_flat", ops.cumsum, np.cumsum, REDUCE_SHAPES + [()]),
    OpSpec("prod", lambda x: ops.prod(x, axis=-1), lambda x: np.prod(x, axis=-1), REDUCE_SHAPES + [(0, 3)]),
    # -- shapes and indexing -------------------------------------------------------------------------------------
    OpSpec("reshape", lambda x: ops.reshape(x, (-1,)), lambda x: np.reshape(x, (-1,)), [(3, 4), (), (1, 1), (2, 1, 3)]),
    OpSpec("reshape_zero", lambda x: ops.reshape(x, (3, 0)), lambda x: np.reshape(x, (3, 0)), [(0, 3)]),
    OpSpec("transpose", ops.transpose, np.transpose, UNARY_SHAPES),
    OpSpec("transpose_axes", lambda x: ops.transpose(x, (1, 2, 0)), lambda x: np.transpose(x, (1, 2, 0)),
           [(2, 1, 3), (2, 3, 4), (0, 2, 1)]),
    OpSpec("expand_dims", lambda x: ops.expand_dims(x, 1), lambda x: np.expand_dims(x, 1), [(3, 4), (1,), (0, 3)]),
    OpSpec("squeeze", ops.squeeze, np.squeeze, [(3, 1, 4), (1, 1), (1,), (0, 1)]),
    OpSpec("broadcast_to", lambda x: ops.broadcast_to(x, (2, 3, 4)), lambda x: np.broadcast_to(x, (2, 3, 4)),
           [(3, 4), (4,), (1, 1), ()]),
    OpSpec("concatenate", lambda a, b: ops.concatenate([a, b], axis=-1), lambda a, b: np.concatenate([a, b], axis=-1),
           [((3, 4), (3, 2)), ((1, 1), (1, 1)), ((0, 2), (0, 3)), ((2, 0), (2, 3))], FF),
    OpSpec("stack", lambda a, b: ops.stack([a, b], axis=1), lambda a, b: np.stack([a, b], axis=1),
           [((3, 4), (3, 4)), ((1,), (1,)), ((0, 2), (0, 2))], FF),
    OpSpec("split", lambda x: ops.concatenate(ops.split(x, 2, axis=1)[::-1], axis=1),
           lambda x: np.concatenate(np.split(x, 2, axis=1)[::-1], axis=1), [(3, 4), (1, 2), (0, 2)]),
    OpSpec("split_indices", lambda x: ops.split(x, [1, 3])[1] * 2.0, lambda x: np.split(x, [1, 3])[1] * 2.0,
           [(5, 2), (4,), (3, 1)]),
    OpSpec("pad", lambda x: ops.pad(x, ((1, 2), (0, 1)), constant_values=0.5),
           lambda x: np.pad(x, ((1, 2), (0, 1)), constant_values=0.5), [(3, 4), (1, 1), (0, 2)]),
    OpSpec("pad_reflect", lambda x: ops.pad(x, ((1, 2), (2, 1)), mode="reflect"), _ref_pad_reflect, [(3, 4), (4, 3)]),
    OpSpec("pad_edge", lambda x: ops.pad(x, 2, mode="edge"), lambda x: np.pad(x, 2, mode="edge"), [(3, 4), (1,), (1, 1)]),
    OpSpec("tile", lambda x: ops.tile(x, (2, 3)), lambda x: np.tile(x, (2, 3)), [(3, 4), (2,), (), (1, 1), (0, 2)]),
    OpSpec("repeat", lambda x: ops.repeat(x, 2, axis=0), lambda x: np.repeat(x, 2, axis=0), [(3, 4), (1,), (0, 2)]),
    OpSpec("repeat_flat", lambda x: ops.repeat(x, 3), lambda x: np.repeat(x, 3), [(3, 4), (), (0,)]),
    OpSpec("take", lambda x: ops.take(x, np.array([2, 0, 2, -1]), axis=0),
           lambda x: np.take(x, np.array([2, 0, 2, -1]), axis=0), [(3, 4), (3,), (3, 0)]),
    OpSpec("take_flat", lambda x: ops.take(x, [[0, 1], [1, 1]]), lambda x: np.take(x, [[0, 1], [1, 1]]),
           [(3, 4), (2,), (1, 2)]),
    OpSpec("getitem_basic", lambda x: x[1:, None, ::2], lambda x: x[1:, None, ::2], [(3, 4), (2, 5), (1, 1), (0, 3)]),
    OpSpec("getitem_int", lambda x: x[-1], lambda x: x[-1], [(3, 4), (1,), (2, 0)]),
    OpSpec("getitem_ellipsis", lambda x: x[..., 0], lambda x: x[..., 0], [(3, 4), (2, 1, 3)]),
    OpSpec("getitem_int_array", lambda x: x[[0, 2, 0, 0]], lambda x: x[[0, 2, 0, 0]], [(3, 4), (3,), (3, 0)]),
    OpSpec("getitem_2d_arrays", lambda x: x[np.array([0, 2, 2]), np.array([1, 1, 0])],
           lambda x: x[np.array([0, 2, 2]), np.array([1, 1, 0])], [(3, 4), (3, 2)]),
    OpSpec("getitem_bool", lambda x: x[x > 0.3], lambda x: x[x > 0.3], [(3, 4), (1,), (0, 3)], kinks=(0.3,)),
    OpSpec("getitem_mixed", lambda x: x[1:, [0, 0, 2]], lambda x: x[1:, [0, 0, 2]], [(3, 4), (2, 3)]),
    OpSpec("one_hot", lambda i: ops.one_hot(i, 4), lambda i: np.eye(4)[i], [(5,), (2, 3), (0,)], ("int:4",),
           grad=False, preserves_dtype=False),
    OpSpec("cast", lambda x: ops.cast(x, "float64") * 2.0, lambda x: x.astype(np.float64) * 2.0, UNARY_SHAPES,
           preserves_dtype=False),
    OpSpec("zeros_like", ops.zeros_like, np.zeros_like, UNARY_SHAPES, grad=False),
    OpSpec("ones_like", ops.ones_like, np.ones_like, UNARY_SHAPES, grad=False),
    # -- activations (C++ kernels) -------------------------------------------------------------------------------
    OpSpec("relu", ops.relu, lambda x: np.maximum(x, 0), kinks=(0.0,)),
    OpSpec("relu6", ops.relu6, lambda x: np.clip(x, 0, 6), domain=(-2.0, 8.0), kinks=(0.0, 6.0)),
    OpSpec("sigmoid", ops.sigmoid, _sigmoid, domain=(-6.0, 6.0)),
    OpSpec("tanh", ops.tanh, np.tanh, domain=(-3.0, 3.0)),
    OpSpec("elu", ops.elu, lambda x: np.where(x > 0, x, np.expm1(x)), kinks=(0.0,)),
    OpSpec("elu_alpha", lambda x: ops.elu(x, alpha=0.5), lambda x: np.where(x > 0, x, 0.5 * np.expm1(x)), kinks=(0.0,)),
    OpSpec("selu", ops.selu, lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(x)), kinks=(0.0,)),
    OpSpec("gelu", ops.gelu, _gelu_tanh, domain=(-4.0, 4.0)),
    OpSpec("gelu_exact", lambda x: ops.gelu(x, approximate=False), lambda x: 0.5 * x * (1 + _erf(x / math.sqrt(2))),
           domain=(-4.0, 4.0)),
    OpSpec("silu", ops.silu, lambda x: x * _sigmoid(x), domain=(-6.0, 6.0)),
    OpSpec("leaky_relu", ops.leaky_relu, lambda x: np.where(x >= 0, x, 0.2 * x), kinks=(0.0,)),
    OpSpec("leaky_relu_slope", lambda x: ops.leaky_relu(x, negative_slope=0.01), lambda x: np.where(x >= 0, x, 0.01 * x),
           kinks=(0.0,)),
    OpSpec("softplus", ops.softplus, lambda x: np.logaddexp(0, x), domain=(-6.0, 6.0)),
    OpSpec("softplus_large", lambda x: ops.softplus(x * 100.0), lambda x: np.logaddexp(0, x * 100.0), kinks=(0.0,),
           grad_rtol=1e-3),
    OpSpec("softsign", ops.softsign, lambda x: x / (1 + np.abs(x)), kinks=(0.0,)),
    OpSpec("hard_sigmoid", ops.hard_sigmoid, lambda x: np.clip(x + 3, 0, 6) / 6, domain=(-4.0, 4.0), kinks=(-3.0, 3.0)),
    OpSpec("sigmoid_large", lambda x: ops.sigmoid(x * 100.0), lambda x: _sigmoid(x * 100.0), kinks=(0.0,),
           grad_rtol=1e-3),
    OpSpec("softmax", ops.softmax, lambda x: np.exp(_log_softmax(x)), ROW_SHAPES),
    OpSpec("softmax_axis0", lambda x: ops.softmax(x, axis=0), lambda x: np.exp(_log_softmax(x, 0)),
           [(3, 5), (2, 2, 4), (1, 1), (4, 1), (3, 0)]),
    OpSpec("softmax_axes", lambda x: ops.softmax(x, axis=(0, 1)), lambda x: np.exp(_log_softmax(x, (0, 1))),
           [(3, 5), (2, 2, 4)]),
    OpSpec("softmax_large", lambda x: ops.softmax(x * 1000.0), lambda x: np.exp(_log_softmax(x * 1000.0)), ROW_SHAPES,
           grad_atol=1e-5, grad_rtol=1e-3),
    OpSpec("log_softmax", ops.log_softmax, _log_softmax, ROW_SHAPES),
    OpSpec("log_softmax_axis1", lambda x: ops.log_softmax(x, axis=1), lambda x: _log_softmax(x, 1),
           [(2, 3, 4), (3, 5)]),
    # -- Keras 3's further activations (composites, and sparsemax's own op) ------------------------------------
    OpSpec("celu", ops.celu, lambda x: np.where(x > 0, x, np.expm1(x)), kinks=(0.0,)),
    OpSpec("celu_alpha", lambda x: ops.celu(x, alpha=0.5), lambda x: np.where(x > 0, x, 0.5 * np.expm1(x / 0.5)),
           kinks=(0.0,)),
    OpSpec("expm1", ops.expm1, np.expm1),
    OpSpec("glu", ops.glu, _ref_glu, [(3, 4), (2, 2, 6), (1, 2), (0, 4)], domain=(-4.0, 4.0)),
    OpSpec("glu_axis0", lambda x: ops.glu(x, axis=0), lambda x: _ref_glu(x, 0), [(4, 3), (2, 1)]),
    OpSpec("hard_shrink", ops.hard_shrink, lambda x: np.where(np.abs(x) > 0.5, x, 0.0), kinks=(-0.5, 0.5)),
    OpSpec("hard_shrink_threshold", lambda x: ops.hard_shrink(x, threshold=1.2),
           lambda x: np.where(np.abs(x) > 1.2, x, 0.0), kinks=(-1.2, 1.2)),
    OpSpec("hard_silu", ops.hard_silu, lambda x: x * np.clip(x + 3, 0, 6) / 6, domain=(-4.0, 4.0),
           kinks=(-3.0, 3.0)),
    OpSpec("hard_swish", ops.hard_swish, lambda x: x * np.minimum(np.maximum(x + 3, 0), 6) / 6, domain=(-4.0, 4.0),
           kinks=(-3.0, 3.0)),
    OpSpec("hard_tanh", ops.hard_tanh, lambda x: np.clip(x, -1, 1), kinks=(-1.0, 1.0)),
    OpSpec("log_sigmoid", ops.log_sigmoid, lambda x: -np.logaddexp(0, -x), domain=(-6.0, 6.0)),
    OpSpec("log_sigmoid_large", lambda x: ops.log_sigmoid(x * 100.0), lambda x: -np.logaddexp(0, -100.0 * x),
           kinks=(0.0,), grad_rtol=1e-3),
    OpSpec("mish", lambda x: activations.mish(x), lambda x: x * np.tanh(np.log1p(np.exp(x))), domain=(-6.0, 6.0)),
    OpSpec("soft_shrink", ops.soft_shrink, lambda x: _ref_soft_shrink(x, 0.5), kinks=(-0.5, 0.5)),
    OpSpec("soft_shrink_threshold", lambda x: ops.soft_shrink(x, threshold=0.25), lambda x: _ref_soft_shrink(x, 0.25),
           kinks=(-0.25, 0.25)),
    OpSpec("sparse_plus", ops.sparse_plus, _ref_sparse_plus, kinks=(-1.0, 1.0)),
    OpSpec("sparse_sigmoid", ops.sparse_sigmoid, lambda x: np.clip((x + 1) / 2, 0, 1), kinks=(-1.0, 1.0)),
    OpSpec("sparsemax", ops.sparsemax, _ref_sparsemax, ROW_SHAPES, domain=(-1.5, 1.5)),
    OpSpec("sparsemax_axis0", lambda x: ops.sparsemax(x, axis=0), lambda x: _ref_sparsemax(x, 0),
           [(5, 3), (2, 4, 3), (1, 1)], domain=(-1.5, 1.5)),
    OpSpec("squareplus", ops.squareplus, lambda x: (x + np.sqrt(x * x + 4)) / 2),
    OpSpec("squareplus_b", lambda x: ops.squareplus(x, b=0.5), lambda x: (x + np.sqrt(x * x + 0.5)) / 2),
    OpSpec("tanh_shrink", ops.tanh_shrink, lambda x: x - np.tanh(x)),
    OpSpec("threshold", lambda x: ops.threshold(x, 0.3, -2.0), lambda x: np.where(x > 0.3, x, -2.0), kinks=(0.3,)),
    # -- crossentropies ------------------------------------------------------------------------------------------
    OpSpec("sparse_cce_logits", lambda t, o: ops.sparse_categorical_crossentropy(t, o, from_logits=True),
           _ref_sparse_xent, [((4,), (4, 3)), ((2, 3), (2, 3, 5)), ((1,), (1, 3)), ((0,), (0, 3))], ("int:3", "float")),
    OpSpec("sparse_cce_probs", lambda t, o: ops.sparse_categorical_crossentropy(t, o),
           lambda t, o: _ref_sparse_xent(t, np.log(np.clip(o, 1e-7, 1 - 1e-7))),
           [((4,), (4, 3)), ((2, 1), (2, 3)), ((0,), (0, 3))], ("int:3", "prob")),
    OpSpec("cce_logits", lambda t, o: ops.categorical_crossentropy(t, o, from_logits=True),
           lambda t, o: -np.sum(t * _log_softmax(o), axis=-1), [((4, 3), (4, 3)), ((2, 2, 5), (2, 2, 5)),
                                                               ((1, 1), (1, 1)), ((0, 3), (0, 3))], ("prob", "float")),
    OpSpec("cce_logits_axis0", lambda t, o: ops.categorical_crossentropy(t, o, from_logits=True, axis=0),
           lambda t, o: -np.sum(t * _log_softmax(o, 0), axis=0), [((3, 4), (3, 4))], ("unit", "float")),
    OpSpec("cce_probs", ops.categorical_crossentropy, _ref_cce_probs, [((4, 3), (4, 3)), ((1, 1), (1, 1)),
                                                                       ((0, 3), (0, 3))], ("prob", "prob"),
           rtol32=1e-4),
    OpSpec("bce_probs", ops.binary_crossentropy, _ref_bce_probs, [((4, 3), (4, 3)), ((), ()), ((0, 2), (0, 2))],
           ("unit", "unit"), rtol32=1e-4),
    OpSpec("bce_logits", lambda t, o: ops.binary_crossentropy(t, o, from_logits=True), _ref_bce_logits,
           [((4, 3), (4, 3)), ((1,), (1,)), ((0, 2), (0, 2))], ("unit", "float"), domain=(-5.0, 5.0)),
    # -- aliases and the remaining comparisons / logic / shape ops (so every public op has a row) -----------------
    OpSpec("absolute", ops.absolute, np.abs, kinks=(0.0,)),
    OpSpec("swish", ops.swish, lambda x: x * _sigmoid(x), domain=(-6.0, 6.0)),
    OpSpec("amax", lambda x: ops.amax(x, axis=-1), lambda x: np.max(x, axis=-1), REDUCE_SHAPES),
    OpSpec("amin", lambda x: ops.amin(x, axis=0), lambda x: np.min(x, axis=0), REDUCE_SHAPES),
    OpSpec("greater_equal", ops.greater_equal, np.greater_equal, BINARY_SHAPES, FF, grad=False,
           preserves_dtype=False),
    OpSpec("less_equal", ops.less_equal, np.less_equal, BINARY_SHAPES, FF, grad=False, preserves_dtype=False),
    OpSpec("not_equal", lambda a, b: ops.not_equal(a, ops.where(a > 0, a, b)),
           lambda a, b: np.not_equal(a, np.where(a > 0, a, b)), BINARY_SHAPES, FF, grad=False, preserves_dtype=False),
    OpSpec("logical_or", ops.logical_or, np.logical_or, [((3, 4), (4,)), ((0,), (1,))], ("bool", "bool"),
           grad=False, preserves_dtype=False),
    OpSpec("logical_not", ops.logical_not, np.logical_not, [(3, 4), (), (0, 2)], ("bool",), grad=False,
           preserves_dtype=False),
    OpSpec("moveaxis", lambda x: ops.moveaxis(x, 0, -1), lambda x: np.moveaxis(x, 0, -1),
           [(2, 3, 4), (1, 2), (0, 3), (5,)]),
    OpSpec("moveaxis_multi", lambda x: ops.moveaxis(x, (0, 2), (3, 0)), lambda x: np.moveaxis(x, (0, 2), (3, 0)),
           [(2, 3, 4, 5), (1, 0, 2, 3)]),
    OpSpec("stop_gradient", lambda x: ops.stop_gradient(x) * 2.0, lambda x: x * 2.0, grad=False),
    OpSpec("shape", lambda x: ops.ones(ops.shape(x)) * 3.0, lambda x: np.ones(np.shape(x)) * 3.0, grad=False,
           preserves_dtype=False),
    # -- a user-written activation -------------------------------------------------------------------------------
    OpSpec("user_square_activation", lambda x: (lambda f: f(x))(lambda v: v**2), np.square),
]


# --- added by h-convlayers: convolutions (NumPy references written as explicit sums over the kernel taps) -------
def _same_pads(size, k, s, d):
    span = (k - 1) * d + 1
    out = -(-size // s)
    total = max((out - 1) * s + span - size, 0)
    return total // 2, total - total // 2


def _ref_conv2d(x, w, strides=(1, 1), padding="valid", dilation=(1, 1), groups=None):
    """NHWC x (N, H, W, C), w (KH, KW, C // groups, F); padding "valid", "same" or ((t, b), (l, r))."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    kh, kw, cg, f = w.shape
    groups = x.shape[-1] // cg if groups is None else groups
    if padding == "valid":
        pads = ((0, 0), (0, 0))
    elif padding == "same":
        pads = tuple(_same_pads(x.shape[1 + i], w.shape[i], strides[i], dilation[i]) for i in range(2))
    else:
        pads = padding
    xp = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    oh = (xp.shape[1] - (kh - 1) * dilation[0] - 1) // strides[0] + 1
    ow = (xp.shape[2] - (kw - 1) * dilation[1] - 1) // strides[1] + 1
    y = np.zeros((x.shape[0], oh, ow, f))
    fg = f // groups
    for g in range(groups):
        for i in range(kh):
            for j in range(kw):
                r0, c0 = i * dilation[0], j * dilation[1]
                patch = xp[:, r0:r0 + (oh - 1) * strides[0] + 1:strides[0],
                           c0:c0 + (ow - 1) * strides[1] + 1:strides[1], g * cg:(g + 1) * cg]
                y[..., g * fg:(g + 1) * fg] += patch @ w[i, j, :, g * fg:(g + 1) * fg]
    return y


def _ref_depthwise2d(x, w, strides=(1, 1), padding="valid", dilation=(1, 1)):
    kh, kw, c, m = w.shape
    # a grouped convolution with C groups whose kernel (KH, KW, 1, C*M) keeps output c*M + m from channel c
    return _ref_conv2d(x, np.reshape(w, (kh, kw, 1, c * m)), strides, padding, dilation, groups=c)


def _ref_conv_transpose2d(x, w, strides=(1, 1), padding="valid", output_padding=None, dilation=(1, 1)):
    """Scatter form: every input pixel adds its kernel-weighted copy at stride s; then the padding is cropped."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    kh, kw, cout, cin = w.shape
    n, h, wd, _ = x.shape
    sizes = []
    for size, k, s, d, i in ((h, kh, strides[0], dilation[0], 0), (wd, kw, strides[1], dilation[1], 1)):
        span = (k - 1) * d + 1
        op = None if output_padding is None else output_padding[i]
        if padding == "valid":
            out = (size - 1) * s + span + (max(span, s) - span if op is None else op)
            sizes.append((out, 0))
        else:
            out = size * s if op is None else (size - 1) * s + span % 2 + op
            sizes.append((out, _same_pads(out, k, s, d)[0]))
    (oh, ph), (ow, pw) = sizes
    full = np.zeros((n, (h - 1) * strides[0] + (kh - 1) * dilation[0] + 1 + oh,
                     (wd - 1) * strides[1] + (kw - 1) * dilation[1] + 1 + ow, cout))
    for i in range(kh):
        for j in range(kw):
            r0, c0 = i * dilation[0], j * dilation[1]
            full[:, r0:r0 + (h - 1) * strides[0] + 1:strides[0], c0:c0 + (wd - 1) * strides[1] + 1:strides[1]] += (
                x @ w[i, j].T)
    return full[:, ph:ph + oh, pw:pw + ow]


def _nchw(f):
    """A channels_last reference run on channels_first 4-D data."""
    return lambda x, *a, **k: np.moveaxis(f(np.moveaxis(x, 1, -1), *a, **k), -1, 1)


def _ref_conv1d(x, w, stride=1, padding="valid", dilation=1):
    return _ref_conv2d(x[:, None], w[None], (1, stride), padding, (1, dilation))[:, 0]


_CONV_ROWS = [
    OpSpec("conv", lambda x, w: ops.conv(x, w), _ref_conv2d, [((2, 5, 6, 3), (3, 2, 3, 4)), ((1, 3, 3, 1), (3, 3, 1, 2)),
                                                             ((0, 4, 4, 2), (2, 2, 2, 3))], FF),
    OpSpec("conv_same_strided", lambda x, w: ops.conv(x, w, strides=2, padding="same"),
           lambda x, w: _ref_conv2d(x, w, (2, 2), "same"), [((2, 5, 6, 3), (2, 2, 3, 2)), ((1, 4, 7, 2), (3, 4, 2, 3))],
           FF),
    OpSpec("conv_dilated", lambda x, w: ops.conv(x, w, strides=(1, 2), padding="same", dilation_rate=(2, 1)),
           lambda x, w: _ref_conv2d(x, w, (1, 2), "same", (2, 1)), [((2, 6, 5, 2), (3, 2, 2, 3))], FF),
    OpSpec("conv_grouped", lambda x, w: ops.conv(x, w, padding="same"), lambda x, w: _ref_conv2d(x, w, padding="same"),
           [((2, 4, 5, 6), (3, 3, 2, 9)), ((1, 3, 3, 4), (1, 1, 1, 4))], FF),
    OpSpec("conv_channels_first", lambda x, w: ops.conv(x, w, 2, "same", "channels_first"),
           lambda x, w: _nchw(_ref_conv2d)(x, w, (2, 2), "same"), [((2, 3, 5, 6), (3, 3, 3, 2))], FF),
    OpSpec("conv_1d", lambda x, w: ops.conv(x, w, 2, "same", dilation_rate=1),
           lambda x, w: _ref_conv1d(x, w, 2, "same"), [((2, 7, 3), (4, 3, 2)), ((1, 3, 1), (3, 1, 1))], FF),
    OpSpec("conv_1d_dilated_channels_first", lambda x, w: ops.conv(x, w, 1, "valid", "channels_first", 2),
           lambda x, w: np.moveaxis(_ref_conv1d(np.moveaxis(x, 1, -1), w, 1, "valid", 2), -1, 1),
           [((2, 3, 8), (3, 3, 2))], FF),
    OpSpec("depthwise_conv", lambda x, w: ops.depthwise_conv(x, w, strides=2, padding="same"),
           lambda x, w: _ref_depthwise2d(x, w, (2, 2), "same"), [((2, 5, 6, 3), (3, 3, 3, 2)),
                                                                 ((1, 4, 4, 2), (2, 2, 2, 1))], FF),
    OpSpec("depthwise_conv_dilated", lambda x, w: ops.depthwise_conv(x, w, dilation_rate=2),
           lambda x, w: _ref_depthwise2d(x, w, dilation=(2, 2)), [((2, 6, 6, 2), (2, 3, 2, 3))], FF),
    OpSpec("depthwise_conv_1d", lambda x, w: ops.depthwise_conv(x, w, 1, "same"),
           lambda x, w: _ref_depthwise2d(x[:, None], w[None], padding="same")[:, 0], [((2, 6, 3), (3, 3, 2))], FF),
    OpSpec("separable_conv", lambda x, d, p: ops.separable_conv(x, d, p, 1, "same"),
           lambda x, d, p: _ref_conv2d(_ref_depthwise2d(x, d, padding="same"), p),
           [((2, 5, 5, 3), (3, 3, 3, 2), (1, 1, 6, 4))], ("float", "float", "float")),
    OpSpec("conv_transpose", lambda x, w: ops.conv_transpose(x, w, 2), lambda x, w: _ref_conv_transpose2d(x, w, (2, 2)),
           [((2, 3, 4, 3), (3, 3, 2, 3)), ((1, 2, 2, 1), (2, 2, 1, 1)), ((1, 3, 3, 2), (1, 1, 3, 2))], FF),
    OpSpec("conv_transpose_same", lambda x, w: ops.conv_transpose(x, w, 2, "same"),
           lambda x, w: _ref_conv_transpose2d(x, w, (2, 2), "same"), [((2, 3, 4, 3), (3, 3, 2, 3)),
                                                                       ((1, 3, 3, 2), (4, 4, 2, 2))], FF),
    OpSpec("conv_transpose_output_padding",
           lambda x, w: ops.conv_transpose(x, w, (2, 3), "same", output_padding=(1, 2)),
           lambda x, w: _ref_conv_transpose2d(x, w, (2, 3), "same", (1, 2)), [((2, 3, 2, 2), (3, 3, 2, 2))], FF),
    OpSpec("conv_transpose_valid_output_padding_dilated",
           lambda x, w: ops.conv_transpose(x, w, 2, "valid", output_padding=1, dilation_rate=1),
           lambda x, w: _ref_conv_transpose2d(x, w, (2, 2), "valid", (1, 1)), [((1, 3, 3, 2), (3, 2, 3, 2))], FF),
    OpSpec("conv_transpose_1d", lambda x, w: ops.conv_transpose(x, w, 3, "same"),
           lambda x, w: _ref_conv_transpose2d(x[:, None], w[None], (1, 3), "same")[:, 0], [((2, 4, 3), (3, 2, 3))],
           FF),
]
for _row in _CONV_ROWS:  # sums of up to ~50 float32 products of inputs in [-2, 2]: absolute rounding ~1e-5
    _row.atol32 = 2e-5
OP_TABLE += _CONV_ROWS


# -- added by h-poollayers: NumPy references of the pooling ops (independent of the kernels) ----------------------
def _ref_pool(x, pool, strides=None, padding="valid", data_format="channels_last", kind="max"):
    """Max / average pooling of a (N, *spatial, C) (or channels_first) float64 array by explicit windows; "same"
    is TensorFlow's padding (the extra row / column after), padded positions take no part (not even in the count)."""
    x = np.asarray(x, np.float64)
    if data_format == "channels_first":
        x = np.moveaxis(x, 1, -1)
    n = x.ndim - 2
    pool = (pool,) * n if isinstance(pool, int) else tuple(pool)
    strides = pool if strides is None else ((strides,) * n if isinstance(strides, int) else tuple(strides))
    spatial = x.shape[1:-1]
    if padding == "valid":
        out = [(s - p) // st + 1 for s, p, st in zip(spatial, pool, strides)]
        before = [0] * n
    else:
        out = [-(-s // st) for s, st in zip(spatial, strides)]
        before = [max((o - 1) * st + p - s, 0) // 2 for o, st, p, s in zip(out, strides, pool, spatial)]
    y = np.zeros((x.shape[0], *out, x.shape[-1]))
    for index in np.ndindex(*out):
        window = tuple(slice(max(i * st - b, 0), min(i * st - b + p, s))
                       for i, st, b, p, s in zip(index, strides, before, pool, spatial))
        block = x[(slice(None),) + window + (slice(None),)]
        axes = tuple(range(1, 1 + n))
        y[(slice(None),) + index + (slice(None),)] = block.max(axis=axes) if kind == "max" else block.mean(axis=axes)
    return np.moveaxis(y, -1, 1) if data_format == "channels_first" else y


POOL_ROWS = [
    OpSpec("max_pool", lambda x: ops.max_pool(x, 2), lambda x: _ref_pool(x, 2),
           [(2, 4, 4, 3), (1, 5, 5, 1), (3, 2, 2, 2)]),
    OpSpec("max_pool_same_strided", lambda x: ops.max_pool(x, (3, 2), strides=(2, 1), padding="same"),
           lambda x: _ref_pool(x, (3, 2), (2, 1), "same"), [(2, 5, 4, 2), (1, 1, 3, 1)]),
    OpSpec("max_pool_channels_first", lambda x: ops.max_pool(x, 2, strides=1, data_format="channels_first"),
           lambda x: _ref_pool(x, 2, 1, data_format="channels_first"), [(2, 3, 4, 5)]),
    OpSpec("max_pool_1d", lambda x: ops.max_pool(x, 3, strides=2, padding="same"),
           lambda x: _ref_pool(x, 3, 2, "same"), [(2, 7, 3), (1, 1, 2)]),
    OpSpec("average_pool", lambda x: ops.average_pool(x, 2), lambda x: _ref_pool(x, 2, kind="avg"),
           [(2, 4, 4, 3), (1, 5, 5, 1)]),
    OpSpec("average_pool_same_strided", lambda x: ops.average_pool(x, 3, strides=2, padding="same"),
           lambda x: _ref_pool(x, 3, 2, "same", kind="avg"), [(2, 5, 6, 2), (1, 2, 2, 1)]),
    OpSpec("average_pool_channels_first_1d",
           lambda x: ops.average_pool(x, 2, strides=1, padding="same", data_format="channels_first"),
           lambda x: _ref_pool(x, 2, 1, "same", "channels_first", kind="avg"), [(2, 3, 5)]),
]


def _ref_batch_normalization(x, mean, variance, offset=None, scale=None, axis=-1, epsilon=1e-3):
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    inv = 1.0 / np.sqrt(np.reshape(variance, shape) + epsilon)
    if scale is not None:
        inv = inv * np.reshape(scale, shape)
    out = (x - np.reshape(mean, shape)) * inv
    return out if offset is None else out + np.reshape(offset, shape)


POOL_ROWS += [
    OpSpec("batch_normalization", lambda x, m, v, b, g: ops.batch_normalization(x, m, v, -1, offset=b, scale=g),
           _ref_batch_normalization, [((4, 3), (3,), (3,), (3,), (3,)), ((2, 3, 2), (2,), (2,), (2,), (2,)),
                                      ((1, 1), (1,), (1,), (1,), (1,))], ("float", "float", "unit", "float", "float")),
    OpSpec("batch_normalization_axis1", lambda x, m, v: ops.batch_normalization(x, m, v, 1, epsilon=0.01),
           lambda x, m, v: _ref_batch_normalization(x, m, v, axis=1, epsilon=0.01),
           [((2, 3, 4), (3,), (3,))], ("float", "float", "unit")),
]
OP_TABLE += POOL_ROWS

OP_TABLE_BY_NAME = {row.name: row for row in OP_TABLE}
assert len(OP_TABLE_BY_NAME) == len(OP_TABLE), "duplicate op names in the op table"
