"""Crossentropies with keras.ops's semantics (``target`` first, ``output`` second, per-sample losses).

When ``output`` is the result of a softmax or sigmoid that recorded its logits (keras_attrs.set_keras_logits), the
logits are used as if ``from_logits=True`` had been given, as Keras's TensorFlow backend does: no clipping, so
saturated probabilities keep their gradient.

``from_logits=True`` runs the fused log-softmax + crossentropy C++ kernel (or the stable sigmoid form for the
binary case); otherwise probabilities are clipped to [epsilon, 1 - epsilon] with epsilon = 1e-7, as Keras does
(categorical_crossentropy also renormalises ``output / sum(output)`` first).
"""
from __future__ import annotations

import warnings

import numpy as np

from fastnn import backend as B
from fastnn.autograd.keras_attrs import get_keras_logits
from fastnn.autograd.ops import elementwise as ew
from fastnn.autograd.ops import reduce
from fastnn.autograd.ops._util import float_tensor, normalize_axis, tensor
from fastnn.autograd.tape import record

EPSILON = 1e-7  # keras.config.epsilon()


def _get_logits(output, from_logits, activation, op):
    """(output, from_logits), or (the logits output was computed from, True): Keras's _get_logits."""
    logits = get_keras_logits(output)
    if logits is None:
        return output, from_logits
    if from_logits:
        warnings.warn(f'"`{op}` received `from_logits=True`, but the `output` argument was produced by a {activation} '
                      "activation and thus does not represent logits. Was this intended?", stacklevel=3)
    return logits, True


def _same_shape(op, t, o):
    if t.shape != o.shape:
        raise ValueError(
            f"{op}: target and output must have the same shape, but received target.shape={t.shape} and "
            f"output.shape={o.shape}"
        )


def _to_rows(a, ax):
    """(..., C) rows of a with ``ax`` moved last, C-contiguous and 2-D."""
    moved = B.moveaxis(a, ax, -1) if ax != a.ndim - 1 else a
    rows = B.reshape(moved, (-1, a.shape[ax]) if moved.size else (0, a.shape[ax]))
    return B.contiguous(rows), moved.shape


def categorical_crossentropy(target, output, from_logits=False, axis=-1):
    """-sum(target * log(softmax-probabilities), axis), one loss per sample.

    Args:
        target: one-hot (or soft) labels, the shape of ``output``.
        output: probabilities, or logits when ``from_logits``.
        axis: the class axis.
    """
    op = "categorical_crossentropy"
    output, from_logits = _get_logits(output, from_logits, "Softmax", op)
    o = float_tensor(output, op)
    t = float_tensor(target, op)
    _same_shape(op, t, o)
    if o.ndim == 0:
        raise ValueError(f"{op}: output must have at least 1 dimension, but received shape ()")
    ax = normalize_axis(axis, o.ndim, op)[0]
    if not from_logits:
        o = ew.divide(o, reduce.sum(o, axis=ax, keepdims=True))
        o = ew.clip(o, EPSILON, 1.0 - EPSILON)
        return ew.negative(reduce.sum(ew.multiply(t, ew.log(o)), axis=ax))
    dt = np.result_type(o.dtype, t.dtype)
    logits, moved_shape = _to_rows(B.astype(o._data, dt, copy=False), ax)
    labels, _ = _to_rows(B.astype(t._data, dt, copy=False), ax)
    loss, lse = B.dense_xent_forward(logits, labels)
    out_shape = moved_shape[:-1]

    def backward(g, needs):
        g1 = B.contiguous(B.astype(B.reshape(g, (-1,)), dt, copy=False))
        grads = []
        for need, fn in ((needs[0], _dlabels), (needs[1], _dlogits)):
            if not need:
                grads.append(None)
                continue
            d = B.reshape(fn(g1), moved_shape)
            grads.append(B.moveaxis(d, -1, ax) if ax != len(moved_shape) - 1 else d)
        return tuple(grads)

    def _dlogits(g1):
        return B.dense_xent_backward(g1, logits, lse, labels)

    def _dlabels(g1):
        column = (slice(None), None)
        return B.multiply(B.negative(B.getitem(g1, column)), B.subtract(logits, B.getitem(lse, column)))

    return record(B.reshape(loss, out_shape), (t, o), backward, op)


def sparse_categorical_crossentropy(target, output, from_logits=False, axis=-1):
    """Crossentropy with integer class labels: -log(probability of the label), one loss per sample.

    Args:
        target: integer labels of shape ``output.shape[:-1]`` (a trailing axis of length 1 is squeezed).
        output: probabilities, or logits when ``from_logits``, classes along the last axis.

    Out-of-range labels raise ValueError.
    """
    op = "sparse_categorical_crossentropy"
    output, from_logits = _get_logits(output, from_logits, "Softmax", op)
    o = float_tensor(output, op)
    lab = tensor(target, op)._data
    if o.ndim == 0:
        raise ValueError(f"{op}: output must have at least 1 dimension, but received shape ()")
    ax = normalize_axis(axis, o.ndim, op)[0]
    if ax != o.ndim - 1:
        raise ValueError(f"{op}: only axis=-1 is supported (as in Keras), but received axis={axis}")
    if lab.ndim == o.ndim and lab.shape[-1] == 1:
        lab = B.getitem(lab, (Ellipsis, 0))
    if lab.shape != o.shape[:-1]:
        raise ValueError(
            f"{op}: target must have shape output.shape[:-1] = {o.shape[:-1]}, but received target.shape="
            f"{lab.shape} and output.shape={o.shape}"
        )
    if lab.dtype.kind == "f":
        lab = B.astype(lab, np.int64)
    if lab.dtype.kind not in "iub":
        raise TypeError(f"{op}: target must hold integer labels, but received dtype {lab.dtype}")
    if not from_logits:
        # As Keras's TensorFlow backend: log of the clipped probabilities, used as logits.
        o = ew.log(ew.clip(o, EPSILON, 1.0 - EPSILON))
    logits, moved_shape = _to_rows(o._data, o.ndim - 1)
    labels = B.contiguous(B.astype(B.reshape(lab, (-1,)), np.int64, copy=False))
    loss, lse = B.sparse_xent_forward(logits, labels)

    def backward(g, needs):
        g1 = B.contiguous(B.reshape(g, (-1,)))
        return (B.reshape(B.sparse_xent_backward(g1, logits, lse, labels), o.shape),)

    return record(B.reshape(loss, o.shape[:-1]), (o,), backward, op)


