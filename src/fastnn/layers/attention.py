"""Attention layers: MultiHeadAttention (``keras.layers.MultiHeadAttention``, Vaswani et al. 2017) with Keras 3.15's arguments,
weights, config, masks and file layout, for inputs of shape (batch, sequence, features).

Keras builds four EinsumDense sublayers: query / key / value project (B, T, dim) to (B, T, heads, key_dim) with a
(dim, heads, key_dim) kernel and a (heads, key_dim) bias, the output one maps (B, T, heads, value_dim) back with a
(heads, value_dim, out) kernel. Here each is a ``_HeadProjection``: the same weights, computed as one GEMM on the
flattened kernel (fastnn's Dense op). The attention itself is Keras's, in its order: the scaled scores
``q k^T / sqrt(key_dim)`` per head (one batched matmul), the masks (the query's and the value's / key's Keras masks,
``attention_mask``, ``use_causal_mask``, ``sliding_window``) where-ed in as a large negative, softmax, dropout
(training only), and the weighted sum of the values. As in Keras, a query row whose every key is masked gets the
uniform average of the values on the fused dot-product path (no dropout, scores not returned) and zeros on the
explicit one.
"""
from __future__ import annotations

import math
import numbers

from fastnn import activations as _activations
from fastnn import backend as B
from fastnn import constraints as _constraints
from fastnn import initializers as _initializers
from fastnn import regularizers as _regularizers
from fastnn import utils as _utils
from fastnn.autograd import Tensor
from fastnn.autograd import keras_attrs
from fastnn.autograd.keras_attrs import get_keras_mask, set_keras_mask
from fastnn.autograd.ops import activation as _act
from fastnn.autograd.ops import elementwise as _ew
from fastnn.autograd.ops import matmul as _matmul
from fastnn.autograd.ops import nn as _nn
from fastnn.autograd.ops import reduce as _reduce
from fastnn.autograd.ops import shape as _shape
from fastnn.layers.activations import Softmax
from fastnn.layers.core import Dropout, _dropout
from fastnn.layers.layer import Layer
from fastnn.layers.serialization import serialize_keras_object

# Keras's dot_product_attention fills masked logits with -0.7 * the dtype's largest value (TensorFlow backend)
_FLOAT32_MAX = 3.4028234663852886e38


_CONSUMED: dict = {}  # id -> (finalizer, True): the tensors an attention call has taken the masks of


def _consume(t):
    if id(t) not in _CONSUMED:
        keras_attrs._set(_CONSUMED, "consumed", t, True)


def _consumed(t):
    return id(t) in _CONSUMED


def _clone(initializer):
    """Keras gives each sublayer its own copy of the initializer (class.from_config(get_config()))."""
    if hasattr(initializer, "get_config"):
        return type(initializer).from_config(initializer.get_config())
    return initializer


class _HeadProjection(Layer):
    """Keras's EinsumDense as MultiHeadAttention builds it: the last ``in_dims`` axes of the input contracted with
    a kernel of shape ``input_shape[-in_dims:] + out_shape`` (+ a bias of ``out_shape``), the result shaped
    ``(..., *out_shape)``; computed as one GEMM on the flattened kernel, the bias and activation in its epilogue."""

    def __init__(self, in_dims, out_shape, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
                 bias_regularizer, activity_regularizer, kernel_constraint, bias_constraint, activation=None,
                 **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.in_dims, self.out_shape, self.use_bias = in_dims, tuple(out_shape), use_bias
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer
        self.kernel_regularizer, self.bias_regularizer = kernel_regularizer, bias_regularizer
        self.kernel_constraint, self.bias_constraint = kernel_constraint, bias_constraint
        self.activation = _activations.get(activation)
        self.supports_masking = True  # the attention computes its own masks; the input's passes through unread

    def build(self, input_shape):
        contracted = tuple(input_shape[-self.in_dims:])
        if any(d is None for d in contracted):
            raise ValueError(f'Layer "{self.name}": the projected axes of the input must be defined, but received '
                             f"input shape {tuple(input_shape)}")
        self.kernel = self.add_weight(name="kernel", shape=contracted + self.out_shape,
                                      initializer=self.kernel_initializer, regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=self.out_shape, initializer=self.bias_initializer,
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint)
        self.built = True

    def call(self, inputs):
        x = inputs
        lead = tuple(x.shape[:-self.in_dims])
        fan_in = math.prod(x.shape[-self.in_dims:])
        fan_out = math.prod(self.out_shape)
        if self.in_dims > 1:
            x = _shape.reshape(x, lead + (fan_in,))
        kernel = _shape.reshape(self.kernel, (fan_in, fan_out))
        bias = _shape.reshape(self.bias, (fan_out,)) if self.bias is not None else None
        y = _nn.dense(x, kernel, bias, "linear")
        if len(self.out_shape) > 1:
            y = _shape.reshape(y, lead + self.out_shape)
        return y if self.activation is _activations.linear else self.activation(y)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-self.in_dims]) + self.out_shape


