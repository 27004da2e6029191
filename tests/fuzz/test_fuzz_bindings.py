"""Property-based fuzzing of every function in ``fastnn._C`` (harness: ``fastnn.testing.fuzz``).

Each test draws a valid call and, a good part of the time, corrupts one argument (dtype, layout, shape, aliasing,
hyper-parameter, Python type). A valid call must return the NumPy reference's answer; a corrupted one must raise the
documented exception type (TypeError for dtypes and Python types, ValueError for shapes, strides, aliasing and
values). ``FUZZ_TARGETS`` must name every public function of ``fastnn._C``: a new binding without a fuzz target
fails ``test_every_binding_has_a_fuzz_target``.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastnn
from fastnn import _C
from fastnn.testing import fuzz as fz

ERR = (TypeError, ValueError)


def _rng(data):
    return np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))


def _special_rate(data):
    return data.draw(st.sampled_from([0.0, 0.0, 0.05, 0.3]), label="special_rate")


def _dtype(data, bad_rate=True):
    if bad_rate:
        return data.draw(st.sampled_from(fz.FLOATS * 10 + fz.BAD_DTYPES), label="dtype")
    return data.draw(st.sampled_from(fz.FLOATS), label="dtype")


def _array(data, rng, shape, dtype, layouts=fz.LAYOUTS, label="x", special_rate=None, scale=3.0):
    rate = _special_rate(data) if special_rate is None else special_rate
    kind = data.draw(st.sampled_from(("c",) * len(layouts) + tuple(layouts)), label=f"{label}_layout")
    if dtype in fz.FLOATS:
        x = fz.values(rng, shape, dtype, rate, scale)
    elif dtype == np.dtype(object):
        x = np.empty(shape, object)
        x[...] = 1.5
    else:
        x = np.asarray(rng.integers(0, 2, size=shape)).astype(dtype)
    if kind == "bcast":
        x = fz.repeat_rows(x)
    return fz.layout(x, kind)


# -- GEMM ---------------------------------------------------------------------------------------------------------------

def _gemm_operand_ok(x):
    return (fz.dtype_ok(x) and x.flags.aligned and x.ndim == 2 and x.strides[0] % x.itemsize == 0
            and (x.size == 0 or x.shape[1] <= 1 or x.strides[1] == x.itemsize))


GEMM_LAYOUTS_OK = ("c", "c", "rows", "negrows", "bcast")
GEMM_SPECIALS = (np.nan, np.inf, -np.inf, 0.0, -0.0)


def _gemm_values(rng, shape, dtype, rate):
    x = rng.uniform(-2, 2, size=shape)
    if rate and x.size:
        mask = rng.random(shape) < rate
        x[mask] = rng.choice(np.array(GEMM_SPECIALS), size=int(mask.sum()))
    return x.astype(dtype)


def _gemm_case(data, fn):
    rng = _rng(data)
    dtype = _dtype(data, bad_rate=False)
    # The algorithm: as dispatched by shape, or forced (so that the packed path's packing, KC slices, NC blocks and
    # column splits, with zero and negative row strides, are reached at sizes whose NumPy reference stays cheap).
    path = data.draw(st.sampled_from(["auto", "auto", "packed", "packed", "direct", "gemv", "prepacked"]), label="path") \
        if fn is _C.gemm else "auto"
    sizes = fz.size() if path == "auto" else st.one_of(fz.size(), fz.gemm_block_sizes(dtype))
    m, n, k = (data.draw(sizes, label=s) for s in "mnk")
    keep = ""  # dimensions the size cap below must not shrink (they cross a block edge on purpose)
    if path in ("packed", "prepacked"):
        blk = fz.gemm_blocking(dtype)
        small = st.sampled_from((1, 2, 3, 5, 7, 13))
        scenario = data.draw(st.sampled_from(["any", "kc", "nc", "split"]), label="packed_scenario")
        if scenario == "kc":  # several KC slices
            k, keep = blk["kc"] + data.draw(st.sampled_from((1, 3, 17)), label="k_over"), "k"
            m, n = data.draw(small, label="m_small"), data.draw(st.sampled_from((5, 33, 2 * blk["nr"] + 3)), label="n_small")
        elif scenario == "nc":  # several NC blocks
            n, keep = blk["nc"] + data.draw(st.sampled_from((1, 3, blk["nr"] + 1)), label="n_over"), "n"
            m, k = data.draw(small, label="m_small"), data.draw(st.sampled_from((1, 3, 17, 33)), label="k_small")
        elif scenario == "split":  # one block of rows: its column panels split across the threads
            m = data.draw(st.sampled_from((1, 5, blk["mr"] + 1, blk["mc"] - 1)), label="m_split")
            n, k, keep = 2 * blk["nr"] + data.draw(st.sampled_from((1, 7, 31)), label="n_split"), 257, "mn"
    if path == "gemv" and data.draw(st.booleans(), label="vector_shaped"):
        m = 1 if data.draw(st.booleans(), label="row") else m
        n = n if m == 1 else 1
    big = fz.MAX_ELEMENTS * 4  # 1 MiB of float32 per operand: a KC x 2 NR block of B fits in every kernel set
    while m * n * k > fz.MAX_ELEMENTS * 8 or m * k > big or k * n > big or m * n > big:
        dims = {"m": m, "n": n, "k": k}
        name = max((d for d in dims if d not in keep), key=dims.get, default="m")
        if name == "m":
            m //= 2
        elif name == "n":
            n //= 2
        else:
            k //= 2
    trans_a, trans_b = data.draw(st.booleans(), label="trans_a"), data.draw(st.booleans(), label="trans_b")
    alpha = data.draw(st.sampled_from([1.0, 1.0, -0.5, 0.0, 2.0, np.nan]), label="alpha")
    beta = data.draw(st.sampled_from([0.0, 0.0, 1.0, -1.5, np.nan]), label="beta")
    rate = _special_rate(data)
    use_c = beta != 0.0 or data.draw(st.booleans(), label="use_c")
    use_bias = data.draw(st.booleans(), label="use_bias")
    activation = data.draw(st.sampled_from(["linear", "relu", "identity"]), label="activation")

    A = _gemm_values(rng, (m, k), dtype, rate)
    B = _gemm_values(rng, (k, n), dtype, rate)
    C = _gemm_values(rng, (m, n), dtype, rate)
    bias = _gemm_values(rng, (n,), dtype, rate) if use_bias else None

    def stored(M, trans, label):
        kind = data.draw(st.sampled_from(GEMM_LAYOUTS_OK), label=f"{label}_layout")
        S = np.ascontiguousarray(M.T if trans else M)
        if kind == "bcast":
            fz.repeat_rows(S)
            M[...] = S.T if trans else S
        return fz.layout(S, kind)

    a, b = stored(A, trans_a, "a"), stored(B, trans_b, "b")
    c = (fz.layout(C.copy(), data.draw(st.sampled_from(["c", "rows"]), label="c_layout")) if use_c else None)
    kwargs = dict(trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta, bias=bias, activation=activation)
    args = [a, b, c]

    corruption = data.draw(st.sampled_from([None] * 16 + [
        "a_dtype", "b_dtype", "a_layout", "b_layout", "inner", "c_shape", "c_dtype", "c_readonly", "c_alias",
        "bias_shape", "bias_dtype", "bias_in_c", "activation", "beta_without_c", "python_type", "ndim", "bias_list"]),
        label="corruption")
    must = None
    if corruption in ("a_dtype", "b_dtype"):
        i = 0 if corruption == "a_dtype" else 1
        bad = data.draw(st.sampled_from(fz.BAD_DTYPES + (np.dtype(">f4"), np.dtype(">f8"))), label="bad_dtype")
        args[i] = args[i].astype(bad) if bad != np.dtype(object) else np.full(args[i].shape, 1.0, object)
        must = TypeError
    elif corruption in ("a_layout", "b_layout"):
        i = 0 if corruption == "a_layout" else 1
        x = np.ascontiguousarray(args[i])
        bad = fz.layout(x, data.draw(st.sampled_from(["f", "sliced", "misaligned", "neg"]), label="bad_layout"))
        args[i] = bad
        must = None if _gemm_operand_ok(bad) else ValueError
    elif corruption == "inner":
        sa = args[0]
        args[0] = np.zeros((sa.shape[0] + (1 if trans_a else 0), sa.shape[1] + (0 if trans_a else 1)), dtype)
        must = ValueError
    elif corruption == "c_shape":
        args[2] = np.zeros((m + 1, n), dtype)
        must = ValueError
    elif corruption == "c_dtype":
        args[2] = np.zeros((m, n), np.float32 if dtype == np.float64 else np.float64)
        must = TypeError
    elif corruption == "c_readonly":
        cc = np.zeros((m, n), dtype)
        cc.flags.writeable = False
        args[2] = cc
        must = ValueError
    elif corruption == "c_alias" and m * n > 0 and k == n and not trans_a and args[0].flags.writeable:
        args[2] = args[0]
        must = ValueError
    elif corruption == "bias_shape":
        kwargs["bias"] = np.zeros(n + 1, dtype)
        must = ValueError
    elif corruption == "bias_dtype" and True:
        kwargs["bias"] = np.zeros(n, np.float32 if dtype == np.float64 else np.float64)
        must = TypeError
    elif corruption == "bias_in_c" and m * n > 0 and args[2] is not None:
        kwargs["bias"] = args[2][0]
        must = ValueError
    elif corruption == "activation":
        kwargs["activation"] = data.draw(st.sampled_from(["", "RELU", "sigmoid", "relu ", "x" * 300]), label="bad")
        must = ValueError
    elif corruption == "beta_without_c":
        args[2] = None
        kwargs["beta"] = 0.5
        must = ValueError
    elif corruption == "python_type":
        which = data.draw(st.sampled_from(["a_list", "b_none", "alpha_str", "trans_str"]), label="bad_type")
        if which == "a_list":
            args[0] = args[0].tolist()
        elif which == "b_none":
            args[1] = None
        elif which == "alpha_str":
            kwargs["alpha"] = "1.0"
        else:
            kwargs["trans_a"] = "yes"
        must = TypeError
    elif corruption == "bias_list" and use_bias:
        kwargs["bias"] = bias.tolist()  # converted by the binding (float64 lists match float64 only)
        must = TypeError if dtype == np.float32 else None
    elif corruption == "ndim":
        args[0] = args[0].reshape(args[0].shape + (1,))
        must = ValueError

    def reference():
        prod = 0.0
        with np.errstate(all="ignore"):
            A64, B64 = A.astype(np.float64), B.astype(np.float64)
            if alpha != 0.0 and k > 0:
                # np.einsum, not BLAS: IEEE NaN / inf propagation through every product, like the kernel.
                prod = alpha * (np.einsum("ik,kj->ij", A64, B64) if rate else A64 @ B64)
            v = prod + (0.0 if beta == 0.0 else beta * C.astype(np.float64)) + np.zeros((m, n))
            if bias is not None:
                v = v + bias.astype(np.float64)
            if activation == "relu":
                v = np.where(v < 0, 0.0, v)
        return v

    def check(out, ref):
        assert out.dtype == dtype and out.shape == (m, n)
        if c is not None:
            assert out is c or np.shares_memory(out, c)
        with np.errstate(all="ignore"):
            mag = (abs(alpha) * (np.abs(A.astype(np.float64)) @ np.abs(B.astype(np.float64))) if k and alpha == alpha
                   else 0.0) + np.abs(C.astype(np.float64)) + (0 if bias is None else np.abs(bias.astype(np.float64)))
        finite = np.isfinite(ref) & np.isfinite(mag)
        eps = np.finfo(dtype).eps
        o = np.asarray(out, np.float64)
        assert np.array_equal(np.isnan(o), np.isnan(ref)), "NaN pattern differs"
        inf = np.isinf(ref)
        assert np.array_equal(o[inf], ref[inf]), "infinities differ"
        err = np.abs(o - ref)[finite]
        bound = (4 * (k + 4) * eps * np.broadcast_to(mag, ref.shape))[finite] + 1e-30
        assert np.all(err <= bound), f"max excess {np.max(err - bound)}"

    if must is None and path == "gemv" and m > 1 and n > 1:
        must = ValueError  # forced GEMV has no algorithm for a matrix-matrix product
    fz.case(fn.__name__)
    if must is None:
        for branch in fz.gemm_branches(path, m, n, k, dtype, a, b, trans_a, trans_b):
            fz.case(f"{fn.__name__}[{branch}]")
    previous = _C.gemm_path()
    _C.set_gemm_path(path)
    try:
        fz.expect(lambda: fn(*args, **kwargs), reference, check, errors=(), must_raise=must)
    finally:
        _C.set_gemm_path(previous)


@settings(max_examples=fz.examples(3, at_least=320))  # every algorithm and blocking edge, also under .ci/sanitize
@given(st.data())
def test_gemm(data):
    _gemm_case(data, _C.gemm)


@given(st.data())
def test_gemm_ref(data):
    _gemm_case(data, _C.gemm_ref)


@given(st.data())
def test_batched_matmul(data):
    rng = _rng(data)
    dtype = _dtype(data)
    batch, m, n, k = (data.draw(st.sampled_from((0, 1, 2, 3, 5, 8, 17, 33)), label=s) for s in ("batch", "m", "n", "k"))
    if data.draw(st.integers(0, 3), label="large") == 3:
        # Few large products (each on all threads), beside the many small ones (one per thread) drawn above.
        batch = data.draw(st.sampled_from((1, 2, 3)), label="batch")
        m, n, k = (data.draw(st.sampled_from((1, 97, 129, 160, 257)), label=s) for s in "mnk")
        while batch * m * n * k > 1 << 23:
            k = max(1, k // 2)
    A = fz.values(rng, (batch, m, k), dtype, 0.0) if dtype in fz.FLOATS else np.ones((batch, m, k), dtype)
    B = fz.values(rng, (batch, k, n), dtype, 0.0) if dtype in fz.FLOATS else np.ones((batch, k, n), dtype)

    def view(X, label):
        kind = data.draw(st.sampled_from(["c", "c", "c", "T", "T", "negrows", "bcast", "bcast", "neg", "sliced",
                                          "strided", "misaligned", "swapped"]), label=label)
        if kind == "T":  # each matrix stored transposed
            return np.ascontiguousarray(X.transpose(0, 2, 1)).transpose(0, 2, 1)
        if kind == "strided":  # no unit stride along either matrix axis
            big = np.zeros((X.shape[0], 2 * X.shape[1], 2 * X.shape[2]), X.dtype)
            big[:, ::2, ::2] = X
            return big[:, ::2, ::2]
        if kind == "bcast" and X.shape[0] > 1:
            X[...] = X[:1]
        return fz.layout(X, kind)

    a, b = view(A, "a_layout"), view(B, "b_layout")
    if data.draw(st.integers(0, 7), label="mismatch") == 7:
        b = np.zeros((batch, k + 1, n), dtype)

    def unit_ok(x):
        if x.size == 0:
            return True
        item = x.itemsize
        s1, s2 = x.strides[1], x.strides[2]
        return all(s % item == 0 for s in x.strides) and (s2 == item or x.shape[2] == 1 or s1 == item or x.shape[1] == 1)

    valid = (fz.dtype_ok(a, b) and a.dtype == b.dtype and a.flags.aligned and b.flags.aligned and a.shape[2] == b.shape[1]
             and unit_ok(a) and unit_ok(b))
    fz.case("batched_matmul")
    if not valid:
        fz.expect(lambda: _C.batched_matmul(a, b), None, None, must_raise=ERR)
        return

    def check(out, ref):
        assert out.shape == (batch, m, n) and out.dtype == dtype
        rtol, _ = fz.tolerances(dtype)
        mag = np.abs(A.astype(np.float64)) @ np.abs(B.astype(np.float64))
        assert np.all(np.abs(out - ref) <= 4 * (k + 4) * np.finfo(dtype).eps * mag + 1e-30)

    many_small = batch >= _C.get_num_threads() and 2 * m * n * k < 4e6
    fz.case("batched_matmul[one product per thread]" if many_small else "batched_matmul[all threads per product]")
    fz.expect(lambda: _C.batched_matmul(a, b), lambda: A.astype(np.float64) @ B.astype(np.float64), check, errors=())


def test_fuzz_reached_every_gemm_branch():
    """The draws above reached every GEMM algorithm and the packed path's blocking edges (counted per branch from
    the kernel set's blocking in build_info). Runs after them in file order; alone it has nothing to check."""
    reached = {name for name in fz.COUNTS if name.startswith(("gemm[", "batched_matmul["))}
    if not any(name.startswith("gemm[") for name in reached):
        pytest.skip("run with the gemm fuzz targets (the whole file)")
    wanted = {"gemm[gemv]", "gemm[direct]", "gemm[packed]", "gemm[packed: several KC slices]",
              "gemm[packed: several NC blocks]", "gemm[packed: columns split across threads]",
              "gemm[packed: zero row stride]", "gemm[packed: negative row stride]",
              "batched_matmul[one product per thread]", "batched_matmul[all threads per product]",
              "gemm[prepacked]", "gemm[prepacked: several KC slices]", "gemm[prepacked: several NC blocks]"}
    if _C.get_num_threads() < 2:
        wanted.discard("gemm[packed: columns split across threads]")
    assert not wanted - reached, f"never reached: {sorted(wanted - reached)}"


