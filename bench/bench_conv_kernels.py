"""The convolution kernels (forward, backward-input, backward-weight) on the benchmark CNN's and ResNet's shapes,
through fastnn._C, in GFLOP/s (the direct convolution's 2*N*OH*OW*KH*KW*C*F per pass, whatever algorithm ran).

Usage:
    PYTHONPATH=src python bench/bench_conv_kernels.py [--threads 2] [--rounds 5]
    python bench/bench_conv_kernels.py --trees BEFORE/src AFTER/src     # two source trees, interleaved, same run

Each round runs every tree in a fresh subprocess (``PYTHONPATH=<tree>``), alternating the trees so drift on a shared
machine hits both alike; a sample is the fastest of 5 calls; the table reports medians over rounds, and for two
trees the speedup = before / after time. ``--no-winograd`` times the im2col path alone (FASTNN_CONV_WINOGRAD=0).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

SHAPES = [  # (N, H, W, C, F), 3x3 "same", stride 1
    (64, 28, 28, 1, 32), (64, 14, 14, 32, 64), (64, 7, 7, 64, 128),   # benchmark CNN, batch 64
    (32, 32, 32, 3, 64), (32, 32, 32, 64, 64),                         # benchmark ResNet, batch 32
]

CHILD = r"""
import json, sys, time
import numpy as np
import fastnn
from fastnn import _C
fastnn.set_num_threads(int(sys.argv[1]))
shapes = json.loads(sys.argv[2])
rng = np.random.default_rng(0)
def best(f, n=5):
    f()
    times = []
    for _ in range(n):
        t = time.perf_counter(); f(); times.append(time.perf_counter() - t)
    return min(times)
out = {}
for n, h, w, c, f in shapes:
    x = rng.standard_normal((n, h, w, c)).astype(np.float32)
    k = (rng.standard_normal((3, 3, c, f)) / 3).astype(np.float32)
    dy = rng.standard_normal((n, h, w, f)).astype(np.float32)
    key = f"{n}x{h}x{w}x{c}->{f}"
    out[key + " forward"] = best(lambda: _C.conv2d_forward(x, k, None, padding="same"))
    out[key + " backward-input"] = best(lambda: _C.conv2d_backward_input(dy, k, x.shape, padding="same"))
    out[key + " backward-weight"] = best(lambda: _C.conv2d_backward_weight(x, dy, k.shape, padding="same"))
print(json.dumps(out))
"""


def flops(key):
    n, h, w, c, f = (int(v) for v in key.split()[0].replace("->", "x").split("x"))
    return 2.0 * n * h * w * 9 * c * f


def run_tree(tree, threads, env_extra):
    env = dict(os.environ, PYTHONPATH=tree, **env_extra)
    done = subprocess.run([sys.executable, "-c", CHILD, str(threads), json.dumps(SHAPES)], env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--trees", nargs="+", default=[os.path.join(os.path.dirname(__file__), "..", "src")])
    parser.add_argument("--no-winograd", action="store_true")
    args = parser.parse_args()
    env_extra = {"FASTNN_CONV_WINOGRAD": "0"} if args.no_winograd else {}
    samples = {tree: [] for tree in args.trees}
    for _ in range(args.rounds):
        for tree in args.trees:
            samples[tree].append(run_tree(tree, args.threads, env_extra))
    keys = list(samples[args.trees[0]][0])
    med = {tree: {k: statistics.median(s[k] for s in samples[tree]) for k in keys} for tree in args.trees}
    print(f"threads {args.threads}, float32, median of {args.rounds} rounds (each the fastest of 5 calls)")
    head = " | ".join(f"{t} ms (GFLOP/s)" for t in args.trees)
    print(f"| pass | {head} |" + (" speedup |" if len(args.trees) == 2 else ""))
    print("|---|" + "---|" * len(args.trees) + ("---|" if len(args.trees) == 2 else ""))
    for k in keys:
        cells = " | ".join(f"{med[t][k] * 1e3:.2f} ({flops(k) / med[t][k] / 1e9:.0f})" for t in args.trees)
        extra = f" {med[args.trees[0]][k] / med[args.trees[1]][k]:.2f} |" if len(args.trees) == 2 else ""
        print(f"| {k} | {cells} |{extra}")


if __name__ == "__main__":
    main()
