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
    assert info["simd"] in ("avx2+fma", "generic")
    if info["cpu_avx2_fma"]:
        assert info["simd"] == "avx2+fma" or os.environ.get("FASTNN_SIMD") == "generic"


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


def test_forced_generic_path_from_environment():
    code = "import fastnn; print(fastnn.build_info()['simd'])"
    env = dict(os.environ, FASTNN_SIMD="generic")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "generic"


def test_python_m_fastnn_self_check():
    out = subprocess.run([sys.executable, "-m", "fastnn"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "self-check" in out.stdout and "(ok)" in out.stdout
    assert "GFLOP/s" in out.stdout
