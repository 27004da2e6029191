"""The cost of the backend boundary: per-op overhead, the seed MLP's fit / predict, and the backend's elementwise
kernels against the NumPy expressions they replace.

Usage:
    python bench/bench_backend.py                                  # this checkout only
    python bench/bench_backend.py --trees BEFORE/src AFTER/src     # two source trees, interleaved, same run

Each measurement runs in a fresh subprocess per tree (``PYTHONPATH=<tree>``); rounds alternate the trees so
drift on a shared machine hits both alike; the table reports medians over rounds, and ratio = before / after
(> 1: the second tree is faster). Per-op figures are microseconds per call (forward, or forward + backward
through a GradientTape) on the seed MLP's shapes (batch 32, float32). The MLP is the end-to-end issue's
workload 1: Dense(64, relu) -> Dense(64, relu) -> Dropout(0.5) -> Dense(1) on 8,192 x 100, mse, Adam, batch 32;
samples/s of the second epoch and of the second predict.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _per_call_us(fn, min_time=0.2, repeats=5):
    fn()
    n = 1
    while True:
        t = time.perf_counter()
        for _ in range(n):
            fn()
        if time.perf_counter() - t > 0.02:
            break
        n *= 2
    n = max(1, int(n * min_time / 0.02 / repeats))
    samples = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - t) / n * 1e6)
    return statistics.median(samples)


def _ops_cases():
    import numpy as np

    import fastnn
    from fastnn import ops

    rng = np.random.default_rng(0)
    x = fastnn.Variable(rng.standard_normal((32, 64)).astype("float32"))
    y = fastnn.Variable(rng.standard_normal((32, 64)).astype("float32"))
    b = fastnn.Variable(rng.standard_normal((64,)).astype("float32"))
    w = fastnn.Variable(rng.standard_normal((100, 64)).astype("float32"))
    xin = fastnn.Tensor(rng.standard_normal((32, 100)).astype("float32"))
    labels = fastnn.Tensor(rng.standard_normal((32, 1)).astype("float32"))
    dense = fastnn.layers.Dense(64, activation="relu")
    dense(xin)

    def grad(f, wrt):
        def run():
            with fastnn.GradientTape() as tape:
                loss = f()
            tape.gradient(loss, wrt)
        return run

    return {
        "add (32,64)+(32,64)": lambda: ops.add(x, y),
        "add (32,64)+(64,)": lambda: ops.add(x, b),
        "multiply": lambda: ops.multiply(x, y),
        "subtract scalar": lambda: ops.subtract(x, 1.0),
        "sum all": lambda: ops.sum(x),
        "mean axis 0": lambda: ops.mean(x, axis=0),
        "relu": lambda: ops.relu(x),
        "where": lambda: ops.where(ops.greater(x, 0.0), x, y),
        "clip": lambda: ops.clip(x, -0.5, 0.5),
        "matmul (32,100)x(100,64)": lambda: ops.matmul(xin, w),
        "grad: sum((x+b)*y)": grad(lambda: ops.sum(ops.multiply(ops.add(x, b), y)), [x, b, y]),
        "grad: mean(square(x-y))": grad(lambda: ops.mean(ops.square(ops.subtract(x, y))), [x, y]),
        "grad: Dense(64, relu)": grad(lambda: ops.mean(dense(xin)), dense.trainable_weights),
        "grad: mse loss": grad(lambda: fastnn.losses.MeanSquaredError()(labels, ops.mean(x, axis=1, keepdims=True)),
                               [x]),
    }


def _kernel_cases():
    """Backend functions against the NumPy expressions they replace (only trees that have them)."""
    import numpy as np

    from fastnn import backend as B

    rng = np.random.default_rng(1)
    g = rng.standard_normal((32, 64)).astype("float32")
    h = rng.standard_normal((32, 64)).astype("float32")
    bias = rng.standard_normal((64,)).astype("float32")
    mask = rng.random((32, 64)) > 0.5  # Dropout's boolean keep-mask
    cases = {}

    def pair(name, backend_fn, numpy_fn):
        cases[name + " [backend]"] = backend_fn
        cases[name + " [numpy]"] = numpy_fn

    if hasattr(B, "unbroadcast"):
        pair("unbroadcast (32,64)->(64,)", lambda: B.unbroadcast(g, (64,)), lambda: g.sum(axis=0))
    if hasattr(B, "relu_mask_multiply"):
        pair("relu mask multiply", lambda: B.relu_mask_multiply(g, h), lambda: g * (h > 0))
    if hasattr(B, "dropout_mask_multiply"):
        pair("dropout mask multiply", lambda: B.dropout_mask_multiply(g, mask, 2.0), lambda: g * mask * 2.0)
    if hasattr(B, "where"):
        pair("where(h>0, g, 0)", lambda: B.where(B.greater(h, 0), g, 0), lambda: np.where(h > 0, g, 0))
    if hasattr(B, "add"):
        pair("add broadcast (32,64)+(64,)", lambda: B.add(g, bias), lambda: g + bias)
    if hasattr(B, "clip"):
        pair("clip", lambda: B.clip(g, -0.5, 0.5), lambda: np.clip(g, -0.5, 0.5))
    big = rng.standard_normal((4096, 256)).astype("float32")
    big_mask = rng.random((4096, 256)) > 0.5
    if hasattr(B, "dropout_mask_multiply"):
        pair("dropout mask multiply (4096,256)", lambda: B.dropout_mask_multiply(big, big_mask, 2.0),
             lambda: big * big_mask * 2.0)
    if hasattr(B, "unbroadcast"):
        pair("unbroadcast (4096,256)->(256,)", lambda: B.unbroadcast(big, (256,)), lambda: big.sum(axis=0))
    return cases


def _mlp():
    import numpy as np

    import fastnn

    fastnn.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8192, 100)).astype("float32")
    y = (x[:, :1] * 0.5 + rng.standard_normal((8192, 1)) * 0.1).astype("float32")
    model = fastnn.models.Sequential([
        fastnn.layers.Input((100,)),
        fastnn.layers.Dense(64, activation="relu"),
        fastnn.layers.Dense(64, activation="relu"),
        fastnn.layers.Dropout(0.5),
        fastnn.layers.Dense(1),
    ])
    model.compile(loss="mse", optimizer="adam")
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    t = time.perf_counter()
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    train = len(x) / (time.perf_counter() - t)
    model.predict(x, batch_size=32, verbose=0)
    t = time.perf_counter()
    model.predict(x, batch_size=32, verbose=0)
    predict = len(x) / (time.perf_counter() - t)
    return {"MLP fit samples/s": train, "MLP predict samples/s": predict}


def worker() -> dict:
    out = {name: _per_call_us(fn) for name, fn in _ops_cases().items()}
    out.update({name: _per_call_us(fn) for name, fn in _kernel_cases().items()})
    out.update(_mlp())
    return out


def run_tree(tree: str) -> dict:
    env = dict(os.environ, PYTHONPATH=tree)
    proc = subprocess.run([sys.executable, __file__, "--worker"], env=env, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trees", nargs="+", default=[str(Path(__file__).resolve().parents[1] / "src")])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker()))
        return
    results = {t: [] for t in args.trees}
    for r in range(args.rounds):
        for t in (args.trees if r % 2 == 0 else list(reversed(args.trees))):
            results[t].append(run_tree(t))
            print(f"round {r + 1}/{args.rounds}: {t} done", file=sys.stderr)
    medians = {t: {k: statistics.median(run[k] for run in runs if k in run) for k in runs[0]}
               for t, runs in results.items()}
    keys = list(medians[args.trees[-1]])
    header = "| measurement | " + " | ".join(args.trees) + (" | ratio |" if len(args.trees) == 2 else " |")
    print(header)
    print("|---|" + "---:|" * (len(args.trees) + (len(args.trees) == 2)))
    for k in keys:
        vals = [medians[t].get(k) for t in args.trees]
        cells = ["—" if v is None else f"{v:,.1f}" for v in vals]
        ratio = ""
        if len(vals) == 2 and None not in vals:
            ratio = f" {(vals[1] / vals[0]) if 'samples/s' in k else (vals[0] / vals[1]):.2f} |"
        elif len(vals) == 2:
            ratio = " — |"
        print(f"| {k} | " + " | ".join(cells) + " |" + ratio)


if __name__ == "__main__":
    main()
