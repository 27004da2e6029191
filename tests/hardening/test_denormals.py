"""Denormals follow one rule on every code path: kernels run with FTZ/DAZ (csrc/include/fastnn/parallel.h), so a
denormal input counts as zero and no result of arithmetic is denormal, whichever algorithm, thread count or inline /
parallel region computes it. The GEMV merge and bias_add_backward's single-block path used to run outside the
guard (gemm gave 1e-40 for M = 1 and 0 for M = 2). The caller's floating-point mode is restored afterwards."""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import _C

DENORMAL = {np.float32: np.float32(1e-40), np.float64: np.float64(1e-310)}
DTYPES = [np.float32, np.float64]


def _denormal_free(x) -> bool:
    x = np.asarray(x)
    tiny = np.finfo(x.dtype).tiny
    return not np.any((x != 0) & (np.abs(x) < tiny))


def _with_denormals(rng, shape, dtype, rate=0.3):
    """Small integers (exact products and sums) with a fraction replaced by +-denormals."""
    x = rng.integers(-2, 3, size=shape).astype(dtype)
    mask = rng.random(shape) < rate
    x[mask] = DENORMAL[dtype] * rng.choice([-1, 1], size=int(mask.sum()))
    return x


def _daz(x):
    """x with its denormals replaced by zeros: what the kernels compute with."""
    x = np.array(x)
    x[np.abs(x) < np.finfo(x.dtype).tiny] = 0
    return x


@pytest.fixture
def guard_off():
    """Regions fork whenever they can (the oversubscription guard would otherwise run some inline on a busy
    machine): the 2-thread runs below really take the parallel code paths."""
    previous = _C.oversubscription_guard()
    _C.set_oversubscription_guard("off")
    yield
    _C.set_oversubscription_guard(previous)


# (M, N, K): GEMV column / row, direct (small), packed (large B, several KC slices), with zero rows in A so that
# some outputs are exactly 0 + denormal beta * C + denormal bias.
GEMM_SHAPES = [(1, 1, 1), (1, 37, 5), (37, 1, 5), (1, 3000, 700), (3000, 1, 700), (2, 2, 1), (7, 17, 9),
               (64, 600, 1100), (300, 200, 513)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("path", ["auto", "packed", "direct", "gemv", "prepacked"])
@pytest.mark.parametrize("threads", [1, 2])
def test_gemm_every_path_flushes_denormals(dtype, path, threads, restore_threads, guard_off):
    rng = np.random.default_rng(0)
    previous = _C.gemm_path()
    fastnn.set_num_threads(threads)
    try:
        _C.set_gemm_path(path)
        for m, n, k in GEMM_SHAPES:
            if path == "gemv" and m != 1 and n != 1:
                continue
            a = _with_denormals(rng, (m, k), dtype)
            a[::2] = _daz(a[::2]) * 0 + DENORMAL[dtype]  # every other row of A is all denormal: those outputs are 0
            b = _with_denormals(rng, (k, n), dtype)
            c = np.full((m, n), DENORMAL[dtype], dtype)
            bias = np.full(n, -DENORMAL[dtype], dtype)
            expected = _daz(a).astype(np.float64) @ _daz(b).astype(np.float64)  # exact: small integers
            for kwargs in (dict(beta=1.0), dict(beta=1.0, bias=bias), dict(bias=bias, activation="relu")):
                out = _C.gemm(a, b, c.copy(), **kwargs)
                want = np.maximum(expected, 0) if kwargs.get("activation") == "relu" else expected
                assert np.array_equal(out, want), (m, n, k, kwargs)
                assert _denormal_free(out), (m, n, k, kwargs)
            if path == "auto" and threads == 1:  # the reference twin has one path
                out = _C.gemm_ref(a, b, c.copy(), beta=1.0, bias=bias)
                assert np.array_equal(out, expected) and _denormal_free(out), (m, n, k, "gemm_ref")
    finally:
        _C.set_gemm_path(previous)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("threads", [1, 2])
def test_batched_matmul_flushes_denormals(dtype, threads, restore_threads, guard_off):
    rng = np.random.default_rng(1)
    fastnn.set_num_threads(threads)
    # Many small products (one per thread) and few large ones (each on all threads), GEMV-shaped ones too.
    for batch, m, n, k in [(16, 5, 7, 3), (3, 200, 300, 129), (8, 1, 33, 17), (2, 65, 1, 300)]:
        a = _with_denormals(rng, (batch, m, k), dtype)
        b = _with_denormals(rng, (batch, k, n), dtype)
        out = _C.batched_matmul(a, b)
        assert np.array_equal(out, _daz(a).astype(np.float64) @ _daz(b).astype(np.float64))
        assert _denormal_free(out)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows", [1, 200, 256, 257, 3000])
def test_bias_add_backward_flushes_denormals_at_every_size(dtype, rows, restore_threads, guard_off):
    # Summing 200 denormals gives a normal number (2e-38 in float32) unless they count as zero.
    for threads in (1, 2):
        fastnn.set_num_threads(threads)
        dy = np.full((rows, 3), DENORMAL[dtype], dtype)
        for reference in (False, True):
            db = _C.bias_add_backward(dy, reference)
            assert np.array_equal(db, np.zeros(3)), (threads, reference)


def _split_consistent(fn, x, rows_small=3):
    """fn on many rows (a parallel region) and on the first rows alone (inline) give the same bits for those rows,
    on 1 and 2 threads."""
    outs = []
    for threads in (1, 2):
        fastnn.set_num_threads(threads)
        big = [np.asarray(o) for o in fn(x)]
        small = [np.asarray(o) for o in fn(np.ascontiguousarray(x[:rows_small]))]
        for o_big, o_small in zip(big, small):
            assert np.array_equal(o_big[:rows_small], o_small, equal_nan=True)
        outs.append(big)
    for a, b in zip(*outs):
        assert np.array_equal(a, b, equal_nan=True)
    return outs[0]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "elu", "selu", "gelu", "gelu_tanh", "silu",
                                  "leaky_relu", "softplus", "softsign", "hard_sigmoid", "relu6"])
