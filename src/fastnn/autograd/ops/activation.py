"""Activations on the C++ kernels (forward and backward), with keras.ops's formulas and defaults.

Integer inputs become float32 (Keras's floatx); non-contiguous inputs are copied to C order first.
"""
from __future__ import annotations

import numbers

import numpy as np

from fastnn import backend as B
from fastnn.autograd.keras_attrs import set_keras_logits
from fastnn.autograd.ops._util import float_tensor, normalize_axis
from fastnn.autograd.tape import record


def _act(x, op, kernel, alpha=1.0):
    t = float_tensor(x, op)
    a = B.contiguous(t._data)
    y = B.activation_forward(a, kernel, alpha)

    def backward(g, needs):
        return (B.activation_backward(B.contiguous(g), a, y, kernel, alpha),)

    return record(y, (t,), backward, op)


def relu(x):
    """max(x, 0)."""
    return _act(x, "relu", "relu")


def relu6(x):
    """min(max(x, 0), 6)."""
    return _act(x, "relu6", "relu6")


def sigmoid(x):
    """1 / (1 + exp(-x)), stable for large |x|. The output remembers its logits (see _remember_logits)."""
    return _remember_logits(_act(x, "sigmoid", "sigmoid"), x)


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
    src = B.contiguous(B.moveaxis(a, ax, -1) if moved else a)
    y = forward(src)

    def backward(g, needs):
        gm = B.contiguous(B.moveaxis(g, ax, -1) if moved else g)
        dx = backward_kernel(gm, y)
        return (B.moveaxis(dx, -1, ax) if moved else dx,)

    return record(B.moveaxis(y, -1, ax) if moved else y, (t,), backward, op)


