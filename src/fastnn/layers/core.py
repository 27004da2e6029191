"""Core layers: Dense, Activation, Dropout, Flatten, Lambda (and Identity)."""
from __future__ import annotations

import math
import numbers

import numpy as np

from fastnn import activations as _activations
from fastnn import backend as B
from fastnn import constraints as _constraints
from fastnn import initializers as _initializers
from fastnn import regularizers as _regularizers
from fastnn import utils as _utils
from fastnn.autograd import Tensor
from fastnn.autograd.keras_attrs import set_keras_mask
from fastnn.autograd.ops import elementwise as _ew
from fastnn.autograd.tape import record
from fastnn.autograd.ops import nn as _nn
from fastnn.autograd.ops import shape as _shape
from fastnn.layers.layer import InputSpec, Layer, shape_str
from fastnn.layers.serialization import serialize_keras_object


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
                 kernel_constraint=None, bias_constraint=None, lora_rank=None, lora_alpha=None,
                 quantization_config=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        if quantization_config is not None:
            raise ValueError(f"Dense: quantization_config is not supported by fastnn (no quantized Dense yet), but "
                             f"received {quantization_config!r}; pass quantization_config=None")
        # lora_alpha without lora_rank changes nothing in Keras either; lora_rank itself is refused below.
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
        kernel, bias = self.kernel, self.bias
        if isinstance(inputs, Tensor) and inputs.dtype.kind == "f" and inputs.dtype != kernel.dtype:
            # Only with autocast=False: as Keras's matmul, the product runs in the promoted dtype (a float64 input
            # and float32 weights give float64), through differentiable casts of the weights.
            wide = np.result_type(inputs.dtype, kernel.dtype)
            if wide != kernel.dtype:
                kernel = _shape.cast(kernel, str(wide))
                bias = _shape.cast(bias, str(wide)) if bias is not None else None
        if act is _activations.relu or act is _activations.linear:
            return _nn.dense(inputs, kernel, bias, "relu" if act is _activations.relu else "linear")
        return act(_nn.dense(inputs, kernel, bias, "linear"))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update({
            "units": self.units,
            "activation": _activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": serialize_keras_object(self.kernel_initializer),
            "bias_initializer": serialize_keras_object(self.bias_initializer),
            "kernel_regularizer": serialize_keras_object(self.kernel_regularizer),
            "bias_regularizer": serialize_keras_object(self.bias_regularizer),
            "kernel_constraint": serialize_keras_object(self.kernel_constraint),
            "bias_constraint": serialize_keras_object(self.bias_constraint),
            "quantization_config": None,
        })
        return config


