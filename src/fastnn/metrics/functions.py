"""Keras's per-sample metric functions (``keras.metrics.binary_accuracy``, ...), each with Keras's formula and
output shape, computed through ``fastnn.backend`` (metrics are not differentiable: no graph is recorded). Each
returns a Tensor."""
from __future__ import annotations

from fastnn import backend as B
from fastnn.autograd import Tensor
from fastnn.metrics.base import EPSILON, squeeze_or_expand_to_same_rank, to_buffer


def _float(x):
    x = to_buffer(x)
    return x if x.dtype.kind == "f" else B.astype(x, "float32")


def accuracy(y_true, y_pred):
    """1.0 where ``y_true == y_pred`` (elementwise)."""
    y_pred = to_buffer(y_pred)
    y_true = B.astype(to_buffer(y_true), y_pred.dtype, copy=False)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    return Tensor._wrap(B.astype(B.equal(y_true, y_pred), "float32"))


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """1.0 where ``(y_pred > threshold) == y_true`` (elementwise, as Keras 3: no mean over the last axis)."""
    y_true, y_pred = squeeze_or_expand_to_same_rank(to_buffer(y_true), to_buffer(y_pred))
    predicted = B.astype(B.greater(y_pred, threshold), y_true.dtype)
    return Tensor._wrap(B.astype(B.equal(y_true, predicted), "float32"))


def categorical_accuracy(y_true, y_pred):
    """1.0 where the arg-max of the one-hot ``y_true`` equals the arg-max of ``y_pred``."""
    y_pred = to_buffer(y_pred)
    labels = B.argmax(to_buffer(y_true), axis=-1)
    original_shape = labels.shape
    reshape_matches = labels.ndim == y_pred.ndim
    if reshape_matches:  # Keras: y_true was (..., 1) after the arg-max
        labels = B.squeeze(labels, -1)
    matches = B.astype(B.equal(labels, B.argmax(y_pred, axis=-1)), "float32")
    return Tensor._wrap(B.reshape(matches, original_shape) if reshape_matches else matches)


def sparse_categorical_accuracy(y_true, y_pred):
    """1.0 where the integer label ``y_true`` equals the arg-max of ``y_pred``."""
    y_pred = to_buffer(y_pred)
    y_true = B.astype(to_buffer(y_true), y_pred.dtype if y_pred.dtype.kind == "f" else "float32", copy=False)
    original_shape = y_true.shape
    reshape_matches = y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1
    if reshape_matches:
        y_true = B.squeeze(y_true, -1)
    matches = B.astype(B.equal(y_true, B.argmax(y_pred, axis=-1)), "float32")
    if reshape_matches:
        matches = B.reshape(matches, original_shape)
    if matches.ndim > 1 and matches.shape[-1] == 1:
        matches = B.squeeze(matches, -1)
    return Tensor._wrap(matches)


def _in_top_k(labels, predictions, k):
    """tf.math.in_top_k: the label's score has fewer than ``k`` scores strictly above it (ties straddling the
    boundary all count as in the top k)."""
    labels = B.astype(labels, "int64")
    if labels.size:
        low, high = B.item(B.min(labels)), B.item(B.max(labels))
        if low < 0 or high >= predictions.shape[-1]:
            raise ValueError(f"top-k accuracy: labels must be in [0, {predictions.shape[-1]}), but received values "
                             f"in [{low}, {high}]")
    target = B.take_along_axis(predictions, B.expand_dims(labels, 1), axis=-1)
    return B.less(B.sum(B.greater(predictions, target), axis=-1), k)


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    """1.0 where the arg-max of the one-hot ``y_true`` is among the ``k`` largest scores of ``y_pred``."""
    y_pred = _float(y_pred)
    labels = B.argmax(to_buffer(y_true), axis=-1)
    original_shape = labels.shape
    matches = B.astype(_in_top_k(B.reshape(labels, (-1,)), B.reshape(y_pred, (-1, y_pred.shape[-1])), k), "float32")
    return Tensor._wrap(B.reshape(matches, original_shape) if labels.ndim > 1 else matches)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5, from_sorted_ids=False):
    """1.0 where the integer label ``y_true`` is among the ``k`` largest scores of ``y_pred`` (or, with
    ``from_sorted_ids=True``, among the first ``k`` of the class ids sorted by score that ``y_pred`` holds)."""
    y_pred = to_buffer(y_pred)
    y_true = to_buffer(y_true)
    original_shape = y_true.shape
    y_pred = B.reshape(y_pred, (-1, y_pred.shape[-1]))
    if from_sorted_ids:
        labels = B.expand_dims(B.astype(B.reshape(y_true, (-1,)), y_pred.dtype), 1)
        matches = B.any(B.equal(labels, B.getitem(y_pred, (slice(None), slice(None, k)))), axis=1)
    else:
        matches = _in_top_k(B.reshape(y_true, (-1,)), B.astype(y_pred, "float32", copy=False)
                            if y_pred.dtype.kind != "f" else y_pred, k)
    matches = B.astype(matches, "float32")
    return Tensor._wrap(B.reshape(matches, original_shape) if y_true.ndim > 1 else matches)