def _positive(arg, value, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"Received an invalid value for argument `{arg}`, expected a positive integer. Received: "
                         f"{arg}={value!r}")
    return int(value)


def _positions(T, S):
    """The query (1, T, 1) and key (1, 1, S) position grids of a (T, S) score matrix."""
    return B.reshape(B.arange(T), (1, T, 1)), B.reshape(B.arange(S), (1, 1, S))


def _causal_mask(T, S):
    """(1, T, S) bool: query t attends key s <= t (Keras's causal mask)."""
    rows, cols = _positions(T, S)
    return B.greater_equal(rows, cols)


def _as_bool(mask):
    if mask is None:
        return None
    data = mask._data if isinstance(mask, Tensor) else B.asarray(mask)
    return B.astype(data, "bool", copy=False)


class MultiHeadAttention(Layer):
    """Multi-head attention (``keras.layers.MultiHeadAttention``): ``layer(query, value, key=None, ...)`` on
    (batch, T, dim) / (batch, S, dim) tensors; the output has the query's shape (or ``output_shape`` as its last
    axes).

    Args:
        num_heads, key_dim: heads and their query / key size; value_dim (default key_dim).
        dropout: on the attention probabilities, in training. use_bias: biases in the four projections.
        output_shape: an int or tuple (default: the query's last axis). attention_axes: None or (1,) here (the
            sequence axis; other axes are refused with a clear error). sliding_window: attend within that distance.
        use_gate: a sigmoid gate projected from the query multiplies the attention output (Keras 3.12+).
        kernel_* / bias_* initializers, regularizers, constraints; activity_regularizer; seed (the dropout's).
    Call arguments: query_mask / value_mask / key_mask (also taken from the inputs' Keras masks), attention_mask
    (batch, T, S) (True attends), return_attention_scores (then (output, scores of shape (batch, heads, T, S))),
    training, use_causal_mask.
    """

    def __init__(self, num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True, output_shape=None,
                 attention_axes=None, sliding_window=None, flash_attention=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, use_gate=False, seed=None, **kwargs):
        num_heads = _positive("num_heads", num_heads)
        key_dim = _positive("key_dim", key_dim)
        value_dim = _positive("value_dim", value_dim, allow_none=True)
        super().__init__(**kwargs)
        self.supports_masking = True
        self._num_heads, self._key_dim = num_heads, key_dim
        self._value_dim = value_dim if value_dim else key_dim
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout < 1:
            raise ValueError(f"MultiHeadAttention: dropout must be a float in [0, 1), but received {dropout!r}")
        self._dropout = dropout
        self._use_bias = bool(use_bias)
        self._use_gate = bool(use_gate)
        if output_shape:
            if isinstance(output_shape, int):
                output_shape = (output_shape,)
            try:
                output_shape = tuple(output_shape)
            except TypeError:
                raise ValueError(f"Invalid `output_shape`: {output_shape}. When specified, the `output_shape` should "
                                 f"be of type tuple, list, or int.") from None
        self._output_shape = output_shape
        if flash_attention:
            raise ValueError("MultiHeadAttention: flash_attention is not available in fastnn (the attention runs as "
                             "batched GEMMs); pass flash_attention=None or False")
        self._kernel_initializer = _initializers.get(kernel_initializer)
        self._bias_initializer = _initializers.get(bias_initializer)
        self._kernel_regularizer = _regularizers.get(kernel_regularizer)
        self._bias_regularizer = _regularizers.get(bias_regularizer)
        self._activity_regularizer = _regularizers.get(activity_regularizer)
        self._kernel_constraint = _constraints.get(kernel_constraint)
        self._bias_constraint = _constraints.get(bias_constraint)
        if isinstance(attention_axes, int):
            attention_axes = (attention_axes,)
        elif attention_axes and not isinstance(attention_axes, (list, tuple)):
            raise ValueError(f"`attention_axes` must be an int, list, or tuple.Received: "
                             f"attention_axes={attention_axes}")
        self._attention_axes = attention_axes
        if sliding_window is not None and (isinstance(sliding_window, bool) or not isinstance(sliding_window, int)
                                           or sliding_window <= 0):
            raise ValueError(f"`sliding_window` must be `None` or a positive integer. Received: "
                             f"sliding_window={sliding_window}")
        self._sliding_window = sliding_window
        self.seed = seed
        self._inverse_sqrt_key_dim = 1.0 / math.sqrt(float(self._key_dim))
        self._shapes = None  # the shapes the sublayers were built for (Keras's build_config shapes_dict)

    # Keras's read-only properties
    num_heads = property(lambda self: self._num_heads)
    key_dim = property(lambda self: self._key_dim)
    value_dim = property(lambda self: self._value_dim)
    dropout = property(lambda self: self._dropout)
    use_bias = property(lambda self: self._use_bias)
    attention_axes = property(lambda self: self._attention_axes)
    query_dense = property(lambda self: self._query_dense)
    key_dense = property(lambda self: self._key_dense)
    value_dense = property(lambda self: self._value_dense)
    output_dense = property(lambda self: self._output_dense)

    def _sublayer_kwargs(self):
        return dict(kernel_regularizer=self._kernel_regularizer, bias_regularizer=self._bias_regularizer,
                    activity_regularizer=self._activity_regularizer, kernel_constraint=self._kernel_constraint,
                    bias_constraint=self._bias_constraint, kernel_initializer=_clone(self._kernel_initializer),
                    bias_initializer=_clone(self._bias_initializer), use_bias=self._use_bias, dtype=self.dtype)

    def build(self, query_shape, value_shape=None, key_shape=None):
        if value_shape is None:
            return  # the base call's build sees the query alone: the sublayers are built at the call, from all
        query_shape, value_shape = tuple(query_shape), tuple(value_shape)
        shapes = {"query_shape": query_shape, "value_shape": value_shape}  # Keras's build_config shapes_dict
        if key_shape is not None:
            shapes["key_shape"] = tuple(key_shape)
        key_shape = value_shape if key_shape is None else tuple(key_shape)
        if value_shape[1:-1] != key_shape[1:-1]:
            raise ValueError(f"All dimensions of `value` and `key`, except the last one, must be equal. Received: "
                             f"value_shape={value_shape} and key_shape={key_shape}")
        if len(query_shape) != 3 or len(value_shape) != 3:
            raise ValueError(f'Layer "{self.name}": fastnn\'s MultiHeadAttention takes (batch, sequence, features) '
                             f"inputs, but received query {query_shape} and value {value_shape}")
        if self._attention_axes not in (None, (1,), [1], (-2,), [-2]):
            raise ValueError(f'Layer "{self.name}": attention_axes={self._attention_axes} is not supported by '
                             f"fastnn (only the sequence axis, attention_axes=None or (1,))")
        heads = self._num_heads
        self._query_dense = _HeadProjection(1, (heads, self._key_dim), name="query", **self._sublayer_kwargs())
        self._query_dense.build(query_shape)
        self._key_dense = _HeadProjection(1, (heads, self._key_dim), name="key", **self._sublayer_kwargs())
        self._key_dense.build(key_shape)
        if self._use_gate:
            self._gate_dense = _HeadProjection(1, (heads, self._value_dim), activation="sigmoid", name="gate",
                                               **self._sublayer_kwargs())
            self._gate_dense.build(query_shape)
        self._value_dense = _HeadProjection(1, (heads, self._value_dim), name="value", **self._sublayer_kwargs())
        self._value_dense.build(value_shape)
        out = self._output_shape if self._output_shape else (query_shape[-1],)
        self._output_dense = _HeadProjection(2, tuple(out), name="attention_output", **self._sublayer_kwargs())
        self._output_dense.build(query_shape[:-1] + (heads, self._value_dim))
        if self._attention_axes is None:
            self._attention_axes = (1,)
        else:
            self._attention_axes = tuple(a if a >= 0 else 3 + a for a in self._attention_axes)
        for sub in self._projections():
            for w in sub.weights:  # the paths Keras gives them: multi_head_attention/query/kernel
                w._path = f"{self.name}/{w._path}"
        self._softmax = Softmax(axis=(3,), dtype=self.dtype)
        self._dropout_layer = Dropout(rate=self._dropout, dtype=self.dtype, seed=self.seed)
        self._shapes = shapes
        self.built = True

    def _symbolic_call(self, args, kwargs):
        # The base symbolic call builds from the first argument's shape; the projections need all three.
        if self._shapes is None:
            query = args[0]
            value = args[1] if len(args) > 1 else kwargs.get("value")
            key = args[2] if len(args) > 2 else kwargs.get("key")
            if value is None:
                raise TypeError(f'Layer "{self.name}": MultiHeadAttention needs `value` (call it as layer(query, '
                                f"value) or layer(query, value, key))")
            self.build(tuple(query.shape), tuple(value.shape), None if key is None else tuple(key.shape))
        return super()._symbolic_call(args, kwargs)

    def _projections(self):
        """The projections in Keras's weight order (query, key, [gate,] value, output)."""
        gate = [self._gate_dense] if self._use_gate else []
        return [self._query_dense, self._key_dense] + gate + [self._value_dense, self._output_dense]

    def get_build_config(self):
        return {"shapes_dict": self._shapes} if self._shapes is not None else None

    def build_from_config(self, config):
        if config and "shapes_dict" in config:
            self.build(**{k: tuple(v) for k, v in config["shapes_dict"].items()})

    # -- masks -----------------------------------------------------------------------------------------------
    def _attention_mask(self, T, S, query_mask, value_mask, key_mask, attention_mask, use_causal_mask):
        """Keras's _compute_attention_mask: a bool buffer broadcastable to (batch, T, S), or None."""
        auto = None
        if query_mask is not None:
            auto = B.expand_dims(_as_bool(query_mask), -1)
        for m in (value_mask, key_mask):
            if m is not None:
                m = B.expand_dims(_as_bool(m), -2)
                auto = m if auto is None else B.logical_and(auto, m)
        if use_causal_mask:
            m = _causal_mask(T, S)
            auto = m if auto is None else B.logical_and(auto, m)
        if self._sliding_window is not None:
            rows, cols = _positions(T, S)
            m = B.less(B.abs(B.subtract(rows, cols)), self._sliding_window)
            auto = m if auto is None else B.logical_and(auto, m)
        if attention_mask is not None:
            attention_mask = _as_bool(attention_mask)
        if auto is not None:
            attention_mask = auto if attention_mask is None else B.logical_and(attention_mask, auto)
        return attention_mask

    def call(self, query, value, key=None, query_mask=None, value_mask=None, key_mask=None, attention_mask=None,
             return_attention_scores=False, training=None, use_causal_mask=False):
        query = query if isinstance(query, Tensor) else Tensor(B.asarray(query))
        value = value if isinstance(value, Tensor) else Tensor(B.asarray(value))
        key = value if key is None else (key if isinstance(key, Tensor) else Tensor(B.asarray(key)))
        if self._shapes is None:
            self.build(query.shape, value.shape, None if key is value else key.shape)
        # As Keras 3.15: the query's mask is read from the query itself, and the call then clears the Keras mask
        # attribute of all three inputs. Layers with a `mask` argument still get their masks from the functional
        # graph there, but a later attention over the same tensor finds no query / value / key mask; that one
        # effect is kept here (_consumed), so chained attentions over one masked embedding give Keras's numbers.
        query_mask = None if _consumed(query) else get_keras_mask(query)
        if value_mask is not None and _consumed(value) and value_mask is get_keras_mask(value):
            value_mask = None
        if key_mask is not None and _consumed(key) and key_mask is get_keras_mask(key):
            key_mask = None
        for t in (query, value, key):
            _consume(t)
        T, S = query.shape[1], value.shape[1]
        mask = self._attention_mask(T, S, query_mask, value_mask, key_mask, attention_mask, use_causal_mask)
        gate = self._gate_dense(query) if self._use_gate else None
        q = self._query_dense(query)                                   # (B, T, H, kd)
        k = self._key_dense(key)                                       # (B, S, H, kd)
        v = self._value_dense(value)                                   # (B, S, H, vd)
        q = _shape.transpose(q, (0, 2, 1, 3))                          # (B, H, T, kd)
        k = _shape.transpose(k, (0, 2, 3, 1))                          # (B, H, kd, S)
        v = _shape.transpose(v, (0, 2, 1, 3))                          # (B, H, S, vd)
        fused_path = not (self._dropout > 0.0 or return_attention_scores)
        head_mask = None if mask is None else B.expand_dims(mask, 1)  # (B or 1, 1, T, S)
        if fused_path:
            # keras.ops.dot_product_attention: the logits scaled after the product, masked logits -0.7 * max
            scores = _ew.multiply(_matmul.matmul(q, k), self._inverse_sqrt_key_dim)
            if head_mask is not None:
                scores = _ew.where(head_mask, scores, -0.7 * _FLOAT32_MAX if scores.dtype != "float16" else -3e4)
            probabilities = _activations.softmax(scores, axis=-1)
            attention_scores = None
        else:
            # Keras's explicit path: the query scaled first, the Softmax layer's mask (masked weights exactly 0)
            scores = _matmul.matmul(_ew.multiply(q, self._inverse_sqrt_key_dim), k)
            attention_scores = self._softmax(scores, mask=head_mask) if head_mask is not None else \
                self._softmax(scores)
            probabilities = self._dropout_layer(attention_scores, training=training) if self._dropout > 0.0 else \
                attention_scores
        attended = _matmul.matmul(probabilities, v)                    # (B, H, T, vd)
        attended = _shape.transpose(attended, (0, 2, 1, 3))            # (B, T, H, vd)
        if gate is not None:
            attended = _ew.multiply(attended, gate)
        output = self._output_dense(attended)
        if query_mask is not None:  # as Keras: the output carries the query's mask (read before it was cleared)
            set_keras_mask(output, query_mask)
        if return_attention_scores:
            return output, attention_scores
        return output

    def compute_mask(self, inputs, previous_mask):
        return previous_mask  # the query's mask, as Keras's output carries (call also sets it itself)

    def compute_output_shape(self, query_shape, value_shape=None, key_shape=None):
        query_shape = tuple(query_shape)
        if value_shape is not None:
            value_shape = tuple(value_shape)
            key_shape = value_shape if key_shape is None else tuple(key_shape)
            if value_shape[1:-1] != key_shape[1:-1]:
                raise ValueError(f"All dimensions of `value` and `key`, except the last one, must be equal. "
                                 f"Received: value_shape={value_shape} and key_shape={key_shape}")
        if self._output_shape:
            return query_shape[:-1] + tuple(self._output_shape)
        return query_shape

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_heads": self._num_heads, "key_dim": self._key_dim, "value_dim": self._value_dim,
            "dropout": self._dropout, "use_bias": self._use_bias, "use_gate": self._use_gate,
            "output_shape": self._output_shape, "attention_axes": self._attention_axes,
            "sliding_window": self._sliding_window,
            "kernel_initializer": serialize_keras_object(self._kernel_initializer),
            "bias_initializer": serialize_keras_object(self._bias_initializer),
            "kernel_regularizer": serialize_keras_object(self._kernel_regularizer),
            "bias_regularizer": serialize_keras_object(self._bias_regularizer),
            "activity_regularizer": serialize_keras_object(self._activity_regularizer),
            "kernel_constraint": serialize_keras_object(self._kernel_constraint),
            "bias_constraint": serialize_keras_object(self._bias_constraint),
            "seed": self.seed,
        })
        return config


