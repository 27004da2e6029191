"""``Bidirectional``: one recurrent layer run forward and a copy of it run backward over the same sequence, their
outputs merged (Keras's ``keras.layers.Bidirectional``, keras/src/layers/rnn/bidirectional.py).

The forward layer is rebuilt from the given layer's config (named ``forward_<name>``), the backward one from the
same config with ``go_backwards=True`` (``backward_<name>``) unless ``backward_layer`` is given. As Keras does, both
output zeros at masked steps when they return sequences (``zero_output_for_mask`` forced to ``return_sequences``),
and the backward layer's output sequence is flipped back to input order before the merge.

Example:
    >>> Bidirectional(LSTM(4, return_sequences=True))(np.ones((2, 5, 3), "float32")).shape
    (2, 5, 8)
"""
from __future__ import annotations

import copy

from fastnn.autograd.ops import elementwise as _ew
from fastnn.autograd.ops import shape as _shape
from fastnn.layers.layer import Layer

_MERGE_MODES = ("sum", "mul", "ave", "concat", None)


def _remove_prefix(name, prefix):
    return name[len(prefix):] if name.startswith(prefix) else name


def _rebuilt(layer, name, go_backwards=None):
    """A fresh layer from ``layer``'s config with another name (and go_backwards): no weights or state carried."""
    from fastnn.layers.rnn_cells import deserialize_built
    from fastnn.layers.serialization import serialize_layer

    entry = copy.deepcopy(serialize_layer(layer))
    entry["config"]["name"] = name
    if go_backwards is not None:
        entry["config"]["go_backwards"] = go_backwards
    return deserialize_built(entry)  # built like `layer` when it is (Keras builds from the build_config too)


