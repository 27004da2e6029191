"""The fast paths of the pooling kernels (csrc/cpu/pool.cpp, issue 12's speed work) against their reference twins,
bit for bit: the max forward's channel blocks (64-byte vector blocks, 16-byte blocks, the scalar tail, so every
channel count from 1 to 40 crosses each block edge), NaN and ties inside a vector block, the max backward with the
argmax test fused in and split over channel blocks when the batch is small (N = 1 uses every thread), overlapping
and non-overlapping windows, 1 vs 2 threads, and the fused test refusing every forged index at its first flat
position whatever the split."""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import backend

_C = backend._C
DTYPES = [np.float32, np.float64]
# Overlapping windows (a dx element gets several gradients) and tiling ones (at most one), with and without padding.
WINDOWS = [((2, 2), (2, 2), "valid"), ((3, 3), (3, 3), "same"), ((3, 3), (1, 1), "same"), ((3, 3), (2, 2), "valid"),
           ((2, 3), (1, 2), "same")]
CHANNELS = [1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 20, 23, 31, 32, 33, 40]


def _both(fn, *args):
    out, ref = fn(*args), fn(*args, reference=True)
    return (out if isinstance(out, tuple) else (out,)), (ref if isinstance(ref, tuple) else (ref,))


def _assert_same(fast, ref):
    for u, v in zip(fast, ref):
        assert u.dtype == v.dtype and u.shape == v.shape
        assert np.array_equal(u, v, equal_nan=u.dtype.kind == "f")


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_channel_block_edge_matches_the_reference(dtype, simd_path):
    rng = np.random.default_rng(20)
    for c in CHANNELS:
        for n, (h, w) in [(1, (7, 9)), (3, (6, 5))]:
            pool, strides, padding = WINDOWS[c % len(WINDOWS)]
            x = rng.standard_normal((n, h, w, c)).astype(dtype)
            fast, ref = _both(_C.max_pool2d_forward, x, pool, strides, padding)
            _assert_same(fast, ref)
            y, a = fast
            dy = rng.standard_normal(y.shape).astype(dtype)
            _assert_same(*_both(_C.max_pool2d_backward, dy, a, x.shape))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pool,strides,padding", WINDOWS)
def test_nan_and_ties_inside_vector_blocks(dtype, pool, strides, padding, simd_path):
    rng = np.random.default_rng(21)
    x = rng.integers(-2, 3, size=(2, 8, 7, 37)).astype(dtype)  # few values: many ties in every window
    x[rng.random(x.shape) < 0.05] = np.nan
    x[rng.random(x.shape) < 0.05] = -np.inf
    fast, ref = _both(_C.max_pool2d_forward, x, pool, strides, padding)
    _assert_same(fast, ref)
    y, a = fast
    assert np.isnan(y).any()
    dy = rng.standard_normal(y.shape).astype(dtype)
    _assert_same(*_both(_C.max_pool2d_backward, dy, a, x.shape))


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_image_backward_is_split_and_bit_identical(restore_threads, dtype):
    if not fastnn.build_info()["openmp"]:
        pytest.skip("built without OpenMP: one thread only")
    rng = np.random.default_rng(22)
    previous_guard = _C.oversubscription_guard()
    _C.set_oversubscription_guard("off")  # the 2-thread run really forks
    try:
        for shape, (pool, strides, padding) in [((1, 30, 30, 40), WINDOWS[2]), ((1, 28, 28, 32), WINDOWS[0]),
                                                ((2, 17, 13, 48), WINDOWS[3]), ((1, 9, 9, 5), WINDOWS[1])]:
            x = rng.standard_normal(shape).astype(dtype)
            y, a = _C.max_pool2d_forward(x, pool, strides, padding)
            dy = rng.standard_normal(y.shape).astype(dtype)
            results = []
            for threads in (1, 2):
                fastnn.set_num_threads(threads)
                results.append((_C.max_pool2d_forward(x, pool, strides, padding)[0],
                                _C.max_pool2d_backward(dy, a, shape)))
            _assert_same(results[0], results[1])
            assert np.array_equal(results[1][1], _C.max_pool2d_backward(dy, a, shape, True))
            # Overlapping windows add several gradients into one element; tiling ones place each dy once.
            if strides[0] >= pool[0] and strides[1] >= pool[1]:
                assert np.count_nonzero(results[1][1]) == np.count_nonzero(dy)
    finally:
        _C.set_oversubscription_guard(previous_guard)