def _remember_logits(out, x):
    """Records ``x`` as the logits of ``out`` (a softmax or sigmoid), as Keras's TensorFlow backend sets
    ``output._keras_logits``: the crossentropies then compute from the logits instead of clipped probabilities
    (a saturated softmax gives Keras's 60.0, not log(1e-7) = 16.1, and keeps its gradient)."""
    set_keras_logits(out, float_tensor(x, "logits"))
    return out


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along ``axis`` (max-shifted). A tuple axis normalises over several axes."""
    if isinstance(axis, numbers.Integral):
        out = _last_axis(x, "softmax", axis, B.softmax_forward, B.softmax_backward)
    else:
        from fastnn.autograd.ops import elementwise

        out = elementwise.exp(log_softmax(x, axis))
    return _remember_logits(out, x)


def log_softmax(x, axis=-1):
    """x - logsumexp(x) along ``axis``."""
    if isinstance(axis, numbers.Integral):
        return _last_axis(x, "log_softmax", axis, B.log_softmax_forward, B.log_softmax_backward)
    from fastnn.autograd.ops import elementwise, reduce

    return elementwise.subtract(x, reduce.logsumexp(x, axis=axis, keepdims=True))


# -- Keras 3's further activations ---------------------------------------------------------------------------------
# Composed from differentiable ops exactly as Keras's TensorFlow backend composes them (keras/src/backend/tensorflow
# /nn.py), so values, gradients and the derivatives at kinks (from the ops' tie rules, which are TensorFlow's)
# agree with Keras. sparsemax is its own op (forward and backward below).
def _ew():
    from fastnn.autograd.ops import elementwise

    return elementwise


def celu(x, alpha=1.0):
    """max(x, 0) + alpha * expm1(min(x, 0) / alpha)."""
    e = _ew()
    t = float_tensor(x, "celu")
    alpha = float(alpha)
    if alpha == 0.0:
        raise ValueError("celu: alpha must be non-zero (it divides x), but received alpha=0.0")
    return e.add(e.maximum(t, 0.0), e.multiply(alpha, e.expm1(e.divide(e.minimum(t, 0.0), alpha))))


def glu(x, axis=-1):
    """a * sigmoid(b), where a and b are the two halves of x along ``axis``."""
    from fastnn.autograd.ops import shape

    t = float_tensor(x, "glu")
    if t.ndim == 0:
        raise ValueError("glu: x must have at least 1 dimension, but received shape ()")
    ax = normalize_axis(axis, t.ndim, "glu")[0]
    if t.shape[ax] % 2:
        raise ValueError(f"glu: axis size must be divisible by 2. Received: x.shape={t.shape} with axis={axis}")
    a, b = shape.split(t, 2, axis=ax)
    return _ew().multiply(a, sigmoid(b))


def hard_shrink(x, threshold=0.5):
    """x where |x| > threshold, else 0."""
    e = _ew()
    t = float_tensor(x, "hard_shrink")
    return e.where(e.greater(e.abs(t), threshold), t, 0.0)


def hard_silu(x):
    """x * hard_sigmoid(x): 0 below -3, x above 3, x (x + 3) / 6 between."""
    t = float_tensor(x, "hard_silu")
    return _ew().multiply(t, hard_sigmoid(t))


hard_swish = hard_silu


def hard_tanh(x):
    """x clipped to [-1, 1]."""
    return _ew().clip(float_tensor(x, "hard_tanh"), -1.0, 1.0)


def log_sigmoid(x):
    """log(sigmoid(x)) = -softplus(-x), stable for large |x|."""
    e = _ew()
    return e.negative(softplus(e.negative(float_tensor(x, "log_sigmoid"))))


def mish(x):
    """x * tanh(softplus(x))."""
    t = float_tensor(x, "mish")
    return _ew().multiply(t, tanh(softplus(t)))


def soft_shrink(x, threshold=0.5):
    """x - threshold above threshold, x + threshold below -threshold, 0 between."""
    e = _ew()
    t = float_tensor(x, "soft_shrink")
    inner = e.where(e.less(t, -threshold), e.add(t, threshold), 0.0)
    return e.where(e.greater(t, threshold), e.subtract(t, threshold), inner)


def sparse_plus(x):
    """0 for x <= -1, (x + 1)^2 / 4 for -1 < x < 1, x for x >= 1."""
    e = _ew()
    t = float_tensor(x, "sparse_plus")
    inner = e.where(e.less(t, 1.0), e.multiply(0.25, e.square(e.add(t, 1.0))), t)
    return e.where(e.less_equal(t, -1.0), 0.0, inner)


def sparse_sigmoid(x):
    """0 for x <= -1, (x + 1) / 2 for -1 < x < 1, 1 for x >= 1."""
    e = _ew()
    t = float_tensor(x, "sparse_sigmoid")
    inner = e.where(e.greater_equal(t, 1.0), 1.0, e.multiply(0.5, e.add(t, 1.0)))
    return e.where(e.less_equal(t, -1.0), 0.0, inner)


def squareplus(x, b=4):
    """(x + sqrt(x^2 + b)) / 2; ``b`` >= 0 sets the smoothness."""
    e = _ew()
    t = float_tensor(x, "squareplus")
    if isinstance(b, bool) or not isinstance(b, numbers.Real):
        raise TypeError(f"squareplus: b must be a number, but received b={b!r}")
    return e.divide(e.add(t, e.sqrt(e.add(e.square(t), float(b)))), 2.0)


def tanh_shrink(x):
    """x - tanh(x)."""
    t = float_tensor(x, "tanh_shrink")
    return _ew().subtract(t, tanh(t))


def threshold(x, threshold, default_value):
    """x where x > threshold, else default_value."""
    e = _ew()
    t = float_tensor(x, "threshold")
    return e.where(e.greater(t, threshold), t, default_value)


def sparsemax(x, axis=-1):
    """The Euclidean projection of x onto the probability simplex along ``axis`` (Martins & Astudillo, 2016):
    max(x - tau, 0) with tau chosen so that the result sums to 1.

    Keras 3.15.1 computes tau from the sum of the cumulative sums over the support instead of the k-th cumulative
    sum, which is wrong whenever the support has more than one element (keras-team/keras#23425, fixed upstream by
    #23469); fastnn follows the paper (and the fixed Keras). The gradient is the projection's Jacobian:
    dx = s * (g - sum(s * g) / |S|), s the support indicator.
    """
    t = float_tensor(x, "sparsemax")
    a = t._data
    if a.ndim == 0:
        raise ValueError("sparsemax: x must have at least 1 dimension, but received shape ()")
    ax = normalize_axis(axis, a.ndim, "sparsemax")[0]
    z = B.moveaxis(a, ax, -1)
    n = z.shape[-1]
    if n == 0 or z.size == 0:
        y = B.zeros_like(z)
        support = B.zeros(z.shape, bool)
    else:
        with B.errstate(invalid="ignore", divide="ignore"):
            zs = B.negative(B.sort(B.negative(z), axis=-1))  # descending
            cs = B.cumsum(zs, axis=-1)
            r = B.arange(1, n + 1, dtype=a.dtype)
            # the support size (>= 1 for finite x): how many zs - (cs - 1) / r are positive
            k = B.sum(B.greater(B.subtract(zs, B.divide(B.subtract(cs, 1), r)), 0), axis=-1, keepdims=True)
            cs_k = B.take_along_axis(cs, B.maximum(B.subtract(k, 1), 0), axis=-1)
            tau = B.divide(B.subtract(cs_k, 1), B.astype(k, a.dtype))
        with B.errstate(invalid="ignore"):
            y = B.astype(B.maximum(B.subtract(z, tau), 0), a.dtype, copy=False)
            # -inf entries get 0 by the formula; a NaN or +inf anywhere makes the whole row NaN (as softmax does).
            poisoned = B.any(B.logical_or(B.isnan(z), B.equal(z, np.inf)), axis=-1, keepdims=True)
            if B.item(B.any(poisoned)):
                y = B.astype(B.where(poisoned, np.nan, y), a.dtype, copy=False)
        support = B.greater(y, 0)
    size = B.astype(B.maximum(B.sum(support, axis=-1, keepdims=True), 1), a.dtype)

    def backward(g, needs):
        gm = B.where(support, B.moveaxis(g, ax, -1), 0)
        dx = B.subtract(gm, B.multiply(support, B.divide(B.sum(gm, axis=-1, keepdims=True), size)))
        return (B.moveaxis(dx, -1, ax),)

    return record(B.moveaxis(y, -1, ax), (t,), backward, "sparsemax")
