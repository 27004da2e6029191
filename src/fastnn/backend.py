"""The one Python module that imports the compiled extension ``fastnn._C``.

Everything else in fastnn reaches the kernels through here, so a future device backend (CUDA buffers in
place of NumPy ones) changes this module, not the layers or ops.
"""
from __future__ import annotations

import numbers

import numpy as np

try:
    from fastnn import _C
except ImportError as exc:  # pragma: no cover - only without a build
    raise ImportError(
        "fastnn's compiled extension (fastnn._C) could not be imported: install the package with "
        "`pip install .` from the project root (a source checkout alone has no compiled kernels). "
        f"Original error: {exc}"
    ) from exc

gemm = _C.gemm
gemm_ref = _C.gemm_ref
batched_matmul = _C.batched_matmul

# ---------------------------------------------------------------------------------------------------------------
# Tensor storage. A fastnn.Tensor keeps its values in one buffer (``tensor._data``); today the buffer is a NumPy
# array in host memory. The C++ kernels are reached only through the wrappers below. The rest is not yet as
# designed: the autograd ops import NumPy themselves (autograd/ops/_util.py binds its own ``xp = np``; the op modules
# make a couple of hundred direct NumPy calls for elementwise math, reductions, shapes and parts of every backward),
# and so do layers, losses, metrics and optimizers in places. ``xp`` below is meant to become the one namespace
# they use, so that a device backend changes this module only; the backend-boundary issue moves the ops onto it.
# ---------------------------------------------------------------------------------------------------------------
xp = np
device = "cpu"


def asarray(data, dtype=None):
    """A buffer holding ``data`` (no copy when it already is a buffer of that dtype)."""
    return np.asarray(data, dtype=dtype)


def to_numpy(buffer) -> np.ndarray:
    """The buffer as a NumPy array (zero-copy on the CPU)."""
    return buffer


def contiguous(buffer):
    """The buffer in C order (the buffer itself when it already is; 0-D stays 0-D)."""
    return buffer if buffer.flags.c_contiguous else np.ascontiguousarray(buffer).reshape(buffer.shape)


def is_buffer(x) -> bool:
    return isinstance(x, np.ndarray)


# Elementwise kernels (csrc/cpu/elementwise.cpp). Inputs must be C-contiguous float32/float64 buffers.
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
