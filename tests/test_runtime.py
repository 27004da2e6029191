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


def _child(code, **env):
    run_env = dict(os.environ, **env)
    for key in ("FASTNN_CACHE", "FASTNN_GEMM_BLOCKS"):
        if key not in env:
            run_env.pop(key, None)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=run_env, timeout=120)


CHECK_GEMM = """
import json, numpy as np, fastnn
from fastnn import _C
rng = np.random.default_rng(0)
a = rng.standard_normal((300, 700)).astype(np.float32)
b = rng.standard_normal((700, 333)).astype(np.float32)
ok = bool(np.allclose(_C.gemm(a, b), a.astype(np.float64) @ b, rtol=1e-4, atol=1e-3))
info = fastnn.build_info()
print(json.dumps({"ok": ok, "caches": info["cache_sizes"], "source": info["cache_source"],
                  "blocking": info["gemm_blocking"], "overridden": info["gemm_blocks_overridden"]}))
"""


def test_cache_sizes_are_detected_and_plausible():
    info = fastnn.build_info()
    detected = info["detected_cache_sizes"]
    assert info["detected_cache_source"] in ("cpuid", "sysconf", "default")
    assert 4096 <= detected["l1d"] <= detected["l2"] and detected["l3"] >= 0
    if "FASTNN_CACHE" not in os.environ:
        assert info["cache_sizes"] == detected


def test_fastnn_cache_gives_another_cpus_blocking():
    """FASTNN_CACHE=32K,512K,32M makes any machine block like a Zen 3: KC from a 32 KiB L1d, MC from a 512 KiB L2."""
    import json

    out = _child(CHECK_GEMM + "\n_C.set_simd_path('generic')\nprint(json.dumps(fastnn.build_info()['gemm_blocking']))",
                 FASTNN_CACHE="32K,512K,32M")
    assert out.returncode == 0, out.stderr
    first, generic = out.stdout.strip().splitlines()
    r = json.loads(first)
    assert r["ok"] and r["source"] == "FASTNN_CACHE"
    assert r["caches"] == {"l1d": 32 * 1024, "l2": 512 * 1024, "l3": 32 * 1024 * 1024}
    g = json.loads(generic)["float32"]  # the generic set's tile (4 x 8) is the same on every CPU
    assert (g["mr"], g["nr"], g["kc"], g["mc"]) == (4, 8, 512, 128)  # KC = 16K / 32 B, MC = 256K / 2 KiB


def test_a_malformed_fastnn_cache_warns_and_is_ignored():
    out = _child("import fastnn\nprint(fastnn.build_info()['cache_source'])", FASTNN_CACHE="32K;512K")
    assert out.returncode == 0, out.stderr
    assert "FASTNN_CACHE='32K;512K' was ignored" in out.stderr
    assert out.stdout.strip() != "FASTNN_CACHE"


def test_fastnn_gemm_blocks_overrides_the_blocking():
    import json

    out = _child(CHECK_GEMM, FASTNN_GEMM_BLOCKS="100,200,300")
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["ok"] and r["overridden"]
    f32 = r["blocking"]["float32"]
    assert f32["kc"] == 200 and f32["mc"] == 100 // f32["mr"] * f32["mr"] and f32["nc"] == 300 // f32["nr"] * f32["nr"]
    bad = _child("import fastnn", FASTNN_GEMM_BLOCKS="100,200")
    assert bad.returncode == 0 and "FASTNN_GEMM_BLOCKS='100,200' was ignored" in bad.stderr
