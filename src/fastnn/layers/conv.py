"""Convolution layers with Keras 3's names, arguments, defaults and weight layouts: Conv1D/2D, DepthwiseConv1D/2D,
SeparableConv1D/2D, Conv1DTranspose/Conv2DTranspose (``keras.layers``), on the fused ops of ``fastnn.autograd.ops.conv``.

Weights (as Keras): Conv kernel (*kernel_size, in_channels // groups, filters), DepthwiseConv2D kernel (kh, kw,
in_channels, depth_multiplier), SeparableConv2D depthwise_kernel (kh, kw, in, depth_multiplier) and
pointwise_kernel (1, 1, in * depth_multiplier, filters), Conv2DTranspose kernel (kh, kw, filters, in_channels);
bias (output channels,). ReLU and linear activations run fused into the kernels' epilogue (one node per layer).
"""
from __future__ import annotations

import numbers

from fastnn import activations as _activations
from fastnn import constraints as _constraints
from fastnn import initializers as _initializers
from fastnn import regularizers as _regularizers
from fastnn.autograd.ops import conv as _conv
from fastnn.layers.argument_validation import standardize_data_format, standardize_tuple
from fastnn.layers.layer import InputSpec, Layer, shape_str
from fastnn.layers.serialization import serialize_keras_object


def _standardize_padding(padding, allow_causal=False):
    value = str(padding).lower() if isinstance(padding, str) else padding
    allowed = {"valid", "same", "causal"} if allow_causal else {"valid", "same"}
    if value not in allowed:
        raise ValueError(f"The `padding` argument must be a list/tuple or one of {allowed}. "
                         f"Received: padding={padding}")
    return value


def _positive(name, value, what):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"Invalid value for argument `{name}`. Expected a strictly positive value. "
                         f"Received {name}={value}.{what}")
    return int(value)


def _conv_output_size(size, kernel, stride, padding, dilation):
    """Keras's compute_conv_output_shape along one axis (None stays None)."""
    if size is None:
        return None
    if padding == "valid":
        return (size - dilation * (kernel - 1) - 1) // stride + 1
    return (size - 1) // stride + 1  # "same" and "causal"


