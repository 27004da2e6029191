"""Losses with Keras 3's names, formulas, defaults, configs and reduction (``keras.losses``): functions and classes.

A loss function ``fn(y_true, y_pred)`` returns one value per sample (the mean over the last axis for the
elementwise losses). A loss class (``MeanSquaredError()``) is called as ``loss(y_true, y_pred, sample_weight=None)``
and does what ``keras.losses.Loss.__call__`` does:

1. ``y_true`` and ``y_pred`` are converted to the loss's ``dtype`` (float32 unless ``dtype=`` says otherwise);
2. ``call`` gives the per-sample losses (the class's function, after Keras's squeeze-or-expand of a trailing 1);
3. a mask, if any, is merged into the sample weights (``apply_mask``): the mask of ``y_pred``
   (``set_keras_mask(y_pred, mask)``, which a masking layer sets) and the mask a loss function attaches to its
   result (``SparseCategoricalCrossentropy(ignore_class=...)``, ``Circle``). With "sum_over_batch_size" or
   "mean" the valid entries get weight total / valid, so the reduction divides by the number of valid entries;
4. ``reduce_weighted_values``: "sum_over_batch_size" / "mean" = sum(loss * weight) / number of loss values,
   "sum" = sum(loss * weight), "mean_with_sample_weight" = sum(loss * weight) / sum(weight), "none" / None =
   the weighted losses. Divisions by zero give 0 (Keras's ``divide_no_nan``); a scalar (or empty) loss is
   returned as it is.

Example:
    >>> fastnn.losses.MeanSquaredError()(np.zeros((2, 3)), np.ones((2, 3))).numpy()
    array(1., dtype=float32)
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from fastnn import _registry
from fastnn import backend as B
from fastnn.autograd import Tensor
from fastnn.autograd import dtypes as _dtypes
from fastnn.autograd.keras_attrs import _MASKS, get_keras_mask, set_keras_logits, set_keras_mask  # noqa: F401
from fastnn.autograd.ops import activation as _act
from fastnn.autograd.ops import elementwise as _ew
from fastnn.autograd.ops import loss as _xent
from fastnn.autograd.ops import matmul as _mm
from fastnn.autograd.ops import reduce as _reduce
from fastnn.autograd.ops import shape as _shape
from fastnn.autograd.ops._util import float_tensor, normalize_axis, tensor

EPSILON = 1e-7  # keras.config.epsilon()


# -- masks -----------------------------------------------------------------------------------------------------
# Keras keeps a mask as the attribute `_keras_mask` of a tensor. A masking layer (or a loss function such as
# sparse_categorical_crossentropy with ignore_class) calls set_keras_mask(tensor, mask); Loss.__call__ reads the mask
# of y_pred and of the per-sample losses with get_keras_mask (fastnn.autograd.keras_attrs keeps them).

# -- helpers ---------------------------------------------------------------------------------------------------
def _as_float(y_true, y_pred, op):
    """y_pred as a float tensor and y_true cast to its dtype (``ops.cast(y_true, y_pred.dtype)``)."""
    y_pred = float_tensor(y_pred, op)
    y_true = tensor(y_true, op)
    if y_true.dtype != y_pred.dtype:
        y_true = _shape.cast(y_true, y_pred.dtype)
    return y_true, y_pred


def _pair(y_true, y_pred, op="loss"):
    y_true, y_pred = _as_float(y_true, y_pred, op)
    return squeeze_or_expand_to_same_rank(y_true, y_pred)


def squeeze_or_expand_to_same_rank(x1, x2, expand_rank_1=True):
    """Keras's rule: when ranks differ by one and the longer has a trailing axis of 1, squeeze it (or expand a
    rank-1 partner)."""
    r1, r2 = len(x1.shape), len(x2.shape)
    if r1 == r2:
        return x1, x2
    if r1 == r2 + 1 and x1.shape[-1] == 1:
        if r2 == 1 and expand_rank_1:
            x2 = _shape.expand_dims(x2, -1)
        else:
            x1 = _shape.squeeze(x1, -1)
    if r2 == r1 + 1 and x2.shape[-1] == 1:
        if r1 == 1 and expand_rank_1:
            x1 = _shape.expand_dims(x1, -1)
        else:
            x2 = _shape.squeeze(x2, -1)
    return x1, x2


def _check_shapes(name, y_true, y_pred):
    if tuple(y_true.shape) != tuple(y_pred.shape):
        try:
            B.broadcast_shapes(tuple(y_true.shape), tuple(y_pred.shape))
        except ValueError:
            raise ValueError(f"{name}: y_true and y_pred have incompatible shapes: y_true.shape={tuple(y_true.shape)}, "
                             f"y_pred.shape={tuple(y_pred.shape)}") from None


def _check_int_axis(op, axis):
    if isinstance(axis, bool):
        raise ValueError(f"{op}: `axis` must be of type `int`. Received: axis={axis} of type {type(axis)}")


def _smooth_categorical(op, y_true, y_pred, label_smoothing):
    if y_pred.shape and y_pred.shape[-1] == 1:
        warnings.warn(f"In loss {op}, expected y_pred.shape to be (batch_size, num_classes) with num_classes > 1. "
                      f"Received: y_pred.shape={tuple(y_pred.shape)}. Consider using 'binary_crossentropy' if you only "
                      "have 2 classes.", SyntaxWarning, stacklevel=3)
    if label_smoothing:
        # As Keras: the number of classes is the size of the LAST axis, whatever `axis` is.
        y_true = _ew.add(_ew.multiply(y_true, 1.0 - label_smoothing), label_smoothing / y_true.shape[-1])
    return y_true


# -- functions (per-sample losses) -----------------------------------------------------------------------------
def mean_squared_error(y_true, y_pred):
    """mean((y_true - y_pred) ** 2, axis=-1)."""
    y_true, y_pred = _pair(y_true, y_pred, "mean_squared_error")
    _check_shapes("mean_squared_error", y_true, y_pred)
    return _reduce.mean(_ew.square(_ew.subtract(y_true, y_pred)), axis=-1)


def mean_absolute_error(y_true, y_pred):
    """mean(|y_true - y_pred|, axis=-1)."""
    y_true, y_pred = _pair(y_true, y_pred, "mean_absolute_error")
    _check_shapes("mean_absolute_error", y_true, y_pred)
    return _reduce.mean(_ew.abs(_ew.subtract(y_true, y_pred)), axis=-1)


def mean_absolute_percentage_error(y_true, y_pred):
    """100 * mean(|(y_true - y_pred) / max(|y_true|, epsilon)|, axis=-1)."""
    y_true, y_pred = _pair(y_true, y_pred, "mean_absolute_percentage_error")
    diff = _ew.abs(_ew.divide(_ew.subtract(y_true, y_pred), _ew.maximum(_ew.abs(y_true), EPSILON)))
    return _ew.multiply(100.0, _reduce.mean(diff, axis=-1))


def mean_squared_logarithmic_error(y_true, y_pred):
    """mean((log(max(y_pred, eps) + 1) - log(max(y_true, eps) + 1)) ** 2, axis=-1)."""
    y_true, y_pred = _pair(y_true, y_pred, "mean_squared_logarithmic_error")
    a = _ew.log(_ew.add(_ew.maximum(y_pred, EPSILON), 1.0))
    b = _ew.log(_ew.add(_ew.maximum(y_true, EPSILON), 1.0))
    return _reduce.mean(_ew.square(_ew.subtract(a, b)), axis=-1)


def huber(y_true, y_pred, delta=1.0):
    """mean(0.5 * e ** 2 if |e| <= delta else delta * |e| - 0.5 * delta ** 2, axis=-1), e = y_pred - y_true."""
    y_true, y_pred = _pair(y_true, y_pred, "huber")
    err = _ew.subtract(y_pred, y_true)
    abs_err = _ew.abs(err)
    quad = _ew.multiply(0.5, _ew.square(err))
    lin = _ew.subtract(_ew.multiply(delta, abs_err), 0.5 * delta * delta)
    return _reduce.mean(_ew.where(_ew.less_equal(abs_err, delta), quad, lin), axis=-1)


def log_cosh(y_true, y_pred):
    """mean(log(cosh(y_pred - y_true)), axis=-1), computed as x + softplus(-2x) - log(2)."""
    y_true, y_pred = _pair(y_true, y_pred, "log_cosh")
    x = _ew.subtract(y_pred, y_true)
    return _reduce.mean(_ew.subtract(_ew.add(x, _act.softplus(_ew.multiply(-2.0, x))), math.log(2.0)), axis=-1)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """mean(elementwise binary crossentropy, axis); label smoothing moves the labels towards 0.5."""
    y_true, y_pred = _as_float(y_true, y_pred, "binary_crossentropy")
    if label_smoothing:
        y_true = _ew.add(_ew.multiply(y_true, 1.0 - label_smoothing), 0.5 * label_smoothing)
    return _reduce.mean(_xent.binary_crossentropy(y_true, y_pred, from_logits=from_logits), axis=axis)


def binary_focal_crossentropy(y_true, y_pred, apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=False,
                              label_smoothing=0.0, axis=-1):
    """mean((1 - p_t) ** gamma * bce, axis), p_t = y_true * p + (1 - y_true) * (1 - p) (Lin et al., 2018); with
    ``apply_class_balancing`` each term is also weighted by alpha (positives) or 1 - alpha (negatives)."""
    y_true, y_pred = _as_float(y_true, y_pred, "binary_focal_crossentropy")
    if label_smoothing:
        y_true = _ew.add(_ew.multiply(y_true, 1.0 - label_smoothing), 0.5 * label_smoothing)
    if from_logits:
        logits = y_pred
        y_pred = _act.sigmoid(logits)
        # TensorFlow's sigmoid records its logits, so Keras's bce term below is computed from the logits (exact for
        # saturated probabilities); do the same.
        set_keras_logits(y_pred, logits)
    bce = _xent.binary_crossentropy(y_true, y_pred, from_logits=False)
    one_minus_true = _ew.subtract(1.0, y_true)
    p_t = _ew.add(_ew.multiply(y_true, y_pred), _ew.multiply(one_minus_true, _ew.subtract(1.0, y_pred)))
    focal_bce = _ew.multiply(_ew.power(_ew.subtract(1.0, p_t), gamma), bce)
    if apply_class_balancing:
        weight = _ew.add(_ew.multiply(y_true, alpha), _ew.multiply(one_minus_true, 1.0 - alpha))
        focal_bce = _ew.multiply(weight, focal_bce)
    return _reduce.mean(focal_bce, axis=axis)


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """-sum(y_true * log(p), axis), p = softmax(y_pred) when ``from_logits`` else y_pred / sum(y_pred), clipped."""
    _check_int_axis("categorical_crossentropy", axis)
    y_true, y_pred = _as_float(y_true, y_pred, "categorical_crossentropy")
    if tuple(y_true.shape) != tuple(y_pred.shape):
        raise ValueError(f"categorical_crossentropy: arguments `target` and `output` must have the same shape. "
                         f"Received: target.shape={tuple(y_true.shape)}, output.shape={tuple(y_pred.shape)}. "
                         "(Integer labels need sparse_categorical_crossentropy.)")
    y_true = _smooth_categorical("categorical_crossentropy", y_true, y_pred, label_smoothing)
    return _xent.categorical_crossentropy(y_true, y_pred, from_logits=from_logits, axis=axis)


def categorical_focal_crossentropy(y_true, y_pred, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0,
                                   axis=-1):
    """sum(alpha * (1 - p) ** gamma * -y_true * log(p), axis), p the clipped, renormalised probabilities
    (softmax(y_pred) when ``from_logits``)."""
    _check_int_axis("categorical_focal_crossentropy", axis)
    y_true, y_pred = _as_float(y_true, y_pred, "categorical_focal_crossentropy")
    y_true = _smooth_categorical("categorical_focal_crossentropy", y_true, y_pred, label_smoothing)
    if from_logits:
        y_pred = _act.softmax(y_pred, axis=axis)
    output = _ew.divide(y_pred, _reduce.sum(y_pred, axis=axis, keepdims=True))
    output = _ew.clip(output, EPSILON, 1.0 - EPSILON)
    cce = _ew.multiply(_ew.negative(y_true), _ew.log(output))
    weighting = _ew.multiply(_ew.power(_ew.subtract(1.0, output), gamma), alpha)
    return _reduce.sum(_ew.multiply(weighting, cce), axis=axis)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None, axis=-1):
    """Crossentropy with integer labels. With ``ignore_class``, entries labelled ``ignore_class`` give loss 0 and
    the result carries a mask (get_keras_mask) that makes a Loss's reduction leave them out, as in Keras."""
    y_pred = float_tensor(y_pred, "sparse_categorical_crossentropy")
    y_true = tensor(y_true, "sparse_categorical_crossentropy")
    if y_true.ndim == y_pred.ndim and y_true.ndim and y_true.shape[axis] == 1:
        y_true = _shape.squeeze(y_true, axis)
    if ignore_class is None:
        return _xent.sparse_categorical_crossentropy(y_true, y_pred, from_logits=from_logits, axis=axis)
    class_axis = normalize_axis(axis, y_pred.ndim, "sparse_categorical_crossentropy")[0]
    res_shape = tuple(d for i, d in enumerate(y_pred.shape) if i != class_axis)
    valid_mask = B.not_equal(y_true._data, B.astype(B.asarray(ignore_class), y_pred.dtype))
    y_true = _ew.where(valid_mask, y_true, 0)
    y_pred = _ew.where(B.expand_dims(valid_mask, class_axis), y_pred, 0.0)
    res = _xent.sparse_categorical_crossentropy(y_true, y_pred, from_logits=from_logits, axis=axis)
    valid_mask = B.reshape(valid_mask, res_shape)
    res = _ew.where(valid_mask, res, 0.0)
    set_keras_mask(res, valid_mask)
    return res


