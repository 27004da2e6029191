"""The GEMM kernel (fastnn._C.gemm) and its reference twin against NumPy, over shape sweeps that cross every
tile and cache-block edge, all transpose combinations, alpha/beta, the fused epilogue, both SIMD paths and
both dtypes."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import fastnn
from fastnn import backend

from fastnn.testing import assert_product_close

DTYPES = [np.float32, np.float64]

# Around the register tiles (MR = 6 / 12, NR = 16 / 8 / 32), the cache blocks (with the cache_config fixture's
# "tiny" caches: KC 64 / 128, MC 24-60, NC 256 on every CPU; "zen3": KC 256-512, MC 60-252) and the threading
# split; 1 and primes; tall, wide and skinny.
SHAPES = [
    (1, 1, 1), (1, 7, 3), (7, 1, 3), (3, 5, 1), (2, 3, 4),
    (5, 15, 7), (6, 16, 8), (7, 17, 9), (11, 13, 17), (12, 32, 31), (13, 33, 29),
    (48, 24, 255), (50, 40, 256), (37, 41, 257), (71, 9, 513),
    (143, 31, 64), (144, 32, 64), (145, 33, 64), (73, 47, 100),
    (290, 7, 33), (3, 290, 33), (1, 300, 200), (300, 1, 200),
    (101, 103, 107), (64, 10, 128), (97, 4081, 3), (25, 64, 47), (24, 65, 48),
]

# Either side of the auto dispatcher's thresholds: B of exactly half the L2 or one column more (1 MiB for a 2 MiB
# L2 and, with the "zen3" caches, 256 KiB of float32), 12 or 13 row tiles (MR = 12 with AVX-512, 6 with AVX2), and
# A of exactly half the "zen3" L2 or one column more (the direct path by columns).
THRESHOLD_SHAPES = [(150, 512, 512), (150, 513, 512), (150, 256, 256), (150, 257, 256), (144, 700, 600),
                    (145, 700, 600), (72, 700, 600), (78, 700, 600), (64, 700, 1024), (64, 700, 1025)]


def random_matrix(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def stored(rng, rows, cols, trans, dtype):
    """A matrix whose op() is (rows, cols): stored transposed when trans."""
    return random_matrix(rng, (cols, rows) if trans else (rows, cols), dtype)


def op(x, trans):
    return x.T if trans else x


def expected_gemm(a, b, c, trans_a, trans_b, alpha, beta, bias=None, relu=False):
    a64, b64 = op(a, trans_a).astype(np.float64), op(b, trans_b).astype(np.float64)
    out = alpha * (a64 @ b64)
    magnitude = abs(alpha) * (np.abs(a64) @ np.abs(b64))
    if beta != 0:
        out = out + beta * c.astype(np.float64)
        magnitude = magnitude + abs(beta) * np.abs(c.astype(np.float64))
    if bias is not None:
        out = out + bias.astype(np.float64)
        magnitude = magnitude + np.abs(bias.astype(np.float64))
    if relu:
        out = np.maximum(out, 0)
    return out, magnitude


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_gemm_matches_numpy_all_transposes(simd_path, gemm_path, cache_config, dtype, m, n, k):
    rng = np.random.default_rng(m * 10007 + n * 101 + k)
    for trans_a, trans_b in itertools.product([False, True], repeat=2):
        a = stored(rng, m, k, trans_a, dtype)
        b = stored(rng, k, n, trans_b, dtype)
        c = backend.gemm(a, b, trans_a=trans_a, trans_b=trans_b)
        assert c.dtype == dtype and c.shape == (m, n)
        expected, magnitude = expected_gemm(a, b, None, trans_a, trans_b, 1.0, 0.0)
        assert_product_close(c, expected, magnitude, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (1, 40, 9), (33, 1, 70), (7, 17, 9), (37, 41, 257), (145, 33, 64)])
@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (2.5, 0.0), (1.0, 1.0), (-0.5, 0.75), (0.0, 2.0), (0.0, 0.0)])
def test_gemm_alpha_beta_in_place(simd_path, gemm_path, dtype, m, n, k, alpha, beta):
    rng = np.random.default_rng(1)
    for trans_a, trans_b in itertools.product([False, True], repeat=2):
        a = stored(rng, m, k, trans_a, dtype)
        b = stored(rng, k, n, trans_b, dtype)
        c0 = random_matrix(rng, (m, n), dtype)
        c = c0.copy()
        returned = backend.gemm(a, b, c, trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta)
        assert returned is c or np.shares_memory(returned, c)
        expected, magnitude = expected_gemm(a, b, c0, trans_a, trans_b, alpha, beta)
        assert_product_close(c, expected, magnitude, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_beta_zero_ignores_nan_in_c(simd_path, dtype):
    rng = np.random.default_rng(2)
    a, b = random_matrix(rng, (13, 9), dtype), random_matrix(rng, (9, 21), dtype)
    c = np.full((13, 21), np.nan, dtype)
    backend.gemm(a, b, c, beta=0.0)
    assert np.all(np.isfinite(c))
    c = np.full((13, 21), np.nan, dtype)
    backend.gemm(a[:, :0], b[:0], c, beta=0.0)  # K = 0
    assert np.all(c == 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (7, 17, 9), (64, 128, 300), (145, 33, 64)])
@pytest.mark.parametrize("activation", ["linear", "relu"])
def test_fused_bias_activation_epilogue(simd_path, gemm_path, dtype, m, n, k, activation):
    rng = np.random.default_rng(3)
    a, b = random_matrix(rng, (m, k), dtype), random_matrix(rng, (k, n), dtype)
    bias = random_matrix(rng, (n,), dtype)
    c = backend.gemm(a, b, bias=bias, activation=activation)
    expected, magnitude = expected_gemm(a, b, None, False, False, 1.0, 0.0, bias, activation == "relu")
    assert_product_close(c, expected, magnitude, dtype)
    ref = backend.gemm_ref(a, b, bias=bias, activation=activation)
    assert_product_close(c, ref, magnitude, dtype)


def test_relu_epilogue_keeps_nan():
    a = np.array([[np.nan, 1.0]], np.float32)
    b = np.ones((2, 3), np.float32)
    for fn in (backend.gemm, backend.gemm_ref):
        out = fn(a, b, activation="relu")
        assert np.all(np.isnan(out))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (5, 15, 7), (13, 33, 29), (37, 41, 257), (145, 33, 64)])
def test_fast_kernel_matches_reference_kernel(simd_path, gemm_path, cache_config, dtype, m, n, k):
    rng = np.random.default_rng(4)
    for trans_a, trans_b in itertools.product([False, True], repeat=2):
        a, b = stored(rng, m, k, trans_a, dtype), stored(rng, k, n, trans_b, dtype)
        c0 = random_matrix(rng, (m, n), dtype)
        fast = backend.gemm(a, b, c0.copy(), trans_a=trans_a, trans_b=trans_b, alpha=0.5, beta=-1.5)
        ref = backend.gemm_ref(a, b, c0.copy(), trans_a=trans_a, trans_b=trans_b, alpha=0.5, beta=-1.5)
        _, magnitude = expected_gemm(a, b, c0, trans_a, trans_b, 0.5, -1.5)
        assert_product_close(fast, ref, magnitude, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k", THRESHOLD_SHAPES)
def test_dispatch_thresholds(simd_path, cache_config, dtype, m, n, k):
    rng = np.random.default_rng(m + n + k)
    for trans_a, trans_b in [(False, False), (True, True)]:
        a, b = stored(rng, m, k, trans_a, dtype), stored(rng, k, n, trans_b, dtype)
        bias = random_matrix(rng, (n,), dtype)
        c = backend.gemm(a, b, trans_a=trans_a, trans_b=trans_b, bias=bias, activation="relu")
        expected, magnitude = expected_gemm(a, b, None, trans_a, trans_b, 1.0, 0.0, bias, True)
        assert_product_close(c, expected, magnitude, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k", [(1024, 1024, 1024), (2048, 64, 1100), (7, 3000, 1500), (1000, 1, 1000)])
def test_large_products(dtype, m, n, k):
    rng = np.random.default_rng(5)
    a, b = random_matrix(rng, (m, k), dtype), random_matrix(rng, (k, n), dtype)
    c = backend.gemm(a, b)
    expected, magnitude = expected_gemm(a, b, None, False, False, 1.0, 0.0)
    assert_product_close(c, expected, magnitude, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_and_two_threads_are_bit_identical(restore_threads, gemm_path, cache_config, dtype):
    if not fastnn.build_info()["openmp"]:
        pytest.skip("built without OpenMP: one thread only")
    rng = np.random.default_rng(6)
    previous_guard = backend._C.oversubscription_guard()
    backend._C.set_oversubscription_guard("off")  # every region may fork: the 2-thread run is really parallel
    try:
        for m, n, k in [(300, 200, 513), (6, 700, 40), (1025, 33, 64), (64, 3136, 288), (1, 3000, 700), (3000, 1, 700)]:
            a, b = random_matrix(rng, (m, k), dtype), random_matrix(rng, (k, n), dtype)
            bias = random_matrix(rng, (n,), dtype)
            fastnn.set_num_threads(1)
            one = backend.gemm(a, b, bias=bias, activation="relu")
            fastnn.set_num_threads(2)
            before = fastnn.build_info()["parallel_regions"]
            two = backend.gemm(a, b, bias=bias, activation="relu")
            ran_parallel = fastnn.build_info()["parallel_regions"] - before
            assert np.array_equal(one, two)
            # The direct path splits by tiles, so a product of one row tile (6 x 700) forks over its column panels
            # too. The prepacked path (the recurrence's product, run by one thread per block of rows) never forks.
            assert ran_parallel >= (0 if gemm_path == "prepacked" else 1), (m, n, k)
    finally:
        backend._C.set_oversubscription_guard(previous_guard)


@pytest.mark.parametrize("dtype", DTYPES)
def test_forced_gemv_path(restore_threads, dtype):
    """set_gemm_path('gemv') runs the GEMV kernels for M == 1 or N == 1 (every transpose, strided vectors, alpha,
    beta, epilogue) and raises ValueError for any other shape instead of silently running another algorithm."""
    rng = np.random.default_rng(8)
    previous = backend._C.gemm_path()
    try:
        backend._C.set_gemm_path("gemv")
        assert backend._C.gemm_path() == "gemv"
        for m, n, k in [(1, 1, 1), (1, 37, 5), (37, 1, 5), (1, 5000, 3), (4099, 1, 17), (1, 300, 700)]:
            for trans_a, trans_b in itertools.product([False, True], repeat=2):
                a, b = stored(rng, m, k, trans_a, dtype), stored(rng, k, n, trans_b, dtype)
                c0 = random_matrix(rng, (m, n), dtype)
                bias = random_matrix(rng, (n,), dtype)
                c = backend.gemm(a, b, c0.copy(), trans_a=trans_a, trans_b=trans_b, alpha=0.5, beta=-1.5, bias=bias)
                expected, magnitude = expected_gemm(a, b, c0, trans_a, trans_b, 0.5, -1.5, bias)
                assert_product_close(c, expected, magnitude, dtype)
        for m, n in [(2, 2), (7, 17), (300, 200)]:
            with pytest.raises(ValueError, match=rf"'gemv' needs M == 1 or N == 1, but op\(a\) @ op\(b\) is \({m}, {n}\)"):
                backend.gemm(random_matrix(rng, (m, 3), dtype), random_matrix(rng, (3, n), dtype))
        with pytest.raises(ValueError, match="'gemv' needs M == 1 or N == 1"):
            backend._C.batched_matmul(np.ones((4, 3, 2), dtype), np.ones((4, 2, 3), dtype))
    finally:
        backend._C.set_gemm_path(previous)


def test_zero_sized_dimensions():
    for m, n, k in [(0, 3, 4), (3, 0, 4), (3, 4, 0), (0, 0, 0)]:
        a, b = np.ones((m, k), np.float32), np.ones((k, n), np.float32)
        c = backend.gemm(a, b)
        assert c.shape == (m, n)
        assert np.all(c == 0)


def test_row_strided_views_are_read_in_place():
    rng = np.random.default_rng(7)
    big = random_matrix(rng, (40, 30), np.float64)
    a = big[::3, 2:20]          # row stride 90, unit column stride
    b = big[::-2, 5:12][:18]    # negative row stride
    c = backend.gemm(a, b)
    expected, magnitude = expected_gemm(np.array(a), np.array(b), None, False, False, 1.0, 0.0)
    assert_product_close(c, expected, magnitude, np.float64)


class TestBadInput:
    def test_inner_dimension_mismatch_names_shapes(self):
        with pytest.raises(ValueError, match=r"inner dimensions.*\(3, 4\).*\(5, 2\)"):
            backend.gemm(np.ones((3, 4), np.float32), np.ones((5, 2), np.float32))

    @pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float16, object, np.complex64, bool])
    def test_unsupported_dtype_names_dtype(self, dtype):
        a = np.ones((2, 2), dtype)
        with pytest.raises(TypeError, match="float32 or float64"):
            backend.gemm(a, a)

    def test_mixed_dtypes(self):
        with pytest.raises(TypeError, match="same dtype"):
            backend.gemm(np.ones((2, 2), np.float32), np.ones((2, 2), np.float64))

    def test_wrong_ndim(self):
        with pytest.raises(ValueError, match="must be 2-D"):
            backend.gemm(np.ones((2, 2, 2), np.float32), np.ones((2, 2), np.float32))

    def test_non_contiguous_last_axis(self):
        a = np.ones((4, 8), np.float32)[:, ::2]
        with pytest.raises(ValueError, match="contiguous along its last axis"):
            backend.gemm(a, np.ones((4, 4), np.float32))

    def test_bad_c(self):
        a = np.ones((3, 4), np.float32)
        b = np.ones((4, 5), np.float32)
        with pytest.raises(ValueError, match=r"c must have shape \(3, 5\)"):
            backend.gemm(a, b, np.zeros((5, 3), np.float32))
        with pytest.raises(TypeError, match="same dtype"):
            backend.gemm(a, b, np.zeros((3, 5), np.float64))
        readonly = np.zeros((3, 5), np.float32)
        readonly.flags.writeable = False
        with pytest.raises(ValueError, match="read-only"):
            backend.gemm(a, b, readonly)
        with pytest.raises(ValueError, match="needs an input c"):
            backend.gemm(a, b, beta=1.0)

    def test_c_aliasing_an_input_is_rejected(self):
        x = np.ones((4, 4), np.float32)
        with pytest.raises(ValueError, match="share memory"):
            backend.gemm(x, x, x)

    def test_bad_bias_and_activation(self):
        a, b = np.ones((3, 4), np.float32), np.ones((4, 5), np.float32)
        with pytest.raises(ValueError, match=r"bias must have shape \(5,\)"):
            backend.gemm(a, b, bias=np.ones(4, np.float32))
        with pytest.raises(ValueError, match="activation must be one of"):
            backend.gemm(a, b, activation="swish")


@pytest.mark.parametrize("dtype", DTYPES)
def test_prepacked_rows_do_not_depend_on_the_other_rows(dtype):
    """The recurrence kernels multiply a compacted block of rows by their pre-packed weights each step: a row's
    result must be the same bits whatever rows surround it (M = 1 included, where gemm() itself takes GEMV), and
    for K <= KC the bits of the packed and direct paths (one fused chain over K in order)."""
    rng = np.random.default_rng(21)
    kc = fastnn.build_info()["gemm_blocking"][np.dtype(dtype).name]["kc"]
    previous = backend._C.gemm_path()
    try:
        for m, k, n in [(33, 128, 512), (7, 64, 100), (64, kc + 5, 48)]:
            a, b = random_matrix(rng, (m, k), dtype), random_matrix(rng, (k, n), dtype)
            bias = random_matrix(rng, (n,), dtype)
            backend._C.set_gemm_path("prepacked")
            whole = backend.gemm(a, b, bias=bias)
            for rows in ([0], [m - 1], [1, 4, 5], list(range(1, m, 2))):
                part = backend.gemm(np.ascontiguousarray(a[rows]), b, bias=bias)
                assert np.array_equal(part.view(np.uint8), whole[rows].view(np.uint8)), (m, k, n, rows)
            np.testing.assert_allclose(whole, a.astype(np.float64) @ b + bias, rtol=1e-4 if dtype == np.float32
                                       else 1e-12, atol=1e-4 if dtype == np.float32 else 1e-12)
            if k <= kc:
                for path in ("packed", "direct"):
                    backend._C.set_gemm_path(path)
                    other = backend.gemm(a, b, bias=bias)
                    assert np.array_equal(other.view(np.uint8), whole.view(np.uint8)), (m, k, n, path)
    finally:
        backend._C.set_gemm_path(previous)