# -- activations ---------------------------------------------------------------------------------------------------------

def _act_name(data):
    return data.draw(st.one_of(st.sampled_from(fz.ACTIVATIONS), st.sampled_from(fz.ACTIVATIONS),
                               st.sampled_from(["", "ReLU", "swish", "softmax", "gelu ", "x" * 200])), label="name")


def _alpha(data):
    return data.draw(st.one_of(st.sampled_from([1.0, 0.2, 0.01, 0.0, -1.0]),
                               st.floats(allow_nan=True, allow_infinity=True)), label="alpha")


@given(st.data())
def test_activation_forward(data):
    rng = _rng(data)
    dtype = _dtype(data)
    x = _array(data, rng, data.draw(fz.shapes(), label="shape"), dtype)
    name, alpha = _act_name(data), _alpha(data)
    valid = fz.c_ready(x) and name in fz.ACTIVATIONS
    fz.case("activation_forward")
    if not valid:
        must = ERR if not fz.dtype_ok(x) and name not in fz.ACTIVATIONS else \
            TypeError if not fz.dtype_ok(x) else ValueError
        fz.expect(lambda: _C.activation_forward(x, name, alpha), None, None, must_raise=must)
        return
    with np.errstate(all="ignore"):
        a = float(np.float32(alpha)) if dtype == np.float32 else alpha

    def check(out, ref):
        assert out.dtype == dtype and out.shape == x.shape
        rtol, atol = fz.tolerances(dtype)
        fz.assert_close(out, ref.astype(dtype) if dtype == np.float32 else ref, rtol, atol)

    fz.expect(lambda: _C.activation_forward(x, name, alpha),
              lambda: fz.act_forward(name, fz.daz(x, dtype), a), check, errors=())


