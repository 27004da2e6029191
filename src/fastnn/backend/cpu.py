"""The CPU backend: buffers are NumPy arrays in host memory; the math is fastnn's C++ kernels or NumPy.

This module and ``fastnn.backend`` are the only places (with the user boundary: converting inputs, ``numpy()``
out) where fastnn touches NumPy. Callers never import it: they call ``fastnn.backend.<name>``, which is this
module's function of that name unless another backend (the test-only wrapped backend, later CUDA) is active.
Each function may be a C++ kernel or a NumPy call, whichever is faster; the callers cannot tell.

Conventions every backend follows (so callers can be written once):
- A *buffer* is the backend's array type. It has ``.shape``, ``.dtype`` (a NumPy dtype object: dtypes are
  metadata, shared by every backend), ``.ndim`` and ``.size``; nothing else about it is public. Math, indexing,
  conversion and copies go through the functions here (``getitem``, ``astype``, ``item``, ...), never through
  operators or methods on the buffer.
- Functions named as in NumPy behave as the NumPy function of that name (arguments, broadcasting, dtype rules,
  ``out=`` where NumPy has it). Full reductions may return a 0-D buffer or a scalar of the buffer's dtype.
- Python scalars (and NumPy scalars) are accepted wherever a buffer is; host arrays are not: convert them with
  ``asarray`` first.
"""
from __future__ import annotations

import contextlib
import numbers
import sys

import numpy as np

try:
    from fastnn import _C
except ImportError as exc:  # pragma: no cover - only without a build
    raise ImportError(
        "fastnn's compiled extension (fastnn._C) could not be imported: install the package with "
        "`pip install .` from the project root (a source checkout alone has no compiled kernels). "
        f"Original error: {exc}"
    ) from exc

name = "cpu"
device = "cpu"

# ---------------------------------------------------------------------------------------------------------------
# Functions that are NumPy's own, with NumPy's semantics. Bound directly (no wrapper call on the hot path).
# ---------------------------------------------------------------------------------------------------------------
_NUMPY_FUNCTIONS = """
add subtract multiply divide true_divide floor_divide remainder mod power negative positive abs absolute sign sqrt
square reciprocal exp exp2 expm1 log log2 log10 log1p sin cos tan arcsin arccos arctan arctan2 sinh cosh tanh
arcsinh arccosh arctanh maximum minimum fmax fmin equal not_equal less less_equal greater greater_equal logical_and
logical_or logical_not logical_xor isnan isinf isfinite floor ceil rint trunc logaddexp copysign signbit hypot
nan_to_num isclose allclose array_equal
where clip sum mean prod max min amax amin argmax argmin any all cumsum cumprod var std median quantile bincount
count_nonzero sort argsort searchsorted nonzero flatnonzero argwhere unique unravel_index
take take_along_axis put_along_axis concatenate stack split array_split flip tile repeat pad reshape transpose
moveaxis swapaxes expand_dims squeeze broadcast_to broadcast_arrays diag diagonal tril triu roll trace
eye identity arange linspace zeros ones full empty zeros_like ones_like full_like empty_like
matmul dot outer tensordot einsum copyto shares_memory
broadcast_shapes result_type promote_types
""".split()
globals().update({_n: getattr(np, _n) for _n in _NUMPY_FUNCTIONS})
round = np.round  # noqa: A001 - NumPy's name, as keras.ops.round
errstate = np.errstate  # floating-point warning control for a block of backend calls (a context manager)


# ---------------------------------------------------------------------------------------------------------------
# Storage, conversion and indexing (what NumPy spells as methods or syntax on an array).
# ---------------------------------------------------------------------------------------------------------------
def asarray(data, dtype=None):
    """A buffer holding ``data`` (host data: lists, scalars, NumPy arrays). No copy when it already is a buffer
    of that dtype. This is the way in for user data."""
    return np.asarray(data, dtype=dtype)


def array(data, dtype=None, copy=True):
    """A buffer with its own copy of ``data`` in C order (host data or a buffer)."""
    return np.array(data, dtype=dtype, copy=copy, order="C")


def to_numpy(buffer) -> np.ndarray:
    """The buffer as a NumPy array (zero-copy on the CPU). This is the way out to the user."""
    return buffer if isinstance(buffer, np.ndarray) else np.asarray(buffer)


def is_buffer(x) -> bool:
    """Whether ``x`` is this backend's buffer type."""
    return isinstance(x, np.ndarray)


def item(buffer):
    """The one element of a buffer as a Python scalar (float, int or bool)."""
    return buffer.item()


def tolist(buffer):
    """The buffer as (nested) Python lists of Python scalars."""
    return buffer.tolist()


def astype(buffer, dtype, copy=True):
    """The buffer converted to ``dtype`` (the buffer itself when ``copy=False`` and it already has it)."""
    return buffer.astype(dtype, copy=copy)


def copy(buffer):
    """A C-ordered copy of the buffer."""
    return np.array(buffer, copy=True, order="C")


def contiguous(buffer):
    """The buffer in C order (the buffer itself when it already is; 0-D stays 0-D)."""
    return buffer if buffer.flags.c_contiguous else np.ascontiguousarray(buffer).reshape(buffer.shape)


def is_contiguous(buffer) -> bool:
    return buffer.flags.c_contiguous


def is_writeable(buffer) -> bool:
    """False for read-only buffers (broadcast views, read-only user arrays)."""
    return buffer.flags.writeable


def native(buffer):
    """The buffer itself, or a copy when it is byte-swapped or misaligned: the C++ kernels read native, aligned
    values (a byte-swapped float32 is still a float32 to Keras, so it is converted, not rejected)."""
    if not buffer.dtype.isnative:
        return buffer.astype(buffer.dtype.newbyteorder("="))
    if not buffer.flags.aligned:
        return buffer.copy()
    return buffer


