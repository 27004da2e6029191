"""Metrics from confusion-matrix counts at thresholds, with Keras 3's semantics (keras.src.metrics.confusion_metrics
and metrics_utils.update_confusion_matrix_variables): TruePositives / FalsePositives / TrueNegatives /
FalseNegatives, Precision, Recall, SensitivityAtSpecificity, SpecificityAtSensitivity, PrecisionAtRecall,
RecallAtPrecision and AUC.

A prediction counts as positive at threshold t when ``y_pred > t``; labels are cast to bool. Evenly spaced
thresholds take Keras's bucketed path (predictions clipped to [0, 1], bucket = ceil(p * (T - 1)) - 1 in the
metric's dtype), so each prediction falls on the same side of each threshold as in Keras, including predictions
exactly on a threshold; the weighted sums accumulate in float64 (Keras: float32), so results agree to ~1e-7.
"""
from __future__ import annotations

import numpy as np

from fastnn import backend as B
from fastnn.metrics.base import EPSILON, Metric, StateBuffer, divide_no_nan, squeeze_or_expand_to_same_rank, to_buffer

NEG_INF = -1e10  # keras.src.metrics.metrics_utils.NEG_INF: the threshold used with top_k

_COUNTS = ("tp", "fp", "tn", "fn")


def _to_list(x):
    return list(x) if isinstance(x, (list, tuple, np.ndarray)) else [x]


def parse_init_thresholds(owner, thresholds, default_threshold=0.5):
    """Keras's parse_init_thresholds: a list of thresholds, each in [0, 1]."""
    if thresholds is not None:
        invalid = [t for t in _to_list(thresholds) if t is None or t < 0 or t > 1]
        if invalid:
            raise ValueError(f"{owner}: threshold values must be in [0, 1]. Received: {invalid}")
    return [float(t) for t in _to_list(default_threshold if thresholds is None else thresholds)]


def is_evenly_distributed_thresholds(thresholds):
    """Keras's test for the bucketed path: at least 3 thresholds equal to i / (n - 1) within epsilon."""
    n = len(thresholds)
    if n < 3:
        return False
    even = B.divide(B.arange(n, dtype="float32"), n - 1)
    return bool(B.item(B.all(B.isclose(B.asarray(thresholds, dtype="float64"), even, atol=EPSILON))))


def _filter_top_k(x, k):
    """The ``k`` largest values of the last axis (the lower index first among ties, as tf.math.top_k); every other
    value becomes NEG_INF."""
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"top_k must be a positive int, but received top_k={k!r}")
    if k > x.shape[-1]:
        raise ValueError(f"top_k={k} is larger than the last axis of y_pred (shape {x.shape})")
    top = B.getitem(B.argsort(B.negative(x), axis=-1, kind="stable"), (Ellipsis, slice(None, k)))
    mask = B.zeros(x.shape, dtype=x.dtype)
    B.put_along_axis(mask, top, 1, axis=-1)
    return B.add(B.multiply(x, mask), B.multiply(B.asarray(NEG_INF, dtype=x.dtype), B.subtract(1, mask)))


def _reversed_cumsum(x):
    """The cumulative sums along axis 0 from the end: element i is the sum of elements i, i + 1, ..."""
    return B.flip(B.cumsum(B.flip(x, 0), axis=0), 0)


