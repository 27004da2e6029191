"""A test-only backend whose buffers are not NumPy arrays: the proof that fastnn computes through its backend.

Every function of ``fastnn.backend.cpu`` is wrapped: buffer arguments are unwrapped, the CPU function runs, and
array results come back as :class:`WrappedBuffer`. A ``WrappedBuffer`` exposes ``shape``, ``dtype``, ``ndim``
and ``size`` and nothing else: no operators, no methods, no ``__array__``, no ``__bool__`` / ``__float__`` /
``__len__`` / iteration. So code that computes on a buffer with NumPy (``np.exp(t._data)``), with an operator
(``g * b``), with a method (``g.sum()``) or converts it implicitly fails with :class:`BackendLeak`. And a NumPy
array passed where a buffer is expected (computed outside the backend) is refused the same way, except by
``asarray`` / ``array``, the entry points for host data.

This is the seam a CUDA backend plugs into (device buffers in place of wrapped ones).

Example:
    >>> from fastnn.testing.wrapped_backend import use_wrapped_backend
    >>> with use_wrapped_backend():
    ...     y = fastnn.ops.exp(fastnn.Tensor([1.0, 2.0]))   # computes through fastnn.backend only
    ...     y.numpy()                                        # the user boundary: a NumPy array out
"""
from __future__ import annotations

import contextlib
import functools
import sys
import types

import numpy as np

from fastnn import backend
from fastnn.backend import cpu


class BackendLeak(TypeError):
    """Code reached around fastnn.backend: a buffer was used as a NumPy array, or a NumPy array as a buffer."""


def _leak(what):
    raise BackendLeak(
        f"{what}: this buffer belongs to the wrapped test backend; compute on it only through fastnn.backend "
        "functions (no NumPy calls, operators, methods or implicit conversion on buffers)"
    )


class WrappedBuffer:
    """A buffer of the wrapped backend: a NumPy array hidden behind a type that refuses to act as one."""

    __slots__ = ("_array", "__weakref__")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):  # np.exp(buffer), ndarray + buffer
        _leak(f"np.{ufunc.__name__}{'' if method == '__call__' else '.' + method}(buffer)")
    __hash__ = None

    def __init__(self, array: np.ndarray):
        self._array = array

    shape = property(lambda self: self._array.shape)
    dtype = property(lambda self: self._array.dtype)
    ndim = property(lambda self: self._array.ndim)
    size = property(lambda self: self._array.size)

    def __array__(self, *args, **kwargs):
        _leak("np.asarray(buffer) / implicit NumPy conversion")

    def __array_function__(self, func, types, args, kwargs):
        _leak(f"np.{func.__name__}(buffer)")

    def __repr__(self):
        return f"WrappedBuffer(shape={self.shape}, dtype={self.dtype})"

    def __getattr__(self, name):
        _leak(f"buffer.{name}")

    def __bool__(self):
        _leak("bool(buffer)")

    def __len__(self):
        _leak("len(buffer)")

    def __iter__(self):
        _leak("iter(buffer)")

    def __float__(self):
        _leak("float(buffer)")

    def __int__(self):
        _leak("int(buffer)")

    def __index__(self):
        _leak("operator.index(buffer)")

    def __getitem__(self, key):
        _leak("buffer[key]")

    def __setitem__(self, key, value):
        _leak("buffer[key] = value")

    def __deepcopy__(self, memo):
        return WrappedBuffer(self._array.copy())


def _refuse_operator(symbol):
    def op(self, *args):
        _leak(f"operator {symbol} on a buffer")

    return op


for _name, _sym in {
    "add": "+", "sub": "-", "mul": "*", "truediv": "/", "floordiv": "//", "mod": "%", "pow": "**", "matmul": "@",
    "and": "&", "or": "|", "xor": "^", "lshift": "<<", "rshift": ">>",
}.items():
    for _form in ("__{}__", "__r{}__", "__i{}__"):
        setattr(WrappedBuffer, _form.format(_name), _refuse_operator(_sym))