def getitem(buffer, key):
    """``buffer[key]`` with NumPy's basic and advanced indexing (basic indexing returns a view)."""
    return buffer[key]


def setitem(buffer, key, value) -> None:
    """``buffer[key] = value`` in place."""
    buffer[key] = value


def scatter_add(buffer, indices, values) -> None:
    """``buffer[indices] += values`` in place, accumulating repeated indices (NumPy's ``add.at``)."""
    np.add.at(buffer, indices, values)


def unbroadcast(g, shape):
    """Sums ``g`` (of a broadcast shape) down to ``shape``: the backward of broadcasting."""
    shape = tuple(shape)
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    if lead > 0:
        g = g.sum(axis=tuple(range(lead)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


# Copy-on-write support for Variables (autograd/tensor.py): a Variable may update its buffer in place only when
# nothing else can see it.
def private_refcount(buffer) -> int:
    """The reference count of the buffer's storage object (compared against a baseline measured at import)."""
    return sys.getrefcount(buffer) - 1


def is_private_layout(buffer) -> bool:
    """Whether the buffer owns its memory, is writeable and C-ordered (no view, no read-only or strided data)."""
    return buffer.base is None and buffer.flags.writeable and buffer.flags.c_contiguous


# ---------------------------------------------------------------------------------------------------------------
# Random numbers. A generator is an opaque object of the backend; draws come back as buffers.
# ---------------------------------------------------------------------------------------------------------------
def random_generator(seed=None):
    """A random generator (NumPy's PCG64 on the CPU) seeded with ``seed`` (an int, or None for fresh entropy)."""
    return np.random.default_rng(seed)


def random_uniform(generator, shape, dtype, low=0.0, high=1.0):
    return generator.uniform(low, high, size=shape).astype(dtype, copy=False)


def random_normal(generator, shape, dtype, mean=0.0, stddev=1.0):
    return (generator.standard_normal(size=shape) * stddev + mean).astype(dtype, copy=False)


def random_integers(generator, low, high, shape, dtype="int64"):
    return generator.integers(low, high, size=shape).astype(dtype, copy=False)


def random_permutation(generator, n):
    return generator.permutation(n)


def is_random_generator(x) -> bool:
    """Whether ``x`` is a generator made by :func:`random_generator`."""
    return isinstance(x, np.random.Generator)


def random_generator_state(generator) -> dict:
    """The generator's complete state as plain data (str / int in dicts: JSON-serializable), so a resumed run can
    continue the exact stream (``set_random_generator_state``)."""
    state = generator.bit_generator.state
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in state.items()}


def set_random_generator_state(generator, state) -> None:
    """Puts ``generator`` in ``state`` (from :func:`random_generator_state`, possibly through JSON): its next draws
    are those the generator that state was taken from made after that point."""
    kind = type(generator.bit_generator).__name__
    if not isinstance(state, dict) or state.get("bit_generator") != kind:
        got = state.get("bit_generator") if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"set_random_generator_state: expected the state of a {kind} generator, but received {got!r}")
    try:
        generator.bit_generator.state = state
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"set_random_generator_state: invalid {kind} state: {exc}") from exc


# ---------------------------------------------------------------------------------------------------------------
# fastnn's C++ kernels (csrc/). Inputs must be C-contiguous float32/float64 buffers unless stated.
# ---------------------------------------------------------------------------------------------------------------
gemm = _C.gemm
gemm_ref = _C.gemm_ref
gemm_path = _C.gemm_path
set_gemm_path = _C.set_gemm_path
batched_matmul = _C.batched_matmul

activation_forward = _C.activation_forward
activation_backward = _C.activation_backward
softmax_forward = _C.softmax_forward
softmax_backward = _C.softmax_backward
log_softmax_forward = _C.log_softmax_forward
log_softmax_backward = _C.log_softmax_backward
sparse_xent_forward = _C.sparse_xent_forward
sparse_xent_backward = _C.sparse_xent_backward
dense_xent_forward = _C.dense_xent_forward
dense_xent_backward = _C.dense_xent_backward
bias_add_forward = _C.bias_add_forward
bias_add_backward = _C.bias_add_backward

optimizer_update = _C.optimizer_update
adam_rows_update = _C.adam_rows_update  # Adam on an embedding table with Keras's per-lookup squares
sum_squares = _C.sum_squares

simd_path = _C.simd_path
set_simd_path = _C.set_simd_path
oversubscription_guard = _C.oversubscription_guard
set_oversubscription_guard = _C.set_oversubscription_guard


def build_info() -> dict:
    """Facts about this build of fastnn and the kernels chosen for this CPU.

    Returns:
        dict with ``version``, ``openmp`` (bool), ``cuda`` (bool), ``simd`` (the active kernel path:
        ``"avx512"``, ``"avx2+fma"`` or ``"generic"``), ``simd_available`` (paths this CPU can run),
        ``simd_compiled``, ``cpu_avx2_fma``, ``cpu_avx512``, ``compiler``, ``build_type`` and
        ``num_threads``.

    Example:
        >>> fastnn.build_info()["simd"]
        'avx2+fma'
    """
    return dict(_C.build_info())


MAX_THREADS = 1024  # csrc/include/fastnn/parallel.h kMaxThreads


def get_num_threads() -> int:
    """The number of threads fastnn's kernels use (OMP_NUM_THREADS or the core count by default)."""
    return _C.get_num_threads()


