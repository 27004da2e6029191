"""Hardening of the broadcasting elementwise and reduction bindings (bind_binary.cpp): outputs too large to allocate
raise MemoryError / ValueError instead of crashing, shape errors come before any allocation, and the GIL is released
around the kernels (another Python thread runs meanwhile).

Indices past 2^31 elements: the kernels take C-contiguous buffers only, so reaching such an index means touching more
than 8 GB of memory, which these tests cannot afford; every size, offset and index in binary.cpp / reduce.cpp and in
the binding is an int64_t (no 32-bit intermediate), and the broadcast plan's offsets are products of int64 strides."""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import _C
from fastnn.testing.threads import progress_during


@pytest.mark.parametrize("call", [
    # 2^40 output elements (4 TB)
    lambda: _C.binary(np.ones((2**20, 1), np.float32), np.ones((1, 2**20), np.float32), "add"),
    lambda: _C.compare(np.ones((2**20, 1), np.float32), np.ones((1, 2**20), np.float32), "less"),
    # 2^63 output elements: the element count itself overflows int64
    lambda: _C.where(np.ones((2**21, 1, 1), bool), np.ones((1, 2**21, 1), np.float32),
                     np.ones((1, 1, 2**21), np.float32)),
])
def test_outputs_too_large_to_allocate_raise(call):
    with pytest.raises((MemoryError, ValueError)):
        call()


def test_shape_errors_come_before_allocation():
    with pytest.raises(ValueError, match="could not be broadcast"):
        _C.binary(np.ones((2**20, 1), np.float32), np.ones((3, 2**20), np.float32), "add")
    with pytest.raises(ValueError, match="out must have shape"):
        _C.binary(np.ones((2**20, 1), np.float32), np.ones((1, 2**20), np.float32), "add",
                  out=np.empty(1, np.float32))


@pytest.mark.parametrize("name,call", [
    ("binary", lambda a, m: [_C.binary(a, a[0], "divide", reference=True) for _ in range(4)]),
    ("where", lambda a, m: [_C.where(m, a, a, reference=True) for _ in range(4)]),
    ("reduce_sum", lambda a, m: [_C.reduce_sum(a, 0, reference=True) for _ in range(8)]),
    ("unbroadcast", lambda a, m: [_C.unbroadcast(a, (1, 1200), reference=True) for _ in range(8)]),
    ("dropout_mask_multiply", lambda a, m: [_C.dropout_mask_multiply(a, m, 2.0, reference=True) for _ in range(4)]),
])
def test_gil_is_released_in_long_kernels(name, call, restore_threads):
    fastnn.set_num_threads(1)
    a = np.random.default_rng(0).standard_normal((1200, 1200))
    m = a > 0
    assert progress_during(lambda: call(a, m)) > 0, f"{name}: no Python thread ran while the kernel was in C++"