def kl_divergence(y_true, y_pred):
    """sum(y_true * log(y_true / y_pred), axis=-1), both clipped to [epsilon, 1]."""
    y_true, y_pred = _as_float(y_true, y_pred, "kl_divergence")
    t = _ew.clip(y_true, EPSILON, 1.0)
    p = _ew.clip(y_pred, EPSILON, 1.0)
    return _reduce.sum(_ew.multiply(t, _ew.log(_ew.divide(t, p))), axis=-1)


def _hinge_labels(y_true):
    """Keras's convert_binary_labels_to_hinge: labels that are all 0 / 1 become -1 / 1."""
    a = y_true._data
    if B.item(B.all(B.logical_or(B.equal(a, 0), B.equal(a, 1)))):
        return _ew.subtract(_ew.multiply(2.0, y_true), 1.0)
    return y_true


def hinge(y_true, y_pred):
    """mean(max(1 - y_true * y_pred, 0), axis=-1), 0 / 1 labels converted to -1 / 1."""
    y_true, y_pred = _as_float(y_true, y_pred, "hinge")
    y_true = _hinge_labels(y_true)
    return _reduce.mean(_ew.maximum(_ew.subtract(1.0, _ew.multiply(y_true, y_pred)), 0.0), axis=-1)


def squared_hinge(y_true, y_pred):
    """mean(max(1 - y_true * y_pred, 0) ** 2, axis=-1), 0 / 1 labels converted to -1 / 1."""
    y_true, y_pred = _as_float(y_true, y_pred, "squared_hinge")
    y_true = _hinge_labels(y_true)
    return _reduce.mean(_ew.square(_ew.maximum(_ew.subtract(1.0, _ew.multiply(y_true, y_pred)), 0.0)), axis=-1)


