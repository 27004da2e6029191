"""fastnn's backend boundary: the one namespace through which every op, layer, loss, metric, optimizer and the fit
loop touch tensor storage and compute on it.

Callers write ``from fastnn import backend as B`` and call ``B.multiply(a, b)``, ``B.sum(g, axis=0)``,
``B.getitem(x, idx)``, ``B.gemm(...)``: never NumPy, never operators or methods on a buffer (see the conventions
in ``fastnn.backend.cpu``). The functions here are those of the active backend implementation, installed as this
module's attributes, so a call costs one module-attribute lookup and nothing else:

- ``fastnn.backend.cpu`` (the default): NumPy arrays in host memory; each function is a C++ kernel or NumPy.
- ``fastnn.testing.wrapped_backend``: a test-only backend whose buffers are not NumPy arrays and refuse implicit
  conversion, so any code that reaches around this module fails its tests.
- a CUDA backend (the CUDA build issue) plugs in the same way.

Callers must look functions up on this module at call time (``B.add``); ``from fastnn.backend import add`` would
keep the function of whatever backend was active at import.

Example:
    >>> from fastnn import backend as B
    >>> B.name
    'cpu'
"""
from __future__ import annotations

import contextlib
import threading

from fastnn.backend import cpu

_lock = threading.Lock()
_active = cpu
_NAMES = tuple(cpu.__all__)  # the interface: every backend provides these names


def _install(impl) -> None:
    global _active
    missing = [n for n in _NAMES if not hasattr(impl, n)]
    if missing:
        raise TypeError(f"backend {getattr(impl, 'name', impl)!r} lacks {', '.join(missing)}")
    g = globals()
    for n in _NAMES:
        g[n] = getattr(impl, n)
    _active = impl


def current():
    """The active backend implementation (a module or namespace with every name of the interface)."""
    return _active


@contextlib.contextmanager
def use(impl):
    """Runs a block with ``impl`` as the active backend, restoring the previous one afterwards.

    Tensors keep the buffers of the backend that made them: create the tensors, layers and models of the block
    inside it. Not meant for switching while other threads compute.
    """
    with _lock:
        prev = _active
        _install(impl)
    try:
        yield impl
    finally:
        with _lock:
            _install(prev)


_install(cpu)
_C = cpu._C  # the raw kernels, for kernel tests and the fuzz harness only

__all__ = list(_NAMES) + ["current", "use", "cpu"]
