"""fastnn.ops.matmul follows numpy.matmul: 1-D promotion, batched broadcasting, any strides, dtype rules."""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import ops

from fastnn.testing import assert_product_close
from fastnn.testing.threads import count_parallel_regions


def check(x1, x2):
    out = ops.matmul(x1, x2)
    a, b = np.asarray(x1, np.float64), np.asarray(x2, np.float64)
    expected = np.matmul(a, b)
    assert out.shape == expected.shape
    dtype = np.result_type(np.asarray(x1).dtype, np.asarray(x2).dtype)
    assert out.dtype == dtype
    assert_product_close(out, expected, np.matmul(np.abs(a), np.abs(b)), dtype)
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape1,shape2",
    [
        ((3, 4), (4, 5)),
        ((4,), (4, 5)),
        ((3, 4), (4,)),
        ((4,), (4,)),
        ((2, 3, 4), (4, 5)),
        ((3, 4), (2, 4, 5)),
        ((2, 1, 3, 4), (5, 4, 6)),
        ((7, 3, 4), (7, 4, 2)),
        ((2, 3, 4), (4,)),
        ((4,), (2, 4, 3)),
        ((1, 1, 17, 33), (1, 33, 9)),
    ],
)
def test_numpy_semantics(gemm_path, dtype, shape1, shape2):
    rng = np.random.default_rng(0)
    check(rng.standard_normal(shape1).astype(dtype), rng.standard_normal(shape2).astype(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_contiguous_and_negative_stride_views(gemm_path, dtype):
    rng = np.random.default_rng(1)
    base = rng.standard_normal((30, 40)).astype(dtype)
    views = {
        "transposed": base.T[:20, :15],
        "row_sliced": base[::2, :15],
        "col_sliced": base[:15, ::2],
        "reversed_rows": base[::-1, :15],
        "reversed_cols": base[:15, ::-1],
        "both_reversed": base[::-3, ::-2],
        "fortran": np.asfortranarray(base[:15, :15]),
    }
    for name, v in views.items():
        k = v.shape[1]
        other = rng.standard_normal((k, 11)).astype(dtype)
        check(v, other)
        check(other.T, v.T)  # the view on the right-hand side, transposed
    batched = rng.standard_normal((4, 9, 8)).astype(dtype)
    check(batched[::-1, :, ::2], batched.transpose(0, 2, 1)[:, ::2, :])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batched_products_many_small_and_few_large(restore_threads, dtype):
    # Many small products run one per thread; few large ones use all threads per product. Both must give
    # the same bits for 1 and 2 threads.
    rng = np.random.default_rng(2)
    for batch, m, n, k in [(64, 5, 7, 9), (3, 200, 150, 300), (2, 1, 500, 40)]:
        a = rng.standard_normal((batch, m, k)).astype(dtype)
        b = rng.standard_normal((batch, k, n)).astype(dtype)
        fastnn.set_num_threads(1)
        one = check(a, b)
        fastnn.set_num_threads(2)
        with count_parallel_regions() as seen:
            two = ops.matmul(a, b)
        assert np.array_equal(one, two)
        if fastnn.build_info()["openmp"]:
            assert seen.count >= 1, (batch, m, n, k)


def test_zero_size_dimensions():
    for s1, s2 in [((0, 3), (3, 4)), ((2, 0), (0, 4)), ((2, 3), (3, 0)), ((0, 2, 3), (3, 4)), ((5, 0), (0,))]:
        out = ops.matmul(np.ones(s1, np.float32), np.ones(s2, np.float32))
        expected = np.matmul(np.ones(s1, np.float32), np.ones(s2, np.float32))
        assert out.shape == expected.shape
        assert np.array_equal(out, expected)


def test_mixed_precision_promotes_like_numpy():
    out = ops.matmul(np.ones((2, 3), np.float32), np.ones((3, 2), np.float64))
    assert out.dtype == np.float64


def test_python_lists_become_float32():
    out = ops.matmul([[1.0, 2.0]], [[3.0], [4.0]])
    assert out.dtype == np.float32 and out.tolist() == [[11.0]]


class TestBadInput:
    def test_inner_mismatch_names_both_shapes(self):
        with pytest.raises(ValueError, match=r"matmul: inner dimensions differ.*\(3, 4\).*\(5, 6\)"):
            ops.matmul(np.ones((3, 4), np.float32), np.ones((5, 6), np.float32))

    def test_batch_axes_that_do_not_broadcast(self):
        with pytest.raises(ValueError, match="cannot be broadcast"):
            ops.matmul(np.ones((2, 3, 4), np.float32), np.ones((3, 4, 5), np.float32))

    @pytest.mark.parametrize("dtype", [np.int64, np.int32, np.float16, object, bool])
    def test_unsupported_dtypes(self, dtype):
        with pytest.raises(TypeError, match=f"float32 or float64, but received dtype {np.dtype(dtype)}"):
            ops.matmul(np.ones((2, 2), dtype), np.ones((2, 2), np.float32))

    def test_scalars(self):
        with pytest.raises(ValueError, match="at least 1 dimension"):
            ops.matmul(np.float32(2.0), np.ones((2, 2), np.float32))

    def test_not_numbers(self):
        with pytest.raises(TypeError, match="array of numbers"):
            ops.matmul("abc", np.ones((2, 2), np.float32))