def categorical_hinge(y_true, y_pred):
    """max(max((1 - y_true) * y_pred, axis=-1) - sum(y_true * y_pred, axis=-1) + 1, 0)."""
    y_true, y_pred = _as_float(y_true, y_pred, "categorical_hinge")
    pos = _reduce.sum(_ew.multiply(y_true, y_pred), axis=-1)
    neg = _reduce.max(_ew.multiply(_ew.subtract(1.0, y_true), y_pred), axis=-1)
    return _ew.maximum(_ew.add(_ew.subtract(neg, pos), 1.0), B.zeros((), y_pred.dtype))


def poisson(y_true, y_pred):
    """mean(y_pred - y_true * log(y_pred + epsilon), axis=-1)."""
    y_true, y_pred = _as_float(y_true, y_pred, "poisson")
    return _reduce.mean(_ew.subtract(y_pred, _ew.multiply(y_true, _ew.log(_ew.add(y_pred, EPSILON)))), axis=-1)


def _l2_normalize(x, axis):
    """keras.ops.normalize (order 2): x * min(rsqrt(sum(x ** 2, axis)), 1 / epsilon)."""
    square_sum = _reduce.sum(_ew.square(x), axis=axis, keepdims=True)
    # rsqrt(s) <= 1 / epsilon exactly when s >= epsilon ** 2. Below that the cap is a constant with no gradient, as in
    # TensorFlow; the inner where keeps rsqrt(0) = inf (whose backward is 0 * inf = nan) out of the graph.
    uncapped = _ew.greater_equal(square_sum, EPSILON * EPSILON)
    rsqrt = _ew.power(_ew.where(uncapped, square_sum, 1.0), -0.5)
    return _ew.multiply(x, _ew.where(uncapped, rsqrt, 1.0 / EPSILON))


def cosine_similarity(y_true, y_pred, axis=-1):
    """-sum(l2_normalize(y_true) * l2_normalize(y_pred), axis)."""
    y_true, y_pred = _pair(y_true, y_pred, "cosine_similarity")
    return _ew.negative(_reduce.sum(_ew.multiply(_l2_normalize(y_true, axis), _l2_normalize(y_pred, axis)), axis=axis))


