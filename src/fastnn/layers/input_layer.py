"""``Input`` and ``InputLayer``: the entry points of functional models."""
from __future__ import annotations

import numpy as np

from fastnn.layers.layer import KerasTensor, Layer, Node, unique_name


class InputLayer(Layer):
    """The layer behind ``fastnn.Input``: it has no weights and produces one symbolic tensor.

    Args:
        shape: shape of one sample (without the batch axis), e.g. ``(784,)``.
        batch_size: optional fixed batch size.
        dtype: dtype of the input (float32 default).
        batch_shape: full shape including the batch axis (instead of shape / batch_size).
    """

    def __init__(self, shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None, input_tensor=None,
                 name=None, **kwargs):
        if "input_shape" in kwargs and shape is None:
            shape = kwargs.pop("input_shape")
        if "batch_input_shape" in kwargs and batch_shape is None:
            batch_shape = kwargs.pop("batch_input_shape")
        super().__init__(name=name or unique_name("input_layer"), dtype=dtype, **kwargs)
        if sparse:
            raise ValueError("InputLayer: sparse inputs are not supported")
        if shape is not None and batch_shape is not None:
            raise ValueError("InputLayer: pass either `shape` or `batch_shape`, not both")
        if batch_shape is None:
            if shape is None:
                raise ValueError("InputLayer: you must pass a `shape` argument (the shape of one sample, without "
                                 "the batch axis), e.g. Input(shape=(784,))")
            if isinstance(shape, (int, np.integer)):
                shape = (shape,)
            try:
                shape = tuple(shape)
            except TypeError:
                raise ValueError(f"InputLayer: shape must be a tuple of ints, but received {shape!r}") from None
            batch_shape = (batch_size,) + shape
        for d in batch_shape:
            if d is not None and (not isinstance(d, (int, np.integer)) or d < 0):
                raise ValueError(f"InputLayer: shape entries must be non-negative ints or None, but received "
                                 f"{tuple(batch_shape)}")
        self._batch_shape = tuple(None if d is None else int(d) for d in batch_shape)
        self.built = True
        out = KerasTensor(self._batch_shape, self.dtype, history=(self, 0, 0), name=self.name)
        self._inbound_nodes.append(Node(self, (), {}, out))
        self.output_tensor = out

    @property
    def batch_shape(self):
        return self._batch_shape

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return self._batch_shape

    def get_config(self):
        return {"batch_shape": self._batch_shape, "dtype": self.dtype, "sparse": False, "name": self.name}


def Input(shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None, name=None, tensor=None):
    """A symbolic input tensor for the functional API (and the first entry of a Sequential model).

    Example:
        >>> x = fastnn.Input(shape=(784,))
        >>> x.shape
        (None, 784)
    """
    layer = InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, sparse=sparse, batch_shape=batch_shape,
                       name=name)
    return layer.output_tensor