@given(st.data())
def test_activation_backward(data):
    rng = _rng(data)
    dtype = _dtype(data)
    shape = data.draw(fz.shapes(), label="shape")
    name, alpha = _act_name(data), _alpha(data)
    x = fz.values(rng, shape, dtype, _special_rate(data)) if dtype in fz.FLOATS else np.ones(shape, dtype)
    with np.errstate(all="ignore"):
        a = float(np.float32(alpha)) if dtype == np.float32 else alpha
        y = (np.asarray(fz.act_forward(name if name in fz.ACTIVATIONS else "relu", x.astype(np.float64), a))
             .astype(dtype) if dtype in fz.FLOATS else x)
    dy = fz.values(rng, shape, dtype, 0.0) if dtype in fz.FLOATS else np.ones(shape, dtype)
    args = [dy, x, y]
    corruption = data.draw(st.sampled_from([None, None, None, "shape", "layout", "dtype"]), label="corruption")
    i = data.draw(st.integers(0, 2), label="which")
    if corruption == "shape":
        args[i] = np.zeros(shape + (2,), dtype if dtype in fz.FLOATS else np.float32)
    elif corruption == "layout":
        args[i] = fz.layout(np.ascontiguousarray(args[i]), data.draw(st.sampled_from(fz.LAYOUTS), label="layout"))
    elif corruption == "dtype":
        args[i] = args[i].astype(np.float32 if dtype == np.float64 else np.float64)
    kinds = {a_.dtype for a_ in args}
    valid = (fz.c_ready(*args) and len(kinds) == 1 and all(a_.shape == shape for a_ in args)
             and name in fz.ACTIVATIONS)
    fz.case("activation_backward")
    if not valid:
        fz.expect(lambda: _C.activation_backward(*args, name, alpha), None, None, must_raise=ERR)
        return

    def check(out, ref):
        assert out.dtype == dtype and out.shape == shape
        rtol, atol = fz.tolerances(dtype)
        fz.assert_close(out, ref.astype(dtype) if dtype == np.float32 else ref, rtol * 10, atol)

    d64, x64, y64 = (fz.daz(v, dtype) for v in args)
    fz.expect(lambda: _C.activation_backward(*args, name, alpha), lambda: fz.act_backward(name, d64, x64, y64, a),
              check, errors=())


# -- softmax / log-softmax -----------------------------------------------------------------------------------------------

def _softmax_like(data, fn_name, forward_ref):
    fn = getattr(_C, fn_name)
    rng = _rng(data)
    dtype = _dtype(data)
    x = _array(data, rng, data.draw(fz.shapes(), label="shape"), dtype)
    reference = data.draw(st.booleans(), label="reference")
    fz.case(fn_name)
    if not fz.c_ready(x) or x.ndim == 0:
        fz.expect(lambda: fn(x, reference), None, None, must_raise=TypeError if not fz.dtype_ok(x) else ValueError)
        return

    def check(out, ref):
        assert out.dtype == dtype and out.shape == x.shape
        rtol, atol = fz.tolerances(dtype)
        fz.assert_close(out, ref, rtol * 10, atol * 10)

    fz.expect(lambda: fn(x, reference), lambda: forward_ref(x.astype(np.float64)), check, errors=())


@given(st.data())
def test_softmax_forward(data):
    _softmax_like(data, "softmax_forward", fz.softmax)


@given(st.data())
def test_log_softmax_forward(data):
    _softmax_like(data, "log_softmax_forward", fz.log_softmax)


def _softmax_like_backward(data, fn_name, log):
    fn = getattr(_C, fn_name)
    rng = _rng(data)
    dtype = _dtype(data)
    shape = data.draw(fz.shapes(min_dims=0), label="shape")
    if dtype in fz.FLOATS:
        logits = fz.values(rng, shape, np.float64, _special_rate(data))
        y = (fz.log_softmax(logits) if log else fz.softmax(logits)).astype(dtype) if len(shape) else logits.astype(dtype)
        dy = fz.values(rng, shape, dtype, 0.0)
    else:
        y = dy = np.ones(shape, dtype)
    args = [dy, y]
    corruption = data.draw(st.sampled_from([None] * 5 + ["shape", "layout", "dtype"]), label="corruption")
    i = data.draw(st.integers(0, 1), label="which")
    if corruption == "shape":
        args[i] = np.zeros(shape + (2,), np.float32)
    elif corruption == "layout":
        args[i] = fz.layout(np.ascontiguousarray(args[i]), data.draw(st.sampled_from(fz.LAYOUTS), label="layout"))
    elif corruption == "dtype":
        args[i] = args[i].astype(np.float32 if args[i].dtype == np.float64 else np.float64)
    reference = data.draw(st.booleans(), label="reference")
    valid = fz.c_ready(*args) and args[0].dtype == args[1].dtype and args[0].shape == args[1].shape == shape \
        and len(shape) > 0
    fz.case(fn_name)
    if not valid:
        fz.expect(lambda: fn(*args, reference), None, None, must_raise=ERR)
        return

    def ref():
        d, yy = args[0].astype(np.float64), args[1].astype(np.float64)
        with np.errstate(all="ignore"):
            if log:
                return d - np.exp(yy) * d.sum(-1, keepdims=True)
            return yy * (d - (d * yy).sum(-1, keepdims=True))

    def check(out, r):
        assert out.dtype == dtype and out.shape == shape
        rtol, atol = fz.tolerances(dtype)
        mag = np.abs(args[0].astype(np.float64)).sum(-1, keepdims=True) + 1
        fz.assert_close(out / mag, r / mag, rtol * 10, atol * 10)

    fz.expect(lambda: fn(*args, reference), ref, check, errors=())


@given(st.data())
def test_softmax_backward(data):
    _softmax_like_backward(data, "softmax_backward", log=False)


@given(st.data())
def test_log_softmax_backward(data):
    _softmax_like_backward(data, "log_softmax_backward", log=True)


# -- crossentropies ------------------------------------------------------------------------------------------------------

