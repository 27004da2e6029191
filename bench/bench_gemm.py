"""GEMM throughput of fastnn against NumPy (OpenBLAS), measured in the same process, 1 and 2 threads.

fastnn is called through its array-level matmul (ndarray in, ndarray out, exactly what ``a @ b`` does);
``fastnn.ops.matmul`` adds the autograd Tensor wrapping (about 1.5 us a call) on top.

Usage:  python bench/bench_gemm.py [--repeats 9] [--quick] [--markdown]

Each thread count runs in a fresh subprocess (NumPy's thread pool is fixed at import). Two NumPy
configurations are measured, each against fastnn in the same process:
  * "numpy (env)"    -- NumPy as this environment configures it (OPENBLAS_CORETYPE may pin a kernel),
  * "numpy (native)" -- OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset, so OpenBLAS picks its best kernel.
Each library is timed in whole blocks with a pause between (its idle pool's spinning then never overlaps the
other's calls); --interleaved times them call by call in turn instead, as a user's loop mixes them. Medians are
reported; ratios > 1 mean fastnn is faster. Before anything is timed both thread pools are started and run for
0.3 s, so that thread start-up does not land on the first shape. The FMA peak of
one core is measured by bench/fma_peak.cpp (compiled on the fly with the system C++ compiler).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SQUARES = [(256, 256, 256), (512, 512, 512), (1024, 1024, 1024), (2048, 2048, 2048)]
NETWORK = [(64, 128, 784), (64, 10, 128), (6272, 32, 9), (64, 3136, 288), (1600, 512, 128), (64, 512, 128),
           (100, 100, 100), (1000, 1, 1000)]
HERE = Path(__file__).resolve().parent


def measure(shapes, repeats: int, interleaved: bool = False) -> list[dict]:
    import numpy as np

    from fastnn.backend.cpu import gemm_matmul as matmul_arrays  # ndarray in, ndarray out, like a @ b

    rng = np.random.default_rng(0)
    # Start both thread pools and let the scheduler place their workers before anything is timed: a new worker
    # first runs on its parent's core until the load balancer moves it (tens of ms), which would otherwise land
    # on whichever shape comes first.
    w = rng.standard_normal((512, 512), dtype=np.float32)
    for fn in (matmul_arrays, np.matmul):
        end = time.perf_counter() + 0.3
        while time.perf_counter() < end:
            fn(w, w)
        time.sleep(0.2)
    rows = []
    for m, n, k in shapes:
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        flops = 2.0 * m * n * k
        inner = max(1, int(2e8 / flops))  # each timed sample does at least ~0.2 GFLOP of work
        ours, theirs = [], []

        def sample(fn, out):
            for _ in range(repeats):
                t = time.perf_counter()
                for _ in range(inner):
                    fn(a, b)
                out.append((time.perf_counter() - t) / inner)

        # Whole blocks per library, with a pause between: after a call, each library's idle worker threads
        # spin for a while, and on 2 cores a spinning pool of one library would steal the core the other
        # library's second thread needs, so per-call interleaving would measure the interference.
        if interleaved:
            # The way a user's loop mixes the two libraries: one call of each in turn, no pause, each timed on
            # its own (each library then runs while the other's idle pool may still spin on a core).
            for _ in range(repeats):
                t_ours = t_theirs = 0.0
                for _ in range(inner):
                    t0 = time.perf_counter()
                    np.matmul(a, b)
                    t1 = time.perf_counter()
                    matmul_arrays(a, b)
                    t2 = time.perf_counter()
                    t_theirs += t1 - t0
                    t_ours += t2 - t1
                ours.append(t_ours / inner)
                theirs.append(t_theirs / inner)
        else:
            for _ in range(2):
                matmul_arrays(a, b)  # warm-up
                sample(matmul_arrays, ours)
                time.sleep(0.2)
                np.matmul(a, b)
                sample(np.matmul, theirs)
                time.sleep(0.2)
        t_ours, t_np = float(np.median(ours)), float(np.median(theirs))
        rows.append({"shape": [m, n, k], "fastnn_gflops": flops / t_ours / 1e9,
                     "numpy_gflops": flops / t_np / 1e9, "ratio": t_np / t_ours})
    return rows


def openblas_kernel() -> str:
    try:
        import threadpoolctl

        for info in threadpoolctl.threadpool_info():
            if info.get("internal_api") == "openblas":
                return str(info.get("architecture"))
    except ImportError:
        pass
    return os.environ.get("OPENBLAS_CORETYPE", "unknown")


def child(args) -> None:
    shapes = SQUARES[:2] + NETWORK if args.quick else SQUARES + NETWORK
    print(json.dumps({"kernel": openblas_kernel(), "rows": measure(shapes, args.repeats, args.interleaved)}))


def run_child(threads: int, native: bool, args) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    if native:
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
    cmd = [sys.executable, __file__, "--child", "--repeats", str(args.repeats)] + (["--quick"] if args.quick else []) \
        + (["--interleaved"] if args.interleaved else [])
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def fma_peak() -> dict:
    compiler = shutil.which("c++") or shutil.which("g++")
    if compiler is None:
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "fma_peak")
        subprocess.run([compiler, "-O2", "-o", exe, str(HERE / "fma_peak.cpp")], check=True)
        out = subprocess.run([exe], capture_output=True, text=True, check=True).stdout
    return {line.split()[0]: float(line.split()[1]) for line in out.splitlines() if line.strip()}


def cpu_description() -> str:
    """Model name, family/model and the SIMD flags that pick a kernel, from /proc/cpuinfo (Linux)."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        return "unknown"
    flags = set(fields.get("flags", "").split())
    simd = [f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "amx_tile") if f in flags]
    return (f"{fields.get('model name', '?')}, family {fields.get('cpu family', '?')} model {fields.get('model', '?')}, "
            f"{os.cpu_count()} CPUs, flags {' '.join(simd)}")