def _pair(y_true, y_pred):
    y_pred = _float(y_pred)
    y_true = B.astype(to_buffer(y_true), y_pred.dtype, copy=False)
    return squeeze_or_expand_to_same_rank(y_true, y_pred)


def cosine_similarity(y_true, y_pred, axis=-1):
    """keras.src.metrics.regression_metrics.cosine_similarity: the (positive) cosine of the angle along ``axis``."""
    y_true, y_pred = _pair(y_true, y_pred)

    def normalize(x):
        return B.divide(x, B.sqrt(B.maximum(B.sum(B.square(x), axis=axis, keepdims=True), 1e-12)))

    return Tensor._wrap(B.sum(B.multiply(normalize(y_true), normalize(y_pred)), axis=axis))


def pearson_correlation(y_true, y_pred, axis=-1):
    """Pearson's correlation coefficient along ``axis`` (one value per sample for ``axis=-1``)."""
    y_true, y_pred = _pair(y_true, y_pred)
    true_centered = B.subtract(y_true, B.mean(y_true, axis=axis, keepdims=True))
    pred_centered = B.subtract(y_pred, B.mean(y_pred, axis=axis, keepdims=True))
    true_centered = B.divide(true_centered, B.std(true_centered, axis=axis, keepdims=True))
    pred_centered = B.divide(pred_centered, B.std(pred_centered, axis=axis, keepdims=True))
    return Tensor._wrap(B.mean(B.multiply(true_centered, pred_centered), axis=axis))


def concordance_correlation(y_true, y_pred, axis=-1):
    """Lin's concordance correlation coefficient along ``axis``, with Keras's formula (epsilon in the denominator)."""
    y_true, y_pred = _pair(y_true, y_pred)
    true_mean = B.mean(y_true, axis=axis, keepdims=True)
    pred_mean = B.mean(y_pred, axis=axis, keepdims=True)
    true_var = B.var(B.subtract(y_true, true_mean), axis=axis, keepdims=True)
    pred_var = B.var(B.subtract(y_pred, pred_mean), axis=axis, keepdims=True)
    # Keras's form; its mean is the covariance
    covariance = B.multiply(B.subtract(y_true, pred_mean), B.subtract(y_pred, pred_mean))
    norm = B.add(B.add(true_var, pred_var), B.square(B.subtract(true_mean, pred_mean)))
    return Tensor._wrap(B.mean(B.divide(B.multiply(2, covariance), B.add(norm, EPSILON)), axis=axis))


def categorical_hinge(y_true, y_pred):
    """max(0, 1 + max((1 - y_true) * y_pred) - sum(y_true * y_pred)) per sample (the metric's own form of
    keras.losses.categorical_hinge)."""
    y_true, y_pred = _pair(y_true, y_pred)
    positive = B.sum(B.multiply(y_true, y_pred), axis=-1)
    negative = B.max(B.multiply(B.subtract(1.0, y_true), y_pred), axis=-1)
    return Tensor._wrap(B.maximum(B.add(B.subtract(negative, positive), 1.0), 0.0))