def _xent_inputs(data, dense):
    rng = _rng(data)
    dtype = _dtype(data)
    rows = data.draw(st.sampled_from((0, 1, 2, 3, 7, 64, 513)), label="rows")
    cols = data.draw(st.sampled_from((0, 1, 2, 3, 3, 10, 10, 31, 1000)), label="cols")
    logits = _array(data, rng, (rows, cols), dtype, layouts=("c", "c", "c", "rows", "f", "misaligned", "swapped"))
    if dense:
        t = rng.random((rows, cols))
        labels = (t / np.maximum(t.sum(-1, keepdims=True), 1e-12)).astype(dtype if dtype in fz.FLOATS else np.float32)
    else:
        labels = rng.integers(0, max(cols, 1), size=rows).astype(np.int64)
    corruption = data.draw(st.sampled_from([None] * 10 + ["label_range", "label_dtype", "label_shape",
                                            "logits_ndim", "label_layout"]), label="corruption")
    if corruption == "label_range" and rows:
        labels = labels.copy()
        if dense:
            labels = np.zeros((rows, cols + 1), labels.dtype)
        else:
            labels[data.draw(st.integers(0, rows - 1), label="pos")] = data.draw(
                st.sampled_from([-1, cols, cols + 5, 2**62, -(2**63)]), label="bad_label")
    elif corruption == "label_dtype":
        labels = labels.astype(data.draw(st.sampled_from([np.int32, np.float32, np.uint64, ">i8", np.float16])))
    elif corruption == "label_shape":
        labels = np.zeros((rows + 1,) + labels.shape[1:], labels.dtype)
    elif corruption == "logits_ndim":
        logits = logits.reshape(logits.shape + (1,))
    elif corruption == "label_layout":
        labels = fz.layout(np.ascontiguousarray(labels), data.draw(st.sampled_from(["sliced", "misaligned", "neg"])))
    return rng, dtype, logits, labels, corruption


def _labels_ok(logits, labels, dense):
    if dense:
        return (labels.dtype == logits.dtype and fz.c_ready(labels) and labels.shape == logits.shape)
    return (labels.dtype == np.dtype(np.int64) and labels.dtype.isnative and labels.flags.c_contiguous
            and labels.flags.aligned and labels.ndim == 1 and labels.shape[0] == logits.shape[0]
            and bool(np.all((labels >= 0) & (labels < logits.shape[1]))))


def _xent_ref(logits, labels, dense):
    x = logits.astype(np.float64)
    with np.errstate(all="ignore"):
        l = fz.lse(x)
        if dense:
            loss = np.sum(labels.astype(np.float64) * (l[:, None] - x), axis=-1)
        else:
            loss = l - x[np.arange(x.shape[0]), labels] if x.shape[0] else np.zeros(0)
    return loss, l


def _xent_forward(data, dense):
    name = "dense_xent_forward" if dense else "sparse_xent_forward"
    fn = getattr(_C, name)
    rng, dtype, logits, labels, _ = _xent_inputs(data, dense)
    reference = data.draw(st.booleans(), label="reference")
    valid = fz.c_ready(logits) and logits.ndim == 2 and _labels_ok(logits, labels, dense)
    fz.case(name)
    if not valid:
        fz.expect(lambda: fn(logits, labels, reference), None, None, must_raise=ERR)
        return

    def check(out, ref):
        loss, l = out
        assert loss.dtype == dtype and loss.shape == (logits.shape[0],) and l.shape == loss.shape
        rtol, atol = fz.tolerances(dtype)
        scale = np.abs(logits.astype(np.float64)).max(-1) + 1 if logits.size else 1
        fz.assert_close(l / scale, ref[1] / scale, rtol * 10, atol * 10)
        fz.assert_close(loss / scale, ref[0] / scale, rtol * 10, atol * 10)

    fz.expect(lambda: fn(logits, labels, reference), lambda: _xent_ref(logits, labels, dense), check, errors=())


@given(st.data())
def test_sparse_xent_forward(data):
    _xent_forward(data, dense=False)


@given(st.data())
def test_dense_xent_forward(data):
    _xent_forward(data, dense=True)


def _xent_backward(data, dense):
    name = "dense_xent_backward" if dense else "sparse_xent_backward"
    fn = getattr(_C, name)
    rng, dtype, logits, labels, _ = _xent_inputs(data, dense)
    rows = logits.shape[0] if logits.ndim else 0
    if fz.c_ready(logits) and logits.ndim == 2:
        l = fz.lse(logits.astype(np.float64)).astype(dtype)
        dloss = fz.values(rng, (rows,), dtype, 0.0)
    else:
        l = dloss = np.zeros(rows, np.float32)
    args = [dloss, logits, l, labels]
    bad_vec = data.draw(st.sampled_from([None] * 6 + ["dloss_shape", "lse_dtype", "dloss_layout"]), label="vec")
    if bad_vec == "dloss_shape":
        args[0] = np.zeros(rows + 1, dloss.dtype)
    elif bad_vec == "lse_dtype":
        args[2] = l.astype(np.float32 if l.dtype == np.float64 else np.float64)
    elif bad_vec == "dloss_layout":
        args[0] = fz.layout(np.ascontiguousarray(dloss), data.draw(st.sampled_from(["sliced", "misaligned", "swapped"])))
    valid = (fz.c_ready(logits) and logits.ndim == 2 and _labels_ok(logits, labels, dense)
             and all(fz.c_ready(v) and v.dtype == logits.dtype and v.shape == (rows,) for v in (args[0], args[2])))
    fz.case(name)
    if not valid:
        fz.expect(lambda: fn(*args), None, None, must_raise=ERR)
        return

    def ref():
        x = logits.astype(np.float64)
        g = args[0].astype(np.float64)[:, None]
        with np.errstate(all="ignore"):
            p = np.exp(x - args[2].astype(np.float64)[:, None])
            if dense:
                t = labels.astype(np.float64)
                return g * (p * t.sum(-1, keepdims=True) - t)
            onehot = np.zeros_like(x)
            onehot[np.arange(rows), labels] = 1.0
            return g * (p - onehot)

    def check(out, r):
        assert out.dtype == dtype and out.shape == logits.shape
        rtol, atol = fz.tolerances(dtype)
        scale = np.abs(args[0].astype(np.float64))[:, None] * (np.abs(logits.astype(np.float64)).max(-1, initial=0)[:, None] + 1) + 1
        fz.assert_close(out / scale, r / scale, rtol * 10, atol * 10)

    fz.expect(lambda: fn(*args), ref, check, errors=())


@given(st.data())
def test_sparse_xent_backward(data):
    _xent_backward(data, dense=False)


@given(st.data())
def test_dense_xent_backward(data):
    _xent_backward(data, dense=True)


# -- bias add ------------------------------------------------------------------------------------------------------------

@given(st.data())
def test_bias_add_forward(data):
    rng = _rng(data)
    dtype = _dtype(data)
    x = _array(data, rng, data.draw(fz.shapes(), label="shape"), dtype)
    cols = x.shape[-1] if x.ndim else 1
    bdtype = data.draw(st.sampled_from([x.dtype, x.dtype, x.dtype, np.dtype(np.float32), np.dtype(np.float64)]))
    b = _array(data, rng, (cols + data.draw(st.sampled_from([0, 0, 0, 1]), label="bias_extra"),), bdtype,
               layouts=("c", "c", "c", "sliced", "neg", "misaligned", "swapped"), label="b")
    valid = fz.c_ready(x, b) and x.dtype == b.dtype and x.ndim > 0 and b.shape == (x.shape[-1],)
    fz.case("bias_add_forward")
    if not valid:
        fz.expect(lambda: _C.bias_add_forward(x, b), None, None, must_raise=ERR)
        return

    def check(out, ref):
        assert out.dtype == dtype and out.shape == x.shape
        fz.assert_close(out, fz.daz(ref.astype(dtype), dtype), 0, 0)  # one rounding (and FTZ): must be exact

    fz.expect(lambda: _C.bias_add_forward(x, b), lambda: fz.daz(x, dtype) + fz.daz(b, dtype), check, errors=())


