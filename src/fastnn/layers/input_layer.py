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
        sparse, ragged: must be False / None (fastnn has no sparse or ragged tensors).
        batch_shape: full shape including the batch axis (instead of shape / batch_size).
        input_tensor: a symbolic tensor (``KerasTensor``) to use as this layer's output, as Keras does: it becomes
            the input of the graph (its shape and dtype are taken; given ``shape`` / ``dtype`` must agree).
        optional: must be False (fastnn functional models need a value for every input).
    """

    def __init__(self, shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None, input_tensor=None,
                 name=None, ragged=None, optional=False, **kwargs):
        if "input_shape" in kwargs and shape is None:
            shape = kwargs.pop("input_shape")
        if "batch_input_shape" in kwargs and batch_shape is None:
            batch_shape = kwargs.pop("batch_input_shape")
        super().__init__(name=name or unique_name("input_layer"), dtype=dtype, **kwargs)
        if sparse:
            raise ValueError("InputLayer: sparse=True is not supported (fastnn has no sparse tensors)")
        if ragged:
            raise ValueError("InputLayer: ragged=True is not supported (fastnn has no ragged tensors)")
        if optional:
            raise ValueError("InputLayer: optional=True is not supported (fastnn functional models need a value for "
                             "every input); pass optional=False")
        if input_tensor is not None:
            if not isinstance(input_tensor, KerasTensor):
                raise ValueError(f"Argument `input_tensor` must be a KerasTensor. Received invalid type: "
                                 f"input_tensor={input_tensor!r} (of type {type(input_tensor).__name__})")
            t_shape = tuple(input_tensor.shape)
            if batch_size is not None and (not t_shape or t_shape[0] != batch_size):
                raise ValueError("When providing the `input_tensor` argument, you cannot provide an incompatible "
                                 "`batch_size` argument.")
            if shape is not None:
                shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
                if shape != t_shape[1:]:
                    raise ValueError("When providing the `input_tensor` argument, you cannot provide an incompatible "
                                     "`shape` argument.")
            if batch_shape is not None and tuple(batch_shape) != t_shape:
                raise ValueError("When providing the `input_tensor` argument, you cannot provide an incompatible "
                                 "`batch_shape` argument.")
            if dtype is not None and str(np.dtype(dtype)) != input_tensor.dtype:
                raise ValueError("When providing the `input_tensor` argument, you cannot provide an incompatible "
                                 "`dtype` argument.")
            shape, batch_shape = None, t_shape
            self.dtype = input_tensor.dtype
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
        elif shape is not None:
            raise ValueError("InputLayer: pass either `shape` or `batch_shape`, not both")
        elif batch_size is not None and input_tensor is None:
            raise ValueError("You cannot pass both `batch_size` and `batch_shape` at the same time.")
        for d in batch_shape:
            if d is not None and (not isinstance(d, (int, np.integer)) or d < 0):
                raise ValueError(f"InputLayer: shape entries must be non-negative ints or None, but received "
                                 f"{tuple(batch_shape)}")
        self._batch_shape = tuple(None if d is None else int(d) for d in batch_shape)
        self.built = True
        if input_tensor is not None:
            # As Keras's Node(outputs=input_tensor): the given tensor now comes from this layer.
            out = input_tensor
            out._history = (self, 0, 0)
        else:
            out = KerasTensor(self._batch_shape, self.dtype, history=(self, 0, 0), name=self.name)
        self._inbound_nodes.append(Node(self, (), {}, out))
        self.output_tensor = out
        self.sparse, self.ragged, self.optional = False, False, False

    @property
    def batch_shape(self):
        return self._batch_shape

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return self._batch_shape

    def get_config(self):
        return {"batch_shape": self._batch_shape, "dtype": self.dtype, "sparse": False, "ragged": False,
                "name": self.name, "optional": False}


def Input(shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None, name=None, tensor=None,
          ragged=None, optional=False):
    """A symbolic input tensor for the functional API (and the first entry of a Sequential model).

    ``tensor=`` makes an existing symbolic tensor the input (Keras's ``InputLayer(input_tensor=...)``).

    Example:
        >>> x = fastnn.Input(shape=(784,))
        >>> x.shape
        (None, 784)
    """
    layer = InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, sparse=sparse, batch_shape=batch_shape,
                       name=name, input_tensor=tensor, ragged=ragged, optional=optional)
    return layer.output_tensor
