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

__all__ = [
    "build_info", "get_num_threads", "set_num_threads", "ops", "__version__",
    "Tensor", "Variable", "GradientTape", "no_grad",
]