@given(st.data())
def test_bias_add_backward(data):
    rng = _rng(data)
    dtype = _dtype(data)
    dy = _array(data, rng, data.draw(fz.shapes(), label="shape"), dtype, special_rate=0.0)
    reference = data.draw(st.booleans(), label="reference")
    fz.case("bias_add_backward")
    if not fz.c_ready(dy) or dy.ndim == 0:
        fz.expect(lambda: _C.bias_add_backward(dy, reference), None, None, must_raise=ERR)
        return

    def check(out, ref):
        assert out.dtype == dtype and out.shape == (dy.shape[-1],)
        rows = int(np.prod(dy.shape[:-1]))
        mag = np.abs(dy.astype(np.float64)).reshape(rows, dy.shape[-1]).sum(0)
        assert np.all(np.abs(out - ref) <= 2 * (rows + 2) * np.finfo(dtype).eps * mag + 1e-30)

    fz.expect(lambda: _C.bias_add_backward(dy, reference),
              lambda: dy.astype(np.float64).reshape(int(np.prod(dy.shape[:-1])), dy.shape[-1]).sum(0), check,
              errors=())


# -- optimizers ----------------------------------------------------------------------------------------------------------

OPT_SLOTS = {"sgd": 1, "adam": 3, "adagrad": 1, "rmsprop": 3, "adadelta": 2, "adamax": 2, "nadam": 2, "lion": 1,
             "ftrl": 2, "lamb": 2, "adafactor": 3}


def _adafactor_moment_shape(shape, slot):
    """Adafactor's row (slot 0) and column (slot 1) moments: shape[:-1] and shape[:-2] + shape[-1:] from rank 2,
    0-d placeholders below."""
    if len(shape) < 2:
        return ()
    return shape[:-1] if slot == 0 else shape[:-2] + shape[-1:]


def _opt_reference(kind, params, var, grad, slots, scale):
    """NumPy float64 twins of every kind of csrc/cpu/optimizer.cpp (Keras 3 formulas, term by term): the new
    variable and the new slot arrays."""
    p = lambda key, default: params.get(key, default)  # noqa: E731 - the binding's defaults
    lr = p("lr", 0.01)
    g = grad * scale
    if p("clipvalue", 0.0) > 0:
        g = np.clip(g, -params["clipvalue"], params["clipvalue"])
    w = var - var * p("weight_decay", 0.0) * lr
    s = [a.copy() for a in slots]
    b1, b2, eps = p("beta1", 0.9), p("beta2", 0.999), p("epsilon", 1e-7)
    if kind == "sgd":
        mom = p("momentum", 0.0)
        if mom == 0.0:
            return w - g * lr, s
        s[0] = -g * lr + slots[0] * mom
        return w + ((-g * lr + s[0] * mom) if p("nesterov", 0.0) else s[0]), s
    if kind == "adam":
        s[0] = slots[0] + (g - slots[0]) * (1 - b1)
        s[1] = slots[1] + (g * g - slots[1]) * (1 - b2)
        v = s[1]
        if p("amsgrad", 0.0):
            s[2] = v = np.maximum(slots[2], s[1])
        return w - (s[0] * p("alpha", 0.0)) / (np.sqrt(v) + eps), s
    if kind == "adagrad":
        s[0] = slots[0] + g * g
        return w - lr * g / np.sqrt(s[0] + eps), s
    if kind == "rmsprop":
        rho = p("rho", 0.9)
        s[0] = rho * slots[0] + (1 - rho) * g * g
        denom = s[0] + eps
        if p("centered", 0.0):
            s[2] = rho * slots[2] + (1 - rho) * g
            denom = s[0] - s[2] * s[2] + eps
        inc = lr * g / np.sqrt(denom)
        if p("momentum", 0.0) > 0:
            s[1] = p("momentum", 0.0) * slots[1] + inc
            return w - s[1], s
        return w - inc, s
    if kind == "adadelta":
        rho = p("rho", 0.9)
        s[0] = rho * slots[0] + (1 - rho) * g * g
        delta = -np.sqrt(slots[1] + eps) * g / np.sqrt(s[0] + eps)
        s[1] = rho * slots[1] + (1 - rho) * delta * delta
        return w + lr * delta, s
    if kind == "adamax":
        s[0] = slots[0] + (g - slots[0]) * (1 - b1)
        s[1] = np.maximum(b2 * slots[1], np.abs(g))
        return w - p("alpha", 0.0) * s[0] / (s[1] + eps), s
    if kind == "nadam":
        s[0] = slots[0] + (g - slots[0]) * (1 - b1)
        s[1] = slots[1] + (g * g - slots[1]) * (1 - b2)
        m_hat = p("u_t1", 0.0) * s[0] / (1 - p("u_prod_t1", 1.0)) + (1 - p("u_t", 0.0)) * g / (1 - p("u_prod_t", 1.0))
        v_hat = s[1] / (1 - p("beta2_power", 1.0))
        return w - (m_hat * lr) / (np.sqrt(v_hat) + eps), s
    if kind == "lamb":  # the trust ratio ||var|| / ||u|| over the whole variable
        s[0] = slots[0] + (g - slots[0]) * (1 - b1)
        s[1] = slots[1] + (g * g - slots[1]) * (1 - b2)
        u = (s[0] / (1 - p("beta1_power", 0.0))) / (np.sqrt(s[1] / (1 - p("beta2_power", 1.0))) + eps)
        w_norm, u_norm = np.sqrt(np.sum(w * w)), np.sqrt(np.sum(u * u))
        return w - (w_norm / u_norm if w_norm > 0 and u_norm > 0 else 1.0) * lr * u, s
    if kind == "adafactor":
        t = p("local_step", 1.0)
        rms = lambda x: np.sqrt(np.mean(x * x))  # noqa: E731
        if w.size == 0:
            return w, s
        g2 = g * g + p("epsilon_1", 1e-30)
        b2t = 1 - t ** p("beta_2_decay", -0.8)
        if w.ndim >= 2:
            s[0] = b2t * slots[0] + (1 - b2t) * g2.mean(axis=-1)
            s[1] = b2t * slots[1] + (1 - b2t) * g2.mean(axis=-2)
            s[2] = (s[0] / s[0].mean(axis=-1, keepdims=True))[..., None] * s[1][..., None, :]
        else:
            s[2] = b2t * slots[2] + (1 - b2t) * g2
        u = g / np.sqrt(s[2])
        alpha = max(p("epsilon_2", 1e-3), rms(w)) * min(lr, 1 / np.sqrt(t))
        return w - alpha * (u / max(1.0, rms(u) / p("clip_threshold", 1.0))), s
    if kind == "lion":
        s[0] = slots[0] * b2 + g * (1 - b2)
        return w - lr * np.sign(slots[0] * b1 + g * (1 - b1)), s
    if kind == "ftrl":
        power = -p("lr_power", -0.5)
        l1, l2_reg = p("l1", 0.0), p("l2", 0.0) + p("ftrl_beta", 0.0) / (2 * lr)
        new_accum = slots[0] + g * g
        s[1] = slots[1] + (g + 2 * p("l2_shrinkage", 0.0) * w - (new_accum ** power - slots[0] ** power) / lr * w)
        s[0] = new_accum
        return (np.clip(s[1], -l1, l1) - s[1]) / (new_accum ** power / lr + 2 * l2_reg), s
    raise AssertionError(f"no reference for kind {kind!r}")


def _assert_ftrl_close(actual, expected, params, var, grad, slots, dtype, linear=False):
    """Ftrl's linear term z sums terms of any size (n'^-p / lr * var among them) and cancels; its error bound is
    a few ulps of the largest term, and the variable's is that divided by the quadratic term."""
    var, grad = var.astype(np.float64), grad.astype(np.float64)
    n, z = slots[0].astype(np.float64), slots[1].astype(np.float64)
    lr, power = params["lr"], -params.get("lr_power", -0.5)
    g = grad * 1.0
    if params.get("clipvalue", 0.0) > 0:
        g = np.clip(g, -params["clipvalue"], params["clipvalue"])
    w = var - var * params.get("weight_decay", 0.0) * lr
    new_n = n + g * g
    terms = np.abs(z) + np.abs(g) + np.abs(2 * params.get("l2_shrinkage", 0.0) * w) + \
        (new_n ** power + n ** power) / lr * np.abs(w)
    if not linear:
        terms = (terms + np.abs(z)) / (new_n ** power / lr)
    bound = 64 * np.finfo(dtype).eps * terms + 1e-30
    diff = np.abs(np.asarray(actual, np.float64) - expected)
    assert np.all(diff <= bound), (float(np.max(diff - bound)), np.argwhere(diff > bound)[:5].tolist())