class _BaseConv(Layer):
    """The shared arguments, checks and shape rules of the convolution layers (Keras's BaseConv)."""

    _allow_causal = False

    def __init__(self, rank, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 activation=None, use_bias=True, bias_initializer="zeros", bias_regularizer=None,
                 activity_regularizer=None, bias_constraint=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.rank = rank
        self.filters = None if filters is None else _positive("filters", filters, "")
        self.kernel_size = standardize_tuple(kernel_size, rank, "kernel_size")
        self.strides = standardize_tuple(strides, rank, "strides")
        self.dilation_rate = standardize_tuple(dilation_rate, rank, "dilation_rate")
        self.padding = _standardize_padding(padding, allow_causal=self._allow_causal)
        self.data_format = standardize_data_format(data_format)
        self.activation = _activations.get(activation)
        self.use_bias = bool(use_bias)
        self.bias_initializer = _initializers.get(bias_initializer)
        self.bias_regularizer = _regularizers.get(bias_regularizer)
        self.bias_constraint = _constraints.get(bias_constraint)
        self.input_spec = InputSpec(ndim=rank + 2)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError("`strides > 1` not supported in conjunction with `dilation_rate > 1`. Received: "
                             f"strides={self.strides} and dilation_rate={self.dilation_rate}")

    # -- shapes -------------------------------------------------------------------------------------------------
    def _channel_axis(self):
        return -1 if self.data_format == "channels_last" else 1

    def _spatial(self, input_shape):
        return tuple(input_shape[1:-1]) if self.data_format == "channels_last" else tuple(input_shape[2:])

    def _out_channels(self, in_channels):
        return self.filters

    def _spatial_output(self, spatial):
        return tuple(_conv_output_size(s, k, st, self.padding, d)
                     for s, k, st, d in zip(spatial, self.kernel_size, self.strides, self.dilation_rate))

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) != self.rank + 2:
            raise ValueError(f'Layer "{self.name}" ({type(self).__name__}) expects {self.rank + 2}-D inputs, but '
                             f"received input shape {shape_str(input_shape)}")
        spatial = self._spatial(input_shape)
        out = self._spatial_output(spatial)
        for size, o in zip(spatial, out):
            if size is not None and o <= 0:
                raise ValueError(f'Layer "{self.name}" ({type(self).__name__}): computed output size would be zero '
                                 f"or negative. Received `inputs shape={shape_str(input_shape)}`, "
                                 f"`kernel_size={self.kernel_size}`, `dilation_rate={self.dilation_rate}`, "
                                 f"`strides={self.strides}`, `padding={self.padding}` (the kernel is larger than "
                                 "the input)")
        channels = self._out_channels(input_shape[self._channel_axis()])
        if self.data_format == "channels_last":
            return (input_shape[0],) + out + (channels,)
        return (input_shape[0], channels) + out

    def _input_channels(self, input_shape):
        channels = input_shape[self._channel_axis()]
        if channels is None:
            raise ValueError(f'Layer "{self.name}": the channel axis of the input must be defined to build a '
                             f"{type(self).__name__} layer, but received input shape {shape_str(input_shape)}")
        self.compute_output_shape(input_shape)  # validates the rank and that every output size is positive
        self.input_spec = InputSpec(ndim=self.rank + 2, axes={self._channel_axis(): channels})
        return channels

    def _check_call_shape(self, inputs):
        # Spatial sizes may be undefined at build (None): the kernel must still fit each call's input.
        self.compute_output_shape(tuple(inputs.shape))

    def _fused_activation(self):
        act = self.activation
        if act is _activations.relu:
            return "relu", None
        if act is _activations.linear or act is None:
            return "linear", None
        return "linear", act

    def _bias_config(self):
        return {
            "bias_initializer": serialize_keras_object(self.bias_initializer),
            "bias_regularizer": serialize_keras_object(self.bias_regularizer),
            "activity_regularizer": serialize_keras_object(self.activity_regularizer),
            "bias_constraint": serialize_keras_object(self.bias_constraint),
        }

    def _base_config(self):
        config = super().get_config()
        config.update({
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "activation": _activations.serialize(self.activation),
            "use_bias": self.use_bias,
        })
        return config


class _Conv(_BaseConv):
    """Conv1D / Conv2D: ``activation(conv(inputs, kernel) + bias)`` (Keras's BaseConv)."""

    def __init__(self, rank, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 groups=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, lora_rank=None, lora_alpha=None, **kwargs):
        if filters is None:
            raise ValueError(f"{type(self).__name__}: `filters` must be a positive integer, but received None")
        super().__init__(rank, filters, kernel_size, strides, padding, data_format, dilation_rate, activation,
                         use_bias, bias_initializer, bias_regularizer, activity_regularizer, bias_constraint,
                         **kwargs)
        if lora_rank:
            raise ValueError(f"{type(self).__name__}: lora_rank is not supported by fastnn yet")
        if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups <= 0:
            raise ValueError(f"The number of groups must be a positive integer. Received: groups={groups}.")
        self.groups = int(groups)
        if self.filters % self.groups:
            raise ValueError("The number of filters must be evenly divisible by the number of groups. Received: "
                             f"groups={self.groups}, filters={self.filters}.")
        self.kernel_initializer = _initializers.get(kernel_initializer)
        self.kernel_regularizer = _regularizers.get(kernel_regularizer)
        self.kernel_constraint = _constraints.get(kernel_constraint)

    def build(self, input_shape):
        channels = self._input_channels(input_shape)
        if channels % self.groups:
            raise ValueError("The number of input channels must be evenly divisible by the number of groups. "
                             f"Received groups={self.groups}, but the input has {channels} channels (full input "
                             f"shape is {shape_str(input_shape)}).")
        self.kernel = self.add_weight(shape=self.kernel_size + (channels // self.groups, self.filters),
                                      initializer=self.kernel_initializer, regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint, name="kernel")
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(shape=(self.filters,), initializer=self.bias_initializer,
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint,
                                        name="bias")
        self.built = True

    def call(self, inputs):
        self._check_call_shape(inputs)
        fused, act = self._fused_activation()
        y = _conv.conv_bias_act(inputs, self.kernel, self.bias, self.strides, self.padding, self.data_format,
                                self.dilation_rate, fused)
        return act(y) if act is not None else y

    def get_config(self):
        config = self._base_config()
        config.update({
            "filters": self.filters,
            "groups": self.groups,
            "kernel_initializer": serialize_keras_object(self.kernel_initializer),
            "kernel_regularizer": serialize_keras_object(self.kernel_regularizer),
            "kernel_constraint": serialize_keras_object(self.kernel_constraint),
        })
        config.update(self._bias_config())
        return config


class Conv1D(_Conv):
    """1-D convolution over (batch, steps, channels) (or (batch, channels, steps) with channels_first).

    Args:
        filters, kernel_size, strides=1, padding "valid" / "same" / "causal" (left padding only, as Keras),
        data_format, dilation_rate=1, groups=1, activation, use_bias, kernel_initializer="glorot_uniform",
        bias_initializer="zeros", regularizers and constraints.

    Example:
        >>> Conv1D(4, 3, padding="causal")(np.ones((2, 10, 3), "float32")).shape
        (2, 10, 4)
    """

    _allow_causal = True

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1, groups=1,
                 activation=None, use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, **kwargs):
        super().__init__(1, filters, kernel_size, strides, padding, data_format, dilation_rate, groups, activation,
                         use_bias, kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
                         activity_regularizer, kernel_constraint, bias_constraint, **kwargs)


