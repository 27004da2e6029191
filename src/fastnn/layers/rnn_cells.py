"""Recurrent cells with Keras 3's names, arguments, weights and configs: ``SimpleRNNCell``, ``LSTMCell``,
``GRUCell`` and ``StackedRNNCells``, and the dropout-mask helper every built-in cell mixes in.

A cell computes ONE timestep: ``call(inputs, states, training=None) -> (output, new_states)`` on (batch, features)
tensors, with fastnn's differentiable ops. The ``RNN`` layer (fastnn.layers.rnn) runs a cell over a sequence; the
``LSTM`` / ``GRU`` / ``SimpleRNN`` layers hand the whole sequence to the fused recurrence op instead and use the
cell's ``call`` only when an activation is a Python function the kernels do not have.

The cells' math is Keras's line for line (keras/src/layers/rnn/lstm.py, gru.py, simple_rnn.py), including its two
implementations: 2 (one product for all gates, one shared input dropout mask) and 1 (one product per gate, one input
and one recurrent dropout mask per gate), which Keras switches to whenever ``recurrent_dropout`` > 0.

Example:
    >>> cell = LSTMCell(4)
    >>> h, (h, c) = cell(np.ones((2, 3), "float32"), [np.zeros((2, 4), "float32")] * 2)
    >>> h.shape
    (2, 4)
"""
from __future__ import annotations

import numbers

from fastnn import activations as _activations
from fastnn import backend as B
from fastnn import constraints as _constraints
from fastnn import initializers as _initializers
from fastnn import regularizers as _regularizers
from fastnn import utils as _utils
from fastnn.autograd import Tensor
from fastnn.autograd.ops import elementwise as _ew
from fastnn.autograd.ops import matmul as _mm
from fastnn.autograd.ops import shape as _shape
from fastnn.autograd.ops._util import tensor as _as_tensor
from fastnn.layers.layer import Layer
from fastnn.layers.serialization import serialize_keras_object


def _check_units(cls_name, units):
    if isinstance(units, bool) or not isinstance(units, numbers.Integral) or units <= 0:
        raise ValueError(f"Received an invalid value for argument `units`, expected a positive integer, got {units!r} "
                         f"({cls_name})")
    return int(units)


