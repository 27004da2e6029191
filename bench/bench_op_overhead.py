"""Per-op Python overhead of fastnn's autograd ops on small float32 inputs: forward (recorded on a tape) and the
node's backward closure called directly, in microseconds (CPU time of this process, so other load on the machine
inflates it less than wall time).

    python bench/bench_op_overhead.py                      # the fastnn on sys.path
    python bench/bench_op_overhead.py OLD_SRC NEW_SRC [ROUNDS]
        # two source trees (each a directory holding fastnn/, with its compiled _C), run alternately in
        # subprocesses, ROUNDS times each (default 6); prints the median over rounds of each case's median

Single-threaded (OMP_NUM_THREADS=1); no assertions: numbers for bench/RESULTS.md.
"""
from __future__ import annotations

import collections
import os
import statistics
import subprocess
import sys
import time
import timeit


def measure(number=1000, repeat=7):
    """{case: (forward_us, backward_us)}, each the median over ``repeat`` runs of ``number`` calls."""
    import numpy as np

    import fastnn
    from fastnn import ops
    from fastnn.autograd.ops import nn as nn_ops

    rng = np.random.default_rng(0)
    x = fastnn.Variable(rng.standard_normal((8, 16)).astype(np.float32))
    x3 = fastnn.Variable(rng.standard_normal((2, 4, 16)).astype(np.float32))
    k = fastnn.Variable(rng.standard_normal((16, 8)).astype(np.float32))
    b = fastnn.Variable(rng.standard_normal((8,)).astype(np.float32))
    cases = {
        "dense relu 2-D x": lambda: nn_ops.dense(x, k, b, "relu"),
        "dense relu 3-D x": lambda: nn_ops.dense(x3, k, b, "relu"),
        "matmul": lambda: ops.matmul(x, k),
        "softmax": lambda: ops.softmax(x),
        "log_softmax": lambda: ops.log_softmax(x),
        "relu": lambda: ops.relu(x),
        "reshape": lambda: ops.reshape(x, (16, 8)),
        "transpose": lambda: ops.transpose(x),
        "getitem": lambda: x[1:, ::2],
        "concatenate": lambda: ops.concatenate([x, x], axis=-1),
    }
    out = {}
    with fastnn.GradientTape(persistent=True):
        for name, forward in cases.items():
            node = forward()._node
            g = np.ones(forward().shape, np.float32)
            needs = (True,) * len(node.parents)

            def backward(node=node, g=g, needs=needs):
                return node.backward(g, needs)

            times = []
            for fn in (forward, backward):
                runs = timeit.repeat(fn, number=number, repeat=repeat, timer=time.process_time)
                times.append(statistics.median(runs) / number * 1e6)
            out[name] = tuple(times)
    return out


def main(argv):
    if len(argv) < 2:
        for name, (fw, bw) in measure().items():
            print(f"{name:18s} forward {fw:7.2f} us   backward {bw:7.2f} us")
        return
    old, new = argv[0], argv[1]
    rounds = int(argv[2]) if len(argv) > 2 else 6
    results = {old: collections.defaultdict(list), new: collections.defaultdict(list)}
    for r in range(rounds):
        for src in ((old, new) if r % 2 == 0 else (new, old)):
            env = dict(os.environ, PYTHONPATH=src, OMP_NUM_THREADS="1")
            text = subprocess.run([sys.executable, __file__], env=env, capture_output=True, text=True,
                                  check=True).stdout
            for line in text.splitlines():
                name, rest = line[:18].strip(), line[18:].split()
                results[src][name + " forward"].append(float(rest[1]))
                results[src][name + " backward"].append(float(rest[4]))
    print(f"{'case':28s} {'old':>8s} {'new':>8s}   (us, median of {rounds} rounds)")
    for case in results[old]:
        a, b = statistics.median(results[old][case]), statistics.median(results[new][case])
        print(f"{case:28s} {a:8.2f} {b:8.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
