"""Reshaping layers: Reshape, Permute, RepeatVector."""
from __future__ import annotations

import math
import numbers

from fastnn.autograd.ops import shape as _shape
from fastnn.layers.layer import InputSpec, Layer, shape_str


class Reshape(Layer):
    """Reshapes each sample to ``target_shape`` (without the batch axis; one entry may be -1)."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        try:
            target_shape = tuple(int(d) for d in target_shape)
        except TypeError:
            raise ValueError(f"Reshape: target_shape must be a tuple of ints, but received {target_shape!r}") from None
        if sum(d == -1 for d in target_shape) > 1 or any(d == 0 or d < -1 for d in target_shape):
            raise ValueError(f"Reshape: target_shape may hold at most one -1 and otherwise positive ints, but "
                             f"received {target_shape}")
        self.target_shape = target_shape
        self.built = True  # as Keras: built at construction, so its config has no build_config

    def _resolve(self, input_shape):
        rest = input_shape[1:]
        if any(d is None for d in rest):
            return tuple(None if d == -1 else d for d in self.target_shape)
        size = math.prod(rest)
        known = math.prod(d for d in self.target_shape if d != -1)
        if -1 in self.target_shape:
            if known == 0 or size % known:
                raise ValueError(f'Layer "{self.name}": cannot reshape an input of shape {shape_str(input_shape)} '
                                 f"into target_shape {self.target_shape}")
            return tuple(size // known if d == -1 else d for d in self.target_shape)
        if known != size:
            raise ValueError(f'Layer "{self.name}": the total size of the input {shape_str(input_shape)} ({size} '
                             f"per sample) must equal the size of target_shape {self.target_shape} ({known})")
        return self.target_shape

    def call(self, inputs):
        target = self._resolve(tuple(inputs.shape))
        return _shape.reshape(inputs, (inputs.shape[0],) + target)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self._resolve(tuple(input_shape))

    def get_config(self):
        config = super().get_config()
        config["target_shape"] = self.target_shape
        return config


class Permute(Layer):
    """Permutes the non-batch axes: ``dims`` is a permutation of 1..rank (e.g. (2, 1) swaps two axes)."""

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        dims = tuple(int(d) for d in dims)
        if sorted(dims) != list(range(1, len(dims) + 1)):
            raise ValueError(f"Invalid permutation argument `dims` for Permute Layer. The set of indices in `dims` "
                             f"must be consecutive and start from 1. Received dims={dims}")
        self.dims = dims
        self.input_spec = InputSpec(ndim=len(dims) + 1)

    def call(self, inputs):
        return _shape.transpose(inputs, (0,) + self.dims)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + tuple(input_shape[d] for d in self.dims)

    def get_config(self):
        config = super().get_config()
        config["dims"] = self.dims
        return config


class RepeatVector(Layer):
    """Repeats a (N, features) input n times: -> (N, n, features)."""

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n <= 0:
            raise ValueError(f"RepeatVector: n must be a positive int, but received n={n!r}")
        self.n = int(n)
        self.input_spec = InputSpec(ndim=2)

    def call(self, inputs):
        x = _shape.expand_dims(inputs, 1)
        return _shape.tile(x, (1, self.n, 1))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n, input_shape[1])

    def get_config(self):
        config = super().get_config()
        config["n"] = self.n
        return config