def _rate(cls_name, arg, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{cls_name}: `{arg}` must be a float in [0, 1], but received {value!r}")
    return min(1.0, max(0.0, float(value)))  # Keras clips the rates into [0, 1]


class DropoutRNNCell:
    """Keras's DropoutRNNCell: the input and recurrent dropout masks of a cell, drawn once per sequence batch (the
    ``RNN`` layer draws them before its loop and resets them after), reused by every timestep.

    A mask is (batch, features) of the compute dtype with values 0 or 1 / (1 - rate); with ``dropout_mask_count``
    set (implementation 1) it is a list of that many independent masks, one per gate. The masks come from the cell's
    own generator when it has a ``seed``, else from fastnn's global one (``fastnn.utils.set_random_seed``).
    """

    def _create_dropout_mask(self, step_input, rate):
        shape = tuple(step_input.shape)
        dtype = step_input.dtype
        scale = 1.0 / (1.0 - rate)

        def one():
            gen = self._seed_generator if self._seed_generator is not None else _utils.rng()
            keep = B.greater_equal(B.random_uniform(gen, shape, "float64"), rate)
            return Tensor._wrap(B.multiply(B.astype(keep, dtype), B.asarray(scale, dtype=dtype)))

        count = getattr(self, "dropout_mask_count", None)
        return one() if count is None else [one() for _ in range(count)]

    def get_dropout_mask(self, step_input):
        if getattr(self, "_dropout_mask", None) is None and self.dropout > 0:
            self._dropout_mask = self._create_dropout_mask(step_input, self.dropout)
        return getattr(self, "_dropout_mask", None)

    def get_recurrent_dropout_mask(self, step_input):
        if getattr(self, "_recurrent_dropout_mask", None) is None and self.recurrent_dropout > 0:
            self._recurrent_dropout_mask = self._create_dropout_mask(step_input, self.recurrent_dropout)
        return getattr(self, "_recurrent_dropout_mask", None)

    def reset_dropout_mask(self):
        self._dropout_mask = None

    def reset_recurrent_dropout_mask(self):
        self._recurrent_dropout_mask = None


class _BuiltinCell(Layer, DropoutRNNCell):
    """What the three Keras cells share: argument handling, weights' regularizers / constraints, config."""

    _gates = 1  # G: how many blocks of `units` columns the kernels have

    def __init__(self, units, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, kernel_constraint=None, recurrent_constraint=None,
                 bias_constraint=None, dropout=0.0, recurrent_dropout=0.0, seed=None, **kwargs):
        cls_name = type(self).__name__
        units = _check_units(cls_name, units)
        super().__init__(**kwargs)
        self.units = units
        self.activation = _activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _initializers.get(kernel_initializer)
        self.recurrent_initializer = _initializers.get(recurrent_initializer)
        self.bias_initializer = _initializers.get(bias_initializer)
        self.kernel_regularizer = _regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = _regularizers.get(recurrent_regularizer)
        self.bias_regularizer = _regularizers.get(bias_regularizer)
        self.kernel_constraint = _constraints.get(kernel_constraint)
        self.recurrent_constraint = _constraints.get(recurrent_constraint)
        self.bias_constraint = _constraints.get(bias_constraint)
        self.dropout = _rate(cls_name, "dropout", dropout)
        self.recurrent_dropout = _rate(cls_name, "recurrent_dropout", recurrent_dropout)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
            raise ValueError(f"{cls_name}: seed must be an int or None, but received {seed!r}")
        self.seed = seed
        self._seed_generator = B.random_generator(int(seed)) if seed is not None else None
        self.output_size = self.units

    def _add_kernels(self, input_dim, bias_shape, bias_initializer):
        g = self._gates
        self.kernel = self.add_weight(shape=(input_dim, self.units * g), name="kernel",
                                      initializer=self.kernel_initializer, regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint)
        self.recurrent_kernel = self.add_weight(shape=(self.units, self.units * g), name="recurrent_kernel",
                                                initializer=self.recurrent_initializer,
                                                regularizer=self.recurrent_regularizer,
                                                constraint=self.recurrent_constraint)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(shape=bias_shape, name="bias", initializer=bias_initializer,
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint)

    def _gate_columns(self, w, k):
        """Columns k*units:(k+1)*units of a (rows, G*units) weight (or of a (G*units,) bias)."""
        u = self.units
        return w[..., k * u:(k + 1) * u]

    def _base_config(self, with_recurrent_activation):
        config = super().get_config()
        config["units"] = self.units
        config["activation"] = _activations.serialize(self.activation)
        if with_recurrent_activation:
            config["recurrent_activation"] = _activations.serialize(self.recurrent_activation)
        config["use_bias"] = self.use_bias
        return config

    def _weights_config(self):
        return {
            "kernel_initializer": serialize_keras_object(self.kernel_initializer),
            "recurrent_initializer": serialize_keras_object(self.recurrent_initializer),
            "bias_initializer": serialize_keras_object(self.bias_initializer),
            "kernel_regularizer": serialize_keras_object(self.kernel_regularizer),
            "recurrent_regularizer": serialize_keras_object(self.recurrent_regularizer),
            "bias_regularizer": serialize_keras_object(self.bias_regularizer),
            "kernel_constraint": serialize_keras_object(self.kernel_constraint),
            "recurrent_constraint": serialize_keras_object(self.recurrent_constraint),
            "bias_constraint": serialize_keras_object(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
        }

    def get_initial_state(self, batch_size=None):
        sizes = self.state_size if isinstance(self.state_size, list) else [self.state_size]
        return [Tensor._wrap(B.zeros((batch_size, d), dtype=self.dtype)) for d in sizes]

    def _input_dropout(self, inputs, training):
        if training and 0.0 < self.dropout < 1.0:
            return self.get_dropout_mask(inputs)
        return None

    def _recurrent_dropout(self, h, training):
        if training and 0.0 < self.recurrent_dropout < 1.0:
            return self.get_recurrent_dropout_mask(h)
        return None


class SimpleRNNCell(_BuiltinCell):
    """One step of a fully connected RNN: ``h = activation(x @ kernel + bias + h_prev @ recurrent_kernel)``.

    Args (Keras's): units, activation ("tanh"), use_bias, kernel_initializer ("glorot_uniform"),
        recurrent_initializer ("orthogonal"), bias_initializer ("zeros"), the regularizers and constraints of
        kernel / recurrent_kernel / bias, dropout and recurrent_dropout (rates of the input and state masks, drawn
        once per sequence), seed.

    Weights: kernel (input_dim, units), recurrent_kernel (units, units), bias (units,).
    """

    _gates = 1

    def __init__(self, units, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, kernel_constraint=None, recurrent_constraint=None,
                 bias_constraint=None, dropout=0.0, recurrent_dropout=0.0, seed=None, **kwargs):
        super().__init__(units, activation=activation, use_bias=use_bias, kernel_initializer=kernel_initializer,
                         recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
                         kernel_regularizer=kernel_regularizer, recurrent_regularizer=recurrent_regularizer,
                         bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
                         recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint, dropout=dropout,
                         recurrent_dropout=recurrent_dropout, seed=seed, **kwargs)
        self.state_size = self.units

    def build(self, input_shape):
        self._add_kernels(input_shape[-1], (self.units,), self.bias_initializer)
        self.built = True

    def call(self, sequence, states, training=False):
        prev_output = states[0] if isinstance(states, (list, tuple)) else states
        prev_output = _as_tensor(prev_output, "SimpleRNNCell")
        dp_mask = self._input_dropout(sequence, training)
        rec_dp_mask = self._recurrent_dropout(prev_output, training)
        if dp_mask is not None:
            sequence = _ew.multiply(sequence, dp_mask)
        h = _mm.matmul(sequence, self.kernel)
        if self.bias is not None:
            h = _ew.add(h, self.bias)
        if rec_dp_mask is not None:
            prev_output = _ew.multiply(prev_output, rec_dp_mask)
        output = self.activation(_ew.add(h, _mm.matmul(prev_output, self.recurrent_kernel)))
        return output, ([output] if isinstance(states, (list, tuple)) else output)

    def get_config(self):
        config = self._base_config(False)
        config.update(self._weights_config())
        config["seed"] = self.seed
        return config


class LSTMCell(_BuiltinCell):
    """One step of a Long Short-Term Memory layer (Hochreiter 1997), Keras's gate order i, f, c, o.

    Args: SimpleRNNCell's, plus recurrent_activation ("sigmoid", the gates) and unit_forget_bias (True: the forget
        gate's bias starts at 1). ``implementation`` (keyword): 2 (default: one product for all gates) or 1 (one per
        gate, one dropout mask per gate; forced by recurrent_dropout > 0, as in Keras).

    Weights: kernel (input_dim, 4 units), recurrent_kernel (units, 4 units), bias (4 units,).
    States: [h, c], both (batch, units).
    """

    _gates = 4

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 unit_forget_bias=True, kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, **kwargs):
        implementation = kwargs.pop("implementation", 2)
        super().__init__(units, activation=activation, use_bias=use_bias, kernel_initializer=kernel_initializer,
                         recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
                         kernel_regularizer=kernel_regularizer, recurrent_regularizer=recurrent_regularizer,
                         bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
                         recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint, dropout=dropout,
                         recurrent_dropout=recurrent_dropout, seed=seed, **kwargs)
        self.recurrent_activation = _activations.get(recurrent_activation)
        self.implementation = implementation
        if self.recurrent_dropout != 0.0:
            self.implementation = 1
        if self.implementation == 1:
            self.dropout_mask_count = 4
        self.unit_forget_bias = bool(unit_forget_bias)
        self.state_size = [self.units, self.units]

    def build(self, input_shape):
        bias_initializer = self.bias_initializer
        if self.use_bias and self.unit_forget_bias:
            base, units = self.bias_initializer, self.units

            def bias_initializer(shape, dtype=None):  # [init(u), ones(u), init(2u)], as Keras builds it
                return B.concatenate([base((units,), dtype=dtype), B.ones((units,), dtype=dtype),
                                      base((2 * units,), dtype=dtype)])
        self._add_kernels(input_shape[-1], (4 * self.units,), bias_initializer)
        self.built = True

    def call(self, inputs, states, training=False):
        h_tm1 = _as_tensor(states[0], "LSTMCell")
        c_tm1 = _as_tensor(states[1], "LSTMCell")
        ra, act = self.recurrent_activation, self.activation
        if self.implementation == 1:
            dp = self._input_dropout(inputs, training)
            rdp = self._recurrent_dropout(h_tm1, training)
            z = []
            for k in range(4):
                x_k = inputs if dp is None else _ew.multiply(inputs, dp[k])
                zk = _mm.matmul(x_k, self._gate_columns(self.kernel, k))
                if self.bias is not None:
                    zk = _ew.add(zk, self._gate_columns(self.bias, k))
                h_k = h_tm1 if rdp is None else _ew.multiply(h_tm1, rdp[k])
                z.append(_ew.add(zk, _mm.matmul(h_k, self._gate_columns(self.recurrent_kernel, k))))
        else:
            dp = self._input_dropout(inputs, training)
            if dp is not None:
                inputs = _ew.multiply(inputs, dp)
            zz = _ew.add(_mm.matmul(inputs, self.kernel), _mm.matmul(h_tm1, self.recurrent_kernel))
            if self.bias is not None:
                zz = _ew.add(zz, self.bias)
            z = _shape.split(zz, 4, axis=1)
        i, f, o = ra(z[0]), ra(z[1]), ra(z[3])
        c = _ew.add(_ew.multiply(f, c_tm1), _ew.multiply(i, act(z[2])))
        h = _ew.multiply(o, act(c))
        return h, [h, c]

    def get_config(self):
        config = self._base_config(True)
        config["unit_forget_bias"] = self.unit_forget_bias
        config.update(self._weights_config())
        config["seed"] = self.seed
        return config


class GRUCell(_BuiltinCell):
    """One step of a Gated Recurrent Unit (Cho et al. 2014), Keras's gate order z (update), r (reset), h.

    Args: LSTMCell's without unit_forget_bias, plus reset_after (True, Keras 3's default: the reset gate multiplies
        the recurrent product, with separate input and recurrent biases; False: it multiplies the state before it).

    Weights: kernel (input_dim, 3 units), recurrent_kernel (units, 3 units), bias (2, 3 units) with reset_after
        (row 0 input bias, row 1 recurrent bias) else (3 units,).
    """

    _gates = 3

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0, recurrent_dropout=0.0,
                 reset_after=True, seed=None, **kwargs):
        implementation = kwargs.pop("implementation", 2)
        super().__init__(units, activation=activation, use_bias=use_bias, kernel_initializer=kernel_initializer,
                         recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
                         kernel_regularizer=kernel_regularizer, recurrent_regularizer=recurrent_regularizer,
                         bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
                         recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint, dropout=dropout,
                         recurrent_dropout=recurrent_dropout, seed=seed, **kwargs)
        self.recurrent_activation = _activations.get(recurrent_activation)
        self.implementation = implementation
        if self.recurrent_dropout != 0.0:
            self.implementation = 1
        if self.implementation == 1:
            self.dropout_mask_count = 3
        self.reset_after = bool(reset_after)
        self.state_size = self.units

    def build(self, input_shape):
        bias_shape = (2, 3 * self.units) if self.reset_after else (3 * self.units,)
        self._add_kernels(input_shape[-1], bias_shape, self.bias_initializer)
        self.built = True

    def _biases(self):
        """(input bias, recurrent bias): each (3 units,) or None."""
        if self.bias is None:
            return None, None
        if not self.reset_after:
            return self.bias, None
        return self.bias[0], self.bias[1]

    def call(self, inputs, states, training=False):
        nested = isinstance(states, (list, tuple))
        h_tm1 = _as_tensor(states[0] if nested else states, "GRUCell")
        ra, act, col = self.recurrent_activation, self.activation, self._gate_columns
        input_bias, recurrent_bias = self._biases()
        kernel, rk = self.kernel, self.recurrent_kernel
        dp = self._input_dropout(inputs, training)
        if self.implementation == 1:
            rdp = self._recurrent_dropout(h_tm1, training)
            x = []
            for k in range(3):
                xk = _mm.matmul(inputs if dp is None else _ew.multiply(inputs, dp[k]), col(kernel, k))
                if input_bias is not None:
                    xk = _ew.add(xk, col(input_bias, k))
                x.append(xk)
            hs = [h_tm1 if rdp is None else _ew.multiply(h_tm1, rdp[k]) for k in range(3)]
            rec_z = _mm.matmul(hs[0], col(rk, 0))
            rec_r = _mm.matmul(hs[1], col(rk, 1))
            if self.reset_after and recurrent_bias is not None:
                rec_z = _ew.add(rec_z, col(recurrent_bias, 0))
                rec_r = _ew.add(rec_r, col(recurrent_bias, 1))
            z = ra(_ew.add(x[0], rec_z))
            r = ra(_ew.add(x[1], rec_r))
            if self.reset_after:
                rec_h = _mm.matmul(hs[2], col(rk, 2))
                if recurrent_bias is not None:
                    rec_h = _ew.add(rec_h, col(recurrent_bias, 2))
                rec_h = _ew.multiply(r, rec_h)
            else:
                rec_h = _mm.matmul(_ew.multiply(r, hs[2]), col(rk, 2))
            hh = act(_ew.add(x[2], rec_h))
        else:
            if dp is not None:
                inputs = _ew.multiply(inputs, dp)
            matrix_x = _mm.matmul(inputs, kernel)
            if input_bias is not None:
                matrix_x = _ew.add(matrix_x, input_bias)
            x_z, x_r, x_h = _shape.split(matrix_x, 3, axis=-1)
            if self.reset_after:
                inner = _mm.matmul(h_tm1, rk)
                if recurrent_bias is not None:
                    inner = _ew.add(inner, recurrent_bias)
            else:
                inner = _mm.matmul(h_tm1, rk[:, :2 * self.units])
            z = ra(_ew.add(x_z, col(inner, 0)))
            r = ra(_ew.add(x_r, col(inner, 1)))
            if self.reset_after:
                rec_h = _ew.multiply(r, col(inner, 2))
            else:
                rec_h = _mm.matmul(_ew.multiply(r, h_tm1), col(rk, 2))
            hh = act(_ew.add(x_h, rec_h))
        # The state mixes with the UNdropped previous state, as in Keras.
        h = _ew.add(_ew.multiply(z, h_tm1), _ew.multiply(_ew.subtract(1.0, z), hh))
        return h, ([h] if nested else h)

    def get_config(self):
        config = self._base_config(True)
        config.update(self._weights_config())
        config["reset_after"] = self.reset_after
        config["seed"] = self.seed
        return config


