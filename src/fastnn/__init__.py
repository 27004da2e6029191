"""fastnn: hand-written C++ kernels under a Keras 3 style Python API.

Example:
    >>> import fastnn, numpy as np
    >>> fastnn.ops.matmul(np.ones((2, 3), np.float32), np.ones((3, 4), np.float32)).shape
    (2, 4)
"""
from fastnn.backend import build_info, get_num_threads, set_num_threads
from fastnn.autograd import GradientTape, Tensor, Variable, no_grad
from fastnn import ops

__version__ = build_info()["version"]


def _check_cache_override():
    # FASTNN_CACHE=L1,L2[,L3] replaces the detected cache sizes the kernels block for, FASTNN_GEMM_BLOCKS=MC,KC,NC
    # the GEMM's blocks; a value the kernels could not parse is ignored there, so say so instead of silently running
    # another configuration.
    import os
    import warnings

    info = build_info()
    spec = os.environ.get("FASTNN_CACHE")
    if spec and info["cache_source"] != "FASTNN_CACHE":
        warnings.warn(f"fastnn: FASTNN_CACHE={spec!r} was ignored: expected 'L1,L2' or 'L1,L2,L3' (bytes with an "
                      "optional K/M/G suffix, e.g. '32K,512K,32M'; L1 in [4K, 64M], L2 >= L1); using the detected "
                      "cache sizes", RuntimeWarning, stacklevel=3)
    blocks = os.environ.get("FASTNN_GEMM_BLOCKS")
    if blocks and not info["gemm_blocks_overridden"]:
        warnings.warn(f"fastnn: FASTNN_GEMM_BLOCKS={blocks!r} was ignored: expected three integers MC,KC,NC in "
                      "[1, 65536], e.g. '252,256,4096'; using the blocking derived from the caches", RuntimeWarning,
                      stacklevel=3)


_check_cache_override()

__all__ = [
    "build_info", "get_num_threads", "set_num_threads", "ops", "__version__",
    "Tensor", "Variable", "GradientTape", "no_grad",
]

# The Keras model API is imported on first use, so `import fastnn` stays fast.
_LAZY_MODULES = ("layers", "models", "optimizers", "losses", "metrics", "activations", "initializers", "callbacks",
                 "utils", "datasets", "regularizers", "constraints", "saving")
_LAZY_NAMES = {"Sequential": "fastnn.models", "Model": "fastnn.models", "Input": "fastnn.layers",
               "Layer": "fastnn.layers", "InputSpec": "fastnn.layers", "KerasTensor": "fastnn.layers"}
__all__ += list(_LAZY_MODULES) + list(_LAZY_NAMES)


def __getattr__(name):
    import importlib

    if name in _LAZY_MODULES:
        module = importlib.import_module(f"fastnn.{name}")
        globals()[name] = module
        return module
    if name in _LAZY_NAMES:
        value = getattr(importlib.import_module(_LAZY_NAMES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fastnn' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
