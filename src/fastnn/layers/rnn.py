"""Recurrent layers with Keras 3's names, arguments, defaults, weights and configs: the generic ``RNN`` (any cell,
the sequence loop in Python with autograd) and ``LSTM``, ``GRU``, ``SimpleRNN`` (the whole sequence in the fused
recurrence op, fastnn.autograd.ops.rnn).

Keras's semantics (keras/src/layers/rnn/rnn.py and backend/tensorflow/rnn.py):
- masks: at a masked step (mask False) the states keep their values and the output is the previous step's output
  (zeros before the first unmasked step), or 0 with ``zero_output_for_mask``; the last output is the one of the last
  step processed.
- ``go_backwards`` reads the sequence from its end; the outputs stay in processing order.
- dropout masks are drawn once per call (per sequence batch) and reused at every step.

Example:
    >>> LSTM(8, return_sequences=True)(np.ones((2, 5, 3), "float32")).shape
    (2, 5, 8)
"""
from __future__ import annotations

import numbers

from fastnn import activations as _activations
from fastnn import backend as B
from fastnn.autograd import Tensor, Variable
from fastnn.autograd.ops import elementwise as _ew
from fastnn.autograd.ops import nn as _nn
from fastnn.autograd.ops import rnn as _rnn_op
from fastnn.autograd.ops import shape as _shape
from fastnn.layers.layer import InputSpec, Layer, shape_str
from fastnn.layers.rnn_cells import (DropoutRNNCell, GRUCell, LSTMCell, SimpleRNNCell, StackedRNNCells, _serialize_cell,
                                     call_cell, deserialize_cell)

# The activations the recurrence kernels compute themselves (their activation kinds); any other activation (a Python
# function, a lambda) runs the cell's own step in the Python loop.
# (Keras's functions with their default arguments: leaky_relu's slope 0.2, elu's alpha 1.)
_KERNEL_ACTIVATIONS = {
    _activations.tanh: "tanh",
    _activations.sigmoid: "sigmoid",
    _activations.relu: "relu",
    _activations.linear: "linear",
    _activations.hard_sigmoid: "hard_sigmoid",
    _activations.relu6: "relu6",
    _activations.elu: "elu",
    _activations.selu: "selu",
    _activations.softplus: "softplus",
    _activations.softsign: "softsign",
    _activations.silu: "silu",
    _activations.leaky_relu: "leaky_relu",
}


def kernel_activation_kind(fn):
    """The recurrence kernels' name for an activation function, or None when they do not have it."""
    try:
        return _KERNEL_ACTIVATIONS.get(fn)
    except TypeError:  # an unhashable callable
        return None


def _flatten_sizes(state_size):
    out = []
    for s in state_size if isinstance(state_size, (list, tuple)) else [state_size]:
        if isinstance(s, (list, tuple)):
            out.extend(_flatten_sizes(s))
        else:
            out.append(int(s))
    return out


def _flatten(structure):
    if isinstance(structure, (list, tuple)):
        out = []
        for s in structure:
            out.extend(_flatten(s))
        return out
    return [structure]


def _pack_like(state_size, flat_iter):
    """Flat states packed into the structure of ``state_size`` (an int is one tensor, a list a list of them)."""
    return [next(flat_iter) if isinstance(s, numbers.Integral) else _pack_like(s, flat_iter) for s in state_size]


def _map2(fn, a, b):
    if isinstance(a, (list, tuple)):
        return [_map2(fn, x, y) for x, y in zip(a, b)]
    return fn(a, b)


