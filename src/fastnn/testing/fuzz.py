"""The shared fuzzing harness behind ``tests/fuzz`` (needs ``hypothesis``, the ``test`` extra).

Every Python entry point into C++ is called with random shapes (0, 1, primes, occasionally large), dtypes
(float32 / float64, and int, float16, bool, complex, object that must raise TypeError), memory layouts (C order,
padded rows, transposed, sliced, negative strides, zero-stride broadcasts, misaligned and byte-swapped buffers),
NaN / inf / signed zeros / denormals, mismatched arguments and out-of-range hyper-parameters. Each call must either
return the NumPy reference's answer or raise the documented exception type (``TypeError`` for dtypes,
``ValueError`` for shapes, strides, aliasing and values); anything else, a crash included, fails the run.

Budgets are hypothesis settings profiles chosen by the ``FASTNN_FUZZ`` environment variable:

- ``ci`` (default): derandomized (the same cases every run), ~100 cases per ``_C`` function and ~20 per op row,
  a few thousand cases in all;
- ``sanitize``: the same, with fewer cases, for the run under ASan/UBSan (``.ci/sanitize``);
- ``long``: random seeds, 25x the cases and larger arrays, for an opt-in soak (``FASTNN_FUZZ=long pytest tests/fuzz``).

``COUNTS`` records the cases each target ran; ``tests/fuzz/conftest.py`` prints them (and writes them to the JSON file
named by ``FASTNN_FUZZ_REPORT``).
"""
from __future__ import annotations

import collections
import math
import os
from dataclasses import dataclass

import numpy as np
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

PROFILE = os.environ.get("FASTNN_FUZZ", "ci")
# No "explain" phase: it imports libcst (a native extension that LeakSanitizer reports at exit) and adds nothing to
# a failure report that the printed draws and the reproduce blob do not already give.
_COMMON = dict(deadline=None, suppress_health_check=list(HealthCheck), print_blob=True,
               phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink])
settings.register_profile("ci", max_examples=100, derandomize=True, database=None, **_COMMON)
settings.register_profile("sanitize", max_examples=25, derandomize=True, database=None, **_COMMON)
settings.register_profile("long", max_examples=2500, derandomize=False, database=None, **_COMMON)
if PROFILE not in ("ci", "sanitize", "long"):
    raise ValueError(f"FASTNN_FUZZ must be one of ci, sanitize, long, but is {PROFILE!r}")
settings.load_profile(PROFILE)


def examples(factor: float, at_least: int = 1) -> int:
    """``factor`` times the profile's cases per target, and at least ``at_least`` (for targets with more branches to
    reach: the small sanitizer budget still reaches them)."""
    return max(at_least, int(settings.get_profile(PROFILE).max_examples * factor))

# Largest number of elements one fuzzed array may have (the long profile goes further).
MAX_ELEMENTS = 1 << 20 if PROFILE == "long" else 1 << 16
# Cases run per target in this process: {target name: count}; RAISED: how many of them raised (as documented).
COUNTS: collections.Counter = collections.Counter()
RAISED: collections.Counter = collections.Counter()
_current = [""]


def case(target: str) -> None:
    """Counts one case of ``target`` (call at the start of each example)."""
    COUNTS[target] += 1
    _current[0] = target

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
BAD_DTYPES = (np.dtype(np.int32), np.dtype(np.int64), np.dtype(np.float16), np.dtype(np.bool_),
              np.dtype(np.complex64), np.dtype(object), np.dtype(np.longdouble))
SPECIALS = (np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-40, -1e-310, 1e30, -1e30)

# Sizes the shapes draw from: edges (0, 1), primes that cross tile and block sizes, powers of two and neighbours.
SMALL_SIZES = (0, 1, 1, 2, 3, 5, 7, 8, 13, 16, 17, 31, 33, 64)
LARGE_SIZES = (127, 257, 509, 1021, 1031, 2053, 4099)


def size(large_weight: int = 1):
    """A dimension: mostly small, sometimes large."""
    return st.one_of(st.sampled_from(SMALL_SIZES), st.sampled_from(LARGE_SIZES)) if large_weight else \
        st.sampled_from(SMALL_SIZES)