def update_confusion_matrix(y_true, y_pred, thresholds, *, dtype="float32", top_k=None, class_id=None,
                            sample_weight=None, multi_label=False, label_weights=None,
                            thresholds_distributed_evenly=False, owner="metric"):
    """The weighted tp / fp / tn / fn counts of one batch at each threshold: a dict of float64 buffers of shape
    ``(len(thresholds),)``, or ``(len(thresholds), num_labels)`` with ``multi_label``."""
    if multi_label and label_weights is not None:
        raise ValueError(f"{owner}: label_weights for multi-label data are applied to the per-label results, not "
                         "to the confusion counts")
    y_true = to_buffer(y_true, dtype)
    y_pred = to_buffer(y_pred, dtype)
    thresholds_list = list(thresholds)
    with_epsilon = thresholds_distributed_evenly and (thresholds_list[0] < 0.0 or thresholds_list[-1] > 1.0)
    thresholds = B.asarray(thresholds_list, dtype=dtype)
    num_thresholds = thresholds.shape[0]

    y_pred, y_true = squeeze_or_expand_to_same_rank(y_pred, y_true)
    if y_true.shape != y_pred.shape:
        try:
            y_true = B.broadcast_to(y_true, y_pred.shape)
        except ValueError:
            raise ValueError(f"{owner}: y_true of shape {y_true.shape} does not match y_pred of shape "
                             f"{y_pred.shape}") from None
    if sample_weight is not None:
        sample_weight = B.expand_dims(to_buffer(sample_weight, dtype), -1)
        _, sample_weight = squeeze_or_expand_to_same_rank(y_true, sample_weight, expand_rank_1=False)
    if top_k is not None:
        y_pred = _filter_top_k(y_pred, top_k)
    if class_id is not None:
        if y_pred.ndim == 1:
            raise ValueError(f"{owner}: when class_id is provided, y_pred must be a 2D array with shape "
                             f"(num_samples, num_classes), found shape: {y_pred.shape}")
        if not -y_pred.shape[-1] <= class_id < y_pred.shape[-1]:
            raise ValueError(f"{owner}: class_id={class_id} is out of range for y_pred with {y_pred.shape[-1]} "
                             "classes")
        y_true = B.getitem(y_true, (Ellipsis, class_id, None))
        y_pred = B.getitem(y_pred, (Ellipsis, class_id, None))
    if sample_weight is not None:
        try:
            sample_weight = B.broadcast_to(sample_weight, y_pred.shape)
        except ValueError:
            raise ValueError(f"{owner}: sample_weight of shape {sample_weight.shape} cannot be broadcast to y_pred of "
                             f"shape {y_pred.shape}") from None
    weights = None if sample_weight is None else sample_weight
    if label_weights is not None:  # only without multi_label: weights of the flattened label columns
        lw = B.broadcast_to(B.expand_dims(to_buffer(label_weights, dtype), 0), y_pred.shape)
        weights = lw if weights is None else B.multiply(weights, lw)
    if multi_label:
        if y_pred.ndim != 2:
            raise ValueError(f"{owner}: y_pred must have rank 2 when multi_label=True, but received shape "
                             f"{y_pred.shape}")
    else:
        y_pred, y_true = B.reshape(y_pred, (-1,)), B.reshape(y_true, (-1,))
        weights = None if weights is None else B.reshape(weights, (-1,))
    is_true = B.astype(y_true, "bool")
    weights = B.ones(y_pred.shape, dtype=dtype) if weights is None else B.astype(weights, dtype, copy=False)
    true_labels = B.astype(B.where(is_true, weights, 0), "float64")
    false_labels = B.astype(B.where(is_true, 0, weights), "float64")

    if thresholds_distributed_evenly:
        # Keras's bucketed path: bucket i collects the predictions in (t_i, t_{i+1}]; a prediction is above the
        # thresholds of its bucket and of every lower one, so the counts are reversed cumulative sums.
        clipped = B.clip(y_pred, 0.0, 1.0)
        bucket = B.subtract(B.ceil(B.multiply(clipped, B.asarray(num_thresholds - 1, dtype=dtype))), 1)
        if with_epsilon:
            bucket = B.maximum(bucket, 0)  # every prediction in [0, 1] is above the leading -epsilon threshold
        bucket = B.astype(bucket, "int64")
        valid = B.greater_equal(bucket, 0)  # a prediction of exactly 0 is above no threshold of [0, ..., 1] (as TF)
        if multi_label:
            num_labels = y_pred.shape[1]
            label_offsets = B.multiply(num_thresholds, B.expand_dims(B.arange(num_labels), 0))
            flat = B.getitem(B.add(bucket, label_offsets), valid)

            def bucket_sums(values):
                sums = B.bincount(flat, weights=B.getitem(values, valid), minlength=num_thresholds * num_labels)
                return B.transpose(B.reshape(sums, (num_labels, num_thresholds)))
        else:
            valid_buckets = B.getitem(bucket, valid)

            def bucket_sums(values):
                return B.bincount(valid_buckets, weights=B.getitem(values, valid), minlength=num_thresholds)
        tp = _reversed_cumsum(bucket_sums(true_labels))
        fp = _reversed_cumsum(bucket_sums(false_labels))
        return {"tp": tp, "fp": fp, "tn": B.subtract(B.sum(false_labels, axis=0), fp),
                "fn": B.subtract(B.sum(true_labels, axis=0), tp)}

    # Direct path: the weight of the predictions > t for every threshold t, from the sorted predictions and their
    # cumulative weights (O((N + T) log N) instead of a (T, N) comparison table).
    if multi_label:
        columns = [_counts_at_thresholds(*(B.getitem(x, (slice(None), j)) for x in (y_pred, true_labels, false_labels)),
                                         thresholds) for j in range(y_pred.shape[1])]
        return {count: B.stack([c[count] for c in columns], axis=1) for count in _COUNTS}
    return _counts_at_thresholds(y_pred, true_labels, false_labels, thresholds)


