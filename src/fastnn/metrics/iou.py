"""Intersection-over-union metrics with Keras 3's semantics (keras.src.metrics.iou_metrics): IoU, BinaryIoU,
MeanIoU, OneHotIoU, OneHotMeanIoU, from a (num_classes, num_classes) confusion matrix (rows: true class, columns:
predicted class). As in Keras the default dtype is "int64", so sample weights are truncated to integers unless a
float dtype is given."""
from __future__ import annotations

import warnings

import numpy as np

from fastnn.metrics.base import EPSILON, Metric, squeeze_or_expand_to_same_rank, to_numpy


class _IoUBase(Metric):
    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None, sparse_y_true=True, sparse_y_pred=True,
                 axis=-1):
        if not isinstance(num_classes, (int, np.integer)) or isinstance(num_classes, bool) or num_classes < 1:
            raise ValueError(f"{type(self).__name__}: num_classes must be a positive int, but received "
                             f"num_classes={num_classes!r}")
        self.num_classes = int(num_classes)
        self.ignore_class = ignore_class
        self.sparse_y_true = sparse_y_true
        self.sparse_y_pred = sparse_y_pred
        self.axis = axis
        super().__init__(name=name, dtype=dtype or "int64")

    def reset_state(self):
        self.total_cm = np.zeros((self.num_classes, self.num_classes), dtype=self.dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = to_numpy(y_true), to_numpy(y_pred)
        if not self.sparse_y_true:
            y_true = np.argmax(y_true, axis=self.axis)
        if not self.sparse_y_pred:
            y_pred = np.argmax(y_pred, axis=self.axis)
        y_true = y_true.astype(self.dtype).reshape(-1)
        y_pred = y_pred.astype(self.dtype).reshape(-1)
        if sample_weight is None:
            weights = np.ones(y_true.shape, dtype=self.dtype)
        else:
            weights = to_numpy(sample_weight)
            if weights.dtype.kind == "f" and np.dtype(self.dtype).kind in "iu":
                warnings.warn(f"{type(self).__name__}: you are passing weight as `float`, but dtype is `int`. This "
                              "may result in an incorrect weight due to type casting. Consider using integer "
                              "weights.", stacklevel=2)
            weights = weights.astype(self.dtype).reshape(-1) if weights.ndim > 1 else weights.astype(self.dtype)
            try:
                weights = np.broadcast_to(weights, y_true.shape)
            except ValueError:
                raise ValueError(f"{type(self).__name__}: sample_weight of shape {weights.shape} does not match the "
                                 f"{y_true.shape[0]} labels") from None
        if y_pred.shape != y_true.shape:
            raise ValueError(f"{type(self).__name__}: y_true has {y_true.size} labels but y_pred {y_pred.size} "
                             "predictions")
        # Labels or predictions outside [0, num_classes) (and the ignored class) are left out, as in Keras.
        in_bounds = (y_true >= 0) & (y_true < self.num_classes) & (y_pred >= 0) & (y_pred < self.num_classes)
        if self.ignore_class is not None:
            in_bounds &= y_true != self.ignore_class
        cells = y_true[in_bounds].astype(np.int64) * self.num_classes + y_pred[in_bounds].astype(np.int64)
        counts = np.bincount(cells, weights=weights[in_bounds].astype(np.float64),
                             minlength=self.num_classes * self.num_classes)
        self.total_cm = self.total_cm + counts.reshape(self.num_classes, self.num_classes).astype(self.dtype)


class IoU(_IoUBase):
    """The mean IoU of the classes ``target_class_ids``: tp / (tp + fp + fn) per class from the confusion matrix.

    Args:
        num_classes: the number of classes.
        target_class_ids: the class ids whose IoUs are averaged.
        ignore_class: a label id left out of the counts (e.g. a "void" class).
        sparse_y_true / sparse_y_pred: False when labels / predictions are one-hot or scores (arg-max along
            ``axis``).
    """

    def __init__(self, num_classes, target_class_ids, name=None, dtype=None, ignore_class=None, sparse_y_true=True,
                 sparse_y_pred=True, axis=-1):
        super().__init__(name=name, num_classes=num_classes, ignore_class=ignore_class, sparse_y_true=sparse_y_true,
                         sparse_y_pred=sparse_y_pred, axis=axis, dtype=dtype)
        target_class_ids = list(target_class_ids)
        if max(target_class_ids) >= num_classes:
            raise ValueError(f"Target class id {max(target_class_ids)} is out of range, which is [0, {num_classes}).")
        self.target_class_ids = target_class_ids

    def result(self):
        cm = self.total_cm.astype(np.float64)
        true_positives = np.diag(cm)
        denominator = cm.sum(axis=0) + cm.sum(axis=1) - true_positives
        ids = np.asarray(self.target_class_ids, dtype=np.int64)
        true_positives, denominator = true_positives[ids], denominator[ids]
        valid = denominator > 1e-9  # classes absent from both labels and predictions do not count
        iou = np.where(valid, true_positives / (denominator + EPSILON), 0.0)
        return np.float32(np.sum(iou) / (np.sum(valid) + EPSILON))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "target_class_ids": self.target_class_ids,
                "ignore_class": self.ignore_class, "sparse_y_true": self.sparse_y_true,
                "sparse_y_pred": self.sparse_y_pred, "axis": self.axis}


