"""Per-layer speed of the convolution stack against PyTorch's CPU kernels (oneDNN), on the benchmark models' shapes.

Every conv, pooling and BatchNormalization layer of the end-to-end issue's benchmark CNN (batch 64) and ResNet
(batch 32): the time of one training step of that layer alone, forward + backward (the input gradient where a
previous layer needs it, and the weight gradients), float32. Each round runs each framework in a fresh subprocess
(so PyTorch's OpenMP threads, which spin for a while after each of its calls, never take the cores from a fastnn
call), alternating them round by round so drift on a shared machine hits both alike. PyTorch runs each shape both
in its default NCHW layout and in channels_last, and the faster of the two is the reference (fastnn is NHWC only).
Ratio = PyTorch time / fastnn time (> 1: fastnn is faster). Medians over rounds.

Usage (PyTorch is a benchmark-only dependency; fastnn from this checkout):
    PYTHONPATH=src python bench/bench_layers.py [--threads 2] [--rounds 7] [--only cnn|resnet] [--forward]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time

import numpy as np


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


# (name, kind, input shape NHWC, arguments, whether the input gradient is needed)
CNN_BATCH, RESNET_BATCH = 64, 32
CASES = {
    "cnn": [
        ("conv 28x28x1->32 3x3 relu", "conv", (CNN_BATCH, 28, 28, 1), dict(filters=32, relu=True), False),
        ("maxpool 28x28x32 2x2", "maxpool", (CNN_BATCH, 28, 28, 32), {}, True),
        ("conv 14x14x32->64 3x3 relu", "conv", (CNN_BATCH, 14, 14, 32), dict(filters=64, relu=True), True),
        ("maxpool 14x14x64 2x2", "maxpool", (CNN_BATCH, 14, 14, 64), {}, True),
        ("conv 7x7x64->128 3x3 relu", "conv", (CNN_BATCH, 7, 7, 64), dict(filters=128, relu=True), True),
        ("maxpool 7x7x128 2x2", "maxpool", (CNN_BATCH, 7, 7, 128), {}, True),
    ],
    "resnet": [
        ("conv 32x32x3->64 3x3", "conv", (RESNET_BATCH, 32, 32, 3), dict(filters=64, relu=False), False),
        ("conv 32x32x64->64 3x3", "conv", (RESNET_BATCH, 32, 32, 64), dict(filters=64, relu=False), True),
        ("batchnorm 32x32x64 train", "bn", (RESNET_BATCH, 32, 32, 64), {}, True),
        ("global avg pool 32x32x64", "gap", (RESNET_BATCH, 32, 32, 64), {}, True),
    ],
}


def fastnn_step(kind, shape, args, input_grad):
    import fastnn
    from fastnn import layers

    rng = np.random.default_rng(0)
    x_np = rng.standard_normal(shape).astype("float32")
    if kind == "conv":
        layer = layers.Conv2D(args["filters"], 3, padding="same", activation="relu" if args["relu"] else None)
    elif kind == "maxpool":
        layer = layers.MaxPooling2D(2)
    elif kind == "bn":
        layer = layers.BatchNormalization()
    else:
        layer = layers.GlobalAveragePooling2D()
    x = fastnn.Variable(x_np) if input_grad else fastnn.Tensor(x_np)
    y = layer(x, training=True)
    dy = fastnn.Tensor(rng.standard_normal(tuple(y.shape)).astype("float32"))
    sources = ([x] if input_grad else []) + list(layer.trainable_weights)

    def step():
        with fastnn.GradientTape() as tape:
            if input_grad:
                tape.watch(x)
            out = layer(x, training=True)
        return tape.gradient(out, sources, output_gradients=dy)

    return step


def torch_step(kind, shape, args, input_grad, channels_last):
    import torch

    n, h, w, c = shape
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((n, c, h, w)).astype("float32"))
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = x.contiguous(memory_format=fmt).requires_grad_(input_grad)
    if kind == "conv":
        module = torch.nn.Conv2d(c, args["filters"], 3, padding="same")
        act = torch.relu if args["relu"] else (lambda t: t)
        fn = lambda t: act(module(t))  # noqa: E731
    elif kind == "maxpool":
        module = torch.nn.MaxPool2d(2)
        fn = module
    elif kind == "bn":
        module = torch.nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)
        fn = module
    else:
        module = torch.nn.AdaptiveAvgPool2d(1)
        fn = lambda t: module(t).flatten(1)  # noqa: E731
    module = module.to(memory_format=fmt) if kind == "conv" else module
    module.train()
    y = fn(x)
    dy = torch.randn_like(y)
    params = [p for p in module.parameters()]

    def step():
        for p in params:
            p.grad = None
        if x.grad is not None:
            x.grad = None
        fn(x).backward(dy)

    return step


def time_once(step, min_time):
    step()
    n, t0 = 0, time.perf_counter()
    while True:
        step()
        n += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= min_time:
            return elapsed / n


def _child(framework, threads, min_time, only):
    """Times every case in this process for one framework: {case name: seconds} (torch: nchw and channels_last)."""
    if framework == "fastnn":
        import fastnn

        fastnn.set_num_threads(threads)
    else:
        import torch

        torch.set_num_threads(threads)
    out = {}
    for model, cases in CASES.items():
        if only and model != only:
            continue
        for name, kind, shape, kw, input_grad in cases:
            if framework == "fastnn":
                out[f"{model}|{name}|fastnn"] = time_once(fastnn_step(kind, shape, kw, input_grad), min_time)
            else:
                for layout, channels_last in (("nchw", False), ("cl", True)):
                    step = torch_step(kind, shape, kw, input_grad, channels_last)
                    out[f"{model}|{name}|{layout}"] = time_once(step, min_time)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--min-time", type=float, default=0.15, help="seconds per timing sample")
    parser.add_argument("--only", choices=sorted(CASES), default=None)
    parser.add_argument("--child", choices=["fastnn", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.threads, args.min_time, args.only)))
        return 0

    import torch

    import fastnn

    info = fastnn.build_info()
    print(f"CPU: {_cpu_model()}; threads {args.threads}; fastnn simd {info.get('simd')}, "
          f"caches {info.get('cache_sizes')}; torch {torch.__version__} (mkldnn {torch.backends.mkldnn.is_available()})")
    print(f"float32, forward + backward of one layer, medians of {args.rounds} rounds; ratio = PyTorch / fastnn")
    print()
    samples = {}
    command = [sys.executable, __file__, "--threads", str(args.threads), "--min-time", str(args.min_time)]
    if args.only:
        command += ["--only", args.only]
    for _ in range(args.rounds):
        for framework in ("fastnn", "torch"):
            done = subprocess.run(command + ["--child", framework], capture_output=True, text=True, check=True)
            for key, seconds in json.loads(done.stdout.strip().splitlines()[-1]).items():
                samples.setdefault(key, []).append(seconds)
    print("| model | layer | fastnn ms | PyTorch NCHW ms | PyTorch channels_last ms | ratio |")
    print("|---|---|---|---|---|---|")
    ratios = []
    for model, cases in CASES.items():
        if args.only and model != args.only:
            continue
        for name, *_ in cases:
            med = {k: statistics.median(samples[f"{model}|{name}|{k}"]) * 1e3 for k in ("fastnn", "nchw", "cl")}
            ratio = min(med["nchw"], med["cl"]) / med["fastnn"]
            ratios.append(ratio)
            print(f"| {model} | {name} | {med['fastnn']:.3f} | {med['nchw']:.3f} | {med['cl']:.3f} | {ratio:.2f} |")
    print()
    print(f"geometric mean ratio {float(np.exp(np.mean(np.log(ratios)))):.2f}; lowest {min(ratios):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