def _opt_slots(kind, params, rng, shapes_, dtype):
    """Slot arrays in each kind's domain: non-negative second moments, RMSprop's average with avg^2 <= velocity
    (so centered denominators stay positive in float32 too), Ftrl's accumulator positive."""
    nslots = OPT_SLOTS.get(kind, 1)
    slots = [[np.asarray(np.abs(fz.values(rng, s, dtype))) for s in shapes_] for _ in range(nslots)]
    if kind in ("adam", "nadam", "adamax", "lion"):
        slots[0] = [np.asarray(fz.values(rng, s, dtype)) for s in shapes_]  # first moments have either sign
    if kind == "rmsprop":
        slots[2] = [np.asarray(0.5 * np.sqrt(v) * np.sign(rng.standard_normal(v.shape))).astype(dtype)
                    for v in slots[0]]
    if kind == "ftrl":
        slots[1] = [np.asarray(fz.values(rng, s, dtype)) for s in shapes_]  # the linear term has either sign
    if kind == "adafactor":  # positive moments (v = r / mean(r) * c must stay positive)
        for k in (0, 1):
            slots[k] = [np.asarray(np.abs(fz.values(rng, _adafactor_moment_shape(s, k), dtype)) + 0.1).astype(dtype)
                        for s in shapes_]
    return slots


def _opt_params(data, kind):
    """Hyper-parameters for every kind (each kind reads its own keys), so one draw serves all kinds."""
    params = {"lr": data.draw(st.sampled_from([0.01, 0.1, 1.0] if kind == "ftrl" else [0.01, 0.1, 0.0, 1.0]),
                              label="lr")}
    for key, choices in (("momentum", [0.0, 0.9]), ("nesterov", [0.0, 1.0]), ("amsgrad", [0.0, 1.0]),
                         ("centered", [0.0, 1.0]), ("weight_decay", [0.0, 0.01]), ("clipvalue", [0.0, 0.5]),
                         ("alpha", [0.001, 0.01]), ("rho", [0.9, 0.5]), ("beta1", [0.9, 0.5]),
                         ("beta2", [0.999, 0.9]), ("epsilon", [1e-7, 1e-3])):
        params[key] = data.draw(st.sampled_from(choices), label=key)
    # Nadam: Keras's momentum schedule at step t
    t = data.draw(st.integers(1, 6), label="step")
    u = lambda k: params["beta1"] * (1 - 0.5 * 0.96 ** k)  # noqa: E731
    prod = math.prod(u(k) for k in range(1, t + 1))
    params.update(u_t=u(t), u_t1=u(t + 1), u_prod_t=prod, u_prod_t1=prod * u(t + 1), beta2_power=params["beta2"] ** t,
                  beta1_power=params["beta1"] ** t, local_step=float(t))  # Lamb's and Adafactor's too
    # Ftrl
    for key, choices in (("lr_power", [-0.5, 0.0, -1.0]), ("l1", [0.0, 0.05]), ("l2", [0.0, 0.1]),
                         ("l2_shrinkage", [0.0, 0.02]), ("ftrl_beta", [0.0, 0.3]),
                         ("beta_2_decay", [-0.8, -0.5]), ("epsilon_1", [1e-30, 1e-3]), ("epsilon_2", [1e-3, 0.1]),
                         ("clip_threshold", [1.0, 0.5])):  # Ftrl, Adafactor
        params[key] = data.draw(st.sampled_from(choices), label=key)
    return params


def _used_slots(kind, params, slots):
    """Indices of the slot lists the binding keeps (it drops SGD's momentum list at momentum 0 and RMSprop's at
    momentum <= 0): those take part in the overlap check."""
    dropped = {("sgd", 0)} if params["momentum"] == 0.0 else set()
    if params["momentum"] <= 0.0:
        dropped.add(("rmsprop", 1))
    return [k for k in range(len(slots)) if (kind, k) not in dropped]


@given(st.data())
def test_optimizer_update(data):
    fz.case("optimizer_update")
    rng = _rng(data)
    kind = data.draw(st.sampled_from(sorted(OPT_SLOTS) + ["", "SGD", "adagrad2"]), label="kind")
    dtype = _dtype(data, bad_rate=False)
    count = data.draw(st.sampled_from([1, 2, 0, 3]), label="count")
    shapes_ = [data.draw(fz.shapes(max_dims=3), label=f"shape{i}") for i in range(count)]
    params = _opt_params(data, kind)
    vars_ = [fz.values(rng, s, dtype) for s in shapes_]
    grads = [fz.values(rng, s, dtype) for s in shapes_]
    slots = _opt_slots(kind, params, rng, shapes_, dtype)
    scales = data.draw(st.sampled_from([None, "ones", "half"]), label="scales")
    grad_scales = None if scales is None else [1.0 if scales == "ones" else 0.5] * count
    originals = [v.copy() for v in vars_]
    slot_originals = [[a.copy() for a in lst] for lst in slots]
    args = dict(kind=kind, variables=vars_, grads=grads, slots=slots, grad_scales=grad_scales, params=params)

    corruption = data.draw(st.sampled_from([None] * 8 + [
        "grad_dtype", "grad_shape", "grad_layout", "var_readonly", "var_layout", "count", "slot_missing",
        "slot_count", "alias", "cross_alias", "not_array", "scales_len", "scales_type", "param_type",
        "too_many_slots"]), label="corruption")
    must = None
    if kind not in OPT_SLOTS:
        must = ValueError
    if corruption and count:
        i = data.draw(st.integers(0, count - 1), label="position")
        if corruption == "grad_dtype":
            grads[i] = grads[i].astype(np.float32 if dtype == np.float64 else np.float64)
            must = must or TypeError
        elif corruption == "grad_shape":
            grads[i] = np.zeros(shapes_[i] + (2,), dtype)
            must = must or ValueError
        elif corruption == "grad_layout" and grads[i].ndim and grads[i].size > 1:
            bad = fz.layout(grads[i], data.draw(st.sampled_from(["sliced", "misaligned", "swapped"]), label="bad"))
            grads[i] = bad
            must = must or (TypeError, ValueError)
        elif corruption == "var_readonly":
            vars_[i].flags.writeable = False
            must = must or ValueError
        elif corruption == "var_layout" and vars_[i].ndim and vars_[i].size > 1:
            vars_[i] = fz.layout(vars_[i], data.draw(st.sampled_from(["sliced", "misaligned", "swapped"]), label="bad"))
            must = must or (TypeError, ValueError)
        elif corruption == "count":
            grads.append(grads[0])
            must = must or ValueError
        elif corruption == "slot_missing" and kind in ("adam", "adagrad", "adadelta", "adamax", "nadam", "lion",
                                                       "ftrl", "lamb", "adafactor"):
            args["slots"] = []
            must = must or ValueError
        elif corruption == "slot_count" and (kind != "sgd" or params["momentum"] != 0.0):
            slots[0] = slots[0][:-1]
            must = must or ValueError
        elif corruption == "alias" and vars_[i].size:
            grads[i] = vars_[i]
            must = must or ValueError
        elif corruption == "cross_alias" and vars_[i].size and kind in OPT_SLOTS:
            # An array of another variable (or another slot of the same one) in a place that is written or read:
            # each pair is disjoint from its own variable, so only the all-against-all check catches it.
            targets = [("grad", j) for j in range(count) if j != i and shapes_[j] == shapes_[i]]
            used = [k for k in _used_slots(kind, params, slots) if kind != "adafactor" or k == 2]  # var-shaped
            targets += [("slot", k, j) for k in used for j in range(count) if shapes_[j] == shapes_[i]
                        and (j != i or len(used) > 1)]
            if targets:
                target = data.draw(st.sampled_from(targets), label="cross_target")
                if target[0] == "grad":  # variable j's gradient is variable i itself
                    grads[target[1]] = vars_[i]
                else:  # slot k of variable j is written into variable i's (or another slot's) memory
                    k, j = target[1], target[2]
                    other = [kk for kk in used if kk != k]
                    slots[k][j] = vars_[i] if j != i or not other else slots[other[0]][i]
                must = must or ValueError
        elif corruption == "not_array":
            grads[i] = grads[i].tolist()
            must = must or TypeError
        elif corruption == "scales_len":
            args["grad_scales"] = [1.0] * (count + 1)
            must = must or ValueError
        elif corruption == "scales_type":
            args["grad_scales"] = ["x"] * count
            must = must or TypeError
        elif corruption == "param_type":
            params["lr"] = "fast"
            must = must or TypeError
        elif corruption == "too_many_slots":
            args["slots"] = slots + [slots[0]] * 3
            must = must or ValueError
    if must is not None:
        fz.expect(lambda: _C.optimizer_update(**args), None, None, must_raise=must)
        return

    def check(_, ref):
        rtol, atol = fz.tolerances(dtype)
        for i, (v, v0) in enumerate(zip(vars_, originals)):
            assert v.shape == v0.shape and v.dtype == dtype
            expected, expected_slots = _opt_reference(
                kind, params, v0.astype(np.float64), grads[i].astype(np.float64),
                [lst[i].astype(np.float64) for lst in slot_originals], 1.0 if grad_scales is None else grad_scales[i])
            if kind == "ftrl":  # var = (clip(z) - z) / quadratic: z's rounding error is relative to its terms
                _assert_ftrl_close(v, expected, params, v0, grads[i], [lst[i] for lst in slot_originals], dtype)
            else:
                fz.assert_close(v, expected, rtol * 10, atol * 10)
            for k in _used_slots(kind, params, slots):
                if kind == "ftrl" and k == 1:
                    _assert_ftrl_close(slots[k][i], expected_slots[k], params, v0, grads[i],
                                       [lst[i] for lst in slot_originals], dtype, linear=True)
                else:
                    fz.assert_close(slots[k][i], expected_slots[k], rtol * 10, atol * 10)

    fz.expect(lambda: _C.optimizer_update(**args), lambda: None, check, errors=())
    # A valid draw also checks the values of every other kind on fresh arrays of the same shapes and parameters,
    # so each kind's formula is checked in every valid case, not in one case out of twelve.
    for other in sorted(OPT_SLOTS):
        if other == kind or (other == "ftrl" and params["lr"] == 0.0):
            continue
        _check_kind_values(other, params, shapes_, dtype, rng, grad_scales)


