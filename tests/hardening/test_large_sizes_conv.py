"""64-bit indexing in the convolution kernels: an input of more than 2^31 elements whose taps lie more than 2^31
elements apart, read correctly by conv2d and depthwise_conv2d forward and backward weight (fast and reference).

Without gigabytes of RAM: the input is a C-contiguous memmap of a sparse file (about 16 GB of address space, a few
pages of disk); a stride and a dilation of 2^30 columns make the kernels read only a handful of pixels, at element
offsets up to about 2^32, so an offset computed in 32 bits would read the wrong page (and the results would differ).
The backward input is not covered this way: its dx is the whole input (16 GB written).
"""
from __future__ import annotations

import numpy as np
import pytest

from fastnn import _C

FAR = 2**30            # columns between the taps (the largest stride / dilation the bindings accept)
WIDTH = FAR + 8        # 2 rows x WIDTH columns x 2 channels: about 2^32 elements


@pytest.fixture
def sparse_input(tmp_path):
    """A float32 (1, 2, WIDTH, 2) memmap of a sparse file."""
    path = tmp_path / "sparse_conv.bin"
    shape = (1, 2, WIDTH, 2)
    with open(path, "wb") as f:
        f.truncate(int(np.prod(shape)) * 4)
    mm = np.memmap(path, dtype=np.float32, mode="r+", shape=shape)
    assert mm.size > 2**31 and mm.flags.c_contiguous
    yield mm
    del mm
    path.unlink()


def _fill(mm, columns, rng):
    """Random values at the given columns of both rows (the only pixels the convolutions read)."""
    for col in columns:
        mm[0, :, col, :] = rng.standard_normal((2, 2)).astype(np.float32)


def test_conv2d_with_a_stride_past_2_31_elements(sparse_input):
    rng = np.random.default_rng(0)
    _fill(sparse_input, [0, FAR], rng)
    w = rng.standard_normal((1, 1, 2, 3)).astype(np.float32)
    kw = dict(strides=(1, FAR))
    taps = np.array(sparse_input[0][:, [0, FAR], :], np.float64)  # (2 rows, 2 output columns, 2 channels)
    expected = (taps @ w[0, 0].astype(np.float64))[np.newaxis]
    dy = rng.standard_normal(expected.shape).astype(np.float32)
    expected_dw = np.einsum("hwc,hwf->cf", taps, dy[0].astype(np.float64))[np.newaxis, np.newaxis]
    for suffix in ("", "_ref"):
        y = getattr(_C, "conv2d_forward" + suffix)(sparse_input, w, **kw)
        np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
        dw, db = getattr(_C, "conv2d_backward_weight" + suffix)(sparse_input, dy, w.shape, **kw)
        np.testing.assert_allclose(dw, expected_dw, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(db, dy.sum(axis=(0, 1, 2)), rtol=1e-5, atol=1e-5)


def test_conv2d_and_depthwise_with_a_dilation_past_2_31_elements(sparse_input):
    rng = np.random.default_rng(1)
    out_cols = WIDTH - FAR  # the (1, 2) kernel dilated by FAR fits 8 times
    _fill(sparse_input, list(range(out_cols)) + [FAR + c for c in range(out_cols)], rng)
    near = np.array(sparse_input[0][:, :out_cols, :], np.float64)
    far = np.array(sparse_input[0][:, FAR:FAR + out_cols, :], np.float64)
    kw = dict(dilation=(1, FAR))

    w = rng.standard_normal((1, 2, 2, 3)).astype(np.float32)
    expected = (near @ w[0, 0] + far @ w[0, 1])[np.newaxis]
    dy = rng.standard_normal(expected.shape).astype(np.float32)
    expected_dw = np.stack([np.einsum("hwc,hwf->cf", t, dy[0].astype(np.float64)) for t in (near, far)])[np.newaxis]
    for suffix in ("", "_ref"):
        np.testing.assert_allclose(getattr(_C, "conv2d_forward" + suffix)(sparse_input, w, **kw), expected,
                                   rtol=1e-5, atol=1e-5)
        dw, _ = getattr(_C, "conv2d_backward_weight" + suffix)(sparse_input, dy, w.shape, **kw)
        np.testing.assert_allclose(dw, expected_dw, rtol=1e-5, atol=1e-5)

    wd = rng.standard_normal((1, 2, 2, 1)).astype(np.float32)  # depthwise, multiplier 1
    expected = (near * wd[0, 0, :, 0] + far * wd[0, 1, :, 0])[np.newaxis]
    dy = rng.standard_normal(expected.shape).astype(np.float32)
    expected_dw = np.stack([(t * dy[0]).sum(axis=(0, 1)) for t in (near, far)])[np.newaxis, :, :, np.newaxis]
    for suffix in ("", "_ref"):
        np.testing.assert_allclose(getattr(_C, "depthwise_conv2d_forward" + suffix)(sparse_input, wd, **kw), expected,
                                   rtol=1e-5, atol=1e-5)
        dw, _ = getattr(_C, "depthwise_conv2d_backward_weight" + suffix)(sparse_input, dy, wd.shape, **kw)
        np.testing.assert_allclose(dw, expected_dw, rtol=1e-5, atol=1e-5)