class Bidirectional(Layer):
    """Runs a recurrent layer in both directions and merges the two outputs.

    Args:
        layer: an RNN layer (LSTM, GRU, SimpleRNN, RNN, ...).
        merge_mode: "concat" (default), "sum", "mul", "ave", or None (a list of both outputs).
        backward_layer: optional layer for the backward direction (it must have ``go_backwards`` opposite to
            ``layer`` and the same ``stateful``, ``return_sequences`` and ``return_state``).
        weights: optional initial weights (forward layer's first, then backward layer's).

    Call: ``layer(sequences, initial_state=None, mask=None, training=None)``; initial_state: the forward states
    followed by the backward ones. With ``return_state`` the states follow the output(s): forward's then backward's.
    """

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None, **kwargs):
        if not isinstance(layer, Layer):
            raise ValueError("Please initialize `Bidirectional` layer with a `keras.layers.Layer` instance. "
                             f"Received: {layer}")
        if backward_layer is not None and not isinstance(backward_layer, Layer):
            raise ValueError(f"`backward_layer` need to be a `keras.layers.Layer` instance. Received: {backward_layer}")
        if merge_mode not in _MERGE_MODES:
            raise ValueError(f"Invalid merge mode. Received: {merge_mode}. Merge mode should be one of "
                             '{"sum", "mul", "ave", "concat", None}')
        super().__init__(**kwargs)
        self.forward_layer = _rebuilt(layer, f"forward_{_remove_prefix(layer.name, 'forward_')}")
        if backward_layer is None:
            self.backward_layer = _rebuilt(layer, f"backward_{_remove_prefix(layer.name, 'backward_')}",
                                           go_backwards=True)
        else:
            self.backward_layer = backward_layer
        if hasattr(layer, "use_cudnn"):
            self.forward_layer.use_cudnn = layer.use_cudnn
            self.backward_layer.use_cudnn = layer.use_cudnn
        self._verify_layer_config()
        for direction in (self.forward_layer, self.backward_layer):
            if getattr(direction, "zero_output_for_mask", None) is not None:
                direction.zero_output_for_mask = direction.return_sequences
        self.merge_mode = merge_mode
        self._scoped_weight_ids = set()  # the weights whose paths got this layer's scope
        if weights:
            n = len(weights)
            for direction, part in ((self.forward_layer, weights[: n // 2]), (self.backward_layer, weights[n // 2:])):
                if direction.built:
                    direction.set_weights(part)
                else:  # set when the layer is built
                    direction._initial_weights = list(part)
        self.stateful = layer.stateful
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        self.supports_masking = True
        self.input_spec = layer.input_spec

    def _verify_layer_config(self):
        if self.forward_layer.go_backwards == self.backward_layer.go_backwards:
            raise ValueError("Forward layer and backward layer should have different `go_backwards` value. Received: "
                             f"forward_layer.go_backwards {self.forward_layer.go_backwards}, "
                             f"backward_layer.go_backwards={self.backward_layer.go_backwards}")
        for a in ("stateful", "return_sequences", "return_state"):
            fv, bv = getattr(self.forward_layer, a), getattr(self.backward_layer, a)
            if fv != bv:
                raise ValueError(f'Forward layer and backward layer are expected to have the same value for attribute '
                                 f'"{a}", got "{fv}" for forward layer and "{bv}" for backward layer')

    def _sublayers(self):
        return [self.forward_layer, self.backward_layer]

    def build(self, sequences_shape, initial_state_shape=None):
        for direction in (self.forward_layer, self.backward_layer):
            if not direction.built:
                direction._maybe_build(tuple(sequences_shape))
            scoped = self._scoped_weight_ids
            for w in direction.weights:  # Keras's paths: bidirectional/forward_lstm/lstm_cell/kernel
                if id(w) not in scoped:
                    scoped.add(id(w))
                    w._path = f"{self.name}/{w._path}"
        self.built = True

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        output_shape = self.forward_layer.compute_output_shape(sequences_shape)
        state_shape = ()
        if self.return_state:
            output_shape, state_shape = output_shape[0], tuple(output_shape[1:])
        if self.merge_mode == "concat":
            output_shape = tuple(output_shape[:-1]) + (output_shape[-1] * 2,)
        elif self.merge_mode is None:
            output_shape = [output_shape, output_shape]
        if self.return_state:
            if self.merge_mode is None:
                return tuple(output_shape) + state_shape + state_shape
            return (output_shape,) + state_shape + state_shape
        return output_shape

    def call(self, sequences, initial_state=None, mask=None, training=None):
        kwargs = {}
        if self.forward_layer._call_has_training:
            kwargs["training"] = training
        if self.forward_layer._call_has_mask:
            kwargs["mask"] = mask
        forward_state = backward_state = None
        if initial_state is not None:
            half = len(initial_state) // 2
            forward_state, backward_state = list(initial_state[:half]), list(initial_state[half:])
        y = self.forward_layer(sequences, initial_state=forward_state, **kwargs)
        y_rev = self.backward_layer(sequences, initial_state=backward_state, **kwargs)
        states = ()
        if self.return_state:
            states = tuple(list(y[1:]) + list(y_rev[1:]))
            y, y_rev = y[0], y_rev[0]
        if self.return_sequences:
            y_rev = y_rev[:, ::-1]  # the backward layer's outputs are in processing order: back to input order
        if self.merge_mode == "concat":
            output = _shape.concatenate([y, y_rev], axis=-1)
        elif self.merge_mode == "sum":
            output = _ew.add(y, y_rev)
        elif self.merge_mode == "ave":
            output = _ew.divide(_ew.add(y, y_rev), 2.0)
        elif self.merge_mode == "mul":
            output = _ew.multiply(y, y_rev)
        else:
            output = [y, y_rev]
        if self.return_state:
            if self.merge_mode is None:
                return output + list(states)
            return [output, *states]
        return output

    def compute_mask(self, inputs, mask):
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if self.return_sequences:
            output_mask = [mask, mask] if not self.merge_mode else mask
        else:
            output_mask = [None, None] if not self.merge_mode else None
        if self.return_state and self.states is not None:
            state_mask = [None for _ in self.states]
            if isinstance(output_mask, list):
                return output_mask + state_mask * 2
            return [output_mask] + state_mask * 2
        return output_mask

    @property
    def states(self):
        if self.forward_layer.states and self.backward_layer.states:
            return tuple(list(self.forward_layer.states) + list(self.backward_layer.states))
        return None

    def reset_states(self):
        self.reset_state()

    def reset_state(self):
        if not self.stateful:
            raise AttributeError("Layer must be stateful.")
        self.forward_layer.reset_state()
        self.backward_layer.reset_state()

    def get_config(self):
        from fastnn.layers.serialization import serialize_layer

        config = super().get_config()
        config["merge_mode"] = self.merge_mode
        config["layer"] = serialize_layer(self.forward_layer)
        config["backward_layer"] = serialize_layer(self.backward_layer)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from fastnn.layers.rnn_cells import deserialize_built

        config = copy.deepcopy(config)
        config["layer"] = deserialize_built(config["layer"], custom_objects)
        backward = config.pop("backward_layer", None)
        if backward is not None:
            config["backward_layer"] = deserialize_built(backward, custom_objects)
        return cls(**config)
