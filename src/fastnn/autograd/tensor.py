"""fastnn.Tensor and fastnn.Variable.

A Tensor wraps one storage buffer (``_data``, a NumPy array on the CPU) and, when it was computed by a
differentiable op while gradients are recorded, the graph node that made it (``_node``). Tensors are immutable;
Variables are mutable through ``assign`` (copy-on-write, so tensors are values as in TensorFlow: see
``Variable._buffer_is_shared``).

Example:
    >>> x = fastnn.Tensor([1.0, 2.0], requires_grad=True)
    >>> (x * x).backward()
    >>> x.grad.numpy()
    array([2., 4.], dtype=float32)
"""
from __future__ import annotations

import weakref

import numpy as np

from fastnn import backend
from fastnn.autograd import dtypes
from fastnn.backend import recording as _trace


class Tensor:
    """An n-dimensional array that records the ops applied to it for automatic differentiation.

    Args:
        data: array-like (NumPy array, nested lists, Python scalar, Tensor). NumPy arrays are wrapped without a
            copy; Python floats become float32 and ints int32 (Keras's convert_to_tensor).
        dtype: optional dtype to cast to ("float32", "float64", "int32", "int64", ...).
        requires_grad: PyTorch-style flag: ``backward()`` accumulates gradients into ``.grad`` of leaf tensors
            that have it. Only float tensors can require gradients (TypeError otherwise).

    NumPy interop is zero-copy: ``np.asarray(t)`` and ``t.numpy()`` return the buffer itself.
    """

    __slots__ = ("_data", "_node", "_requires_grad", "grad", "__weakref__")
    # NumPy defers binary operators to us, so ``ndarray + Tensor`` calls Tensor.__radd__ and stays on the graph.
    __array_priority__ = 1000.0
    __hash__ = object.__hash__

    def __init__(self, data, dtype=None, requires_grad: bool = False):
        self._data = dtypes.to_buffer(data, dtype, op="Tensor")
        self._node = None
        self._requires_grad = False
        self.grad = None
        if requires_grad:
            self.requires_grad = True

    @classmethod
    def _wrap(cls, data) -> "Tensor":
        """A tensor around an existing buffer (no conversion, no copy; NumPy scalars become 0-D arrays).
        ``tape.record`` inlines these lines (it runs once per op): keep the two in step."""
        t = object.__new__(Tensor)
        t._data = data if backend.is_buffer(data) else backend.asarray(data)
        t._node = None
        t._requires_grad = False
        t.grad = None
        return t

    # -- properties -------------------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self._data.shape

    @property
    def dtype(self) -> np.dtype:
        """The NumPy dtype (compares equal to the Keras dtype string, e.g. ``t.dtype == "float32"``)."""
        return self._data.dtype

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def size(self) -> int:
        return self._data.size

    @property
    def device(self) -> str:
        return backend.device

    @property
    def T(self) -> "Tensor":
        return _shape_ops.transpose(self)

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        value = bool(value)
        if value and not dtypes.is_float(self._data.dtype):
            raise TypeError(
                f"Tensor: only float tensors can require gradients, but this tensor has dtype {self._data.dtype}"
            )
        if self._node is not None and not value and self._requires_grad:
            raise RuntimeError("Tensor: requires_grad can only be turned off on leaf tensors; use detach()")
        self._requires_grad = value

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        self.requires_grad = requires_grad
        return self

    # -- NumPy interop ----------------------------------------------------------------------------------------
    # NumPy boundary: the values handed to the user.
    def numpy(self) -> np.ndarray:
        """The values as a NumPy array (the buffer itself on the CPU: no copy)."""
        return backend.to_numpy(self._data)

    # NumPy boundary: np.asarray(tensor) hands the values to the user.
    def __array__(self, dtype=None, copy=None):
        a = backend.to_numpy(self._data)
        if dtype is not None and np.dtype(dtype) != a.dtype:
            if copy is False:
                raise ValueError("Tensor.__array__: a dtype change needs a copy, but copy=False")
            return a.astype(dtype)
        return a.copy() if copy else a

    def item(self):
        return backend.item(self._data)

    def tolist(self):
        return backend.tolist(self._data)

    def __float__(self) -> float:
        return float(self._one_element("float"))

    def __int__(self) -> int:
        return int(self._one_element("int"))

    def _one_element(self, what: str):
        if self._data.size != 1:
            raise TypeError(f"only tensors with one element can be converted to Python scalars ({what}() of a tensor "
                            f"of shape {self.shape})")
        return backend.item(self._data)

    def __index__(self) -> int:
        if self._data.ndim != 0 or self._data.dtype.kind not in "iu":
            raise TypeError(f"only 0-D integer tensors can be used as an index, not {self._data.dtype} {self.shape}")
        return int(backend.item(self._data))

    def __bool__(self) -> bool:
        if self._data.size != 1:
            raise ValueError(f"The truth value of a tensor of shape {self.shape} is ambiguous (it has "
                             f"{self._data.size} elements); use fastnn.ops.any() or fastnn.ops.all()")
        return bool(backend.item(self._data))

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-D tensor")
        return self._data.shape[0]

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-D tensor")
        for i in range(self._data.shape[0]):
            yield self[i]

    # NumPy boundary: printing formats the values on the host.
    def __repr__(self) -> str:
        body = np.array2string(backend.to_numpy(self._data), separator=", ", prefix="fastnn.Tensor(")
        extra = ""
        if self._node is not None:
            extra = f", grad_fn={self._node.name}"
        elif self._requires_grad:
            extra = ", requires_grad=True"
        return f"fastnn.Tensor({body}, shape={self.shape}, dtype={self.dtype}{extra})"

    # NumPy boundary: formatting with a spec formats the values on the host.
    def __format__(self, spec: str) -> str:
        if not spec:
            return repr(self)
        if self._data.ndim == 0:
            return format(backend.item(self._data), spec)
        return format(backend.to_numpy(self._data), spec)

    def __setitem__(self, key, value):
        raise TypeError(
            "Tensor does not support item assignment (tensors are immutable); use fastnn.ops.where, or a "
            "fastnn.Variable and its assign()"
        )

    # -- autograd ---------------------------------------------------------------------------------------------
    def backward(self, gradient=None) -> None:
        """Accumulates d(self)/d(leaf) into ``.grad`` of every leaf tensor with ``requires_grad`` (PyTorch style).

        A non-scalar tensor is differentiated as its sum unless ``gradient`` (same shape) is given. The graph is
        freed afterwards; use ``GradientTape(persistent=True)`` to differentiate one graph several times.
        """
        from fastnn.autograd import tape  # tape imports this module

        tape.backward(self, gradient)

    def detach(self) -> "Tensor":
        """A tensor sharing this one's buffer, cut from the graph."""
        return Tensor._wrap(self._data)

    # -- operators (the ops live in fastnn.autograd.ops) -------------------------------------------------------
    def __add__(self, other):
        return _elementwise.add(self, other)

    def __radd__(self, other):
        return _elementwise.add(other, self)

    def __sub__(self, other):
        return _elementwise.subtract(self, other)

    def __rsub__(self, other):
        return _elementwise.subtract(other, self)

    def __mul__(self, other):
        return _elementwise.multiply(self, other)

    def __rmul__(self, other):
        return _elementwise.multiply(other, self)

    def __truediv__(self, other):
        return _elementwise.divide(self, other)

    def __rtruediv__(self, other):
        return _elementwise.divide(other, self)

    def __pow__(self, other):
        return _elementwise.power(self, other)

    def __rpow__(self, other):
        return _elementwise.power(other, self)

    def __matmul__(self, other):
        return _matmul.matmul(self, other)

    def __rmatmul__(self, other):
        return _matmul.matmul(other, self)

    def __neg__(self):
        return _elementwise.negative(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _elementwise.abs(self)

    def __eq__(self, other):
        return _elementwise.equal(self, other)

    def __ne__(self, other):
        return _elementwise.not_equal(self, other)

    def __lt__(self, other):
        return _elementwise.less(self, other)

    def __le__(self, other):
        return _elementwise.less_equal(self, other)

    def __gt__(self, other):
        return _elementwise.greater(self, other)

    def __ge__(self, other):
        return _elementwise.greater_equal(self, other)

    def __invert__(self):
        return _elementwise.logical_not(self)

    def __and__(self, other):
        return _elementwise.logical_and(self, other)

    def __or__(self, other):
        return _elementwise.logical_or(self, other)

    def __getitem__(self, key):
        return _shape_ops.getitem(self, key)

    # -- a few array methods ----------------------------------------------------------------------------------
    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _shape_ops.reshape(self, shape)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _shape_ops.transpose(self, axes or None)

    def sum(self, axis=None, keepdims=False):
        return _reduce.sum(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        return _reduce.mean(self, axis=axis, keepdims=keepdims)

    def max(self, axis=None, keepdims=False):
        return _reduce.max(self, axis=axis, keepdims=keepdims)

    def min(self, axis=None, keepdims=False):
        return _reduce.min(self, axis=axis, keepdims=keepdims)

    def astype(self, dtype):
        return _shape_ops.cast(self, dtype)


# Every live Variable (weakly): a compiled step's recording recognises any variable's buffer read inside the step,
# not only the model's (a LossScaleOptimizer's scale, a user's variable), and reads it at replay.
_LIVE_VARIABLES = weakref.WeakSet()


def live_variables():
    return list(_LIVE_VARIABLES)


class Variable(Tensor):
    """A mutable, named tensor holding model state (Keras's ``keras.Variable``).

    Args:
        initializer: the initial value (array-like or Tensor, copied), or a callable ``initializer(shape, dtype)``
            (then ``shape`` is required).
        shape: the shape, for a callable initializer.
        dtype: defaults to the value's dtype for NumPy arrays and tensors, else float32.
        trainable: trainable float variables are watched automatically by ``GradientTape`` and require
            gradients for ``backward()``.
        name: defaults to "variable".

    Example:
        >>> v = fastnn.Variable(np.zeros(3), name="bias")
        >>> v.assign_add([1.0, 2.0, 3.0]).numpy()
        array([1., 2., 3.])
    """

    __slots__ = ("_trainable", "_name", "autocast", "aggregation", "synchronization")

    def __init__(self, initializer, shape=None, dtype=None, trainable: bool = True, autocast: bool = True,
                 aggregation: str = "none", synchronization: str = "auto", name: str | None = None):
        if name is not None and not isinstance(name, str):
            raise ValueError(f"Variable: name must be a string, but received {name!r}")
        self._name = name or "variable"
        dt = dtypes.standardize_dtype(dtype, "Variable")
        if callable(initializer) and not isinstance(initializer, Tensor):
            if shape is None:
                raise ValueError(
                    f"Variable {self._name!r}: a callable initializer needs a shape, but shape is None"
                )
            value = initializer(tuple(shape), dtype=str(dt or dtypes.floatx))
        elif isinstance(initializer, str):
            raise ValueError(
                f"Variable {self._name!r}: string initializers ({initializer!r}) need fastnn.initializers; pass a "
                "value or a callable initializer(shape, dtype)"
            )
        else:
            value = initializer
        if dt is None:
            # A host NumPy array keeps its dtype on every backend (a buffer of another backend is not one).
            is_array = isinstance(value, (np.ndarray, Tensor)) or backend.is_buffer(value)
            dt = dtypes.to_buffer(value, op="Variable").dtype if is_array else dtypes.floatx
        # A Variable owns its storage, in C order (the fused optimizer kernel and copy-on-write rely on both).
        data = backend.array(dtypes.to_buffer(value, dt, op="Variable"), copy=True)
        if shape is not None and tuple(shape) != data.shape:
            raise ValueError(
                f"Variable {self._name!r}: the initial value has shape {data.shape}, but shape={tuple(shape)} "
                "was given"
            )
        self._data = data
        self._node = None
        self.grad = None
        _LIVE_VARIABLES.add(self)
        self._trainable = bool(trainable)
        self._requires_grad = self._trainable and dtypes.is_float(data.dtype)
        self.autocast = autocast
        self.aggregation = aggregation
        self.synchronization = synchronization

    @property
    def name(self) -> str:
        return self._name

    @property
    def path(self) -> str:
        return self._name

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        self._requires_grad = self._trainable and dtypes.is_float(self._data.dtype)

    @property
    def value(self) -> Tensor:
        """The current value as a Tensor (on the graph: gradients flow back to the variable)."""
        return _shape_ops.identity(self)

    def _checked(self, value, op: str):
        arr = dtypes.to_buffer(value, op=f"Variable.{op}")
        if arr.shape != self._data.shape:
            raise ValueError(
                f"Variable.{op}: the shape of variable {self._name!r} and of the value must match; "
                f"variable.shape={self._data.shape}, received value.shape={arr.shape}"
            )
        return arr

    # -- updates: copy-on-write ----------------------------------------------------------------------------------
    # Tensors are values (TensorFlow's semantics): a tensor computed from a variable, a view of it (reshape,
    # transpose, w[0], detach, value), the buffers a live graph node saved for its backward, and an array the user
    # took zero-copy (numpy(), np.asarray) all keep the values they saw when the variable changes later. An update
    # therefore writes in place only when nothing but this Variable references its buffer; otherwise it writes
    # into a fresh buffer that replaces ``_data`` and leaves the old one to its holders. Every such holder keeps a
    # Python reference to the ndarray (backward closures capture the ndarrays, NumPy views keep their ``.base``,
    # exported buffers keep their exporter), so the reference count of ``_data`` tells "held" from "private"
    # without any bookkeeping in the ops. The common case (an optimizer step after the graph was freed) stays in
    # place.
    def _buffer_is_shared(self) -> bool:
        data = self._data
        # _PRIVATE_REFCOUNT is this same count taken on a fresh Variable at import (so the interpreter's own
        # conventions, such as the temporary reference of the call, cancel out).
        return backend.private_refcount(data) > _private_refcount() or not backend.is_private_layout(data)

    def _own_buffer(self):
        """The buffer an in-place update may write: ``_data`` when nothing else holds it, else a private C-ordered
        copy that becomes ``_data`` (the old buffer stays with its holders). Kernels that update variables in place
        (the fused optimizer) call this right before writing; the returned array must not be kept across calls."""
        if self._buffer_is_shared():
            self._data = backend.copy(self._data)
        return self._data

    def assign(self, value) -> "Variable":
        """Sets the value (cast to the variable's dtype); the shape must match. Tensors and arrays computed from
        or viewing the old value keep it (see the copy-on-write note above)."""
        rec = _trace.active()
        if rec is not None:  # inside a step being recorded for the compiled step: a plan step of its own
            return rec.assign(self, "assign", value)
        arr = self._checked(value, "assign")
        if self._buffer_is_shared():
            self._data = backend.array(arr, dtype=self._data.dtype, copy=True)
        else:
            backend.copyto(self._data, arr, casting="unsafe")
        return self

    def assign_add(self, value) -> "Variable":
        rec = _trace.active()
        if rec is not None:
            return rec.assign(self, "assign_add", value)
        return self._update(backend.add, self._checked(value, "assign_add"))

    def assign_sub(self, value) -> "Variable":
        rec = _trace.active()
        if rec is not None:
            return rec.assign(self, "assign_sub", value)
        return self._update(backend.subtract, self._checked(value, "assign_sub"))

    def _update(self, ufunc, arr) -> "Variable":
        arr = backend.astype(arr, self._data.dtype, copy=False)
        if self._buffer_is_shared():
            self._data = ufunc(self._data, arr, out=backend.empty(self._data.shape, self._data.dtype))
        else:
            ufunc(self._data, arr, out=self._data)
        return self

    # NumPy boundary: printing formats the values on the host.
    def __repr__(self) -> str:
        body = np.array2string(backend.to_numpy(self._data), separator=", ", prefix="  ")
        return f"<fastnn.Variable path={self._name}, shape={self.shape}, dtype={self.dtype}, value={body}>"


_PRIVATE_REFCOUNTS = {}  # backend name -> the count of a private Variable's buffer


def _private_refcount() -> int:
    """The reference count of a fresh Variable's buffer, measured once per backend exactly as _buffer_is_shared
    counts (so the interpreter's and the backend's own temporary references cancel out)."""
    count = _PRIVATE_REFCOUNTS.get(backend.name)
    if count is None:
        probe = Variable(backend.zeros((1,), dtypes.floatx))
        data = probe._data
        count = _PRIVATE_REFCOUNTS[backend.name] = backend.private_refcount(data)
    return count


# The op modules import this one, so they are bound here, after Tensor and Variable exist.
from fastnn.autograd.ops import elementwise as _elementwise  # noqa: E402
from fastnn.autograd.ops import matmul as _matmul  # noqa: E402
from fastnn.autograd.ops import reduce as _reduce  # noqa: E402
from fastnn.autograd.ops import shape as _shape_ops  # noqa: E402