class StackedRNNCells(Layer):
    """Several cells run as one: each timestep goes through the cells in order, the output of one being the input of
    the next. ``RNN([cell1, cell2])`` builds one.

    Args:
        cells: a list of cells (objects with ``call`` and ``state_size``).
    """

    def __init__(self, cells, **kwargs):
        super().__init__(**kwargs)
        cells = list(cells)
        for cell in cells:
            if not hasattr(cell, "call"):
                raise ValueError(f"All cells must have a `call` method. Received cell without a `call` method: {cell}")
            if not hasattr(cell, "state_size"):
                raise ValueError("All cells must have a `state_size` attribute. Received cell without a "
                                 f"`state_size`: {cell}")
        self.cells = cells
        self._scoped_weight_ids = set()  # the weights whose paths got this layer's scope

    @property
    def state_size(self):
        return [c.state_size for c in self.cells]

    @property
    def output_size(self):
        last = self.cells[-1]
        if getattr(last, "output_size", None) is not None:
            return last.output_size
        if isinstance(last.state_size, (list, tuple)):
            return last.state_size[0]
        return last.state_size

    def get_initial_state(self, batch_size=None):
        states = []
        for cell in self.cells:
            fn = getattr(cell, "get_initial_state", None)
            if fn is not None:
                states.append(fn(batch_size=batch_size))
            elif isinstance(cell.state_size, int):
                states.append(Tensor._wrap(B.zeros((batch_size, cell.state_size), dtype=self.dtype)))
            else:
                states.append([Tensor._wrap(B.zeros((batch_size, d), dtype=self.dtype)) for d in cell.state_size])
        return states

    def call(self, inputs, states, training=False, **kwargs):
        new_states = []
        for cell, cell_states in zip(self.cells, states):
            state_is_list = isinstance(cell_states, (list, tuple))
            cell_states = list(cell_states) if state_is_list else [cell_states]
            inputs, cell_states = call_cell(cell, inputs, cell_states, training)
            if not isinstance(cell_states, (list, tuple)):
                cell_states = [cell_states]
            if len(cell_states) == 1 and not state_is_list:
                cell_states = cell_states[0]
            new_states.append(cell_states)
        if len(new_states) == 1:
            new_states = new_states[0]
        return inputs, new_states

    def build(self, input_shape):
        for cell in self.cells:
            if isinstance(cell, Layer) and not cell.built:
                cell._maybe_build(tuple(input_shape))
            if getattr(cell, "output_size", None) is not None:
                output_dim = cell.output_size
            elif isinstance(cell.state_size, (list, tuple)):
                output_dim = cell.state_size[0]
            else:
                output_dim = cell.state_size
            input_shape = (input_shape[0], output_dim)
        scoped = self._scoped_weight_ids
        for w in self.weights:  # Keras's paths: rnn/stacked_rnn_cells/lstm_cell/kernel
            if id(w) not in scoped:
                scoped.add(id(w))
                w._path = f"{self.name}/{w._path}"
        self.built = True

    def get_config(self):
        config = super().get_config()
        config["cells"] = [_serialize_cell(c) for c in self.cells]
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        cells = [deserialize_cell(c, custom_objects) for c in config.pop("cells")]
        return cls(cells, **config)


