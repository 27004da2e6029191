"""End-to-end speed of the recurrent benchmark model against PyTorch and Keras 3 (TensorFlow backend).

The model of the end-to-end issue, as issue 13 states it: Embedding(10000, 128, mask_zero=True) -> LSTM(128) ->
Dense(1, sigmoid), binary crossentropy, Adam, batch 64, float32, on 2,048 integer sequences of length 100 with
random lengths (1..100 tokens, zero-padded at the END: the valid steps first, which is what PyTorch's packed
sequences need; every framework gets the same arrays). Timed: the second epoch of fit (one epoch after a warm-up
epoch, so tracing / allocation of the first is not counted) and the second predict (batch 64), as samples/s.

- fastnn: `fastnn.models.Model` with the Keras code unchanged (`import fastnn as keras`), compile + fit / predict.
- Keras 3 on TensorFlow: the same code with `import keras` (KERAS_BACKEND=tensorflow); jit_compile left at Keras's
  default; threads through tf.config.threading (intra-op = inter-op = --threads).
- PyTorch: the loop a PyTorch user writes -- nn.Embedding(10000, 128, padding_idx=0) -> nn.LSTM(128, 128,
  batch_first=True) -> nn.Linear(128, 1), BCEWithLogitsLoss (the sigmoid folded into the loss, PyTorch's idiom),
  torch.optim.Adam, a shuffled index permutation per epoch sliced into batches of 64 (no DataLoader), predictions
  under torch.inference_mode(). Masking in two ways, both timed, the faster being the reference:
  "packed": nn.utils.rnn.pack_padded_sequence(lengths, enforce_sorted=False), the LSTM's h_n as the last state
  (exactly Keras's mask semantics for zeros at the end); "gather": the LSTM over all 100 padded steps, then the
  output at each sequence's last valid step (the same numbers; the padded steps cost compute but no packing).

Each round runs every framework in a fresh subprocess (so one framework's thread pool never competes with
another's), alternating the order round by round so drift on a shared machine hits all alike; medians over rounds.
Ratio = fastnn samples/s / other samples/s (> 1: fastnn is faster).

Usage (PyTorch and Keras / TensorFlow are benchmark-only dependencies; fastnn from this checkout):
    PYTHONPATH=src python bench/bench_rnn_e2e.py [--threads 2] [--rounds 5] [--frameworks fastnn,torch,keras]
    PYTHONPATH=src python bench/bench_rnn_e2e.py --quick     # a tiny setting, to check that the script runs
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

FRAMEWORKS = ("fastnn", "torch", "keras")


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def make_data(samples, maxlen, vocab, seed=0):
    """int32 sequences (samples, maxlen), each with a random number 1..maxlen of tokens 1..vocab-1 followed by zeros;
    their lengths; float32 labels (samples, 1) by a learnable rule (whether a token below vocab / 100 occurs)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, maxlen + 1, samples)
    x = rng.integers(1, vocab, (samples, maxlen)).astype(np.int32)
    x[np.arange(maxlen)[None, :] >= lengths[:, None]] = 0
    y = ((x > 0) & (x < max(2, vocab // 100))).any(axis=1, keepdims=True).astype(np.float32)
    return x, lengths, y


def _keras_style(lib, x, y, args):
    """fastnn or Keras: the model built, compiled and timed with the Keras API. {train, predict} samples/s."""
    L = lib.layers
    inputs = L.Input(shape=(args.maxlen,))
    h = L.Embedding(args.vocab, args.dim, mask_zero=True)(inputs)
    h = L.LSTM(args.units)(h)
    model = lib.models.Model(inputs, L.Dense(1, activation="sigmoid")(h))
    model.compile(loss="binary_crossentropy", optimizer="adam")
    model.fit(x, y, batch_size=args.batch, epochs=1, verbose=0)  # warm-up epoch
    t = time.perf_counter()
    history = model.fit(x, y, batch_size=args.batch, epochs=1, verbose=0)
    train = len(x) / (time.perf_counter() - t)
    model.predict(x, batch_size=args.batch, verbose=0)
    t = time.perf_counter()
    model.predict(x, batch_size=args.batch, verbose=0)
    predict = len(x) / (time.perf_counter() - t)
    return {"train": train, "predict": predict, "loss": float(history.history["loss"][-1])}


def _torch(x_np, lengths_np, y_np, args, masking):
    import torch
    from torch import nn

    torch.manual_seed(0)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(args.vocab, args.dim, padding_idx=0)
            self.lstm = nn.LSTM(args.dim, args.units, batch_first=True)
            self.dense = nn.Linear(args.units, 1)

        def forward(self, tokens, lengths):
            e = self.embedding(tokens)
            if masking == "packed":
                packed = nn.utils.rnn.pack_padded_sequence(e, lengths, batch_first=True, enforce_sorted=False)
                _, (h_n, _) = self.lstm(packed)
                last = h_n[-1]
            else:  # "gather": every padded step computed, the output at the last valid step kept
                out, _ = self.lstm(e)
                last = out[torch.arange(len(tokens)), lengths - 1]
            return self.dense(last)  # logits; the sigmoid is in the loss (training) or applied (predict)

    model = Model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    x, lengths, y = torch.from_numpy(x_np.astype(np.int64)), torch.from_numpy(lengths_np.astype(np.int64)), \
        torch.from_numpy(y_np)

    def epoch():
        model.train()
        order = torch.randperm(len(x))
        total = 0.0
        for start in range(0, len(x), args.batch):
            idx = order[start:start + args.batch]
            optimizer.zero_grad()
            loss = loss_fn(model(x[idx], lengths[idx]), y[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        return total / len(x)

    def predict():
        model.eval()
        with torch.inference_mode():
            return torch.cat([torch.sigmoid(model(x[s:s + args.batch], lengths[s:s + args.batch]))
                              for s in range(0, len(x), args.batch)])

    epoch()  # warm-up epoch
    t = time.perf_counter()
    loss = epoch()
    train = len(x) / (time.perf_counter() - t)
    predict()
    t = time.perf_counter()
    predict()
    return {"train": train, "predict": len(x) / (time.perf_counter() - t), "loss": loss}


def _child(framework, args):
    """Times one framework in this process: {name: {train, predict, loss}}."""
    x, lengths, y = make_data(args.samples, args.maxlen, args.vocab)
    if framework == "fastnn":
        import fastnn

        fastnn.set_num_threads(args.threads)
        fastnn.utils.set_random_seed(0)
        return {"fastnn": _keras_style(fastnn, x, y, args)}
    if framework == "keras":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
        import keras

        keras.utils.set_random_seed(0)
        return {"keras": _keras_style(keras, x, y, args)}
    import torch

    torch.set_num_threads(args.threads)
    return {f"torch {m}": _torch(x, lengths, y, args, m) for m in ("packed", "gather")}


def _versions(frameworks):
    out = []
    for name, module in (("fastnn", "fastnn"), ("torch", "torch"), ("keras", "keras"), ("keras", "tensorflow")):
        if name in frameworks:
            try:
                out.append(f"{module} {__import__(module).__version__}")
            except Exception as e:  # noqa: BLE001 -- a report line, not a check
                out.append(f"{module} not importable ({type(e).__name__})")
    return ", ".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS), help="comma-separated: fastnn, torch, keras")
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--maxlen", type=int, default=100)
    parser.add_argument("--vocab", type=int, default=10000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--quick", action="store_true",
                        help="a tiny setting (256 sequences of length 20, vocabulary 1000, 1 round): checks it runs")
    parser.add_argument("--child", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.samples, args.maxlen, args.vocab, args.rounds = 256, 20, 1000, 1
    if args.child:
        print(json.dumps(_child(args.child, args)))
        return 0
    frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    unknown = sorted(set(frameworks) - set(FRAMEWORKS))
    if unknown or "fastnn" not in frameworks:
        parser.error(f"--frameworks takes fastnn (required) and any of torch, keras; got {args.frameworks!r}")

    print(f"CPU: {_cpu_model()}; {args.threads} threads; {_versions(frameworks)}")
    print(f"Embedding({args.vocab}, {args.dim}, mask_zero=True) -> LSTM({args.units}) -> Dense(1, sigmoid); "
          f"{args.samples} sequences of length {args.maxlen} (random lengths, zeros at the end), batch {args.batch}, "
          f"Adam, float32; second epoch of fit and second predict, samples/s, medians of {args.rounds} rounds")
    print()
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    command = [sys.executable, os.path.abspath(__file__)] + [
        f"--{k}={getattr(args, k)}" for k in ("threads", "samples", "maxlen", "vocab", "dim", "units", "batch")]
    samples = {}
    for r in range(args.rounds):
        for framework in (frameworks if r % 2 == 0 else frameworks[::-1]):
            done = subprocess.run(command + ["--child", framework], capture_output=True, text=True, env=env)
            if done.returncode != 0:
                sys.exit(f"the {framework} run failed:\n{done.stderr[-3000:]}")
            for name, result in json.loads(done.stdout.strip().splitlines()[-1]).items():
                for key, value in result.items():
                    samples.setdefault(name, {}).setdefault(key, []).append(value)
            print(f"round {r + 1}/{args.rounds}: {framework} done", file=sys.stderr)

    med = {name: {k: statistics.median(v) for k, v in result.items()} for name, result in samples.items()}
    print("| framework | train samples/s | predict samples/s | last epoch loss | fastnn / this, train | "
          "fastnn / this, predict |")
    print("|---|---:|---:|---:|---:|---:|")
    ours = med["fastnn"]
    for name, m in med.items():
        print(f"| {name} | {m['train']:,.0f} | {m['predict']:,.0f} | {m['loss']:.4f} | "
              f"{ours['train'] / m['train']:.2f} | {ours['predict'] / m['predict']:.2f} |")
    torch_rows = [m for name, m in med.items() if name.startswith("torch")]
    print()
    if torch_rows:
        best_train, best_predict = max(m["train"] for m in torch_rows), max(m["predict"] for m in torch_rows)
        print(f"fastnn vs PyTorch (the faster of packed / gather): train {ours['train'] / best_train:.2f}x, "
              f"predict {ours['predict'] / best_predict:.2f}x")
    if "keras" in med:
        print(f"fastnn vs Keras 3 (TensorFlow): train {ours['train'] / med['keras']['train']:.2f}x, "
              f"predict {ours['predict'] / med['keras']['predict']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
