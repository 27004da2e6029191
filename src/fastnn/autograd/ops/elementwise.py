"""Elementwise arithmetic, comparisons and logic with NumPy broadcasting; bias add on the C++ kernel.

Binary ops promote their operands with Keras's rules (``fastnn.autograd.dtypes``), raise ValueError naming the op
and both shapes when the shapes cannot be broadcast, and reduce gradients back to each input's shape.
"""
from __future__ import annotations

import numpy as np

from fastnn import backend
from fastnn.autograd.ops._util import broadcast_error, float_tensor, promote, tensor, unbroadcast, xp
from fastnn.autograd.tape import record


def _binary(op, fn, x1, x2):
    (t1, t2), (a, b) = promote(op, x1, x2)
    try:
        y = fn(a, b)
    except ValueError:
        try:
            np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise broadcast_error(op, a.shape, b.shape) from None
        raise
    return t1, t2, a, b, y


# -- arithmetic ---------------------------------------------------------------------------------------------------
def add(x1, x2):
    """x1 + x2 with broadcasting."""
    if _is_bias_pattern(x1, x2):
        return bias_add(x1, x2)
    t1, t2, a, b, y = _binary("add", xp.add, x1, x2)

    def backward(g, needs):
        return (unbroadcast(g, a.shape) if needs[0] else None, unbroadcast(g, b.shape) if needs[1] else None)

    return record(y, (t1, t2), backward, "add")


def subtract(x1, x2):
    """x1 - x2 with broadcasting."""
    t1, t2, a, b, y = _binary("subtract", xp.subtract, x1, x2)

    def backward(g, needs):
        return (unbroadcast(g, a.shape) if needs[0] else None, unbroadcast(-g, b.shape) if needs[1] else None)

    return record(y, (t1, t2), backward, "subtract")


def multiply(x1, x2):
    """x1 * x2 with broadcasting."""
    t1, t2, a, b, y = _binary("multiply", xp.multiply, x1, x2)

    def backward(g, needs):
        return (unbroadcast(g * b, a.shape) if needs[0] else None, unbroadcast(g * a, b.shape) if needs[1] else None)

    return record(y, (t1, t2), backward, "multiply")


def _true_divide_inputs(x1, x2):
    (t1, t2), (a, b) = promote("divide", x1, x2)
    if a.dtype.kind != "f":  # Keras: dividing integers gives floatx
        a, b = a.astype(np.float32), b.astype(np.float32)
    return t1, t2, a, b


def divide(x1, x2):
    """x1 / x2 (true division; integer inputs give float32)."""
    t1, t2, a, b = _true_divide_inputs(x1, x2)
    try:
        with np.errstate(divide="ignore", invalid="ignore"):
            y = xp.true_divide(a, b)
    except ValueError:
        raise broadcast_error("divide", a.shape, b.shape) from None

    def backward(g, needs):
        with np.errstate(divide="ignore", invalid="ignore"):
            ga = unbroadcast(g / b, a.shape) if needs[0] else None
            gb = unbroadcast(-g * y / b, b.shape) if needs[1] else None
        return ga, gb

    return record(y, (t1, t2), backward, "divide")


def power(x1, x2):
    """x1 ** x2 elementwise. d/dx2 uses log(x1) where x1 > 0 and 0 elsewhere (as TensorFlow does)."""
    t1, t2, a, b, y = _binary("power", _np_power, x1, x2)

    def backward(g, needs):
        ga = gb = None
        with np.errstate(divide="ignore", invalid="ignore"):
            if needs[0]:
                ga = unbroadcast(g * b * xp.power(a, b - 1), a.shape)
            if needs[1]:
                safe = xp.where(a > 0, a, 1)
                gb = unbroadcast(g * y * xp.where(a > 0, xp.log(safe), 0), b.shape)
        return ga, gb

    return record(y, (t1, t2), backward, "power")


def _np_power(a, b):
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return xp.power(a, b)


def maximum(x1, x2):
    """Elementwise maximum; where equal, the gradient goes to x1 (as in TensorFlow)."""
    t1, t2, a, b, y = _binary("maximum", xp.maximum, x1, x2)

    def backward(g, needs):
        mask = a >= b
        return (unbroadcast(xp.where(mask, g, 0), a.shape) if needs[0] else None,
                unbroadcast(xp.where(mask, 0, g), b.shape) if needs[1] else None)

    return record(y, (t1, t2), backward, "maximum")


def minimum(x1, x2):
    """Elementwise minimum; where equal, the gradient goes to x1."""
    t1, t2, a, b, y = _binary("minimum", xp.minimum, x1, x2)

    def backward(g, needs):
        mask = a <= b
        return (unbroadcast(xp.where(mask, g, 0), a.shape) if needs[0] else None,
                unbroadcast(xp.where(mask, 0, g), b.shape) if needs[1] else None)

    return record(y, (t1, t2), backward, "minimum")


# -- unary ----------------------------------------------------------------------------------------------------
def _unary(op, x, fn, grad, *, to_float=True):
    t = float_tensor(x, op) if to_float else tensor(x, op)
    a = t._data
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        y = fn(a)

    def backward(g, needs):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return (grad(g, a, y),)

    return record(y, (t,), backward, op)


def negative(x):
    return _unary("negative", x, xp.negative, lambda g, a, y: -g, to_float=False)


