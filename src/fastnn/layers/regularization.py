"""Regularization layers beyond core's Dropout: SpatialDropout1D/2D (Keras 3's
``keras.layers.SpatialDropout*``), which drop whole feature maps instead of single elements."""
from __future__ import annotations

from fastnn import backend as B
from fastnn import utils as _utils
from fastnn.autograd import Tensor
from fastnn.layers.argument_validation import standardize_data_format
from fastnn.layers.core import Dropout, _dropout
from fastnn.layers.layer import InputSpec


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
