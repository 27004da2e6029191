"""Layer wrappers (``keras.layers.Wrapper``, ``keras.layers.TimeDistributed``)."""
from __future__ import annotations

from fastnn.autograd import Tensor
from fastnn.autograd.ops import shape as _shape
from fastnn.layers.layer import Layer


class Wrapper(Layer):
    """Abstract base of the layers that wrap another layer (``keras.layers.Wrapper``): ``self.layer`` is tracked
    (its weights are the wrapper's), built with the wrapper, and written into the config as ``"layer"``."""

    def __init__(self, layer, **kwargs):
        if not isinstance(layer, Layer):
            raise ValueError(f"Layer {layer} supplied to Wrapper isn't a supported layer type. Please ensure wrapped "
                             "layer is a valid Keras layer.")
        super().__init__(**kwargs)
        self.layer = layer

    def build(self, input_shape=None):
        if not self.layer.built:
            self.layer._maybe_build(input_shape)

    def get_config(self):
        from fastnn.layers.serialization import serialize_layer

        config = super().get_config()
        config["layer"] = serialize_layer(self.layer)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from fastnn.models.sequential import deserialize_layer

        config = dict(config)
        layer = deserialize_layer(config.pop("layer"), custom_objects=custom_objects)
        return cls(layer, **config)


def _uses_batch_statistics(layer) -> bool:
    """Whether ``layer`` (or a layer inside it) computes across the batch axis (BatchNormalization): then each time
    slice must be its own batch, as Keras runs it."""
    from fastnn.layers.normalization import BatchNormalization

    seen, stack = set(), [layer]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, BatchNormalization):
            return True
        stack.extend(current._sublayers())
    return False


class TimeDistributed(Wrapper):
    """Applies a layer to every temporal slice of an input (``keras.layers.TimeDistributed``): axis 1 is time.

    As Keras 3, the wrapped layer's ``call`` runs on each slice ``inputs[:, t]`` (with ``training`` and the slice
    ``mask[:, t]`` when its call takes them) and the results are stacked on axis 1. Layers that treat the samples of
    a batch independently (every built-in layer except BatchNormalization) run once on the (batch * time, ...)
    reshaped input instead: the same numbers, one kernel call. The output's mask is the input's (Keras's default
    compute_mask: the wrapped layer's own mask is not used).

    Args:
        layer: a ``fastnn.layers.Layer`` instance.

    Shapes: (batch, time, *inner_in) -> (batch, time, *inner_out), inner_out the wrapped layer's output shape for
    (batch, *inner_in).

    Example:
        >>> TimeDistributed(Dense(8))(np.ones((32, 10, 16), "float32")).shape
        (32, 10, 8)
    """

    def __init__(self, layer, **kwargs):
        if not isinstance(layer, Layer):
            raise ValueError(f"Please initialize `TimeDistributed` layer with a `keras.layers.Layer` instance. "
                             f"Received: {layer}")
        super().__init__(layer, **kwargs)
        self.supports_masking = True

    def _get_child_input_shape(self, input_shape):
        if not isinstance(input_shape, (tuple, list)) or len(input_shape) < 3:
            raise ValueError(f'Layer "{self.name}": `TimeDistributed` Layer should be passed an `input_shape` with at '
                             f"least 3 dimensions, received: {input_shape}")
        return (input_shape[0], *input_shape[2:])

    def compute_output_shape(self, input_shape):
        child_output_shape = self.layer.compute_output_shape(self._get_child_input_shape(tuple(input_shape)))
        return (child_output_shape[0], input_shape[1], *child_output_shape[1:])

    def build(self, input_shape):
        super().build(self._get_child_input_shape(tuple(input_shape)))

    def _check_mask(self, inputs, mask):
        mask_shape, input_shape = tuple(mask.shape), tuple(inputs.shape)
        if len(mask_shape) < 2:
            raise ValueError(f'Layer "{self.name}": The `mask` passed to the `TimeDistributed` layer must be at least 2D '
                             f"(e.g., `(batch_size, timesteps)`), but it has {len(mask_shape)} dimension(s) with shape "
                             f"{mask_shape}.")
        if mask_shape[:2] != input_shape[:2]:
            raise ValueError(f'Layer "{self.name}": The `mask` passed to the `TimeDistributed` layer has a shape '
                             f"{mask_shape} that is incompatible with the input shape {input_shape}. The first two "
                             "dimensions of the mask (batch size and timesteps) must match the input's first two "
                             f"dimensions. Expected mask shape prefix: ({input_shape[0]}, {input_shape[1]}).")

    def _inner_kwargs(self, training, mask):
        kwargs = {}
        if self.layer._call_has_mask and mask is not None:
            kwargs["mask"] = mask
        if self.layer._call_has_training:
            kwargs["training"] = training
        return kwargs

    def call(self, inputs, training=None, mask=None):
        if not isinstance(inputs, Tensor):
            raise ValueError(f'Layer "{self.name}": TimeDistributed takes one tensor input, but received '
                             f"{type(inputs).__name__}")
        self._get_child_input_shape(tuple(inputs.shape))
        if mask is not None:
            mask = mask if isinstance(mask, Tensor) else Tensor(mask)
            self._check_mask(inputs, mask)
        batch, steps = inputs.shape[0], inputs.shape[1]
        if not _uses_batch_statistics(self.layer) and batch * steps > 0:
            # One call on (batch * time, ...): row b * steps + t is slice t of sample b.
            merged = _shape.reshape(inputs, (batch * steps,) + tuple(inputs.shape[2:]))
            merged_mask = None if mask is None else _shape.reshape(mask, (batch * steps,) + tuple(mask.shape[2:]))
            y = self.layer.call(merged, **self._inner_kwargs(training, merged_mask))
            return _shape.reshape(y, (batch, steps) + tuple(y.shape[1:]))
        outputs = [self.layer.call(inputs[:, t], **self._inner_kwargs(training, None if mask is None else mask[:, t]))
                   for t in range(steps)]
        return _shape.stack(outputs, axis=1)
