"""Operators on symbolic tensors (``x + y``, ``2.0 * x``, ``x / y``, ``x ** 2``, ``-x``, ``x @ w``) as Keras 3
records them: one graph node per operation, of the classes of ``keras.src.ops.numpy`` (Add, Subtract, Multiply,
TrueDivide, Power, Negative, Matmul) with the operands as positional arguments in Keras's order (``3 + x`` is
``Add(3, x)``). Like Keras's operations they appear in ``model.operations``, ``summary()`` and ``get_config()``
but not in ``model.layers``.
"""
from __future__ import annotations

import numpy as np

from fastnn import backend as B
from fastnn.autograd import Tensor, no_grad
from fastnn.layers.layer import KerasTensor, Layer, Node, to_snake_case, unique_name


class SymbolicOp(Layer):
    """Base class: ``compute(*operands)`` on fastnn Tensors (and Python / NumPy constants)."""

    keras_module = "keras.src.ops.numpy"

    def __init__(self, name=None, **kwargs):
        super().__init__(name=name or unique_name(to_snake_case(type(self).__name__)), **kwargs)
        self.built = True

    def call(self, *operands):
        return self.compute(*operands)

    def compute(self, *operands):  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, *operands, **kwargs):
        if kwargs:
            raise TypeError(f'Operation "{self.name}" takes only positional operands, but received {sorted(kwargs)}')
        if any(isinstance(o, KerasTensor) for o in operands):
            return self._symbolic(operands)
        return self.compute(*[_as_operand(o) for o in operands])

    def _symbolic(self, operands):
        # The output shape: the operation run on zeros twice, with unknown axes as 1 and as 2; the axes whose size
        # changes are unknown (None) in the output too.
        outs = []
        for fill in (1, 2):
            values = [Tensor._wrap(B.zeros(tuple(fill if d is None else d for d in o.shape), o.dtype))
                      if isinstance(o, KerasTensor) else _as_operand(o) for o in operands]
            with no_grad():
                outs.append(self.compute(*values))
        a, b = outs
        shape = tuple(None if da != db else da for da, db in zip(a.shape, b.shape))
        out = KerasTensor(shape, str(a.dtype), history=(self, len(self._inbound_nodes), 0))
        self._inbound_nodes.append(Node(self, tuple(operands), {}, out))
        return out

    def compute_output_shape(self, input_shape):
        raise NotImplementedError(f"{type(self).__name__}: output shapes come from calling it on symbolic tensors")

    def get_config(self):
        return {"name": self.name}  # Keras's Operation config

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _as_operand(value):
    if isinstance(value, Tensor) or isinstance(value, (int, float, bool, np.generic)):
        return value
    return Tensor._wrap(B.asarray(value))


def _binary(x1, x2, forward, reflected):
    """``x1 <op> x2`` through the Tensor's operator (its reflected form when only x2 is a Tensor), so Python
    scalars stay weakly typed as in Keras (``3 + x`` keeps x's float32)."""
    if isinstance(x1, Tensor):
        return getattr(x1, forward)(x2)
    if isinstance(x2, Tensor):
        return getattr(x2, reflected)(x1)
    return getattr(Tensor._wrap(B.asarray(x1)), forward)(x2)


class Add(SymbolicOp):
    def compute(self, x1, x2):
        return _binary(x1, x2, "__add__", "__radd__")


class Subtract(SymbolicOp):
    def compute(self, x1, x2):
        return _binary(x1, x2, "__sub__", "__rsub__")


class Multiply(SymbolicOp):
    def compute(self, x1, x2):
        return _binary(x1, x2, "__mul__", "__rmul__")


class TrueDivide(SymbolicOp):
    def compute(self, x1, x2):
        return _binary(x1, x2, "__truediv__", "__rtruediv__")


class Power(SymbolicOp):
    def compute(self, x1, x2):
        return _binary(x1, x2, "__pow__", "__rpow__")


class Negative(SymbolicOp):
    def compute(self, x):
        return -(x if isinstance(x, Tensor) else Tensor._wrap(B.asarray(x)))


class Matmul(SymbolicOp):
    def compute(self, x1, x2):
        return _binary(x1, x2, "__matmul__", "__rmatmul__")


class NotEqual(SymbolicOp):
    """Keras 3.15's functional configs record the masks of Masking and ``Embedding(mask_zero=True)`` as NotEqual /
    Any operations feeding the next layer's ``mask=`` argument; fastnn reads those graphs (h-core, issue 14)."""

    def compute(self, x1, x2):
        return _binary(x1, x2, "__ne__", "__ne__")


class Any(SymbolicOp):
    """``keras.ops.any(x, axis, keepdims)`` (boolean, not differentiable), for the mask nodes of Keras's configs."""

    def __init__(self, axis=None, keepdims=False, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.axis = [axis] if isinstance(axis, int) else axis
        self.keepdims = bool(keepdims)

    def compute(self, x):
        data = x._data if isinstance(x, Tensor) else B.asarray(x)
        axis = None if self.axis is None else tuple(self.axis)
        return Tensor._wrap(B.any(data, axis=axis, keepdims=self.keepdims))

    def get_config(self):
        axis = self.axis[0] if isinstance(self.axis, list) and len(self.axis) == 1 else self.axis
        return {"name": self.name, "axis": axis, "keepdims": self.keepdims}


def _bool_data(x):
    return x._data if isinstance(x, Tensor) else B.asarray(x)


class LogicalOr(SymbolicOp):
    """``keras.ops.logical_or``: a merge layer's mask (Add, Concatenate ... of masked inputs) in Keras's configs."""

    def compute(self, x1, x2):
        return Tensor._wrap(B.logical_or(_bool_data(x1), _bool_data(x2)))


class LogicalAnd(SymbolicOp):
    """``keras.ops.logical_and``: masks combined in Keras's configs."""

    def compute(self, x1, x2):
        return Tensor._wrap(B.logical_and(_bool_data(x1), _bool_data(x2)))


class ConvertToTensor(SymbolicOp):
    """``keras.ops.convert_to_tensor``: Keras's Attention layers pass their query mask on through it, and Keras 3.15
    writes that into functional configs as a node of its own (the identity here; ``dtype`` casts)."""

    keras_module = "keras.src.ops.core"

    def __init__(self, dtype=None, sparse=None, ragged=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.target_dtype, self.sparse, self.ragged = dtype, sparse, ragged

    def compute(self, x):
        t = x if isinstance(x, Tensor) else Tensor._wrap(B.asarray(x))
        if self.target_dtype is not None and str(t.dtype) != str(self.target_dtype):
            t = Tensor._wrap(B.astype(t._data, self.target_dtype))
        return t

    def get_config(self):
        return {"name": self.name, "dtype": self.target_dtype, "sparse": self.sparse, "ragged": self.ragged}


OPS = {cls.__name__: cls for cls in (Add, Subtract, Multiply, TrueDivide, Power, Negative, Matmul, NotEqual, Any,
                                     LogicalOr, LogicalAnd, ConvertToTensor)}