class RNN(Layer):
    """Runs a recurrent cell over the timesteps of its input (Keras's ``keras.layers.RNN``).

    Args:
        cell: a cell (a layer with ``call(inputs, states, training=None) -> (output, new_states)``, ``state_size``
            (an int or a list of ints), optionally ``output_size`` and ``get_initial_state(batch_size)``), or a list
            of cells (run as ``StackedRNNCells``).
        return_sequences: return every step's output (batch, timesteps, output_size) instead of the last one.
        return_state: also return the final states (``[output, *states]``).
        go_backwards: process the sequence from its last step (the outputs stay in processing order).
        stateful: the final states of a batch are the initial states of the next (batch size fixed;
            ``reset_states()`` zeroes them).
        unroll: accepted for Keras compatibility (the loop is the same either way).
        zero_output_for_mask: outputs at masked steps are 0 instead of the previous step's output.

    Call: ``layer(sequences, initial_state=None, mask=None, training=None)``; sequences (batch, timesteps, ...),
    mask (batch, timesteps) bool, initial_state a list with one (batch, size) tensor per state.
    """

    def __init__(self, cell, return_sequences=False, return_state=False, go_backwards=False, stateful=False,
                 unroll=False, zero_output_for_mask=False, **kwargs):
        if isinstance(cell, (list, tuple)):
            cell = StackedRNNCells(cell, dtype=kwargs.get("dtype"))
        if not hasattr(cell, "call"):
            raise ValueError(f"Argument `cell` should have a `call` method. Received: cell={cell}")
        if not hasattr(cell, "state_size"):
            raise ValueError("The RNN cell should have a `state_size` attribute (single integer or list of integers, "
                             f"one integer per RNN state). Received: cell={cell}")
        super().__init__(**kwargs)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.cell = cell
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.unroll = bool(unroll)
        self.supports_masking = True
        self.input_spec = None
        self.states = None
        self._expected_batch_size = None
        self._zero_initial_state = False  # set by each call: whether the states start as the default zeros
        self._scoped_weight_ids = set()  # the weights whose paths got this layer's scope
        state_size = getattr(cell, "state_size", None)
        if state_size is None:
            raise ValueError("state_size must be specified as property on the RNN cell.")
        if not isinstance(state_size, (list, tuple, numbers.Integral)):
            raise ValueError("state_size must be an integer, or a list/tuple of integers (one for each state tensor).")
        self.single_state = isinstance(state_size, numbers.Integral)
        self.state_size = [int(state_size)] if self.single_state else list(state_size)

    # -- shapes and masks -------------------------------------------------------------------------------------
    def _output_size(self):
        output_size = getattr(self.cell, "output_size", None)
        if output_size is None:
            output_size = self.state_size[0]
        if not isinstance(output_size, numbers.Integral):
            raise ValueError("output_size must be an integer.")
        return int(output_size)

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        batch, length = sequences_shape[0], sequences_shape[1]
        states_shape = []
        for s in self.state_size:
            if isinstance(s, numbers.Integral):
                states_shape.append((batch, int(s)))
            else:
                states_shape.append([(batch, int(d)) for d in s])
        out = (batch, length, self._output_size()) if self.return_sequences else (batch, self._output_size())
        if self.return_state:
            return (out, *states_shape)
        return out

    def compute_mask(self, inputs, mask):
        mask = _flatten(mask)[0] if mask is not None else None
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask] + [None for _ in self.state_size]
        return output_mask

    # -- build / states ---------------------------------------------------------------------------------------
    def build(self, sequences_shape, initial_state_shape=None):
        sequences_shape = tuple(sequences_shape)
        if len(sequences_shape) < 3:
            raise ValueError(self._rank_error(sequences_shape))
        step_input_shape = (sequences_shape[0],) + tuple(sequences_shape[2:])
        if isinstance(self.cell, Layer):
            if not self.cell.built:
                self.cell._maybe_build(step_input_shape)
            self._scope_cell_weights()
        if self.stateful:
            if self.states is not None:
                self.reset_state()
            else:
                if sequences_shape[0] is None:
                    raise ValueError("When using `stateful=True` in a RNN, the batch size must be static. Found "
                                     f"dynamic batch size: sequence.shape={shape_str(sequences_shape)}")
                self._create_state_variables(sequences_shape[0])
        self.built = True

    def _scope_cell_weights(self):
        """Weight paths as Keras writes them: ``layer/cell/kernel``."""
        scoped = self._scoped_weight_ids
        for w in self.cell.weights:
            if getattr(w, "_path", None) is not None and id(w) not in scoped:
                scoped.add(id(w))
                w._path = f"{self.name}/{w._path}"

    def _create_state_variables(self, batch_size):
        # Plain Variables, not weights (Keras does not track them either): get_weights() stays the cell's.
        states = self.get_initial_state(batch_size)
        self.states = [Variable(s, trainable=False, name="rnn_state") for s in _flatten(states)]
        self._expected_batch_size = int(batch_size)

    def get_initial_state(self, batch_size):
        fn = getattr(self.cell, "get_initial_state", None)
        if fn is None:
            return [Tensor._wrap(B.zeros((batch_size, d), dtype=self.dtype)) for d in self.state_size]
        init_state = fn(batch_size=batch_size)
        if not isinstance(init_state, (list, tuple)):
            init_state = [init_state]
        return list(init_state)

    def reset_states(self):
        """Zeroes the states of a stateful layer (Keras's compatibility alias of ``reset_state``)."""
        self.reset_state()

    def reset_state(self):
        if self.states is not None:
            for v in self.states:
                v.assign(B.zeros(v.shape, dtype=v.dtype))

    # -- call -------------------------------------------------------------------------------------------------
    def _rank_error(self, shape):
        return (f'Layer "{self.name}" expects a 3-D input (batch, timesteps, features), but received an input of shape '
                f"{shape_str(tuple(shape))}")

    def _checked_initial_state(self, initial_state, batch):
        """The user's initial_state as a list in the cell's state structure, after checking count and shapes."""
        if isinstance(initial_state, (list, tuple)):
            given = _flatten(list(initial_state))
        else:
            given = [initial_state]
        sizes = _flatten_sizes(self.state_size)
        if len(given) != len(sizes):
            raise ValueError(f'Layer "{self.name}" expects {len(sizes)} initial state tensor(s) (state_size '
                             f"{self.state_size}), but it received {len(given)}")
        states = []
        for i, (s, size) in enumerate(zip(given, sizes)):
            t = s if isinstance(s, Tensor) else Tensor._wrap(B.asarray(s))
            if t.dtype.kind != "f":
                raise ValueError(f'Layer "{self.name}": initial_state[{i}] must be a float tensor, but received dtype '
                                 f"{t.dtype}")
            if tuple(t.shape) != (batch, size):
                raise ValueError(f'Layer "{self.name}": initial_state[{i}] must have shape {(batch, size)} (batch, '
                                 f"state size), but received shape {tuple(t.shape)}")
            if t.dtype != self.dtype:
                t = _shape.cast(t, self.dtype)
            states.append(t)
        if self.single_state:
            return states
        return _pack_like(self.state_size, iter(states))

    def _checked_mask(self, mask, shape):
        if isinstance(mask, (list, tuple)):
            mask = mask[0] if mask else None
        if mask is None:
            return None
        buf = mask._data if isinstance(mask, Tensor) else (mask if B.is_buffer(mask) else B.asarray(mask))
        if tuple(buf.shape) != tuple(shape[:2]):
            raise ValueError(f'Layer "{self.name}": the mask must have shape (batch, timesteps) = {tuple(shape[:2])} '
                             f"to match the input of shape {shape_str(tuple(shape))}, but received a mask of shape "
                             f"{shape_str(tuple(buf.shape))}")
        if buf.dtype != bool:
            buf = B.astype(buf, bool)
        return buf

    def call(self, sequences, initial_state=None, mask=None, training=False):
        seq = sequences
        if seq.ndim < 3:
            raise ValueError(self._rank_error(seq.shape))
        if seq.dtype.kind != "f":
            seq = _shape.cast(seq, self.dtype)
        batch, timesteps = seq.shape[0], seq.shape[1]
        if timesteps == 0:
            raise ValueError(f'Layer "{self.name}" needs at least one timestep, but received an input of shape '
                             f"{shape_str(tuple(seq.shape))}")
        if self.stateful and self._expected_batch_size is not None and batch != self._expected_batch_size:
            raise ValueError("If an RNN is stateful, the batch size of the input sequences must be the same as the "
                             f"batch size of the initial state. \n- Expected batch size: {self._expected_batch_size}"
                             f"\n- Received batch size: {batch} (layer \"{self.name}\")")
        # Zero initial states (the default of a layer that is not stateful): the fused path then reads the last output
        # from h_last even with a mask (a row masked everywhere outputs 0 = its h0).
        self._zero_initial_state = initial_state is None and not self.stateful
        if initial_state is None:
            if self.stateful:
                states = [Tensor._wrap(v._data) for v in self.states]
                initial_state = states if self.single_state else _pack_like(self.state_size, iter(states))
            else:
                initial_state = self.get_initial_state(batch)
        else:
            initial_state = self._checked_initial_state(initial_state, batch)
        mask_buf = self._checked_mask(mask, seq.shape)
        if training:
            self._config_dropout_masks(self.cell, seq, initial_state)
        try:
            last_output, outputs, states = self.inner_loop(seq, initial_state, mask_buf, training=training)
        finally:
            self._reset_dropout_masks(self.cell)
        if self.stateful:
            for v, s in zip(self.states, _flatten(states)):
                v.assign(s.detach() if isinstance(s, Tensor) else s)
        output = outputs if self.return_sequences else last_output
        if self.return_state:
            return [output, *states]
        return output

    def _config_dropout_masks(self, cell, sequences, states):
        """Draws the dropout masks before the loop, as Keras's _maybe_config_dropout_masks: each cell's input mask
        then its state mask, cell after cell (a stacked cell's input is the previous cell's output)."""
        step_shape = (sequences.shape[0],) + tuple(sequences.shape[2:])
        self._draw_masks(cell, step_shape, sequences.dtype, states)

    def _draw_masks(self, cell, step_shape, dtype, states):
        if isinstance(cell, DropoutRNNCell):
            state = states[0] if isinstance(states, (list, tuple)) else states
            cell.get_dropout_mask(Tensor._wrap(B.zeros(step_shape, dtype=dtype)))
            cell.get_recurrent_dropout_mask(state)
        if isinstance(cell, StackedRNNCells):
            for c, s in zip(cell.cells, states):
                self._draw_masks(c, step_shape, dtype, s)
                out = getattr(c, "output_size", None)
                if out is None:
                    out = c.state_size[0] if isinstance(c.state_size, (list, tuple)) else c.state_size
                step_shape = (step_shape[0], int(out))

    def _reset_dropout_masks(self, cell):
        if isinstance(cell, DropoutRNNCell):
            cell.reset_dropout_mask()
            cell.reset_recurrent_dropout_mask()
        if isinstance(cell, StackedRNNCells):
            for c in cell.cells:
                self._reset_dropout_masks(c)

    def inner_loop(self, sequences, initial_state, mask, training=False):
        """(last_output, outputs, final states) of the cell run step by step (Python loop, autograd ops)."""
        return python_loop(self.cell, sequences, initial_state, mask, training=training,
                           go_backwards=self.go_backwards, zero_output_for_mask=self.zero_output_for_mask)

    # -- config -----------------------------------------------------------------------------------------------
    def _rnn_config(self):
        config = super().get_config()
        config.update({"return_sequences": self.return_sequences, "return_state": self.return_state,
                       "go_backwards": self.go_backwards, "stateful": self.stateful, "unroll": self.unroll,
                       "zero_output_for_mask": self.zero_output_for_mask})
        return config

    def get_config(self):
        config = self._rnn_config()
        config["cell"] = _serialize_cell(self.cell)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        cell = deserialize_cell(config.pop("cell"), custom_objects)
        return cls(cell, **config)