def binary_crossentropy(target, output, from_logits=False):
    """Elementwise -(target * log(p) + (1 - target) * log(1 - p)), with p = sigmoid(output) when
    ``from_logits`` (computed as max(x, 0) - x * z + log(1 + exp(-|x|))), else p = clip(output, eps, 1 - eps)."""
    op = "binary_crossentropy"
    output, from_logits = _get_logits(output, from_logits, "Sigmoid", op)
    o = float_tensor(output, op)
    t = float_tensor(target, op)
    _same_shape(op, t, o)
    if not from_logits:
        p = ew.clip(o, EPSILON, 1.0 - EPSILON)
        return ew.negative(ew.add(ew.multiply(t, ew.log(p)),
                                  ew.multiply(ew.subtract(1.0, t), ew.log(ew.subtract(1.0, p)))))
    (tt, ot), (z, x) = ew.promote(op, t, o)
    with B.errstate(over="ignore", invalid="ignore"):
        loss = B.add(B.subtract(B.maximum(x, 0), B.multiply(x, z)), B.log1p(B.exp(B.negative(B.abs(x)))))

    def backward(g, needs):
        gz = B.multiply(B.negative(g), x) if needs[0] else None
        gx = None
        if needs[1]:
            s = B.activation_forward(B.contiguous(x), "sigmoid", 1.0)
            gx = B.multiply(g, B.subtract(s, z))
        return gz, gx

    return record(loss, (tt, ot), backward, op)


def ctc_loss(target, output, target_length, output_length, mask_index=0):
    """Connectionist temporal classification loss per sequence, as keras.ops.ctc_loss (TensorFlow's
    tf.nn.ctc_loss with dense labels, batch-major logits and ``blank_index=mask_index``).

    Args:
        target: (batch, max_label_length) integer labels; row b uses its first target_length[b] entries.
        output: (batch, max_time, classes) logits (log-softmax is applied here).
        target_length, output_length: (batch,) integer lengths.
        mask_index: the blank class.
    Returns the (batch,) negative log-likelihoods. A label sequence that cannot fit its output length has
    probability 0: fastnn returns inf with a zero gradient, where TensorFlow's dense implementation returns a large
    finite number (708.11 for 4 equal labels in 3 steps) from its log(0) surrogate.
    """
    op = "ctc_loss"
    o = float_tensor(output, op)
    lab = tensor(target, op)._data
    if o.ndim != 3:
        raise ValueError(f"{op}: output must be (batch_size, max_length, num_classes), but received shape {o.shape}")
    if lab.ndim != 2 or lab.shape[0] != o.shape[0]:
        raise ValueError(f"{op}: target must be (batch_size, max_label_length) with batch_size={o.shape[0]}, but "
                         f"received shape {lab.shape}")
    lab = B.astype(lab, np.int64)
    tlen = B.reshape(B.astype(tensor(target_length, op)._data, np.int64), (-1,))
    olen = B.reshape(B.astype(tensor(output_length, op)._data, np.int64), (-1,))
    batch, steps, classes = o.shape
    if tlen.shape != (batch,) or olen.shape != (batch,):
        raise ValueError(f"{op}: target_length and output_length must have shape ({batch},), but received "
                         f"{tlen.shape} and {olen.shape}")
    if B.item(B.any(B.less(olen, 1))) or B.item(B.any(B.greater(olen, steps))) or B.item(B.any(B.less(tlen, 0))) \
            or B.item(B.any(B.greater(tlen, lab.shape[1]))):
        raise ValueError(f"{op}: lengths out of range: output_length={B.tolist(olen)} (1..{steps}), "
                         f"target_length={B.tolist(tlen)} (0..{lab.shape[1]})")
    if B.item(B.any(B.logical_or(B.less(lab, 0), B.greater_equal(lab, classes)))):
        raise ValueError(f"{op}: labels must be in [0, {classes}), but received values in "
                         f"[{B.item(B.min(lab))}, {B.item(B.max(lab))}]")
    losses, dlogits = B.ctc_forward_backward(o._data, lab, tlen, olen, int(mask_index))
    dt = o.dtype

    def backward(g, needs):
        per_sample = B.getitem(B.astype(g, np.float64), (slice(None), None, None))
        return (B.astype(B.multiply(per_sample, dlogits), dt),)

    return record(B.astype(losses, dt), (o,), backward, op)
