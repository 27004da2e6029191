"""Property-based fuzzing of the embedding bindings (csrc/python/bind_embedding.cpp), with the harness of
test_fuzz_bindings.py (``fastnn.testing.fuzz``): random tables and index shapes (0-D to 4-D, empty ones included),
table dtypes (float32 / float64 and ones that must raise TypeError), index dtypes (int32 / int64 and refused ones),
memory layouts (only C-contiguous aligned native buffers are accepted), NaN / inf / signed zeros / denormals, indices
out of range (negative, V, far past V) and bad num_rows / d_out shapes. A valid gather must equal ``np.take`` bit for
bit, a valid scatter-add ``np.add.at`` in index order on the denormals-are-zero inputs; an invalid call must raise
TypeError or ValueError (a bad index: ValueError naming the value). test_fuzz_bindings.py's FUZZ_TARGETS names these
targets."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastnn import _C
from fastnn.testing import fuzz as fz

ERR = (TypeError, ValueError)
INDEX_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))
BAD_INDEX_DTYPES = (np.dtype(np.int16), np.dtype(np.uint32), np.dtype(np.uint64), np.dtype(np.float32),
                    np.dtype(np.bool_))


def _table(data, rng):
    rows = data.draw(st.sampled_from([0, 1, 2, 3, 7, 17, 64]), label="rows")
    dim = data.draw(st.sampled_from([0, 1, 3, 8, 33]), label="dim")
    dtype = fz.draw_dtype(data)
    shape = data.draw(st.sampled_from([(rows, dim)] * 12 + [(rows,), (rows, dim, 1), ()]), label="table_shape")
    return fz.draw_array(data, rng, shape, dtype, "table"), rows, dim


def _indices(data, rng, rows):
    """(indices, first bad flat position or None, layout ok)."""
    shape = data.draw(fz.shapes(max_dims=4).filter(lambda s: int(np.prod(s)) <= 4096), label="idx_shape")
    dtype = data.draw(st.sampled_from(INDEX_DTYPES * 10 + BAD_INDEX_DTYPES), label="idx_dtype")
    idx = rng.integers(0, max(rows, 1), size=shape).astype(np.int64)
    if data.draw(st.integers(0, 4), label="forge") == 0 and idx.size:
        i = data.draw(st.integers(0, idx.size - 1), label="bad_at")
        idx.flat[i] = data.draw(st.sampled_from([-1, rows, rows + 1, 2 ** 31 - 1, -(2 ** 31)]), label="bad_value")
    kind = data.draw(st.sampled_from(("c",) * 20 + ("sliced", "neg", "misaligned", "swapped")), label="idx_layout")
    with np.errstate(all="ignore"):
        typed = idx.astype(dtype)
    laid = fz.layout(typed, kind) if typed.ndim else typed
    ok = (laid.dtype in INDEX_DTYPES and laid.dtype.isnative and laid.flags.c_contiguous and laid.flags.aligned)
    as_int = laid.astype(np.int64) if laid.dtype.kind in "iu" else idx
    bad = np.flatnonzero((as_int.reshape(-1) < 0) | (as_int.reshape(-1) >= rows))
    return laid, (int(bad[0]) if bad.size else None), ok


@given(st.data())
def test_embedding_gather(data):
    rng = fz.draw_rng(data)
    fz.case("embedding_gather")
    table, rows, dim = _table(data, rng)
    idx, bad, idx_ok = _indices(data, rng, rows)
    table_ok = fz.c_ready(table) and table.ndim == 2
    reference = data.draw(st.booleans(), label="reference")
    if not (table_ok and idx_ok):
        fz.expect(lambda: _C.embedding_gather(table, idx, reference), None, None, must_raise=ERR)
        return
    if bad is not None:
        value = int(idx.reshape(-1)[bad])
        with pytest.raises(ValueError, match=rf"embedding_gather: .*\[0, {rows}\).* received {value} at flat "
                                             rf"position {bad}"):
            _C.embedding_gather(table, idx, reference)
        fz.RAISED["embedding_gather"] += 1
        return
    out = _C.embedding_gather(table, idx, reference)
    expected = np.take(table, idx.astype(np.int64), axis=0)
    assert out.shape == idx.shape + (dim,) and out.dtype == table.dtype
    assert out.tobytes() == expected.tobytes()  # a copy: every bit, NaN payloads and denormals included


@given(st.data())
def test_embedding_scatter_add(data):
    rng = fz.draw_rng(data)
    fz.case("embedding_scatter_add")
    rows = data.draw(st.sampled_from([0, 1, 2, 5, 17, 64]), label="rows")
    idx, bad, idx_ok = _indices(data, rng, rows)
    dim = data.draw(st.sampled_from([0, 1, 3, 8, 33]), label="dim")
    dtype = fz.draw_dtype(data)
    shape_kind = data.draw(st.sampled_from(["ok"] * 12 + ["short", "long", "mismatch"]), label="d_out_shape")
    shape = idx.shape + (dim,)
    if shape_kind == "short":
        shape = idx.shape
    elif shape_kind == "long":
        shape = idx.shape + (dim, 2)
    elif shape_kind == "mismatch" and idx.ndim:
        shape = (idx.shape[0] + 1,) + idx.shape[1:] + (dim,)
    d_out = fz.draw_array(data, rng, shape, dtype, "d_out")
    num_rows = data.draw(st.sampled_from([rows] * 12 + [-1, True, 1.5, 2 ** 63, None]), label="num_rows")
    reference = data.draw(st.booleans(), label="reference")
    shape_ok = d_out.ndim == idx.ndim + 1 and d_out.shape[:-1] == idx.shape
    valid = fz.c_ready(d_out) and idx_ok and shape_ok and num_rows is rows
    if not valid:
        fz.expect(lambda: _C.embedding_scatter_add(d_out, idx, num_rows, reference), None, None, must_raise=ERR)
        return
    if bad is not None:
        with pytest.raises(ValueError, match=rf"embedding_scatter_add: .*\[0, {rows}\).* received "
                                             rf"{int(idx.reshape(-1)[bad])} at flat position {bad}"):
            _C.embedding_scatter_add(d_out, idx, num_rows, reference)
        fz.RAISED["embedding_scatter_add"] += 1
        return

    def ref():
        g = np.zeros((rows, dim), dtype)
        with np.errstate(all="ignore"):
            np.add.at(g, idx.reshape(-1).astype(np.int64), fz.daz(d_out, dtype).astype(dtype).reshape(idx.size, dim))
        return g

    def check(out, expected):
        assert out.shape == (rows, dim) and out.dtype == dtype
        fz.assert_close(out, expected, 0, 4 * np.finfo(dtype).tiny)  # FTZ of a denormal partial sum at most

    fz.expect(lambda: _C.embedding_scatter_add(d_out, idx, num_rows, reference), ref, check, errors=())