class Activation(Layer):
    """Applies an activation function: ``Activation("relu")``."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = _activations.get(activation)
        self.supports_masking = True
        self.built = True  # as Keras: built at construction, so its config has no build_config

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
        self._gen = B.random_generator(seed) if seed is not None else None
        self.supports_masking = True
        self.built = True  # as Keras: built at construction, so its config has no build_config

    def call(self, inputs, training=False):  # Keras's default, which its functional configs record
        if not training or self.rate == 0.0:
            return inputs
        x = inputs if isinstance(inputs, Tensor) else Tensor(inputs)
        shape = x.shape
        if self.noise_shape is not None:
            shape = tuple(s if n is None else n for s, n in zip(x.shape, self.noise_shape))
        gen = self._gen if self._gen is not None else _utils.rng()
        keep = B.greater_equal(B.random_uniform(gen, shape, "float64"), self.rate)
        return _dropout(x, keep, 1.0 / (1.0 - self.rate))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "noise_shape": self.noise_shape, "seed": self.seed})
        return config


def _dropout(x, keep, scale):
    """``x * keep * scale`` for Dropout's boolean keep-mask (broadcast over ``x``): the forward and the backward are
    the same fused backend kernel; the mask is a constant, so only ``x`` gets a gradient."""

    def backward(g, needs):
        return (B.dropout_mask_multiply(g, keep, scale),)

    return record(B.dropout_mask_multiply(x._data, keep, scale), (x,), backward, "dropout")


class Masking(Layer):
    """Masks the timesteps whose features all equal ``mask_value``: their outputs become 0 and the output's mask
    (``_keras_mask``, read by mask-consuming layers and by the losses) is False there.

    Shapes: (batch, timesteps, features) -> the same; the mask is (batch, timesteps).

    Example:
        >>> y = Masking(0.0)(np.array([[[1.0], [0.0]]], "float32"))
        >>> fastnn.backend.to_numpy(get_keras_mask(y)._data)
        array([[ True, False]])
    """

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.mask_value = mask_value
        self.supports_masking = True
        self.built = True  # as Keras (_build_at_init): no weights, no build_config

    def _keep(self, inputs, keepdims):
        return B.any(B.not_equal(inputs._data, self.mask_value), axis=-1, keepdims=keepdims)

    def compute_mask(self, inputs, mask=None):
        return Tensor._wrap(self._keep(inputs, False))

    def call(self, inputs):
        keep = self._keep(inputs, True)
        outputs = _ew.where(Tensor._wrap(keep), inputs, 0)  # masked timesteps become 0
        set_keras_mask(outputs, Tensor._wrap(B.squeeze(keep, axis=-1)))  # mask and outputs in one pass, as Keras
        return outputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config["mask_value"] = self.mask_value
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
        return _shape.reshape(x, (x.shape[0], math.prod(x.shape[1:])))

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        size = None if any(d is None for d in rest) else math.prod(rest)
        return (input_shape[0], size)

    def get_config(self):
        config = super().get_config()
        config["data_format"] = self.data_format
        return config


class Identity(Layer):
    """Returns its input unchanged."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.built = True  # as Keras: built at construction, so its config has no build_config

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
        mask: optional output mask, as Keras: a function ``mask(inputs, previous_mask)`` (Keras's compute_mask) or a
            mask (a bool Tensor); with one, the layer supports masking. None (the default): the layer does not
            support masking, so an input's mask is dropped (with Keras's warning).
        arguments: optional dict of keyword arguments for the function (which also receives ``mask`` and
            ``training`` when its signature has them, as in Keras).
    """

    def __init__(self, function, output_shape=None, mask=None, arguments=None, **kwargs):
        super().__init__(**kwargs)
        if not callable(function):
            raise TypeError(f"Lambda: function must be callable, but received {function!r}")
        self.function = function
        self._output_shape = output_shape
        self.mask = mask
        self.supports_masking = mask is not None
        self.arguments = dict(arguments or {})
        import inspect

        try:
            params = inspect.signature(function).parameters
        except (TypeError, ValueError):
            params = {}
        self._fn_expects_mask_arg = "mask" in params
        self._fn_expects_training_arg = "training" in params

    def call(self, inputs, mask=None, training=None):
        kwargs = dict(self.arguments)
        if self._fn_expects_mask_arg:
            kwargs["mask"] = mask
        if self._fn_expects_training_arg:
            kwargs["training"] = training
        return self.function(inputs, **kwargs)

    def compute_mask(self, inputs, mask=None):
        if callable(self.mask):
            return self.mask(inputs, mask)
        return self.mask

    def compute_output_shape(self, input_shape):
        if self._output_shape is None:
            return super().compute_output_shape(input_shape)
        if callable(self._output_shape):
            return tuple(self._output_shape(input_shape))
        return (input_shape[0] if isinstance(input_shape, tuple) else None,) + tuple(self._output_shape)

    def get_config(self):
        """Keras's Lambda config: a Python lambda as its marshalled bytecode (``{"class_name": "__lambda__",
        "config": {"code", "defaults", "closure"}}``), a named function as ``serialize_keras_object`` writes it
        (by its registered name); ``output_shape`` and ``mask`` only when given; ``arguments`` serialized. The
        config holds no live Python object, so it survives JSON."""
        from fastnn.saving import serialization_lib

        config = {"function": self._serialize_function_to_config(self.function)}
        if self._output_shape is not None:
            config["output_shape"] = self._serialize_function_to_config(self._output_shape) \
                if callable(self._output_shape) else self._output_shape
        if self.mask is not None:
            config["mask"] = self._serialize_function_to_config(self.mask) if callable(self.mask) \
                else serialization_lib.serialize_keras_object(self.mask)
        config["arguments"] = serialization_lib.serialize_keras_object(self.arguments)
        return {**super().get_config(), **config}

    @staticmethod
    def _serialize_function_to_config(fn):
        from fastnn.saving import serialization_lib

        if serialization_lib.is_python_lambda(fn):
            code, defaults, closure = serialization_lib.func_dump(fn)
            return {"class_name": "__lambda__", "config": {"code": code, "defaults": defaults, "closure": closure}}
        if callable(fn):
            return serialization_lib.serialize_keras_object(fn)
        raise ValueError(f"Invalid input type for serialization. Received: {fn} of type {type(fn)}.")

    @classmethod
    def from_config(cls, config, custom_objects=None, safe_mode=None):
        """Rebuilds the layer, as Keras's ``Lambda.from_config``. A serialized Python lambda runs arbitrary code
        when loaded, so it is refused unless safe mode is off: ``safe_mode=False`` here, or the enclosing
        deserialization's (``deserialize_keras_object(..., safe_mode=False)``, ``load_model(...,
        safe_mode=False)``). With neither, the default is safe (it fails closed)."""
        from fastnn.saving import serialization_lib

        effective_safe_mode = safe_mode if safe_mode is not None else serialization_lib.in_safe_mode()
        safe_mode = effective_safe_mode is not False
        config = dict(config)
        config["function"] = cls._deserialize_function(config["function"], custom_objects, safe_mode)
        if "output_shape" in config:
            output_shape = cls._deserialize_function(config["output_shape"], custom_objects, safe_mode)
            if isinstance(output_shape, list) and all(isinstance(e, (int, type(None))) for e in output_shape):
                output_shape = tuple(output_shape)
            config["output_shape"] = output_shape
        if "mask" in config:
            config["mask"] = cls._deserialize_function(config["mask"], custom_objects, safe_mode)
        if "arguments" in config:
            config["arguments"] = serialization_lib.deserialize_keras_object(config["arguments"],
                                                                              custom_objects=custom_objects)
        return cls(**config)

    @staticmethod
    def _deserialize_function(fn_config, custom_objects, safe_mode):
        from fastnn.saving import serialization_lib

        if isinstance(fn_config, dict) and fn_config.get("class_name") == "__lambda__":
            if safe_mode:
                raise ValueError(serialization_lib.LAMBDA_LAYER_REFUSED_MESSAGE)
            inner = fn_config["config"]
            if "value" in inner:  # serialize_keras_object's form of a lambda
                return serialization_lib.func_load(inner["value"])
            return serialization_lib.func_load(inner["code"], defaults=inner["defaults"], closure=inner["closure"])
        return serialization_lib.deserialize_keras_object(fn_config, custom_objects=custom_objects)
