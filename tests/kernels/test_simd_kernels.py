"""The per-ISA elementwise, softmax / crossentropy and optimizer kernels (csrc/cpu/elementwise_kernel_*.cpp).

Every SIMD path this CPU has (the simd_path fixture loops over them with set_simd_path) is checked against the
scalar reference twins (reference=True: the plain loops with libm) and NumPy, in float32 and float64, at sizes that
are not multiples of any vector width (16 / 8 / 4 / 2 lanes) and at sizes 0 and 1:

- the vectorized elementary functions (_C.vector_math) against libm over dense sweeps that include the overflow and
  underflow edges, denormals, infinities and NaN: max ulp error per path;
- activations, softmax / log-softmax, crossentropy: close to the reference (error bounds in units of the dtype's
  epsilon); the activations whose formulas use no elementary function bit-identical to the reference on every path;
- optimizers: bit-identical to the reference on every path (they perform the reference's IEEE operations in order);
- each path deterministic: the same bits for 1 and 2 threads and wherever an element sits (offset runs).
"""
from __future__ import annotations

import numpy as np
import pytest

from fastnn import backend

_C = backend._C

ACTIVATIONS = {"relu": 1.0, "relu6": 1.0, "sigmoid": 1.0, "tanh": 1.0, "elu": 0.7, "selu": 1.0, "gelu": 1.0,
               "gelu_tanh": 1.0, "silu": 1.0, "leaky_relu": 0.2, "softplus": 1.0, "softsign": 1.0,
               "hard_sigmoid": 1.0}
# Forward formulas built only from IEEE operations (and gelu, the scalar twin on every path): the reference's bits.
EXACT_FORWARD = {"relu", "relu6", "leaky_relu", "softsign", "hard_sigmoid", "gelu"}
# Backward formulas that use x and the forward output y but no elementary function (and gelu, which runs its
# scalar twin on every path: the vector math has no erf).
EXACT_BACKWARD = {"relu", "relu6", "leaky_relu", "softsign", "hard_sigmoid", "sigmoid", "tanh", "elu", "selu", "gelu"}
SIZES = [0, 1, 2, 3, 5, 15, 17, 31, 33, 1000]
DTYPES = [np.float32, np.float64]
SPECIALS = [0.0, -0.0, 1e-40, -1e-40, 1e-310, 1.0, -1.0, 3.0, -3.0, 6.0, 30.0, -30.0, 88.7, -87.5, 89.0, -104.0,
            700.0, -745.0, 1e4, -1e4, np.inf, -np.inf, np.nan]


def _inputs(n, dtype, seed=0):
    """n values: the special ones first (as many as fit), then a wide random spread."""
    rng = np.random.default_rng(seed)
    with np.errstate(over="ignore"):
        specials = np.array(SPECIALS, dtype=dtype)
        x = (rng.standard_normal(n) * 4).astype(dtype)
    k = min(n, len(specials))
    x[:k] = specials[:k]
    return x


def _flushed(a):
    """a with denormals replaced by +0: the kernels run with DAZ / FTZ, where a denormal counts as zero, and whether
    an instruction returns the zero or passes the denormal's bits through (a blend does, minps does not) is not part
    of the contract."""
    a = np.array(a, copy=True)
    a[np.abs(a) < np.finfo(a.dtype).tiny] = 0
    return a


def _eps(dtype):
    return float(np.finfo(dtype).eps)