def _counts_at_thresholds(predictions, true_weights, false_weights, thresholds):
    """tp / fp / tn / fn at each threshold for 1-D predictions: a prediction is positive when it is > t (a NaN
    prediction never is)."""
    predictions = B.where(B.isnan(predictions), float("-inf"), predictions)
    order = B.argsort(predictions, kind="stable")
    sorted_predictions = B.getitem(predictions, order)
    nothing = B.zeros((1,), "float64")
    true_below = B.concatenate([nothing, B.cumsum(B.getitem(true_weights, order))])  # weight of the first i
    false_below = B.concatenate([nothing, B.cumsum(B.getitem(false_weights, order))])
    at_or_below = B.searchsorted(sorted_predictions, thresholds, side="right")  # how many are <= t
    fn, tn = B.getitem(true_below, at_or_below), B.getitem(false_below, at_or_below)
    return {"tp": B.subtract(B.getitem(true_below, -1), fn), "fp": B.subtract(B.getitem(false_below, -1), tn),
            "tn": tn, "fn": fn}


class _ConfusionMatrixConditionCount(Metric):
    """One weighted count (tp, fp, tn or fn) at each of ``thresholds`` (default 0.5)."""

    _variable_dtype = "float32"  # as Keras: the counts are floatx variables whatever the dtype

    _count = None

    def __init__(self, thresholds=None, name=None, dtype=None):
        self.init_thresholds = thresholds
        self.thresholds = parse_init_thresholds(type(self).__name__, thresholds, default_threshold=0.5)
        self._thresholds_distributed_evenly = is_evenly_distributed_thresholds(self.thresholds)
        super().__init__(name=name, dtype=dtype)

    accumulator = StateBuffer()

    def reset_state(self):
        self._reset_states(accumulator=(len(self.thresholds),))

    def update_state(self, y_true, y_pred, sample_weight=None):
        counts = update_confusion_matrix(y_true, y_pred, self.thresholds, dtype=self.variable_dtype,
                                         sample_weight=sample_weight,
                                         thresholds_distributed_evenly=self._thresholds_distributed_evenly,
                                         owner=type(self).__name__)
        self._accumulate("accumulator", counts[self._count])

    def result(self):
        return self._result(B.getitem(self.accumulator, 0) if len(self.thresholds) == 1 else self.accumulator)

    def get_config(self):
        return {**super().get_config(), "thresholds": self.init_thresholds}


class TruePositives(_ConfusionMatrixConditionCount):
    """The weighted number of true positives (``y_true`` true and ``y_pred > threshold``) at each threshold."""
    _count = "tp"


class FalsePositives(_ConfusionMatrixConditionCount):
    """The weighted number of false positives (``y_true`` false and ``y_pred > threshold``) at each threshold."""
    _count = "fp"


class TrueNegatives(_ConfusionMatrixConditionCount):
    """The weighted number of true negatives (``y_true`` false and ``y_pred <= threshold``) at each threshold."""
    _count = "tn"


class FalseNegatives(_ConfusionMatrixConditionCount):
    """The weighted number of false negatives (``y_true`` true and ``y_pred <= threshold``) at each threshold."""
    _count = "fn"