class Conv2D(_Conv):
    """2-D convolution over (batch, height, width, channels) (or (batch, channels, height, width)).

    Args:
        filters, kernel_size, strides=(1, 1), padding "valid" / "same" (TensorFlow's: the odd padding row / column
        at the bottom / right), data_format, dilation_rate=(1, 1), groups=1, activation, use_bias,
        kernel_initializer="glorot_uniform", bias_initializer="zeros", regularizers and constraints.

    Example:
        >>> Conv2D(8, 3, padding="same", activation="relu")(np.ones((2, 5, 5, 3), "float32")).shape
        (2, 5, 5, 8)
    """

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), groups=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(2, filters, kernel_size, strides, padding, data_format, dilation_rate, groups, activation,
                         use_bias, kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
                         activity_regularizer, kernel_constraint, bias_constraint, **kwargs)


class DepthwiseConv2D(_BaseConv):  # also the base of DepthwiseConv1D (``_rank``)
    """Depthwise 2-D convolution: each input channel convolved with its own ``depth_multiplier`` filters (output
    channel c * depth_multiplier + m from channel c); kernel (kh, kw, in_channels, depth_multiplier).

    Args:
        kernel_size, strides=(1, 1), padding "valid" / "same", depth_multiplier=1, data_format,
        dilation_rate=(1, 1), activation, use_bias, depthwise_initializer="glorot_uniform", bias_initializer="zeros",
        depthwise_regularizer, bias_regularizer, activity_regularizer, depthwise_constraint, bias_constraint.
    """

    _rank = 2

    def __init__(self, kernel_size, strides=1, padding="valid", depth_multiplier=1, data_format=None,
                 dilation_rate=1, activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, depthwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(self._rank, None, kernel_size, strides, padding, data_format, dilation_rate, activation,
                         use_bias, bias_initializer, bias_regularizer, activity_regularizer, bias_constraint, **kwargs)
        self.depth_multiplier = _positive("depth_multiplier", depth_multiplier, "")
        self.depthwise_initializer = _initializers.get(depthwise_initializer)
        self.depthwise_regularizer = _regularizers.get(depthwise_regularizer)
        self.depthwise_constraint = _constraints.get(depthwise_constraint)

    def _out_channels(self, in_channels):
        return None if in_channels is None else in_channels * self.depth_multiplier

    def build(self, input_shape):
        channels = self._input_channels(input_shape)
        self.kernel = self.add_weight(shape=self.kernel_size + (channels, self.depth_multiplier),
                                      initializer=self.depthwise_initializer, regularizer=self.depthwise_regularizer,
                                      constraint=self.depthwise_constraint, name="kernel")
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(shape=(channels * self.depth_multiplier,), initializer=self.bias_initializer,
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint,
                                        name="bias")
        self.built = True

    def call(self, inputs):
        self._check_call_shape(inputs)
        fused, act = self._fused_activation()
        y = _conv.depthwise_conv_bias_act(inputs, self.kernel, self.bias, self.strides, self.padding,
                                          self.data_format, self.dilation_rate, fused)
        return act(y) if act is not None else y

    def get_config(self):
        config = self._base_config()
        config.update({
            "depth_multiplier": self.depth_multiplier,
            "depthwise_initializer": serialize_keras_object(self.depthwise_initializer),
            "depthwise_regularizer": serialize_keras_object(self.depthwise_regularizer),
            "depthwise_constraint": serialize_keras_object(self.depthwise_constraint),
        })
        config.update(self._bias_config())
        return config


class SeparableConv2D(_BaseConv):  # also the base of SeparableConv1D
    """Depthwise convolution (strides, padding, dilation) followed by a 1x1 pointwise convolution to ``filters``
    channels, then bias and activation. Weights depthwise_kernel (kh, kw, in, depth_multiplier), pointwise_kernel
    (1, 1, in * depth_multiplier, filters), bias (filters,)."""

    _rank = 2

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 depth_multiplier=1, activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 pointwise_initializer="glorot_uniform", bias_initializer="zeros", depthwise_regularizer=None,
                 pointwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, pointwise_constraint=None, bias_constraint=None, **kwargs):
        if filters is None:
            raise ValueError(f"{type(self).__name__}: `filters` must be a positive integer, but received None")
        super().__init__(self._rank, filters, kernel_size, strides, padding, data_format, dilation_rate, activation,
                         use_bias, bias_initializer, bias_regularizer, activity_regularizer, bias_constraint, **kwargs)
        self.depth_multiplier = _positive("depth_multiplier", depth_multiplier, "")
        self.depthwise_initializer = _initializers.get(depthwise_initializer)
        self.pointwise_initializer = _initializers.get(pointwise_initializer)
        self.depthwise_regularizer = _regularizers.get(depthwise_regularizer)
        self.pointwise_regularizer = _regularizers.get(pointwise_regularizer)
        self.depthwise_constraint = _constraints.get(depthwise_constraint)
        self.pointwise_constraint = _constraints.get(pointwise_constraint)

    def build(self, input_shape):
        channels = self._input_channels(input_shape)
        self.depthwise_kernel = self.add_weight(
            shape=self.kernel_size + (channels, self.depth_multiplier), initializer=self.depthwise_initializer,
            regularizer=self.depthwise_regularizer, constraint=self.depthwise_constraint, name="depthwise_kernel")
        self.pointwise_kernel = self.add_weight(
            shape=(1,) * self.rank + (channels * self.depth_multiplier, self.filters),
            initializer=self.pointwise_initializer, regularizer=self.pointwise_regularizer,
            constraint=self.pointwise_constraint, name="pointwise_kernel")
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(shape=(self.filters,), initializer=self.bias_initializer,
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint,
                                        name="bias")
        self.built = True

    def call(self, inputs):
        self._check_call_shape(inputs)
        fused, act = self._fused_activation()
        y = _conv.depthwise_conv(inputs, self.depthwise_kernel, self.strides, self.padding, self.data_format,
                                 self.dilation_rate)
        y = _conv.conv_bias_act(y, self.pointwise_kernel, self.bias, 1, "valid", self.data_format, 1, fused)
        return act(y) if act is not None else y

    def get_config(self):
        config = self._base_config()
        config.update({
            "depth_multiplier": self.depth_multiplier,
            "filters": self.filters,
            "depthwise_initializer": serialize_keras_object(self.depthwise_initializer),
            "pointwise_initializer": serialize_keras_object(self.pointwise_initializer),
            "depthwise_regularizer": serialize_keras_object(self.depthwise_regularizer),
            "pointwise_regularizer": serialize_keras_object(self.pointwise_regularizer),
            "depthwise_constraint": serialize_keras_object(self.depthwise_constraint),
            "pointwise_constraint": serialize_keras_object(self.pointwise_constraint),
        })
        config.update(self._bias_config())
        return config


