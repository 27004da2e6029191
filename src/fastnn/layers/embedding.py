"""Embedding (``keras.layers.Embedding``): integer indices to rows of a trainable (input_dim, output_dim) table,
on the embedding gather / scatter-add kernels (``fastnn.autograd.ops.embedding``)."""
from __future__ import annotations

import warnings

from fastnn import backend as B
from fastnn import constraints as _constraints
from fastnn import initializers as _initializers
from fastnn import regularizers as _regularizers
from fastnn.autograd import Tensor
from fastnn.autograd.ops import embedding as _embedding
from fastnn.autograd.ops import shape as _shape
from fastnn.layers.layer import Layer
from fastnn.layers.serialization import serialize_keras_object


def _positive_int(arg, value):
    # Keras's check and message (keras/src/layers/core/embedding.py): a Python int (not a bool) above 0.
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"`{arg}` must be a positive integer. Received: {arg}={value} (of type "
                         f"{type(value).__name__}).")
    return value


class Embedding(Layer):
    """Turns non-negative integers (indices) into dense vectors of fixed size: ``embeddings[inputs]``.

    Args:
        input_dim: positive int, the vocabulary size (largest index + 1).
        output_dim: positive int, the embedding size.
        embeddings_initializer: default "uniform" (RandomUniform(-0.05, 0.05)), as Keras.
        embeddings_regularizer, embeddings_constraint, activity_regularizer: as Keras.
        mask_zero: whether index 0 is padding: the output's mask is ``inputs != 0`` (and the layer then supports
            masking, as Keras's ``supports_masking = mask_zero``).
        weights: optional initial table (an array of shape (input_dim, output_dim), or a list holding one).
        lora_rank, lora_alpha: LoRA is not supported by fastnn yet: a lora_rank raises ValueError.
        input_length: accepted and ignored with Keras 3's deprecation warning.

    Shapes: (*indices) integers -> (*indices, output_dim). Float inputs are cast to int32 first (as Keras);
    every index must lie in [0, input_dim), else ValueError naming the layer, the index and input_dim.
    The table's gradient is dense (input_dim, output_dim), the rows of repeated indices summed.

    Example:
        >>> Embedding(1000, 64, mask_zero=True)(np.array([[4, 20, 0]])).shape
        (1, 3, 64)
    """

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform", embeddings_regularizer=None,
                 embeddings_constraint=None, mask_zero=False, weights=None, lora_rank=None, lora_alpha=None,
                 quantization_config=None, **kwargs):
        _positive_int("input_dim", input_dim)
        _positive_int("output_dim", output_dim)
        input_length = kwargs.pop("input_length", None)
        if input_length is not None:
            warnings.warn("Argument `input_length` is deprecated. Just remove it.", stacklevel=2)
        if quantization_config is not None:
            raise ValueError(f"Embedding: quantization_config is not supported by fastnn (no quantized Embedding), "
                             f"but received {quantization_config!r}; pass quantization_config=None")
        if lora_rank:
            raise ValueError(f"Embedding: lora_rank is not supported by fastnn yet (received lora_rank={lora_rank!r}); "
                             "pass lora_rank=None")
        super().__init__(**kwargs)
        self.input_dim = int(input_dim)
        self.output_dim = int(output_dim)
        self.embeddings_initializer = _initializers.get(embeddings_initializer)
        self.embeddings_regularizer = _regularizers.get(embeddings_regularizer)
        self.embeddings_constraint = _constraints.get(embeddings_constraint)
        self.mask_zero = mask_zero
        self.supports_masking = bool(mask_zero)
        self.autocast = False  # as Keras: float inputs are indices to cast, not activations to autocast
        self.lora_rank = lora_rank
        self.lora_alpha = lora_alpha if lora_alpha is not None else lora_rank
        self.lora_enabled = False
        self.quantization_config = None
        if weights is not None:
            self._maybe_build(None)
            if not (isinstance(weights, list) and len(weights) == 1):
                weights = [weights]
            self.set_weights(weights)

    def build(self, input_shape=None):
        if self.built:
            return
        self._embeddings = self.add_weight(shape=(self.input_dim, self.output_dim),
                                           initializer=self.embeddings_initializer, name="embeddings",
                                           regularizer=self.embeddings_regularizer,
                                           constraint=self.embeddings_constraint, trainable=True)
        self.built = True

    @property
    def embeddings(self):
        if not self.built:
            raise AttributeError("You must build the layer before accessing `embeddings`.")
        return self._embeddings

    def _indices(self, inputs):
        """The integer index buffer of ``inputs`` (int32 / int64 kept, anything else cast to int32 as Keras)."""
        data = inputs._data if isinstance(inputs, Tensor) else B.asarray(inputs)
        if data.dtype.kind not in "iub" and data.dtype.kind != "f":
            raise TypeError(f'Layer "{self.name}" (Embedding): the inputs must be integer indices, but received '
                            f"dtype {data.dtype}")
        if str(data.dtype) not in ("int32", "int64"):
            data = B.astype(data, "int32")
        return data

    def call(self, inputs):
        indices = self._indices(inputs)
        try:
            outputs = _embedding.embedding_lookup(self._embeddings, indices)
        except ValueError as exc:
            raise ValueError(f'Layer "{self.name}" (Embedding, input_dim={self.input_dim}): every index must lie in '
                             f"[0, {self.input_dim}); {exc}") from None
        if outputs.dtype != self._embeddings.dtype:  # pragma: no cover - the table is the compute dtype
            outputs = _shape.cast(outputs, self.dtype)
        return outputs

    def compute_mask(self, inputs, mask=None):
        if not self.mask_zero:
            return None
        data = inputs._data if isinstance(inputs, Tensor) else B.asarray(inputs)
        return Tensor._wrap(B.not_equal(data, 0))

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.output_dim)

    def enable_lora(self, rank, lora_alpha=None, a_initializer="he_uniform", b_initializer="zeros"):
        raise ValueError("Embedding.enable_lora: LoRA is not supported by fastnn yet")

    def get_config(self):
        config = super().get_config()
        config.update({
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "embeddings_initializer": serialize_keras_object(self.embeddings_initializer),
            "embeddings_regularizer": serialize_keras_object(self.embeddings_regularizer),
            "activity_regularizer": serialize_keras_object(self.activity_regularizer),
            "embeddings_constraint": serialize_keras_object(self.embeddings_constraint),
            "mask_zero": self.mask_zero,
            "quantization_config": None,
        })
        return config
