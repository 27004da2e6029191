"""End-to-end speed of issue 15's four workloads: fastnn against PyTorch eager, Keras 3 on TensorFlow, ONNX Runtime.

The workloads (float32, Adam, the issue's exact models and sizes):
  mlp    Dense(64, relu) -> Dense(64, relu) -> Dropout(0.5) -> Dense(1); 8,192 x 100, mse, batch 32
  cnn    28x28x1: Conv2D(32, 3, same, relu) -> MaxPool 2 -> Conv2D(64, 3, same, relu) -> MaxPool 2 ->
         Conv2D(128, 3, same, relu) -> MaxPool 2 -> Flatten -> Dense(128, relu) -> Dropout(0.5) ->
         Dense(10, softmax); 4,096 samples, categorical crossentropy, batch 64
  resnet 32x32x3: Conv2D(64, 3, same) -> BN -> ReLU, 4 blocks of Conv2D(64, 3, same) -> BN -> ReLU ->
         Conv2D(64, 3, same) -> BN, Add, ReLU; GlobalAveragePooling2D -> Dense(10, softmax); 1,024 samples, batch 32
  lstm   Embedding(10000, 128, mask_zero=True) -> LSTM(128) -> Dense(1, sigmoid); 2,048 int sequences of length 100
         (random lengths, zeros at the end: bench_rnn_e2e.make_data), binary crossentropy, batch 64

The frameworks:
- fastnn: the Keras code with `import fastnn as keras`: functional Model, compile(optimizer="adam", loss=...,
  jit_compile=--fastnn-jit) + fit + predict. --fastnn-jit both gives two columns, "fastnn" (jit_compile=False) and
  "fastnn jit" (jit_compile=True).
- keras: the same code with `import keras` (Keras 3, KERAS_BACKEND=tensorflow, jit_compile left at Keras's default).
- torch: the loop a PyTorch user writes: an nn.Module with the same layer semantics (NCHW, padding="same" /
  padding=1, BatchNorm2d(momentum=0.01, eps=1e-3) = Keras's momentum 0.99 / epsilon 1e-3, nn.Dropout), the softmax
  folded into F.cross_entropy on logits (class indices) and the sigmoid into BCEWithLogits (PyTorch's idiom),
  torch.optim.Adam(lr=1e-3), a torch.randperm per epoch sliced into batches (no DataLoader), predict under
  torch.inference_mode() with the softmax / sigmoid applied. The LSTM masks in both of bench_rnn_e2e.py's ways
  (pack_padded_sequence, and the full padded run + gather of the last valid step); the faster one is "torch".
- ort: ONNX Runtime predict only, of the PyTorch model exported with torch.onnx.export (the TorchScript exporter,
  dynamic batch axis; the LSTM in its "gather" form), SessionOptions.intra_op_num_threads = --threads,
  inter_op_num_threads = 1, sequential execution, batches sliced and fed from Python.

Method: every (framework, workload, threads, batch) measurement is a fresh subprocess (no framework's thread pool
competes with another's; import costs are not counted), rounds alternate the framework order, medians over rounds.
Train = samples/s of the SECOND epoch of fit (the first is the warm-up); predict = samples/s of the second predict of
the whole data set at the workload's batch size. Threads: torch.set_num_threads, tf.config.threading (intra = inter),
ORT's session options, fastnn.set_num_threads, and OMP_NUM_THREADS / MKL_NUM_THREADS in each child's environment;
OPENBLAS_CORETYPE is removed from it. Peak memory: the child's ru_maxrss (the kernel's high-water mark of resident
memory, so it includes the interpreter, the framework's import and the data) read right after the timed fit; it is a
true peak, unlike a sampler, but not only fit's. The "RSS before fit" column (VmRSS after the model is built) shows
how much of it fit adds. Import: `import X` in a fresh interpreter, wall time and VmRSS afterwards (median of rounds).

Conv workloads: the training FLOP per sample is counted from the layer shapes (forward = 2 x MACs of the conv and
dense layers, training ~ 3 x forward), and achieved GFLOP/s = FLOP/sample x samples/s is compared with fastnn's own
SGEMM rate (1024^3 through fastnn.backend.gemm at --threads threads, best of 5, measured in the same run).

Usage (Keras / TensorFlow / PyTorch / onnxruntime / matplotlib are benchmark-only extras; fastnn from this checkout):
    PYTHONPATH=src python bench/bench_e2e.py                     # all 4 workloads x 4 frameworks, 2 threads, 3 rounds
    PYTHONPATH=src python bench/bench_e2e.py --workloads mlp,cnn --frameworks fastnn,torch --rounds 5
    PYTHONPATH=src python bench/bench_e2e.py --fastnn-jit both   # jit_compile off and on, two fastnn columns
    PYTHONPATH=src python bench/bench_e2e.py --batch-sweep       # batch 8/32/128/512 x threads 1/2, fastnn vs torch,
                                                                 # writes bench/e2e_batch_sweep.png
    PYTHONPATH=src python bench/bench_e2e.py --quick             # tiny sizes: checks the script runs (about 1 min)
    ... --json OUT                                               # every raw sample and median as JSON

How long (2-vCPU Sapphire Rapids VM, fastnn at f9feec1): one round of the default mode (4 workloads x 4 frameworks
+ the GEMM + imports) took 271 s at load 1-3 and 774 s at load ~5 (other jobs on the machine), mostly Keras / TF and
PyTorch on the ResNet; the default 3 rounds take about 14 minutes on a quiet machine (--rounds 1 for a 5-minute look).
--batch-sweep (SWEEP_SAMPLES, 64 children, 1 round by default) took 990 s with the load falling from 7 to 1.5 (about
10-12 minutes quiet), a third of it the ResNet. --quick takes about 2 minutes (--quick --batch-sweep about 5 under
load): most of it starting 16 (64) interpreters that import torch / TensorFlow.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_rnn_e2e import _cpu_model, make_data as make_sequences  # noqa: E402  (reused, not duplicated)

FRAMEWORKS = ("fastnn", "torch", "keras", "ort")
WORKLOADS = ("mlp", "cnn", "resnet", "lstm")
# The sizes: (samples, batch); --quick shrinks them.
SIZES = {"mlp": (8192, 32), "cnn": (4096, 64), "resnet": (1024, 32), "lstm": (2048, 64)}
QUICK_SIZES = {"mlp": (512, 32), "cnn": (256, 64), "resnet": (64, 32), "lstm": (128, 64)}
# The batch sweep keeps each (workload, batch, threads) run to a few seconds; batch 512 then runs one or a few steps.
SWEEP_SAMPLES = {"mlp": 8192, "cnn": 2048, "resnet": 512, "lstm": 1024}
SWEEP_BATCHES = (8, 32, 128, 512)
SWEEP_THREADS = (1, 2)
LSTM_MAXLEN, LSTM_VOCAB, LSTM_DIM, LSTM_UNITS = 100, 10000, 128, 128
RESNET_BLOCKS = 4


# ----------------------------------------------------------------------------------------------------- data, FLOPs
def make_workload_data(workload, samples, quick=False):
    """(x, y, extra) as float32 NumPy arrays (the LSTM's x int32, extra its lengths), channels-last images; y one-hot
    for the classifiers. Every framework gets the same arrays (PyTorch transposes images to NCHW outside the timing)."""
    rng = np.random.default_rng(0)
    if workload == "mlp":
        x = rng.standard_normal((samples, 100)).astype(np.float32)
        w = rng.standard_normal((100, 1)).astype(np.float32) / 10.0
        return x, (np.tanh(x @ w) + 0.1 * rng.standard_normal((samples, 1))).astype(np.float32), None
    if workload in ("cnn", "resnet"):
        shape = (28, 28, 1) if workload == "cnn" else (32, 32, 3)
        x = rng.random((samples,) + shape, dtype=np.float32)
        labels = (x.reshape(samples, -1)[:, :10].argmax(axis=1))  # a learnable rule
        return x, np.eye(10, dtype=np.float32)[labels], None
    maxlen, vocab = (20, 1000) if quick else (LSTM_MAXLEN, LSTM_VOCAB)
    x, lengths, y = make_sequences(samples, maxlen, vocab)
    return x, y, lengths


def conv_flops_per_sample(workload):
    """(forward FLOP, training FLOP) per sample from the layer shapes: 2 x MACs of every conv and dense layer
    (pooling, BN, activations are not counted: they are not GEMM work); training ~ 3 x forward (forward, the input
    gradient and the weight gradient, each one product of the same size)."""
    def conv(h, w, cin, cout, k=3):
        return h * w * cout * k * k * cin
    if workload == "cnn":
        macs = conv(28, 28, 1, 32) + conv(14, 14, 32, 64) + conv(7, 7, 64, 128) + 3 * 3 * 128 * 128 + 128 * 10
    elif workload == "resnet":
        macs = conv(32, 32, 3, 64) + 2 * RESNET_BLOCKS * conv(32, 32, 64, 64) + 64 * 10
    else:
        raise ValueError(workload)
    return 2 * macs, 6 * macs


# ---------------------------------------------------------------------------------------- Keras-style (fastnn, keras)
def build_keras_model(lib, workload, quick=False):
    """The workload with the Keras API of `lib` (fastnn or keras): (model, loss name)."""
    L = lib.layers
    if workload == "mlp":
        inputs = L.Input(shape=(100,))
        h = L.Dense(64, activation="relu")(inputs)
        h = L.Dense(64, activation="relu")(h)
        h = L.Dropout(0.5)(h)
        return lib.models.Model(inputs, L.Dense(1)(h)), "mse"
    if workload == "cnn":
        inputs = L.Input(shape=(28, 28, 1))
        h = inputs
        for filters in (32, 64, 128):
            h = L.Conv2D(filters, 3, padding="same", activation="relu")(h)
            h = L.MaxPooling2D(2)(h)
        h = L.Flatten()(h)
        h = L.Dense(128, activation="relu")(h)
        h = L.Dropout(0.5)(h)
        return lib.models.Model(inputs, L.Dense(10, activation="softmax")(h)), "categorical_crossentropy"
    if workload == "resnet":
        inputs = L.Input(shape=(32, 32, 3))
        h = L.Activation("relu")(L.BatchNormalization()(L.Conv2D(64, 3, padding="same")(inputs)))
        for _ in range(RESNET_BLOCKS):
            r = L.Activation("relu")(L.BatchNormalization()(L.Conv2D(64, 3, padding="same")(h)))
            r = L.BatchNormalization()(L.Conv2D(64, 3, padding="same")(r))
            h = L.Activation("relu")(L.Add()([h, r]))
        h = L.GlobalAveragePooling2D()(h)
        return lib.models.Model(inputs, L.Dense(10, activation="softmax")(h)), "categorical_crossentropy"
    maxlen, vocab = (20, 1000) if quick else (LSTM_MAXLEN, LSTM_VOCAB)
    inputs = L.Input(shape=(maxlen,))
    h = L.Embedding(vocab, LSTM_DIM, mask_zero=True)(inputs)
    h = L.LSTM(LSTM_UNITS)(h)
    return lib.models.Model(inputs, L.Dense(1, activation="sigmoid")(h)), "binary_crossentropy"


def _vm_rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def time_keras_style(lib, workload, x, y, batch, quick, jit=None, do_train=True):
    model, loss = build_keras_model(lib, workload, quick)
    kwargs = {} if jit is None else {"jit_compile": jit}
    model.compile(optimizer="adam", loss=loss, **kwargs)
    out = {"rss_before_fit_mb": _vm_rss_mb()}
    if do_train:
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0)  # warm-up epoch
        t = time.perf_counter()
        history = model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
        out["train"] = len(x) / (time.perf_counter() - t)
        out["peak_rss_fit_mb"] = _peak_rss_mb()
        out["loss"] = float(history.history["loss"][-1])
    model.predict(x, batch_size=batch, verbose=0)
    t = time.perf_counter()
    model.predict(x, batch_size=batch, verbose=0)
    out["predict"] = len(x) / (time.perf_counter() - t)
    return out


# ----------------------------------------------------------------------------------------------------------- PyTorch
def build_torch_model(workload, quick=False, masking="gather"):
    import torch
    from torch import nn

    torch.manual_seed(0)
    if workload == "mlp":
        return nn.Sequential(nn.Linear(100, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Dropout(0.5),
                             nn.Linear(64, 1))
    if workload == "cnn":
        return nn.Sequential(
            nn.Conv2d(1, 32, 3, padding="same"), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding="same"), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding="same"), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(3 * 3 * 128, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10))
    if workload == "resnet":
        def bn():
            return nn.BatchNorm2d(64, eps=1e-3, momentum=0.01)  # Keras's epsilon 1e-3, momentum 0.99

        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv1, self.bn1 = nn.Conv2d(64, 64, 3, padding=1), bn()
                self.conv2, self.bn2 = nn.Conv2d(64, 64, 3, padding=1), bn()

            def forward(self, h):
                r = torch.relu(self.bn1(self.conv1(h)))
                return torch.relu(h + self.bn2(self.conv2(r)))

        class ResNet(nn.Module):
            def __init__(self):
                super().__init__()
                self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), bn(), nn.ReLU())
                self.blocks = nn.Sequential(*[Block() for _ in range(RESNET_BLOCKS)])
                self.head = nn.Linear(64, 10)

            def forward(self, x):
                return self.head(self.blocks(self.stem(x)).mean(dim=(2, 3)))

        return ResNet()
    vocab = 1000 if quick else LSTM_VOCAB

    class LSTMModel(nn.Module):  # bench_rnn_e2e.py's model, both masking modes
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(vocab, LSTM_DIM, padding_idx=0)
            self.lstm = nn.LSTM(LSTM_DIM, LSTM_UNITS, batch_first=True)
            self.dense = nn.Linear(LSTM_UNITS, 1)

        def forward(self, tokens, lengths):
            e = self.embedding(tokens)
            if masking == "packed":
                packed = nn.utils.rnn.pack_padded_sequence(e, lengths, batch_first=True, enforce_sorted=False)
                _, (h_n, _) = self.lstm(packed)
                last = h_n[-1]
            else:
                out, _ = self.lstm(e)
                last = out[torch.arange(tokens.shape[0]), lengths - 1]
            return self.dense(last)

    return LSTMModel()


def _torch_inputs(workload, x, y, lengths):
    """Tensors as a PyTorch user holds them: NCHW images, int64 tokens / lengths, class indices for the
    classifiers."""
    import torch

    if workload in ("cnn", "resnet"):
        xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        return (xt,), torch.from_numpy(y.argmax(axis=1).astype(np.int64))
    if workload == "lstm":
        return (torch.from_numpy(x.astype(np.int64)), torch.from_numpy(lengths.astype(np.int64))), \
            torch.from_numpy(y)
    return (torch.from_numpy(x),), torch.from_numpy(y)


def time_torch(workload, x, y, lengths, batch, quick, masking="gather", do_train=True):
    import torch
    import torch.nn.functional as F

    model = build_torch_model(workload, quick, masking)
    inputs, target = _torch_inputs(workload, x, y, lengths)
    n = len(target)
    loss_fn = {"mlp": F.mse_loss, "cnn": F.cross_entropy, "resnet": F.cross_entropy,
               "lstm": F.binary_cross_entropy_with_logits}[workload]
    head = {"mlp": lambda o: o, "cnn": lambda o: torch.softmax(o, 1), "resnet": lambda o: torch.softmax(o, 1),
            "lstm": torch.sigmoid}[workload]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def epoch():
        model.train()
        order = torch.randperm(n)
        total = 0.0
        for start in range(0, n, batch):
            idx = order[start:start + batch]
            optimizer.zero_grad()
            loss = loss_fn(model(*(t[idx] for t in inputs)), target[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        return total / n

    def predict():
        model.eval()
        with torch.inference_mode():
            return torch.cat([head(model(*(t[s:s + batch] for t in inputs))) for s in range(0, n, batch)]).numpy()

    out = {"rss_before_fit_mb": _vm_rss_mb()}
    if do_train:
        epoch()
        t = time.perf_counter()
        out["loss"] = epoch()
        out["train"] = n / (time.perf_counter() - t)
        out["peak_rss_fit_mb"] = _peak_rss_mb()
    predict()
    t = time.perf_counter()
    predict()
    out["predict"] = n / (time.perf_counter() - t)
    return out


def time_ort(workload, x, y, lengths, batch, quick, threads, tmpdir):
    import onnxruntime as ort
    import torch

    model = build_torch_model(workload, quick, "gather").eval()
    inputs, _ = _torch_inputs(workload, x, y, lengths)
    names = ["tokens", "lengths"] if workload == "lstm" else ["x"]
    path = os.path.join(tmpdir, f"bench_e2e_{workload}_{os.getpid()}.onnx")
    sample = tuple(t[:batch] for t in inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, sample, path, input_names=names, output_names=["y"], dynamo=False,
                          dynamic_axes={**{k: {0: "batch"} for k in names}, "y": {0: "batch"}}, opset_version=17)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    os.unlink(path)
    arrays = [t.numpy() for t in inputs]
    n = len(arrays[0])

    def predict():  # the exported graph returns logits, as the PyTorch model; the head is applied like PyTorch's
        outs = []
        for s in range(0, n, batch):
            o = sess.run(None, {k: a[s:s + batch] for k, a in zip(names, arrays)})[0]
            if workload in ("cnn", "resnet"):
                e = np.exp(o - o.max(axis=1, keepdims=True))
                o = e / e.sum(axis=1, keepdims=True)
            elif workload == "lstm":
                o = 1.0 / (1.0 + np.exp(-o))
            outs.append(o)
        return np.concatenate(outs)

    predict()
    t = time.perf_counter()
    predict()
    return {"predict": n / (time.perf_counter() - t), "rss_before_fit_mb": _vm_rss_mb()}


# ------------------------------------------------------------------------------------------------------------ child
def gemm_gflops(threads, size=1024, reps=5):
    import fastnn
    import fastnn.backend as B

    fastnn.set_num_threads(threads)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(np.float32)
    b = rng.standard_normal((size, size)).astype(np.float32)
    B.gemm(a, b)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        B.gemm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2.0 * size ** 3 / best / 1e9


def run_child(spec):
    """One measurement in this (fresh) process; spec: framework, workload, threads, batch, samples, quick, jit,
    train. Returns {column name: {train, predict, ...}}."""
    fw, wl, threads, batch = spec["framework"], spec["workload"], spec["threads"], spec["batch"]
    if fw == "gemm":
        return {"gemm": {"gflops": gemm_gflops(threads)}}
    x, y, lengths = make_workload_data(wl, spec["samples"], spec["quick"])
    if fw == "fastnn":
        import fastnn

        fastnn.set_num_threads(threads)
        fastnn.utils.set_random_seed(0)
        jit = {"on": True, "off": False, "auto": "auto"}[spec["jit"]]
        name = "fastnn jit" if spec["jit"] == "on" and spec.get("two_fastnn") else "fastnn"
        return {name: time_keras_style(fastnn, wl, x, y, batch, spec["quick"], jit, spec["train"])}
    if fw == "keras":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        import keras

        keras.utils.set_random_seed(0)
        return {"keras": time_keras_style(keras, wl, x, y, batch, spec["quick"], None, spec["train"])}
    import torch

    torch.set_num_threads(threads)
    if fw == "ort":
        import tempfile

        return {"ort": time_ort(wl, x, y, lengths, batch, spec["quick"], threads, tempfile.gettempdir())}
    if wl == "lstm":  # both masking modes; the faster (per figure) is reported as "torch"
        packed = time_torch(wl, x, y, lengths, batch, spec["quick"], "packed", spec["train"])
        gather = time_torch(wl, x, y, lengths, batch, spec["quick"], "gather", spec["train"])
        best = {k: v for k, v in gather.items()}
        for key in ("train", "predict"):
            if key in packed:
                best[key] = max(packed[key], gather[key])
                best[f"{key}_mode"] = "packed" if packed[key] >= gather[key] else "gather"
        best["peak_rss_fit_mb"] = packed.get("peak_rss_fit_mb", float("nan"))  # the process's peak after both
        return {"torch": best}
    return {"torch": time_torch(wl, x, y, lengths, batch, spec["quick"], "gather", spec["train"])}


def child_env(threads):
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3", OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    env.pop("OPENBLAS_CORETYPE", None)  # the children run on the CPU's own kernels
    return env


def spawn(spec):
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)],
                          capture_output=True, text=True, env=child_env(spec["threads"]))
    if done.returncode != 0:
        return {"error": done.stderr[-4000:]}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    for fields in result.values():  # the machine's 1-minute load when the child ended: other users' work shows here
        fields["load1"] = os.getloadavg()[0]
    return result


IMPORT_SNIPPET = ("import time, json, sys; t = time.perf_counter(); import {mod}; dt = time.perf_counter() - t; "
                  "rss = [int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmRSS:')][0]; "
                  "print(json.dumps({{'s': dt, 'rss_mb': rss / 1024}}))")
IMPORT_MODULES = {"fastnn": "fastnn", "torch": "torch", "keras": "keras", "ort": "onnxruntime"}


def measure_import(framework):
    done = subprocess.run([sys.executable, "-c", IMPORT_SNIPPET.format(mod=IMPORT_MODULES[framework])],
                          capture_output=True, text=True, env=child_env(2))
    if done.returncode != 0:
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------------------ parent
def _commit():
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        c = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, cwd=here)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=here).stdout.strip()
        return c.stdout.strip() + (" (+ uncommitted changes)" if dirty else "")
    except OSError:
        return "unknown"


def _versions(frameworks):
    out = []
    for fw in frameworks:
        for module in {"fastnn": ["fastnn"], "torch": ["torch"], "keras": ["keras", "tensorflow"],
                       "ort": ["onnxruntime"]}[fw]:
            try:
                out.append(f"{module} {__import__(module).__version__}")
            except Exception as e:  # noqa: BLE001 -- a report line
                out.append(f"{module} not importable ({type(e).__name__})")
    return ", ".join(out)


def _fmt(v, digits=0):
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "—"
    return f"{v:,.{digits}f}"


def _ratio(a, b):
    if a is None or b is None or not b or np.isnan(a) or np.isnan(b):
        return "—"
    return f"{a / b:.2f}"


def run_measurements(specs, rounds, log):
    """specs: list of (key, [spec per framework]); frameworks alternate order by round. Returns
    {key: {column: {field: [samples]}}} and {key: {framework: error text}}."""
    samples, errors = {}, {}
    for r in range(rounds):
        for key, group in specs:
            for spec in (group if r % 2 == 0 else group[::-1]):
                result = spawn(spec)
                label = f"{spec['framework']}{' jit=' + spec['jit'] if spec['framework'] == 'fastnn' else ''}"
                if "error" in result:
                    errors.setdefault(key, {})[label] = result["error"]
                    log(f"round {r + 1}/{rounds} {key} {label}: FAILED")
                    continue
                for col, fields in result.items():
                    for f, v in fields.items():
                        samples.setdefault(key, {}).setdefault(col, {}).setdefault(f, []).append(v)
                log(f"round {r + 1}/{rounds} {key} {label}: done")
    return samples, errors


def medians(samples):
    out = {}
    for key, cols in samples.items():
        out[key] = {}
        for col, fields in cols.items():
            out[key][col] = {f: (statistics.median(v) if isinstance(v[0], (int, float)) else v[-1])
                             for f, v in fields.items()}
    return out


def fastnn_columns(jit_mode):
    """[(column name, jit value passed to the child)]"""
    if jit_mode == "both":
        return [("fastnn", "off"), ("fastnn jit", "on")]
    return [("fastnn", jit_mode)]


def main_table(args, frameworks, workloads, log):
    sizes = QUICK_SIZES if args.quick else SIZES
    specs = []
    for wl in workloads:
        samples_n, batch = sizes[wl]
        group = []
        for fw in frameworks:
            base = {"framework": fw, "workload": wl, "threads": args.threads, "batch": batch, "samples": samples_n,
                    "quick": args.quick, "jit": "auto", "train": fw != "ort"}
            if fw == "fastnn":
                for _, jit in fastnn_columns(args.fastnn_jit):
                    group.append(dict(base, jit=jit, two_fastnn=args.fastnn_jit == "both"))
            else:
                group.append(base)
        specs.append((wl, group))
    gemm_spec = {"framework": "gemm", "workload": "-", "threads": args.threads, "batch": 0, "samples": 0,
                 "quick": args.quick, "jit": "auto", "train": False}
    if any(w in ("cnn", "resnet") for w in workloads):
        specs.append(("gemm", [gemm_spec]))
    raw, errors = run_measurements(specs, args.rounds, log)
    med = medians(raw)
    imports = {}
    for r in range(args.rounds):
        for fw in frameworks:
            m = measure_import(fw)
            if m:
                for k, v in m.items():
                    imports.setdefault(fw, {}).setdefault(k, []).append(v)
    imports_med = {fw: {k: statistics.median(v) for k, v in d.items()} for fw, d in imports.items()}
    return {"raw": raw, "median": med, "errors": errors, "imports": imports_med, "sizes": sizes}


def format_main(args, frameworks, workloads, res, command):
    med, errors = res["median"], res["errors"]
    lines = []
    fcols = [c for c, _ in fastnn_columns(args.fastnn_jit)] if "fastnn" in frameworks else []
    others = [c for c in ("torch", "keras", "ort") if c in frameworks]
    cols = fcols + others
    lines.append(f"CPU: {_cpu_model()} ({os.cpu_count()} logical CPUs); threads {args.threads}; "
                 f"date {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; commit {_commit()}")
    lines.append(f"Versions: {_versions(frameworks)}")
    lines.append(f"Command: {command}")
    lines.append(f"Samples/s, medians of {args.rounds} round(s); train = second epoch of fit, predict = second "
                 f"predict; a fresh process per measurement.")
    lines.append("")
    head = "| workload | figure | " + " | ".join(cols) + " | " + " | ".join(
        f"{fc} / {o}" for fc in fcols for o in others) + " |"
    lines.append(head)
    lines.append("|---|---|" + "---:|" * (len(cols) + len(fcols) * len(others)))
    for wl in workloads:
        m = med.get(wl, {})
        n, b = res["sizes"][wl]
        for fig in ("train", "predict"):
            vals = [m.get(c, {}).get(fig) for c in cols]
            ratios = [_ratio(m.get(fc, {}).get(fig), m.get(o, {}).get(fig)) for fc in fcols for o in others]
            note = ""
            if wl == "lstm" and "torch" in m and f"{fig}_mode" in m["torch"]:
                note = f" (torch: {m['torch'][f'{fig}_mode']})"
            lines.append(f"| {wl} ({n}, batch {b}) | {fig}{note} | " + " | ".join(_fmt(v) for v in vals) + " | "
                         + " | ".join(ratios) + " |")
    lines.append("")
    lines.append("Memory (MiB): peak = ru_maxrss of the child right after the timed fit (interpreter + import + data "
                 "+ fit); before fit = VmRSS after compile.")
    lines.append("")
    mcols = [c for c in cols if c != "ort"]
    lines.append("| workload | " + " | ".join(f"{c} peak / before fit" for c in mcols) + " |")
    lines.append("|---|" + "---:|" * len(mcols))
    for wl in workloads:
        m = med.get(wl, {})
        lines.append(f"| {wl} | " + " | ".join(
            f"{_fmt(m.get(c, {}).get('peak_rss_fit_mb'))} / {_fmt(m.get(c, {}).get('rss_before_fit_mb'))}"
            for c in mcols) + " |")
    loads = [v for cols in res["raw"].values() for f in cols.values() for v in f.get("load1", [])]
    if loads:
        lines.append("")
        lines.append(f"Machine load (1-min load average at the end of each child; {os.cpu_count()} CPUs): median "
                     f"{statistics.median(loads):.1f}, max {max(loads):.1f} (above {os.cpu_count()}, other work was "
                     f"competing for the cores: treat the figures, PyTorch's at 2 threads above all, with care).")
        lines.append("")
    if res["imports"]:
        lines.append("Import (fresh interpreter, median): " + "; ".join(
            f"`import {IMPORT_MODULES[fw]}` {d['s']:.2f} s, {d['rss_mb']:.0f} MiB RSS" for fw, d in
            res["imports"].items()))
        lines.append("")
    gemm = med.get("gemm", {}).get("gemm", {}).get("gflops")
    conv = [w for w in workloads if w in ("cnn", "resnet")]
    if conv:
        lines.append(f"Conv workloads against fastnn's SGEMM rate ({_fmt(gemm, 1)} GFLOP/s, 1024^3, "
                     f"{args.threads} threads, best of 5): achieved GFLOP/s = FLOP/sample x samples/s "
                     f"(forward = 2 x MACs of the conv + dense layers, training = 3 x forward). On a loaded machine "
                     f"the GEMM and the workloads ran at different moments, so a fraction can exceed 100%.")
        lines.append("")
        lines.append("| workload | figure | FLOP/sample | " + " | ".join(f"{c} GFLOP/s (fraction)" for c in cols)
                     + " |")
        lines.append("|---|---|---:|" + "---:|" * len(cols))
        for wl in conv:
            fwd, trn = conv_flops_per_sample(wl)
            for fig, fl in (("train", trn), ("predict", fwd)):
                cells = []
                for c in cols:
                    v = med.get(wl, {}).get(c, {}).get(fig)
                    if v is None:
                        cells.append("—")
                    else:
                        g = fl * v / 1e9
                        cells.append(f"{g:.1f} ({g / gemm:.0%})" if gemm else f"{g:.1f}")
                lines.append(f"| {wl} | {fig} | {fl / 1e6:,.1f} M | " + " | ".join(cells) + " |")
        lines.append("")
    if errors:
        lines.append("Failures (the last lines of the child's stderr):")
        for key, d in errors.items():
            for label, text in d.items():
                tail = "\n".join(text.strip().splitlines()[-8:])
                lines.append(f"- {key} / {label}:\n```\n{tail}\n```")
        lines.append("")
    return "\n".join(lines)


def batch_sweep(args, workloads, log):
    fw_cols = fastnn_columns(args.fastnn_jit)
    specs = []
    for wl in workloads:
        n = QUICK_SIZES[wl][0] if args.quick else SWEEP_SAMPLES[wl]
        for threads in SWEEP_THREADS:
            for batch in SWEEP_BATCHES:
                base = {"workload": wl, "threads": threads, "batch": batch, "samples": n, "quick": args.quick,
                        "jit": "auto", "train": True}
                group = [dict(base, framework="fastnn", jit=j, two_fastnn=args.fastnn_jit == "both")
                         for _, j in fw_cols] + [dict(base, framework="torch")]
                specs.append((f"{wl}|{threads}|{batch}", group))
    raw, errors = run_measurements(specs, args.rounds, log)
    return {"raw": raw, "median": medians(raw), "errors": errors}


def format_sweep(args, workloads, res):
    med = res["median"]
    cols = [c for c, _ in fastnn_columns(args.fastnn_jit)] + ["torch"]
    lines = [f"Batch sweep: samples/s (train = second epoch of fit, predict = second predict), medians of "
             f"{args.rounds} round(s); samples per workload {SWEEP_SAMPLES if not args.quick else 'quick'}.", "",
             "| workload | threads | batch | " + " | ".join(f"{c} train" for c in cols) + " | " +
             " | ".join(f"{c} predict" for c in cols) + " | fastnn/torch train | fastnn/torch predict |",
             "|---|---:|---:|" + "---:|" * (2 * len(cols) + 2)]
    for wl in workloads:
        for threads in SWEEP_THREADS:
            for batch in SWEEP_BATCHES:
                m = med.get(f"{wl}|{threads}|{batch}", {})
                tr = [m.get(c, {}).get("train") for c in cols]
                pr = [m.get(c, {}).get("predict") for c in cols]
                lines.append(f"| {wl} | {threads} | {batch} | " + " | ".join(_fmt(v) for v in tr) + " | " +
                             " | ".join(_fmt(v) for v in pr) + f" | {_ratio(tr[0], tr[-1])} | "
                             f"{_ratio(pr[0], pr[-1])} |")
    loads = [v for cols in res["raw"].values() for f in cols.values() for v in f.get("load1", [])]
    if loads:
        lines.append("")
        lines.append(f"Machine load (1-min load average at the end of each child; {os.cpu_count()} CPUs): median "
                     f"{statistics.median(loads):.1f}, max {max(loads):.1f}.")
    if res["errors"]:
        lines.append("")
        lines.append("Failures: " + "; ".join(f"{k} / {label}" for k, d in res["errors"].items() for label in d))
    return "\n".join(lines)


def plot_sweep(args, workloads, res, path, title):
    import matplotlib  # a benchmark extra, imported only here

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    med = res["median"]
    cols = [c for c, _ in fastnn_columns(args.fastnn_jit)] + ["torch"]
    fig, axes = plt.subplots(2, len(workloads), figsize=(4.2 * len(workloads), 7.5), squeeze=False)
    styles = {1: ":", 2: "-"}
    colors = {"fastnn": "tab:blue", "fastnn jit": "tab:green", "torch": "tab:red"}
    for j, wl in enumerate(workloads):
        for i, fig_name in enumerate(("train", "predict")):
            ax = axes[i][j]
            for c in cols:
                for threads in SWEEP_THREADS:
                    ys = [med.get(f"{wl}|{threads}|{b}", {}).get(c, {}).get(fig_name, np.nan) for b in SWEEP_BATCHES]
                    ax.plot(SWEEP_BATCHES, ys, styles[threads], marker="o", color=colors.get(c, "k"),
                            label=f"{c}, {threads} thr")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xticks(SWEEP_BATCHES)
            ax.set_xticklabels([str(b) for b in SWEEP_BATCHES])
            ax.set_title(f"{wl} {fig_name}")
            ax.set_xlabel("batch size")
            if j == 0:
                ax.set_ylabel("samples/s")
            ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated: mlp, cnn, resnet, lstm")
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS), help="comma-separated: fastnn, torch, keras, ort")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=None, help="default 3 (1 with --batch-sweep or --quick)")
    parser.add_argument("--batch-sweep", action="store_true",
                        help="batch 8/32/128/512 x threads 1/2, fastnn vs torch; writes bench/e2e_batch_sweep.png")
    parser.add_argument("--plot", default=None, help="the sweep's PNG (default bench/e2e_batch_sweep.png)")
    parser.add_argument("--fastnn-jit", choices=("auto", "on", "off", "both"), default="auto",
                        help="jit_compile passed to fastnn's compile ('both': two fastnn columns)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that the script runs")
    parser.add_argument("--json", default=None, help="write raw samples and medians here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(json.loads(args.child))))
        return 0
    if args.rounds is None:
        args.rounds = 1 if (args.quick or args.batch_sweep) else 3
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    if sorted(set(workloads) - set(WORKLOADS)) or not workloads:
        parser.error(f"--workloads takes any of {', '.join(WORKLOADS)}; got {args.workloads!r}")
    if sorted(set(frameworks) - set(FRAMEWORKS)) or "fastnn" not in frameworks:
        parser.error(f"--frameworks takes fastnn (required) and any of torch, keras, ort; got {args.frameworks!r}")
    command = "PYTHONPATH=src python bench/bench_e2e.py " + " ".join(sys.argv[1:])
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # for the version line (the children get child_env)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    out = {"cpu": _cpu_model(), "commit": _commit(), "command": command,
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat()}
    if args.batch_sweep:
        res = batch_sweep(args, workloads, log)
        text = format_sweep(args, workloads, res)
        path = args.plot or os.path.join(os.path.dirname(os.path.abspath(__file__)), "e2e_batch_sweep.png")
        title = (f"fastnn vs PyTorch eager, samples/s vs batch (dotted: 1 thread, solid: 2); {_cpu_model()}; "
                 f"commit {_commit()}; {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d}")
        plot_sweep(args, workloads, res, path, title)
        header = (f"CPU: {_cpu_model()}; date {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
                  f"commit {_commit()}\nCommand: {command}\nPlot: {path}\n")
        text = header + "\n" + text
        out["sweep"] = res
    else:
        res = main_table(args, frameworks, workloads, log)
        text = format_main(args, frameworks, workloads, res, command)
        out["main"] = res
    print(text)
    print(f"\n(total {time.perf_counter() - t0:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
