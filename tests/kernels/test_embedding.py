"""The embedding kernels (csrc/cpu/embedding.cpp) against NumPy: embedding_gather as ``np.take(table, idx, axis=0)``
(bit for bit), embedding_scatter_add as ``np.add.at`` (index order: the same bits in float32 and float64), the fast
kernels against their _ref twins, 1 vs 2 threads bit-identical (both the serial and the counting-sort path), the
exact adjoint identity <d_out, gather(table)> = <scatter_add(d_out), table>, and bad input (indices out of range,
dtypes, shapes, layouts) raising ValueError / TypeError naming the function."""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import backend
from fastnn.testing.threads import count_parallel_regions

_C = backend._C
DTYPES = (np.float32, np.float64)
INDEX_DTYPES = (np.int32, np.int64)
# (V, D, index shape): size 1, odd sizes, empty index arrays, 0-D indices, repeated rows, large enough for threads.
CASES = [
    (1, 1, (1,)), (1, 5, (3, 4)), (7, 3, ()), (7, 3, (0,)), (5, 0, (4,)), (13, 17, (2, 3, 5)), (3, 33, (40,)),
    (1000, 64, (64, 100)), (10, 128, (512,)), (50000, 8, (9000,)), (4, 1, (20000,)),
]


def _idx(rng, rows, shape, dtype):
    return rng.integers(0, rows, size=shape).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("index_dtype", INDEX_DTYPES)