def dice(y_true, y_pred, axis=None):
    """1 - 2 * sum(y_true * y_pred, axis) / (sum(y_true, axis) + sum(y_pred, axis) + epsilon); ``axis=None`` gives
    one value for the whole batch."""
    y_true, y_pred = _as_float(y_true, y_pred, "dice")
    intersection = _reduce.sum(_ew.multiply(y_true, y_pred), axis=axis)
    denominator = _ew.add(_ew.add(_reduce.sum(y_true, axis=axis), _reduce.sum(y_pred, axis=axis)), EPSILON)
    return _ew.subtract(1.0, _ew.divide(_ew.multiply(2.0, intersection), denominator))


def tversky(y_true, y_pred, alpha=0.5, beta=0.5, axis=None):
    """1 - TP / (TP + alpha * FP + beta * FN + epsilon) with TP = sum(y_true * y_pred), FP = sum((1 - y_pred) *
    y_true), FN = sum(y_pred * (1 - y_true)) over ``axis`` (Keras's naming of FP and FN, kept as is)."""
    y_true, y_pred = _as_float(y_true, y_pred, "tversky")
    intersection = _reduce.sum(_ew.multiply(y_true, y_pred), axis=axis)
    fp = _reduce.sum(_ew.multiply(_ew.subtract(1.0, y_pred), y_true), axis=axis)
    fn = _reduce.sum(_ew.multiply(y_pred, _ew.subtract(1.0, y_true)), axis=axis)
    denominator = _ew.add(_ew.add(_ew.add(intersection, _ew.multiply(fp, alpha)), _ew.multiply(fn, beta)), EPSILON)
    return _ew.subtract(1.0, _ew.divide(intersection, denominator))


def _build_pos_neg_masks(query_labels, key_labels, remove_diagonal=True):
    """Boolean buffers: positive[i, j] when query i and key j have the same label (i != j with
    ``remove_diagonal``), negative[i, j] when they differ."""
    q = B.reshape(query_labels, (-1, 1)) if query_labels.ndim == 1 else query_labels
    k = B.reshape(key_labels, (-1, 1)) if key_labels.ndim == 1 else key_labels
    positive = B.equal(q, B.transpose(k))
    negative = B.logical_not(positive)
    if remove_diagonal:
        positive = B.logical_and(positive, B.logical_not(B.eye(q.size, k.size, dtype=bool)))
    return positive, negative


def circle(y_true, y_pred, ref_labels=None, ref_embeddings=None, remove_diagonal=True, gamma=80, margin=0.4):
    """Circle loss (Sun et al., 2020) of L2-normalised embeddings ``y_pred`` with integer labels ``y_true``,
    against themselves or (``ref_labels``, ``ref_embeddings``): softplus(logsumexp over positives of
    -gamma * w_p * (margin - d) + logsumexp over negatives of gamma * w_n * (1 - margin - d)), d the cosine
    distances, w_p = max(margin + d, 0), w_n = max(1 + margin - d, 0). The result's mask (loss > 0) makes a Loss
    average over the samples with a nonzero loss, as in Keras."""
    y_pred = float_tensor(y_pred, "circle")
    labels = B.astype(tensor(y_true, "circle")._data, np.int32)
    ref_embeddings = y_pred if ref_embeddings is None else float_tensor(ref_embeddings, "circle")
    ref = labels if ref_labels is None else B.astype(tensor(ref_labels, "circle")._data, np.int32)
    optim_pos, optim_neg = margin, 1 + margin
    delta_pos, delta_neg = margin, 1 - margin
    distances = _ew.maximum(_ew.subtract(1.0, _mm.matmul(y_pred, _shape.transpose(ref_embeddings))), 0.0)
    positive, negative = _build_pos_neg_masks(labels, ref, remove_diagonal=remove_diagonal)
    dt = distances.dtype
    pos_weights = _ew.maximum(_ew.multiply(_ew.add(optim_pos, distances), B.astype(positive, dt)), 0.0)
    neg_weights = _ew.maximum(_ew.multiply(_ew.subtract(optim_neg, distances), B.astype(negative, dt)), 0.0)
    pos_wdists = _ew.multiply(_ew.multiply(-1.0 * gamma, pos_weights), _ew.subtract(delta_pos, distances))
    neg_wdists = _ew.multiply(_ew.multiply(gamma, neg_weights), _ew.subtract(delta_neg, distances))
    p_loss = _reduce.logsumexp(_ew.where(positive, pos_wdists, -np.inf), axis=1)
    n_loss = _reduce.logsumexp(_ew.where(negative, neg_wdists, -np.inf), axis=1)
    loss = _act.softplus(_ew.add(p_loss, n_loss))
    set_keras_mask(loss, B.greater(loss._data, 0))
    return loss


def categorical_generalized_cross_entropy(y_true, y_pred, q):
    """(1 - p ** q) / q with p the predicted probability of the integer label (Zhang & Sabuncu, 2018): q -> 0 is
    the crossentropy, q = 1 the mean absolute error."""
    y_pred = float_tensor(y_pred, "categorical_generalized_cross_entropy")
    labels = tensor(y_true, "categorical_generalized_cross_entropy")._data
    one_hot = _shape.one_hot(B.astype(labels, np.int64), y_pred.shape[-1], dtype=y_pred.dtype)
    p = _reduce.sum(_ew.multiply(y_pred, one_hot), axis=-1)
    return _ew.divide(_ew.subtract(1.0, _ew.power(p, q)), q)


