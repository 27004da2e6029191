"""Memory: a long training run stops growing after warm-up, and dropping a model and its graph gives the memory back.

Each check runs in a fresh interpreter (so nothing else in the test session moves the numbers) and reads the resident
set size from /proc/self/statm. glibc's mmap threshold is pinned (MALLOC_MMAP_THRESHOLD_) so that large NumPy buffers
are always returned to the OS when freed: the test then sees fastnn's frees, not glibc's caching policy.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

import fastnn

pytestmark = [
    pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads RSS from /proc/self/statm (Linux)"),
    pytest.mark.skipif(bool(os.environ.get("FASTNN_UNDER_SANITIZER")),
                       reason="ASan's quarantine and shadow memory make RSS meaningless"),
]

PRELUDE = """
import gc, json, os, sys, weakref
import numpy as np
import fastnn
from fastnn import ops
from fastnn.testing.mlp import MLP

PAGE = os.sysconf("SC_PAGE_SIZE")

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE
"""


def _run(body: str, timeout=600) -> dict:
    env = dict(os.environ)
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__)))
    env["PYTHONPATH"] = package_root + os.pathsep + env.get("PYTHONPATH", "")
    env["MALLOC_MMAP_THRESHOLD_"] = str(256 * 1024)
    env.setdefault("OMP_NUM_THREADS", "2")
    proc = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(body)], env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_training_memory_stops_growing():
    out = _run("""
        mlp = MLP(sizes=(64, 256, 256, 10), seed=0)
        mlp.train(400, batch=64)                      # warm-up: scratch buffers, free lists, caches
        gc.collect()
        base, base_objects = rss(), len(gc.get_objects())
        samples = []
        for _ in range(8):
            mlp.train(200, batch=64)
            samples.append(rss())
        gc.collect()
        print(json.dumps({"base": base, "samples": samples, "end": rss(),
                          "objects": [base_objects, len(gc.get_objects())]}))
    """)
    base, end = out["base"], out["end"]
    growth = (max(out["samples"] + [end]) - base) / base
    assert growth < 0.01, f"RSS grew {growth:.2%} over 1600 steps after warm-up: {base} -> {out['samples']}"
    objects_before, objects_after = out["objects"]
    assert objects_after - objects_before < 100, f"Python objects piled up: {objects_before} -> {objects_after}"


def test_dropping_a_model_and_its_graph_returns_the_memory():
    out = _run("""
        # Warm the allocator and the kernels' per-thread scratch once at the largest shapes used below.
        warm = MLP(sizes=(512, 1024, 1024, 10), seed=1)
        warm.train(2, batch=256)
        del warm
        gc.collect()
        base = rss()
        mlp = MLP(sizes=(512, 1024, 1024, 10), seed=2)
        x, y = mlp.batch(256)
        tape = fastnn.GradientTape(persistent=True)
        with tape:
            loss = mlp.loss(x, y)
        grads = tape.gradient(loss, mlp.weights)
        peak = rss()
        refs = [weakref.ref(w) for w in mlp.weights] + [weakref.ref(loss), weakref.ref(tape)]
        refs += [weakref.ref(g) for g in grads]
        del mlp, tape, loss, grads
        gc.collect()
        print(json.dumps({"base": base, "peak": peak, "after": rss(), "alive": sum(r() is not None for r in refs)}))
    """)
    grown = out["peak"] - out["base"]
    assert grown > 10 * 2**20, out  # the model and graph really took memory
    assert out["alive"] == 0, f"{out['alive']} variables/tensors/tapes still referenced after del + gc"
    kept = out["after"] - out["base"]
    assert kept < 0.05 * grown + 2 * 2**20, f"{kept / 2**20:.1f} MiB of {grown / 2**20:.1f} MiB not returned: {out}"


def test_model_fit_memory_stops_growing_and_returns():
    """The same through the Keras API: Sequential.fit for thousands of steps, then the model dropped."""
    out = _run("""
        from fastnn import layers
        rng = np.random.default_rng(0)
        x = rng.standard_normal((2048, 32)).astype("float32")
        y = rng.integers(0, 10, 2048)

        def make(width, depth=1):
            hidden = [layers.Dense(width, activation="relu") for _ in range(depth)]
            m = fastnn.Sequential([fastnn.Input((32,))] + hidden + [layers.Dense(10)])
            m.compile(optimizer="adam", loss=fastnn.losses.SparseCategoricalCrossentropy(from_logits=True))
            return m

        model = make(64)
        model.fit(x, y, epochs=20, batch_size=32, verbose=0)    # warm-up
        gc.collect()
        base = rss()
        samples = []
        for _ in range(3):
            model.fit(x, y, epochs=20, batch_size=32, verbose=0)  # 1,280 steps each
            model.predict(x, verbose=0)
            gc.collect()
            samples.append(rss())
        del model
        # The GEMM keeps per-thread packing buffers (bounded by its cache blocks, a few MB per thread) for reuse:
        # warm them at the big model's shapes first, so they are in the baseline rather than counted as kept.
        warm = make(2048, depth=2)
        warm.fit(x[:512], y[:512], epochs=1, batch_size=256, verbose=0)
        del warm
        gc.collect()
        before_big = rss()
        big = make(2048, depth=2)  # 4.2M parameters + Adam's two slots: ~50 MB
        big.fit(x, y, epochs=1, batch_size=256, verbose=0)
        peak = rss()
        ref = weakref.ref(big)
        del big
        gc.collect()
        print(json.dumps({"base": base, "samples": samples, "before_big": before_big, "peak": peak,
                          "after": rss(), "alive": ref() is not None}))
    """)
    growth = (max(out["samples"]) - out["base"]) / out["base"]
    assert growth < 0.01, f"RSS grew {growth:.2%} over 3,840 fit steps after warm-up: {out}"
    grown = out["peak"] - out["before_big"]
    assert grown > 20 * 2**20, out
    assert not out["alive"], "the dropped model is still referenced after gc"
    kept = out["after"] - out["before_big"]
    assert kept < 0.1 * grown + 2 * 2**20, f"{kept / 2**20:.1f} MiB of {grown / 2**20:.1f} MiB not returned: {out}"


def test_gemv_scratch_is_bounded_by_the_cache_blocks():
    """Matrix-vector products of any length keep no scratch beyond the cache blocks: the output vector is computed
    in blocks, and a strided input vector longer than the blocks is gathered into memory freed after the call. Both
    used to grow a per-thread buffer to the vector's length and keep it for the life of the thread (64 MiB here)."""
    out = _run("""
        from fastnn import _C
        n = 1 << 24  # 64 MiB of float32
        _C.gemm(np.ones((1, 3), np.float32), np.ones((3, 5), np.float32))  # load the kernels
        gc.collect()
        kept = {}
        for threads in (1, 2):
            fastnn.set_num_threads(threads)
            # A long output vector: (1, 1) @ (1, n).
            b = np.ones((1, n), np.float32)
            base = rss()
            c = _C.gemm(np.ones((1, 1), np.float32), b)
            assert c.shape == (1, n) and c[0, 0] == 1 and c[0, -1] == 1
            del c
            gc.collect()
            kept[f"y{threads}"] = rss() - base
            del b
            # A long strided input vector: (1, n) @ (n, 1) with B's column read at a zero row stride.
            a = np.ones((1, n), np.float32)
            b = np.broadcast_to(np.full((1, 1), 2, np.float32), (n, 1))
            base = rss()
            c = _C.gemm(a, b)
            assert c[0, 0] == 2 * n
            gc.collect()
            kept[f"x{threads}"] = rss() - base
            del a, b, c
        print(json.dumps(kept))
    """)
    for case, kept in out.items():
        assert kept < 16 * 2**20, f"{case}: {kept / 2**20:.1f} MiB kept after the call: {out}"
