"""Elementwise arithmetic, comparisons and logic with NumPy broadcasting; bias add on the C++ kernel.

Binary ops promote their operands with Keras's rules (``fastnn.autograd.dtypes``), raise ValueError naming the op
and both shapes when the shapes cannot be broadcast, and reduce gradients back to each input's shape
(``B.unbroadcast``). Forward and backward compute through ``fastnn.backend`` only.
"""
from __future__ import annotations

import numpy as np

from fastnn import backend as B
from fastnn.autograd.ops._util import broadcast_error, float_tensor, promote, tensor
from fastnn.autograd.tape import record
from fastnn.autograd.tensor import Tensor


def _binary(op, fn, x1, x2):
    (t1, t2), (a, b) = promote(op, x1, x2)
    try:
        y = fn(a, b)
    except ValueError:
        try:
            B.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise broadcast_error(op, a.shape, b.shape) from None
        raise
    return t1, t2, a, b, y


# -- arithmetic ---------------------------------------------------------------------------------------------------
def add(x1, x2):
    """x1 + x2 with broadcasting."""
    if _is_bias_pattern(x1, x2):
        return bias_add(x1, x2)
    t1, t2, a, b, y = _binary("add", B.add, x1, x2)

    def backward(g, needs):
        return (B.unbroadcast(g, a.shape) if needs[0] else None, B.unbroadcast(g, b.shape) if needs[1] else None)

    return record(y, (t1, t2), backward, "add")


def add_relu(x1, x2):
    """relu(x1 + x2) with broadcasting as ONE node on ``B.add_relu``: the bits of ``add`` then ``activation.relu``
    (forward and both gradients), one pass over the output fewer; for a caller that sees a residual Add followed by
    a ReLU (the compiled step's tracer)."""
    t1, t2, a, b, y = _binary("add_relu", B.add_relu, x1, x2)

    def backward(g, needs):
        g = B.activation_backward(B.contiguous(g), y, y, "relu")  # the ReLU backward's rule: g where y > 0, else 0
        return (B.unbroadcast(g, a.shape) if needs[0] else None, B.unbroadcast(g, b.shape) if needs[1] else None)

    return record(y, (t1, t2), backward, "add_relu")


def subtract(x1, x2):
    """x1 - x2 with broadcasting."""
    t1, t2, a, b, y = _binary("subtract", B.subtract, x1, x2)

    def backward(g, needs):
        return (B.unbroadcast(g, a.shape) if needs[0] else None,
                B.unbroadcast(B.negative(g), b.shape) if needs[1] else None)

    return record(y, (t1, t2), backward, "subtract")


def multiply(x1, x2):
    """x1 * x2 with broadcasting."""
    t1, t2, a, b, y = _binary("multiply", B.multiply, x1, x2)

    def backward(g, needs):
        return (B.unbroadcast(B.multiply(g, b), a.shape) if needs[0] else None,
                B.unbroadcast(B.multiply(g, a), b.shape) if needs[1] else None)

    return record(y, (t1, t2), backward, "multiply")


def _true_divide_inputs(x1, x2):
    (t1, t2), (a, b) = promote("divide", x1, x2)
    if a.dtype.kind != "f":  # Keras: dividing integers gives floatx
        a, b = B.astype(a, np.float32), B.astype(b, np.float32)
    return t1, t2, a, b


def divide(x1, x2):
    """x1 / x2 (true division; integer inputs give float32)."""
    t1, t2, a, b = _true_divide_inputs(x1, x2)
    try:
        with B.errstate(divide="ignore", invalid="ignore"):
            y = B.true_divide(a, b)
    except ValueError:
        raise broadcast_error("divide", a.shape, b.shape) from None

    def backward(g, needs):
        with B.errstate(divide="ignore", invalid="ignore"):
            ga = B.unbroadcast(B.divide(g, b), a.shape) if needs[0] else None
            gb = B.unbroadcast(B.divide(B.multiply(B.negative(g), y), b), b.shape) if needs[1] else None  # -g*y/b
        return ga, gb

    return record(y, (t1, t2), backward, "divide")


