"""Thread safety: the GIL is released around long kernels, and Python threads running the same computation at once
get the same answers as sequential calls."""
from __future__ import annotations

import os
import sys
import threading
import time

import numpy as np
import pytest

import fastnn
from fastnn import _C, ops
from fastnn.testing.mlp import MLP
from fastnn.testing.threads import progress_during


def test_the_gil_probe_sees_a_call_that_holds_the_gil():
    # The control: a long C loop that holds the GIL (the builtin sum) lets this thread make no progress.
    assert progress_during(lambda: sum(range(3 * 10**6))) == 0


@pytest.mark.parametrize("name,call", [
    ("gemm", lambda a: _C.gemm(a, a)),
    ("gemm_ref", lambda a: _C.gemm_ref(a[:300, :300], a[:300, :300])),
    ("batched_matmul", lambda a: _C.batched_matmul(a.reshape(4, 600, 600), a.reshape(4, 600, 600))),
    ("activation_forward", lambda a: [_C.activation_forward(a, "gelu") for _ in range(4)]),
    ("softmax_forward", lambda a: [_C.softmax_forward(a, True) for _ in range(4)]),
    ("bias_add_backward", lambda a: [_C.bias_add_backward(a, True) for _ in range(8)]),
])
def test_gil_is_released_in_long_kernels(name, call, restore_threads):
    fastnn.set_num_threads(1)  # the kernel on one core, the counting thread on the other
    a = np.random.default_rng(0).standard_normal((1200, 1200))
    progress = progress_during(lambda: call(a))
    assert progress > 0, f"{name}: no Python thread ran while the kernel was inside C++ (GIL held?)"


def test_concurrent_forward_matches_sequential(restore_threads):
    fastnn.set_num_threads(2)
    mlp = MLP(sizes=(64, 256, 256, 10), seed=5)
    inputs = [mlp.batch(97)[0] for _ in range(6)]
    sequential = [mlp.forward(x).numpy().copy() for x in inputs]
    results = {}
    errors = []
    barrier = threading.Barrier(2)

    def run(tid):
        try:
            barrier.wait()
            for rep in range(20):
                for i, x in enumerate(inputs):
                    results[(tid, rep, i)] = ops.softmax(mlp.forward(x)).numpy().copy()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(tid,)) for tid in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    expected = [ops.softmax(s).numpy() for s in sequential]
    for (tid, rep, i), out in results.items():
        assert np.array_equal(out, expected[i]), (tid, rep, i)


