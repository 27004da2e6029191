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

from fastnn import backend
from fastnn.autograd.keras_attrs import get_keras_logits
from fastnn.autograd.ops import elementwise as ew
from fastnn.autograd.ops import reduce
from fastnn.autograd.ops._util import float_tensor, normalize_axis, tensor, xp
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
    moved = xp.moveaxis(a, ax, -1) if ax != a.ndim - 1 else a
    return backend.contiguous(moved.reshape(-1, a.shape[ax]) if moved.size else moved.reshape(0, a.shape[ax])), moved.shape


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
    logits, moved_shape = _to_rows(o._data.astype(dt, copy=False), ax)
    labels, _ = _to_rows(t._data.astype(dt, copy=False), ax)
    loss, lse = backend.dense_xent_forward(logits, labels)
    out_shape = moved_shape[:-1]

    def backward(g, needs):
        g1 = backend.contiguous(g.reshape(-1).astype(dt, copy=False))
        grads = []
        for need, fn in ((needs[0], _dlabels), (needs[1], _dlogits)):
            if not need:
                grads.append(None)
                continue
            d = fn(g1).reshape(moved_shape)
            grads.append(xp.moveaxis(d, -1, ax) if ax != len(moved_shape) - 1 else d)
        return tuple(grads)

    def _dlogits(g1):
        return backend.dense_xent_backward(g1, logits, lse, labels)

    def _dlabels(g1):
        return -g1[:, None] * (logits - lse[:, None])

    return record(loss.reshape(out_shape), (t, o), backward, op)


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
        lab = lab[..., 0]
    if lab.shape != o.shape[:-1]:
        raise ValueError(
            f"{op}: target must have shape output.shape[:-1] = {o.shape[:-1]}, but received target.shape="
            f"{lab.shape} and output.shape={o.shape}"
        )
    if lab.dtype.kind == "f":
        lab = lab.astype(np.int64)
    if lab.dtype.kind not in "iub":
        raise TypeError(f"{op}: target must hold integer labels, but received dtype {lab.dtype}")
    if not from_logits:
        # As Keras's TensorFlow backend: log of the clipped probabilities, used as logits.
        o = ew.log(ew.clip(o, EPSILON, 1.0 - EPSILON))
    logits, moved_shape = _to_rows(o._data, o.ndim - 1)
    labels = backend.contiguous(lab.reshape(-1).astype(np.int64, copy=False))
    loss, lse = backend.sparse_xent_forward(logits, labels)

    def backward(g, needs):
        g1 = backend.contiguous(g.reshape(-1))
        return (backend.sparse_xent_backward(g1, logits, lse, labels).reshape(o.shape),)

    return record(loss.reshape(o.shape[:-1]), (o,), backward, op)


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
    with np.errstate(over="ignore", invalid="ignore"):
        loss = xp.maximum(x, 0) - x * z + xp.log1p(xp.exp(-xp.abs(x)))

    def backward(g, needs):
        gz = -g * x if needs[0] else None
        gx = None
        if needs[1]:
            s = backend.activation_forward(backend.contiguous(x), "sigmoid", 1.0)
            gx = g * (s - z)
        return gz, gx

    return record(loss, (tt, ot), backward, op)