def power(x1, x2):
    """x1 ** x2 elementwise. d/dx2 uses log(x1) where x1 > 0 and 0 elsewhere (as TensorFlow does)."""
    t1, t2, a, b, y = _binary("power", _power_quiet, x1, x2)

    def backward(g, needs):
        ga = gb = None
        with B.errstate(divide="ignore", invalid="ignore"):
            if needs[0]:  # g * b * a**(b - 1)
                ga = B.unbroadcast(B.multiply(B.multiply(g, b), B.power(a, B.subtract(b, 1))), a.shape)
            if needs[1]:  # g * y * log(a), 0 where a <= 0
                positive = B.greater(a, 0)
                log_a = B.where(positive, B.log(B.where(positive, a, 1)), 0)
                gb = B.unbroadcast(B.multiply(B.multiply(g, y), log_a), b.shape)
        return ga, gb

    return record(y, (t1, t2), backward, "power")


def _power_quiet(a, b):
    with B.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return B.power(a, b)


def maximum(x1, x2):
    """Elementwise maximum; where equal, the gradient goes to x1 (as in TensorFlow)."""
    t1, t2, a, b, y = _binary("maximum", B.maximum, x1, x2)

    def backward(g, needs):
        mask = B.greater_equal(a, b)
        return (B.unbroadcast(B.where(mask, g, 0), a.shape) if needs[0] else None,
                B.unbroadcast(B.where(mask, 0, g), b.shape) if needs[1] else None)

    return record(y, (t1, t2), backward, "maximum")


def minimum(x1, x2):
    """Elementwise minimum; where equal, the gradient goes to x1."""
    t1, t2, a, b, y = _binary("minimum", B.minimum, x1, x2)

    def backward(g, needs):
        mask = B.less_equal(a, b)
        return (B.unbroadcast(B.where(mask, g, 0), a.shape) if needs[0] else None,
                B.unbroadcast(B.where(mask, 0, g), b.shape) if needs[1] else None)

    return record(y, (t1, t2), backward, "minimum")


# -- unary ----------------------------------------------------------------------------------------------------
# Each op passes ``B.<function>`` as looked up when the op is called (never bound at import), and its ``grad``
# calls ``B`` functions, so it computes on whichever backend is active.
def _unary(op, x, fn, grad, *, to_float=True):
    t = float_tensor(x, op) if to_float else tensor(x, op)
    a = t._data
    with B.errstate(divide="ignore", invalid="ignore", over="ignore"):
        y = fn(a)

    def backward(g, needs):
        with B.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return (grad(g, a, y),)

    return record(y, (t,), backward, op)


def negative(x):
    return _unary("negative", x, B.negative, lambda g, a, y: B.negative(g), to_float=False)


def square(x):
    return _unary("square", x, B.square, lambda g, a, y: B.multiply(g, B.multiply(2, a)), to_float=False)


def sqrt(x):
    return _unary("sqrt", x, B.sqrt, lambda g, a, y: B.divide(B.multiply(g, 0.5), y))


def exp(x):
    return _unary("exp", x, B.exp, lambda g, a, y: B.multiply(g, y))


def expm1(x):
    """exp(x) - 1, accurate near 0."""
    return _unary("expm1", x, B.expm1, lambda g, a, y: B.multiply(g, B.add(y, 1)))


def log(x):
    return _unary("log", x, B.log, lambda g, a, y: B.divide(g, a))


def log1p(x):
    return _unary("log1p", x, B.log1p, lambda g, a, y: B.divide(g, B.add(1, a)))


def abs(x):  # noqa: A001 - keras.ops name
    return _unary("abs", x, B.abs, lambda g, a, y: B.multiply(g, B.sign(a)), to_float=False)


absolute = abs


def sign(x):
    return _unary("sign", x, B.sign, lambda g, a, y: B.zeros_like(g), to_float=False)