def set_num_threads(n: int) -> None:
    """Sets the number of threads fastnn's kernels use.

    Args:
        n: an int in [1, 1024]. A build without OpenMP accepts it and keeps running on one thread.

    Example:
        >>> fastnn.set_num_threads(1)
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"set_num_threads: n must be a positive int, but received {n!r} of type {type(n).__name__}")
    if not 1 <= n <= MAX_THREADS:
        raise ValueError(f"set_num_threads: n must be an int in [1, {MAX_THREADS}], but received {n}")
    _C.set_num_threads(int(n))


# --- added by h-optim ---
def random_truncated_normal(generator, shape, dtype, mean=0.0, stddev=1.0):
    """Normal values of ``mean`` and ``stddev``: standard normals drawn in float64, those beyond two standard
    deviations redrawn in order until none is left, then ``mean + stddev * x`` cast to ``dtype``."""
    out = generator.standard_normal(size=shape)
    bad = np.abs(out) > 2.0
    while bad.any():
        out[bad] = generator.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 2.0
    return (mean + stddev * out).astype(dtype, copy=False)


def qr(a):
    """The reduced QR decomposition ``(q, r)`` of a 2-D buffer (NumPy's ``linalg.qr``, mode "reduced")."""
    q, r = np.linalg.qr(a)
    return q, r


def memory_owner_id(buffer) -> int:
    """An int naming the object that owns the buffer's memory (the end of its chain of views): two buffers can
    share memory only when their owner ids are equal (then ``shares_memory`` gives the exact answer)."""
    while isinstance(buffer, np.ndarray) and buffer.base is not None:
        buffer = buffer.base
    return id(buffer)


# --- added by h-ops-b ---
def _gemm_ready(x):
    """x is (batch, rows, cols): returns it unchanged when each matrix has a unit stride along one of its axes
    (the kernel reads it directly, transposed if needed), else a contiguous copy."""
    rows, cols = x.shape[1:]
    row_stride, col_stride = x.strides[1:]
    item = x.itemsize
    if all(s % item == 0 for s in x.strides) and (
        col_stride == item or cols == 1 or row_stride == item or rows == 1
    ):
        return x
    return np.ascontiguousarray(x)


def _gemm_operand(x):
    """A 2-D array as GEMM storage: (array contiguous along its last axis, transposed flag), copying only when
    neither axis has a unit stride."""
    item = x.itemsize
    rows, cols = x.shape
    if x.strides[1] == item or cols == 1:
        return x, False
    if x.strides[0] == item or rows == 1:
        return x.T, True
    return np.ascontiguousarray(x), False


def gemm_matmul(a, b):
    """NumPy ``matmul`` of two float32/float64 buffers of one dtype on fastnn's GEMM kernels (1-D operands are
    promoted and the axis removed, leading axes broadcast). The caller has checked the shapes: a and b have at
    least 1 dimension, matching inner dimensions and broadcastable leading axes."""
    if a.ndim == 2 and b.ndim == 2 and a.size and b.size:
        # The common case (a Dense layer, and its backward products) goes straight to the kernel.
        if a.strides[1] == a.itemsize and b.strides[1] == b.itemsize:
            return _C.gemm(a, b)
        sa, trans_a = _gemm_operand(a)
        sb, trans_b = _gemm_operand(b)
        return _C.gemm(sa, sb, trans_a=trans_a, trans_b=trans_b)
    squeeze_m = a.ndim == 1
    squeeze_n = b.ndim == 1
    if squeeze_m:
        a = a[np.newaxis, :]
    if squeeze_n:
        b = b[:, np.newaxis]
    batch_shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    m, n = a.shape[-2], b.shape[-1]
    batch = int(np.prod(batch_shape))  # explicit: reshape(-1, ...) is ambiguous for zero-size arrays
    a3 = np.broadcast_to(a, batch_shape + a.shape[-2:]).reshape((batch,) + a.shape[-2:])
    b3 = np.broadcast_to(b, batch_shape + b.shape[-2:]).reshape((batch,) + b.shape[-2:])
    out = _C.batched_matmul(_gemm_ready(a3), _gemm_ready(b3)).reshape(batch_shape + (m, n))
    if squeeze_m:
        out = out[..., 0, :]
    if squeeze_n:
        out = out[..., 0]
    return out


def _log_add(a, b):
    """log(exp(a) + exp(b)) elementwise, with -inf handled (no warnings)."""
    m = np.maximum(a, b)
    safe = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return np.where(np.isfinite(m), safe + np.log(np.exp(a - safe) + np.exp(b - safe)), m)


def _ctc_one(log_probs, labels, blank):
    """-log p(labels | log_probs) and the per-class occupancy for one sequence, by the forward-backward recursion
    over the extended label sequence (blank, l1, blank, l2, ..., blank) in log space (Graves et al., 2006).
    occupancy[t, k] is the posterior probability of emitting class k at time t."""
    steps, classes = log_probs.shape
    ext = np.full(2 * len(labels) + 1, blank, dtype=np.int64)
    ext[1::2] = labels
    size = ext.size
    # a skip from s - 2 to s is allowed onto a label that differs from the label two back
    skip = np.zeros(size, dtype=bool)
    skip[2:] = (ext[2:] != blank) & (ext[2:] != ext[:-2])
    emit = log_probs[:, ext]  # (steps, size)
    neg_inf = -np.inf
    alpha = np.full((steps, size), neg_inf)
    alpha[0, 0] = emit[0, 0]
    if size > 1:
        alpha[0, 1] = emit[0, 1]
    for t in range(1, steps):
        prev = alpha[t - 1]
        acc = prev.copy()
        acc[1:] = _log_add(acc[1:], prev[:-1])
        acc[2:] = np.where(skip[2:], _log_add(acc[2:], prev[:-2]), acc[2:])
        alpha[t] = acc + emit[t]
    beta = np.full((steps, size), neg_inf)
    beta[-1, -1] = emit[-1, -1]
    if size > 1:
        beta[-1, -2] = emit[-1, -2]
    skip_back = np.zeros(size, dtype=bool)  # from s + 2 back to s: allowed iff skip[s + 2]
    skip_back[:-2] = skip[2:]
    for t in range(steps - 2, -1, -1):
        nxt = beta[t + 1]
        acc = nxt.copy()
        acc[:-1] = _log_add(acc[:-1], nxt[1:])
        acc[:-2] = np.where(skip_back[:-2], _log_add(acc[:-2], nxt[2:]), acc[:-2])
        beta[t] = acc + emit[t]
    log_likelihood = _log_add(alpha[-1, -1], alpha[-1, -2]) if size > 1 else alpha[-1, -1]
    occupancy = np.zeros((steps, classes))
    if np.isfinite(log_likelihood):
        with np.errstate(invalid="ignore"):
            post = np.exp(alpha + beta - emit - log_likelihood)
        post = np.where(np.isfinite(post), post, 0.0)
        for s in range(size):
            occupancy[:, ext[s]] += post[:, s]
    return -float(log_likelihood), occupancy


def ctc_forward_backward(logits, labels, label_lengths, logit_lengths, blank):
    """CTC over a batch: (losses, dlogits), both float64. ``logits`` (batch, steps, classes) float; ``labels``
    (batch, max_label_length) int64 with row b's first ``label_lengths[b]`` entries used over its first
    ``logit_lengths[b]`` steps (lengths int64, already checked to be in range). losses[b] = -log p(labels[b]), inf
    where the labels cannot fit; dlogits = d losses[b] / d logits[b] (softmax - occupancy; zero where inf or
    past the length)."""
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    batch = logits.shape[0]
    losses = np.empty(batch)
    dlogits = np.zeros_like(logits)
    for b in range(batch):
        n = int(logit_lengths[b])
        losses[b], occupancy = _ctc_one(log_probs[b, :n], labels[b, :int(label_lengths[b])], int(blank))
        if np.isfinite(losses[b]):
            dlogits[b, :n] = np.exp(log_probs[b, :n]) - occupancy
    return losses, dlogits


# --- added by h-ops-a ---
from math import prod as _prod  # noqa: E402 - this section's own import (the sections merge independently)


def reshape(buffer, shape, order="C"):
    """NumPy's ``reshape`` of a buffer (a view where possible). Replaces the ``np.reshape`` binding above: the same
    result for buffers without ``np.reshape``'s Python-level argument handling (about 1 us a call, 10x the method),
    which the ops pay on every backward pass (reductions, broadcasting, shape ops)."""
    return buffer.reshape(shape, order=order)


_add_reduce = np.add.reduce


def sum(buffer, axis=None, dtype=None, out=None, keepdims=False, **kwargs):  # noqa: A001 - NumPy's name
    """NumPy's ``sum`` (``initial=`` and ``where=`` too). Replaces the ``np.sum`` binding above with the reduction
    ``np.sum`` itself runs for arrays (``np.add.reduce``), without its Python-level dispatch (about 1 us a call)."""
    return _add_reduce(buffer, axis=axis, dtype=dtype, out=out, keepdims=keepdims, **kwargs)


def reduce_mean(buffer, axis=None, keepdims=False):
    """The mean over ``axis`` (None or a tuple of non-negative ints) as a buffer (0-D for a full reduction): the sum
    in the buffer's dtype divided by the element count cast to that dtype (``np.mean`` divides by an integer count,
    in float64 for float32 data); NaN for empty axes; no floating-point warnings (``inf - inf`` in the sum)."""
    count = buffer.size if axis is None else _prod([buffer.shape[i] for i in axis])
    with np.errstate(invalid="ignore", divide="ignore"):
        total = _add_reduce(buffer, axis=axis, keepdims=keepdims)
        # NumPy scalar arithmetic for a full reduction (a ufunc call on two scalars costs 20x more).
        mean = total / buffer.dtype.type(count) if count else np.full(np.shape(total), np.nan, buffer.dtype)
    return np.asarray(mean)


# --- added by h-cpp-kernels ---
# The broadcasting / mask / reduction kernels of csrc/cpu/binary.cpp and reduce.cpp, used where they beat NumPy on
# fastnn's training shapes (measured: the seed MLP's (32, 64) / (32, 100) / (32, 1) batches and 4096 x 256; figures
# in the issue-10 report). Each function keeps the NumPy function's semantics and numbers exactly: the kernels do the
# same IEEE operation per element and sum in NumPy's pairwise order. Anything a kernel does not take (other dtypes,
# non-contiguous or misaligned buffers, Python scalars as array operands, dtype= / out= / where= arguments,
# non-adjacent reduction axes) goes to NumPy: the binding raises TypeError / ValueError before touching any data and
# the wrapper retries with NumPy, which then returns NumPy's result or raises NumPy's own error. Like every fastnn
# kernel they run with denormals-are-zero (a denormal input counts as zero); NumPy keeps denormals.
#
# These definitions come after `globals().update(... _NUMPY_FUNCTIONS ...)` on purpose: they rebind `sum`, `mean`,
# `max`, `where`, `clip` (and `unbroadcast`, defined above) from NumPy's functions to these wrappers.
# add / subtract / multiply / divide / maximum / minimum and the comparisons stay NumPy's ufuncs: on the MLP's
# shapes a ufunc call (0.3-0.4 us) is cheaper than any Python wrapper plus binding, and the kernel (_C.binary,
# _C.compare) only wins at 10^5+ elements or broadcast shapes, not by enough to pay for the wrapper on small calls.
_NDARRAY = np.ndarray
_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_KERNEL_ERRORS = (TypeError, ValueError)
_MAX_KERNEL_SIZE = 1 << 15  # np.max's AVX-512 reduction beats reduce_max on long contiguous runs beyond this


def _float_buffer(x) -> bool:
    return type(x) is _NDARRAY and (x.dtype is _F32 or x.dtype is _F64)


def sum(a, axis=None, dtype=None, out=None, keepdims=False, **kwargs):  # noqa: A001 - NumPy's name
    """np.sum; float32/float64 C-contiguous buffers summed over adjacent axes use the C++ kernel (NumPy's order)."""
    if dtype is None and out is None and not kwargs and _float_buffer(a):
        try:
            r = _C.reduce_sum(a, axis, keepdims)
        except _KERNEL_ERRORS:
            return np.sum(a, axis=axis, keepdims=keepdims)
        return r if r.ndim else r[()]
    return np.sum(a, axis=axis, dtype=dtype, out=out, keepdims=keepdims, **kwargs)


def mean(a, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    """np.mean; float32/float64 C-contiguous buffers over adjacent, non-empty axes use the C++ kernel."""
    if dtype is None and out is None and not kwargs and _float_buffer(a):
        try:
            r = _C.reduce_mean(a, axis, keepdims)
        except _KERNEL_ERRORS:
            return np.mean(a, axis=axis, keepdims=keepdims)
        return r if r.ndim else r[()]
    return np.mean(a, axis=axis, dtype=dtype, out=out, keepdims=keepdims, **kwargs)


def max(a, axis=None, out=None, keepdims=False, **kwargs):  # noqa: A001 - NumPy's name
    """np.max; float32/float64 C-contiguous buffers of up to 2^15 elements over adjacent axes use the C++ kernel."""
    if out is None and not kwargs and _float_buffer(a) and a.size <= _MAX_KERNEL_SIZE:
        try:
            r = _C.reduce_max(a, axis, keepdims)
        except _KERNEL_ERRORS:
            return np.max(a, axis=axis, keepdims=keepdims)
        return r if r.ndim else r[()]
    return np.max(a, axis=axis, out=out, keepdims=keepdims, **kwargs)


def where(condition, x=None, y=None, out=None):
    """np.where; a bool condition with two float buffers of one dtype (C-contiguous) uses the C++ select. ``out``
    (an extension over NumPy): the caller's buffer of the result's shape and dtype to write into."""
    if type(condition) is _NDARRAY and type(x) is _NDARRAY and type(y) is _NDARRAY:
        try:
            return _C.where(condition, x, y, out)
        except _KERNEL_ERRORS:
            pass
    if x is None and y is None:
        return np.where(condition)
    if out is not None:
        np.copyto(out, np.where(condition, x, y))
        return out
    return np.where(condition, x, y)


def clip(a, a_min=None, a_max=None, out=None, **kwargs):
    """np.clip; a float32/float64 C-contiguous buffer with Python-number (or None) bounds uses the C++ kernel."""
    if (not kwargs and _float_buffer(a) and (a_min is not None or a_max is not None)
            and type(a_min) in _BOUND_TYPES and type(a_max) in _BOUND_TYPES):
        try:
            return _C.clip(a, a_min, a_max, out)
        except _KERNEL_ERRORS:
            pass
    return np.clip(a, a_min, a_max, out=out, **kwargs)


_BOUND_TYPES = (float, int, type(None))


def _unbroadcast_numpy(g, shape):
    lead = g.ndim - len(shape)
    if lead > 0:
        g = np.sum(g, axis=tuple(range(lead)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    if axes:
        g = np.sum(g, axis=axes, keepdims=True)
    return g.reshape(shape)


def _no_size1_reduction(gshape, shape, lead) -> bool:
    for i, s in enumerate(shape):
        if s == 1 and gshape[lead + i] != 1:
            return False
    return True


def unbroadcast(g, shape):
    """Sums ``g`` (of a broadcast shape) down to ``shape``: the backward of broadcasting. Float buffers use the
    one-pass C++ kernel where that is one NumPy sum (leading axes only, or size-1 axes only); a reduction over both
    kinds is two NumPy sums, as before, so every gradient keeps its numbers."""
    shape = tuple(shape)
    if g.shape == shape:
        return g
    if _float_buffer(g):
        lead = g.ndim - len(shape)
        # One NumPy sum unless both leading axes and broadcast size-1 axes are summed (the NumPy version's two passes).
        # (`all` and `any` in this module are NumPy's: _NUMPY_FUNCTIONS binds them.)
        if lead == 0 or 1 not in shape or _no_size1_reduction(g.shape, shape, lead):
            try:
                r = _C.unbroadcast(g, shape)
            except _KERNEL_ERRORS:
                return _unbroadcast_numpy(g, shape)
            return r if r.ndim else r[()]  # a NumPy scalar for shape (), as the NumPy version returns
    return _unbroadcast_numpy(g, shape)


def add_relu(a, b):
    """relu(a + b): ``np.add`` then fastnn's ReLU (``activation_forward(s, "relu")``: s < 0 ? 0 : s, NaN and -0 pass)
    with the same bits, in one pass over the output (a residual Add followed by its ReLU, fused by a caller that sees
    both: the compiled step's tracer). Two float32/float64 buffers of one dtype broadcast by NumPy's rule on the
    kernel; anything else through NumPy and the ReLU kernel."""
    if _float_buffer(a) and type(b) is _NDARRAY and b.dtype is a.dtype:
        try:
            return _C.binary(a, b, "add_relu")
        except _KERNEL_ERRORS:
            pass
    return _C.activation_forward(np.ascontiguousarray(np.add(a, b)), "relu")


def relu_mask_multiply(g, y, out=None):
    """``g * (y > 0)`` (the ReLU backward): g where y > 0, else g * 0 (so -0 for a negative g, NaN for inf / NaN g),
    in g's dtype, written into ``out`` when given; same-shape float buffers use the fused one-pass C++ kernel."""
    if _float_buffer(g):
        try:
            return _C.relu_mask_multiply(g, y, out)
        except _KERNEL_ERRORS:
            pass
    return np.multiply(g, np.greater(y, 0), out=out)


def dropout_mask_multiply(x, mask, scale, out=None):
    """``x * mask * scale`` as multiply(multiply(x, mask), scale) (Dropout): mask a bool buffer broadcastable to x,
    scale a Python float (rounded to x's dtype), written into ``out`` when given; float buffers use the fused
    one-pass C++ kernel."""
    if _float_buffer(x) and type(scale) is float:
        try:
            return _C.dropout_mask_multiply(x, mask, scale, out)
        except _KERNEL_ERRORS:
            pass
    return np.multiply(np.multiply(x, mask), scale, out=out)


# --- added by h-conv ---
def conv2d_forward(x, w, bias=None, strides=1, padding="valid", dilation=1, groups=1, activation="linear"):
    """``act(conv2d(x, w) + bias)`` on the C++ kernel (im2col + GEMM, fused bias / ReLU): x (N, H, W, C), w (KH, KW,
    C // groups, F) (Keras's layout), bias (F,) or None -> new (N, OH, OW, F). strides / dilation an int or a pair;
    padding "valid", "same" (TensorFlow's, the extra row / column at the bottom / right), an int or (top, bottom,
    left, right); activation "linear" or "relu". Non-contiguous buffers are copied first."""
    return _C.conv2d_forward(np.ascontiguousarray(x), np.ascontiguousarray(w),
                             None if bias is None else np.ascontiguousarray(bias), strides=strides, padding=padding,
                             dilation=dilation, groups=groups, activation=activation)


def conv2d_backward_input(dy, w, input_shape, strides=1, padding="valid", dilation=1, groups=1):
    """dx of conv2d_forward for dy of its pre-activation output (the caller applies the activation's derivative):
    new (N, H, W, C) for ``input_shape``; the same hyper-parameters as conv2d_forward."""
    return _C.conv2d_backward_input(np.ascontiguousarray(dy), np.ascontiguousarray(w), tuple(input_shape),
                                    strides=strides, padding=padding, dilation=dilation, groups=groups)


def conv2d_backward_weight(x, dy, kernel_shape, strides=1, padding="valid", dilation=1, groups=1, with_bias=True,
                           dw=None, db=None):
    """(dw, db) of conv2d_forward for dy of its pre-activation output: new arrays (db None without bias), or, given
    C-contiguous ``dw`` / ``db`` buffers, the gradients ADDED to them in place (parameter gradients accumulate)."""
    return _C.conv2d_backward_weight(np.ascontiguousarray(x), np.ascontiguousarray(dy), tuple(kernel_shape),
                                     strides=strides, padding=padding, dilation=dilation, groups=groups,
                                     with_bias=with_bias, dw=dw, db=db)


def depthwise_conv2d_forward(x, w, bias=None, strides=1, padding="valid", dilation=1, activation="linear"):
    """``act(depthwise_conv2d(x, w) + bias)`` on the direct C++ kernel: x (N, H, W, C), w (KH, KW, C, M) (Keras's
    DepthwiseConv2D layout, M the depth multiplier), bias (C*M,) or None -> new (N, OH, OW, C*M); output channel
    c*M + m comes from input channel c. Hyper-parameters as conv2d_forward (no groups)."""
    return _C.depthwise_conv2d_forward(np.ascontiguousarray(x), np.ascontiguousarray(w),
                                       None if bias is None else np.ascontiguousarray(bias), strides=strides,
                                       padding=padding, dilation=dilation, activation=activation)


def depthwise_conv2d_backward_input(dy, w, input_shape, strides=1, padding="valid", dilation=1):
    """dx of depthwise_conv2d_forward for dy (N, OH, OW, C*M) of its pre-activation output."""
    return _C.depthwise_conv2d_backward_input(np.ascontiguousarray(dy), np.ascontiguousarray(w), tuple(input_shape),
                                              strides=strides, padding=padding, dilation=dilation)


def depthwise_conv2d_backward_weight(x, dy, kernel_shape, strides=1, padding="valid", dilation=1, with_bias=True,
                                     dw=None, db=None):
    """(dw, db) of depthwise_conv2d_forward: new arrays, or the gradients ADDED into given ``dw`` / ``db``."""
    return _C.depthwise_conv2d_backward_weight(np.ascontiguousarray(x), np.ascontiguousarray(dy), tuple(kernel_shape),
                                               strides=strides, padding=padding, dilation=dilation,
                                               with_bias=with_bias, dw=dw, db=db)


def conv_same_padding(size, kernel, stride=1, dilation=1):
    """TensorFlow's "same" padding along one axis: (begin, end) with the odd element at the end."""
    return _C.conv_same_padding(size, kernel, stride, dilation)


# --- added by h-pool ---
# NHWC pooling kernels (csrc/cpu/pool.cpp). x is (N, H, W, C) float32 / float64 (copied to C order when it is not);
# pool and strides an int or a pair; padding "valid", "same" (TensorFlow's asymmetric padding: the extra row /
# column at the bottom / right) or (top, bottom, left, right). Hyper-parameters are validated by the kernels
# (ValueError / TypeError naming the function). The 1-D forms are the (N, 1, L, C) case with pool / stride 1 on H.
def max_pool2d_forward(x, pool, strides, padding="valid"):
    """(y, argmax): max pooling (padding never wins; ties give the first position in window order, NaN propagates);
    argmax (int64, y's shape) holds the flat index into x of each maximum, for max_pool2d_backward."""
    return _C.max_pool2d_forward(np.ascontiguousarray(x), pool, strides, padding)


def max_pool2d_backward(dy, argmax, input_shape):
    """dx of ``input_shape``: zero plus dy added at each argmax (overlapping windows add up)."""
    return _C.max_pool2d_backward(np.ascontiguousarray(dy), np.ascontiguousarray(argmax), tuple(input_shape))


def avg_pool2d_forward(x, pool, strides, padding="valid"):
    """Average pooling; padded positions are left out of each window's count (TensorFlow)."""
    return _C.avg_pool2d_forward(np.ascontiguousarray(x), pool, strides, padding)


def avg_pool2d_backward(dy, input_shape, pool, strides, padding="valid"):
    """dx of ``input_shape`` for avg_pool2d_forward with the same pool / strides / padding."""
    return _C.avg_pool2d_backward(np.ascontiguousarray(dy), tuple(input_shape), pool, strides, padding)


def global_avg_pool2d_forward(x):
    """(N, C): the mean of x (N, H, W, C) over H and W."""
    return _C.global_avg_pool2d_forward(np.ascontiguousarray(x))


def global_avg_pool2d_backward(dy, input_shape):
    """dx of ``input_shape`` (N, H, W, C): dy (N, C) / (H * W) everywhere."""
    return _C.global_avg_pool2d_backward(np.ascontiguousarray(dy), tuple(input_shape))


def global_max_pool2d_forward(x):
    """(y, argmax), both (N, C): the maximum of x (N, H, W, C) over H and W and its flat index into x."""
    return _C.global_max_pool2d_forward(np.ascontiguousarray(x))


def global_max_pool2d_backward(dy, argmax, input_shape):
    """dx of ``input_shape``: zero plus dy (N, C) at each argmax."""
    return _C.global_max_pool2d_backward(np.ascontiguousarray(dy), np.ascontiguousarray(argmax), tuple(input_shape))


# Batch normalization over the last (channel) axis (csrc/cpu/batchnorm.cpp): x of any rank >= 1 is seen as
# (size / C, C) (NHWC images: M = N * H * W); statistics accumulated in double, bit-identical for every thread count.
# gamma / beta may be None (scale=False / center=False). Returned arrays have x's shape; the (C,) ones are 1-D.
def _rows_view(x):
    x = np.ascontiguousarray(x)
    return x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x


def _channels(v):
    return None if v is None else np.ascontiguousarray(v)


def batch_norm_train_forward(x, gamma=None, beta=None, epsilon=1e-3, activation="linear"):
    """(y, mean, var, rstd): the batch mean and biased variance over every axis but the last (what Keras
    normalizes with; the caller updates its moving statistics as moving * momentum + batch * (1 - momentum)),
    rstd = 1 / sqrt(var + epsilon), y = gamma * (x - mean) * rstd + beta. activation="relu": y = relu(y) in the
    same pass, the bits of ``activation_forward(y, "relu")`` (batch norm fused with a following ReLU)."""
    shape = np.shape(x)
    y, mean, var, rstd = _C.batch_norm_train_forward(_rows_view(x), _channels(gamma), _channels(beta), float(epsilon),
                                                     activation=activation)
    return y.reshape(shape), mean, var, rstd


def batch_norm_inference_forward(x, mean, var, gamma=None, beta=None, epsilon=1e-3, activation="linear"):
    """y = gamma * (x - mean) / sqrt(var + epsilon) + beta over the last axis, with given statistics;
    activation="relu": y = relu(y) in the same pass."""
    shape = np.shape(x)
    y = _C.batch_norm_inference_forward(_rows_view(x), _channels(mean), _channels(var), _channels(gamma),
                                        _channels(beta), float(epsilon), activation=activation)
    return y.reshape(shape)


def batch_norm_backward(dy, x, mean, rstd, gamma=None, relu_y=None):
    """(dx, dgamma, dbeta) of batch_norm_train_forward from its saved mean and rstd. relu_y: the y of a forward with
    activation="relu"; dy is then masked by relu_y > 0 first (the ReLU backward, fused: one pass fewer)."""
    shape = np.shape(x)
    dx, dgamma, dbeta = _C.batch_norm_backward(_rows_view(dy), _rows_view(x), _channels(mean), _channels(rstd),
                                               _channels(gamma), relu_y=None if relu_y is None else _rows_view(relu_y))
    return dx.reshape(shape), dgamma, dbeta


# --- added by h-rnnk ---
# The recurrence kernels (csrc/cpu/rnn.cpp, fastnn/rnn.h): a whole LSTM / GRU / SimpleRNN sequence given the input
# projection xproj = x @ W (+ bias), the per-step recurrent GEMM and fused gates in C++, and the backward through
# time with d_recurrent_kernel as one large GEMM. The NumPy specification is fastnn/testing/rnn_reference.py.
# cell: "lstm", "gru" (reset_after), "gru_reset_before", "simple_rnn". The workspace is an opaque tuple the
# backward validates; pass it back unchanged.
def _opt(x):
    return None if x is None else np.ascontiguousarray(x)


def _step_mask(mask):
    """A (B, T) mask as the kernel reads it: C-contiguous bool (nonzero = kept, as Keras casts masks)."""
    if mask is None:
        return None
    mask = np.asarray(mask)
    return np.ascontiguousarray(mask if mask.dtype == np.bool_ else mask != 0)


def _rnn_forward(fn, cell, xproj, recurrent_kernel, h0, c0, mask, recurrent_masks, recurrent_bias, activation,
                 recurrent_activation, reverse, zero_output_for_mask, save_for_backward):
    return fn(cell, _opt(xproj), _opt(recurrent_kernel), _opt(h0), _opt(c0), mask=_step_mask(mask),
              recurrent_masks=_opt(recurrent_masks), recurrent_bias=_opt(recurrent_bias), activation=activation,
              recurrent_activation=recurrent_activation, reverse=bool(reverse),
              zero_output_for_mask=bool(zero_output_for_mask), save_for_backward=bool(save_for_backward))


def _rnn_backward(fn, cell, workspace, recurrent_kernel, d_outputs, d_h_last, d_c_last, mask, recurrent_masks,
                  recurrent_bias, activation, recurrent_activation, reverse, zero_output_for_mask):
    return fn(cell, workspace, _opt(recurrent_kernel), _opt(d_outputs), _opt(d_h_last), _opt(d_c_last),
              mask=_step_mask(mask), recurrent_masks=_opt(recurrent_masks), recurrent_bias=_opt(recurrent_bias),
              activation=activation, recurrent_activation=recurrent_activation, reverse=bool(reverse),
              zero_output_for_mask=bool(zero_output_for_mask))


def rnn_forward(cell, xproj, recurrent_kernel, h0, c0=None, *, mask=None, recurrent_masks=None, recurrent_bias=None,
                activation="tanh", recurrent_activation="sigmoid", reverse=False, zero_output_for_mask=False,
                save_for_backward=True):
    """-> (outputs (B, T, U), h_last (B, U), c_last (B, U) or None, workspace or None).

    xproj (B, T, G*U), recurrent_kernel (U, G*U), h0 / c0 (B, U) (c0 for "lstm" only), mask (B, T) bool,
    recurrent_masks (M, B, U) with M = 1 or G, recurrent_bias (G*U,) for "gru" only."""
    return _rnn_forward(_C.rnn_forward, cell, xproj, recurrent_kernel, h0, c0, mask, recurrent_masks, recurrent_bias,
                        activation, recurrent_activation, reverse, zero_output_for_mask, save_for_backward)


def rnn_backward(cell, workspace, recurrent_kernel, d_outputs, d_h_last, d_c_last, *, mask=None, recurrent_masks=None,
                 recurrent_bias=None, activation="tanh", recurrent_activation="sigmoid", reverse=False,
                 zero_output_for_mask=False):
    """-> (d_xproj, d_recurrent_kernel, d_h0, d_c0 or None, d_recurrent_bias or None); d_outputs, d_h_last,
    d_c_last may be None (zeros). The same cell, options, mask and recurrent masks as the forward."""
    return _rnn_backward(_C.rnn_backward, cell, workspace, recurrent_kernel, d_outputs, d_h_last, d_c_last, mask,
                         recurrent_masks, recurrent_bias, activation, recurrent_activation, reverse,
                         zero_output_for_mask)


def rnn_forward_ref(cell, xproj, recurrent_kernel, h0, c0=None, *, mask=None, recurrent_masks=None,
                    recurrent_bias=None, activation="tanh", recurrent_activation="sigmoid", reverse=False,
                    zero_output_for_mask=False, save_for_backward=True):
    """rnn_forward's reference twin (gemm_ref, scalar activations, one thread): for tests."""
    return _rnn_forward(_C.rnn_forward_ref, cell, xproj, recurrent_kernel, h0, c0, mask, recurrent_masks,
                        recurrent_bias, activation, recurrent_activation, reverse, zero_output_for_mask,
                        save_for_backward)


def rnn_backward_ref(cell, workspace, recurrent_kernel, d_outputs, d_h_last, d_c_last, *, mask=None,
                     recurrent_masks=None, recurrent_bias=None, activation="tanh", recurrent_activation="sigmoid",
                     reverse=False, zero_output_for_mask=False):
    """rnn_backward's reference twin: for tests."""
    return _rnn_backward(_C.rnn_backward_ref, cell, workspace, recurrent_kernel, d_outputs, d_h_last, d_c_last, mask,
                         recurrent_masks, recurrent_bias, activation, recurrent_activation, reverse,
                         zero_output_for_mask)


# --- added by h-embed ---
# Embedding lookup and its dense gradient (csrc/cpu/embedding.cpp). table (V, D) float32 / float64; indices of any
# shape, int32 / int64 (other integer dtypes are converted to int64 here). Every index must lie in [0, V): the kernel
# checks each while reading it and raises ValueError naming the function, the first bad value and V.
def _embedding_indices(indices):
    idx = np.asarray(indices, order="C")  # (ascontiguousarray would make 0-D indices 1-D)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, but received dtype {idx.dtype}")
    if idx.dtype not in (np.int32, np.int64) or not idx.dtype.isnative:
        if idx.dtype == np.uint64 and idx.size and idx.max() > np.iinfo(np.int64).max:
            raise ValueError(f"embedding: index {int(idx.max())} is out of range for any table")
        idx = idx.astype(np.int64)
    return idx


def embedding_gather(table, indices):
    """(*indices.shape, D): the rows ``table[indices]`` (as ``np.take(table, indices, axis=0)``)."""
    return _C.embedding_gather(np.ascontiguousarray(table), _embedding_indices(indices))


def embedding_scatter_add(d_out, indices, num_rows):
    """(num_rows, D): the dense gradient of embedding_gather, rows of d_out (*indices.shape, D) added into their
    table rows in index order (``np.add.at`` order; the same bits for every thread count)."""
    return _C.embedding_scatter_add(np.asarray(d_out, order="C"), _embedding_indices(indices), int(num_rows))


__all__ = sorted(
    [n for n in globals() if not n.startswith("_") and n not in {"annotations", "contextlib", "numbers", "sys", "np"}]
)
