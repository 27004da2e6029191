"""The per-ISA inner loops of the pooling and batch-normalization kernels (csrc/cpu/pool_norm_kernel_*.cpp): every
SIMD path this CPU supports gives the generic path's bits (the max pool only compares and selects; batch norm sums
each channel in row order in double on every path), and batch norm keeps its double-precision statistics on each
path (a float32 batch around a large mean)."""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import backend

_C = backend._C
DTYPES = [np.float32, np.float64]


def _paths():
    return list(fastnn.build_info()["simd_available"])


def _on_every_path(fn):
    """fn() run on each available SIMD path, the generic one first."""
    previous = _C.simd_path()
    try:
        results = {}
        for path in ["generic"] + [p for p in _paths() if p != "generic"]:
            _C.set_simd_path(path)
            out = fn()
            results[path] = out if isinstance(out, tuple) else (out,)
        return results
    finally:
        _C.set_simd_path(previous)


def _assert_all_paths_equal(results):
    generic = results["generic"]
    for path, out in results.items():
        for u, v in zip(out, generic):
            assert u.dtype == v.dtype and u.shape == v.shape
            assert np.array_equal(u, v, equal_nan=u.dtype.kind == "f"), path


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_gives_the_same_bits_on_every_path(dtype):
    rng = np.random.default_rng(30)
    cases = [((2, 9, 11, 67), 2, 2, "valid"), ((3, 8, 8, 40), 3, 1, "same"), ((1, 12, 10, 129), (3, 2), (2, 1), "same"),
             ((2, 16, 16, 24), 16, 16, "valid")]
    for shape, pool, strides, padding in cases:
        x = rng.integers(-3, 4, size=shape).astype(dtype)
        x[rng.random(shape) < 0.03] = np.nan
        _assert_all_paths_equal(_on_every_path(lambda: _C.max_pool2d_forward(x, pool, strides, padding)))
        _assert_all_paths_equal(_on_every_path(lambda: _C.global_max_pool2d_forward(x)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,c", [(1, 1), (7, 3), (300, 17), (4096, 64), (1000, 200), (70000, 2)])
def test_batch_norm_gives_the_same_bits_on_every_path(dtype, m, c):
    rng = np.random.default_rng(31)
    x = (rng.standard_normal((m, c)) * 3 + 5).astype(dtype)
    dy = rng.standard_normal((m, c)).astype(dtype)
    gamma, beta = rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)
    train = _on_every_path(lambda: _C.batch_norm_train_forward(x, gamma, beta, 1e-3))
    _assert_all_paths_equal(train)
    _, mean, var, rstd = train["generic"]
    _assert_all_paths_equal(_on_every_path(lambda: _C.batch_norm_inference_forward(x, mean, var, gamma, beta, 1e-3)))
    _assert_all_paths_equal(_on_every_path(lambda: _C.batch_norm_backward(dy, x, mean, rstd, gamma)))
    _assert_all_paths_equal(_on_every_path(lambda: _C.batch_norm_backward(dy, x, mean, rstd, None)))


def test_batch_norm_statistics_stay_double_on_every_path():
    # Around a mean of 1e4 with unit spread, float32 sums would lose the variance; double two-pass sums keep it.
    rng = np.random.default_rng(32)
    x64 = 1e4 + rng.standard_normal((200_000, 3))
    x = x64.astype(np.float32)
    exact = x.astype(np.float64)
    for path, (_, mean, var, _) in _on_every_path(lambda: _C.batch_norm_train_forward(x, None, None, 1e-3)).items():
        np.testing.assert_allclose(mean, exact.mean(axis=0), rtol=1e-7, err_msg=path)
        np.testing.assert_allclose(var, exact.var(axis=0), rtol=1e-6, err_msg=path)
