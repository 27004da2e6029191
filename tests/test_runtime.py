"""Build facts, thread control and the `python -m fastnn` self-check."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

import fastnn


def test_build_info_keys():
    info = fastnn.build_info()
    for key in ("version", "openmp", "cuda", "simd", "compiler", "build_type", "num_threads"):
        assert key in info
    assert info["version"] == fastnn.__version__
    assert isinstance(info["openmp"], bool) and info["cuda"] is False
    assert info["simd"] in ("avx512", "avx2+fma", "generic")
    assert "generic" in info["simd_available"]
    assert set(info["simd_available"]) <= set(info["simd_compiled"])
    if "FASTNN_SIMD" not in os.environ:  # the best available path is chosen by default
        assert info["simd"] == info["simd_available"][-1]
    for counter in ("parallel_regions", "contended_regions", "serialized_regions", "concurrent_regions"):
        assert isinstance(info[counter], int) and info[counter] >= 0
    assert info["oversubscription_guard"] in ("auto", "off", "serial")
    for dtype in ("float32", "float64"):
        blocking = info["gemm_blocking"][dtype]
        assert set(blocking) == {"mr", "nr", "mc", "kc", "nc"} and all(v > 0 for v in blocking.values())
        assert blocking["mc"] % blocking["mr"] == 0


def test_parallel_regions_counts_regions_that_ran_on_several_threads(restore_threads):
    import numpy as np

    from fastnn import _C

    a = np.ones((300, 300), np.float32)
    previous = _C.oversubscription_guard()
    try:
        _C.set_oversubscription_guard("off")
        fastnn.set_num_threads(1)
        before = fastnn.build_info()["parallel_regions"]
        _C.gemm(a, a)
        assert fastnn.build_info()["parallel_regions"] == before
        fastnn.set_num_threads(2)
        _C.gemm(a, a)
        grew = fastnn.build_info()["parallel_regions"] - before
        assert grew >= 1 if fastnn.build_info()["openmp"] else grew == 0
    finally:
        _C.set_oversubscription_guard(previous)


def test_set_and_get_num_threads(restore_threads):
    fastnn.set_num_threads(1)
    assert fastnn.get_num_threads() == 1
    fastnn.set_num_threads(2)
    assert fastnn.get_num_threads() == (2 if fastnn.build_info()["openmp"] else 1)


@pytest.mark.parametrize("bad,exc", [(0, ValueError), (-3, ValueError), (1.5, TypeError), ("2", TypeError), (True, TypeError)])
def test_set_num_threads_rejects_bad_values(bad, exc, restore_threads):
    with pytest.raises(exc, match="set_num_threads"):
        fastnn.set_num_threads(bad)


def test_omp_num_threads_is_respected():
    code = "import fastnn; print(fastnn.get_num_threads())"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


@pytest.mark.parametrize("forced", ["generic", "avx2"])
def test_simd_path_capped_from_environment(forced):
    code = "import fastnn; print(fastnn.build_info()['simd'])"
    env = dict(os.environ, FASTNN_SIMD=forced)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    expected = "generic" if forced == "generic" or not fastnn.build_info()["cpu_avx2_fma"] else "avx2+fma"
    assert out.stdout.strip() == expected


def test_python_m_fastnn_self_check():
    out = subprocess.run([sys.executable, "-m", "fastnn"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "self-check" in out.stdout and "(ok)" in out.stdout
    assert "GFLOP/s" in out.stdout