class BinaryIoU(IoU):
    """IoU of a binary task: predictions >= ``threshold`` are class 1, the others class 0."""

    def __init__(self, target_class_ids=(0, 1), threshold=0.5, name=None, dtype=None):
        super().__init__(num_classes=2, target_class_ids=target_class_ids, name=name, dtype=dtype)
        self.threshold = threshold

    def update_state(self, y_true, y_pred, sample_weight=None):
        predicted = (to_numpy(y_pred, "float32") >= self.threshold).astype(self.dtype)
        super().update_state(to_numpy(y_true).astype(self.dtype), predicted, sample_weight)

    def get_config(self):
        return {"target_class_ids": self.target_class_ids, "threshold": self.threshold, "name": self.name,
                "dtype": self.dtype}


class MeanIoU(IoU):
    """The mean IoU over all ``num_classes`` classes."""

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None, sparse_y_true=True, sparse_y_pred=True,
                 axis=-1):
        super().__init__(name=name, num_classes=num_classes, target_class_ids=list(range(num_classes)), axis=axis,
                         dtype=dtype, ignore_class=ignore_class, sparse_y_true=sparse_y_true,
                         sparse_y_pred=sparse_y_pred)

    def get_config(self):
        return {"num_classes": self.num_classes, "name": self.name, "dtype": self.dtype,
                "ignore_class": self.ignore_class, "sparse_y_true": self.sparse_y_true,
                "sparse_y_pred": self.sparse_y_pred, "axis": self.axis}


class OneHotIoU(IoU):
    """IoU with one-hot labels (and, by default, score predictions): both are arg-maxed along ``axis``."""

    def __init__(self, num_classes, target_class_ids, name=None, dtype=None, ignore_class=None, sparse_y_pred=False,
                 axis=-1):
        super().__init__(num_classes=num_classes, target_class_ids=target_class_ids, name=name, dtype=dtype,
                         ignore_class=ignore_class, sparse_y_true=False, sparse_y_pred=sparse_y_pred, axis=axis)

    def get_config(self):
        return {"num_classes": self.num_classes, "target_class_ids": self.target_class_ids, "name": self.name,
                "dtype": self.dtype, "ignore_class": self.ignore_class, "sparse_y_pred": self.sparse_y_pred,
                "axis": self.axis}


class OneHotMeanIoU(MeanIoU):
    """MeanIoU with one-hot labels (and, by default, score predictions)."""

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None, sparse_y_pred=False, axis=-1):
        super().__init__(num_classes=num_classes, axis=axis, name=name, dtype=dtype, ignore_class=ignore_class,
                         sparse_y_true=False, sparse_y_pred=sparse_y_pred)

    def get_config(self):
        return {"num_classes": self.num_classes, "name": self.name, "dtype": self.dtype,
                "ignore_class": self.ignore_class, "sparse_y_pred": self.sparse_y_pred, "axis": self.axis}
