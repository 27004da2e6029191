"""The convolution kernels (csrc/cpu/conv.cpp, reference twin conv_ref.cpp, bindings csrc/python/bind_conv.cpp):
forward, backward input and backward weight against a NumPy float64 reference over a sweep of shapes (batch 1-3,
sizes 1 and odd, kernels 1x1 / 2x2 / 3x3 / 5x5, strides 1-3, dilation 1-2, valid and TensorFlow-same padding,
groups 1 / 2 / 4, bias and ReLU), fast against the reference twin, the backward kernels against the adjoint identity
and float64 central finite differences, tiled column buffers, 1 vs 2 threads bit-identical, and bad input; the same
for the depthwise kernels (w (KH, KW, C, M)) against the grouped NumPy reference with groups = C."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import fastnn
from fastnn import _C

DTYPES = (np.float32, np.float64)
TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}


# ----------------------------------------------------------------------------------------------------------------
# NumPy float64 reference
# ----------------------------------------------------------------------------------------------------------------
def same_padding(size, kernel, stride, dilation):
    """TensorFlow's 'same': out = ceil(size / stride), the odd element of the total padding at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def pads_for(x_shape, k_shape, strides, dilation, padding):
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        return same_padding(x_shape[1], k_shape[0], strides[0], dilation[0]) + same_padding(
            x_shape[2], k_shape[1], strides[1], dilation[1])
    return tuple(padding)


def out_size(size, kernel, stride, dilation, lo, hi):
    return (size + lo + hi - dilation * (kernel - 1) - 1) // stride + 1


def taps(xp_shape, kh, kw, oh, ow, strides, dilation):
    """The slices of the padded input that kernel tap (kh, kw) reads for every output pixel."""
    (sh, sw), (dh, dw) = strides, dilation
    return (slice(None), slice(kh * dh, kh * dh + sh * (oh - 1) + 1, sh),
            slice(kw * dw, kw * dw + sw * (ow - 1) + 1, sw))


def np_conv(x, w, bias, strides, pads, dilation, groups, activation="linear"):
    x, w = x.astype(np.float64), w.astype(np.float64)
    n, h, wd, c = x.shape
    khs, kws, cg, f = w.shape
    pt, pb, pl, pr = pads
    oh = out_size(h, khs, strides[0], dilation[0], pt, pb)
    ow = out_size(wd, kws, strides[1], dilation[1], pl, pr)
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    y = np.zeros((n, oh, ow, f))
    fg = f // groups
    for kh, kw in itertools.product(range(khs), range(kws)):
        patch = xp[taps(xp.shape, kh, kw, oh, ow, strides, dilation)]
        for g in range(groups):
            y[..., g * fg:(g + 1) * fg] += patch[..., g * cg:(g + 1) * cg] @ w[kh, kw][:, g * fg:(g + 1) * fg]
    if bias is not None:
        y += bias.astype(np.float64)
    return np.maximum(y, 0) if activation == "relu" else y


def np_conv_backward(x, w, dy, strides, pads, dilation, groups):
    """(dx, dw, db) of np_conv without activation, for dy of its output."""
    x, w, dy = x.astype(np.float64), w.astype(np.float64), dy.astype(np.float64)
    n, h, wd, c = x.shape
    khs, kws, cg, f = w.shape
    pt, pb, pl, pr = pads
    oh, ow = dy.shape[1:3]
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    fg = f // groups
    for kh, kw in itertools.product(range(khs), range(kws)):
        sl = taps(xp.shape, kh, kw, oh, ow, strides, dilation)
        patch = xp[sl]
        for g in range(groups):
            cs, fs = slice(g * cg, (g + 1) * cg), slice(g * fg, (g + 1) * fg)
            dxp[sl + (cs,)] += dy[..., fs] @ w[kh, kw][:, fs].T
            dw[kh, kw][:, fs] += np.einsum("nhwc,nhwf->cf", patch[..., cs], dy[..., fs])
    dx = dxp[:, pt:pt + h, pl:pl + wd, :]
    return dx, dw, dy.sum(axis=(0, 1, 2))


# ----------------------------------------------------------------------------------------------------------------
# The sweep
# ----------------------------------------------------------------------------------------------------------------
# (batch, H, W, C, KH, KW, F, strides, dilation, padding, groups)
CASES = [
    (1, 1, 1, 1, 1, 1, 1, (1, 1), (1, 1), "valid", 1),        # everything size 1 (pointwise path)
    (2, 5, 7, 3, 1, 1, 4, (1, 1), (1, 1), "valid", 1),        # pointwise, odd sizes
    (3, 6, 5, 4, 1, 1, 6, (1, 1), (1, 1), "same", 2),         # pointwise, groups
    (2, 7, 6, 3, 1, 1, 5, (2, 3), (1, 1), "valid", 1),        # 1x1 strided: im2col path
    (1, 5, 5, 2, 3, 3, 3, (1, 1), (1, 1), "valid", 1),
    (2, 7, 9, 3, 3, 3, 4, (1, 1), (1, 1), "same", 1),
    (3, 8, 6, 4, 3, 3, 8, (2, 2), (1, 1), "same", 2),
    (1, 9, 11, 4, 3, 3, 4, (3, 2), (2, 1), "valid", 4),
    (2, 6, 6, 2, 2, 2, 3, (1, 1), (1, 1), "same", 1),         # even kernel: the extra padding at the bottom / right
    (1, 7, 5, 4, 2, 2, 4, (2, 2), (1, 1), "same", 2),
    (2, 11, 10, 3, 5, 5, 2, (1, 1), (1, 1), "same", 1),
    (1, 12, 13, 2, 5, 5, 3, (2, 3), (1, 2), "same", 1),
    (2, 9, 8, 8, 3, 3, 8, (1, 1), (2, 2), "same", 4),          # dilated same, groups 4
    (1, 3, 3, 2, 3, 3, 2, (1, 1), (1, 1), "valid", 1),         # output 1x1
    (1, 1, 6, 3, 1, 3, 2, (1, 2), (1, 1), "same", 1),          # H = 1
    (2, 4, 4, 3, 3, 3, 2, (3, 3), (1, 1), (1, 0, 2, 1), 1),    # explicit asymmetric padding
    (1, 5, 6, 2, 3, 2, 4, (1, 1), (2, 1), (2, 2, 0, 3), 2),
    (3, 4, 5, 6, 2, 3, 3, (2, 1), (1, 2), "valid", 3),
]