def python_loop(cell, sequences, initial_state, mask, *, training=False, go_backwards=False,
                zero_output_for_mask=False):
    """Keras's backend.rnn on fastnn ops: (last_output, outputs (B, T, out), final states).

    A masked step keeps the previous states and repeats the previous output (zeros before the first unmasked step),
    or outputs 0 with zero_output_for_mask.
    """
    timesteps = sequences.shape[1]
    steps = range(timesteps - 1, -1, -1) if go_backwards else range(timesteps)
    states = list(initial_state)
    outputs = []
    prev_output = None
    for t in steps:
        x_t = sequences[:, t]
        output, new_states = call_cell(cell, x_t, states, training)
        if not isinstance(new_states, (list, tuple)):
            new_states = [new_states]
        new_states = list(new_states)
        if mask is not None:
            keep = Tensor._wrap(B.getitem(mask, (slice(None), slice(t, t + 1))))
            new_states = _map2(lambda new, old: _ew.where(keep, new, old), new_states, states)
            if zero_output_for_mask or prev_output is None:
                output = _ew.where(keep, output, 0.0)
            else:
                output = _ew.where(keep, output, prev_output)
        states = new_states
        outputs.append(output)
        prev_output = output
    return outputs[-1], _shape.stack(outputs, axis=1), states