def _log_add(a, b):
    """log(exp(a) + exp(b)) elementwise, with -inf handled (no warnings)."""
    m = xp.maximum(a, b)
    safe = xp.where(xp.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return xp.where(xp.isfinite(m), safe + xp.log(xp.exp(a - safe) + xp.exp(b - safe)), m)


def _ctc_one(log_probs, labels, blank):
    """-log p(labels | log_probs) and d/d log_probs-occupancy for one sequence, by the forward-backward recursion
    over the extended label sequence (blank, l1, blank, l2, ..., blank) in log space (Graves et al., 2006).

    Returns (loss, occupancy): occupancy[t, k] is the posterior probability of emitting class k at time t, so
    the gradient wrt the logits is softmax - occupancy (zero where the sequence is impossible: loss inf)."""
    steps, classes = log_probs.shape
    ext = np.full(2 * len(labels) + 1, blank, dtype=np.int64)
    ext[1::2] = labels
    size = ext.size
    # a skip from s - 2 to s is allowed onto a label that differs from the label two back
    skip = np.zeros(size, dtype=bool)
    skip[2:] = (ext[2:] != blank) & (ext[2:] != ext[:-2])
    emit = log_probs[:, ext]  # (steps, size)
    neg_inf = -np.inf
    alpha = np.full((steps, size), neg_inf)
    alpha[0, 0] = emit[0, 0]
    if size > 1:
        alpha[0, 1] = emit[0, 1]
    for t in range(1, steps):
        prev = alpha[t - 1]
        acc = prev.copy()
        acc[1:] = _log_add(acc[1:], prev[:-1])
        acc[2:] = xp.where(skip[2:], _log_add(acc[2:], prev[:-2]), acc[2:])
        alpha[t] = acc + emit[t]
    beta = np.full((steps, size), neg_inf)
    beta[-1, -1] = emit[-1, -1]
    if size > 1:
        beta[-1, -2] = emit[-1, -2]
    skip_back = np.zeros(size, dtype=bool)  # from s + 2 back to s: allowed iff skip[s + 2]
    skip_back[:-2] = skip[2:]
    for t in range(steps - 2, -1, -1):
        nxt = beta[t + 1]
        acc = nxt.copy()
        acc[:-1] = _log_add(acc[:-1], nxt[1:])
        acc[:-2] = xp.where(skip_back[:-2], _log_add(acc[:-2], nxt[2:]), acc[:-2])
        beta[t] = acc + emit[t]
    log_likelihood = _log_add(alpha[-1, -1], alpha[-1, -2]) if size > 1 else alpha[-1, -1]
    occupancy = np.zeros((steps, classes))
    if np.isfinite(log_likelihood):
        with np.errstate(invalid="ignore"):
            post = xp.exp(alpha + beta - emit - log_likelihood)
        post = np.where(np.isfinite(post), post, 0.0)
        for s in range(size):
            occupancy[:, ext[s]] += post[:, s]
    return -float(log_likelihood), occupancy


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
    lab = np.asarray(tensor(target, op)._data)
    if o.ndim != 3:
        raise ValueError(f"{op}: output must be (batch_size, max_length, num_classes), but received shape {o.shape}")
    if lab.ndim != 2 or lab.shape[0] != o.shape[0]:
        raise ValueError(f"{op}: target must be (batch_size, max_label_length) with batch_size={o.shape[0]}, but "
                         f"received shape {lab.shape}")
    lab = lab.astype(np.int64)
    tlen = np.asarray(tensor(target_length, op)._data).astype(np.int64).reshape(-1)
    olen = np.asarray(tensor(output_length, op)._data).astype(np.int64).reshape(-1)
    batch, steps, classes = o.shape
    if tlen.shape != (batch,) or olen.shape != (batch,):
        raise ValueError(f"{op}: target_length and output_length must have shape ({batch},), but received "
                         f"{tlen.shape} and {olen.shape}")
    if np.any(olen < 1) or np.any(olen > steps) or np.any(tlen < 0) or np.any(tlen > lab.shape[1]):
        raise ValueError(f"{op}: lengths out of range: output_length={olen.tolist()} (1..{steps}), "
                         f"target_length={tlen.tolist()} (0..{lab.shape[1]})")
    if np.any((lab < 0) | (lab >= classes)):
        raise ValueError(f"{op}: labels must be in [0, {classes}), but received values in [{lab.min()}, {lab.max()}]")
    logits = o._data.astype(np.float64)
    shifted = logits - logits.max(-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    losses = np.empty(batch)
    dlogits = np.zeros_like(logits)
    for b in range(batch):
        n = int(olen[b])
        losses[b], occupancy = _ctc_one(log_probs[b, :n], lab[b, :int(tlen[b])], int(mask_index))
        if np.isfinite(losses[b]):
            dlogits[b, :n] = np.exp(log_probs[b, :n]) - occupancy
    dt = o.dtype

    def backward(g, needs):
        return ((g.astype(np.float64)[:, None, None] * dlogits).astype(dt),)

    return record(losses.astype(dt), (o,), backward, op)
