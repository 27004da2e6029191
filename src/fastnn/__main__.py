"""``python -m fastnn``: print the build facts and run a short GEMM self-check against NumPy."""
from __future__ import annotations

import time

import numpy as np

import fastnn


def _median_seconds(fn, repeats: int = 7) -> float:
    fn()  # warm-up: packing buffers, thread pool
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> int:
    info = fastnn.build_info()
    print(f"fastnn {info['version']}")
    for key in ("simd", "simd_available", "simd_compiled", "openmp", "num_threads", "cuda", "compiler", "build_type"):
        value = info[key]
        print(f"  {key:14s} {', '.join(value) if isinstance(value, list) else value}")

    rng = np.random.default_rng(0)
    n = 512
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    ours = fastnn.ops.matmul(a, b)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    rel_err = float(np.max(np.abs(ours - exact)) / np.max(np.abs(exact)))
    ok = rel_err < 1e-5
    flops = 2.0 * n**3
    t_ours = _median_seconds(lambda: fastnn.ops.matmul(a, b))
    t_numpy = _median_seconds(lambda: a @ b)
    print(f"\nself-check: float32 GEMM {n}x{n}x{n}: max relative error {rel_err:.2e} vs float64 "
          f"({'ok' if ok else 'FAILED'})")
    print(f"  fastnn {flops / t_ours / 1e9:7.1f} GFLOP/s   NumPy {flops / t_numpy / 1e9:7.1f} GFLOP/s   "
          f"ratio {t_numpy / t_ours:.2f}x  ({info['num_threads']} threads, median of 7)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
