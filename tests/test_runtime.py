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