def _check_kind_values(kind, params, shapes_, dtype, rng, grad_scales):
    vars_ = [fz.values(rng, s, dtype) for s in shapes_]
    grads = [fz.values(rng, s, dtype) for s in shapes_]
    slots = _opt_slots(kind, params, rng, shapes_, dtype)
    originals = [v.copy() for v in vars_]
    slot_originals = [[a.copy() for a in lst] for lst in slots]
    _C.optimizer_update(kind, vars_, grads, slots, grad_scales, params)
    rtol, atol = fz.tolerances(dtype)
    for i, v0 in enumerate(originals):
        expected, expected_slots = _opt_reference(
            kind, params, v0.astype(np.float64), grads[i].astype(np.float64),
            [lst[i].astype(np.float64) for lst in slot_originals], 1.0 if grad_scales is None else grad_scales[i])
        own = [lst[i] for lst in slot_originals]
        if kind == "ftrl":
            _assert_ftrl_close(vars_[i], expected, params, v0, grads[i], own, dtype)
            _assert_ftrl_close(slots[1][i], expected_slots[1], params, v0, grads[i], own, dtype, linear=True)
        else:
            fz.assert_close(vars_[i], expected, rtol * 10, atol * 10)
        for k in _used_slots(kind, params, slots):
            if not (kind == "ftrl" and k == 1):
                fz.assert_close(slots[k][i], expected_slots[k], rtol * 10, atol * 10)


@given(st.data())
def test_sum_squares(data):
    fz.case("sum_squares")
    rng = _rng(data)
    arrays = [_array(data, rng, data.draw(fz.shapes(max_dims=3), label=f"shape{i}"), _dtype(data), label=f"a{i}",
                     special_rate=0.0) for i in range(data.draw(st.integers(0, 3), label="count"))]
    if data.draw(st.integers(0, 9), label="not_array") == 9 and arrays:
        arrays[0] = arrays[0].tolist()
        fz.expect(lambda: _C.sum_squares(arrays), None, None, must_raise=TypeError)
        return
    if not all(fz.c_ready(a) for a in arrays):
        fz.expect(lambda: _C.sum_squares(arrays), None, None, must_raise=ERR)
        return

    def check(out, ref):
        assert len(out) == len(ref)
        for o, r, a in zip(out, ref, arrays):
            assert abs(o - r) <= 1e-6 * (r + 1e-30) * max(1, a.size) ** 0.5, (o, r)

    fz.expect(lambda: _C.sum_squares(arrays), lambda: [float(np.sum(a.astype(np.float64) ** 2)) for a in arrays],
              check, errors=())


# -- runtime -------------------------------------------------------------------------------------------------------------

ANY_VALUE = st.one_of(st.integers(-(2**70), 2**70), st.floats(allow_nan=True), st.text(max_size=20), st.none(),
                      st.booleans(), st.just([1]))


@given(st.data())
def test_set_num_threads(data):
    previous = _C.get_num_threads()
    n = data.draw(st.one_of(st.integers(1, 8), st.integers(-5, 2000), ANY_VALUE), label="n")
    fz.case("set_num_threads")
    try:
        if isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= fastnn.backend.MAX_THREADS:
            _C.set_num_threads(n)
            assert _C.get_num_threads() == (n if fastnn.build_info()["openmp"] else 1)
        elif isinstance(n, (int, float)) and not isinstance(n, bool) and not (isinstance(n, float)):
            fz.expect(lambda: _C.set_num_threads(n), None, None, must_raise=(TypeError, ValueError))
        else:
            try:
                _C.set_num_threads(n)  # pybind11 may convert a bool; then it must be a valid count
                assert 1 <= _C.get_num_threads() <= fastnn.backend.MAX_THREADS
            except (TypeError, ValueError):
                pass
        fz.expect(lambda: fastnn.set_num_threads(n), None, None, must_raise=(TypeError, ValueError)) \
            if not (isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 1024) else fastnn.set_num_threads(n)
        x = np.ones((300, 300), np.float32)  # a kernel still runs correctly with the thread count now set
        np.testing.assert_allclose(_C.gemm(x, x), np.full((300, 300), 300.0))
    finally:
        _C.set_num_threads(previous)


@given(st.data())
def test_get_num_threads(data):
    fz.case("get_num_threads")
    assert 1 <= _C.get_num_threads() <= fastnn.backend.MAX_THREADS
    with pytest.raises(TypeError):
        _C.get_num_threads(data.draw(ANY_VALUE, label="extra"))


def _path_setter(data, getter, setter, valid_names):
    previous = getter()
    name = data.draw(st.one_of(st.sampled_from(valid_names), st.text(max_size=12), ANY_VALUE), label="name")
    fz.case(setter.__name__)
    fz.case(getter.__name__)
    try:
        try:
            setter(name)
        except (TypeError, ValueError):
            assert getter() == previous
        else:
            assert name in valid_names
        a = np.arange(12, dtype=np.float32).reshape(3, 4)
        if _C.gemm_path() == "gemv":  # forced GEMV has no matrix-matrix algorithm: it raises instead of running another
            with pytest.raises(ValueError, match="'gemv' needs M == 1 or N == 1"):
                _C.gemm(a, a.T.copy())
        else:
            np.testing.assert_allclose(_C.gemm(a, a.T.copy()), a @ a.T)
        np.testing.assert_allclose(_C.gemm(a[:1], a.T.copy()), a[:1] @ a.T)
        np.testing.assert_allclose(_C.gemm(a, a[:1].T.copy()), a @ a[:1].T)
    finally:
        setter(previous)


@given(st.data())
def test_set_simd_path(data):
    _path_setter(data, _C.simd_path, _C.set_simd_path, fastnn.build_info()["simd_available"] + ["avx2"] *
                 ("avx2+fma" in fastnn.build_info()["simd_available"]))


@given(st.data())
def test_set_gemm_path(data):
    _path_setter(data, _C.gemm_path, _C.set_gemm_path, ["auto", "packed", "direct", "gemv", "prepacked"])


@given(st.data())
def test_set_oversubscription_guard(data):
    _path_setter(data, _C.oversubscription_guard, _C.set_oversubscription_guard, ["auto", "off", "serial"])


