"""Keras's per-sample metric functions (``keras.metrics.binary_accuracy``, ...), each with Keras's formula and
output shape, computed in NumPy (metrics are not differentiable)."""
from __future__ import annotations

import numpy as np

from fastnn.metrics.base import EPSILON, squeeze_or_expand_to_same_rank, to_numpy


def _float(x):
    x = to_numpy(x)
    return x if x.dtype.kind == "f" else x.astype("float32")


def accuracy(y_true, y_pred):
    """1.0 where ``y_true == y_pred`` (elementwise)."""
    y_pred = to_numpy(y_pred)
    y_true = to_numpy(y_true).astype(y_pred.dtype, copy=False)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    return (y_true == y_pred).astype("float32")


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """1.0 where ``(y_pred > threshold) == y_true`` (elementwise, as Keras 3: no mean over the last axis)."""
    y_true, y_pred = squeeze_or_expand_to_same_rank(to_numpy(y_true), to_numpy(y_pred))
    predicted = (y_pred > threshold).astype(y_true.dtype)
    return (y_true == predicted).astype("float32")


def categorical_accuracy(y_true, y_pred):
    """1.0 where the arg-max of the one-hot ``y_true`` equals the arg-max of ``y_pred``."""
    y_pred = to_numpy(y_pred)
    labels = np.argmax(to_numpy(y_true), axis=-1)
    original_shape = labels.shape
    reshape_matches = labels.ndim == y_pred.ndim
    if reshape_matches:  # Keras: y_true was (..., 1) after the arg-max
        labels = np.squeeze(labels, -1)
    matches = (labels == np.argmax(y_pred, axis=-1)).astype("float32")
    return matches.reshape(original_shape) if reshape_matches else matches


def sparse_categorical_accuracy(y_true, y_pred):
    """1.0 where the integer label ``y_true`` equals the arg-max of ``y_pred``."""
    y_pred = to_numpy(y_pred)
    y_true = to_numpy(y_true).astype(y_pred.dtype if y_pred.dtype.kind == "f" else "float32", copy=False)
    original_shape = y_true.shape
    reshape_matches = y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1
    if reshape_matches:
        y_true = np.squeeze(y_true, -1)
    matches = (y_true == np.argmax(y_pred, axis=-1)).astype("float32")
    if reshape_matches:
        matches = matches.reshape(original_shape)
    if matches.ndim > 1 and matches.shape[-1] == 1:
        matches = np.squeeze(matches, -1)
    return matches


def _in_top_k(labels, predictions, k):
    """tf.math.in_top_k: the label's score has fewer than ``k`` scores strictly above it (ties straddling the
    boundary all count as in the top k)."""
    labels = labels.astype("int64")
    if labels.size and (labels.min() < 0 or labels.max() >= predictions.shape[-1]):
        raise ValueError(f"top-k accuracy: labels must be in [0, {predictions.shape[-1]}), but received values in "
                         f"[{labels.min()}, {labels.max()}]")
    target = np.take_along_axis(predictions, labels[:, None], axis=-1)
    return np.sum(predictions > target, axis=-1) < k


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    """1.0 where the arg-max of the one-hot ``y_true`` is among the ``k`` largest scores of ``y_pred``."""
    y_pred = _float(y_pred)
    labels = np.argmax(to_numpy(y_true), axis=-1)
    original_shape = labels.shape
    matches = _in_top_k(labels.reshape(-1), y_pred.reshape(-1, y_pred.shape[-1]), k).astype("float32")
    return matches.reshape(original_shape) if labels.ndim > 1 else matches


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5, from_sorted_ids=False):
    """1.0 where the integer label ``y_true`` is among the ``k`` largest scores of ``y_pred`` (or, with
    ``from_sorted_ids=True``, among the first ``k`` of the class ids sorted by score that ``y_pred`` holds)."""
    y_pred = to_numpy(y_pred)
    y_true = to_numpy(y_true)
    original_shape = y_true.shape
    y_pred = y_pred.reshape(-1, y_pred.shape[-1])
    if from_sorted_ids:
        matches = np.any(y_true.reshape(-1).astype(y_pred.dtype)[:, None] == y_pred[:, :k], axis=1)
    else:
        matches = _in_top_k(y_true.reshape(-1), y_pred.astype("float32", copy=False) if y_pred.dtype.kind != "f"
                            else y_pred, k)
    matches = matches.astype("float32")
    return matches.reshape(original_shape) if y_true.ndim > 1 else matches


def _pair(y_true, y_pred):
    y_pred = _float(y_pred)
    y_true = to_numpy(y_true).astype(y_pred.dtype, copy=False)
    return squeeze_or_expand_to_same_rank(y_true, y_pred)


def cosine_similarity(y_true, y_pred, axis=-1):
    """keras.src.metrics.regression_metrics.cosine_similarity: the (positive) cosine of the angle along ``axis``."""
    y_true, y_pred = _pair(y_true, y_pred)

    def normalize(x):
        return x / np.sqrt(np.maximum(np.sum(np.square(x), axis=axis, keepdims=True), 1e-12))

    return np.sum(normalize(y_true) * normalize(y_pred), axis=axis)


def pearson_correlation(y_true, y_pred, axis=-1):
    """Pearson's correlation coefficient along ``axis`` (one value per sample for ``axis=-1``)."""
    y_true, y_pred = _pair(y_true, y_pred)
    true_centered = y_true - np.mean(y_true, axis=axis, keepdims=True)
    pred_centered = y_pred - np.mean(y_pred, axis=axis, keepdims=True)
    true_centered = true_centered / np.std(true_centered, axis=axis, keepdims=True)
    pred_centered = pred_centered / np.std(pred_centered, axis=axis, keepdims=True)
    return np.mean(true_centered * pred_centered, axis=axis)


def concordance_correlation(y_true, y_pred, axis=-1):
    """Lin's concordance correlation coefficient along ``axis``, with Keras's formula (epsilon in the denominator)."""
    y_true, y_pred = _pair(y_true, y_pred)
    true_mean = np.mean(y_true, axis=axis, keepdims=True)
    pred_mean = np.mean(y_pred, axis=axis, keepdims=True)
    true_var = np.var(y_true - true_mean, axis=axis, keepdims=True)
    pred_var = np.var(y_pred - pred_mean, axis=axis, keepdims=True)
    covariance = (y_true - pred_mean) * (y_pred - pred_mean)  # Keras's form; its mean is the covariance
    norm = true_var + pred_var + np.square(true_mean - pred_mean)
    return np.mean(2 * covariance / (norm + EPSILON), axis=axis)


def categorical_hinge(y_true, y_pred):
    """max(0, 1 + max((1 - y_true) * y_pred) - sum(y_true * y_pred)) per sample (the metric's NumPy form of
    keras.losses.categorical_hinge)."""
    y_true, y_pred = _pair(y_true, y_pred)
    positive = np.sum(y_true * y_pred, axis=-1)
    negative = np.max((1.0 - y_true) * y_pred, axis=-1)
    return np.maximum(negative - positive + 1.0, 0.0)