def make_case(case, dtype, seed=0):
    n, h, wd, c, kh, kw, f, strides, dilation, padding, groups = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, wd, c)).astype(dtype)
    w = rng.standard_normal((kh, kw, c // groups, f)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    pads = pads_for(x.shape, w.shape, strides, dilation, padding)
    return x, w, b, dict(strides=strides, padding=padding, dilation=dilation, groups=groups), pads


def check(got, want, dtype, scale=1.0):
    np.testing.assert_allclose(got, want, rtol=TOL[dtype]["rtol"], atol=TOL[dtype]["atol"] * scale)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[:7])) + f"-s{c[7]}-d{c[8]}-{c[9]}-g{c[10]}")
def test_forward_matches_numpy(case, dtype):
    x, w, b, kw, pads = make_case(case, dtype)
    for bias, act in ((None, "linear"), (b, "relu"), (b, "linear")):
        want = np_conv(x, w, bias, kw["strides"], pads, kw["dilation"], kw["groups"], act)
        scale = np.sqrt(w.shape[0] * w.shape[1] * w.shape[2])
        for fn in (_C.conv2d_forward, _C.conv2d_forward_ref):
            y = fn(x, w, bias, activation=act, **kw)
            assert y.dtype == dtype and y.shape == want.shape
            check(y, want, dtype, scale)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[:7])) + f"-s{c[7]}-d{c[8]}-{c[9]}-g{c[10]}")