def clip(x, x_min, x_max):
    """Clips x to [x_min, x_max]; the gradient passes where x_min <= x <= x_max (the bounds are constants)."""
    t = tensor(x, "clip")
    a = t._data
    if a.dtype == np.bool_:
        a = B.astype(a, np.int32)
    # The bounds as buffers of their own dtype (a Python float is float64 here, as it always was: the result is
    # cast back to x's dtype).
    lo = B.asarray(x_min._data if isinstance(x_min, Tensor) else x_min)
    hi = B.asarray(x_max._data if isinstance(x_max, Tensor) else x_max)
    try:
        if a.dtype.kind == "f" and _is_number(x_min) and _is_number(x_max):
            # Python-number bounds straight to the kernel: the same result as the float64 0-D bounds (no float of
            # a's dtype lies between a bound and its rounding), without the NumPy fallback's promotion and cast.
            y = B.clip(a, x_min, x_max)
        else:
            y = B.astype(B.clip(a, lo, hi), a.dtype, copy=False)
    except ValueError:
        raise broadcast_error("clip", a.shape, lo.shape, hi.shape) from None

    def backward(g, needs):
        inside = B.logical_and(B.greater_equal(a, lo), B.less_equal(a, hi))
        return (B.unbroadcast(B.where(inside, g, 0), a.shape),)

    return record(y, (t,), backward, "clip")


def _is_number(v) -> bool:
    return type(v) in (float, int)


def where(condition, x1=None, x2=None):
    """Elements of x1 where condition holds, else of x2 (with broadcasting); ``where(condition)`` gives the
    indices of the true elements (a tuple of int arrays, like NumPy's nonzero)."""
    cond = B.astype(tensor(condition, "where")._data, bool, copy=False)
    if x1 is None and x2 is None:
        return tuple(Tensor._wrap(B.astype(i, np.int32)) for i in B.nonzero(cond))
    if x1 is None or x2 is None:
        raise ValueError("where: x1 and x2 must both be given, or neither")
    (t1, t2), (a, b) = promote("where", x1, x2)
    try:
        y = B.where(cond, a, b)
    except ValueError:
        raise broadcast_error("where", cond.shape, a.shape, b.shape) from None

    def backward(g, needs):
        return (B.unbroadcast(B.where(cond, g, 0), a.shape) if needs[0] else None,
                B.unbroadcast(B.where(cond, 0, g), b.shape) if needs[1] else None)

    return record(y, (t1, t2), backward, "where")


# -- comparisons and logic (no gradients) --------------------------------------------------------------------------
def _compare(op, fn, x1, x2):
    (t1, t2), (a, b) = promote(op, x1, x2)
    try:
        y = fn(a, b)
    except ValueError:
        raise broadcast_error(op, a.shape, b.shape) from None
    return Tensor._wrap(y)


def equal(x1, x2):
    return _compare("equal", B.equal, x1, x2)


def not_equal(x1, x2):
    return _compare("not_equal", B.not_equal, x1, x2)


def greater(x1, x2):
    return _compare("greater", B.greater, x1, x2)


def greater_equal(x1, x2):
    return _compare("greater_equal", B.greater_equal, x1, x2)


def less(x1, x2):
    return _compare("less", B.less, x1, x2)


def less_equal(x1, x2):
    return _compare("less_equal", B.less_equal, x1, x2)


def logical_and(x1, x2):
    return _compare("logical_and", B.logical_and, x1, x2)


def logical_or(x1, x2):
    return _compare("logical_or", B.logical_or, x1, x2)


def logical_not(x):
    return Tensor._wrap(B.logical_not(tensor(x, "logical_not")._data))


# -- bias add (C++ kernel) ------------------------------------------------------------------------------------
def _is_bias_pattern(x1, x2) -> bool:
    """Whether x1 + x2 is a bias add: tensors or buffers of shape (..., n) and (n,) of one float dtype."""
    # A Tensor's data always is a buffer; only other operands need the (slower) backend check.
    a = x1._data if isinstance(x1, Tensor) else x1 if B.is_buffer(x1) else None
    b = x2._data if isinstance(x2, Tensor) else x2 if B.is_buffer(x2) else None
    return (
        b is not None and b.ndim == 1 and a is not None and a.ndim >= 2
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
    a = B.contiguous(t._data)
    b = B.contiguous(tb._data)
    y = B.bias_add_forward(a, b)

    def backward(g, needs):
        return (g if needs[0] else None, B.bias_add_backward(B.contiguous(g)) if needs[1] else None)

    return record(y, (t, tb), backward, "bias_add")
