"""The one Python module that imports the compiled extension ``fastnn._C``.

Everything else in fastnn reaches the kernels through here, so a future device backend (CUDA buffers in
place of NumPy ones) changes this module, not the layers or ops.
"""
from __future__ import annotations

import numbers

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


def get_num_threads() -> int:
    """The number of threads fastnn's kernels use (OMP_NUM_THREADS or the core count by default)."""
    return _C.get_num_threads()


def set_num_threads(n: int) -> None:
    """Sets the number of threads fastnn's kernels use.

    Args:
        n: a positive int. A build without OpenMP accepts it and keeps running on one thread.

    Example:
        >>> fastnn.set_num_threads(1)
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"set_num_threads: n must be a positive int, but received {n!r} of type {type(n).__name__}")
    if n < 1:
        raise ValueError(f"set_num_threads: n must be a positive int, but received {n}")
    _C.set_num_threads(int(n))
