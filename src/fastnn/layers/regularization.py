"""Regularization layers beyond core's Dropout: SpatialDropout1D/2D (Keras 3's
``keras.layers.SpatialDropout*``), which drop whole feature maps instead of single elements, GaussianNoise,
GaussianDropout and ActivityRegularization."""
from __future__ import annotations

import math
import numbers

from fastnn import backend as B
from fastnn import utils as _utils
from fastnn.autograd import Tensor
from fastnn.autograd.ops import elementwise as _ew
from fastnn.layers.argument_validation import standardize_data_format
from fastnn.layers.core import Dropout, _dropout
from fastnn.layers.layer import InputSpec, Layer


class _SpatialDropout(Dropout):
    """Keras's BaseSpatialDropout: Dropout whose mask has one entry per (sample, channel), broadcast over the
    spatial axes, so a channel is either kept (and scaled by 1 / (1 - rate)) or zeroed everywhere in a sample.
    Only in training; the identity in inference. Its config is Keras's: rate, seed, name, dtype."""

    def __init__(self, rate, seed=None, name=None, dtype=None):
        super().__init__(rate, seed=seed, name=name, dtype=dtype)

    def _noise_shape(self, shape):
        raise NotImplementedError

    def call(self, inputs, training=False):
        if not training or self.rate == 0.0:
            return inputs
        x = inputs if isinstance(inputs, Tensor) else Tensor(inputs)
        gen = self._gen if self._gen is not None else _utils.rng()
        keep = B.greater_equal(B.random_uniform(gen, self._noise_shape(tuple(x.shape)), "float64"), self.rate)
        return _dropout(x, keep, 1.0 / (1.0 - self.rate))

    def get_config(self):
        return {"rate": self.rate, "seed": self.seed, "name": self.name, "dtype": self.dtype}


class SpatialDropout1D(_SpatialDropout):
    """Dropout of whole feature channels of a (batch, steps, channels) input: the mask is (batch, 1, channels).

    Args:
        rate: float in [0, 1), the fraction of channels to drop in each sample.
        seed: optional int.

    Example:
        >>> y = SpatialDropout1D(0.5)(np.ones((2, 4, 6), "float32"), training=True)  # columns of 0 or 2
    """

    def __init__(self, rate, seed=None, name=None, dtype=None):
        super().__init__(rate, seed=seed, name=name, dtype=dtype)
        self.input_spec = InputSpec(ndim=3)

    def _noise_shape(self, shape):
        return (shape[0], 1, shape[2])


class SpatialDropout2D(_SpatialDropout):
    """Dropout of whole feature maps of a 4-D image input: the mask is (batch, 1, 1, channels) for channels_last,
    (batch, channels, 1, 1) for channels_first.

    Args:
        rate: float in [0, 1), the fraction of feature maps to drop in each sample.
        data_format: "channels_last" (default) or "channels_first".
        seed: optional int.

    Example:
        >>> y = SpatialDropout2D(0.25)(np.ones((2, 5, 5, 8), "float32"), training=True)
    """

    def __init__(self, rate, data_format=None, seed=None, name=None, dtype=None):
        super().__init__(rate, seed=seed, name=name, dtype=dtype)
        self.data_format = standardize_data_format(data_format)
        self.input_spec = InputSpec(ndim=4)

    def _noise_shape(self, shape):
        if self.data_format == "channels_first":
            return (shape[0], shape[1], 1, 1)
        return (shape[0], 1, 1, shape[3])

    def get_config(self):
        config = super().get_config()
        config["data_format"] = self.data_format
        return config


def _unit_interval(layer, arg, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
        raise ValueError(f"Invalid value received for argument `{arg}`. Expected a float value between 0 and 1. "
                         f"Received: {arg}={value!r}")
    return value


class GaussianNoise(Layer):
    """Adds zero-mean Gaussian noise of standard deviation ``stddev`` in training (``keras.layers.GaussianNoise``);
    the identity in inference. Noise from fastnn's seeded generator (or the layer's own ``seed``)."""

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.stddev = _unit_interval("GaussianNoise", "stddev", stddev)
        self.seed = seed
        self._gen = B.random_generator(seed) if seed is not None else None
        self.supports_masking = True
        self.built = True

    def call(self, inputs, training=False):
        if not training or self.stddev <= 0:
            return inputs
        x = inputs if isinstance(inputs, Tensor) else Tensor(inputs)
        gen = self._gen if self._gen is not None else _utils.rng()
        noise = B.random_normal(gen, tuple(x.shape), self.dtype, 0.0, self.stddev)
        return _ew.add(x, noise)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"stddev": self.stddev, "seed": self.seed})
        return config


class GaussianDropout(Layer):
    """Multiplies the inputs by Gaussian noise of mean 1 and standard deviation ``sqrt(rate / (1 - rate))`` in
    training (``keras.layers.GaussianDropout``); the identity in inference."""

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = _unit_interval("GaussianDropout", "rate", rate)
        self.seed = seed
        self._gen = B.random_generator(seed) if seed is not None else None
        self.supports_masking = True
        self.built = True

    def call(self, inputs, training=False):
        if not training or self.rate <= 0:
            return inputs
        x = inputs if isinstance(inputs, Tensor) else Tensor(inputs)
        gen = self._gen if self._gen is not None else _utils.rng()
        stddev = math.sqrt(self.rate / (1.0 - self.rate)) if self.rate < 1 else math.inf  # rate 1: no signal left
        noise = B.random_normal(gen, tuple(x.shape), self.dtype, 1.0, stddev)
        return _ew.multiply(x, noise)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed})
        return config


class ActivityRegularization(Layer):
    """The identity, adding ``l1 * sum(|x|) + l2 * sum(x^2)`` of its output to the model's losses
    (``keras.layers.ActivityRegularization``)."""

    def __init__(self, l1=0.0, l2=0.0, **kwargs):
        from fastnn import regularizers as _regularizers

        kwargs.pop("activity_regularizer", None)
        super().__init__(activity_regularizer=_regularizers.L1L2(l1=l1, l2=l2), **kwargs)
        self.supports_masking = True
        self.l1 = l1
        self.l2 = l2
        self.built = True

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.pop("activity_regularizer", None)
        config.update({"l1": self.l1, "l2": self.l2})
        return config