def geomean(values) -> float:
    import math

    values = list(values)
    return math.exp(sum(math.log(v) for v in values) / len(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--quick", action="store_true", help="skip 1024 and 2048 squares")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--interleaved", action="store_true",
                        help="time the libraries call by call in turn, as a user's loop mixes them (no pause)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    import fastnn

    info = fastnn.build_info()
    peak = fma_peak()
    print(f"CPU: {cpu_description()}")
    caches = info["cache_sizes"]
    print(f"caches the GEMM blocks for ({info['cache_source']}): L1d {caches['l1d'] // 1024} KiB, "
          f"L2 {caches['l2'] // 1024} KiB, L3 {caches['l3'] // 1024} KiB; blocking {info['gemm_blocking']}")
    print(f"fastnn {info['version']} simd={info['simd']} openmp={info['openmp']} compiler={info['compiler']}")
    print("one-core FMA peak (GFLOP/s): " + ", ".join(f"{k} {v:.1f}" for k, v in peak.items()))
    for threads in [int(t) for t in args.threads.split(",")]:
        env_run, native_run = run_child(threads, False, args), run_child(threads, True, args)
        mode = "interleaved call by call" if args.interleaved else "blocks with a pause between"
        print(f"\n### fp32 GEMM, {threads} thread(s), median of {args.repeats}, {mode}; "
              "ratio = NumPy time / fastnn time")
        print(f"OpenBLAS kernel: env = {env_run['kernel']}, native = {native_run['kernel']}\n")
        print("| M x N x K | fastnn GFLOP/s | NumPy (env) | ratio | fastnn GFLOP/s | NumPy (native) | ratio |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for e, n in zip(env_run["rows"], native_run["rows"]):
            m_, n_, k_ = e["shape"]
            print(f"| {m_}x{n_}x{k_} | {e['fastnn_gflops']:.1f} | {e['numpy_gflops']:.1f} | {e['ratio']:.2f} "
                  f"| {n['fastnn_gflops']:.1f} | {n['numpy_gflops']:.1f} | {n['ratio']:.2f} |")
        print(f"| geometric mean | | | {geomean(r['ratio'] for r in env_run['rows']):.2f} | | | "
              f"{geomean(r['ratio'] for r in native_run['rows']):.2f} |")
        if threads == 1:
            for run, label in ((env_run, "env"), (native_run, "native")):
                for r in run["rows"]:
                    if r["shape"] == [2048, 2048, 2048] and "avx2" in peak:
                        print(f"2048^3 single thread ({label} run): {r['fastnn_gflops']:.1f} GFLOP/s = "
                              f"{100 * r['fastnn_gflops'] / peak['avx2']:.0f}% of the AVX2 FMA peak"
                              + (f", {100 * r['fastnn_gflops'] / peak['avx512']:.0f}% of the AVX-512 peak"
                                 if "avx512" in peak else ""))


if __name__ == "__main__":
    main()