def ctc(y_true, y_pred):
    """CTC loss of (batch, max_length) integer labels padded with 0 (the blank, class 0) against (batch, max_length,
    num_classes) logits; every output sequence has the full length."""
    y_true = tensor(y_true, "ctc")
    y_pred = float_tensor(y_pred, "ctc")
    if len(y_true.shape) != 2:
        raise ValueError("Targets `y_true` are expected to be a tensor of shape `(batch_size, max_length)` in integer "
                         f"format. Received: y_true.shape={tuple(y_true.shape)}")
    if len(y_pred.shape) != 3:
        raise ValueError("Logits `y_pred` are expected to be a tensor of shape `(batch_size, max_length, num_classes)`."
                         f" Received: y_pred.shape={tuple(y_pred.shape)}")
    mask_index = 0
    labels = B.astype(y_true._data, np.int32)
    batch, steps = y_pred.shape[0], y_pred.shape[1]
    label_length = B.astype(B.sum(B.not_equal(labels, mask_index), axis=-1), np.int32)
    input_length = B.full((batch,), steps, dtype=np.int32)
    return _xent.ctc_loss(labels, y_pred, label_length, input_length, mask_index=mask_index)


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
mape = MAPE = mean_absolute_percentage_error
msle = MSLE = mean_squared_logarithmic_error
kld = KLD = kullback_leibler_divergence = kl_divergence
logcosh = log_cosh
bce = BCE = binary_crossentropy


# -- reduction (keras/src/losses/loss.py) ------------------------------------------------------------------------
_REDUCTIONS = ("sum_over_batch_size", "sum", None, "none", "mean", "mean_with_sample_weight")


def standardize_reduction(reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"Invalid value for argument `reduction`. Expected one of {set(_REDUCTIONS)}. "
                         f"Received: reduction={reduction}")
    return reduction


def _float(x, dtype, op="loss"):
    """x as a Tensor of ``dtype`` (a differentiable cast when x is already a Tensor of another dtype)."""
    t = tensor(x, op)
    return t if t.dtype == dtype else _shape.cast(t, dtype)


def _divide_no_nan(x, y):
    """x / y, and 0 where y == 0 (keras.ops.divide_no_nan), differentiable in both."""
    y = tensor(y, "divide_no_nan")
    zero = _ew.equal(y, 0)
    safe = _ew.where(zero, B.ones((), y.dtype), y)
    return _ew.where(zero, B.zeros((), y.dtype), _ew.divide(x, safe))


def _resolve_dtype(dtype):
    """The compute dtype of a Loss: floatx for None, a policy's compute_dtype, "mixed_float16" -> float16."""
    if dtype is None:
        return _dtypes.floatx
    dtype = getattr(dtype, "compute_dtype", dtype)
    if isinstance(dtype, str) and dtype.startswith("mixed_"):
        dtype = dtype[len("mixed_"):]
    try:
        dt = _dtypes.standardize_dtype(dtype, "Loss")
    except TypeError as exc:
        raise ValueError(f"Loss: invalid argument `dtype`: {exc}") from None
    if dt.kind != "f":
        raise ValueError(f"Loss: argument `dtype` must be a float dtype, but received dtype={dtype!r}")
    return dt


def apply_mask(sample_weight, mask, dtype, reduction):
    """Merges a mask into the sample weights. For "sum_over_batch_size" and "mean" the valid entries get weight
    total / valid (0 if none is valid), so that dividing by the number of entries averages over the valid ones."""
    if mask is None:
        return sample_weight
    mask = _mask_buffer(mask)
    if reduction in ("mean", "sum_over_batch_size"):
        total = float(mask.size)
        valid = float(B.item(B.sum(B.astype(mask, dtype))))
        mask_weight = total / valid if valid else 0.0
        float_mask = tensor(B.astype(B.where(B.astype(mask, bool), mask_weight, 0.0), dtype), "loss")
    else:
        float_mask = tensor(B.astype(mask, dtype), "loss")
    if sample_weight is None:
        return float_mask
    sample_weight = _float(sample_weight, dtype)
    float_mask, sample_weight = squeeze_or_expand_to_same_rank(float_mask, sample_weight)
    return _ew.multiply(sample_weight, float_mask)


def reduce_values(values, sample_weight=None, reduction="sum_over_batch_size"):
    """Sums ``values`` and divides as ``reduction`` says; "none" / None, a scalar or an empty vector are returned
    as they are."""
    if reduction in (None, "none") or tuple(values.shape) in ((), (0,)):
        return values
    loss = _reduce.sum(values)
    if reduction in ("sum_over_batch_size", "mean", "mean_with_sample_weight"):
        if reduction == "mean_with_sample_weight" and sample_weight is not None:
            divisor = _reduce.sum(sample_weight)  # the weights as given (not broadcast to the losses), as Keras
        else:
            divisor = B.asarray(float(math.prod(values.shape)), loss.dtype)
        loss = _divide_no_nan(loss, divisor)
    return loss


def reduce_weighted_values(values, sample_weight=None, mask=None, reduction="sum_over_batch_size", dtype=None):
    """Keras's reduction of per-sample losses with optional sample weights and mask."""
    reduction = standardize_reduction(reduction)
    values = _float(values, _resolve_dtype(dtype) if dtype is not None else float_tensor(values, "loss").dtype)
    if sample_weight is not None:
        sample_weight = _float(sample_weight, values.dtype)
    sample_weight = apply_mask(sample_weight, mask, dtype=values.dtype, reduction=reduction)
    if sample_weight is not None:
        values, sample_weight = squeeze_or_expand_to_same_rank(values, sample_weight)
        try:
            values = _ew.multiply(values, sample_weight)
        except ValueError:
            raise ValueError(f"loss: sample_weight of shape {tuple(sample_weight.shape)} does not broadcast to the "
                             f"per-sample losses of shape {tuple(values.shape)}") from None
    return reduce_values(values, sample_weight, reduction)


def _convert_structure(x, dtype):
    """Each tensor of a structure (a dict, or a list / tuple of Tensors) converted to ``dtype``; a (nested) list of
    numbers is data, one tensor."""
    if isinstance(x, dict):
        return {k: _convert_structure(v, dtype) for k, v in x.items()}
    if isinstance(x, (list, tuple)) and x and all(isinstance(v, (Tensor, dict)) for v in x):
        return type(x)(_convert_structure(v, dtype) for v in x)
    return _float(x, dtype)