def square(x):
    return _unary("square", x, xp.square, lambda g, a, y: g * (2 * a), to_float=False)


def sqrt(x):
    return _unary("sqrt", x, xp.sqrt, lambda g, a, y: g * 0.5 / y)


def exp(x):
    return _unary("exp", x, xp.exp, lambda g, a, y: g * y)


def expm1(x):
    """exp(x) - 1, accurate near 0."""
    return _unary("expm1", x, xp.expm1, lambda g, a, y: g * (y + 1))


def log(x):
    return _unary("log", x, xp.log, lambda g, a, y: g / a)


def log1p(x):
    return _unary("log1p", x, xp.log1p, lambda g, a, y: g / (1 + a))


def abs(x):  # noqa: A001 - keras.ops name
    return _unary("abs", x, xp.abs, lambda g, a, y: g * xp.sign(a), to_float=False)


absolute = abs


def sign(x):
    return _unary("sign", x, xp.sign, lambda g, a, y: xp.zeros_like(g), to_float=False)


def clip(x, x_min, x_max):
    """Clips x to [x_min, x_max]; the gradient passes where x_min <= x <= x_max (the bounds are constants)."""
    t = tensor(x, "clip")
    a = t._data
    if a.dtype == np.bool_:
        a = a.astype(np.int32)
    lo = np.asarray(x_min.numpy() if hasattr(x_min, "numpy") else x_min)
    hi = np.asarray(x_max.numpy() if hasattr(x_max, "numpy") else x_max)
    try:
        y = xp.clip(a, lo, hi).astype(a.dtype, copy=False)
    except ValueError:
        raise broadcast_error("clip", a.shape, lo.shape, hi.shape) from None

    def backward(g, needs):
        return (unbroadcast(xp.where((a >= lo) & (a <= hi), g, 0), a.shape),)

    return record(y, (t,), backward, "clip")


def where(condition, x1=None, x2=None):
    """Elements of x1 where condition holds, else of x2 (with broadcasting); ``where(condition)`` gives the
    indices of the true elements (a tuple of int arrays, like NumPy's nonzero)."""
    cond = tensor(condition, "where")._data.astype(bool, copy=False)
    if x1 is None and x2 is None:
        from fastnn.autograd.tensor import Tensor

        return tuple(Tensor._wrap(i.astype(np.int32)) for i in xp.nonzero(cond))
    if x1 is None or x2 is None:
        raise ValueError("where: x1 and x2 must both be given, or neither")
    (t1, t2), (a, b) = promote("where", x1, x2)
    try:
        y = xp.where(cond, a, b)
    except ValueError:
        raise broadcast_error("where", cond.shape, a.shape, b.shape) from None

    def backward(g, needs):
        return (unbroadcast(xp.where(cond, g, 0), a.shape) if needs[0] else None,
                unbroadcast(xp.where(cond, 0, g), b.shape) if needs[1] else None)

    return record(y, (t1, t2), backward, "where")


# -- comparisons and logic (no gradients) --------------------------------------------------------------------------
def _compare(op, fn, x1, x2):
    (t1, t2), (a, b) = promote(op, x1, x2)
    try:
        y = fn(a, b)
    except ValueError:
        raise broadcast_error(op, a.shape, b.shape) from None
    from fastnn.autograd.tensor import Tensor

    return Tensor._wrap(y)


def equal(x1, x2):
    return _compare("equal", xp.equal, x1, x2)


def not_equal(x1, x2):
    return _compare("not_equal", xp.not_equal, x1, x2)


def greater(x1, x2):
    return _compare("greater", xp.greater, x1, x2)


def greater_equal(x1, x2):
    return _compare("greater_equal", xp.greater_equal, x1, x2)


def less(x1, x2):
    return _compare("less", xp.less, x1, x2)


def less_equal(x1, x2):
    return _compare("less_equal", xp.less_equal, x1, x2)


def logical_and(x1, x2):
    return _compare("logical_and", xp.logical_and, x1, x2)


def logical_or(x1, x2):
    return _compare("logical_or", xp.logical_or, x1, x2)


def logical_not(x):
    from fastnn.autograd.tensor import Tensor

    return Tensor._wrap(xp.logical_not(tensor(x, "logical_not")._data))


# -- bias add (C++ kernel) ------------------------------------------------------------------------------------
def _is_bias_pattern(x1, x2) -> bool:
    a = getattr(x1, "_data", x1)
    b = getattr(x2, "_data", x2)
    return (
        isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and b.ndim == 1 and a.ndim >= 2
        and a.dtype == b.dtype and a.dtype.kind == "f" and a.dtype.itemsize >= 4
        and a.shape[-1] == b.shape[0] and a.size > 0
    )


def bias_add(x, bias):
    """x + bias over the last axis, on the C++ kernel (backward: a column sum, also in C++).

    Args:
        x: float tensor of shape (..., n).
        bias: tensor of shape (n,) with x's dtype.
    """
    t = tensor(x, "bias_add")
    tb = tensor(bias, "bias_add")
    a = backend.contiguous(t._data)
    b = backend.contiguous(tb._data)
    y = backend.bias_add_forward(a, b)

    def backward(g, needs):
        return (g if needs[0] else None, backend.bias_add_backward(backend.contiguous(g)) if needs[1] else None)

    return record(y, (t, tb), backward, "bias_add")