# ---------------------------------------------------------------------------------------------------------------
# The layers on the fused recurrence op
# ---------------------------------------------------------------------------------------------------------------
class _FusedRNN(RNN):
    """An RNN over one built-in cell whose sequence runs in the fused op (xproj = one matmul over all timesteps,
    then the recurrence kernel), unless an activation is a Python function the kernels lack."""

    _cell_kind = None  # "lstm" / "gru" / "simple_rnn"

    def __init__(self, cell, **kwargs):
        super().__init__(cell, **kwargs)
        self.input_spec = InputSpec(ndim=3)

    def _kernel_cell_kind(self):
        return self._cell_kind

    def _kernel_activations(self):
        cell = self.cell
        act = kernel_activation_kind(cell.activation)
        rec = kernel_activation_kind(getattr(cell, "recurrent_activation", _activations.sigmoid))
        if act is None or rec is None:
            return None
        return act, rec

    def inner_loop(self, sequences, initial_state, mask, training=False):
        kinds = self._kernel_activations()
        if kinds is None:
            return super().inner_loop(sequences, initial_state, mask, training=training)
        return self._fused_loop(sequences, initial_state, mask, training, *kinds)

    def _input_projection(self, x, training, mask=None):
        """xproj (B, T, G*U) = x @ kernel (+ input bias): one matmul for all timesteps, or one per gate when there
        is one input dropout mask per gate (implementation 1). With a (B, T) mask only the kept timesteps' rows are
        computed (the recurrence never reads a masked step's projection; those rows are +0).
        Returns (xproj, recurrent bias or None)."""
        cell = self.cell
        kernel = cell.kernel
        input_bias, recurrent_bias = (cell._biases() if isinstance(cell, GRUCell) else (cell.bias, None))
        if x.dtype != kernel.dtype:
            x = _shape.cast(x, kernel.dtype)
        dp = cell._input_dropout(x[:, 0], training)
        if mask is None:
            def project(xs, w, b):
                return _nn.dense(xs, w, b, "linear")
        else:
            def project(xs, w, b):
                return _nn.dense_kept_rows(xs, w, b, mask)
        if dp is not None and isinstance(dp, list):  # one mask per gate: one product per gate
            pieces = []
            for k, m in enumerate(dp):
                xk = _ew.multiply(x, _shape.expand_dims(m, 1))
                bk = None if input_bias is None else cell._gate_columns(input_bias, k)
                pieces.append(project(xk, cell._gate_columns(kernel, k), bk))
            return _shape.concatenate(pieces, axis=-1), recurrent_bias
        if dp is not None:
            x = _ew.multiply(x, _shape.expand_dims(dp, 1))
        return project(x, kernel, input_bias), recurrent_bias

    def _recurrent_masks(self, h0, training):
        """The state dropout masks as one (M, B, U) buffer (M = 1 shared, M = G per gate), or None."""
        rdp = self.cell._recurrent_dropout(h0, training)
        if rdp is None:
            return None
        masks = rdp if isinstance(rdp, list) else [rdp]
        return B.stack([m._data for m in masks], axis=0)

    def _fused_loop(self, sequences, initial_state, mask, training, activation, recurrent_activation):
        cell = self.cell
        kind = self._kernel_cell_kind()
        xproj, recurrent_bias = self._input_projection(sequences, training, mask)
        h0 = initial_state[0]
        c0 = initial_state[1] if kind == "lstm" else None
        results = _rnn_op.rnn_sequence(
            kind, xproj, cell.recurrent_kernel, h0, c0, mask=mask, recurrent_masks=self._recurrent_masks(h0, training),
            recurrent_bias=recurrent_bias, activation=activation, recurrent_activation=recurrent_activation,
            reverse=self.go_backwards, zero_output_for_mask=self.zero_output_for_mask)
        outputs, states = results[0], list(results[1:])
        if not self.return_sequences and (mask is None or (self._zero_initial_state and not self.zero_output_for_mask)):
            # The last output IS h_last here (the carry rule: y_{T-1} is the h of the last unmasked step, or 0 = h0
            # for a row masked everywhere): taking it from the states sends its gradient in as d_h_last instead of a
            # (B, T, U) d_outputs that is zero but for one step (no scatter, no zeros to read).
            last_output = _shape.identity(states[0]) if self.return_state else states[0]
        else:
            last_output = outputs[:, -1]
        return last_output, outputs, states

    def _cell_property_config(self, names):
        cell = self.cell
        from fastnn.layers.serialization import serialize_keras_object

        out = {}
        for n in names:
            v = getattr(cell, n)
            if n.endswith("activation"):
                v = _activations.serialize(v)
            elif n.endswith(("initializer", "regularizer", "constraint")):
                v = serialize_keras_object(v)
            out[n] = v
        return out

    # Keras's LSTM / GRU / SimpleRNN expose their cell's arguments as properties.
    units = property(lambda self: self.cell.units)
    activation = property(lambda self: self.cell.activation)
    use_bias = property(lambda self: self.cell.use_bias)
    kernel_initializer = property(lambda self: self.cell.kernel_initializer)
    recurrent_initializer = property(lambda self: self.cell.recurrent_initializer)
    bias_initializer = property(lambda self: self.cell.bias_initializer)
    kernel_regularizer = property(lambda self: self.cell.kernel_regularizer)
    recurrent_regularizer = property(lambda self: self.cell.recurrent_regularizer)
    bias_regularizer = property(lambda self: self.cell.bias_regularizer)
    kernel_constraint = property(lambda self: self.cell.kernel_constraint)
    recurrent_constraint = property(lambda self: self.cell.recurrent_constraint)
    bias_constraint = property(lambda self: self.cell.bias_constraint)
    dropout = property(lambda self: self.cell.dropout)
    recurrent_dropout = property(lambda self: self.cell.recurrent_dropout)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**config)