def _serialize_cell(cell):
    """A cell's entry in a config, as Keras's serialize_keras_object writes it (with the build_config of a built
    cell: its step input shape)."""
    from fastnn.layers.serialization import _keras_module_of

    module, registered = _keras_module_of(type(cell))
    entry = {"module": module, "class_name": type(cell).__name__, "config": cell.get_config(),
             "registered_name": registered}
    if isinstance(cell, Layer) and cell.built and cell.get_build_config() is not None:
        from fastnn.layers.serialization import _plain

        entry["build_config"] = {k: _plain(v) for k, v in cell.get_build_config().items()}
    return entry


def deserialize_cell(config, custom_objects=None):
    """A cell (or layer) from its config entry (Keras's dict, or a cell object passed through)."""
    if not isinstance(config, dict):
        return config
    return deserialize_built(config, custom_objects)


def deserialize_built(config, custom_objects=None):
    """A layer from its config entry, built from its ``build_config`` when the entry has one (as Keras's
    deserialize_keras_object does, so a rebuilt layer writes the same config again)."""
    from fastnn.models.sequential import deserialize_layer

    layer = deserialize_layer(config, custom_objects=custom_objects)
    build_config = config.get("build_config")
    if isinstance(layer, Layer) and build_config and build_config.get("input_shape") is not None:
        layer._maybe_build(tuple(build_config["input_shape"]))
    return layer


def call_cell(cell, inputs, states, training):
    """One step of ``cell``: through ``Layer.__call__`` for layers (so user cells are built and see ``training`` as
    Keras passes it), else the object's ``call``."""
    if isinstance(cell, Layer):
        if cell._call_has_training:
            return cell(inputs, states, training=training)
        return cell(inputs, states)
    return cell.call(inputs, states)
