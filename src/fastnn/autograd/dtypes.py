"""Keras 3 dtype rules: float32 default, weak Python scalars, int + float -> float.

Example:
    >>> result_type(np.dtype("int32"), 2.0)
    dtype('float32')
"""
from __future__ import annotations

import numpy as np

from fastnn import backend

floatx = np.dtype("float32")
_INT32 = np.dtype("int32")
_BOOL = np.dtype("bool")
# The float dtypes fastnn's C++ kernels take (GEMM, embedding, the optimizers' steps); others go through NumPy
# or a float32 copy.
KERNEL_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_ALLOWED_KINDS = "biuf"
_PY_TYPES = {float: "float32", int: "int32", bool: "bool"}


def standardize_dtype(dtype, op: str = "convert_to_tensor"):
    """A NumPy dtype from a string, NumPy dtype or Python type (float -> float32, int -> int32); None stays None."""
    if dtype is None:
        return None
    if dtype in _PY_TYPES:
        dtype = _PY_TYPES[dtype]
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{op}: {dtype!r} is not a dtype") from None
    if dt.kind not in _ALLOWED_KINDS:
        raise TypeError(f"{op}: unsupported dtype {dt}; expected bool, an integer or a float dtype")
    return dt


def is_float(dt) -> bool:
    return dt.kind == "f"


def _promote(a, b):
    if a == b:
        return a
    af, bf = a.kind == "f", b.kind == "f"
    if af and not bf:
        return a
    if bf and not af:
        return b
    if a == _BOOL:
        return b
    if b == _BOOL:
        return a
    return np.promote_types(a, b)


def dtype_of(x):
    """The dtype of a tensor/array operand, or the Python type (float, int, bool) of a weak scalar."""
    d = getattr(x, "dtype", None)
    if d is not None and not isinstance(x, type):
        return np.dtype(d)
    if isinstance(x, bool):
        return bool
    if isinstance(x, int):
        return int
    if isinstance(x, float):
        return float
    return np.dtype(to_buffer(x).dtype)


def result_type(*dtypes):
    """Keras-style promotion. Arguments are NumPy dtypes (strong) or the Python types float/int/bool (weak).

    Floats win over ints and bools (int32 + float32 -> float32); a weak float makes ints float32; weak ints and
    bools never change a strong dtype.
    """
    out = None
    for d in dtypes:
        if not isinstance(d, type):
            out = d if out is None else _promote(out, d)
    for d in dtypes:
        if d is float:
            if out is None or out.kind != "f":
                out = floatx
        elif d is int:
            if out is None or out == _BOOL:
                out = _INT32
        elif d is bool:
            if out is None:
                out = _BOOL
    return out


def to_buffer(x, dtype=None, op: str = "convert_to_tensor"):
    """A buffer for ``x`` following Keras's convert_to_tensor: Python floats -> float32, ints -> int32 (int64 when
    they do not fit), NumPy arrays keep their dtype and are not copied."""
    if backend.is_buffer(x):
        arr = x
    else:
        data = getattr(x, "_data", None)  # a fastnn.Tensor
        arr = data if data is not None and backend.is_buffer(data) else _host_to_buffer(x, op)
    if arr.dtype.kind not in _ALLOWED_KINDS:
        raise TypeError(f"{op}: expected an array of numbers, but received dtype {arr.dtype}")
    arr = backend.native(arr)
    if dtype is not None:
        dt = standardize_dtype(dtype, op)
        if arr.dtype != dt:
            arr = backend.astype(arr, dt)
    return arr


# NumPy boundary: the user's data (lists, scalars, NumPy arrays) comes in here and leaves as a backend buffer.
def _host_to_buffer(x, op):
    if isinstance(x, np.generic):
        return backend.asarray(x)
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{op}: expected an array of numbers, but received {type(x).__name__}") from exc
    if arr.dtype == np.float64 and not isinstance(x, np.ndarray):
        arr = arr.astype(floatx)
    elif arr.dtype == np.int64 and not isinstance(x, np.ndarray):
        if arr.size == 0 or (arr.min() >= -(2**31) and arr.max() < 2**31):
            arr = arr.astype(_INT32)
    return backend.asarray(arr)
