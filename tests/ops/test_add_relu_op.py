"""The fused residual op ``elementwise.add_relu`` (relu(x1 + x2) as one node on ``B.add_relu``): its output and both
gradients have exactly the bits of ``add`` then ``relu`` (the unfused ops a model runs), with broadcasting, both
dtypes, NaN / signed zeros in the inputs; the gradients also match float64 central differences."""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import ops
from fastnn.autograd.ops import elementwise
from fastnn.testing.gradcheck import check_gradients


def _run(fn, a, b, upstream):
    va, vb = fastnn.Variable(a), fastnn.Variable(b)
    with fastnn.GradientTape() as tape:
        y = fn(va, vb)
        loss = ops.sum(ops.multiply(y, upstream))
    return [y.numpy()] + [g.numpy() for g in tape.gradient(loss, [va, vb])]


def _same(a, b):
    nan = np.isnan(a)
    return (a.shape == b.shape and a.dtype == b.dtype and np.array_equal(nan, np.isnan(b))
            and np.array_equal(a[~nan], b[~nan]) and np.array_equal(np.signbit(a[~nan]), np.signbit(b[~nan])))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sa,sb", [((4, 5, 5, 8), (4, 5, 5, 8)), ((4, 5, 5, 8), (8,)), ((7, 1), (1, 6)), ((3,), ())])
def test_add_relu_gives_the_bits_of_add_then_relu(dtype, sa, sb):
    rng = np.random.default_rng(6)
    a = rng.standard_normal(sa).astype(dtype)
    b = rng.standard_normal(sb).astype(dtype)
    if a.size > 3:
        a.flat[:3] = [np.nan, -0.0, 0.0]
    shape = np.broadcast_shapes(sa, sb)
    upstream = rng.standard_normal(shape).astype(dtype)
    for x, y in zip(_run(elementwise.add_relu, a, b, upstream),
                    _run(lambda p, q: ops.relu(ops.add(p, q)), a, b, upstream)):
        assert _same(x, y)


def test_add_relu_matches_central_differences():
    rng = np.random.default_rng(8)
    a, b = rng.standard_normal((5, 4)), rng.standard_normal(4)
    check_gradients(elementwise.add_relu, [a, b])
