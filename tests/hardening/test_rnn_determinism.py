"""Determinism of the recurrence kernels (csrc/cpu/rnn.cpp): a few steps of gradient descent on the recurrent
kernel of each cell, through rnn_forward / rnn_backward with masks and per-gate recurrent masks, give bit-identical
results run after run and for 1 and 2 threads. The batch is split into fixed blocks of 32 rows (a function of the
batch size alone), each run through the whole sequence on one thread, and the weight gradient is one GEMM whose
reduction order does not depend on the thread count."""
from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest

import fastnn
from fastnn import _C, backend
from fastnn.testing import rnn_reference as ref

STEPS = 2 if os.environ.get("FASTNN_UNDER_SANITIZER") else 5


@pytest.fixture(autouse=True)
def _guard_off():
    """Every region may fork (the oversubscription guard could otherwise run the 2-thread runs on one thread)."""
    previous = _C.oversubscription_guard()
    _C.set_oversubscription_guard("off")
    yield
    _C.set_oversubscription_guard(previous)


def _train(cell, threads, dtype, seed=0, B=70, T=12, U=24):
    fastnn.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    G = ref.GATES[cell]
    xproj = rng.standard_normal((B, T, G * U)).astype(dtype)
    R = (rng.standard_normal((U, G * U)) / np.sqrt(U)).astype(dtype)
    h0 = np.zeros((B, U), dtype)
    c0 = np.zeros((B, U), dtype) if cell == "lstm" else None
    mask = rng.random((B, T)) < 0.8
    rmasks = ((rng.random((G, B, U)) < 0.8) / 0.8).astype(dtype)
    rbias = np.zeros(G * U, dtype) if cell == "gru" else None
    target = rng.standard_normal((B, T, U)).astype(dtype)
    h = hashlib.sha256()
    for _ in range(STEPS):
        kw = dict(mask=mask, recurrent_masks=rmasks, recurrent_bias=rbias)
        out, h_last, c_last, ws = backend.rnn_forward(cell, xproj, R, h0, c0, **kw)
        d_out = (out - target) / out.size
        dx, dR, dh0, dc0, db = backend.rnn_backward(cell, ws, R, d_out, h_last, c_last, **kw)
        R = (R - 0.5 * dR).astype(dtype)
        xproj = (xproj - 0.5 * dx).astype(dtype)
        if rbias is not None:
            rbias = (rbias - 0.5 * db).astype(dtype)
        for a in (out, h_last, dx, dR, dh0):
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("cell", list(ref.GATES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rnn_training_is_bit_identical_across_runs_and_thread_counts(restore_threads, cell, dtype):
    before = fastnn.build_info()["parallel_regions"]
    two = _train(cell, 2, dtype)
    if fastnn.get_num_threads() == 2 and fastnn.build_info()["openmp"]:
        assert fastnn.build_info()["parallel_regions"] > before, "the 2-thread run never ran a parallel region"
    assert _train(cell, 2, dtype) == two
    assert _train(cell, 1, dtype) == two
