"""Tensor creation: convert_to_tensor, zeros, ones, zeros_like, ones_like, full, full_like, arange.

The buffers are the backend's (``fastnn.backend``); host data comes in through ``dtypes.to_buffer``.
"""
from __future__ import annotations

import numpy as np

from fastnn import backend as B
from fastnn.autograd import dtypes
from fastnn.autograd.ops._util import int_shape, tensor
from fastnn.autograd.tensor import Tensor


def convert_to_tensor(x, dtype=None, sparse=None, ragged=None):
    """``x`` as a Tensor: tensors are returned as they are (cast when ``dtype`` differs), NumPy arrays are wrapped
    without a copy, Python floats become float32 and ints int32."""
    if sparse or ragged:
        raise ValueError("convert_to_tensor: sparse and ragged tensors are not supported")
    if isinstance(x, Tensor):
        dt = dtypes.standardize_dtype(dtype)
        if dt is None or dt == x.dtype:
            return x
        from fastnn.autograd.ops.shape import cast

        return cast(x, dt)
    return Tensor._wrap(dtypes.to_buffer(x, dtype))


def _dtype(dtype, default=None):
    return dtypes.standardize_dtype(dtype) or default or dtypes.floatx


def zeros(shape, dtype=None):
    return Tensor._wrap(B.zeros(int_shape(shape, "zeros"), _dtype(dtype)))


def ones(shape, dtype=None):
    return Tensor._wrap(B.ones(int_shape(shape, "ones"), _dtype(dtype)))


def _scalar_dtype(value):
    if isinstance(value, (bool, int, float)) and not isinstance(value, np.generic):
        return dtypes.result_type(type(value))
    return dtypes.to_buffer(value, op="full").dtype


def full(shape, fill_value, dtype=None):
    """A tensor of ``shape`` filled with ``fill_value`` (float32 for Python floats, int32 for ints)."""
    fill = fill_value._data if isinstance(fill_value, Tensor) else fill_value
    return Tensor._wrap(B.full(int_shape(shape, "full"), fill, _dtype(dtype, _scalar_dtype(fill_value))))


def zeros_like(x, dtype=None):
    a = tensor(x, "zeros_like")._data
    return Tensor._wrap(B.zeros(a.shape, _dtype(dtype, a.dtype)))


def ones_like(x, dtype=None):
    a = tensor(x, "ones_like")._data
    return Tensor._wrap(B.ones(a.shape, _dtype(dtype, a.dtype)))


def full_like(x, fill_value, dtype=None):
    a = tensor(x, "full_like")._data
    return Tensor._wrap(B.full(a.shape, fill_value, _dtype(dtype, a.dtype)))


def arange(start, stop=None, step=1, dtype=None):
    """Evenly spaced values in [start, stop); int32 when all arguments are ints, else float32."""
    if stop is None:
        start, stop = 0, start
    if dtype is None:
        kinds = [type(v) if isinstance(v, (int, float)) and not isinstance(v, np.generic)
                 else dtypes.to_buffer(v, op="arange").dtype for v in (start, stop, step)]
        dtype = dtypes.result_type(*kinds)
        if dtype.kind == "f" and dtype.itemsize < 4:
            dtype = dtypes.floatx
    if step == 0:
        raise ValueError("arange: step must not be zero")
    return Tensor._wrap(B.arange(start, stop, step, dtype=dtypes.standardize_dtype(dtype, "arange")))