def test_activations_treat_denormals_alike_on_every_path(dtype, name, restore_threads, guard_off):
    rng = np.random.default_rng(2)
    x = _with_denormals(rng, (40000, 2), dtype) * dtype(0.5)
    dy = _with_denormals(rng, (40000, 2), dtype)
    y = _C.activation_forward(x, name)
    fwd = _split_consistent(lambda v: [_C.activation_forward(v, name)], x)[0]
    # Arithmetic on a denormal sees zero: the result equals the result for zero (a plain copy, as relu's x > 0
    # branch makes, keeps the input's bits: it computes nothing).
    zero = _C.activation_forward(np.zeros((1, 1), dtype), name)[0, 0]
    den = np.abs(x) < np.finfo(dtype).tiny
    den &= x != 0
    assert np.all((fwd[den] == zero) | (fwd[den] == x[den])), name
    assert _denormal_free(fwd[~den])
    _split_consistent(lambda v: [_C.activation_backward(dy[:len(v)].copy(), v, y[:len(v)].copy(), name)], x)


@pytest.mark.parametrize("dtype", DTYPES)
def test_row_kernels_treat_denormals_alike_on_every_path(dtype, restore_threads, guard_off):
    rng = np.random.default_rng(3)
    x = _with_denormals(rng, (3000, 33), dtype)
    t = np.abs(_with_denormals(rng, (3000, 33), dtype))
    labels = rng.integers(0, 33, 3000).astype(np.int64)
    bias = _with_denormals(rng, (33,), dtype)
    for reference in (False, True):
        _split_consistent(lambda v: [_C.softmax_forward(v, reference), _C.log_softmax_forward(v, reference)], x)
        _split_consistent(lambda v: [_C.softmax_backward(v, np.abs(v), reference),
                                     _C.log_softmax_backward(v, -np.abs(v), reference)], x)
        _split_consistent(lambda v: list(_C.sparse_xent_forward(v, labels[:len(v)].copy(), reference)), x)
        _split_consistent(lambda v: list(_C.dense_xent_forward(v, t[:len(v)].copy(), reference)), x)
    loss, lse = _C.sparse_xent_forward(x, labels)
    dloss = _with_denormals(rng, (3000,), dtype)
    _split_consistent(lambda v: [_C.sparse_xent_backward(dloss[:len(v)].copy(), v, lse[:len(v)].copy(),
                                                         labels[:len(v)].copy())], x)
    _split_consistent(lambda v: [_C.dense_xent_backward(dloss[:len(v)].copy(), v, lse[:len(v)].copy(),
                                                        t[:len(v)].copy())], x)
    out = _split_consistent(lambda v: [_C.bias_add_forward(v, bias)], x)[0]
    assert np.array_equal(out, _daz(x) + _daz(bias)) and _denormal_free(out)


def test_the_callers_floating_point_mode_is_restored():
    # NumPy in the calling thread still computes with denormals after kernels ran on every path.
    _C.gemm(np.ones((1, 3), np.float32), np.ones((3, 1), np.float32))
    _C.bias_add_backward(np.ones((2, 2), np.float32))
    _C.activation_forward(np.ones(10, np.float32), "tanh")
    assert np.float32(1e-40) * np.float32(1) != 0
    assert np.float64(1e-310) + np.float64(1e-310) != 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["sgd", "adam", "lamb", "adafactor"])
def test_optimizer_kernels_flush_denormals(dtype, kind):
    """optimizer_update and sum_squares follow the same rule (their serial parts used to run unflushed): a
    denormal variable or gradient counts as zero, so SGD with a zero step leaves 0, not the denormal."""
    tiny = DENORMAL[dtype]
    assert _C.sum_squares([np.full(7, tiny, dtype)]) == [0.0]
    opt = {"sgd": fastnn.optimizers.SGD(0.1), "adam": fastnn.optimizers.Adam(0.1),
           "lamb": fastnn.optimizers.Lamb(0.1), "adafactor": fastnn.optimizers.Adafactor(0.1)}[kind]
    v = fastnn.Variable(np.full((3, 4), tiny, dtype))
    opt.apply_gradients([(np.full((3, 4), tiny, dtype), v)])
    assert _denormal_free(v.numpy())
    if kind == "sgd":
        np.testing.assert_array_equal(v.numpy(), 0)