# Odd channel counts, powers of two and even composites: each branch of the divisibility test.
@pytest.mark.parametrize("c", [1, 3, 7, 12, 16, 24, 40])
def test_fused_check_refuses_the_first_forged_index(restore_threads, c):
    rng = np.random.default_rng(23)
    shape = (1, 6, 6, c)
    x = rng.standard_normal(shape).astype(np.float32)
    y, a = _C.max_pool2d_forward(x, 3, 1, "same")
    dy = np.ones_like(y)
    image = x.size
    for threads in (1, 2):
        fastnn.set_num_threads(threads)
        # Another pixel of the same image and channel is a legal target (the backward stays in bounds and race-free).
        b = a.copy()
        b.reshape(-1)[c - 1] = a.reshape(-1)[-1]
        assert np.array_equal(_C.max_pool2d_backward(dy, b, shape), _C.max_pool2d_backward(dy, b, shape, True))
        for off in sorted({1, c // 2, c + 1, -1, image, -image}):
            if off % c == 0 and 0 <= a.reshape(-1)[-1] + off < image:
                continue  # still the last output's own channel in this image: legal
            b = a.copy()
            late, early = b.size - 1, b.size // 2  # two forgeries: the earlier flat position is the one reported
            b.reshape(-1)[late] += off
            b.reshape(-1)[early] = image + 5
            with pytest.raises(ValueError, match=rf"argmax \(flat position {late}\) holds"):
                bad_late = a.copy()
                bad_late.reshape(-1)[late] += off
                _C.max_pool2d_backward(dy, bad_late, shape)
            with pytest.raises(ValueError, match=rf"max_pool2d_backward: argmax \(flat position {early}\) holds"):
                _C.max_pool2d_backward(dy, b, shape)
            with pytest.raises(ValueError, match=rf"argmax \(flat position {early}\) holds"):
                _C.max_pool2d_backward(dy, b, shape, True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_global_max_pool_of_one_image(dtype, simd_path):
    rng = np.random.default_rng(24)
    for shape in [(1, 32, 32, 64), (1, 5, 3, 23), (2, 1, 1, 17)]:
        x = rng.standard_normal(shape).astype(dtype)
        fast, ref = _both(_C.global_max_pool2d_forward, x)
        _assert_same(fast, ref)
        dy = rng.standard_normal(fast[0].shape).astype(dtype)
        _assert_same(*_both(_C.global_max_pool2d_backward, dy, fast[1], shape))


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_windows_take_every_channel_at_once(dtype):
    # Windows of 64 positions or more run the all-channels loop (the global pools' path); clipped "same" windows
    # at the edges fall back under 64 positions within the same call.
    rng = np.random.default_rng(25)
    for c in [1, 5, 23, 40]:
        x = rng.integers(-3, 4, size=(2, 19, 17, c)).astype(dtype)  # ties
        x[rng.random(x.shape) < 0.02] = np.nan
        for pool, strides, padding in [((8, 8), (4, 4), "same"), ((9, 8), (5, 3), "valid"), ((16, 4), (1, 2), "same")]:
            fast, ref = _both(_C.max_pool2d_forward, x, pool, strides, padding)
            _assert_same(fast, ref)
            dy = rng.standard_normal(fast[0].shape).astype(dtype)
            _assert_same(*_both(_C.max_pool2d_backward, dy, fast[1], x.shape))


@pytest.mark.parametrize("dtype", DTYPES)
def test_window_offsets_past_int32(dtype, simd_path):
    # pool_h * W * C >= 2^31 with a small input: one real row under a 2^16-row window (padding 2^15 above and
    # below). float keeps window offsets in int32 lanes only below that, so this runs its int64 scalar loop; double
    # runs its vector blocks. The NumPy answer: the max of each column pair, the first on ties, and its flat index.
    rng = np.random.default_rng(26)
    w, c = 1024, 33
    x = rng.permutation(w * c).astype(dtype).reshape(1, 1, w, c)  # distinct values: no ties
    y, a = _C.max_pool2d_forward(x, (2 ** 16, 2), (1, 2), (2 ** 15, 2 ** 15, 0, 0))
    assert y.shape == (1, 2, w // 2, c)
    pairs = x[0, 0].reshape(w // 2, 2, c)
    second = pairs[:, 1] > pairs[:, 0]
    flat = np.arange(w * c).reshape(w // 2, 2, c)
    for row in range(2):
        np.testing.assert_array_equal(y[0, row], pairs.max(axis=1))
        np.testing.assert_array_equal(a[0, row], np.where(second, flat[:, 1], flat[:, 0]))
    dy = rng.standard_normal(y.shape).astype(dtype)
    _assert_same(*_both(_C.max_pool2d_backward, dy, a, x.shape))