def _cell_kwargs(kwargs):
    """The base-layer arguments the layer hands on to its cell, as Keras does (dtype, trainable)."""
    return {"dtype": kwargs.get("dtype"), "trainable": kwargs.get("trainable", True)}


def _serialized_activity_regularizer(layer):
    from fastnn.layers.serialization import serialize_keras_object

    return serialize_keras_object(layer.activity_regularizer)


class SimpleRNN(_FusedRNN):
    """Fully connected RNN whose output is fed back: ``h_t = activation(x_t @ kernel + bias + h_{t-1} @
    recurrent_kernel)`` (Keras's ``keras.layers.SimpleRNN``), on the fused recurrence kernel.

    Args: SimpleRNNCell's (units, activation="tanh", use_bias, initializers, regularizers, constraints, dropout,
        recurrent_dropout, seed) and RNN's (return_sequences, return_state, go_backwards, stateful, unroll),
        activity_regularizer.

    Weights: [kernel (input_dim, units), recurrent_kernel (units, units), bias (units,)].
    """

    _cell_kind = "simple_rnn"

    def __init__(self, units, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0, recurrent_dropout=0.0, seed=None,
                 return_sequences=False, return_state=False, go_backwards=False, stateful=False, unroll=False,
                 **kwargs):
        cell = SimpleRNNCell(units, activation=activation, use_bias=use_bias, kernel_initializer=kernel_initializer,
                             recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
                             kernel_regularizer=kernel_regularizer, recurrent_regularizer=recurrent_regularizer,
                             bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
                             recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint,
                             dropout=dropout, recurrent_dropout=recurrent_dropout, seed=seed, name="simple_rnn_cell",
                             **_cell_kwargs(kwargs))
        super().__init__(cell, return_sequences=return_sequences, return_state=return_state,
                         go_backwards=go_backwards, stateful=stateful, unroll=unroll,
                         activity_regularizer=activity_regularizer, **kwargs)

    def get_config(self):
        config = self._rnn_config()
        config.update(self._cell_property_config(["units", "activation", "use_bias", "kernel_initializer",
                                                  "recurrent_initializer", "bias_initializer", "kernel_regularizer",
                                                  "recurrent_regularizer", "bias_regularizer"]))
        config["activity_regularizer"] = _serialized_activity_regularizer(self)
        config.update(self._cell_property_config(["kernel_constraint", "recurrent_constraint", "bias_constraint",
                                                  "dropout", "recurrent_dropout"]))
        return config  # no seed: Keras's SimpleRNN does not write it (the cell's config does)


