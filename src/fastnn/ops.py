"""The keras.ops-style functional API (same names, argument names and semantics as ``keras.ops``).

Every function accepts fastnn Tensors, NumPy arrays, nested lists and Python scalars, returns a
``fastnn.Tensor``, and is differentiable through ``fastnn.GradientTape`` and ``Tensor.backward()`` wherever
the math allows. Dtypes follow Keras: Python floats are float32, ints int32, Python scalars adapt to the other
operand's dtype, integers mixed with floats give the float dtype, and float-only functions (exp, sqrt,
activations, ...) turn integer inputs into float32.

Example:
    >>> import fastnn, numpy as np
    >>> x = fastnn.Variable(np.array([[1.0, -2.0]]))
    >>> with fastnn.GradientTape() as tape:
    ...     loss = fastnn.ops.sum(fastnn.ops.relu(x) ** 2)
    >>> tape.gradient(loss, x).numpy()
    array([[2., 0.]])
"""
from __future__ import annotations

from fastnn.autograd.ops.activation import (
    celu,
    elu,
    gelu,
    glu,
    hard_shrink,
    hard_sigmoid,
    hard_silu,
    hard_swish,
    hard_tanh,
    leaky_relu,
    log_sigmoid,
    log_softmax,
    relu,
    relu6,
    selu,
    sigmoid,
    silu,
    soft_shrink,
    softmax,
    softplus,
    softsign,
    sparse_plus,
    sparse_sigmoid,
    sparsemax,
    squareplus,
    swish,
    tanh,
    tanh_shrink,
    threshold,
)
from fastnn.autograd.ops.creation import (
    arange,
    convert_to_tensor,
    full,
    full_like,
    ones,
    ones_like,
    zeros,
    zeros_like,
)
from fastnn.autograd.ops.elementwise import (
    abs,
    absolute,
    add,
    bias_add,
    clip,
    divide,
    equal,
    exp,
    expm1,
    greater,
    greater_equal,
    less,
    less_equal,
    log,
    log1p,
    logical_and,
    logical_not,
    logical_or,
    maximum,
    minimum,
    multiply,
    negative,
    not_equal,
    power,
    sign,
    sqrt,
    square,
    subtract,
    where,
)
from fastnn.autograd.ops.loss import binary_crossentropy, categorical_crossentropy, sparse_categorical_crossentropy
from fastnn.autograd.ops.matmul import dot, matmul
from fastnn.autograd.ops.reduce import (
    amax,
    amin,
    argmax,
    argmin,
    cumsum,
    logsumexp,
    max,
    mean,
    min,
    prod,
    std,
    sum,
    var,
)
from fastnn.autograd.ops.shape import (
    broadcast_to,
    cast,
    concatenate,
    expand_dims,
    moveaxis,
    one_hot,
    pad,
    repeat,
    reshape,
    split,
    squeeze,
    stack,
    take,
    tile,
    transpose,
)
from fastnn.autograd.ops.norm import moments  # one node, two outputs (mean, variance)


# --- added by h-poollayers ---
from fastnn.autograd.ops.pool import average_pool, max_pool  # noqa: E402  (NHWC kernels; 1-D and channels_first)
from fastnn.autograd.ops.norm import batch_normalization  # noqa: E402


def convert_to_numpy(x):
    """The values of ``x`` as a NumPy array (zero-copy for tensors on the CPU)."""
    from fastnn import backend as B
    from fastnn.autograd import dtypes

    return B.to_numpy(dtypes.to_buffer(x, op="convert_to_numpy"))


def shape(x):
    """The shape of ``x`` as a tuple."""
    return tuple(convert_to_tensor(x).shape)


def stop_gradient(variable):
    """The same values, cut from the graph (no gradient flows back through it)."""
    return convert_to_tensor(variable).detach()



# --- added by h-convlayers: convolutions on the C++ NHWC kernels (1-D and 2-D, channels_last / channels_first) ---
from fastnn.autograd.ops.conv import conv, conv_transpose, depthwise_conv, separable_conv  # noqa: E402


__all__ = [name for name in dir() if not name.startswith("_") and name not in ("annotations",)]
