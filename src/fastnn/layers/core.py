"""Core layers: Dense, Activation, Dropout, Flatten, Lambda (and Identity)."""
from __future__ import annotations

import numbers

import numpy as np

from fastnn import activations as _activations
from fastnn import constraints as _constraints
from fastnn import initializers as _initializers
from fastnn import regularizers as _regularizers
from fastnn import utils as _utils
from fastnn.autograd import Tensor
from fastnn.autograd.ops import elementwise as _ew
from fastnn.autograd.ops import nn as _nn
from fastnn.autograd.ops import shape as _shape
from fastnn.layers.layer import InputSpec, Layer, shape_str


def _positive_int(layer, arg, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"Received an invalid value for `{arg}`, expected a positive integer. Received: {arg}={value!r} "
                         f"(layer {layer})")
    return int(value)


class Dense(Layer):
    """Densely connected layer: ``activation(inputs @ kernel + bias)``.

    Args:
        units: positive int, the output size.
        activation: name or callable (None: linear).
        use_bias: whether to add a bias.
        kernel_initializer: default "glorot_uniform"; kernel shape (input_dim, units) as in Keras.
        bias_initializer: default "zeros".
        kernel_regularizer, bias_regularizer, activity_regularizer, kernel_constraint, bias_constraint.

    Shapes: (..., input_dim) -> (..., units). ReLU and linear activations run fused into the GEMM epilogue.

    Example:
        >>> Dense(4, activation="relu")(np.ones((2, 3), "float32")).shape
        (2, 4)
    """

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, lora_rank=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.units = _positive_int("Dense", "units", units)
        self.activation = _activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _initializers.get(kernel_initializer)
        self.bias_initializer = _initializers.get(bias_initializer)
        self.kernel_regularizer = _regularizers.get(kernel_regularizer)
        self.bias_regularizer = _regularizers.get(bias_regularizer)
        self.kernel_constraint = _constraints.get(kernel_constraint)
        self.bias_constraint = _constraints.get(bias_constraint)
        if lora_rank:
            raise ValueError("Dense: lora_rank is not supported by fastnn yet")
        self.input_spec = InputSpec(min_ndim=2)
        self.supports_masking = True

    def build(self, input_shape):
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(f'Layer "{self.name}": the last axis of the input must be defined to build a Dense '
                             f"layer, but received input shape {shape_str(input_shape)}")
        self.kernel = self.add_weight(shape=(input_dim, self.units), initializer=self.kernel_initializer,
                                      regularizer=self.kernel_regularizer, constraint=self.kernel_constraint,
                                      name="kernel")
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(shape=(self.units,), initializer=self.bias_initializer,
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint,
                                        name="bias")
        self.input_spec = InputSpec(min_ndim=2, axes={-1: input_dim})
        self.built = True

    def call(self, inputs, training=None):
        act = self.activation
        if act is _activations.relu or act is _activations.linear:
            return _nn.dense(inputs, self.kernel, self.bias, "relu" if act is _activations.relu else "linear")
        return act(_nn.dense(inputs, self.kernel, self.bias, "linear"))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update({
            "units": self.units,
            "activation": _activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": _initializers.serialize(self.kernel_initializer),
            "bias_initializer": _initializers.serialize(self.bias_initializer),
            "kernel_regularizer": _initializers.serialize(self.kernel_regularizer),
            "bias_regularizer": _initializers.serialize(self.bias_regularizer),
            "kernel_constraint": _initializers.serialize(self.kernel_constraint),
            "bias_constraint": _initializers.serialize(self.bias_constraint),
        })
        return config


class Activation(Layer):
    """Applies an activation function: ``Activation("relu")``."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = _activations.get(activation)
        self.supports_masking = True

    def call(self, inputs):
        return self.activation(inputs)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config["activation"] = _activations.serialize(self.activation)
        return config


class Dropout(Layer):
    """Sets a fraction ``rate`` of the inputs to 0 during training, scaling the rest by 1 / (1 - rate).

    Inactive in inference (``training=False``: ``predict``, ``evaluate``, plain calls). The mask comes from
    fastnn's seeded generator (or the layer's own ``seed``).

    Args:
        rate: float in [0, 1).
        noise_shape: optional shape of the mask (broadcast over the input; None entries take the input's size).
        seed: optional int.
    """

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 <= rate < 1:
            raise ValueError(f"Invalid value received for argument `rate`. Expected a float value between 0 and 1 "
                             f"(1 excluded). Received: rate={rate!r}")
        self.rate = float(rate)
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        self.seed = seed
        self._gen = np.random.default_rng(seed) if seed is not None else None
        self.supports_masking = True

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        x = inputs if isinstance(inputs, Tensor) else Tensor(inputs)
        shape = x.shape
        if self.noise_shape is not None:
            shape = tuple(s if n is None else n for s, n in zip(x.shape, self.noise_shape))
        gen = self._gen if self._gen is not None else _utils.rng()
        keep = gen.random(shape) >= self.rate
        scale = (keep / (1.0 - self.rate)).astype(x.dtype)
        return _ew.multiply(x, scale)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "noise_shape": self.noise_shape, "seed": self.seed})
        return config


class Flatten(Layer):
    """Flattens every axis but the batch axis: (N, d1, d2, ...) -> (N, d1 * d2 * ...)."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last", "channels_first"):
            raise ValueError(f"Flatten: data_format must be 'channels_last' or 'channels_first', but received "
                             f"{data_format!r}")
        self.data_format = data_format or "channels_last"
        self.input_spec = InputSpec(min_ndim=1)

    def call(self, inputs):
        x = inputs
        if self.data_format == "channels_first" and x.ndim > 2:
            x = _shape.transpose(x, (0,) + tuple(range(2, x.ndim)) + (1,))
        return _shape.reshape(x, (x.shape[0], int(np.prod(x.shape[1:]))))

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        size = None if any(d is None for d in rest) else int(np.prod(rest))
        return (input_shape[0], size)

    def get_config(self):
        config = super().get_config()
        config["data_format"] = self.data_format
        return config


class Identity(Layer):
    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape


class Lambda(Layer):
    """Wraps a function of tensors as a layer: ``Lambda(lambda x: x ** 2)``.

    Args:
        function: called as ``function(inputs, **arguments)`` on fastnn Tensors.
        output_shape: optional shape (without batch axis) or function of the input shape; inferred by running
            the function when omitted.
        arguments: optional dict of keyword arguments for the function.
    """

    def __init__(self, function, output_shape=None, mask=None, arguments=None, **kwargs):
        super().__init__(**kwargs)
        if not callable(function):
            raise TypeError(f"Lambda: function must be callable, but received {function!r}")
        self.function = function
        self._output_shape = output_shape
        self.arguments = dict(arguments or {})

    def call(self, inputs, mask=None, training=None):
        return self.function(inputs, **self.arguments)

    def compute_output_shape(self, input_shape):
        if self._output_shape is None:
            return super().compute_output_shape(input_shape)
        if callable(self._output_shape):
            return tuple(self._output_shape(input_shape))
        return (input_shape[0] if isinstance(input_shape, tuple) else None,) + tuple(self._output_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"function": self.function, "output_shape": self._output_shape, "arguments": self.arguments})
        return config