class LSTM(_FusedRNN):
    """Long Short-Term Memory layer (Keras's ``keras.layers.LSTM``) on the fused recurrence kernel.

    Args: LSTMCell's (units, activation="tanh", recurrent_activation="sigmoid", use_bias, kernel_initializer
        "glorot_uniform", recurrent_initializer "orthogonal", bias_initializer "zeros", unit_forget_bias=True,
        regularizers, constraints, dropout, recurrent_dropout, seed) and RNN's (return_sequences, return_state,
        go_backwards, stateful, unroll), activity_regularizer; ``use_cudnn`` is accepted (no GPU: ignored).

    Weights: [kernel (input_dim, 4 units), recurrent_kernel (units, 4 units), bias (4 units,)], gates i, f, c, o.

    Example:
        >>> LSTM(4, return_state=True)(np.ones((2, 5, 3), "float32"))   # [output, h, c]
    """

    _cell_kind = "lstm"

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 unit_forget_bias=True, kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, recurrent_constraint=None, bias_constraint=None,
                 dropout=0.0, recurrent_dropout=0.0, seed=None, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, use_cudnn="auto", **kwargs):
        cell = LSTMCell(units, activation=activation, recurrent_activation=recurrent_activation, use_bias=use_bias,
                        kernel_initializer=kernel_initializer, unit_forget_bias=unit_forget_bias,
                        recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
                        kernel_regularizer=kernel_regularizer, recurrent_regularizer=recurrent_regularizer,
                        bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
                        recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint, dropout=dropout,
                        recurrent_dropout=recurrent_dropout, name="lstm_cell", seed=seed,
                        implementation=kwargs.pop("implementation", 2), **_cell_kwargs(kwargs))
        super().__init__(cell, return_sequences=return_sequences, return_state=return_state,
                         go_backwards=go_backwards, stateful=stateful, unroll=unroll,
                         activity_regularizer=activity_regularizer, **kwargs)
        if use_cudnn not in ("auto", True, False):
            raise ValueError("Invalid valid received for argument `use_cudnn`. Expected one of {'auto', True, False}. "
                             f"Received: use_cudnn={use_cudnn}")
        self.use_cudnn = use_cudnn

    recurrent_activation = property(lambda self: self.cell.recurrent_activation)
    unit_forget_bias = property(lambda self: self.cell.unit_forget_bias)

    def get_config(self):
        config = self._rnn_config()
        config.update(self._cell_property_config(["units", "activation", "recurrent_activation", "use_bias",
                                                  "kernel_initializer", "recurrent_initializer", "bias_initializer",
                                                  "unit_forget_bias", "kernel_regularizer", "recurrent_regularizer",
                                                  "bias_regularizer"]))
        config["activity_regularizer"] = _serialized_activity_regularizer(self)
        config.update(self._cell_property_config(["kernel_constraint", "recurrent_constraint", "bias_constraint",
                                                  "dropout", "recurrent_dropout"]))
        config["seed"] = self.cell.seed
        return config


