"""Shared fixtures: the SIMD paths and thread counts every kernel test runs under."""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import backend

_C = backend._C


def _available_simd_paths():
    return list(fastnn.build_info()["simd_available"])


@pytest.fixture(params=_available_simd_paths())
def simd_path(request):
    """Runs the test once per kernel code path this CPU supports (the portable one always)."""
    previous = _C.simd_path()
    _C.set_simd_path(request.param)
    yield request.param
    _C.set_simd_path(previous)


@pytest.fixture
def restore_threads():
    previous = fastnn.get_num_threads()
    yield
    fastnn.set_num_threads(previous)


@pytest.fixture(params=["auto", "packed", "direct", "prepacked"])
def gemm_path(request):
    """Runs the test once per GEMM algorithm (forced for every shape), and once as dispatched by shape."""
    previous = _C.gemm_path()
    _C.set_gemm_path(request.param)
    yield request.param
    _C.set_gemm_path(previous)


# The cache sizes the GEMM blocks for (runtime.h): the machine's own, a Zen 3's (the AVX2-only machines of this
# project) and caches so small that the blocking (KC 64-128, MC 24-60, NC 256) is crossed by the sweeps' shapes on
# any CPU.
CACHE_CONFIGS = {"detected": None, "zen3": "32K,512K,32M", "tiny": "8K,32K,256K"}


@pytest.fixture(params=list(CACHE_CONFIGS))
def cache_config(request):
    """Runs the test once per cache configuration (the blocking derived from it), restoring the start-up sizes."""
    _C.set_cache_sizes(CACHE_CONFIGS[request.param])
    yield request.param
    _C.set_cache_sizes(None)