def _assert_close_eps(got, ref, dtype, k, scale=None):
    """|got - ref| <= k eps (|ref| + scale) elementwise, with NaN in the same places (and infinities equal)."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    finite = np.isfinite(ref)
    np.testing.assert_array_equal(got[~finite & ~np.isnan(ref)], ref[~finite & ~np.isnan(ref)])
    s = 0.0 if scale is None else np.asarray(scale, np.float64)[finite] if np.ndim(scale) else scale
    bound = k * _eps(dtype) * (np.abs(ref[finite]) + s) + 8 * float(np.finfo(dtype).tiny)
    err = np.abs(got[finite] - ref[finite])
    worst = int(np.argmax(err - bound)) if err.size else 0
    assert np.all(err <= bound), f"error {err[worst]:.3g} > bound {bound[worst]:.3g} (got {got[finite][worst]!r}, ref {ref[finite][worst]!r})"


# --------------------------------------------------------------------------------------------------------------
# The elementary functions
# --------------------------------------------------------------------------------------------------------------
def _ordered(a, dtype):
    """Float bit patterns mapped to integers that are consecutive for adjacent floats (as exact long doubles)."""
    ity, mask = (np.int32, 0x7FFFFFFF) if dtype == np.float32 else (np.int64, 0x7FFFFFFFFFFFFFFF)
    i = np.ascontiguousarray(a, dtype).view(ity).astype(np.int64)
    mag = i & mask
    return np.where(i < 0, -mag, mag).astype(np.longdouble)


def _ulp_errors(got, ref_exact, dtype):
    """Distance in ulps between got and the reference rounded to dtype; results the reference puts below the
    smallest normal may be flushed to 0 (the kernels run with FTZ / DAZ)."""
    with np.errstate(over="ignore", invalid="ignore"):
        ref = np.asarray(ref_exact).astype(dtype)
    d = np.abs(_ordered(got, dtype) - _ordered(ref, dtype)).astype(np.float64)
    d[np.isnan(got) & np.isnan(ref)] = 0
    d[np.isnan(got) != np.isnan(ref)] = np.inf
    d[(np.abs(ref) < np.finfo(dtype).tiny) & (got == 0)] = 0
    return d


def _sweep(fn, dtype):
    big = 100.0 if dtype == np.float32 else 800.0
    tiny = 1e-37 if dtype == np.float32 else 1e-300
    n = 1_000_001
    if fn == "log":
        parts = [np.geomspace(tiny, 1 / tiny, n), np.linspace(0.5, 2.0, n)]
    elif fn == "log1p":
        parts = [np.linspace(-0.9999, 4.0, n), np.geomspace(1e-30, 1e30, n // 4), -np.geomspace(1e-30, 0.9999, n // 4)]
    else:
        parts = [np.linspace(-big, big, n), np.linspace(-2.0, 2.0, n), np.geomspace(1e-30, big, n // 4),
                 -np.geomspace(1e-30, big, n // 4)]
    with np.errstate(over="ignore"):
        return np.concatenate(parts).astype(dtype)


def _exact(fn, x, dtype):
    """The function in a wider type: float64 for float32 inputs, long double for float64 (None if no wider type)."""
    wide = np.float64 if dtype == np.float32 else np.longdouble
    if dtype == np.float64 and np.finfo(np.longdouble).nmant < 63:
        return None
    xw = x.astype(wide)
    with np.errstate(all="ignore"):
        if fn == "sigmoid":
            return 1 / (1 + np.exp(-xw))
        return {"exp": np.exp, "expm1": np.expm1, "log": np.log, "log1p": np.log1p, "tanh": np.tanh}[fn](xw)


# Max ulp error of each function on every path, as measured by this sweep (the documented accuracy; float32 expm1
# reaches 2 ulp without FMA, on the baseline path, and 1 with it).
MAX_ULP = {np.float32: {"exp": 1, "expm1": 2, "log": 1, "log1p": 1, "tanh": 2, "sigmoid": 2},
           np.float64: {"exp": 1, "expm1": 2, "log": 1, "log1p": 1, "tanh": 2, "sigmoid": 2}}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fn", ["exp", "expm1", "log", "log1p", "tanh", "sigmoid"])
def test_vector_math_ulp_error_against_libm(simd_path, fn, dtype):
    x = _sweep(fn, dtype)
    ref = _exact(fn, x, dtype)
    if ref is None:
        pytest.skip("no long double wider than float64 on this platform")
    d = _ulp_errors(_C.vector_math(x, fn), ref, dtype)
    worst = int(np.argmax(d))
    assert d.max() <= MAX_ULP[dtype][fn], f"{fn} at x={x[worst]!r}: {d[worst]} ulp"


@pytest.mark.parametrize("dtype", DTYPES)
def test_vector_math_special_values(simd_path, dtype):
    info = np.finfo(dtype)
    inf, nan = np.inf, np.nan
    denormal = info.tiny / 4
    big = 89.0 if dtype == np.float32 else 710.0  # exp overflows
    small = -104.0 if dtype == np.float32 else -746.0  # exp underflows to 0
    cases = {
        "exp": [(0.0, 1.0), (-0.0, 1.0), (denormal, 1.0), (inf, inf), (-inf, 0.0), (big, inf), (small, 0.0),
                (1e30, inf), (-1e30, 0.0)],
        "expm1": [(0.0, 0.0), (inf, inf), (-inf, -1.0), (big, inf), (-1e30, -1.0), (1e30, inf)],
        "log": [(1.0, 0.0), (0.0, -inf), (-0.0, -inf), (denormal, -inf), (inf, inf), (-1.0, nan), (-inf, nan),
                (info.max, np.log(np.float64(info.max)))],
        "log1p": [(0.0, 0.0), (-1.0, -inf), (inf, inf), (-2.0, nan)],
        "tanh": [(0.0, 0.0), (inf, 1.0), (-inf, -1.0), (1e30, 1.0), (-1e30, -1.0), (50.0, 1.0)],
        "sigmoid": [(0.0, 0.5), (inf, 1.0), (-inf, 0.0), (1e30, 1.0), (-1e30, 0.0)],
    }
    for fn, pairs in cases.items():
        x = np.array([p[0] for p in pairs] + [nan], dtype=dtype)
        want = np.array([p[1] for p in pairs] + [nan], dtype=dtype)
        got = _C.vector_math(x, fn)
        np.testing.assert_allclose(got, want, rtol=2 * info.eps, atol=0, err_msg=fn)
        # signs of zero: exp / expm1 / tanh / log1p keep -0 as -0 where libm does
        if fn in ("expm1", "tanh", "log1p"):
            assert np.signbit(_C.vector_math(np.array([-0.0], dtype), fn)[0])


# --------------------------------------------------------------------------------------------------------------
# Activations
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_paths_against_reference(simd_path, name, dtype):
    alpha = ACTIVATIONS[name]
    for n in SIZES:
        x = _inputs(n, dtype, seed=n)
        dy = np.random.default_rng(n + 1).standard_normal(n).astype(dtype)
        with np.errstate(all="ignore"):
            y = _C.activation_forward(x, name, alpha)
            y_ref = _C.activation_forward(x, name, alpha, reference=True)
            assert y.shape == x.shape and y.dtype == dtype
            if name in EXACT_FORWARD:
                np.testing.assert_array_equal(_flushed(y), _flushed(y_ref))
            else:
                _assert_close_eps(y, y_ref, dtype, 8)
            # the backward of each path given the same (reference) forward output, against the reference
            dx = _C.activation_backward(dy, x, y_ref, name, alpha)
            dx_ref = _C.activation_backward(dy, x, y_ref, name, alpha, reference=True)
            if name in EXACT_BACKWARD:
                np.testing.assert_array_equal(_flushed(dx), _flushed(dx_ref))
            else:
                # derivative terms of order max(1, |x|) may cancel: the bound scales with them
                mag = np.abs(dy.astype(np.float64)) * np.maximum(1.0, np.abs(np.nan_to_num(x.astype(np.float64))))
                _assert_close_eps(dx, dx_ref, dtype, 16, scale=mag)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["sigmoid", "tanh", "elu", "gelu_tanh", "silu", "softplus"])
def test_activation_against_numpy(simd_path, name, dtype):
    x = np.linspace(-20, 20, 4097).astype(dtype)
    with np.errstate(all="ignore"):
        xd = x.astype(np.float64)
        sig = 1 / (1 + np.exp(-xd))
        c = np.sqrt(2 / np.pi)
        want = {"sigmoid": sig, "tanh": np.tanh(xd), "elu": np.where(xd > 0, xd, 0.7 * np.expm1(xd)),
                # 0.5 x (1 + tanh(u)) as x sigmoid(2u): the tanh form cancels for x << 0
                "gelu_tanh": xd / (1 + np.exp(-2 * c * (xd + 0.044715 * xd**3))), "silu": xd * sig,
                "softplus": np.logaddexp(0, xd)}[name]
    got = _C.activation_forward(x, name, ACTIVATIONS[name])
    _assert_close_eps(got, want, dtype, 8, scale=1e-3 if name == "gelu_tanh" else None)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_exact_kinds_identical_on_every_path(name, dtype):
    """Formulas without elementary functions give the same bits on every path (the paths' kernels run the
    reference's operations; -ffp-contract=off keeps the compiler from fusing them)."""
    x = _inputs(1000, dtype, seed=3)
    dy = np.random.default_rng(4).standard_normal(1000).astype(dtype)
    y_ref = _C.activation_forward(x, name, ACTIVATIONS[name], reference=True)
    previous = _C.simd_path()
    outs = []
    try:
        for path in _C.build_info()["simd_available"]:
            _C.set_simd_path(path)
            with np.errstate(all="ignore"):
                outs.append((path, _C.activation_forward(x, name, ACTIVATIONS[name]),
                             _C.activation_backward(dy, x, y_ref, name, ACTIVATIONS[name])))
    finally:
        _C.set_simd_path(previous)
    for path, y, dx in outs[1:]:
        if name in EXACT_FORWARD:
            np.testing.assert_array_equal(y, outs[0][1], err_msg=path)
        if name in EXACT_BACKWARD:
            np.testing.assert_array_equal(dx, outs[0][2], err_msg=path)


def _with_threads(n, fn):
    previous = _C.get_num_threads()
    _C.set_num_threads(n)
    try:
        return fn()
    finally:
        _C.set_num_threads(previous)


@pytest.mark.parametrize("dtype", DTYPES)
def test_deterministic_for_threads_and_offsets(simd_path, dtype):
    """1 and 2 threads, and a run starting at an odd offset, give the same bits for every element."""
    n = 100_003
    x = _inputs(n, dtype, seed=5)
    dy = np.random.default_rng(6).standard_normal(n).astype(dtype)
    logits = np.random.default_rng(7).standard_normal((777, 37)).astype(dtype) * 5
    with np.errstate(all="ignore"):
        for name, alpha in ACTIVATIONS.items():
            y1 = _with_threads(1, lambda: _C.activation_forward(x, name, alpha))
            y2 = _with_threads(2, lambda: _C.activation_forward(x, name, alpha))
            np.testing.assert_array_equal(y1, y2, err_msg=name)
            np.testing.assert_array_equal(_C.activation_forward(x[3:], name, alpha), y1[3:], err_msg=name)
            d1 = _with_threads(1, lambda: _C.activation_backward(dy, x, y1, name, alpha))
            d2 = _with_threads(2, lambda: _C.activation_backward(dy, x, y1, name, alpha))
            np.testing.assert_array_equal(d1, d2, err_msg=name)
            np.testing.assert_array_equal(_C.activation_backward(dy[5:], x[5:], y1[5:], name, alpha), d1[5:])
        for fn in ("softmax_forward", "log_softmax_forward"):
            a = _with_threads(1, lambda: getattr(_C, fn)(logits))
            b = _with_threads(2, lambda: getattr(_C, fn)(logits))
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(getattr(_C, fn)(logits[1:]), a[1:])


# --------------------------------------------------------------------------------------------------------------
# Softmax, log-softmax, crossentropy, bias add
# --------------------------------------------------------------------------------------------------------------
ROWS_COLS = [(0, 5), (5, 0), (1, 1), (3, 7), (2, 17), (5, 33), (64, 10), (32, 64), (7, 300)]


def _tol(dtype):
    return (2e-5, 1e-6) if dtype == np.float32 else (1e-13, 1e-14)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows,cols", ROWS_COLS)
def test_softmax_family_paths_against_reference(simd_path, rows, cols, dtype):
    rng = np.random.default_rng(rows * 100 + cols)
    x = (rng.standard_normal((rows, cols)) * 4).astype(dtype)
    dy = rng.standard_normal((rows, cols)).astype(dtype)
    rtol, atol = _tol(dtype)
    for log in (False, True):
        fwd = _C.log_softmax_forward if log else _C.softmax_forward
        bwd = _C.log_softmax_backward if log else _C.softmax_backward
        y, y_ref = fwd(x), fwd(x, reference=True)
        np.testing.assert_allclose(y, y_ref, rtol=rtol, atol=atol)
        np.testing.assert_allclose(bwd(dy, y_ref), bwd(dy, y_ref, reference=True), rtol=rtol * 10, atol=atol * 10)
    if rows and cols:
        xd = x.astype(np.float64)
        ref = np.exp(xd - xd.max(1, keepdims=True))
        np.testing.assert_allclose(_C.softmax_forward(x), ref / ref.sum(1, keepdims=True), rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_rows_with_inf_and_nan(simd_path, dtype):
    x = np.array([[0.0, -np.inf, 1.0], [np.nan, 0.0, 1.0], [np.inf, 0.0, 1.0], [-np.inf] * 3], dtype=dtype)
    with np.errstate(all="ignore"):
        for fn in (_C.softmax_forward, _C.log_softmax_forward):
            got, ref = fn(x), fn(x, reference=True)
            np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
            np.testing.assert_allclose(got[0], ref[0], rtol=_tol(dtype)[0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows,cols", [rc for rc in ROWS_COLS if rc[1] > 0])
def test_crossentropy_paths_against_reference(simd_path, rows, cols, dtype):
    rng = np.random.default_rng(rows * 7 + cols)
    logits = (rng.standard_normal((rows, cols)) * 3).astype(dtype)
    labels = rng.integers(0, cols, rows).astype(np.int64)
    target = rng.random((rows, cols)).astype(dtype)
    dloss = rng.standard_normal(rows).astype(dtype)
    rtol, atol = _tol(dtype)
    loss, lse = _C.sparse_xent_forward(logits, labels)
    loss_ref, lse_ref = _C.sparse_xent_forward(logits, labels, reference=True)
    np.testing.assert_allclose(loss, loss_ref, rtol=rtol * 10, atol=atol * 10)
    np.testing.assert_allclose(lse, lse_ref, rtol=rtol, atol=atol)
    xd = logits.astype(np.float64)
    p = np.exp(xd - lse_ref.astype(np.float64)[:, None])
    onehot = np.eye(cols)[labels]
    np.testing.assert_allclose(_C.sparse_xent_backward(dloss, logits, lse_ref, labels),
                               dloss[:, None] * (p - onehot), rtol=rtol * 10, atol=atol * 10)
    dl, dlse = _C.dense_xent_forward(logits, target)
    dl_ref, _ = _C.dense_xent_forward(logits, target, reference=True)
    np.testing.assert_allclose(dl, dl_ref, rtol=rtol * 10, atol=atol * 100)
    np.testing.assert_allclose(dlse, lse_ref, rtol=rtol, atol=atol)
    np.testing.assert_allclose(_C.dense_xent_backward(dloss, logits, lse_ref, target),
                               dloss[:, None] * (p * target.sum(1, keepdims=True) - target), rtol=rtol * 10,
                               atol=atol * 10)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows,cols", [(0, 3), (1, 1), (3, 7), (300, 17), (513, 70)])
def test_bias_add_paths_exact(simd_path, rows, cols, dtype):
    """Adds only: the forward is x + b exactly and each column's sum is the serial sum of its rows (in blocks of
    256 rows, then the blocks in order), the same bits on every path."""
    rng = np.random.default_rng(rows + cols)
    x = rng.standard_normal((rows, cols)).astype(dtype)
    b = rng.standard_normal(cols).astype(dtype)
    np.testing.assert_array_equal(_C.bias_add_forward(x, b), x + b)
    expected = np.zeros(cols, dtype)
    for start in range(0, rows, 256):
        block = np.zeros(cols, dtype)
        for r in range(start, min(rows, start + 256)):
            block = block + x[r]
        expected = expected + block if rows > 256 else block
    np.testing.assert_array_equal(_C.bias_add_backward(x), expected)


# --------------------------------------------------------------------------------------------------------------
# Optimizers
# --------------------------------------------------------------------------------------------------------------
OPT_CASES = [
    ("sgd", {"lr": 0.1}, 0), ("sgd", {"lr": 0.1, "momentum": 0.9}, 1),
    ("sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": 1.0, "weight_decay": 0.01, "clipvalue": 0.5}, 1),
    ("adam", {"lr": 0.01, "alpha": 0.003}, 2), ("adam", {"lr": 0.01, "alpha": 0.003, "amsgrad": 1.0}, 3),
    ("adagrad", {"lr": 0.05}, 1), ("rmsprop", {"lr": 0.01}, 1),
    ("rmsprop", {"lr": 0.01, "momentum": 0.5, "centered": 1.0}, 3), ("adadelta", {"lr": 1.0}, 2),
    ("adamax", {"lr": 0.01, "alpha": 0.02}, 2),
    ("nadam", {"lr": 0.01, "u_t": 0.9, "u_t1": 0.91, "u_prod_t": 0.9, "u_prod_t1": 0.82, "beta2_power": 0.998}, 2),
    ("lion", {"lr": 0.001, "beta1": 0.9, "beta2": 0.99, "weight_decay": 0.1}, 1),
    ("ftrl", {"lr": 0.1, "l1": 0.01, "l2": 0.01}, 2), ("lamb", {"lr": 0.01, "beta1_power": 0.9, "beta2_power": 0.999}, 2),
]


def _opt_arrays(n, nslots, dtype, kind, seed):
    rng = np.random.default_rng(seed)
    var = rng.standard_normal(n).astype(dtype)
    grad = (rng.standard_normal(n) * 2).astype(dtype)
    slots = [np.abs(rng.standard_normal(n)).astype(dtype) + (0.1 if kind == "ftrl" else 0.0) for _ in range(nslots)]
    if kind in ("adam", "nadam", "adamax", "lion") and nslots:
        slots[0] = rng.standard_normal(n).astype(dtype)
    if kind == "rmsprop" and nslots == 3:
        slots[2] = (0.5 * np.sqrt(slots[0]) * np.sign(rng.standard_normal(n))).astype(dtype)
    if n:
        grad[0] = np.nan if n > 2 else grad[0]  # NaN gradients propagate the same way
    return var, grad, slots


def _run_opt(kind, params, var, grad, slots, scale, reference):
    var, slots = var.copy(), [s.copy() for s in slots]
    slot_lists = [[s] for s in slots]
    if kind in ("rmsprop",) and len(slots) == 1:
        slot_lists = [[slots[0]], None]
    with np.errstate(all="ignore"):
        _C.optimizer_update(kind, [var], [grad], slot_lists, [scale], params, reference=reference)
    return var, slots


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind,params,nslots", OPT_CASES, ids=[f"{c[0]}{i}" for i, c in enumerate(OPT_CASES)])
def test_optimizer_paths_bit_identical_to_reference(simd_path, kind, params, nslots, dtype):
    for n in SIZES + [4099]:
        var, grad, slots = _opt_arrays(n, nslots, dtype, kind, seed=n)
        for scale in (1.0, 0.37):
            got_var, got_slots = _run_opt(kind, params, var, grad, slots, scale, reference=False)
            ref_var, ref_slots = _run_opt(kind, params, var, grad, slots, scale, reference=True)
            np.testing.assert_array_equal(got_var, ref_var, err_msg=f"{kind} n={n}")
            for a, b in zip(got_slots, ref_slots):
                np.testing.assert_array_equal(a, b, err_msg=f"{kind} slot n={n}")


def test_optimizer_two_threads_bit_identical_to_reference(simd_path):
    n = 300_001  # more than two grains of 2^17 elements: the update splits over the threads
    var, grad, slots = _opt_arrays(n, 2, np.float32, "adam", seed=9)
    params = {"lr": 0.01, "alpha": 0.003, "weight_decay": 0.004}
    got = _with_threads(2, lambda: _run_opt("adam", params, var, grad, slots, 1.0, reference=False))
    ref = _run_opt("adam", params, var, grad, slots, 1.0, reference=True)
    np.testing.assert_array_equal(got[0], ref[0])
    np.testing.assert_array_equal(got[1][1], ref[1][1])


@pytest.mark.parametrize("dtype", DTYPES)
def test_sum_squares_same_bits_on_every_path(dtype):
    rng = np.random.default_rng(11)
    arrays = [rng.standard_normal(n).astype(dtype) for n in (0, 1, 15, 17, 4096, 4097, 100_003)]
    previous = _C.simd_path()
    results = []
    try:
        for path in _C.build_info()["simd_available"]:
            _C.set_simd_path(path)
            results.append(_C.sum_squares(arrays))
            results.append(_with_threads(2, lambda: _C.sum_squares(arrays)))
    finally:
        _C.set_simd_path(previous)
    for r in results[1:]:
        assert r == results[0]
    ref = _C.sum_squares(arrays, reference=True)
    np.testing.assert_allclose(results[0], ref, rtol=1e-12)
    np.testing.assert_allclose(results[0], [float(np.sum(a.astype(np.float64) ** 2)) for a in arrays], rtol=1e-12)


# --------------------------------------------------------------------------------------------------------------
# The paths against each other, and the FASTNN_SIMD switch
# --------------------------------------------------------------------------------------------------------------
def _on_path(path, fn):
    previous = _C.simd_path()
    _C.set_simd_path(path)
    try:
        return fn()
    finally:
        _C.set_simd_path(previous)


def _fingerprint():
    """Outputs of every vectorized kernel on inputs where the baseline path (no FMA) rounds some elements
    differently from the FMA paths."""
    x = np.linspace(-30, 30, 100_001).astype(np.float32)
    logits = x[: 64 * 1000].reshape(64, 1000) / 3
    out = [_C.vector_math(x, fn) for fn in ("exp", "expm1", "tanh", "sigmoid")]
    out += [_C.activation_forward(x, name, alpha) for name, alpha in ACTIVATIONS.items()]
    out += [_C.softmax_forward(logits), _C.log_softmax_forward(logits)]
    return out


def test_avx512_and_avx2_give_the_same_bits():
    """Both FMA paths run the same operations per lane (the vector width changes only how many lanes at a time, and
    sums use the width-independent Sum16 layout), so their results are identical; the baseline path (separate
    multiply and add) may differ in the last bit."""
    available = _C.build_info()["simd_available"]
    if not {"avx512", "avx2+fma"} <= set(available):
        pytest.skip("needs both AVX-512 and AVX2+FMA")
    for a, b in zip(_on_path("avx512", _fingerprint), _on_path("avx2+fma", _fingerprint)):
        np.testing.assert_array_equal(a, b)


def test_fastnn_simd_environment_switches_the_elementwise_kernels(tmp_path):
    """FASTNN_SIMD=generic in a fresh process gives the baseline path's bits (set_simd_path('generic') here), which
    differ from an FMA path's somewhere: the environment switch reaches these kernels, not only the GEMM."""
    import os
    import subprocess
    import sys

    if "avx2+fma" not in _C.build_info()["simd_available"]:
        pytest.skip("no FMA path to tell the baseline path from")
    script = tmp_path / "fingerprint.py"
    script.write_text("import sys, numpy as np\n"
                      f"sys.path.insert(0, {str(__import__('pathlib').Path(__file__).parent)!r})\n"
                      "import test_simd_kernels as t\n"
                      "np.save(sys.argv[1], np.concatenate([a.ravel() for a in t._fingerprint()]))\n")
    out_file = tmp_path / "generic.npy"
    env = dict(os.environ, FASTNN_SIMD="generic")
    subprocess.run([sys.executable, str(script), str(out_file)], env=env, check=True, capture_output=True)
    from_env = np.load(out_file)
    generic = np.concatenate([a.ravel() for a in _on_path("generic", _fingerprint)])
    fma = np.concatenate([a.ravel() for a in _on_path("avx2+fma", _fingerprint)])
    np.testing.assert_array_equal(from_env, generic)
    assert not np.array_equal(generic, fma)