class Loss:
    """Base class: subclasses implement ``call(y_true, y_pred)`` returning per-sample losses.

    Args:
        name: the loss name (default: the snake-case class name, made unique).
        reduction: "sum_over_batch_size" (default), "sum", "mean", "mean_with_sample_weight", "none" or None.
        dtype: the dtype of the computation (default float32, Keras's floatx); y_true and y_pred are cast to it.
    """

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        if name is None:
            from fastnn.layers.layer import unique_name

            name = unique_name(_snake(type(self).__name__))
        self.name = name
        self.reduction = standardize_reduction(reduction)
        self._dtype = _resolve_dtype(dtype)

    @property
    def dtype(self):
        return str(self._dtype)

    def __call__(self, y_true, y_pred, sample_weight=None):
        in_mask = get_keras_mask(y_pred)
        y_pred = _convert_structure(y_pred, self._dtype)
        y_true = _convert_structure(y_true, self._dtype)
        losses = self.call(y_true, y_pred)
        out_mask = get_keras_mask(losses)
        if in_mask is not None and out_mask is not None:
            mask = B.logical_and(_as_bool(in_mask), _as_bool(out_mask))
        else:
            mask = in_mask if in_mask is not None else out_mask
        return reduce_weighted_values(losses, sample_weight=sample_weight, mask=mask, reduction=self.reduction,
                                      dtype=self._dtype)

    def call(self, y_true, y_pred):  # pragma: no cover - abstract
        raise NotImplementedError

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _mask_buffer(mask):
    """A mask as a buffer: a Tensor's own buffer, a buffer as it is, host data (the user's array) converted."""
    if isinstance(mask, Tensor):
        return mask._data
    return mask if B.is_buffer(mask) else B.asarray(mask)


def _as_bool(mask):
    return B.astype(_mask_buffer(mask), bool)


def _snake(name):
    import re

    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s).lower()


def _serialize_fn(fn):
    """A function as Keras's serialize_keras_object writes it (by its registered name)."""
    from fastnn.saving import serialization_lib

    return serialization_lib.serialize_keras_object(fn)


def _deserialize_fn(spec):
    if callable(spec):
        return spec
    name = spec.get("config") if isinstance(spec, dict) else spec
    fn = _FUNCTIONS.get(name)
    if fn is None and isinstance(spec, dict):  # a custom (registered / custom_objects) function, or a lambda
        from fastnn.saving import serialization_lib

        try:
            fn = serialization_lib.deserialize_keras_object(spec)
        except TypeError:
            fn = None
    if fn is None:
        raise ValueError(f"LossFunctionWrapper.from_config: unknown loss function {name!r}; pass the function itself "
                         f"as config['fn']. Known: {sorted(_FUNCTIONS)}")
    return fn


class LossFunctionWrapper(Loss):
    """A Loss around a per-sample loss function ``fn(y_true, y_pred, **kwargs)``."""

    def __init__(self, fn, reduction="sum_over_batch_size", name=None, dtype=None, **kwargs):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.fn = fn
        self._fn_kwargs = kwargs

    def call(self, y_true, y_pred):
        if isinstance(y_true, Tensor) and isinstance(y_pred, Tensor):
            y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        return self.fn(y_true, y_pred, **self._fn_kwargs)

    def get_config(self):
        config = super().get_config()
        config["fn"] = _serialize_fn(self.fn)
        config.update(self._fn_kwargs)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if "fn" in config:
            config["fn"] = _deserialize_fn(config["fn"])
        return cls(**config)

    def __repr__(self):
        return f"<LossFunctionWrapper({self.fn}, kwargs={self._fn_kwargs})>"


# -- classes, with Keras's signatures (argument order included), defaults and configs ----------------------------
class _BuiltinLoss(LossFunctionWrapper):
    """A built-in loss class: its config holds name, reduction, dtype and its own arguments only, as Keras's built-in
    classes write it (no ``fn`` entry; the class itself says which function it wraps)."""

    def get_config(self):
        return Loss.get_config(self)


class MeanSquaredError(_BuiltinLoss):
    """Mean of squares of errors, per sample (keras.losses.MeanSquaredError)."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error", dtype=None):
        super().__init__(mean_squared_error, name=name, reduction=reduction, dtype=dtype)


class MeanAbsoluteError(_BuiltinLoss):
    """Mean of absolute errors, per sample."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_error", dtype=None):
        super().__init__(mean_absolute_error, name=name, reduction=reduction, dtype=dtype)


class MeanAbsolutePercentageError(_BuiltinLoss):
    """100 * mean(|(y_true - y_pred) / y_true|), per sample."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_percentage_error", dtype=None):
        super().__init__(mean_absolute_percentage_error, name=name, reduction=reduction, dtype=dtype)


class MeanSquaredLogarithmicError(_BuiltinLoss):
    """Mean of squared differences of log(1 + x), per sample."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_logarithmic_error", dtype=None):
        super().__init__(mean_squared_logarithmic_error, name=name, reduction=reduction, dtype=dtype)


class CosineSimilarity(_BuiltinLoss):
    """Negative cosine similarity along ``axis``. Its config has no ``axis`` (as in Keras)."""

    def __init__(self, axis=-1, reduction="sum_over_batch_size", name="cosine_similarity", dtype=None):
        super().__init__(cosine_similarity, name=name, reduction=reduction, dtype=dtype, axis=axis)


class Huber(_BuiltinLoss):
    """Huber loss with threshold ``delta``. Its config has no ``delta`` (as in Keras)."""

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss", dtype=None):
        super().__init__(huber, name=name, reduction=reduction, dtype=dtype, delta=delta)


class LogCosh(_BuiltinLoss):
    """Mean of log(cosh(error)), per sample."""

    def __init__(self, reduction="sum_over_batch_size", name="log_cosh", dtype=None):
        super().__init__(log_cosh, name=name, reduction=reduction, dtype=dtype)


