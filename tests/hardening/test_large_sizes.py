"""64-bit indexing: strides and offsets past 2^31 elements are computed correctly, never wrapped around, and outputs
too large to allocate are rejected with MemoryError / ValueError instead of crashing.

Without terabytes of RAM: operands are views into a sparse file (np.memmap of a file that is mostly a hole) whose
rows, matrices or batch entries lie 2^31 elements or more apart, so a kernel that computed an offset in 32 bits
would read or write the wrong page (and the results would differ) while the test itself touches only a few pages.
"""
from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

import fastnn
from fastnn import _C, ops

BIG = 2**31 + 5  # an element stride that does not fit in int32


@pytest.fixture
def sparse_floats(tmp_path):
    """A writable float32 memmap of 2 * BIG + 4096 elements (about 17 GB of address space, a few pages of disk)."""
    path = tmp_path / "sparse.bin"
    n = 2 * BIG + 4096
    with open(path, "wb") as f:
        f.truncate(n * 4)
    mm = np.memmap(path, dtype=np.float32, mode="r+", shape=(n,))
    yield mm
    del mm
    path.unlink()


def _rows(mm, offsets, width):
    """A (len(offsets), width) view whose rows start at the given element offsets (equally spaced)."""
    stride = offsets[1] - offsets[0]
    return as_strided(mm[offsets[0]:], shape=(len(offsets), width), strides=(stride * 4, 4))


@pytest.mark.parametrize("trans_a", [False, True])
def test_gemm_reads_rows_more_than_2_31_apart(sparse_floats, trans_a, gemm_path):
    rng = np.random.default_rng(0)
    rows, width = 3, 12
    a = _rows(sparse_floats, [0, BIG, 2 * BIG], width)
    a[...] = rng.standard_normal(a.shape).astype(np.float32)
    b = rng.standard_normal((rows, 7) if trans_a else (width, 7)).astype(np.float32)
    assert a.strides[0] // 4 > 2**31
    out = _C.gemm(a, b, trans_a=trans_a)
    op_a = np.array(a).T if trans_a else np.array(a)
    np.testing.assert_allclose(out, op_a.astype(np.float64) @ b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_C.gemm_ref(a, b, trans_a=trans_a), out, rtol=1e-5, atol=1e-5)


def test_gemm_reads_b_and_writes_c_more_than_2_31_apart(sparse_floats, gemm_path):
    rng = np.random.default_rng(1)
    b = _rows(sparse_floats, [0, BIG, 2 * BIG], 20)  # (K=3, N=20), row stride > 2^31
    b[...] = rng.standard_normal(b.shape).astype(np.float32)
    a = rng.standard_normal((4, 3)).astype(np.float32)
    expected = a.astype(np.float64) @ np.array(b, np.float64)
    bt = np.ascontiguousarray(np.array(b).T)  # (N, K) for trans_b below
    np.testing.assert_allclose(_C.gemm(a, b), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_C.gemm(a, bt, trans_b=True), expected, rtol=1e-5, atol=1e-5)
    # C with a row stride past 2^31: rows 2^31 elements apart in the same sparse file, after b's last row.
    c = _rows(sparse_floats, [64, 64 + BIG], 20)
    a2 = a[:2]
    c[...] = 1.0
    out = _C.gemm(a2, np.ascontiguousarray(b), c, beta=0.5, bias=np.ones(20, np.float32), activation="relu")
    assert np.shares_memory(out, c)
    ref = np.maximum(a2.astype(np.float64) @ np.array(b, np.float64) + 0.5 + 1.0, 0)
    np.testing.assert_allclose(np.array(c), ref, rtol=1e-5, atol=1e-5)


def test_batched_matmul_with_batch_stride_past_2_31(sparse_floats):
    rng = np.random.default_rng(2)
    a = as_strided(sparse_floats, shape=(2, 5, 6), strides=(BIG * 4, 6 * 4, 4))
    a[...] = rng.standard_normal(a.shape).astype(np.float32)
    b = rng.standard_normal((2, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(_C.batched_matmul(a, b), np.array(a, np.float64) @ b, rtol=1e-5, atol=1e-5)
    # Through the public op, with the big-stride operand broadcast against a batch of 4.
    a4 = as_strided(sparse_floats, shape=(2, 1, 5, 6), strides=(BIG * 4, 0, 24, 4))
    b4 = rng.standard_normal((2, 4, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(ops.matmul(a4, b4).numpy(), np.array(a4, np.float64) @ b4, rtol=1e-5, atol=1e-5)


def test_matmul_of_views_with_offsets_past_2_31(sparse_floats):
    x = sparse_floats[BIG:BIG + 64].reshape(8, 8)
    x[...] = np.arange(64, dtype=np.float32).reshape(8, 8) / 64
    np.testing.assert_allclose(ops.matmul(x, x.T).numpy(), np.array(x, np.float64) @ np.array(x).T, rtol=1e-5)
    y = ops.softmax(x)
    np.testing.assert_allclose(y.numpy().sum(-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("call", [
    # Outputs of 2^40 and more elements: refused by the allocator, as MemoryError (or ValueError for sizes NumPy
    # cannot even represent), never a wrapped-around size.
    lambda: _C.batched_matmul(np.broadcast_to(np.ones((1, 1, 1), np.float32), (2**20, 2**20, 1)),
                              np.broadcast_to(np.ones((1, 1, 1), np.float32), (2**20, 1, 2**20))),
    lambda: _C.gemm(np.broadcast_to(np.ones((1, 1), np.float32), (2**40, 1)), np.ones((1, 2**21), np.float32)),
    lambda: ops.matmul(np.broadcast_to(np.ones((1, 1), np.float32), (2**40, 1)),
                       np.broadcast_to(np.ones((1, 1), np.float32), (1, 2**40))),
    lambda: ops.matmul(np.broadcast_to(np.ones((1, 1, 1), np.float32), (2**21, 2**21, 1)),
                       np.ones((1, 2**10), np.float32)),
])
def test_outputs_too_large_to_allocate_raise(call):
    with pytest.raises((MemoryError, ValueError)):
        call()


def test_products_with_more_than_2_31_output_elements_are_shape_checked_first():
    # A shape mismatch is reported before anything huge is allocated.
    a = np.broadcast_to(np.ones((1, 3), np.float32), (2**33, 3))
    b = np.ones((4, 2**33 // 2**20), np.float32)
    with pytest.raises(ValueError, match="inner dimensions"):
        _C.gemm(a, b)
    with pytest.raises(ValueError, match="matmul"):
        ops.matmul(a, b)
    assert fastnn.get_num_threads() >= 1