class _PrecisionRecall(Metric):
    _variable_dtype = "float32"  # as Keras: the counts are floatx variables whatever the dtype
    _counts = ()

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        self.init_thresholds = thresholds
        self.top_k = top_k
        self.class_id = class_id
        default_threshold = 0.5 if top_k is None else NEG_INF
        self.thresholds = parse_init_thresholds(type(self).__name__, thresholds, default_threshold=default_threshold)
        self._thresholds_distributed_evenly = is_evenly_distributed_thresholds(self.thresholds)
        super().__init__(name=name, dtype=dtype)

    tp = StateBuffer()
    fp = StateBuffer()
    fn = StateBuffer()

    def reset_state(self):
        self._reset_states(**{count: (len(self.thresholds),) for count in self._counts})

    def update_state(self, y_true, y_pred, sample_weight=None):
        counts = update_confusion_matrix(y_true, y_pred, self.thresholds, dtype=self.variable_dtype, top_k=self.top_k,
                                         class_id=self.class_id, sample_weight=sample_weight,
                                         thresholds_distributed_evenly=self._thresholds_distributed_evenly,
                                         owner=type(self).__name__)
        for count in self._counts:
            self._accumulate(count, counts[count])

    def _ratio(self, numerator, other):
        value = divide_no_nan(numerator, B.add(numerator, other))
        return self._result(B.getitem(value, 0) if len(self.thresholds) == 1 else value)

    def get_config(self):
        return {**super().get_config(), "thresholds": self.init_thresholds, "top_k": self.top_k,
                "class_id": self.class_id}


class Precision(_PrecisionRecall):
    """tp / (tp + fp) at each of ``thresholds`` (default 0.5; one result per threshold when several).

    Args:
        thresholds: a float or a list of floats in [0, 1].
        top_k: count only the ``top_k`` highest predictions of each sample as positive.
        class_id: compute the metric for this class (last axis index) only.
    """
    _counts = ("tp", "fp")

    def result(self):
        return self._ratio(self.tp, self.fp)


class Recall(_PrecisionRecall):
    """tp / (tp + fn) at each of ``thresholds`` (default 0.5); ``top_k`` and ``class_id`` as for Precision."""
    _counts = ("tp", "fn")

    def result(self):
        return self._ratio(self.tp, self.fn)


class SensitivitySpecificityBase(Metric):
    """Confusion counts at ``num_thresholds`` evenly spaced thresholds in [0, 1] for the "X at Y" metrics."""

    _variable_dtype = "float32"  # as Keras: the counts are floatx variables whatever the dtype

    def __init__(self, value, num_thresholds=200, class_id=None, name=None, dtype=None):
        if not isinstance(num_thresholds, (int, np.integer)) or num_thresholds <= 0:
            raise ValueError(f"{type(self).__name__}: argument `num_thresholds` must be an integer > 0. "
                             f"Received: num_thresholds={num_thresholds}")
        self.value = value
        self.class_id = class_id
        if num_thresholds == 1:
            self.thresholds = [0.5]
            self._thresholds_distributed_evenly = False
        else:
            inner = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
            self.thresholds = [0.0] + inner + [1.0]
            self._thresholds_distributed_evenly = True
        super().__init__(name=name, dtype=dtype)

    _tp = StateBuffer()
    _fp = StateBuffer()
    _tn = StateBuffer()
    _fn = StateBuffer()

    def reset_state(self):
        self._reset_states(**{f"_{count}": (len(self.thresholds),) for count in _COUNTS})

    def update_state(self, y_true, y_pred, sample_weight=None):
        counts = update_confusion_matrix(y_true, y_pred, self.thresholds, dtype=self.variable_dtype,
                                         class_id=self.class_id, sample_weight=sample_weight,
                                         thresholds_distributed_evenly=self._thresholds_distributed_evenly,
                                         owner=type(self).__name__)
        for count in _COUNTS:
            self._accumulate(f"_{count}", counts[count])

    def _rates(self):
        recall = divide_no_nan(self._tp, B.add(self._tp, self._fn))  # = sensitivity
        return {"sensitivity": recall, "recall": recall,
                "specificity": divide_no_nan(self._tn, B.add(self._tn, self._fp)),
                "precision": divide_no_nan(self._tp, B.add(self._tp, self._fp))}

    def _max_under_constraint(self, constrained, dependent):
        """The largest ``dependent`` rate over the thresholds where ``constrained >= value`` (0 if none)."""
        rates = self._rates()
        feasible = B.greater_equal(rates[constrained], self.value)
        return self._result(B.max(B.where(feasible, rates[dependent], 0.0), initial=0.0))

    def get_config(self):
        return {**super().get_config(), "class_id": self.class_id}