class GRU(_FusedRNN):
    """Gated Recurrent Unit (Keras's ``keras.layers.GRU``) on the fused recurrence kernel.

    Args: GRUCell's (units, activation="tanh", recurrent_activation="sigmoid", use_bias, initializers,
        regularizers, constraints, dropout, recurrent_dropout, reset_after=True, seed) and RNN's, activity_regularizer;
        ``use_cudnn`` accepted.

    Weights: [kernel (input_dim, 3 units), recurrent_kernel (units, 3 units), bias (2, 3 units) with reset_after
        (input bias, recurrent bias) else (3 units,)], gates z, r, h.
    """

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, return_sequences=False, return_state=False, go_backwards=False,
                 stateful=False, unroll=False, reset_after=True, use_cudnn="auto", **kwargs):
        cell = GRUCell(units, activation=activation, recurrent_activation=recurrent_activation, use_bias=use_bias,
                       kernel_initializer=kernel_initializer, recurrent_initializer=recurrent_initializer,
                       bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
                       recurrent_regularizer=recurrent_regularizer, bias_regularizer=bias_regularizer,
                       kernel_constraint=kernel_constraint, recurrent_constraint=recurrent_constraint,
                       bias_constraint=bias_constraint, dropout=dropout, recurrent_dropout=recurrent_dropout,
                       reset_after=reset_after, name="gru_cell", seed=seed,
                       implementation=kwargs.pop("implementation", 2), **_cell_kwargs(kwargs))
        super().__init__(cell, return_sequences=return_sequences, return_state=return_state,
                         go_backwards=go_backwards, stateful=stateful, unroll=unroll,
                         activity_regularizer=activity_regularizer, **kwargs)
        if use_cudnn not in ("auto", True, False):
            raise ValueError("Invalid valid received for argument `use_cudnn`. Expected one of {'auto', True, False}. "
                             f"Received: use_cudnn={use_cudnn}")
        self.use_cudnn = use_cudnn

    recurrent_activation = property(lambda self: self.cell.recurrent_activation)
    reset_after = property(lambda self: self.cell.reset_after)

    def _kernel_cell_kind(self):
        return "gru" if self.cell.reset_after else "gru_reset_before"

    def get_config(self):
        config = self._rnn_config()
        config.update(self._cell_property_config(["units", "activation", "recurrent_activation", "use_bias",
                                                  "kernel_initializer", "recurrent_initializer", "bias_initializer",
                                                  "kernel_regularizer", "recurrent_regularizer", "bias_regularizer"]))
        config["activity_regularizer"] = _serialized_activity_regularizer(self)
        config.update(self._cell_property_config(["kernel_constraint", "recurrent_constraint", "bias_constraint",
                                                  "dropout", "recurrent_dropout", "reset_after"]))
        config["seed"] = self.cell.seed
        return config
