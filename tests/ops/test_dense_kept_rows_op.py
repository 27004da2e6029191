"""``nn.dense_kept_rows``: a masked recurrent layer's input projection, computed only on the kept rows.

Its kept rows have exactly the bits of ``dense`` on the compacted kept rows, its other rows are +0; the gradient of x
is +0 at the skipped rows and the kernel's / bias's gradients are those of the kept rows alone; all three match float64
central differences. Edge cases: no row kept, every row kept, NaN in a skipped row (never reaches a result), a
non-bool keep, bad shapes (ValueError naming the op). The LSTM layer on it gives the numbers of its step-by-step
reference with and without the compiled step, as the rnn tests check elsewhere."""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import ops
from fastnn.autograd.ops import nn
from fastnn.testing.gradcheck import check_gradients


def _run(fn, x, w, b, upstream):
    vx, vw, vb = fastnn.Variable(x), fastnn.Variable(w), fastnn.Variable(b)
    with fastnn.GradientTape() as tape:
        y = fn(vx, vw, vb)
        loss = ops.sum(ops.multiply(y, upstream))
    return [y.numpy()] + [g.numpy() for g in tape.gradient(loss, [vx, vw, vb])]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,features,units,fraction", [
    ((4, 7), 5, 3, 0.5), ((1, 1), 1, 1, 1.0), ((3, 50), 33, 64, 0.3), ((6, 20), 16, 12, 0.0), ((2, 9), 8, 40, 1.0)])
def test_kept_rows_are_dense_on_the_compact_rows_and_the_rest_is_zero(dtype, shape, features, units, fraction):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape + (features,)).astype(dtype)
    w = rng.standard_normal((features, units)).astype(dtype)
    b = rng.standard_normal(units).astype(dtype)
    keep = rng.uniform(size=shape) < fraction
    if 0 < fraction < 1:
        keep.flat[0], keep.flat[-1] = True, False
    x[~keep] = np.nan  # a skipped row's input never reaches any result
    upstream = rng.standard_normal(shape + (units,)).astype(dtype)
    y, gx, gw, gb = _run(lambda a, k, c: nn.dense_kept_rows(a, k, c, keep), x, w, b, upstream)
    rows = keep.reshape(-1)
    yc, gxc, gwc, gbc = _run(lambda a, k, c: nn.dense(a, k, c), x.reshape(-1, features)[rows], w, b,
                             upstream.reshape(-1, units)[rows])
    assert y.dtype == gx.dtype == gw.dtype == gb.dtype == dtype
    assert np.array_equal(y.reshape(-1, units)[rows], yc)
    assert np.array_equal(gx.reshape(-1, features)[rows], gxc)
    assert np.array_equal(gw, gwc) and np.array_equal(gb, gbc)
    for skipped in (y.reshape(-1, units)[~rows], gx.reshape(-1, features)[~rows]):
        assert not np.any(skipped) and not np.any(np.signbit(skipped))


def test_every_row_kept_is_dense():
    rng = np.random.default_rng(4)
    x, w, b = rng.standard_normal((5, 6, 7)), rng.standard_normal((7, 9)), rng.standard_normal(9)
    up = rng.standard_normal((5, 6, 9))
    for p, q in zip(_run(lambda a, k, c: nn.dense_kept_rows(a, k, c, np.ones((5, 6), bool)), x, w, b, up),
                    _run(lambda a, k, c: nn.dense(a, k, c), x, w, b, up)):
        np.testing.assert_allclose(p, q, rtol=1e-13, atol=1e-13)


def test_dense_kept_rows_matches_central_differences():
    rng = np.random.default_rng(8)
    keep = np.array([[1, 0, 1, 1], [0, 0, 1, 0], [1, 1, 1, 1]], dtype=np.int32)  # a non-bool mask: nonzero = kept
    x, w, b = rng.standard_normal((3, 4, 5)), rng.standard_normal((5, 6)), rng.standard_normal(6)
    check_gradients(lambda a, k, c: nn.dense_kept_rows(a, k, c, keep), [x, w, b])


def test_dense_kept_rows_without_bias_and_without_a_tape():
    rng = np.random.default_rng(9)
    x, w = rng.standard_normal((2, 3, 4)).astype(np.float32), rng.standard_normal((4, 5)).astype(np.float32)
    keep = np.array([[True, False, True], [False, True, True]])
    with fastnn.no_grad():
        y = nn.dense_kept_rows(fastnn.Tensor(x), fastnn.Tensor(w), None, fastnn.Tensor(keep)).numpy()
    expect = np.where(keep[..., None], x @ w, 0)
    np.testing.assert_allclose(y, expect, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("x_shape,w_shape,keep_shape,match", [
    ((2, 3, 4), (5, 6), (2, 3), "must be"), ((2, 3, 4), (4, 6), (3, 2), "leading shape"),
    ((4,), (4, 6), (), "must be")])
def test_bad_shapes_raise_naming_the_op(x_shape, w_shape, keep_shape, match):
    with pytest.raises(ValueError, match=f"dense_kept_rows.*{match}"):
        nn.dense_kept_rows(np.zeros(x_shape, np.float32), np.zeros(w_shape, np.float32), None,
                           np.ones(keep_shape, bool))