class Hinge(_BuiltinLoss):
    """Hinge loss (labels -1 / 1, or 0 / 1 converted)."""

    def __init__(self, reduction="sum_over_batch_size", name="hinge", dtype=None):
        super().__init__(hinge, name=name, reduction=reduction, dtype=dtype)


class SquaredHinge(_BuiltinLoss):
    """Squared hinge loss (labels -1 / 1, or 0 / 1 converted)."""

    def __init__(self, reduction="sum_over_batch_size", name="squared_hinge", dtype=None):
        super().__init__(squared_hinge, name=name, reduction=reduction, dtype=dtype)


class CategoricalHinge(_BuiltinLoss):
    """Categorical hinge loss of one-hot labels."""

    def __init__(self, reduction="sum_over_batch_size", name="categorical_hinge", dtype=None):
        super().__init__(categorical_hinge, name=name, reduction=reduction, dtype=dtype)


class KLDivergence(_BuiltinLoss):
    """Kullback-Leibler divergence, per sample."""

    def __init__(self, reduction="sum_over_batch_size", name="kl_divergence", dtype=None):
        super().__init__(kl_divergence, name=name, reduction=reduction, dtype=dtype)


class Poisson(_BuiltinLoss):
    """Poisson loss, per sample."""

    def __init__(self, reduction="sum_over_batch_size", name="poisson", dtype=None):
        super().__init__(poisson, name=name, reduction=reduction, dtype=dtype)


def _check_label_smoothing(cls_name, label_smoothing):
    if not 0 <= float(label_smoothing) <= 1:
        raise ValueError(f"{cls_name}: label_smoothing must be in [0, 1], but received {label_smoothing}")


class BinaryCrossentropy(LossFunctionWrapper):
    """Binary crossentropy, averaged over ``axis``."""

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="binary_crossentropy", dtype=None):
        _check_label_smoothing("BinaryCrossentropy", label_smoothing)
        super().__init__(binary_crossentropy, name=name, reduction=reduction, dtype=dtype, from_logits=from_logits,
                         label_smoothing=label_smoothing, axis=axis)
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing
        self.axis = axis

    def get_config(self):
        config = Loss.get_config(self)
        config.update({"from_logits": self.from_logits, "label_smoothing": self.label_smoothing, "axis": self.axis})
        return config


class BinaryFocalCrossentropy(LossFunctionWrapper):
    """Focal binary crossentropy: (1 - p_t) ** gamma down-weights the easy examples; ``apply_class_balancing``
    weights positives by ``alpha`` and negatives by 1 - alpha."""

    def __init__(self, apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0,
                 axis=-1, reduction="sum_over_batch_size", name="binary_focal_crossentropy", dtype=None):
        _check_label_smoothing("BinaryFocalCrossentropy", label_smoothing)
        super().__init__(binary_focal_crossentropy, name=name, reduction=reduction, dtype=dtype,
                         apply_class_balancing=apply_class_balancing, alpha=alpha, gamma=gamma,
                         from_logits=from_logits, label_smoothing=label_smoothing, axis=axis)
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing
        self.axis = axis
        self.apply_class_balancing = apply_class_balancing
        self.alpha = alpha
        self.gamma = gamma

    def get_config(self):
        config = Loss.get_config(self)
        config.update({"from_logits": self.from_logits, "label_smoothing": self.label_smoothing, "axis": self.axis,
                       "apply_class_balancing": self.apply_class_balancing, "alpha": self.alpha,
                       "gamma": self.gamma})
        return config


class CategoricalCrossentropy(LossFunctionWrapper):
    """Crossentropy of one-hot (or soft) labels."""

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="categorical_crossentropy", dtype=None):
        _check_label_smoothing("CategoricalCrossentropy", label_smoothing)
        super().__init__(categorical_crossentropy, name=name, reduction=reduction, dtype=dtype,
                         from_logits=from_logits, label_smoothing=label_smoothing, axis=axis)
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing
        self.axis = axis

    def get_config(self):
        config = Loss.get_config(self)
        config.update({"from_logits": self.from_logits, "label_smoothing": self.label_smoothing, "axis": self.axis})
        return config


class CategoricalFocalCrossentropy(LossFunctionWrapper):
    """Focal crossentropy of one-hot labels: alpha * (1 - p) ** gamma weights each class's crossentropy term."""

    def __init__(self, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="categorical_focal_crossentropy", dtype=None):
        _check_label_smoothing("CategoricalFocalCrossentropy", label_smoothing)
        super().__init__(categorical_focal_crossentropy, name=name, reduction=reduction, dtype=dtype, alpha=alpha,
                         gamma=gamma, from_logits=from_logits, label_smoothing=label_smoothing, axis=axis)
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing
        self.axis = axis
        self.alpha = alpha
        self.gamma = gamma

    def get_config(self):
        config = Loss.get_config(self)
        config.update({"from_logits": self.from_logits, "label_smoothing": self.label_smoothing, "axis": self.axis,
                       "alpha": self.alpha, "gamma": self.gamma})
        return config


class SparseCategoricalCrossentropy(LossFunctionWrapper):
    """Crossentropy of integer labels. Entries labelled ``ignore_class`` are left out of the loss AND of the
    average (the reduction divides by the entries that are not ignored). Its config has no ``axis`` (as Keras)."""

    def __init__(self, from_logits=False, ignore_class=None, reduction="sum_over_batch_size", axis=-1,
                 name="sparse_categorical_crossentropy", dtype=None):
        super().__init__(sparse_categorical_crossentropy, name=name, reduction=reduction, dtype=dtype,
                         from_logits=from_logits, ignore_class=ignore_class, axis=axis)
        self.from_logits = from_logits
        self.ignore_class = ignore_class

    def get_config(self):
        config = Loss.get_config(self)
        config.update({"from_logits": self.from_logits, "ignore_class": self.ignore_class})
        return config


