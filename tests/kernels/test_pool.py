"""The NHWC pooling kernels (csrc/cpu/pool.cpp, bindings in csrc/python/bind_pool.cpp): max / average pooling 2D
and global pooling, forward and backward, against float64 NumPy references over shape / window / stride / padding
sweeps, the fast kernels against their reference twins (bit for bit), the backwards against the adjoint identity and
float64 central differences, 1 vs 2 threads, and the bad-input messages."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import fastnn
from fastnn.testing.gradcheck import central_difference
from fastnn.testing import fuzz as fz
from fastnn import backend

_C = backend._C
DTYPES = [np.float32, np.float64]


def tf_same(n, k, s):
    """TensorFlow's "same" padding of one axis: (before, after)."""
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def pads_of(shape, pool, strides, padding):
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        return tf_same(shape[1], pool[0], strides[0]) + tf_same(shape[2], pool[1], strides[1])
    return tuple(padding)


windows = fz.pool_windows  # the NumPy reference of the pooling kernels (fastnn.testing.fuzz)


def np_max_pool(x, pool, strides, pads):
    win, iwin = windows(x, pool, strides, pads, -np.inf)
    first = np.argmax(win, axis=3)  # the first maximum in window order
    return np.max(win, axis=3), np.take_along_axis(iwin, first[:, :, :, None], axis=3)[:, :, :, 0]


def np_avg_pool(x, pool, strides, pads):
    win, iwin = windows(x, pool, strides, pads, 0.0)
    return win.sum(axis=3) / (iwin >= 0).sum(axis=3)


def np_avg_pool_backward(dy, shape, pool, strides, pads):
    """The adjoint of np_avg_pool, scattered with np.add.at."""
    _, iwin = windows(np.zeros(shape), pool, strides, pads, 0.0)
    count = (iwin >= 0).sum(axis=3, keepdims=True)
    g = np.broadcast_to(dy[:, :, :, None, :] / count, iwin.shape)
    dx = np.zeros(int(np.prod(shape)))
    np.add.at(dx, iwin[iwin >= 0], g[iwin >= 0])
    return dx.reshape(shape)


def rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


# (N, H, W, C), pool, strides: size 1, odd sizes, windows 1x1 / 2x2 / 3x3 (and non-square), strides 1-3.
SHAPES = [(1, 1, 1, 1), (2, 5, 7, 3), (1, 4, 4, 1), (3, 6, 5, 17), (1, 9, 11, 8), (2, 3, 8, 2)]
WINDOWS = [(1, 1), (2, 2), (3, 3), (2, 3)]
STRIDES = [(1, 1), (2, 2), (3, 3), (1, 2)]