for _name, _sym in {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!=", "neg": "unary -",
                    "pos": "unary +", "abs": "abs()", "invert": "~"}.items():
    setattr(WrappedBuffer, f"__{_name}__", _refuse_operator(_sym))


def _unwrap(x, fn_name):
    if isinstance(x, WrappedBuffer):
        return x._array
    if isinstance(x, np.ndarray):
        raise BackendLeak(
            f"backend.{fn_name} received a NumPy array of shape {x.shape}: it was computed outside fastnn.backend "
            "(convert host data with backend.asarray first)"
        )
    if isinstance(x, (list, tuple)):
        items = [_unwrap(v, fn_name) for v in x]
        return type(x)(items) if type(x) in (list, tuple) else type(x)(*items)
    if isinstance(x, dict):
        return {k: _unwrap(v, fn_name) for k, v in x.items()}
    return x


def _rewrap(x):
    if isinstance(x, np.ndarray):
        return WrappedBuffer(x)
    if isinstance(x, np.generic) and not isinstance(x, (np.dtype,)):
        return WrappedBuffer(np.asarray(x))
    if type(x) in (list, tuple):
        return type(x)(_rewrap(v) for v in x)
    return x


def _wrap_function(name, fn):
    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        return _rewrap(fn(*_unwrap(args, name), **_unwrap(kwargs, name)))

    return wrapped


def _host_entry(fn):
    """asarray / array: host data (NumPy arrays included) comes in; wrapped buffers are unwrapped first."""

    @functools.wraps(fn)
    def wrapped(data, *args, **kwargs):
        if isinstance(data, WrappedBuffer):
            data = data._array
        elif isinstance(data, (list, tuple)):
            data = _unwrap_host_sequence(data)
        return _rewrap(np.asarray(fn(data, *args, **kwargs)))

    return wrapped


def _unwrap_host_sequence(seq):
    return [(_unwrap_host_sequence(v) if isinstance(v, (list, tuple)) else v._array if isinstance(v, WrappedBuffer)
             else v) for v in seq]


# Names that are not buffer functions: passed through unchanged.
_PASS_THROUGH = {"name", "device", "MAX_THREADS", "errstate", "build_info", "get_num_threads", "set_num_threads",
                 "simd_path", "set_simd_path", "gemm_path", "set_gemm_path", "oversubscription_guard",
                 "set_oversubscription_guard", "random_generator", "is_random_generator", "random_generator_state",
                 "set_random_generator_state", "result_type", "promote_types",
                 "broadcast_shapes"}


def make_backend():
    """A fresh wrapped backend (a namespace with every name of the backend interface)."""
    ns = types.SimpleNamespace()
    for n in cpu.__all__:
        value = getattr(cpu, n)
        if n in _PASS_THROUGH or not callable(value):
            setattr(ns, n, value)
        else:
            setattr(ns, n, _wrap_function(n, value))
    ns.name = "wrapped"
    ns.asarray = _host_entry(cpu.asarray)
    ns.array = _host_entry(cpu.array)
    ns.to_numpy = lambda buffer: (buffer._array if isinstance(buffer, WrappedBuffer)
                                  else _leak("backend.to_numpy of a non-buffer"))
    ns.is_buffer = lambda x: isinstance(x, WrappedBuffer)
    ns.private_refcount = _private_refcount
    return ns


def _private_refcount(buffer) -> int:
    """Holders of the wrapper object (tensors sharing it) plus holders of the array inside (other wrappers, views):
    a Variable may write in place only when both are at their private baseline."""
    if not isinstance(buffer, WrappedBuffer):
        _leak("backend.private_refcount of a non-buffer")
    return sys.getrefcount(buffer) + sys.getrefcount(buffer._array)


WRAPPED = make_backend()


@contextlib.contextmanager
def use_wrapped_backend():
    """Runs a block on the wrapped backend (create its tensors, layers and models inside the block)."""
    with backend.use(WRAPPED) as impl:
        yield impl