@pytest.mark.parametrize("rows,dim,shape", CASES)
def test_gather_is_np_take(dtype, index_dtype, rows, dim, shape):
    rng = np.random.default_rng(rows * 31 + dim)
    table = rng.standard_normal((rows, dim)).astype(dtype)
    idx = _idx(rng, rows, shape, index_dtype)
    expected = np.take(table, idx, axis=0)
    for reference in (False, True):
        out = _C.embedding_gather(table, idx, reference)
        assert out.shape == shape + (dim,) and out.dtype == dtype
        assert np.array_equal(out, expected)
    assert np.array_equal(backend.embedding_gather(table, idx), expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("index_dtype", INDEX_DTYPES)
@pytest.mark.parametrize("rows,dim,shape", CASES)
def test_scatter_add_is_np_add_at(dtype, index_dtype, rows, dim, shape):
    rng = np.random.default_rng(rows * 7 + dim)
    idx = _idx(rng, rows, shape, index_dtype)
    d_out = rng.standard_normal(shape + (dim,)).astype(dtype)
    expected = np.zeros((rows, dim), dtype)
    np.add.at(expected, idx.reshape(-1), d_out.reshape(idx.size, dim))  # unbuffered, in index order, in dtype
    exact64 = np.zeros((rows, dim))
    np.add.at(exact64, idx.reshape(-1), d_out.reshape(idx.size, dim).astype(np.float64))
    for reference in (False, True):
        out = _C.embedding_scatter_add(d_out, idx, rows, reference)
        assert out.shape == (rows, dim) and out.dtype == dtype
        assert np.array_equal(out, expected)  # the same additions in the same order
        np.testing.assert_allclose(out, exact64, rtol=1e-4 if dtype == np.float32 else 1e-12, atol=1e-4)
    assert np.array_equal(backend.embedding_scatter_add(d_out, idx, rows), expected)


def test_scatter_add_repeated_rows_sum_in_index_order():
    # 1e8 + 1 - 1e8 in float32: the order decides (index order gives 0 for row 0, 1 for row 1's reversed order).
    d_out = np.array([[1e8], [1.0], [-1e8], [-1e8], [1.0], [1e8]], np.float32)
    idx = np.array([0, 0, 0, 1, 1, 1])
    out = backend.embedding_scatter_add(d_out, idx, 2)
    assert out[0, 0] == np.float32(np.float32(1e8) + np.float32(1.0)) - np.float32(1e8)
    assert out[1, 0] == np.float32(np.float32(-1e8) + np.float32(1.0)) + np.float32(1e8)


def test_unused_rows_are_zero_and_gradient_is_dense():
    d_out = np.ones((3, 2))
    out = backend.embedding_scatter_add(d_out, np.array([4, 4, 1]), 6)
    assert np.array_equal(out, [[0, 0], [1, 1], [0, 0], [0, 0], [2, 2], [0, 0]])
    assert not np.signbit(out).any()  # +0, not -0, in the rows nobody names


@pytest.mark.parametrize("dtype", DTYPES)
def test_adjoint_identity(dtype):
    # <dy, gather(table)> == <scatter_add(dy), table>: the scatter-add is the gather's exact transpose.
    rng = np.random.default_rng(3)
    table = rng.standard_normal((30, 9))
    idx = rng.integers(0, 30, size=(6, 11))
    dy = rng.standard_normal((6, 11, 9))
    lhs = np.sum(dy * backend.embedding_gather(table.astype(dtype), idx).astype(np.float64))
    rhs = np.sum(backend.embedding_scatter_add(dy.astype(dtype), idx, 30).astype(np.float64) * table)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_and_two_threads_are_bit_identical(restore_threads, dtype):
    if not fastnn.build_info()["openmp"]:
        pytest.skip("built without OpenMP: one thread only")
    rng = np.random.default_rng(11)
    for rows, dim, shape in [(10000, 128, (64, 100)), (7, 300, (5000,)), (50000, 4, (40000,)), (3, 1, (70000,))]:
        table = rng.standard_normal((rows, dim)).astype(dtype)
        idx = rng.integers(0, rows, size=shape)
        d_out = rng.standard_normal(shape + (dim,)).astype(dtype)
        fastnn.set_num_threads(1)
        g1, s1 = backend.embedding_gather(table, idx), backend.embedding_scatter_add(d_out, idx, rows)
        fastnn.set_num_threads(2)
        with count_parallel_regions() as seen:
            g2, s2 = backend.embedding_gather(table, idx), backend.embedding_scatter_add(d_out, idx, rows)
        assert seen.count >= 2, (rows, dim, shape)  # both kernels really ran on a team
        assert np.array_equal(g1, g2) and np.array_equal(s1, s2)
        assert np.array_equal(s2, _C.embedding_scatter_add(d_out, idx, rows, True))


@pytest.mark.parametrize("fn", ["gather", "scatter"])
@pytest.mark.parametrize("bad", [-1, 10, 11, 2 ** 40, -(2 ** 62)])
@pytest.mark.parametrize("reference", [False, True])
def test_bad_index_names_function_value_and_v(restore_threads, fn, bad, reference):
    idx = np.zeros(50000, np.int64)
    idx[3], idx[40000] = bad, -5  # the first bad one (position 3) is reported, even when threads split the rows
    fastnn.set_num_threads(2)
    if fn == "gather":
        call = lambda: _C.embedding_gather(np.ones((10, 4), np.float32), idx, reference)  # noqa: E731
        name = "embedding_gather"
    else:
        call = lambda: _C.embedding_scatter_add(np.ones((50000, 4), np.float32), idx, 10, reference)  # noqa: E731
        name = "embedding_scatter_add"
    with pytest.raises(ValueError, match=rf"{name}: indices must lie in \[0, 10\) \(the table has 10 rows\), but "
                                         rf"received {bad} at flat position 3 of indices of shape \(50000,\)"):
        call()


def test_bad_index_int32_and_empty_table():
    with pytest.raises(ValueError, match=r"embedding_gather: .*\[0, 0\).*received 0 at flat position 0"):
        _C.embedding_gather(np.ones((0, 3)), np.zeros((2,), np.int32))
    assert _C.embedding_gather(np.ones((0, 3)), np.zeros((0,), np.int32)).shape == (0, 3)
    with pytest.raises(ValueError, match=r"embedding_scatter_add: .*received -7 at flat position 1"):
        _C.embedding_scatter_add(np.ones((2, 1)), np.array([0, -7], np.int32), 3)


def test_bad_arguments():
    t = np.ones((4, 3), np.float32)
    i = np.array([0, 1])
    with pytest.raises(TypeError, match=r"embedding_gather: table must be float32 or float64, but received dtype int64"):
        _C.embedding_gather(np.ones((4, 3), np.int64), i)
    with pytest.raises(ValueError, match=r"embedding_gather: table must be 2-D, but received shape \(12,\)"):
        _C.embedding_gather(np.ones(12, np.float32), i)
    with pytest.raises(ValueError, match=r"embedding_gather: table must be C-contiguous"):
        _C.embedding_gather(np.ones((3, 4), np.float32).T, i)
    for bad in (i.astype(np.float32), i.astype(np.int16), i.astype(np.uint64), i.astype(">i8")):
        with pytest.raises(TypeError, match=r"embedding_gather: indices must be int32 or int64 in native byte order"):
            _C.embedding_gather(t, bad)
    with pytest.raises(ValueError, match=r"embedding_gather: indices must be C-contiguous"):
        _C.embedding_gather(t, np.zeros((4, 4), np.int64)[:, ::2])
    with pytest.raises(ValueError, match=r"embedding_scatter_add: d_out must have shape \(\*indices.shape, D\), but "
                                         r"received d_out of shape \(3, 2\) and indices of shape \(2,\)"):
        _C.embedding_scatter_add(np.ones((3, 2)), i, 4)
    with pytest.raises(ValueError, match=r"embedding_scatter_add: d_out must have shape"):
        _C.embedding_scatter_add(np.ones((2,)), i, 4)
    with pytest.raises(TypeError, match=r"embedding_scatter_add: num_rows must be an int, but received True"):
        _C.embedding_scatter_add(np.ones((2, 2)), i, True)
    with pytest.raises(ValueError, match=r"embedding_scatter_add: num_rows must be non-negative"):
        _C.embedding_scatter_add(np.ones((2, 2)), i, -1)
    with pytest.raises(ValueError, match=r"embedding_scatter_add: the gradient .* is too large"):
        _C.embedding_scatter_add(np.ones((2, 4)), i, 2 ** 51)
    with pytest.raises(TypeError, match=r"embedding: indices must be integers, but received dtype float64"):
        backend.embedding_gather(t, np.array([0.0]))


def test_backend_converts_other_integer_dtypes():
    t = np.arange(12.0).reshape(4, 3)
    for dt in (np.uint8, np.int16, np.uint32, np.uint64, ">i4"):
        assert np.array_equal(backend.embedding_gather(t, np.array([3, 0], dt)), t[[3, 0]])
    with pytest.raises(ValueError, match=r"embedding_gather: .* received 300 at flat position 0"):
        backend.embedding_gather(t, np.array([300], np.uint16))
    with pytest.raises(ValueError, match="out of range"):
        backend.embedding_gather(t, np.array([2 ** 64 - 1], np.uint64))
    # strided views are made contiguous by the wrapper
    assert np.array_equal(backend.embedding_gather(np.asfortranarray(t), np.array([[1, 2, 3, 0]])[:, ::2]), t[[[1, 3]]])