@given(st.data())
def test_set_conv2d_winograd(data):
    """Any value: True / False switch the 3x3 convolutions' Winograd path (and return the previous setting), anything
    else raises a TypeError and changes nothing; the convolution's answer is the same either way (to rounding)."""
    start = _C.conv2d_winograd_enabled()
    value = data.draw(st.one_of(st.booleans(), ANY_VALUE), label="enabled")
    fz.case("set_conv2d_winograd")
    fz.case("conv2d_winograd_enabled")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 6, 5, 16)).astype(np.float32)
    k = rng.standard_normal((3, 3, 16, 16)).astype(np.float32)
    want = _C.conv2d_forward_ref(x, k, None, padding="same")
    try:
        if isinstance(value, bool):
            assert _C.set_conv2d_winograd(value) is start
            assert _C.conv2d_winograd_enabled() is value
        else:
            with pytest.raises(TypeError, match="set_conv2d_winograd: expected True or False"):
                _C.set_conv2d_winograd(value)
            assert _C.conv2d_winograd_enabled() is start
        np.testing.assert_allclose(_C.conv2d_forward(x, k, None, padding="same"), want, rtol=1e-4, atol=1e-4)
    finally:
        _C.set_conv2d_winograd(start)


CACHE_SPECS = ["32K,512K,32M", "48K,1M,32M", "32K,256K", "4K,4K,0", (32768, 524288, 33554432), [49152, 2097152],
               None]


@given(st.data())
def test_set_cache_sizes(data):
    """Any value: a valid cache spec changes the blocking and the GEMM stays exact; anything else raises a
    TypeError/ValueError and changes nothing; None restores the start-up sizes."""
    start = _C.cache_sizes()
    spec = data.draw(st.one_of(st.sampled_from(CACHE_SPECS), st.text(max_size=16),
                               st.tuples(st.integers(-2**70, 2**70), st.integers(-2**70, 2**70)),
                               st.lists(st.integers(0, 2**41), max_size=4), ANY_VALUE), label="spec")
    fz.case("set_cache_sizes")
    fz.case("cache_sizes")
    try:
        before = _C.cache_sizes()
        try:
            _C.set_cache_sizes(spec)
        except (TypeError, ValueError):
            assert _C.cache_sizes() == before
        l1, l2, l3 = _C.cache_sizes()
        assert 4096 <= l1 <= l2 and l3 >= 0
        rng = np.random.default_rng(0)
        a = rng.standard_normal((70, 300), dtype=np.float32)
        b = rng.standard_normal((300, 90), dtype=np.float32)
        np.testing.assert_allclose(_C.gemm(a, b), a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)
    finally:
        _C.set_cache_sizes(None)
    assert _C.cache_sizes() == start


VECTOR_MATH = {"exp": np.exp, "expm1": np.expm1, "log": np.log, "log1p": np.log1p, "tanh": np.tanh,
               "sigmoid": lambda x: 1 / (1 + np.exp(-x))}


@given(st.data())
def test_vector_math(data):
    rng = _rng(data)
    dtype = _dtype(data)
    x = _array(data, rng, data.draw(fz.shapes(), label="shape"), dtype, scale=30.0)
    name = data.draw(st.one_of(st.sampled_from(sorted(VECTOR_MATH)),
                               st.sampled_from(["", "EXP", "erf", "softmax", "x" * 200])), label="name")
    valid = fz.c_ready(x) and name in VECTOR_MATH
    fz.case("vector_math")
    if not valid:
        must = ERR if not fz.dtype_ok(x) and name not in VECTOR_MATH else \
            TypeError if not fz.dtype_ok(x) else ValueError
        fz.expect(lambda: _C.vector_math(x, name), None, None, must_raise=must)
        return

    def check(out, ref):
        assert out.dtype == dtype and out.shape == x.shape
        rtol, atol = fz.tolerances(dtype)
        with np.errstate(all="ignore"):
            fz.assert_close(out, ref.astype(dtype), rtol, atol)

    def reference():
        with np.errstate(all="ignore"):
            return VECTOR_MATH[name](fz.daz(x, dtype))

    fz.expect(lambda: _C.vector_math(x, name), reference, check, errors=())


@given(st.data())
def test_build_info(data):
    fz.case("build_info")
    info = _C.build_info()
    assert {"version", "openmp", "cuda", "simd", "compiler", "num_threads"} <= set(info)
    with pytest.raises(TypeError):
        _C.build_info(data.draw(ANY_VALUE, label="extra"))


# -- the registry ------------------------------------------------------------------------------------------------------

FUZZ_TARGETS = {
    "gemm": test_gemm, "gemm_ref": test_gemm_ref, "batched_matmul": test_batched_matmul,
    "activation_forward": test_activation_forward, "activation_backward": test_activation_backward,
    "softmax_forward": test_softmax_forward, "softmax_backward": test_softmax_backward,
    "log_softmax_forward": test_log_softmax_forward, "log_softmax_backward": test_log_softmax_backward,
    "sparse_xent_forward": test_sparse_xent_forward, "sparse_xent_backward": test_sparse_xent_backward,
    "dense_xent_forward": test_dense_xent_forward, "dense_xent_backward": test_dense_xent_backward,
    "bias_add_forward": test_bias_add_forward, "bias_add_backward": test_bias_add_backward,
    "set_num_threads": test_set_num_threads, "get_num_threads": test_get_num_threads,
    "set_simd_path": test_set_simd_path, "simd_path": test_set_simd_path,
    "set_gemm_path": test_set_gemm_path, "gemm_path": test_set_gemm_path, "build_info": test_build_info,
    "set_cache_sizes": test_set_cache_sizes, "cache_sizes": test_set_cache_sizes,
    "set_oversubscription_guard": test_set_oversubscription_guard,
    "oversubscription_guard": test_set_oversubscription_guard,
    "set_conv2d_winograd": test_set_conv2d_winograd, "conv2d_winograd_enabled": test_set_conv2d_winograd,
    "optimizer_update": test_optimizer_update, "sum_squares": test_sum_squares, "vector_math": test_vector_math,
}
# The broadcasting elementwise and reduction bindings (bind_binary.cpp) are fuzzed in test_fuzz_binary.py (this
# file is imported by path under --import-mode=importlib, so the targets are named by file there).
FUZZ_TARGETS.update(dict.fromkeys(
    ("binary", "compare", "where", "clip", "relu_mask_multiply", "dropout_mask_multiply", "reduce_sum", "reduce_mean",
     "reduce_max", "unbroadcast"), "tests/fuzz/test_fuzz_binary.py"))
FUZZ_TARGETS.update(dict.fromkeys(
    ("conv2d_forward", "conv2d_forward_ref", "conv2d_backward_input", "conv2d_backward_input_ref",
     "conv2d_backward_weight", "conv2d_backward_weight_ref", "conv_same_padding", "depthwise_conv2d_forward",
     "depthwise_conv2d_forward_ref", "depthwise_conv2d_backward_input", "depthwise_conv2d_backward_input_ref",
     "depthwise_conv2d_backward_weight", "depthwise_conv2d_backward_weight_ref"), "tests/fuzz/test_fuzz_conv.py"))


# The pooling and batch-normalization bindings (bind_pool.cpp, bind_batchnorm.cpp): test_fuzz_pool.py.
FUZZ_TARGETS.update(dict.fromkeys(
    ("max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward",
     "global_avg_pool2d_forward", "global_avg_pool2d_backward", "global_max_pool2d_forward",
     "global_max_pool2d_backward", "batch_norm_train_forward", "batch_norm_inference_forward", "batch_norm_backward"),
    "tests/fuzz/test_fuzz_pool.py"))
# The embedding bindings (bind_embedding.cpp): test_fuzz_embedding.py.
FUZZ_TARGETS.update(dict.fromkeys(("embedding_gather", "embedding_scatter_add"), "tests/fuzz/test_fuzz_embedding.py"))
# Adam's embedding-table step (bind_optimizer.cpp adam_rows_update): test_fuzz_adam_rows.py.
FUZZ_TARGETS.update(dict.fromkeys(("adam_rows_update",), "tests/fuzz/test_fuzz_adam_rows.py"))

# The recurrence bindings (bind_rnn.cpp): test_fuzz_rnn.py.
FUZZ_TARGETS.update(dict.fromkeys(("rnn_forward", "rnn_forward_ref", "rnn_backward", "rnn_backward_ref"),
                                  "tests/fuzz/test_fuzz_rnn.py"))


def test_every_binding_has_a_fuzz_target():
    public = {name for name in dir(_C) if not name.startswith("_")}
    missing = sorted(public - set(FUZZ_TARGETS))
    assert not missing, f"fastnn._C functions without a fuzz target in tests/fuzz (add one to FUZZ_TARGETS): {missing}"
    assert not sorted(set(FUZZ_TARGETS) - public), "FUZZ_TARGETS names functions fastnn._C no longer has"