class CTC(_BuiltinLoss):
    """Connectionist temporal classification loss (labels padded with the blank 0)."""

    def __init__(self, reduction="sum_over_batch_size", name="ctc", dtype=None):
        super().__init__(ctc, name=name, reduction=reduction, dtype=dtype)


class Dice(LossFunctionWrapper):
    """Dice loss; ``axis=None`` reduces over everything (one value per batch)."""

    def __init__(self, reduction="sum_over_batch_size", name="dice", axis=None, dtype=None):
        super().__init__(dice, name=name, reduction=reduction, dtype=dtype, axis=axis)
        self.axis = axis

    def get_config(self):
        config = Loss.get_config(self)
        config.update({"axis": self.axis})
        return config


class Tversky(LossFunctionWrapper):
    """Tversky loss: Dice with FP weighted by ``alpha`` and FN by ``beta`` (alpha = beta = 0.5 is Dice)."""

    def __init__(self, alpha=0.5, beta=0.5, reduction="sum_over_batch_size", name="tversky", axis=None, dtype=None):
        super().__init__(tversky, name=name, reduction=reduction, dtype=dtype, alpha=alpha, beta=beta, axis=axis)
        self.alpha = alpha
        self.beta = beta
        self.axis = axis

    def get_config(self):
        config = Loss.get_config(self)
        config.update({"alpha": self.alpha, "beta": self.beta, "axis": self.axis})
        return config


class Circle(LossFunctionWrapper):
    """Circle loss of L2-normalised embeddings (y_pred) with integer labels (y_true)."""

    def __init__(self, gamma=80.0, margin=0.4, remove_diagonal=True, reduction="sum_over_batch_size", name="circle",
                 dtype=None):
        super().__init__(circle, name=name, reduction=reduction, dtype=dtype, gamma=gamma, margin=margin,
                         remove_diagonal=remove_diagonal)
        self.gamma = gamma
        self.margin = margin
        self.remove_diagonal = remove_diagonal

    def get_config(self):
        config = Loss.get_config(self)
        config.update({"gamma": self.gamma, "margin": self.margin, "remove_diagonal": self.remove_diagonal})
        return config


class CategoricalGeneralizedCrossEntropy(LossFunctionWrapper):
    """Generalized crossentropy (1 - p ** q) / q of integer labels, robust to noisy labels; 0 < q < 1."""

    def __init__(self, q=0.5, reduction="sum_over_batch_size", name="categorical_generalized_cross_entropy",
                 dtype=None):
        if not 0 < q < 1:
            raise ValueError(f"CategoricalGeneralizedCrossEntropy: q must be in the interval (0, 1), but received "
                             f"q={q}")
        super().__init__(categorical_generalized_cross_entropy, name=name, reduction=reduction, dtype=dtype, q=q)
        self.q = q

    def get_config(self):
        config = Loss.get_config(self)
        config.update({"q": self.q})
        return config


_FUNCTIONS = {
    "mean_squared_error": mean_squared_error, "mse": mean_squared_error, "MSE": mean_squared_error,
    "mean_absolute_error": mean_absolute_error, "mae": mean_absolute_error, "MAE": mean_absolute_error,
    "mean_absolute_percentage_error": mean_absolute_percentage_error, "mape": mean_absolute_percentage_error,
    "MAPE": mean_absolute_percentage_error,
    "mean_squared_logarithmic_error": mean_squared_logarithmic_error, "msle": mean_squared_logarithmic_error,
    "MSLE": mean_squared_logarithmic_error,
    "huber": huber, "huber_loss": huber, "log_cosh": log_cosh, "logcosh": log_cosh,
    "binary_crossentropy": binary_crossentropy, "bce": binary_crossentropy, "BCE": binary_crossentropy,
    "binary_focal_crossentropy": binary_focal_crossentropy,
    "categorical_crossentropy": categorical_crossentropy, "cce": categorical_crossentropy,
    "categorical_focal_crossentropy": categorical_focal_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "kl_divergence": kl_divergence, "kld": kl_divergence, "KLD": kl_divergence,
    "kullback_leibler_divergence": kl_divergence,
    "hinge": hinge, "squared_hinge": squared_hinge, "categorical_hinge": categorical_hinge, "poisson": poisson,
    "cosine_similarity": cosine_similarity, "dice": dice, "tversky": tversky, "circle": circle,
    "categorical_generalized_cross_entropy": categorical_generalized_cross_entropy, "ctc": ctc,
}
_CLASSES = {c.__name__: c for c in (
    Loss, LossFunctionWrapper, MeanSquaredError, MeanAbsoluteError, MeanAbsolutePercentageError,
    MeanSquaredLogarithmicError, Huber, LogCosh, BinaryCrossentropy, BinaryFocalCrossentropy, CategoricalCrossentropy,
    CategoricalFocalCrossentropy, SparseCategoricalCrossentropy, KLDivergence, Hinge, SquaredHinge, CategoricalHinge,
    Poisson, CosineSimilarity, CTC, Dice, Tversky, Circle, CategoricalGeneralizedCrossEntropy)}
_TABLE = {**_FUNCTIONS, **_CLASSES}


def get(identifier):
    """A loss from a name ("mse", "categorical_crossentropy", "MeanSquaredError"), a config dict, a Loss or a
    callable (returned as is). Unknown names raise ValueError listing the valid ones."""
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        return _registry.from_dict("loss", _TABLE, identifier)
    if isinstance(identifier, str):
        return _registry.lookup("loss", _TABLE, identifier)
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret loss identifier: {identifier!r}")


def serialize(loss):
    return _registry.serialize(loss)


def deserialize(name, custom_objects=None):
    """A loss from its config dict or name; ``custom_objects`` maps further names to classes / functions."""
    if custom_objects:
        if isinstance(name, str) and name in custom_objects:
            obj = custom_objects[name]
            return obj() if isinstance(obj, type) else obj
        if isinstance(name, dict) and name.get("class_name") in custom_objects:
            cls = custom_objects[name["class_name"]]
            return cls.from_config(name.get("config") or {})
    return get(name)
