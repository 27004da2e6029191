"""Activation functions by name (``keras.activations``): ``get("relu")`` gives the function.

Every activation takes and returns fastnn Tensors and is differentiable. Custom callables work too, e.g.
``Dense(64, activation=lambda x: x ** 2)``, because operators on Tensors are differentiable ops.
"""
from __future__ import annotations

from fastnn import _registry
from fastnn.autograd.ops import _util
from fastnn.autograd.ops import activation as _act
from fastnn.autograd.ops import elementwise as _ew


def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """max(x, 0), with Keras's optional ``negative_slope`` (below ``threshold``), ``max_value`` and ``threshold``
    (values at or below it become 0).

    Composed exactly as ``keras.activations.relu`` composes it, so values and derivatives agree with Keras at the
    kinks too (x == threshold gives 0; x == max_value has derivative 0 when max_value is 6, 1 otherwise).
    """
    if negative_slope == 0.0 and max_value is None and threshold == 0.0:
        return _act.relu(x)
    x = _util.float_tensor(x, "relu")
    if negative_slope != 0.0:
        if max_value is None and threshold == 0:
            return _act.leaky_relu(x, negative_slope)
        shifted = _ew.add(_ew.negative(x), threshold) if threshold != 0 else _ew.negative(x)
        negative_part = _act.relu(shifted)
    clip_max = max_value is not None
    if threshold != 0:
        y = _ew.where(_ew.greater(x, threshold), x, 0.0)
    elif max_value == 6:
        y = _act.relu6(x)  # Keras takes the relu6 kernel here: derivative 0 at 6, unlike clip's 1
        clip_max = False
    else:
        y = _act.relu(x)
    if clip_max:
        y = _ew.clip(y, 0.0, max_value)
    if negative_slope != 0.0:
        y = _ew.subtract(y, _ew.multiply(negative_slope, negative_part))
    return y


def linear(x):
    return x


def sigmoid(x):
    return _act.sigmoid(x)


def tanh(x):
    return _act.tanh(x)


def softmax(x, axis=-1):
    return _act.softmax(x, axis=axis)


def log_softmax(x, axis=-1):
    return _act.log_softmax(x, axis=axis)


def elu(x, alpha=1.0):
    return _act.elu(x, alpha)


def selu(x):
    return _act.selu(x)


def gelu(x, approximate=False):
    """Keras's activations.gelu defaults to the exact (erf) form."""
    return _act.gelu(x, approximate=approximate)


def silu(x):
    return _act.silu(x)


swish = silu


def leaky_relu(x, negative_slope=0.2):
    return _act.leaky_relu(x, negative_slope)


def relu6(x):
    return _act.relu6(x)


def softplus(x):
    return _act.softplus(x)


def softsign(x):
    return _act.softsign(x)


def hard_sigmoid(x):
    return _act.hard_sigmoid(x)


def exponential(x):
    return _ew.exp(x)


def celu(x, alpha=1.0):
    """Continuously differentiable ELU: max(x, 0) + alpha * (exp(min(x, 0) / alpha) - 1)."""
    return _act.celu(x, alpha=alpha)


def glu(x, axis=-1):
    """Gated linear unit: a * sigmoid(b), x split into halves a, b along ``axis``."""
    return _act.glu(x, axis=axis)


def hard_shrink(x, threshold=0.5):
    """x where |x| > threshold, else 0."""
    return _act.hard_shrink(x, threshold=threshold)


def hard_silu(x):
    """x * hard_sigmoid(x) (also called hard_swish)."""
    return _act.hard_silu(x)


hard_swish = hard_silu


def hard_tanh(x):
    """x clipped to [-1, 1]."""
    return _act.hard_tanh(x)


def log_sigmoid(x):
    """log(sigmoid(x))."""
    return _act.log_sigmoid(x)


def mish(x):
    """x * tanh(softplus(x))."""
    return _act.mish(x)


def soft_shrink(x, threshold=0.5):
    """x - threshold above threshold, x + threshold below -threshold, 0 between."""
    return _act.soft_shrink(x, threshold=threshold)


def sparse_plus(x):
    """0 for x <= -1, (x + 1)^2 / 4 for -1 < x < 1, x for x >= 1."""
    return _act.sparse_plus(x)


def sparse_sigmoid(x):
    """0 for x <= -1, (x + 1) / 2 for -1 < x < 1, 1 for x >= 1."""
    return _act.sparse_sigmoid(x)


def sparsemax(x, axis=-1):
    """Projection onto the probability simplex along ``axis`` (see fastnn.ops.sparsemax)."""
    return _act.sparsemax(x, axis=axis)


def squareplus(x, b=4):
    """(x + sqrt(x^2 + b)) / 2."""
    return _act.squareplus(x, b=b)


def tanh_shrink(x):
    """x - tanh(x)."""
    return _act.tanh_shrink(x)


def threshold(x, threshold, default_value):
    """x where x > threshold, else default_value."""
    return _act.threshold(x, threshold, default_value)


_TABLE = {f.__name__: f for f in (relu, linear, sigmoid, tanh, softmax, log_softmax, elu, selu, gelu, silu,
                                   leaky_relu, relu6, softplus, softsign, hard_sigmoid, exponential, celu, glu,
                                   hard_shrink, hard_silu, hard_tanh, log_sigmoid, mish, soft_shrink, sparse_plus,
                                   sparse_sigmoid, sparsemax, squareplus, tanh_shrink, threshold)}
_TABLE["swish"] = silu
_TABLE["hard_swish"] = hard_silu


def get(identifier):
    """The activation function for a name, a config (what ``serialize`` wrote, Keras's or fastnn's), None
    (linear) or a callable (returned as is). Names and configs of custom functions are found through the custom
    objects (``custom_objects=`` of the loading call, ``custom_object_scope``, ``register_keras_serializable``);
    a serialized Python lambda only loads with safe mode off."""
    if identifier is None:
        return linear
    if isinstance(identifier, dict):
        from fastnn.saving import serialization_lib

        if "class_name" not in identifier and "value" in identifier:
            # Keras 3.15's activations.serialize writes a lambda as its bare {"value": func_dump(...)}.
            identifier = {"class_name": "__lambda__", "config": identifier}
        obj = serialization_lib.deserialize_keras_object(identifier)
        if callable(obj):
            return obj
        raise ValueError(f"Could not interpret activation function identifier: {identifier!r}")
    if isinstance(identifier, str):
        from fastnn.saving import object_registration

        custom = object_registration.get_registered_object(identifier)
        if custom is not None:
            return custom
        return _registry.lookup("activation function", _TABLE, identifier, instantiate=False)
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret activation function identifier: {identifier!r}")


def serialize(activation):
    """As Keras's ``activations.serialize``: a built-in activation by its name ("relu"); any other function as
    ``serialize_keras_object`` writes it (by its registered name, e.g. "my_package>my_fn"); a Python lambda as
    its bytecode config (``"__lambda__"``; it loads only with safe mode off); an object with ``get_config`` as its
    full config. Never the live function."""
    from fastnn.saving import serialization_lib

    name = getattr(activation, "__name__", None)
    if name in _TABLE and _TABLE[name] is activation and name == activation.__name__:
        return name
    if not callable(activation):
        raise ValueError(f"Unknown activation function '{activation}' cannot be serialized: expected a function "
                         "or a callable object")
    return serialization_lib.serialize_keras_object(activation)


def deserialize(config, custom_objects=None):
    """The activation function of ``serialize``'s output."""
    from fastnn.saving import object_registration

    with object_registration.CustomObjectScope({**object_registration._scope_dict(), **(custom_objects or {})}):
        return get(config)
