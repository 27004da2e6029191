"""Determinism: the same seed gives bit-identical weights after training, for 1 and 2 threads, and 1 thread gives the
same bits as 2. No kernel's reduction order depends on thread scheduling: the GEMM sums each element in K order
(KC blocks), the bias gradient reduces fixed 256-row blocks in block order, softmax / crossentropy reduce within a
row on one thread, and parallel_for's split depends only on the range and the thread count. So there is no separate
"deterministic mode": every run is deterministic."""
from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest

import fastnn
from fastnn import _C, ops
from fastnn.testing.mlp import MLP


def _digest(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


# Under ASan/UBSan (.ci/sanitize) a few steps exercise the same code paths at a tenth of the cost.
STEPS = 4 if os.environ.get("FASTNN_UNDER_SANITIZER") else 30


@pytest.fixture(autouse=True)
def _guard_off():
    """Every region may fork (the oversubscription guard could otherwise run a busy machine's 2-thread runs on one
    thread, and a 1-vs-2 comparison would compare one thread with itself)."""
    previous = _C.oversubscription_guard()
    _C.set_oversubscription_guard("off")
    yield
    _C.set_oversubscription_guard(previous)


def _parallel_regions():
    return fastnn.build_info()["parallel_regions"]


def _train(threads, seed=0, dtype="float32", steps=STEPS, batch=600, sizes=(48, 300, 300, 10)):
    # batch 600 > 256: the bias gradient takes its multi-block (parallel) path; 300-wide layers make every GEMM
    # large enough to run on both threads.
    fastnn.set_num_threads(threads)
    mlp = MLP(sizes=sizes, seed=seed, dtype=dtype)
    before = _parallel_regions()
    losses = mlp.train(steps, batch=batch)
    ran_parallel = _parallel_regions() - before
    if threads == 1 or not fastnn.build_info()["openmp"]:
        assert ran_parallel == 0
    else:  # every step: 3 forward GEMMs, 5 backward GEMMs, bias gradients, the optimizer at least
        assert ran_parallel >= 8 * steps, ran_parallel
    return _digest(mlp.get_weights()), losses


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("threads", [1, 2])
def test_same_seed_same_threads_bit_identical(threads, dtype, restore_threads):
    first, losses = _train(threads, dtype=dtype)
    second, _ = _train(threads, dtype=dtype)
    assert first == second
    assert losses[-1] < losses[0]  # it really trained


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_one_and_two_threads_bit_identical(dtype, restore_threads):
    assert _train(1, dtype=dtype)[0] == _train(2, dtype=dtype)[0]


def test_different_seeds_differ(restore_threads):
    assert _train(2, seed=0, steps=2)[0] != _train(2, seed=1, steps=2)[0]


@pytest.mark.parametrize("path", ["auto", "packed", "direct", "prepacked"])
def test_kernels_bit_identical_across_thread_counts(path, restore_threads):
    """Every kernel with a reduction, at sizes that split across threads, 1 vs 2 threads, both GEMM algorithms."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1031, 517)).astype(np.float32)
    w = rng.standard_normal((517, 263)).astype(np.float32)
    labels = rng.integers(0, 517, size=1031)
    previous = _C.gemm_path()
    results = {}
    try:
        _C.set_gemm_path(path)
        for threads in (1, 2):
            fastnn.set_num_threads(threads)
            before = _parallel_regions()
            out = [
                _C.gemm(x, w), _C.gemm(x, x, trans_b=True), _C.gemm(x, x, trans_a=True),
                _C.batched_matmul(x[:1030].reshape(10, 103, 517), np.broadcast_to(w, (10, 517, 263))),
                _C.bias_add_backward(x), _C.softmax_forward(x), _C.log_softmax_backward(x, x),
                *_C.sparse_xent_forward(x, labels.astype(np.int64)),
                _C.embedding_gather(x, labels.astype(np.int64)), _C.embedding_scatter_add(x, labels, 517),
                ops.sum(ops.matmul(x, w), axis=0).numpy(),
            ]
            results[threads] = _digest(out)
            ran_parallel = _parallel_regions() - before
            if threads == 1 or not fastnn.build_info()["openmp"]:
                assert ran_parallel == 0
            else:  # every kernel above forks at this size (the two crossentropy outputs come from one call), but
                # the prepacked path's products, which run on the calling thread (three gemm calls, the batched products
                # and the matmul)
                assert ran_parallel >= len(out) - 1 - (5 if path == "prepacked" else 0), ran_parallel
    finally:
        _C.set_gemm_path(previous)
    assert results[1] == results[2]
