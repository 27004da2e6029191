"""Kernel-level speed of the pooling and batch-normalization kernels (fastnn.backend.cpu) on the benchmark CNN's and
ResNet's shapes, float32: median milliseconds per call, as JSON (one line) or a table.

With --torch (PyTorch is a benchmark-only dependency), also forward + backward of the CNN's 2x2 max pools, the
ResNet's BatchNormalization (training) and its global average pool against PyTorch's CPU kernels, the faster of
NCHW and channels_last, in the same process, alternating round by round. Run it with OMP_WAIT_POLICY=PASSIVE:
PyTorch's OpenMP workers otherwise spin after each of its calls and take the cores fastnn's next call needs
(measured: fastnn's 32x32x64 batch norm 8.3 ms beside them, 1.5 ms without).

Usage:
    PYTHONPATH=src python bench/bench_pool_norm.py [--threads 2] [--json]
    OMP_WAIT_POLICY=PASSIVE PYTHONPATH=src python bench/bench_pool_norm.py --torch [--rounds 7]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

CNN_POOLS = [(64, 28, 28, 32), (64, 14, 14, 64), (64, 7, 7, 128), (1, 28, 28, 32)]
RESNET = (32, 32, 32, 64)
NORMS = [RESNET, (64, 28, 28, 32)]


def median_ms(fn, repeats):
    fn()
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def kernel_times(repeats):
    from fastnn.backend import cpu as B

    rng = np.random.default_rng(0)
    out = {}
    for shape in CNN_POOLS:
        x = rng.standard_normal(shape, dtype=np.float32)
        y, argmax = B.max_pool2d_forward(x, 2, 2)
        dy = rng.standard_normal(y.shape, dtype=np.float32)
        key = "x".join(map(str, shape))
        out[f"max_pool2d_forward {key}"] = median_ms(lambda: B.max_pool2d_forward(x, 2, 2), repeats)
        out[f"max_pool2d_backward {key}"] = median_ms(lambda: B.max_pool2d_backward(dy, argmax, shape), repeats)
        out[f"avg_pool2d_forward {key}"] = median_ms(lambda: B.avg_pool2d_forward(x, 2, 2), repeats)
        out[f"avg_pool2d_backward {key}"] = median_ms(lambda: B.avg_pool2d_backward(dy, shape, 2, 2), repeats)
    x = rng.standard_normal(RESNET, dtype=np.float32)
    g = rng.standard_normal((RESNET[0], RESNET[3]), dtype=np.float32)
    _, argmax = B.global_max_pool2d_forward(x)
    key = "x".join(map(str, RESNET))
    out[f"global_avg_pool2d_forward {key}"] = median_ms(lambda: B.global_avg_pool2d_forward(x), repeats)
    out[f"global_avg_pool2d_backward {key}"] = median_ms(lambda: B.global_avg_pool2d_backward(g, RESNET), repeats)
    out[f"global_max_pool2d_forward {key}"] = median_ms(lambda: B.global_max_pool2d_forward(x), repeats)
    out[f"global_max_pool2d_backward {key}"] = median_ms(
        lambda: B.global_max_pool2d_backward(g, argmax, RESNET), repeats)
    for shape in NORMS:
        c = shape[-1]
        x = rng.standard_normal(shape, dtype=np.float32)
        dy = rng.standard_normal(shape, dtype=np.float32)
        gamma, beta = np.ones(c, np.float32), np.zeros(c, np.float32)
        _, mean, var, rstd = B.batch_norm_train_forward(x, gamma, beta)
        key = "x".join(map(str, shape))
        out[f"batch_norm_train_forward {key}"] = median_ms(lambda: B.batch_norm_train_forward(x, gamma, beta), repeats)
        out[f"batch_norm_backward {key}"] = median_ms(lambda: B.batch_norm_backward(dy, x, mean, rstd, gamma), repeats)
        out[f"batch_norm_inference_forward {key}"] = median_ms(
            lambda: B.batch_norm_inference_forward(x, mean, var, gamma, beta), repeats)
    return out


def torch_table(rounds, repeats):
    import torch
    from fastnn.backend import cpu as B

    rng = np.random.default_rng(0)

    def nchw(a, fmt):
        return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2))).contiguous(memory_format=fmt)

    layouts = (torch.contiguous_format, torch.channels_last)
    cases = []
    for shape in CNN_POOLS[:3]:
        x = rng.standard_normal(shape, dtype=np.float32)
        dy = rng.standard_normal((shape[0], shape[1] // 2, shape[2] // 2, shape[3]), dtype=np.float32)

        def ours(x=x, dy=dy, shape=shape):
            _, argmax = B.max_pool2d_forward(x, 2, 2)
            B.max_pool2d_backward(dy, argmax, shape)

        theirs = []
        for fmt in layouts:
            tx, tdy = nchw(x, fmt).requires_grad_(), nchw(dy, fmt)

            def step(tx=tx, tdy=tdy):
                tx.grad = None
                torch.nn.functional.max_pool2d(tx, 2, 2).backward(tdy)
            theirs.append(step)
        cases.append(("maxpool %dx%dx%d 2x2" % shape[1:], ours, theirs))
    c = RESNET[-1]
    x = rng.standard_normal(RESNET, dtype=np.float32)
    dy = rng.standard_normal(RESNET, dtype=np.float32)
    gamma, beta = np.ones(c, np.float32), np.zeros(c, np.float32)

    def ours_bn():
        _, mean, _, rstd = B.batch_norm_train_forward(x, gamma, beta)
        B.batch_norm_backward(dy, x, mean, rstd, gamma)

    theirs = []
    for fmt in layouts:
        bn = torch.nn.BatchNorm2d(c).train()
        tx, tdy = nchw(x, fmt).requires_grad_(), nchw(dy, fmt)

        def step(bn=bn, tx=tx, tdy=tdy):
            tx.grad = None
            bn.zero_grad()
            bn(tx).backward(tdy)
        theirs.append(step)
    cases.append(("batchnorm 32x32x64 train", ours_bn, theirs))
    gy = rng.standard_normal((RESNET[0], c), dtype=np.float32)

    def ours_gap():
        B.global_avg_pool2d_forward(x)
        B.global_avg_pool2d_backward(gy, RESNET)

    theirs = []
    for fmt in layouts:
        tx, tg = nchw(x, fmt).requires_grad_(), torch.from_numpy(gy)

        def step(tx=tx, tg=tg):
            tx.grad = None
            tx.mean(dim=(2, 3)).backward(tg)
        theirs.append(step)
    cases.append(("global avg pool 32x32x64", ours_gap, theirs))

    times = {name: ([], []) for name, _, _ in cases}
    for _ in range(rounds):
        for name, ours, theirs in cases:
            times[name][0].append(median_ms(ours, repeats))
            times[name][1].append(min(median_ms(t, repeats) for t in theirs))
    print("| layer, forward + backward (float32) | fastnn (ms) | PyTorch, best layout (ms) | PyTorch / fastnn |")
    print("|---|---:|---:|---:|")
    for name, (ours, theirs) in times.items():
        a, b = statistics.median(ours), statistics.median(theirs)
        print(f"| {name} | {a:.3f} | {b:.3f} | {b / a:.2f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="one JSON line of the kernel times (for A/B runs)")
    parser.add_argument("--torch", action="store_true", help="forward + backward against PyTorch")
    args = parser.parse_args()
    import fastnn

    fastnn.set_num_threads(args.threads)
    if args.torch:
        import torch

        torch.set_num_threads(args.threads)
        torch_table(args.rounds, max(3, args.repeats // 2))
        return
    times = kernel_times(args.repeats)
    if args.json:
        print(json.dumps(times))
        return
    print(f"| kernel, shape (N, H, W, C), {args.threads} thread(s) | median (ms) |\n|---|---:|")
    for name, ms in times.items():
        print(f"| {name} | {ms:.3f} |")


if __name__ == "__main__":
    main()