def test_backward_matches_numpy(case, dtype):
    x, w, b, kw, pads = make_case(case, dtype)
    y_shape = np_conv(x, w, None, kw["strides"], pads, kw["dilation"], kw["groups"]).shape
    dy = np.random.default_rng(1).standard_normal(y_shape).astype(dtype)
    dx_want, dw_want, db_want = np_conv_backward(x, w, dy, kw["strides"], pads, kw["dilation"], kw["groups"])
    scale = np.sqrt(max(dy.size // dy.shape[-1], w.shape[-1] * w.shape[0] * w.shape[1]))
    for suffix in ("", "_ref"):
        dx = getattr(_C, "conv2d_backward_input" + suffix)(dy, w, x.shape, **kw)
        dw, db = getattr(_C, "conv2d_backward_weight" + suffix)(x, dy, w.shape, **kw)
        assert dx.dtype == dw.dtype == db.dtype == dtype
        check(dx, dx_want, dtype, scale)
        check(dw, dw_want, dtype, scale)
        check(db, db_want, dtype, scale)
        dw_only, none = getattr(_C, "conv2d_backward_weight" + suffix)(x, dy, w.shape, with_bias=False, **kw)
        assert none is None and np.array_equal(dw_only, dw)


@pytest.mark.parametrize("case", CASES[::3], ids=lambda c: "x".join(map(str, c[:7])))
def test_backward_satisfies_the_adjoint_identity(case):
    """<dy, conv(x, w)> = <conv_input^T(dy), x> = <conv_weight^T(x, dy), w>: the convolution is linear in x and in w."""
    x, w, _, kw, _ = make_case(case, np.float64, seed=3)
    y = _C.conv2d_forward(x, w, **kw)
    dy = np.random.default_rng(4).standard_normal(y.shape)
    inner = np.vdot(dy, y)
    dx = _C.conv2d_backward_input(dy, w, x.shape, **kw)
    dw, db = _C.conv2d_backward_weight(x, dy, w.shape, **kw)
    assert np.vdot(dx, x) == pytest.approx(inner, rel=1e-12, abs=1e-12)
    assert np.vdot(dw, w) == pytest.approx(inner, rel=1e-12, abs=1e-12)
    assert db == pytest.approx(dy.sum(axis=(0, 1, 2)), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("case", [
    (1, 4, 5, 2, 3, 3, 2, (1, 1), (1, 1), "same", 1),
    (2, 5, 4, 4, 2, 3, 4, (2, 1), (1, 2), "same", 2),
    (1, 3, 3, 2, 1, 1, 3, (1, 1), (1, 1), "valid", 1),
], ids=["3x3-same", "2x3-strided-dilated-groups", "pointwise"])
def test_backward_matches_central_finite_differences(case):
    """float64 central differences of L = sum(dy * relu(conv(x, w) + b)) against the kernels' gradients (the ReLU's
    mask applied to dy by the caller, as the kernels' contract says)."""
    x, w, b, kw, _ = make_case(case, np.float64, seed=5)
    y = _C.conv2d_forward(x, w, b, activation="relu", **kw)
    g = np.random.default_rng(6).standard_normal(y.shape)

    def loss(xv, wv, bv):
        return float(np.vdot(g, _C.conv2d_forward(xv, wv, bv, activation="relu", **kw)))

    dy = g * (y > 0)
    dx = _C.conv2d_backward_input(dy, w, x.shape, **kw)
    dw, db = _C.conv2d_backward_weight(x, dy, w.shape, **kw)
    eps = 1e-6
    for array, grad, which in ((x, dx, 0), (w, dw, 1), (b, db, 2)):
        numeric = np.zeros_like(array)
        for idx in np.ndindex(array.shape):
            args = [x.copy(), w.copy(), b.copy()]
            args[which][idx] += eps
            up = loss(*args)
            args[which][idx] -= 2 * eps
            numeric[idx] = (up - loss(*args)) / (2 * eps)
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_weight_accumulates_into_given_buffers(dtype):
    """Parameter gradients accumulate (DESIGN §3): dw / db given are added to, in place."""
    x, w, _, kw, _ = make_case(CASES[6], dtype, seed=7)
    dy = np.random.default_rng(8).standard_normal(_C.conv2d_forward(x, w, **kw).shape).astype(dtype)
    fresh_dw, fresh_db = _C.conv2d_backward_weight(x, dy, w.shape, **kw)
    for suffix in ("", "_ref"):
        dw0 = np.random.default_rng(9).standard_normal(w.shape).astype(dtype)
        db0 = np.random.default_rng(10).standard_normal(w.shape[-1]).astype(dtype)
        dw, db = dw0.copy(), db0.copy()
        out_dw, out_db = getattr(_C, "conv2d_backward_weight" + suffix)(x, dy, w.shape, dw=dw, db=db, **kw)
        assert out_dw is dw and out_db is db
        check(dw, dw0.astype(np.float64) + fresh_dw, dtype, 10)
        check(db, db0.astype(np.float64) + fresh_db, dtype, 10)


def test_same_padding_helper_is_tensorflows():
    for size, kernel, stride, dilation in itertools.product((1, 2, 5, 8, 13), (1, 2, 3, 4, 5), (1, 2, 3), (1, 2)):
        assert _C.conv_same_padding(size, kernel, stride, dilation) == same_padding(size, kernel, stride, dilation)
        top, bottom = _C.conv_same_padding(size, kernel, stride, dilation)
        assert bottom - top in (0, 1)  # the extra row / column goes to the bottom / right
        assert out_size(size, kernel, stride, dilation, top, bottom) == -(-size // stride)
    x = np.ones((1, 6, 6, 1))
    assert _C.conv2d_forward(x, np.ones((2, 2, 1, 1)), padding="same").shape == (1, 6, 6, 1)
    # An even kernel pads one row below and one column to the right only: the bottom-right output sees 1 input.
    y = _C.conv2d_forward(x, np.ones((2, 2, 1, 1)), padding="same")
    assert y[0, -1, -1, 0] == 1 and y[0, 0, 0, 0] == 4
    with pytest.raises(ValueError, match="conv_same_padding"):
        _C.conv_same_padding(5, 0, 1, 1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_tiled_column_buffer_matches_the_reference(dtype):
    """An input whose column matrix (pixels x KH*KW*C) exceeds the 4 MB tile budget runs as several tiles, their
    boundaries inside images: same answers as the untiled reference twin."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 47, 45, 32)).astype(dtype)   # 2*45*43 pixels x 288 columns: 4.5 MB in float32
    w = (rng.standard_normal((3, 3, 32, 6)) / 10).astype(dtype)
    b = rng.standard_normal(6).astype(dtype)
    kw = dict(strides=1, padding="valid", groups=2)
    w = w[:, :, :16, :].copy()
    assert x.shape[0] * 45 * 43 * 9 * 32 * np.dtype(dtype).itemsize > 4 << 20
    y = _C.conv2d_forward(x, w, b, activation="relu", **kw)
    check(y, _C.conv2d_forward_ref(x, w, b, activation="relu", **kw), dtype, 10)
    dy = rng.standard_normal(y.shape).astype(dtype)
    check(_C.conv2d_backward_input(dy, w, x.shape, **kw), _C.conv2d_backward_input_ref(dy, w, x.shape, **kw), dtype, 10)
    dw, db = _C.conv2d_backward_weight(x, dy, w.shape, **kw)
    dw_ref, db_ref = _C.conv2d_backward_weight_ref(x, dy, w.shape, **kw)
    check(dw, dw_ref, dtype, 300)
    check(db, db_ref, dtype, 300)


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_and_two_threads_are_bit_identical(restore_threads, simd_path, dtype):
    if not fastnn.build_info()["openmp"]:
        pytest.skip("built without OpenMP: one thread only")
    rng = np.random.default_rng(12)
    previous_guard = _C.oversubscription_guard()
    _C.set_oversubscription_guard("off")  # every region may fork: the 2-thread run is really parallel
    try:
        for shape, kshape, kw in [((2, 30, 31, 16), (3, 3, 16, 24), dict(padding="same")),
                                  ((3, 20, 20, 8), (1, 1, 8, 16), {}),
                                  ((2, 47, 45, 32), (3, 3, 8, 8), dict(strides=2, dilation=1, groups=4)),
                                  ((1, 25, 24, 6), (5, 5, 6, 4), dict(dilation=2, padding="same"))]:
            x = rng.standard_normal(shape).astype(dtype)
            w = rng.standard_normal(kshape).astype(dtype)
            b = rng.standard_normal(kshape[-1]).astype(dtype)
            results = []
            for threads in (1, 2):
                fastnn.set_num_threads(threads)
                before = fastnn.build_info()["parallel_regions"]
                y = _C.conv2d_forward(x, w, b, activation="relu", **kw)
                dy = np.ascontiguousarray(np.cos(y))
                dx = _C.conv2d_backward_input(dy, w, x.shape, **kw)
                dw, db = _C.conv2d_backward_weight(x, dy, w.shape, **kw)
                results.append((y, dx, dw, db))
                if threads == 2:
                    assert fastnn.build_info()["parallel_regions"] > before, shape
            for one, two in zip(*results):
                assert np.array_equal(one, two), shape
    finally:
        _C.set_oversubscription_guard(previous_guard)


# The fast paths' own decompositions (csrc/cpu/conv.cpp): tiles of output pixels run in parallel, each tile's im2col
# and GEMM on one thread (tile size from the L2, so every cache configuration is swept); the backward-input of a
# stride-1 convolution with at least 16 channels per group as the forward kernel on dy with the flipped weights (else
# the col2im path: strided, over-padded, or narrow); the backward-weight's pixel sum in fixed partitions added in
# order (one partition when dw is too large for the partial-sum budget).
WIDE_CASES = [
    (2, 9, 10, 16, 3, 3, 8, (1, 1), (1, 1), "same", 1),         # flipped backward-input, odd kernel
    (1, 8, 7, 17, 2, 2, 5, (1, 1), (1, 1), "same", 1),          # even kernel: asymmetric padding flips sides
    (2, 11, 9, 32, 3, 3, 12, (1, 1), (2, 1), "same", 2),        # dilated, groups
    (1, 7, 8, 48, 3, 2, 6, (1, 1), (1, 2), "valid", 3),         # valid: the flipped conv pads the full reach
    (1, 6, 9, 16, 3, 3, 4, (1, 1), (1, 1), (2, 1, 0, 2), 1),    # explicit padding within the reach
    (1, 6, 6, 16, 3, 3, 4, (1, 1), (1, 1), (3, 0, 1, 1), 1),    # padding beyond the reach: col2im path
    (2, 6, 7, 16, 3, 3, 4, (2, 1), (1, 1), "same", 1),          # strided: col2im path
    (1, 1, 40, 24, 1, 5, 7, (1, 1), (1, 3), "same", 1),         # H = 1 (the 1-D layers' form)
    (3, 10, 10, 20, 1, 1, 9, (1, 1), (1, 1), "valid", 1),       # pointwise: backward-weight in partitions
    (1, 8, 8, 128, 3, 3, 1024, (1, 1), (1, 1), "same", 1),      # dw of 4.7 MB: one partition, two tiles
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", WIDE_CASES, ids=lambda c: "x".join(map(str, c[:7])) + f"-s{c[7]}-{c[9]}-g{c[10]}")
def test_tile_parallel_paths_match_numpy(case, dtype, cache_config):
    x, w, b, kw, pads = make_case(case, dtype, seed=21)
    y_want = np_conv(x, w, b, kw["strides"], pads, kw["dilation"], kw["groups"], "relu")
    dy = np.random.default_rng(22).standard_normal(y_want.shape).astype(dtype)
    dx_want, dw_want, db_want = np_conv_backward(x, w, dy, kw["strides"], pads, kw["dilation"], kw["groups"])
    scale = np.sqrt(max(dy.size // dy.shape[-1], w.shape[0] * w.shape[1] * w.shape[2]))
    check(_C.conv2d_forward(x, w, b, activation="relu", **kw), y_want, dtype, scale)
    check(_C.conv2d_backward_input(dy, w, x.shape, **kw), dx_want, dtype, scale)
    dw0 = np.random.default_rng(23).standard_normal(w.shape).astype(dtype)
    db0 = np.random.default_rng(24).standard_normal(w.shape[-1]).astype(dtype)
    dw, db = dw0.copy(), db0.copy()
    _C.conv2d_backward_weight(x, dy, w.shape, dw=dw, db=db, **kw)  # accumulates into the partition sums' target
    check(dw, dw0.astype(np.float64) + dw_want, dtype, scale)
    check(db, db0.astype(np.float64) + db_want, dtype, scale)


# Winograd F(2x2, 3x3) (csrc/cpu/conv_winograd.cpp): conv2d_forward's path for 3x3, stride-1, undilated, ungrouped
# convolutions with >= 16 channels in and out, and so the stride-1 backward-input's too (a forward convolution of
# dy with flipped weights). Odd output sizes leave half-empty 2x2 tiles at the bottom / right; explicit paddings move
# the tiles' origins; the tiny cache configuration makes blocks of few tiles. Every SIMD path's tile transforms give
# the same bits (additions only).
WINOGRAD_CASES = [
    # (batch, H, W, C, F, padding)
    (1, 3, 3, 16, 16, "valid"),        # a 1x1 output: not Winograd (oh < 2), the im2col path
    (1, 4, 4, 16, 16, "valid"),        # exactly one tile
    (2, 7, 9, 16, 24, "same"),         # odd sizes: partial tiles at the bottom and right
    (3, 12, 10, 20, 17, "valid"),
    (1, 9, 8, 33, 40, (0, 2, 1, 1)),   # explicit asymmetric padding
    (4, 14, 14, 32, 64, "same"),       # many tiles: several blocks, blocks across images
]


def _winograd_case(case, dtype, seed):
    n, h, w, c, f, padding = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    k = (rng.standard_normal((3, 3, c, f)) / np.sqrt(9 * c)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    return x, k, b, dict(padding=padding)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", WINOGRAD_CASES, ids=lambda c: "x".join(map(str, c[:5])) + f"-{c[5]}")
def test_winograd_matches_numpy_and_im2col(case, dtype, simd_path, cache_config):
    x, k, b, kw = _winograd_case(case, dtype, seed=31)
    pads = pads_for(x.shape, k.shape, (1, 1), (1, 1), kw["padding"])
    want = np_conv(x, k, b, (1, 1), pads, (1, 1), 1, "relu")
    dy = np.random.default_rng(32).standard_normal(want.shape).astype(dtype)
    dx_want, dk_want, db_want = np_conv_backward(x, k, dy, (1, 1), pads, (1, 1), 1)
    assert _C.conv2d_winograd_enabled()
    y = _C.conv2d_forward(x, k, b, activation="relu", **kw)
    dx = _C.conv2d_backward_input(dy, k, x.shape, **kw)
    dk0 = np.random.default_rng(34).standard_normal(k.shape).astype(dtype)   # the weight gradient accumulates
    dk, db = dk0.copy(), np.ones(k.shape[-1], dtype)
    _C.conv2d_backward_weight(x, dy, k.shape, dw=dk, db=db, **kw)
    scale = np.sqrt(dy.size // dy.shape[-1])
    check(y, want, dtype, 4)
    check(dx, dx_want, dtype, 4)
    check(dk, dk0.astype(np.float64) + dk_want, dtype, scale)
    check(db, 1 + db_want, dtype, scale)
    previous = _C.set_conv2d_winograd(False)
    try:
        y_im2col = _C.conv2d_forward(x, k, b, activation="relu", **kw)
        dx_im2col = _C.conv2d_backward_input(dy, k, x.shape, **kw)
        dk_im2col, _ = _C.conv2d_backward_weight(x, dy, k.shape, **kw)
    finally:
        _C.set_conv2d_winograd(previous)
    check(y, y_im2col, dtype, 4)
    check(dx, dx_im2col, dtype, 4)
    check(dk, dk0.astype(np.float64) + dk_im2col, dtype, scale)
    if want.shape[1] >= 2 and want.shape[2] >= 2:   # Winograd ran: not the im2col path's bits
        assert not np.array_equal(y, y_im2col)


def test_winograd_propagates_nan_and_relu_keeps_it():
    """A NaN input reaches every output its 3x3 window covers (the transforms add it in), and ReLU keeps NaN."""
    x = np.ones((1, 6, 6, 16), np.float32)
    x[0, 2, 3, 5] = np.nan
    k = np.ones((3, 3, 16, 16), np.float32)
    y = _C.conv2d_forward(x, k, None, padding="same", activation="relu")
    nan_rows, nan_cols = np.nonzero(np.isnan(y[0, :, :, 0]))
    assert set(zip(nan_rows, nan_cols)) == {(i, j) for i in (1, 2, 3) for j in (2, 3, 4)}


# The second case is the benchmark CNN's third layer (7x7x64->128, batch 64): 15 blocks, whose backward-weight runs
# in two partitions (a power of two, at least four blocks each); three threads split two partitions unevenly.
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [(5, 15, 13, 24, 32, "same"), (64, 7, 7, 64, 128, "same")],
                         ids=lambda c: "x".join(map(str, c[:5])))
def test_winograd_one_and_two_threads_are_bit_identical(restore_threads, dtype, case):
    if not fastnn.build_info()["openmp"]:
        pytest.skip("built without OpenMP: one thread only")
    x, k, b, kw = _winograd_case(case, dtype, seed=33)
    previous_guard = _C.oversubscription_guard()
    _C.set_oversubscription_guard("off")
    try:
        results = []
        for threads in (1, 2, 3):
            fastnn.set_num_threads(threads)
            y = _C.conv2d_forward(x, k, b, activation="relu", **kw)
            dy = np.ascontiguousarray(np.cos(y))
            results.append((y, _C.conv2d_backward_input(dy, k, x.shape, **kw),
                            *_C.conv2d_backward_weight(x, dy, k.shape, **kw)))
        for one, two, three in zip(*results):
            assert np.array_equal(one, two) and np.array_equal(one, three)
    finally:
        _C.set_oversubscription_guard(previous_guard)


# Thin convolutions (KW*C <= 16, one group, unit W dilation: the first layers) run their forward without im2col: each
# output row's kernel rows copied zero-padded once, a tile of pixels x filters summed over the kernel rows in
# registers with the bias and ReLU (csrc/cpu/conv.cpp thin_forward, SegmentsKernel). Wide and strided rows, padding
# wider than the kernel, kernel rows wholly outside the image, H dilation, and filter counts off the register tile.
THIN_CASES = [
    # (batch, H, W, C, KH, KW, F, strides, dilation, padding)
    (2, 28, 28, 1, 3, 3, 32, (1, 1), (1, 1), "same"),
    (1, 9, 31, 3, 3, 3, 64, (1, 1), (1, 1), "same"),
    (3, 7, 10, 3, 3, 3, 5, (2, 3), (1, 1), "valid"),
    (1, 6, 7, 2, 5, 3, 17, (1, 2), (2, 1), "same"),
    (2, 3, 4, 1, 3, 5, 9, (1, 1), (1, 1), (4, 4, 6, 7)),   # padding beyond the kernel: rows / columns of zeros only
    (1, 1, 13, 4, 1, 4, 40, (1, 1), (1, 1), "same"),        # H = 1 (Conv1D's form), KW*C = 16
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", THIN_CASES, ids=lambda c: "x".join(map(str, c[:7])) + f"-s{c[7]}-{c[9]}")
def test_thin_forward_matches_numpy(case, dtype, simd_path):
    n, h, wd, c, kh, kw_, f, strides, dilation, padding = case
    rng = np.random.default_rng(41)
    x = rng.standard_normal((n, h, wd, c)).astype(dtype)
    k = rng.standard_normal((kh, kw_, c, f)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    kw = dict(strides=strides, dilation=dilation, padding=padding)
    pads = pads_for(x.shape, k.shape, strides, dilation, padding)
    for activation in ("linear", "relu"):
        want = np_conv(x, k, b, strides, pads, dilation, 1, activation)
        check(_C.conv2d_forward(x, k, b, activation=activation, **kw), want, dtype, 4)
    check(_C.conv2d_forward(x, k, None, **kw), np_conv(x, k, None, strides, pads, dilation, 1), dtype, 4)


def test_thin_forward_relu_keeps_nan_and_negative_zero_as_the_gemm_does():
    x = np.zeros((1, 4, 4, 1), np.float32)
    x[0, 1, 1, 0] = np.nan
    k = np.ones((3, 3, 1, 16), np.float32)
    k[..., 3] = -1.0
    b = np.zeros(16, np.float32)
    b[5] = -0.0
    y = _C.conv2d_forward(x, k, b, padding="same", activation="relu")
    want = _C.conv2d_forward_ref(x, k, b, padding="same", activation="relu")
    assert np.array_equal(np.isnan(y), np.isnan(want)) and np.isnan(y[0, 0, 0, 0])
    assert np.array_equal(np.signbit(y[~np.isnan(y)]), np.signbit(want[~np.isnan(want)]))


def test_empty_batch_and_zero_filters():
    x = np.zeros((0, 5, 5, 2), np.float32)
    w = np.ones((3, 3, 2, 4), np.float32)
    assert _C.conv2d_forward(x, w).shape == (0, 3, 3, 4)
    assert _C.conv2d_backward_input(np.zeros((0, 3, 3, 4), np.float32), w, x.shape).shape == x.shape
    dw, db = _C.conv2d_backward_weight(x, np.zeros((0, 3, 3, 4), np.float32), w.shape)
    assert not dw.any() and not db.any()


# ----------------------------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------------------------
X = np.ones((2, 5, 5, 4), np.float32)
W = np.ones((3, 3, 4, 6), np.float32)
DY = np.ones((2, 3, 3, 6), np.float32)

BAD_CALLS = [
    (lambda: _C.conv2d_forward(X[0], W), ValueError, r"conv2d_forward: x must be 4-D, but received shape \(5, 5, 4\)"),
    (lambda: _C.conv2d_forward(X, W[0]), ValueError, r"conv2d_forward: w must be 4-D"),
    (lambda: _C.conv2d_forward(X.astype(np.int32), W), TypeError, r"conv2d_forward: x must be float32 or float64"),
    (lambda: _C.conv2d_forward(X, W.astype(np.float64)), TypeError, r"w must have the same dtype as x \(float32\)"),
    (lambda: _C.conv2d_forward(X[:, ::2], W), ValueError, r"conv2d_forward: x must be C-contiguous"),
    (lambda: _C.conv2d_forward(X, np.ones((3, 3, 3, 6), np.float32)), ValueError,
     r"takes 3 input channels per group, but the input of shape \(2, 5, 5, 4\) has 4 channels"),
    (lambda: _C.conv2d_forward(X, np.ones((7, 3, 4, 6), np.float32)), ValueError,
     r"kernel \(7, 3\) with dilation \(1, 1\) spans \(7, 3\), larger than the padded input \(5, 5\)"),
    (lambda: _C.conv2d_forward(X, W, dilation=3), ValueError, r"spans \(7, 7\), larger than the padded input"),
    (lambda: _C.conv2d_forward(X, np.ones((0, 3, 4, 6), np.float32)), ValueError, r"at least 1x1"),
    (lambda: _C.conv2d_forward(X, W, strides=0), ValueError, r"conv2d_forward: strides must be >= 1.*\(0, 0\)"),
    (lambda: _C.conv2d_forward(X, W, strides=(1, -2)), ValueError, r"strides must be >= 1.*\(1, -2\)"),
    (lambda: _C.conv2d_forward(X, W, dilation=(0, 1)), ValueError, r"dilation must be >= 1"),
    (lambda: _C.conv2d_forward(X, W, strides=(1, 2, 3)), TypeError, r"strides must be an int or a tuple of 2 ints"),
    (lambda: _C.conv2d_forward(X, W, strides=1.5), TypeError, r"strides must be an int or a tuple of 2 ints"),
    (lambda: _C.conv2d_forward(X, W, padding=(1, -1, 0, 0)), ValueError, r"padding must be >= 0.*\(1, -1, 0, 0\)"),
    (lambda: _C.conv2d_forward(X, W, padding="full"), ValueError, r"padding must be 'valid', 'same'.*'full'"),
    (lambda: _C.conv2d_forward(X, W, padding=(1, 1)), TypeError, r"padding must be an int or a tuple of 4 ints"),
    (lambda: _C.conv2d_forward(X, np.ones((3, 3, 2, 6), np.float32), groups=3), ValueError,
     r"groups=3 must divide the input channels \(4\) and the filters \(6\)"),
    (lambda: _C.conv2d_forward(X, np.ones((3, 3, 1, 6), np.float32), groups=4), ValueError,
     r"groups=4 must divide the input channels \(4\) and the filters \(6\)"),
    (lambda: _C.conv2d_forward(X, W, groups=0), ValueError, r"groups must be >= 1, but received 0"),
    (lambda: _C.conv2d_forward(X, W, np.ones(5, np.float32)), ValueError, r"bias must have shape \(6,\)"),
    (lambda: _C.conv2d_forward(X, W, np.ones(6, np.float64)), TypeError, r"bias must have the same dtype as x"),
    (lambda: _C.conv2d_forward(X, W, activation="tanh"), ValueError, r"activation must be one of 'linear', 'relu'"),
    (lambda: _C.conv2d_forward_ref(X, W, strides=0), ValueError, r"conv2d_forward_ref: strides must be >= 1"),
    (lambda: _C.conv2d_backward_input(DY, W, (2, 5, 5)), TypeError, r"input_shape must be a tuple of 4 ints"),
    (lambda: _C.conv2d_backward_input(DY, W, (2, 5, -5, 4)), ValueError, r"input_shape must not have negative"),
    (lambda: _C.conv2d_backward_input(DY[:, :2].copy(), W, X.shape), ValueError,
     r"conv2d_backward_input: dy must have the convolution's output shape \(2, 3, 3, 6\), but received shape "
     r"\(2, 2, 3, 6\)"),
    (lambda: _C.conv2d_backward_input(DY, W, (2, 5, 5, 3)), ValueError, r"takes 4 input channels per group"),
    (lambda: _C.conv2d_backward_input(DY, W.astype(np.float64), X.shape), TypeError, r"w must have the same dtype"),
    (lambda: _C.conv2d_backward_weight(X, DY, (3, 3, 4)), TypeError, r"kernel_shape must be a tuple of 4 ints"),
    (lambda: _C.conv2d_backward_weight(X, DY, W.shape, padding=1), ValueError,
     r"conv2d_backward_weight: dy must have the convolution's output shape \(2, 5, 5, 6\)"),
    (lambda: _C.conv2d_backward_weight(X, DY, W.shape, dw=np.zeros((3, 3, 4, 5), np.float32)), ValueError,
     r"dw must have shape \(3, 3, 4, 6\)"),
    (lambda: _C.conv2d_backward_weight(X, DY, W.shape, db=np.zeros(6, np.float64)), TypeError,
     r"db must have the same dtype"),
    (lambda: _C.conv2d_backward_weight(X, DY, W.shape, with_bias=False, db=np.zeros(6, np.float32)), ValueError,
     r"db was given but with_bias is False"),
    (lambda: _C.conv2d_backward_weight(X, DY, W.shape, dw=np.zeros((3, 3, 4, 6), np.float32)[..., ::-1]), ValueError,
     r"dw must be C-contiguous"),
    (lambda: _C.conv2d_backward_weight(X, DY, (3, 3, 2**40, 2**40), groups=1), ValueError,
     r"takes 1099511627776 input"),
]


@pytest.mark.parametrize("call,error,match", BAD_CALLS, ids=[str(i) for i in range(len(BAD_CALLS))])
def test_bad_input_raises_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_read_only_and_aliased_accumulators_are_refused():
    dw = np.zeros(W.shape, np.float32)
    dw.flags.writeable = False
    with pytest.raises(ValueError, match="dw is read-only"):
        _C.conv2d_backward_weight(X, DY, W.shape, dw=dw)
    x = np.ones((2, 5, 5, 4), np.float32)
    with pytest.raises(ValueError, match="db must not share memory with x or dy"):
        _C.conv2d_backward_weight(x, DY, W.shape, db=x.reshape(-1)[:6])


def test_backend_wrappers_copy_other_layouts():
    """B.conv2d_* (backend/cpu.py) pass C-contiguous buffers through and copy other layouts first."""
    from fastnn import backend as B
    x, w, b, kw, _ = make_case(CASES[6], np.float64, seed=13)
    x_t = np.asfortranarray(x)
    y = B.conv2d_forward(x_t, w, b, activation="relu", **kw)
    np.testing.assert_array_equal(y, _C.conv2d_forward(x, w, b, activation="relu", **kw))
    dy = np.cos(y)
    np.testing.assert_array_equal(B.conv2d_backward_input(dy[..., ::-1][..., ::-1], w, x.shape, **kw),
                                  _C.conv2d_backward_input(dy, w, x.shape, **kw))
    dw, db = B.conv2d_backward_weight(x_t, dy, w.shape, **kw)
    want_dw, want_db = _C.conv2d_backward_weight(x, dy, w.shape, **kw)
    np.testing.assert_array_equal(dw, want_dw)
    np.testing.assert_array_equal(db, want_db)
    assert B.conv_same_padding(6, 2, 1, 1) == (0, 1)


# ----------------------------------------------------------------------------------------------------------------
# Depthwise: w (KH, KW, C, M) is the grouped kernel (KH, KW, 1, C*M) with groups = C; NumPy reference through that
# ----------------------------------------------------------------------------------------------------------------
# (batch, H, W, C, KH, KW, M, strides, dilation, padding)
DEPTHWISE_CASES = [
    (1, 1, 1, 1, 1, 1, 1, (1, 1), (1, 1), "valid"),
    (2, 7, 6, 3, 3, 3, 1, (1, 1), (1, 1), "same"),
    (3, 8, 9, 4, 3, 3, 2, (2, 2), (1, 1), "same"),
    (1, 9, 7, 5, 5, 5, 1, (1, 2), (1, 1), "same"),
    (2, 6, 6, 2, 2, 2, 3, (1, 1), (1, 1), "same"),     # even kernel
    (1, 11, 10, 3, 3, 3, 2, (3, 2), (2, 2), "valid"),
    (2, 5, 4, 6, 1, 1, 2, (1, 1), (1, 1), "valid"),    # 1x1
    (1, 4, 5, 3, 3, 2, 1, (2, 1), (1, 2), (1, 0, 2, 1)),
    (2, 16, 17, 32, 3, 3, 1, (1, 1), (1, 1), "same"),  # MobileNet-like: many channels, multiplier 1
]


def make_depthwise(case, dtype, seed=0):
    n, h, wd, c, kh, kw, m, strides, dilation, padding = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, wd, c)).astype(dtype)
    w = rng.standard_normal((kh, kw, c, m)).astype(dtype)
    b = rng.standard_normal(c * m).astype(dtype)
    pads = pads_for(x.shape, w.shape, strides, dilation, padding)
    return x, w, b, dict(strides=strides, padding=padding, dilation=dilation), pads


def np_depthwise(x, w, bias, kw, pads, activation="linear"):
    kh, kwd, c, m = w.shape
    return np_conv(x, w.reshape(kh, kwd, 1, c * m), bias, kw["strides"], pads, kw["dilation"], c, activation)


DW_IDS = ["x".join(map(str, c[:7])) + f"-s{c[7]}-d{c[8]}-{c[9]}" for c in DEPTHWISE_CASES]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", DEPTHWISE_CASES, ids=DW_IDS)
def test_depthwise_forward_matches_numpy(case, dtype):
    x, w, b, kw, pads = make_depthwise(case, dtype)
    scale = np.sqrt(w.shape[0] * w.shape[1])
    for bias, act in ((None, "linear"), (b, "relu")):
        want = np_depthwise(x, w, bias, kw, pads, act)
        for fn in (_C.depthwise_conv2d_forward, _C.depthwise_conv2d_forward_ref):
            y = fn(x, w, bias, activation=act, **kw)
            assert y.dtype == dtype and y.shape == want.shape
            check(y, want, dtype, scale)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", DEPTHWISE_CASES, ids=DW_IDS)
def test_depthwise_backward_matches_numpy(case, dtype):
    x, w, b, kw, pads = make_depthwise(case, dtype)
    kh, kwd, c, m = w.shape
    y_shape = np_depthwise(x, w, None, kw, pads).shape
    dy = np.random.default_rng(1).standard_normal(y_shape).astype(dtype)
    dx_want, dw_want, db_want = np_conv_backward(x, w.reshape(kh, kwd, 1, c * m), dy, kw["strides"], pads,
                                                 kw["dilation"], c)
    scale = np.sqrt(max(dy.size // dy.shape[-1], kh * kwd * m))
    for suffix in ("", "_ref"):
        dx = getattr(_C, "depthwise_conv2d_backward_input" + suffix)(dy, w, x.shape, **kw)
        dw, db = getattr(_C, "depthwise_conv2d_backward_weight" + suffix)(x, dy, w.shape, **kw)
        assert dx.dtype == dw.dtype == db.dtype == dtype and dw.shape == w.shape
        check(dx, dx_want, dtype, scale)
        check(dw, dw_want.reshape(w.shape), dtype, scale)
        check(db, db_want, dtype, scale)
        # Given buffers are added to (parameter gradients accumulate).
        dw_acc, db_acc = np.ones_like(w), np.ones_like(b)
        getattr(_C, "depthwise_conv2d_backward_weight" + suffix)(x, dy, w.shape, dw=dw_acc, db=db_acc, **kw)
        check(dw_acc, dw.astype(np.float64) + 1, dtype, scale)
        check(db_acc, db.astype(np.float64) + 1, dtype, scale)


def test_depthwise_backward_matches_central_finite_differences():
    x, w, b, kw, _ = make_depthwise((1, 5, 4, 2, 3, 2, 2, (2, 1), (1, 2), "same"), np.float64, seed=5)
    y = _C.depthwise_conv2d_forward(x, w, b, activation="relu", **kw)
    g = np.random.default_rng(6).standard_normal(y.shape)

    def loss(xv, wv, bv):
        return float(np.vdot(g, _C.depthwise_conv2d_forward(xv, wv, bv, activation="relu", **kw)))

    dy = g * (y > 0)
    dx = _C.depthwise_conv2d_backward_input(dy, w, x.shape, **kw)
    dw, db = _C.depthwise_conv2d_backward_weight(x, dy, w.shape, **kw)
    eps = 1e-6
    for array, grad, which in ((x, dx, 0), (w, dw, 1), (b, db, 2)):
        numeric = np.zeros_like(array)
        for idx in np.ndindex(array.shape):
            args = [x.copy(), w.copy(), b.copy()]
            args[which][idx] += eps
            up = loss(*args)
            args[which][idx] -= 2 * eps
            numeric[idx] = (up - loss(*args)) / (2 * eps)
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", DTYPES)
def test_depthwise_one_and_two_threads_are_bit_identical(restore_threads, dtype):
    if not fastnn.build_info()["openmp"]:
        pytest.skip("built without OpenMP: one thread only")
    previous_guard = _C.oversubscription_guard()
    _C.set_oversubscription_guard("off")
    try:
        for case in ((2, 30, 31, 32, 3, 3, 1, (1, 1), (1, 1), "same"), (3, 20, 21, 8, 5, 5, 2, (2, 2), (1, 1), "same")):
            x, w, b, kw, _ = make_depthwise(case, dtype, seed=14)
            results = []
            for threads in (1, 2):
                fastnn.set_num_threads(threads)
                before = fastnn.build_info()["parallel_regions"]
                y = _C.depthwise_conv2d_forward(x, w, b, activation="relu", **kw)
                dy = np.ascontiguousarray(np.cos(y))
                results.append((y, _C.depthwise_conv2d_backward_input(dy, w, x.shape, **kw))
                               + _C.depthwise_conv2d_backward_weight(x, dy, w.shape, **kw))
                if threads == 2:
                    assert fastnn.build_info()["parallel_regions"] > before
            for one, two in zip(*results):
                assert np.array_equal(one, two), case
    finally:
        _C.set_oversubscription_guard(previous_guard)


DW_X = np.ones((2, 5, 5, 4), np.float32)
DW_W = np.ones((3, 3, 4, 2), np.float32)
DW_DY = np.ones((2, 3, 3, 8), np.float32)


@pytest.mark.parametrize("call,error,match", [
    (lambda: _C.depthwise_conv2d_forward(DW_X, np.ones((3, 3, 3, 2), np.float32)), ValueError,
     r"depthwise_conv2d_forward: the depthwise kernel of shape \(3, 3, 3, 2\) \(KH, KW, C, multiplier\) takes 3 "
     r"input channels, but the input of shape \(2, 5, 5, 4\) has 4"),
    (lambda: _C.depthwise_conv2d_forward(DW_X, np.ones((7, 3, 4, 2), np.float32)), ValueError,
     r"depthwise_conv2d_forward: the kernel \(7, 3\) .* larger than the padded input \(5, 5\)"),
    (lambda: _C.depthwise_conv2d_forward(DW_X, DW_W, np.ones(4, np.float32)), ValueError,
     r"bias must have shape \(8,\)"),
    (lambda: _C.depthwise_conv2d_forward(DW_X, DW_W, strides=0), ValueError, r"strides must be >= 1"),
    (lambda: _C.depthwise_conv2d_forward(DW_X, DW_W.astype(np.float64)), TypeError, r"w must have the same dtype"),
    (lambda: _C.depthwise_conv2d_forward_ref(DW_X[..., :2], DW_W), ValueError, r"x must be C-contiguous"),
    (lambda: _C.depthwise_conv2d_backward_input(DW_DY[..., :4].copy(), DW_W, DW_X.shape), ValueError,
     r"depthwise_conv2d_backward_input: dy must have the convolution's output shape \(2, 3, 3, 8\)"),
    (lambda: _C.depthwise_conv2d_backward_weight(DW_X, DW_DY, DW_W.shape, db=np.zeros(4, np.float32)), ValueError,
     r"depthwise_conv2d_backward_weight: db must have shape \(8,\)"),
    (lambda: _C.depthwise_conv2d_backward_weight_ref(DW_X, DW_DY, (3, 3, 4)), TypeError,
     r"kernel_shape must be a tuple of 4 ints"),
], ids=[str(i) for i in range(9)])
def test_depthwise_bad_input_raises_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_depthwise_without_channels_or_batch():
    x = np.zeros((2, 4, 4, 0), np.float32)
    assert _C.depthwise_conv2d_forward(x, np.zeros((3, 3, 0, 2), np.float32)).shape == (2, 2, 2, 0)
    assert _C.depthwise_conv2d_forward_ref(x, np.zeros((3, 3, 0, 2), np.float32)).shape == (2, 2, 2, 0)
    dx = _C.depthwise_conv2d_backward_input(np.zeros((0, 2, 2, 6), np.float32), np.ones((3, 3, 3, 2), np.float32),
                                            (0, 4, 4, 3))
    assert dx.shape == (0, 4, 4, 3)
    dw, db = _C.depthwise_conv2d_backward_weight(np.zeros((0, 4, 4, 3)), np.zeros((0, 2, 2, 6)), (3, 3, 3, 2))
    assert dw.shape == (3, 3, 3, 2) and not dw.any() and db.shape == (6,)


def test_depthwise_backend_wrappers():
    from fastnn import backend as B
    x, w, b, kw, _ = make_depthwise(DEPTHWISE_CASES[2], np.float32, seed=15)
    y = B.depthwise_conv2d_forward(np.asfortranarray(x), w, b, activation="relu", **kw)
    np.testing.assert_array_equal(y, _C.depthwise_conv2d_forward(x, w, b, activation="relu", **kw))
    np.testing.assert_array_equal(B.depthwise_conv2d_backward_input(y, w, x.shape, **kw),
                                  _C.depthwise_conv2d_backward_input(y, w, x.shape, **kw))
    dw, db = B.depthwise_conv2d_backward_weight(np.asfortranarray(x), y, w.shape, with_bias=False, **kw)
    assert db is None
    np.testing.assert_array_equal(dw, _C.depthwise_conv2d_backward_weight(x, y, w.shape, **kw)[0])