def _check_unit(owner, arg, value):
    if value < 0 or value > 1:
        raise ValueError(f"{owner}: argument `{arg}` must be in the range [0, 1]. Received: {arg}={value}")


class SensitivityAtSpecificity(SensitivitySpecificityBase):
    """The best sensitivity (recall) over the thresholds whose specificity is >= ``specificity``."""

    def __init__(self, specificity, num_thresholds=200, class_id=None, name=None, dtype=None):
        _check_unit("SensitivityAtSpecificity", "specificity", specificity)
        self.specificity = specificity
        self.num_thresholds = num_thresholds
        super().__init__(specificity, num_thresholds=num_thresholds, class_id=class_id, name=name, dtype=dtype)

    def result(self):
        return self._max_under_constraint("specificity", "sensitivity")

    def get_config(self):
        return {**super().get_config(), "num_thresholds": self.num_thresholds, "specificity": self.specificity}


class SpecificityAtSensitivity(SensitivitySpecificityBase):
    """The best specificity over the thresholds whose sensitivity (recall) is >= ``sensitivity``."""

    def __init__(self, sensitivity, num_thresholds=200, class_id=None, name=None, dtype=None):
        _check_unit("SpecificityAtSensitivity", "sensitivity", sensitivity)
        self.sensitivity = sensitivity
        self.num_thresholds = num_thresholds
        super().__init__(sensitivity, num_thresholds=num_thresholds, class_id=class_id, name=name, dtype=dtype)

    def result(self):
        return self._max_under_constraint("sensitivity", "specificity")

    def get_config(self):
        return {**super().get_config(), "num_thresholds": self.num_thresholds, "sensitivity": self.sensitivity}


class PrecisionAtRecall(SensitivitySpecificityBase):
    """The best precision over the thresholds whose recall is >= ``recall``."""

    def __init__(self, recall, num_thresholds=200, class_id=None, name=None, dtype=None):
        _check_unit("PrecisionAtRecall", "recall", recall)
        self.recall = recall
        self.num_thresholds = num_thresholds
        super().__init__(recall, num_thresholds=num_thresholds, class_id=class_id, name=name, dtype=dtype)

    def result(self):
        return self._max_under_constraint("recall", "precision")

    def get_config(self):
        return {**super().get_config(), "num_thresholds": self.num_thresholds, "recall": self.recall}


class RecallAtPrecision(SensitivitySpecificityBase):
    """The best recall over the thresholds whose precision is >= ``precision``."""

    def __init__(self, precision, num_thresholds=200, class_id=None, name=None, dtype=None):
        _check_unit("RecallAtPrecision", "precision", precision)
        self.precision = precision
        self.num_thresholds = num_thresholds
        super().__init__(precision, num_thresholds=num_thresholds, class_id=class_id, name=name, dtype=dtype)

    def result(self):
        return self._max_under_constraint("precision", "recall")

    def get_config(self):
        return {**super().get_config(), "num_thresholds": self.num_thresholds, "precision": self.precision}


_AUC_COUNTS = ("true_positives", "false_positives", "true_negatives", "false_negatives")


def _head(x):
    """``x[:-1]``: every threshold's value but the last (along axis 0)."""
    return B.getitem(x, slice(None, -1))


def _tail(x):
    """``x[1:]``: every threshold's value but the first (along axis 0)."""
    return B.getitem(x, slice(1, None))


_CURVES = {"roc": "ROC", "ROC": "ROC", "pr": "PR", "PR": "PR", "prgain": "PRGAIN", "PRGAIN": "PRGAIN"}
_SUMMATIONS = {"interpolation": "interpolation", "Interpolation": "interpolation", "majoring": "majoring",
               "Majoring": "majoring", "minoring": "minoring", "Minoring": "minoring"}