def sweep():
    for shape, pool, strides, padding in itertools.product(SHAPES, WINDOWS, STRIDES, ["valid", "same"]):
        if padding == "valid" and (pool[0] > shape[1] or pool[1] > shape[2]):
            continue
        yield shape, pool, strides, padding


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_matches_numpy(dtype):
    rng = np.random.default_rng(0)
    cases = 0
    for shape, pool, strides, padding in sweep():
        x = rand(rng, shape, dtype)
        y, argmax = _C.max_pool2d_forward(x, pool, strides, padding)
        ref_y, ref_arg = np_max_pool(x, pool, strides, pads_of(shape, pool, strides, padding))
        assert y.dtype == dtype and argmax.dtype == np.int64 and y.shape == ref_y.shape
        np.testing.assert_array_equal(y, ref_y.astype(dtype))  # a maximum is exact
        np.testing.assert_array_equal(argmax, ref_arg)
        if padding == "same":  # TensorFlow's output size
            assert y.shape[1:3] == (-(-shape[1] // strides[0]), -(-shape[2] // strides[1]))
        cases += 1
    assert cases > 100


@pytest.mark.parametrize("dtype", DTYPES)
def test_avg_pool_matches_numpy(dtype):
    rng = np.random.default_rng(1)
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    for shape, pool, strides, padding in sweep():
        x = rand(rng, shape, dtype)
        y = _C.avg_pool2d_forward(x, pool, strides, padding)
        pads = pads_of(shape, pool, strides, padding)
        ref = np_avg_pool(x, pool, strides, pads)
        assert y.dtype == dtype
        np.testing.assert_allclose(y, ref, rtol=rtol, atol=rtol)
        dy = rand(rng, y.shape, dtype)
        dx = _C.avg_pool2d_backward(dy, shape, pool, strides, padding)
        np.testing.assert_allclose(dx, np_avg_pool_backward(dy.astype(np.float64), shape, pool, strides, pads),
                                   rtol=rtol, atol=rtol)


def test_same_padding_is_asymmetric_like_tensorflow():
    # 4 rows, window 2, stride 2... and 5 rows, window 2, stride 2: the extra padded row goes at the bottom.
    x = np.arange(5 * 5, dtype=np.float64).reshape(1, 5, 5, 1)
    y = _C.avg_pool2d_forward(x, 2, 2, "same")[0, :, :, 0]
    # the last window row holds input row 4 alone (padding excluded from the count)
    np.testing.assert_array_equal(y[2], [20.5, 22.5, 24.0])
    np.testing.assert_array_equal(y[0], [3.0, 5.0, 6.5])
    # an even window at stride 1: TensorFlow pads 0 before, 1 after
    assert tf_same(5, 2, 1) == (0, 1)
    y1 = _C.avg_pool2d_forward(x, 2, 1, "same")[0, :, :, 0]
    assert y1[0, 0] == np.mean([0, 1, 5, 6]) and y1[4, 4] == 24.0
    # explicit padding is the same kernel
    np.testing.assert_array_equal(_C.avg_pool2d_forward(x, 2, 1, (0, 1, 0, 1)), _C.avg_pool2d_forward(x, 2, 1, "same"))


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_backward_scatters_to_argmax(dtype):
    rng = np.random.default_rng(2)
    for shape, pool, strides, padding in sweep():
        x = rand(rng, shape, dtype)
        y, argmax = _C.max_pool2d_forward(x, pool, strides, padding)
        dy = rand(rng, y.shape, dtype)
        dx = _C.max_pool2d_backward(dy, argmax, shape)
        ref = np.zeros(x.size)
        np.add.at(ref, argmax.reshape(-1), dy.reshape(-1).astype(np.float64))  # overlapping windows add up
        np.testing.assert_allclose(dx.reshape(-1), ref, rtol=1e-6 if dtype == np.float32 else 1e-15, atol=1e-6)


def test_max_pool_padding_never_wins_and_ties_take_the_first():
    x = np.full((1, 3, 3, 2), -5.0)  # all negative: a zero padding would win if it took part
    x[0, 1, 1, 1] = -1.0
    y, argmax = _C.max_pool2d_forward(x, 3, 1, "same")
    assert np.all(y[..., 0] == -5.0) and np.all(y[..., 1] == -1.0)
    # ties: every value equal, the first real position of each window wins
    flat_index = np.arange(x.size).reshape(x.shape)
    np.testing.assert_array_equal(argmax[0, 0, 0, 0], flat_index[0, 0, 0, 0])
    np.testing.assert_array_equal(argmax[0, 2, 2, 0], flat_index[0, 1, 1, 0])
    assert np.all(argmax[..., 1] == flat_index[0, 1, 1, 1])


def test_max_pool_nan_propagates():
    x = np.zeros((1, 4, 4, 1), np.float32)
    x[0, 1, 1, 0] = np.nan
    x[0, 1, 0, 0] = 5.0
    y, argmax = _C.max_pool2d_forward(x, 2, 2)
    assert np.isnan(y[0, 0, 0, 0]) and argmax[0, 0, 0, 0] == 5 and y[0, 1, 1, 0] == 0
    yr, ar = _C.max_pool2d_forward(x, 2, 2, reference=True)
    np.testing.assert_array_equal(yr, y)
    np.testing.assert_array_equal(ar, argmax)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fast_matches_reference_twin(dtype, simd_path):
    rng = np.random.default_rng(3)
    for shape, pool, strides, padding in list(sweep())[::3] + [((2, 17, 13, 33), (3, 3), (2, 2), "same")]:
        x = rand(rng, shape, dtype)
        y, a = _C.max_pool2d_forward(x, pool, strides, padding)
        yr, ar = _C.max_pool2d_forward(x, pool, strides, padding, reference=True)
        assert np.array_equal(y, yr) and np.array_equal(a, ar)
        dy = rand(rng, y.shape, dtype)
        assert np.array_equal(_C.max_pool2d_backward(dy, a, shape), _C.max_pool2d_backward(dy, a, shape, True))
        z = _C.avg_pool2d_forward(x, pool, strides, padding)
        assert np.array_equal(z, _C.avg_pool2d_forward(x, pool, strides, padding, reference=True))
        assert np.array_equal(_C.avg_pool2d_backward(dy, shape, pool, strides, padding),
                              _C.avg_pool2d_backward(dy, shape, pool, strides, padding, reference=True))


_numeric_grad = central_difference


@pytest.mark.parametrize("pool,strides,padding", [((2, 2), (1, 1), "same"), ((3, 3), (2, 2), "same"),
                                                  ((2, 3), (1, 2), "valid"), ((3, 2), (2, 1), (1, 1, 0, 1))])
def test_backwards_match_central_differences(pool, strides, padding):
    rng = np.random.default_rng(4)
    shape = (2, 4, 5, 2)
    x = rng.permutation(np.arange(np.prod(shape), dtype=np.float64)).reshape(shape) / 7  # distinct: no max ties
    y, argmax = _C.max_pool2d_forward(x, pool, strides, padding)
    dy = rng.standard_normal(y.shape)
    num = _numeric_grad(lambda v: np.sum(dy * _C.max_pool2d_forward(v, pool, strides, padding)[0]), x)
    np.testing.assert_allclose(_C.max_pool2d_backward(dy, argmax, shape), num, rtol=1e-6, atol=1e-8)
    num = _numeric_grad(lambda v: np.sum(dy * _C.avg_pool2d_forward(v, pool, strides, padding)), x)
    np.testing.assert_allclose(_C.avg_pool2d_backward(dy, shape, pool, strides, padding), num, rtol=1e-6, atol=1e-8)


def test_avg_backward_is_the_adjoint():
    rng = np.random.default_rng(5)
    for shape, pool, strides, padding in list(sweep())[::4]:
        x = rng.standard_normal(shape)
        y = _C.avg_pool2d_forward(x, pool, strides, padding)
        dy = rng.standard_normal(y.shape)
        dx = _C.avg_pool2d_backward(dy, shape, pool, strides, padding)
        np.testing.assert_allclose(np.vdot(dy, y), np.vdot(dx, x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_global_pooling(dtype):
    rng = np.random.default_rng(6)
    for shape in [(1, 1, 1, 1), (2, 3, 5, 7), (3, 7, 7, 64), (1, 1, 9, 4)]:
        x = rand(rng, shape, dtype)
        y = _C.global_avg_pool2d_forward(x)
        assert y.shape == (shape[0], shape[3]) and y.dtype == dtype
        np.testing.assert_allclose(y, x.astype(np.float64).mean(axis=(1, 2)), rtol=1e-6, atol=1e-6)
        dy = rand(rng, y.shape, dtype)
        dx = _C.global_avg_pool2d_backward(dy, shape)
        np.testing.assert_allclose(dx, np.broadcast_to(dy[:, None, None, :] / (shape[1] * shape[2]), shape),
                                   rtol=1e-6)
        ym, am = _C.global_max_pool2d_forward(x)
        np.testing.assert_array_equal(ym, x.max(axis=(1, 2)))
        np.testing.assert_array_equal(x.reshape(-1)[am], ym)
        dxm = _C.global_max_pool2d_backward(dy, am, shape)
        ref = np.zeros(x.size, dtype)
        ref[am.reshape(-1)] = dy.reshape(-1)
        np.testing.assert_array_equal(dxm.reshape(-1), ref)
        for fn, args in [(_C.global_avg_pool2d_forward, (x,)), (_C.global_max_pool2d_forward, (x,)),
                         (_C.global_avg_pool2d_backward, (dy, shape)), (_C.global_max_pool2d_backward, (dy, am, shape))]:
            a, b = fn(*args), fn(*args, reference=True)
            for u, v in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
                assert np.array_equal(u, v)


def test_empty_batch_and_channels():
    for shape in [(0, 4, 4, 3), (2, 4, 4, 0)]:
        x = np.zeros(shape, np.float32)
        y, a = _C.max_pool2d_forward(x, 2, 2)
        assert y.shape == (shape[0], 2, 2, shape[3])
        assert _C.max_pool2d_backward(y, a, shape).shape == shape
        assert _C.avg_pool2d_backward(y, shape, 2, 2).shape == shape


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_and_two_threads_are_bit_identical(restore_threads, dtype):
    if not fastnn.build_info()["openmp"]:
        pytest.skip("built without OpenMP: one thread only")
    rng = np.random.default_rng(7)
    previous_guard = _C.oversubscription_guard()
    _C.set_oversubscription_guard("off")  # every region may fork: the 2-thread run is really parallel
    try:
        for shape, pool, strides, padding in [((8, 32, 32, 16), 3, 1, "same"), ((6, 27, 19, 5), 3, 2, "same"),
                                              ((16, 14, 14, 32), 2, 2, "valid"), ((4, 30, 30, 8), 3, 1, "valid")]:
            x = rand(rng, shape, dtype)
            results = []
            for threads in (1, 2):
                fastnn.set_num_threads(threads)
                before = fastnn.build_info()["parallel_regions"]
                y, a = _C.max_pool2d_forward(x, pool, strides, padding)
                dy = rand(np.random.default_rng(8), y.shape, dtype)
                out = [y, a, _C.max_pool2d_backward(dy, a, shape), _C.avg_pool2d_forward(x, pool, strides, padding),
                       _C.avg_pool2d_backward(dy, shape, pool, strides, padding), _C.global_avg_pool2d_forward(x)]
                if threads == 2:
                    assert fastnn.build_info()["parallel_regions"] - before >= 3
                results.append(out)
            for one, two in zip(*results):
                assert np.array_equal(one, two)
    finally:
        _C.set_oversubscription_guard(previous_guard)


# -- bad input ------------------------------------------------------------------------------------------------------

X = np.zeros((2, 5, 5, 3), np.float32)


@pytest.mark.parametrize("call,error,match", [
    (lambda: _C.max_pool2d_forward(X, (6, 6), 1), ValueError, r"max_pool2d_forward: pool window \(6, 6\) is larger "
                                                              r"than the padded input \(5, 5\)"),
    (lambda: _C.avg_pool2d_forward(X, (2, 2), (0, 1)), ValueError, r"avg_pool2d_forward: strides must be positive"),
    (lambda: _C.max_pool2d_forward(X, (0, 2), 1), ValueError, r"pool must be positive"),
    (lambda: _C.max_pool2d_forward(X, (-2, 2), 1), ValueError, r"pool must be positive"),
    (lambda: _C.max_pool2d_forward(X, (2, 2, 2), 1), ValueError, r"pool must have 2 entries"),
    (lambda: _C.max_pool2d_forward(X, 2.0, 1), TypeError, r"pool must be an int or a tuple of 2 ints"),
    (lambda: _C.max_pool2d_forward(X, (True, 2), 1), TypeError, r"pool must be made of ints"),
    (lambda: _C.max_pool2d_forward(X, 2, 1, "full"), ValueError, r"padding must be 'valid', 'same'"),
    (lambda: _C.max_pool2d_forward(X, 2, 1, (2, 0, 0, 0)), ValueError, r"padding \(2, 0, 0, 0\) must be smaller than "
                                                                       r"the pool window \(2, 2\)"),
    (lambda: _C.max_pool2d_forward(X, 2, 1, (0, -1, 0, 0)), ValueError, r"padding must be non-negative"),
    (lambda: _C.max_pool2d_forward(X, 2, 2 ** 50), ValueError, r"at most 2\^40"),
    (lambda: _C.max_pool2d_forward(X[0], 2, 1), ValueError, r"max_pool2d_forward: x must be 4-D, but received shape "
                                                            r"\(5, 5, 3\)"),
    (lambda: _C.max_pool2d_forward(X.astype(np.int32), 2, 1), TypeError, r"x must be float32 or float64"),
    (lambda: _C.max_pool2d_forward(X[:, :, ::2], 2, 1), ValueError, r"x must be C-contiguous"),
    (lambda: _C.max_pool2d_forward(np.zeros((1, 0, 4, 1)), 1, 1), ValueError, r"empty spatial axis"),
    (lambda: _C.avg_pool2d_backward(np.zeros((2, 2, 2, 3), np.float32), (2, 5, 5, 3), 2, 1), ValueError,
     r"avg_pool2d_backward: dy must have the forward's output shape \(2, 4, 4, 3\)"),
    (lambda: _C.avg_pool2d_backward(np.zeros((2, 4, 4, 3), np.float32), (2, 5, 5), 2, 1), ValueError,
     r"input_shape must have 4 entries"),
    (lambda: _C.global_avg_pool2d_backward(np.zeros((2, 4), np.float32), (2, 5, 5, 3)), ValueError,
     r"global_avg_pool2d_backward: dy must have shape \(2, 3\) for input_shape \(2, 5, 5, 3\), but received shape "
     r"\(2, 4\)"),
    (lambda: _C.global_max_pool2d_forward(X[0]), ValueError, r"global_max_pool2d_forward: x must be 4-D"),
])
def test_bad_input_messages(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_forged_argmax_is_refused():
    rng = np.random.default_rng(9)
    x = rand(rng, (2, 4, 4, 3), np.float32)
    y, a = _C.max_pool2d_forward(x, 2, 2)
    dy = np.ones_like(y)
    for forged, what in [(x.size, "past the end"), (-1, "negative"), (2 ** 62, "huge")]:
        b = a.copy()
        b[1, 1, 0, 2] = forged
        with pytest.raises(ValueError, match=r"max_pool2d_backward: argmax \(flat position 20\) holds"):
            _C.max_pool2d_backward(dy, b, x.shape)
    b = a.copy()
    b[1, 0, 0, 0] = a[0, 0, 0, 0]  # another image's index
    with pytest.raises(ValueError, match=r"not an index into image 1, channel 0"):
        _C.max_pool2d_backward(dy, b, x.shape)
    b = a.copy()
    b[0, 0, 0, 1] = a[0, 0, 0, 0]  # another channel's index
    with pytest.raises(ValueError, match=r"channel 1"):
        _C.max_pool2d_backward(dy, b, x.shape)
    with pytest.raises(TypeError, match=r"argmax must be an int64 array"):
        _C.max_pool2d_backward(dy, a.astype(np.int32), x.shape)
    with pytest.raises(ValueError, match=r"argmax must have dy's shape"):
        _C.max_pool2d_backward(dy, a[:, :1].copy(), x.shape)
    with pytest.raises(ValueError, match=r"does not match input_shape"):
        _C.max_pool2d_backward(dy, a, (2, 4, 4, 4))
    with pytest.raises(TypeError, match=r"dy must have the dtype|dy must be float32"):
        _C.max_pool2d_backward(dy.astype(np.int64), a, x.shape)
    _, ag = _C.global_max_pool2d_forward(x)
    ag[0, 0] = x.size + 5
    with pytest.raises(ValueError, match=r"global_max_pool2d_backward: argmax"):
        _C.global_max_pool2d_backward(np.ones((2, 3), np.float32), ag, x.shape)
