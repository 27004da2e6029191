"""64-bit indexing of the pooling kernels: an input whose rows lie more than 2^31 elements apart (a C-contiguous view
of a sparse file, so only the pages the windows read are touched) pools to the values at those far positions, and the
argmax holds their 64-bit flat indices. A kernel that computed an offset in 32 bits would read the wrong page."""
from __future__ import annotations

import numpy as np
import pytest

from fastnn import _C

ROW = 2**30 + 3  # W: row h starts at element h * ROW, so row 2 starts past 2^31


@pytest.fixture
def far_rows(tmp_path):
    """A writable float32 (1, 3, ROW, 1) memmap (about 13 GB of address space, a few pages of disk)."""
    path = tmp_path / "sparse_pool.bin"
    shape = (1, 3, ROW, 1)
    with open(path, "wb") as f:
        f.truncate(int(np.prod(shape)) * 4)
    mm = np.memmap(path, dtype=np.float32, mode="r+", shape=shape)
    yield mm
    del mm
    path.unlink()


@pytest.mark.parametrize("reference", [False, True])
def test_pooling_reads_rows_more_than_2_31_apart(far_rows, reference):
    x = far_rows
    x[0, 0, 0, 0], x[0, 2, 0, 0], x[0, 2, 1, 0] = 1.5, -2.5, 7.0
    x.flush()
    assert x.flags.c_contiguous and 2 * ROW > 2**31
    # windows (1, 2) at rows 0 and 2, columns [0, 2) only: stride_w past the row end
    y, argmax = _C.max_pool2d_forward(x, (1, 2), (2, ROW), "valid", reference)
    assert y.shape == (1, 2, 1, 1)
    np.testing.assert_array_equal(y.reshape(-1), [1.5, 7.0])
    np.testing.assert_array_equal(argmax.reshape(-1), [0, 2 * ROW + 1])
    z = _C.avg_pool2d_forward(x, (1, 2), (2, ROW), "valid", reference)
    np.testing.assert_array_equal(z.reshape(-1), [0.75, 2.25])