# ---------------------------------------------------------------------------------------------------------------
# Attention (Luong) and AdditiveAttention (Bahdanau): keras.layers.Attention / AdditiveAttention
# ---------------------------------------------------------------------------------------------------------------
class Attention(Layer):
    """Dot-product attention (``keras.layers.Attention``, Luong-style): ``layer([query, value])`` or
    ``layer([query, value, key])`` on (batch, T, dim) / (batch, S, dim) tensors gives softmax(scores) @ value of
    shape (batch, T, dim_value), scores = query @ key^T (times a learned scalar with ``use_scale``), or with
    ``score_mode="concat"`` sum(tanh(query + key)) per pair (times ``concat_score_weight``).

    Masks (``mask=[query_mask, value_mask]`` or the inputs' Keras masks): masked keys enter as score - 1e9, masked
    query rows come out 0; ``use_causal_mask``; ``dropout`` on the weights in training; ``return_attention_scores``.
    """

    def __init__(self, use_scale=False, score_mode="dot", dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.use_scale = bool(use_scale)
        self.score_mode = score_mode
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout < 1:
            raise ValueError(f"{type(self).__name__}: dropout must be a float in [0, 1), but received {dropout!r}")
        self.dropout = dropout
        self.seed = seed
        self._gen = B.random_generator(seed) if seed is not None else None
        if self.score_mode not in ("dot", "concat"):
            raise ValueError(f"Invalid value for argument score_mode. Expected one of {{'dot', 'concat'}}. Received: "
                             f"score_mode={score_mode}")
        self.supports_masking = True

    def _validate_inputs(self, inputs, mask=None):
        name = type(self).__name__
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(f"{name} layer must be called on a list of inputs, namely [query, value] or [query, "
                             f"value, key]. Received: inputs={inputs}.")
        if len(inputs) < 2 or len(inputs) > 3:
            raise ValueError(f"{name} layer accepts inputs list of length 2 or 3, namely [query, value] or [query, "
                             f"value, key]. Received length: {len(inputs)}.")
        if mask is not None:
            if not isinstance(mask, (list, tuple)):
                raise ValueError(f"{name} layer mask must be a list, namely [query_mask, value_mask]. Received: "
                                 f"mask={mask}.")
            if len(mask) < 2 or len(mask) > 3:
                raise ValueError(f"{name} layer accepts mask list of length 2 or 3. Received: mask={mask}.")

    def build(self, input_shape):
        self._validate_inputs(input_shape)
        self.scale = self.concat_score_weight = None
        if self.use_scale:
            self.scale = self.add_weight(name="scale", shape=(), initializer="ones")
        if self.score_mode == "concat":
            self.concat_score_weight = self.add_weight(name="concat_score_weight", shape=(), initializer="ones")
        self.built = True

    def _scores(self, query, key):
        if self.score_mode == "dot":
            perm = list(range(key.ndim))
            perm[-2], perm[-1] = perm[-1], perm[-2]
            scores = _matmul.matmul(query, _shape.transpose(key, perm))
            return _ew.multiply(scores, self.scale) if self.scale is not None else scores
        pairs = _ew.add(_shape.expand_dims(query, -2), _shape.expand_dims(key, -3))
        if self.scale is not None:
            pairs = _ew.multiply(self.scale, pairs)
        return _ew.multiply(self.concat_score_weight, _reduce.sum(_act.tanh(pairs), -1))

    def call(self, inputs, mask=None, training=None, return_attention_scores=False, use_causal_mask=False):
        # (training=None, not Keras's False: the same behaviour, and the graph node records no training flag,
        # as Keras's does not)
        self._validate_inputs(inputs, mask)
        q, v = inputs[0], inputs[1]
        k = inputs[2] if len(inputs) > 2 else v
        q_mask = _as_bool(mask[0]) if mask and mask[0] is not None else None
        v_mask = _as_bool(mask[1]) if mask and mask[1] is not None else None
        scores = self._scores(q, k)
        if use_causal_mask:
            T, S = scores.shape[-2], scores.shape[-1]
            causal = _causal_mask(T, S)
            v_mask = causal if v_mask is None else B.logical_and(B.expand_dims(v_mask, -2), causal)
        if v_mask is not None:
            padding = B.logical_not(v_mask)
            if padding.ndim == 2:
                padding = B.expand_dims(padding, -2)
            large = 65504.0 if scores.dtype == "float16" else 1e9
            scores = _ew.where(padding, _ew.subtract(scores, large), scores)
        weights = _activations.softmax(scores, axis=-1)
        if training and self.dropout > 0:
            gen = self._gen if self._gen is not None else _utils.rng()
            keep = B.greater_equal(B.random_uniform(gen, tuple(weights.shape), "float64"), self.dropout)
            weights = _dropout(weights, keep, 1.0 / (1.0 - self.dropout))
        output = _matmul.matmul(weights, v)
        if q_mask is not None:
            output = _ew.where(B.expand_dims(q_mask, -1), output, 0.0)
        if return_attention_scores:
            return output, weights
        return output

    def compute_mask(self, inputs, previous_mask):
        mask = previous_mask
        if mask is None or not isinstance(mask, (list, tuple)) or mask[0] is None:
            return None
        return mask[0]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0][:-1]) + (input_shape[1][-1],)

    def get_config(self):
        config = super().get_config()
        config.update({"use_scale": self.use_scale, "score_mode": self.score_mode, "dropout": self.dropout,
                       "seed": self.seed})
        return config


class AdditiveAttention(Attention):
    """Additive attention (``keras.layers.AdditiveAttention``, Bahdanau-style): scores = sum(scale * tanh(query +
    key)) over the feature axis, ``scale`` a learned (dim,) vector (glorot_uniform) with ``use_scale`` (the
    default). Otherwise as Attention."""

    def __init__(self, use_scale=True, dropout=0.0, **kwargs):
        super().__init__(use_scale=use_scale, dropout=dropout, **kwargs)

    def build(self, input_shape):
        self._validate_inputs(input_shape)
        self.scale = None
        if self.use_scale:
            self.scale = self.add_weight(name="scale", shape=(input_shape[0][-1],), initializer="glorot_uniform")
        self.built = True

    def _scores(self, query, key):
        pairs = _act.tanh(_ew.add(_shape.expand_dims(query, -2), _shape.expand_dims(key, -3)))
        return _reduce.sum(_ew.multiply(self.scale, pairs) if self.use_scale else _ew.multiply(1.0, pairs), -1)

    def get_config(self):
        config = super().get_config()
        del config["score_mode"]
        return config