def gemm_blocking(dtype) -> dict:
    """The active GEMM kernel set's register tile and cache blocks for ``dtype`` (build_info's ``gemm_blocking``)."""
    import fastnn

    return fastnn.build_info()["gemm_blocking"][np.dtype(dtype).name]


def gemm_block_sizes(dtype):
    """Dimensions either side of the active kernel set's tile and block edges (MR, NR, MC, KC, NC): what the packed
    path's edge tiles, several KC slices and NC blocks, and column splits need."""
    blk = gemm_blocking(dtype)
    edges = sorted({v + d for v in (blk["mr"], 2 * blk["nr"], blk["mc"], blk["kc"], blk["nc"]) for d in (-1, 1, 3)})
    return st.sampled_from([e for e in edges if e > 0])


def gemm_branches(path, m, n, k, dtype, a, b, trans_a, trans_b, threads=None):
    """The GEMM driver's branches (csrc/cpu/gemm.cpp) a valid call of op(a) (m x k) @ op(b) (k x n) takes, for the
    coverage counts: only where the path is known without the L2 size (forced, or vector-shaped)."""
    import fastnn

    if m == 0 or n == 0 or k == 0:
        return []
    threads = fastnn.get_num_threads() if threads is None else threads
    if path == "gemv" or (path == "auto" and (m == 1 or n == 1)):
        return ["gemv"]
    if path == "direct":
        return ["direct"]
    if path == "prepacked":
        blk = gemm_blocking(dtype)
        return ["prepacked"] + (["prepacked: several KC slices"] if k > blk["kc"] else []) + \
            (["prepacked: several NC blocks"] if n > blk["nc"] else [])
    if path != "packed":
        return []
    blk = gemm_blocking(dtype)
    out = ["packed"]
    if k > blk["kc"]:
        out.append("packed: several KC slices")
    if n > blk["nc"]:
        out.append("packed: several NC blocks")
    if 2.0 * m * n * k >= 2.0e5 and threads > 1:  # kMinParallelFlops: below it the packed path uses one thread
        m_blocks = -(-m // blk["mc"])
        if m >= threads * 4 * blk["mr"]:
            m_blocks = -(-m_blocks // threads) * threads
        mc = -(-(-(-m // m_blocks)) // blk["mr"]) * blk["mr"]
        m_blocks = -(-m // mc)
        if m_blocks < threads and min(n, blk["nc"]) > blk["nr"]:
            out.append("packed: columns split across threads")
    for x, rows in ((a, k if trans_a else m), (b, n if trans_b else k)):
        if x.ndim == 2 and rows > 1:
            if x.strides[0] == 0:
                out.append("packed: zero row stride")
            elif x.strides[0] < 0:
                out.append("packed: negative row stride")
    return out


@st.composite
def shapes(draw, min_dims=0, max_dims=4):
    """A shape whose element count stays under MAX_ELEMENTS (one axis may be large)."""
    # sampled_from, not integers: hypothesis favours the first choice, and 0-D arrays should not dominate.
    nd = draw(st.sampled_from([d for d in (2, 1, 3, 2, 4, 0) if min_dims <= d <= max_dims]))
    dims = [draw(size()) for _ in range(nd)]
    # The cap counts zero-length axes as 1: a (31, 4099, 4099, 0) array is empty, but references that reduce its
    # last axis (softmax's row max) would still materialise 31 * 4099 * 4099 values.
    while int(np.prod([max(d, 1) for d in dims], dtype=np.int64)) > MAX_ELEMENTS:
        i = int(np.argmax(dims))
        dims[i] = max(1, dims[i] // 4)
    return tuple(dims)


def values(rng, shape, dtype, special_rate=0.0, scale=3.0):
    """Random values of ``shape`` in ``dtype``; a fraction ``special_rate`` replaced by NaN, inf, +-0, denormals,
    huge values."""
    assert int(np.prod(shape, dtype=np.int64)) <= 16 * MAX_ELEMENTS, f"fuzz harness: shape {shape} is over budget"
    x = np.asarray(rng.standard_normal(shape) * scale)
    if special_rate and x.size:
        mask = np.asarray(rng.random(shape) < special_rate)
        x[mask] = rng.choice(np.array(SPECIALS), size=int(mask.sum()))
    with np.errstate(over="ignore"):
        return x.astype(dtype)


LAYOUTS = ("c", "c", "rows", "neg", "f", "sliced", "bcast", "misaligned", "swapped")


def layout(x: np.ndarray, kind: str) -> np.ndarray:
    """A view (or copy) of ``x`` with the same values and shape in memory layout ``kind``:

    c: C order; rows: rows padded (row stride above the width, last axis contiguous); neg: negative strides on every
    axis; negrows: negative stride on the first axis only; f: Fortran order (transposed storage); sliced: every other element along the last axis; bcast: a
    zero-stride broadcast along the first axis (read-only; only when the values repeat along it, otherwise C order);
    misaligned: the data one byte off its alignment; swapped: byte-swapped dtype.
    """
    if x.dtype.hasobject and kind in ("misaligned", "swapped"):
        return x
    if x.ndim == 0:
        return x.copy()
    if kind == "c":
        return np.ascontiguousarray(x)
    if kind == "rows":
        pad = np.zeros(x.shape[:-1] + (x.shape[-1] + 3,), x.dtype)
        pad[..., :x.shape[-1]] = x
        return pad[..., :x.shape[-1]]
    if kind == "neg":
        flipped = np.ascontiguousarray(x[(slice(None, None, -1),) * x.ndim])
        return flipped[(slice(None, None, -1),) * x.ndim]
    if kind == "negrows":
        return np.ascontiguousarray(x[::-1])[::-1]
    if kind == "f":
        return np.asfortranarray(x)
    if kind == "sliced":
        big = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), x.dtype)
        big[..., ::2] = x
        return big[..., ::2]
    if kind == "bcast":
        if x.shape[0] > 1 and x.size and np.array_equal(x, np.broadcast_to(x[:1], x.shape),
                                                       equal_nan=x.dtype.kind in "fc"):
            return np.broadcast_to(x[:1], x.shape)
        return x
    if kind == "misaligned":
        raw = np.zeros(x.nbytes + 2 * x.itemsize, np.uint8)
        out = raw[1:1 + x.nbytes].view(x.dtype).reshape(x.shape)
        out[...] = x
        return out
    if kind == "swapped":
        return x.astype(x.dtype.newbyteorder("S"))
    raise ValueError(kind)


def repeat_rows(x: np.ndarray) -> np.ndarray:
    """x with every index of axis 0 equal to index 0 (so a zero-stride broadcast view reproduces it)."""
    if x.ndim and x.shape[0] > 1:
        x[...] = x[:1]
    return x


def draw_rng(data):
    """A NumPy generator seeded from the hypothesis draw (so a failing example replays exactly)."""
    return np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))


def draw_dtype(data):
    """Mostly float32 / float64, sometimes a dtype the bindings must refuse."""
    return data.draw(st.sampled_from(FLOATS * 25 + BAD_DTYPES), label="dtype")


def draw_array(data, rng, shape, dtype, label):
    """An array of `shape` and `dtype` for a binding's argument: float values with occasional specials
    (values()), object or integer arrays for refused dtypes, in a C-contiguous layout most of the time and
    otherwise one of LAYOUTS (strided, transposed, broadcast, misaligned, byte-swapped, ...)."""
    rate = data.draw(st.sampled_from([0.0, 0.0, 0.05, 0.3]), label=f"{label}_special_rate")
    kind = data.draw(st.sampled_from(("c",) * 40 + LAYOUTS), label=f"{label}_layout")
    if dtype in FLOATS:
        x = values(rng, shape, dtype, rate)
    elif dtype == np.dtype(object):
        x = np.empty(shape, object)
        x[...] = 1.5
    else:
        x = np.asarray(rng.integers(0, 2, size=shape)).astype(dtype)
    if kind == "bcast":
        x = repeat_rows(x)
    return layout(x, kind)


def pool_windows(x, pool, strides, pads, fill):
    """The NumPy reference of the pooling kernels: every window of x (N, H, W, C) as (N, OH, OW, ph * pw, C) float64,
    padded with ``fill`` (pads = (top, bottom, left, right)), and the flat input index of each window position (-1 for
    padding)."""
    n, h, w, c = x.shape
    t, b, l, r = pads
    xp = np.full((n, h + t + b, w + l + r, c), fill, np.float64)
    xp[:, t:t + h, l:l + w] = x
    idx = np.full(xp.shape, -1, np.int64)
    idx[:, t:t + h, l:l + w] = np.arange(x.size).reshape(x.shape)
    oh = (h + t + b - pool[0]) // strides[0] + 1
    ow = (w + l + r - pool[1]) // strides[1] + 1
    win = np.empty((n, oh, ow, pool[0] * pool[1], c))
    iwin = np.empty(win.shape, np.int64)
    for i in range(oh):
        for j in range(ow):
            rows = slice(i * strides[0], i * strides[0] + pool[0])
            cols = slice(j * strides[1], j * strides[1] + pool[1])
            win[:, i, j] = xp[:, rows, cols].reshape(n, pool[0] * pool[1], c)
            iwin[:, i, j] = idx[:, rows, cols].reshape(n, pool[0] * pool[1], c)
    return win, iwin


def c_ready(*arrays) -> bool:
    """What the elementwise bindings accept: C-contiguous, aligned, native float32/float64."""
    return all(a.dtype in FLOATS and a.dtype.isnative and a.flags.c_contiguous and a.flags.aligned for a in arrays)


def dtype_ok(*arrays) -> bool:
    return all(a.dtype in FLOATS and a.dtype.isnative for a in arrays)


def expect(call, reference, check, *, errors=(TypeError, ValueError), must_raise=None):
    """Runs ``call()``. With ``must_raise`` (an exception type or tuple) the call must raise it. Otherwise the
    call must return a result that ``check(result, reference())`` accepts, or raise one of ``errors`` when
    ``errors`` is not empty (callers pass ``errors=()`` for valid input). Returns the result or None."""
    if must_raise is not None:
        try:
            call()
        except must_raise:
            RAISED[_current[0]] += 1
            return None
        except Exception as exc:  # noqa: BLE001 - the wrong exception type is the finding
            raise AssertionError(f"expected {must_raise}, but the call raised {type(exc).__name__}: {exc}") from exc
        raise AssertionError(f"expected {must_raise}, but the call returned normally")
    try:
        out = call()
    except errors:
        RAISED[_current[0]] += 1
        return None
    check(out, reference())
    return out


def assert_close(actual, expected, rtol, atol):
    """assert_allclose with NaN in the same places, infinities equal, and a shape and dtype-kind check."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    a = actual.astype(np.float64)
    e = expected.astype(np.float64)
    nan_a, nan_e = np.isnan(a), np.isnan(e)
    if not np.array_equal(nan_a, nan_e):
        idx = np.argwhere(nan_a != nan_e)[:5].tolist()
        raise AssertionError(f"NaN pattern differs at {idx}: actual {a[tuple(np.array(idx).T)]}, "
                             f"expected {e[tuple(np.array(idx).T)]}")
    np.testing.assert_allclose(a[~nan_a], e[~nan_e], rtol=rtol, atol=atol)


def tolerances(dtype):
    """(rtol, atol) of a float32 / float64 kernel result against a float64 reference of the same formula."""
    return (2e-5, 1e-6) if np.dtype(dtype) == np.float32 else (1e-11, 1e-13)


def daz(x, dtype):
    """x (float64) with the values that are denormal in ``dtype`` replaced by signed zeros: the kernels run with
    denormals-are-zero (DAZ/FTZ, see parallel.h), so such inputs count as zero there."""
    tiny = np.finfo(dtype).tiny
    x = np.array(x, np.float64)
    small = np.abs(x) < tiny
    x[small] = np.copysign(0.0, x[small])
    return x


# -- NumPy references of the elementwise kernels (float64, the kernels' formulas) --------------------------------------
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
_C0 = math.sqrt(2 / math.pi)
_erf = np.vectorize(math.erf, otypes=[np.float64])


def sigmoid(x):
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def act_forward(name, x, alpha):
    with np.errstate(all="ignore"):
        if name == "relu":
            return np.where(x < 0, 0.0, x)
        if name == "relu6":
            return np.where(x < 0, 0.0, np.where(x > 6, 6.0, x))
        if name == "sigmoid":
            return sigmoid(x)
        if name == "tanh":
            return np.tanh(x)
        if name == "elu":
            return np.where(x > 0, x, alpha * np.expm1(x))
        if name == "selu":
            return SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(x))
        if name == "gelu":
            return 0.5 * x * (1 + _erf(x / math.sqrt(2)))
        if name == "gelu_tanh":
            return x * sigmoid(2 * _C0 * (x + 0.044715 * x**3))
        if name == "silu":
            return x * sigmoid(x)
        if name == "leaky_relu":
            return np.where(x < 0, alpha * x, x)
        if name == "softplus":
            return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))
        if name == "softsign":
            return x / (1 + np.abs(x))
        if name == "hard_sigmoid":
            v = x + 3
            return np.where(v < 0, 0.0, np.where(v > 6, 6.0, v)) / 6
    raise ValueError(name)


def act_backward(name, dy, x, y, alpha):
    with np.errstate(all="ignore"):
        if name == "relu":
            return np.where(x > 0, dy, 0.0)
        if name == "relu6":
            return np.where((x > 0) & (x < 6), dy, 0.0)
        if name == "sigmoid":
            return dy * y * (1 - y)
        if name == "tanh":
            return dy * (1 - y * y)
        if name == "elu":
            return np.where(x > 0, dy, dy * (y + alpha))
        if name == "selu":
            return np.where(x >= 0, dy * SELU_SCALE, dy * (y + SELU_SCALE * SELU_ALPHA))  # TF: scale at 0
        if name == "gelu":
            cdf = 0.5 * (1 + _erf(x / math.sqrt(2)))
            return dy * (cdf + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi))
        if name == "gelu_tanh":
            s = sigmoid(2 * _C0 * (x + 0.044715 * x**3))
            d = dy * (s + 2 * x * s * (1 - s) * _C0 * (1 + 3 * 0.044715 * x * x))
            return np.where(np.abs(x) > 30, np.where(x > 0, dy, 0.0 * dy), d)  # the limits, where s(1-s) = 0
        if name == "silu":
            s = sigmoid(x)
            return dy * s * (1 + x * (1 - s))
        if name == "leaky_relu":
            return np.where(x > 0, dy, dy * alpha)
        if name == "softplus":
            return dy * sigmoid(x)
        if name == "softsign":
            return dy / (1 + np.abs(x)) ** 2
        if name == "hard_sigmoid":
            return np.where((x > -3) & (x < 3), dy / 6, 0.0)
    raise ValueError(name)


ACTIVATIONS = ("relu", "relu6", "sigmoid", "tanh", "elu", "selu", "gelu", "gelu_tanh", "silu", "leaky_relu",
               "softplus", "softsign", "hard_sigmoid")


def row_max(x):
    """Max over the last axis, NaN when the row has a NaN, -inf for an empty row."""
    if x.shape[-1] == 0:
        return np.full(x.shape[:-1] + (1,), -np.inf)
    return np.max(x, axis=-1, keepdims=True)


def log_softmax(x):
    with np.errstate(all="ignore"):
        m = row_max(x)
        return x - (m + np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True)))


def softmax(x):
    with np.errstate(all="ignore"):
        m = row_max(x)
        e = np.exp(x - m)
        return e / np.sum(e, axis=-1, keepdims=True)


def lse(x):
    with np.errstate(all="ignore"):
        m = row_max(x)
        return (m + np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True)))[..., 0]


@dataclass
class Target:
    """One fuzz target: a name (a ``fastnn._C`` function or a public op) and its hypothesis test."""

    name: str
    test: object
