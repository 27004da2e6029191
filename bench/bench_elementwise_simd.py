"""Times the elementwise, softmax / crossentropy and optimizer kernels of one fastnn._C build on one thread.

    python bench/bench_elementwise_simd.py [path/to/_C.so] [simd path ...] > out.json

Loads the given extension module (default: the one in src/fastnn), and for each SIMD path named (default: the
active one) prints the median time in microseconds of each kernel at the shapes (32, 64), (64, 10), (4096, 256),
float32, as JSON lines. Run it once for a build from before a change and once after, on the same machine; compare
the medians. (A build whose elementwise kernels are not dispatched per ISA gives the same numbers for every path.)
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


def load(path):
    spec = importlib.util.spec_from_file_location("_C", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def median_us(fn, target_s=0.004, repeats=15):
    fn()
    number = 1
    while True:
        t = timeit.timeit(fn, number=number)
        if t >= target_s or number >= 1 << 20:
            break
        number *= 4
    times = sorted(timeit.repeat(fn, number=number, repeat=repeats))
    return times[len(times) // 2] / number * 1e6


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
    path = sys.argv[1] if len(sys.argv) > 1 else str(next((root / "src" / "fastnn").glob("_C*.so")))
    C = load(path)
    C.set_num_threads(1)
    paths = sys.argv[2:] or [C.simd_path()]
    for simd in paths:
        C.set_simd_path(simd)
        for rows, cols in SHAPES:
            for name, fn in cases(C, rows, cols).items():
                with np.errstate(all="ignore"):
                    us = median_us(fn)
                print(json.dumps({"simd": simd, "shape": [rows, cols], "kernel": name, "us": round(us, 3)}), flush=True)


if __name__ == "__main__":
    main()
