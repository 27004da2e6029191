"""Adam's embedding-table step in C++ (``adam_rows_update``, csrc/cpu/optimizer.cpp) against the NumPy formula it
replaces (Adam._update_rows): the same bits through a few training steps, float32 and float64, amsgrad on and off,
tables with repeated and unused rows; and the binding's refusals."""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import _C, layers, models
from fastnn.optimizers import optimizer as optimizer_module


def _train(dtype, amsgrad, kernel, monkeypatch):
    calls = []
    if kernel:
        real = fastnn.backend.adam_rows_update
        monkeypatch.setattr(fastnn.backend, "adam_rows_update", lambda *a: calls.append(1) or real(*a))
    else:
        monkeypatch.setattr(optimizer_module, "_ROW_KERNEL_DTYPES", ())
    fastnn.utils.set_random_seed(3)
    inp = layers.Input((6,), dtype="int32")
    h = layers.Embedding(12, 5, dtype=dtype)(inp)
    h = layers.GlobalAveragePooling1D(dtype=dtype)(h)
    out = layers.Dense(1, dtype=dtype)(h)
    model = models.Model(inp, out)
    model.compile(optimizer=fastnn.optimizers.Adam(learning_rate=0.05, amsgrad=amsgrad), loss="mse")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 8, (32, 6)).astype(np.int32)  # rows 8..11 never looked up; many repeats
    y = rng.standard_normal((32, 1)).astype(dtype)
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    monkeypatch.undo()
    assert len(calls) == (8 if kernel else 0)  # the table's 8 steps took the kernel (or, patched, NumPy)
    return [w.copy() for w in model.get_weights()]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("amsgrad", [False, True])
def test_kernel_gives_the_numpy_formulas_bits(dtype, amsgrad, monkeypatch):
    with_kernel = _train(dtype, amsgrad, True, monkeypatch)
    with_numpy = _train(dtype, amsgrad, False, monkeypatch)
    for a, b in zip(with_kernel, with_numpy):
        assert a.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(a, b)


def _args(n=6, dtype=np.float32):
    rng = np.random.default_rng(1)
    return [rng.standard_normal(n).astype(dtype) for _ in range(3)] + [None] + \
        [rng.standard_normal(n).astype(dtype), np.abs(rng.standard_normal(n)).astype(dtype)]


def test_refusals():
    var, m, v, vhat, g, sq = _args()
    consts = (0.1, 0.001, 0.01, 1e-7)
    with pytest.raises(ValueError, match=r"adam_rows_update: g has shape \(5,\), but var has shape \(6,\)"):
        _C.adam_rows_update(var, m, v, vhat, g[:5].copy(), sq, *consts)
    with pytest.raises(TypeError, match="adam_rows_update: squares has dtype float64, but var has dtype float32"):
        _C.adam_rows_update(var, m, v, vhat, g, sq.astype(np.float64), *consts)
    with pytest.raises(ValueError, match="adam_rows_update: g and m share memory"):
        _C.adam_rows_update(var, m, v, vhat, m, sq, *consts)
    with pytest.raises(ValueError, match="C-contiguous"):
        _C.adam_rows_update(var, m, v, vhat, np.repeat(g, 2)[::2], sq, *consts)
    with pytest.raises(TypeError, match="vhat must be a NumPy array or None"):
        _C.adam_rows_update(var, m, v, [0.0] * 6, g, sq, *consts)
    ro = var.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="var must be writeable"):
        _C.adam_rows_update(ro, m, v, vhat, g, sq, *consts)
    with pytest.raises(TypeError, match="int64"):
        _C.adam_rows_update(var.astype(np.int64), m, v, vhat, g, sq, *consts)
