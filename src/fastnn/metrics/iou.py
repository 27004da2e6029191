"""Intersection-over-union metrics with Keras 3's semantics (keras.src.metrics.iou_metrics): IoU, BinaryIoU,
MeanIoU, OneHotIoU, OneHotMeanIoU, from a (num_classes, num_classes) confusion matrix (rows: true class, columns:
predicted class). As in Keras the default dtype is "int64", so sample weights are truncated to integers unless a
float dtype is given."""
from __future__ import annotations

import warnings

import numpy as np

from fastnn import backend as B
from fastnn.metrics.base import EPSILON, Metric, StateBuffer, to_buffer


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

    total_cm = StateBuffer()

    def reset_state(self):
        self._reset_states(total_cm=(self.num_classes, self.num_classes), dtype=self.dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = to_buffer(y_true), to_buffer(y_pred)
        if not self.sparse_y_true:
            y_true = B.argmax(y_true, axis=self.axis)
        if not self.sparse_y_pred:
            y_pred = B.argmax(y_pred, axis=self.axis)
        y_true = B.reshape(B.astype(y_true, self.dtype), (-1,))
        y_pred = B.reshape(B.astype(y_pred, self.dtype), (-1,))
        if sample_weight is None:
            weights = B.ones(y_true.shape, dtype=self.dtype)
        else:
            weights = to_buffer(sample_weight)
            if weights.dtype.kind == "f" and np.dtype(self.dtype).kind in "iu":
                warnings.warn(f"{type(self).__name__}: you are passing weight as `float`, but dtype is `int`. This "
                              "may result in an incorrect weight due to type casting. Consider using integer "
                              "weights.", stacklevel=2)
            weights = B.astype(weights, self.dtype)
            if weights.ndim > 1:
                weights = B.reshape(weights, (-1,))
            try:
                weights = B.broadcast_to(weights, y_true.shape)
            except ValueError:
                raise ValueError(f"{type(self).__name__}: sample_weight of shape {weights.shape} does not match the "
                                 f"{y_true.shape[0]} labels") from None
        if y_pred.shape != y_true.shape:
            raise ValueError(f"{type(self).__name__}: y_true has {y_true.size} labels but y_pred {y_pred.size} "
                             "predictions")
        # Labels or predictions outside [0, num_classes) (and the ignored class) are left out, as in Keras.
        n = self.num_classes
        in_bounds = B.logical_and(B.logical_and(B.logical_and(B.greater_equal(y_true, 0), B.less(y_true, n)),
                                                B.greater_equal(y_pred, 0)), B.less(y_pred, n))
        if self.ignore_class is not None:
            in_bounds = B.logical_and(in_bounds, B.not_equal(y_true, self.ignore_class))
        # The confusion matrix, row-major (true class, predicted class), as a weighted count of each cell
        cells = B.add(B.multiply(B.astype(B.getitem(y_true, in_bounds), "int64"), n),
                      B.astype(B.getitem(y_pred, in_bounds), "int64"))
        counts = B.bincount(cells, weights=B.astype(B.getitem(weights, in_bounds), "float64"), minlength=n * n)
        self._accumulate("total_cm", B.astype(B.reshape(counts, (n, n)), self.dtype))


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
        cm = B.astype(self.total_cm, "float64")
        true_positives = B.diag(cm)
        denominator = B.subtract(B.add(B.sum(cm, axis=0), B.sum(cm, axis=1)), true_positives)
        ids = B.asarray(self.target_class_ids, dtype="int64")
        true_positives, denominator = B.getitem(true_positives, ids), B.getitem(denominator, ids)
        valid = B.greater(denominator, 1e-9)  # classes absent from both labels and predictions do not count
        iou = B.where(valid, B.divide(true_positives, B.add(denominator, EPSILON)), 0.0)
        return self._result(B.divide(B.sum(iou), B.add(B.sum(valid), EPSILON)), "float32")

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
        predicted = B.astype(B.greater_equal(to_buffer(y_pred, "float32"), self.threshold), self.dtype)
        super().update_state(B.astype(to_buffer(y_true), self.dtype), predicted, sample_weight)

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