class AUC(Metric):
    """Area under the ROC, PR or PR-gain curve from confusion counts at thresholds, as Keras 3 computes it.

    Args:
        num_thresholds: the number of thresholds (> 1): i / (num_thresholds - 1), the end points moved to -1e-7
            and 1 + 1e-7 so that predictions of exactly 0 and 1 are counted.
        curve: "ROC" (default), "PR" or "PRGAIN".
        summation_method: "interpolation" (default: trapezoids for ROC; for PR, Davis & Goadrich's interpolation of
            the true and false positives), "minoring" (lower Riemann sum) or "majoring" (upper).
        thresholds: explicit thresholds in [0, 1] (``num_thresholds`` is then ignored; -1e-7 and 1 + 1e-7 are added).
        multi_label: compute one AUC per label column of 2D data and average them (weighted by ``label_weights``);
            when False, multi-label data is flattened into one label.
        num_labels: the number of labels with ``multi_label`` (else taken from the first batch).
        label_weights: non-negative per-label weights: for the average with ``multi_label``, else the weights of
            the flattened label columns in the counts.
        from_logits: apply a sigmoid to the predictions first.
    """

    _variable_dtype = "float32"  # as Keras: the counts are floatx variables whatever the dtype

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation", name=None, dtype=None,
                 thresholds=None, multi_label=False, num_labels=None, label_weights=None, from_logits=False):
        if curve not in _CURVES:
            raise ValueError(f'AUC: invalid curve value "{curve}". Expected values are ["PR", "ROC", "PRGAIN"]')
        if summation_method not in _SUMMATIONS:
            raise ValueError(f'AUC: invalid summation_method value "{summation_method}". Expected values are '
                             '["interpolation", "majoring", "minoring"]')
        self._init_from_thresholds = thresholds is not None
        if thresholds is not None:
            thresholds = sorted(float(t) for t in _to_list(thresholds))
            self.num_thresholds = len(thresholds) + 2
            self._thresholds_distributed_evenly = is_evenly_distributed_thresholds([0.0] + thresholds + [1.0])
        else:
            if not isinstance(num_thresholds, (int, np.integer)) or num_thresholds <= 1:
                raise ValueError(f"AUC: argument `num_thresholds` must be an integer > 1. "
                                 f"Received: num_thresholds={num_thresholds}")
            self.num_thresholds = int(num_thresholds)
            thresholds = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
            self._thresholds_distributed_evenly = True
        self._thresholds = [0.0 - EPSILON] + thresholds + [1.0 + EPSILON]
        self.curve = _CURVES[curve]
        self.summation_method = _SUMMATIONS[summation_method]
        self.multi_label = bool(multi_label)
        self.num_labels = num_labels
        self._from_logits = from_logits
        self._num_labels = None
        if not self.multi_label and num_labels:
            raise ValueError("AUC: `num_labels` is needed only when `multi_label` is True.")
        super().__init__(name=name, dtype=dtype)
        self.label_weights = None if label_weights is None else to_buffer(label_weights, self.dtype)
        if self.label_weights is not None and B.item(B.any(B.less(self.label_weights, 0))):
            raise ValueError(f"AUC: label_weights must be non-negative, but received {label_weights!r}")
        if self.multi_label and num_labels:
            self._build(num_labels)

    @property
    def thresholds(self):
        """The thresholds, end points included."""
        return list(self._thresholds)

    def _build(self, num_labels):
        self._num_labels = num_labels
        self.reset_state()

    true_positives = StateBuffer()
    false_positives = StateBuffer()
    true_negatives = StateBuffer()
    false_negatives = StateBuffer()

    def reset_state(self):
        shape = (self.num_thresholds, self._num_labels) if self.multi_label and self._num_labels else \
            (self.num_thresholds,)
        self._reset_states(**{name: shape for name in _AUC_COUNTS})

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = to_buffer(y_pred)
        if self.multi_label and self._num_labels is None:
            if y_pred.ndim != 2:
                raise ValueError(f"AUC: y_pred must have rank 2 when multi_label=True. Found rank {y_pred.ndim}. "
                                 f"Full shape received for y_pred: {y_pred.shape}")
            self._build(y_pred.shape[1])
        elif self.multi_label and (y_pred.ndim != 2 or y_pred.shape[1] != self._num_labels):
            raise ValueError(f"AUC: multi_label=True was built for {self._num_labels} labels, so y_pred must have "
                             f"shape (batch, {self._num_labels}), but received shape {y_pred.shape}")
        if self._from_logits:
            y_pred = B.divide(1.0, B.add(1.0, B.exp(B.negative(B.astype(y_pred, self.variable_dtype, copy=False)))))
        counts = update_confusion_matrix(y_true, y_pred, self._thresholds, dtype=self.variable_dtype,
                                         sample_weight=sample_weight, multi_label=self.multi_label,
                                         label_weights=None if self.multi_label else self.label_weights,
                                         thresholds_distributed_evenly=self._thresholds_distributed_evenly,
                                         owner="AUC")
        for name, count in zip(_AUC_COUNTS, _COUNTS):
            self._accumulate(name, counts[count])

    def _average_labels(self, per_threshold_terms):
        if not self.multi_label:
            return self._result(B.sum(per_threshold_terms))
        by_label = B.sum(per_threshold_terms, axis=0)
        if self.label_weights is None:
            return self._result(B.mean(by_label))
        return self._result(divide_no_nan(B.sum(B.multiply(by_label, self.label_weights)), B.sum(self.label_weights)))

    def interpolate_pr_auc(self):
        """PR-AUC by Davis & Goadrich's interpolation: tp and the predicted positives p = tp + fp vary linearly
        between adjacent thresholds, so each interval's area is slope * (dtp + intercept * log(p_a / p_b)) / (tp + fn)."""
        tp, fp, fn = self.true_positives, self.false_positives, self.false_negatives
        dtp = B.subtract(_head(tp), _tail(tp))
        p = B.add(tp, fp)
        dp = B.subtract(_head(p), _tail(p))
        precision_slope = divide_no_nan(dtp, B.maximum(dp, 0))
        intercept = B.subtract(_tail(tp), B.multiply(precision_slope, _tail(p)))
        both_positive = B.logical_and(B.greater(_head(p), 0), B.greater(_tail(p), 0))
        safe_p_ratio = B.where(both_positive, divide_no_nan(_head(p), B.maximum(_tail(p), 0)), 1.0)
        increments = divide_no_nan(B.multiply(precision_slope, B.add(dtp, B.multiply(intercept, B.log(safe_p_ratio)))),
                                   B.maximum(B.add(_tail(tp), _tail(fn)), 0))
        return self._average_labels(increments)

    def result(self):
        if self.curve == "PR" and self.summation_method == "interpolation":
            return self.interpolate_pr_auc()
        tp, fp, tn, fn = self.true_positives, self.false_positives, self.true_negatives, self.false_negatives
        recall = divide_no_nan(tp, B.add(tp, fn))
        if self.curve == "ROC":
            x, y = divide_no_nan(fp, B.add(fp, tn)), recall
        elif self.curve == "PR":
            x, y = recall, divide_no_nan(tp, B.add(tp, fp))
        else:  # PRGAIN, with Keras's fixes for no true positives (recall gain 0, precision gain 1) and negatives
            scaling = divide_no_nan(B.add(tp, fn), B.add(tn, fp))
            recall_gain = B.subtract(1.0, B.multiply(scaling, divide_no_nan(fn, tp)))
            precision_gain = B.subtract(1.0, B.multiply(scaling, divide_no_nan(fp, tp)))
            no_true_positives = B.equal(tp, 0)
            recall_gain = B.maximum(B.where(no_true_positives, 0.0, recall_gain), 0.0)
            x, y = recall_gain, B.where(no_true_positives, 1.0, precision_gain)
        if self.summation_method == "interpolation":
            heights = B.divide(B.add(_head(y), _tail(y)), 2.0)
        elif self.summation_method == "minoring":
            heights = B.minimum(_head(y), _tail(y))
        else:
            heights = B.maximum(_head(y), _tail(y))
        return self._average_labels(B.multiply(B.subtract(_head(x), _tail(x)), heights))

    def get_config(self):
        config = {**super().get_config(), "num_thresholds": self.num_thresholds, "curve": self.curve,
                  "summation_method": self.summation_method, "multi_label": self.multi_label,
                  "num_labels": self.num_labels,
                  "label_weights": None if self.label_weights is None else B.tolist(self.label_weights),
                  "from_logits": self._from_logits}
        if self._init_from_thresholds:
            config["thresholds"] = [float(t) for t in self._thresholds[1:-1]]
        return config
