"""Activations on the C++ kernels (forward and backward), with keras.ops's formulas and defaults.

Integer inputs become float32 (Keras's floatx); non-contiguous inputs are copied to C order first.
"""
from __future__ import annotations

import numbers

from fastnn import backend
from fastnn.autograd.ops._util import float_tensor, normalize_axis, xp
from fastnn.autograd.tape import record


def _act(x, op, kernel, alpha=1.0):
    t = float_tensor(x, op)
    a = backend.contiguous(t._data)
    y = backend.activation_forward(a, kernel, alpha)

    def backward(g, needs):
        return (backend.activation_backward(backend.contiguous(g), a, y, kernel, alpha),)

    return record(y, (t,), backward, op)


def relu(x):
    """max(x, 0)."""
    return _act(x, "relu", "relu")


def relu6(x):
    """min(max(x, 0), 6)."""
    return _act(x, "relu6", "relu6")


def sigmoid(x):
    """1 / (1 + exp(-x)), stable for large |x|."""
    return _act(x, "sigmoid", "sigmoid")


def tanh(x):
    return _act(x, "tanh", "tanh")


def elu(x, alpha=1.0):
    """x if x > 0 else alpha * (exp(x) - 1)."""
    return _act(x, "elu", "elu", float(alpha))


def selu(x):
    """scale * elu(x, alpha) with alpha = 1.67326324 and scale = 1.05070098."""
    return _act(x, "selu", "selu")


def gelu(x, approximate=True):
    """Gaussian error linear unit; keras.ops's default is the tanh approximation (``approximate=True``)."""
    return _act(x, "gelu", "gelu_tanh" if approximate else "gelu")


def silu(x):
    """x * sigmoid(x) (also called swish)."""
    return _act(x, "silu", "silu")


swish = silu


def leaky_relu(x, negative_slope=0.2):
    """x if x >= 0 else negative_slope * x."""
    return _act(x, "leaky_relu", "leaky_relu", float(negative_slope))


def softplus(x):
    """log(1 + exp(x)), stable for large |x|."""
    return _act(x, "softplus", "softplus")


def softsign(x):
    """x / (1 + |x|)."""
    return _act(x, "softsign", "softsign")


def hard_sigmoid(x):
    """relu6(x + 3) / 6 (Keras 3's definition)."""
    return _act(x, "hard_sigmoid", "hard_sigmoid")


def _last_axis(x, op, axis, forward, backward_kernel):
    """Runs a kernel over the last axis, moving ``axis`` there first when needed."""
    t = float_tensor(x, op)
    a = t._data
    if a.ndim == 0:
        raise ValueError(f"{op}: x must have at least 1 dimension, but received shape ()")
    ax = normalize_axis(axis, a.ndim, op)[0]
    moved = ax != a.ndim - 1
    src = backend.contiguous(xp.moveaxis(a, ax, -1) if moved else a)
    y = forward(src)

    def backward(g, needs):
        gm = backend.contiguous(xp.moveaxis(g, ax, -1) if moved else g)
        dx = backward_kernel(gm, y)
        return (xp.moveaxis(dx, -1, ax) if moved else dx,)

    return record(xp.moveaxis(y, -1, ax) if moved else y, (t,), backward, op)


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along ``axis`` (max-shifted). A tuple axis normalises over several axes."""
    if isinstance(axis, numbers.Integral):
        return _last_axis(x, "softmax", axis, backend.softmax_forward, backend.softmax_backward)
    from fastnn.autograd.ops import elementwise, reduce

    return elementwise.exp(log_softmax(x, axis))


def log_softmax(x, axis=-1):
    """x - logsumexp(x) along ``axis``."""
    if isinstance(axis, numbers.Integral):
        return _last_axis(x, "log_softmax", axis, backend.log_softmax_forward, backend.log_softmax_backward)
    from fastnn.autograd.ops import elementwise, reduce

    return elementwise.subtract(x, reduce.logsumexp(x, axis=axis, keepdims=True))
