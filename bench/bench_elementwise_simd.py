"""Times the elementwise, softmax / crossentropy and optimizer kernels on one thread, before against after.

    python bench/bench_elementwise_simd.py [--before OLD_C.so] [--after NEW_C.so] [--paths avx512,avx2+fma]

Loads the two extension modules side by side in one process (default after: the one in src/fastnn), and for each
kernel at the shapes (32, 64), (64, 10), (4096, 256), float32, times the old build and the new build on each SIMD
path named, interleaved round by round (so a noisy, shared machine slows all variants alike), and prints one JSON
line per kernel and shape: the median microseconds of each variant and before / after ratios (> 1: faster now).
"""
from __future__ import annotations

import importlib.util
import json
import pathlib
import sys
import timeit

import numpy as np

SHAPES = [(32, 64), (64, 10), (4096, 256)]
ACTS = ["relu", "sigmoid", "tanh", "elu", "gelu_tanh", "silu", "softplus"]


def load(name, path):
    # The module's init function is PyInit__C: any dotted name ending in "_C" loads it, so two builds can coexist.
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def calibrate(fn, target_s=0.003):
    fn()
    number = 1
    while timeit.timeit(fn, number=number) < target_s and number < 1 << 20:
        number *= 4
    return number


def cases(C, rows, cols):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((rows, cols)) * 3).astype(np.float32)
    dy = rng.standard_normal((rows, cols)).astype(np.float32)
    labels = rng.integers(0, cols, rows).astype(np.int64)
    target = rng.random((rows, cols)).astype(np.float32)
    dloss = rng.standard_normal(rows).astype(np.float32)
    out = {}
    for a in ACTS:
        y = C.activation_forward(x, a)
        out[f"{a}_fwd"] = lambda a=a: C.activation_forward(x, a)
        out[f"{a}_bwd"] = lambda a=a, y=y: C.activation_backward(dy, x, y, a)
    sm, lsm = C.softmax_forward(x), C.log_softmax_forward(x)
    out["softmax_fwd"] = lambda: C.softmax_forward(x)
    out["softmax_bwd"] = lambda: C.softmax_backward(dy, sm)
    out["log_softmax_fwd"] = lambda: C.log_softmax_forward(x)
    out["log_softmax_bwd"] = lambda: C.log_softmax_backward(dy, lsm)
    _, lse = C.sparse_xent_forward(x, labels)
    out["sparse_xent_fwd"] = lambda: C.sparse_xent_forward(x, labels)
    out["sparse_xent_bwd"] = lambda: C.sparse_xent_backward(dloss, x, lse, labels)
    out["dense_xent_fwd"] = lambda: C.dense_xent_forward(x, target)
    out["dense_xent_bwd"] = lambda: C.dense_xent_backward(dloss, x, lse, target)
    b = rng.standard_normal(cols).astype(np.float32)
    out["bias_add_fwd"] = lambda: C.bias_add_forward(x, b)
    out["bias_add_bwd"] = lambda: C.bias_add_backward(dy)
    var = x.ravel().copy()
    g = dy.ravel().copy()
    m, v, mom = np.zeros_like(var), np.zeros_like(var), np.zeros_like(var)
    out["adam"] = lambda: C.optimizer_update("adam", [var], [g], [[m], [v]], None, {"lr": 1e-3, "alpha": 1e-3})
    out["sgd_momentum"] = lambda: C.optimizer_update("sgd", [var], [g], [[mom]], None, {"lr": 1e-3, "momentum": 0.9})
    out["rmsprop"] = lambda: C.optimizer_update("rmsprop", [var], [g], [[v]], None, {"lr": 1e-3})
    out["sum_squares"] = lambda: C.sum_squares([g])
    return out


def main():
    root = pathlib.Path(__file__).resolve().parents[1]
    args = sys.argv[1:]

    def option(flag, default):
        return args[args.index(flag) + 1] if flag in args else default

    after_path = option("--after", str(next((root / "src" / "fastnn").glob("_C*.so"))))
    before_path = option("--before", None)
    after = load("after._C", after_path)
    paths = option("--paths", after.simd_path()).split(",")
    before = load("before._C", before_path) if before_path else None
    repeats = 21
    for module in filter(None, (before, after)):
        module.set_num_threads(1)
    for rows, cols in SHAPES:
        new_cases = cases(after, rows, cols)
        old_cases = cases(before, rows, cols) if before else {}
        for name, fn in new_cases.items():
            variants = [(p, fn) for p in paths] + ([("before", old_cases[name])] if before else [])
            numbers = {}
            times = {v: [] for v, _ in variants}
            with np.errstate(all="ignore"):
                for v, f in variants:
                    if v != "before":
                        after.set_simd_path(v)
                    numbers[v] = calibrate(f)
                for _ in range(repeats):
                    for v, f in variants:
                        if v != "before":
                            after.set_simd_path(v)
                        times[v].append(timeit.timeit(f, number=numbers[v]) / numbers[v] * 1e6)
            med = {v: sorted(t)[repeats // 2] for v, t in times.items()}
            line = {"shape": [rows, cols], "kernel": name, "us": {v: round(t, 3) for v, t in med.items()}}
            if before:
                line["speedup"] = {p: round(med["before"] / med[p], 2) for p in paths}
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