def test_concurrent_training_steps_on_separate_models(restore_threads):
    """Two threads each training their own model give the same weights as training them one after the other."""
    fastnn.set_num_threads(2)

    def train(seed):
        mlp = MLP(sizes=(32, 128, 10), seed=seed)
        mlp.train(40, batch=64)
        return mlp.get_weights()

    sequential = [train(0), train(1)]
    out = [None, None]
    threads = [threading.Thread(target=lambda i=i: out.__setitem__(i, train(i))) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(out, sequential):
        assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_concurrent_predict_on_one_model():
    """Two threads calling ``predict`` on the same model at once give the sequential answers."""
    model = fastnn.Sequential([fastnn.layers.Dense(64, activation="relu"), fastnn.layers.Dense(10)])
    x = np.random.default_rng(0).standard_normal((256, 32)).astype("float32")
    expected = np.asarray(model.predict(x, verbose=0))
    outs = [None, None]
    threads = [threading.Thread(target=lambda i=i: outs.__setitem__(i, np.asarray(model.predict(x, verbose=0))))
               for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for o in outs:
        assert np.array_equal(o, expected)


COUNTERS = ("parallel_regions", "contended_regions", "serialized_regions", "concurrent_regions")


def _counters():
    info = fastnn.build_info()
    return {k: info[k] for k in COUNTERS}


def _since(before):
    now = _counters()
    return {k: now[k] - before[k] for k in COUNTERS}


@pytest.fixture
def guard_mode():
    """Sets the oversubscription guard's mode for one test (restored, with a fresh back-off state, after it)."""
    previous = _C.oversubscription_guard()
    yield _C.set_oversubscription_guard
    _C.set_oversubscription_guard(previous)


def _gemm_case():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((256, 512)).astype(np.float32)
    b = rng.standard_normal((512, 384)).astype(np.float32)
    bias = rng.standard_normal(384).astype(np.float32)
    return lambda: _C.gemm(a, b, bias=bias, activation="relu")


def _regions_per_call(call):
    """Top-level regions one 2-thread call runs when every region may fork (measured, not assumed)."""
    _C.set_oversubscription_guard("off")
    before = _counters()
    call()
    regions = _since(before)["parallel_regions"]
    _C.set_oversubscription_guard("auto")
    assert regions >= 1, "the test's GEMM is meant to run on both threads"
    return regions


def test_two_threads_really_run_in_parallel(restore_threads, guard_mode):
    if not fastnn.build_info()["openmp"]:
        pytest.skip("built without OpenMP: one thread only")
    call = _gemm_case()
    fastnn.set_num_threads(1)
    before = _counters()
    expected = call()
    assert _since(before) == dict.fromkeys(COUNTERS, 0)  # one thread: no region at all
    fastnn.set_num_threads(2)
    guard_mode("off")
    before = _counters()
    for _ in range(5):
        assert np.array_equal(call(), expected)
    assert _since(before)["parallel_regions"] >= 5


def test_guard_backing_off_runs_regions_on_the_calling_thread(restore_threads, guard_mode):
    """While the guard backs off (forced here), 2-thread calls run inline: no region forks, every one is counted
    as serialized, and the bits are the 1-thread bits."""
    if not fastnn.build_info()["openmp"]:
        pytest.skip("built without OpenMP: one thread only")
    call = _gemm_case()
    fastnn.set_num_threads(1)
    expected = call()
    fastnn.set_num_threads(2)
    per_call = _regions_per_call(call)
    guard_mode("serial")
    before = _counters()
    for _ in range(5):
        assert np.array_equal(call(), expected)
    assert _since(before) == dict(parallel_regions=0, contended_regions=0, serialized_regions=5 * per_call,
                                  concurrent_regions=0)


def test_regions_nested_in_an_inline_region_are_not_counted(restore_threads, guard_mode):
    """Many small products run one per thread (an outer region); each product is large enough to split on its
    own. When the outer region runs inline, the products' regions nested in it run inline too and count as
    nothing: not as regions beside another thread's (there is none)."""
    if not fastnn.build_info()["openmp"]:
        pytest.skip("built without OpenMP: one thread only")
    rng = np.random.default_rng(1)
    a = rng.standard_normal((4, 64, 64))
    b = rng.standard_normal((4, 64, 64))
    fastnn.set_num_threads(1)
    expected = _C.batched_matmul(a, b)
    fastnn.set_num_threads(2)
    guard_mode("serial")
    before = _counters()
    for _ in range(3):
        assert np.array_equal(_C.batched_matmul(a, b), expected)
    assert _since(before) == dict(parallel_regions=0, contended_regions=0, serialized_regions=3,
                                  concurrent_regions=0)


def test_busy_machine_falls_back_without_changing_results(restore_threads, guard_mode):
    """With another process spinning on a core, 2-thread kernels may fall back to the calling thread (the
    oversubscription guard in csrc/cpu/parallel.cpp); whichever way each call runs, the results are the bits
    one thread gives, every call completes, and every region is accounted for exactly once: it ran on a team
    (and may have waited on a late thread) or the guard ran it on the calling thread."""
    if not fastnn.build_info()["openmp"]:
        pytest.skip("built without OpenMP: one thread only")
    import subprocess

    call = _gemm_case()
    fastnn.set_num_threads(1)
    expected = call()
    fastnn.set_num_threads(2)
    per_call = _regions_per_call(call)
    guard_mode("auto")
    before = _counters()
    spinner = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 20\nwhile time.time() < end: pass"])
    try:
        for _ in range(200):
            assert np.array_equal(call(), expected)
    finally:
        spinner.kill()
        spinner.wait()
    d = _since(before)
    assert d["parallel_regions"] + d["serialized_regions"] == 200 * per_call, d
    assert d["concurrent_regions"] == 0, d  # one Python thread: no region ran beside another
    assert d["contended_regions"] <= d["parallel_regions"], d


def test_two_python_threads_do_not_stack_teams(restore_threads, guard_mode):
    """Two Python threads calling 2-thread kernels at once: a region that starts while the other thread's region
    runs goes inline on its own thread (a second team would only oversubscribe the cores, and each team's waits
    for the other used to look like contention, serializing every caller for up to 2 s). The answers are the
    sequential ones and every region is accounted for exactly once."""
    if not fastnn.build_info()["openmp"]:
        pytest.skip("built without OpenMP: one thread only")
    call = _gemm_case()
    fastnn.set_num_threads(1)
    expected = call()
    fastnn.set_num_threads(2)
    per_call = _regions_per_call(call)
    guard_mode("auto")
    before = _counters()
    calls = [0, 0]
    errors = []
    barrier = threading.Barrier(2)

    def run(tid):
        try:
            barrier.wait()
            # Until the threads have met inside a region at least once (each call releases the GIL for about a
            # millisecond, the other thread's Python part takes microseconds), then a few more; capped.
            while calls[tid] < 2000 and (calls[tid] < 20 or _since(before)["concurrent_regions"] == 0):
                if not np.array_equal(call(), expected):
                    errors.append(f"thread {tid}: result differs")
                calls[tid] += 1
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(tid,)) for tid in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    d = _since(before)
    assert d["concurrent_regions"] > 0, d
    assert d["parallel_regions"] + d["serialized_regions"] + d["concurrent_regions"] == sum(calls) * per_call, d


def test_kernels_work_in_a_forked_child(restore_threads):
    """fork() copies only the calling thread: the pool's workers are gone in the child, which must start its
    own instead of waiting on them (multiprocessing's default start method on Linux)."""
    if not fastnn.build_info()["openmp"] or not hasattr(os, "fork"):
        pytest.skip("needs threads and fork()")
    fastnn.set_num_threads(2)
    rng = np.random.default_rng(3)
    a = rng.standard_normal((300, 300)).astype(np.float32)
    expected = _C.gemm(a, a)  # the parent's pool is running
    pid = os.fork()
    if pid == 0:  # the child: exit status says whether the 2-thread product is right and ran on the pool
        try:
            before = _C.build_info()["parallel_regions"]
            _C.set_oversubscription_guard("off")
            ok = np.array_equal(_C.gemm(a, a), expected) and _C.build_info()["parallel_regions"] > before
        except BaseException:
            ok = False
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert np.array_equal(_C.gemm(a, a), expected)