class Conv2DTranspose(_BaseConv):  # also the base of Conv1DTranspose
    """Transposed 2-D convolution (the gradient of Conv2D w.r.t. its input, run forward); kernel (kh, kw, filters,
    in_channels). Output sizes by Keras's rule: "valid" (n - 1) * s + k (+ output_padding), "same" n * s (or
    (n - 1) * s + k % 2 + output_padding).

    Args:
        filters, kernel_size, strides=(1, 1), padding "valid" / "same", output_padding=None (each < its stride),
        data_format, dilation_rate=(1, 1), activation, use_bias, kernel_initializer="glorot_uniform",
        bias_initializer="zeros", regularizers and constraints.
    """

    _rank = 2

    def __init__(self, filters, kernel_size, strides=1, padding="valid", output_padding=None, data_format=None,
                 dilation_rate=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        if filters is None:
            raise ValueError(f"{type(self).__name__}: `filters` must be a positive integer, but received None")
        super().__init__(self._rank, filters, kernel_size, strides, padding, data_format, dilation_rate, activation,
                         use_bias, bias_initializer, bias_regularizer, activity_regularizer, bias_constraint, **kwargs)
        if output_padding is None:
            self.output_padding = None
        else:
            self.output_padding = standardize_tuple(output_padding, self.rank, "output_padding",
                                                    allow_zero=True)
            for i, (op, s) in enumerate(zip(self.output_padding, self.strides)):
                if op >= s:
                    raise ValueError(f"`output_padding` must be strictly less than `strides` for all dimensions. At "
                                     f"dimension {i}, `output_padding` is {op} but `strides` is {s}. Received: "
                                     f"output_padding={self.output_padding}, strides={self.strides}")
        self.kernel_initializer = _initializers.get(kernel_initializer)
        self.kernel_regularizer = _regularizers.get(kernel_regularizer)
        self.kernel_constraint = _constraints.get(kernel_constraint)

    def _spatial_output(self, spatial):
        pads = self.output_padding or (None,) * self.rank
        return tuple(_conv.conv_transpose_output_size(s, k, st, self.padding, p, d)
                     for s, k, st, p, d in zip(spatial, self.kernel_size, self.strides, pads, self.dilation_rate))

    def build(self, input_shape):
        channels = self._input_channels(input_shape)
        self.kernel = self.add_weight(shape=self.kernel_size + (self.filters, channels),
                                      initializer=self.kernel_initializer, regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint, name="kernel")
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(shape=(self.filters,), initializer=self.bias_initializer,
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint,
                                        name="bias")
        self.built = True

    def call(self, inputs):
        self._check_call_shape(inputs)
        fused, act = self._fused_activation()
        y = _conv.conv_transpose_bias_act(inputs, self.kernel, self.bias, self.strides, self.padding,
                                          self.output_padding, self.data_format, self.dilation_rate, fused)
        return act(y) if act is not None else y

    def get_config(self):
        config = self._base_config()
        config.update({
            "filters": self.filters,
            "output_padding": self.output_padding,
            "kernel_initializer": serialize_keras_object(self.kernel_initializer),
            "kernel_regularizer": serialize_keras_object(self.kernel_regularizer),
            "kernel_constraint": serialize_keras_object(self.kernel_constraint),
        })
        config.update(self._bias_config())
        return config


class DepthwiseConv1D(DepthwiseConv2D):
    """Depthwise 1-D convolution over (batch, steps, channels): kernel (k, in_channels, depth_multiplier); the
    arguments of DepthwiseConv2D with 1-D sizes (run on the 2-D kernel with a height of 1)."""

    _rank = 1


class SeparableConv1D(SeparableConv2D):
    """Depthwise 1-D convolution then a pointwise (1, in * depth_multiplier, filters) one; the arguments of
    SeparableConv2D with 1-D sizes."""

    _rank = 1


class Conv1DTranspose(Conv2DTranspose):
    """Transposed 1-D convolution: kernel (k, filters, in_channels); the arguments of Conv2DTranspose with 1-D
    sizes."""

    _rank = 1


Convolution1D = Conv1D
Convolution2D = Conv2D
SeparableConvolution2D = SeparableConv2D
Convolution2DTranspose = Conv2DTranspose
SeparableConvolution1D = SeparableConv1D
Convolution1DTranspose = Conv1DTranspose
