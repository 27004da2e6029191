"""FBetaScore / F1Score and R2Score with Keras 3's formulas (keras.src.metrics.f_score_metrics,
regression_metrics.R2Score)."""
from __future__ import annotations

import warnings

from fastnn import backend as B
from fastnn.metrics.base import EPSILON, Metric, StateBuffer, squeeze_or_expand_to_same_rank, to_buffer

_F_COUNTS = ("true_positives", "false_positives", "false_negatives", "intermediate_weights")


def _check_2d(owner, y_true, y_pred):
    if y_pred.ndim != 2 or y_true.ndim != 2:
        raise ValueError(f"{owner} expects 2D inputs with shape (batch_size, output_dim). Received input shapes: "
                         f"y_pred.shape={y_pred.shape} and y_true.shape={y_true.shape}.")


class FBetaScore(Metric):
    """The F-beta score, (1 + beta^2) * precision * recall / (beta^2 * precision + recall), per class or averaged.

    Args:
        average: None (one score per class), "micro" (from the counts pooled over classes), "macro" (the mean of
            the class scores) or "weighted" (the class scores weighted by each class's (weighted) label count).
        beta: a float > 0, the weight of recall relative to precision.
        threshold: predictions above it count as positive; None: the highest prediction of each row counts as
            positive (several on ties), as Keras.
    """

    def __init__(self, average=None, beta=1.0, threshold=None, name="fbeta_score", dtype=None):
        owner = type(self).__name__
        if average not in (None, "micro", "macro", "weighted"):
            raise ValueError(f"{owner}: invalid `average` argument value. Expected one of: "
                             f"{{None, 'micro', 'macro', 'weighted'}}. Received: average={average!r}")
        if not isinstance(beta, float):
            raise ValueError(f"{owner}: invalid `beta` argument value. It should be a Python float. "
                             f"Received: beta={beta!r} of type '{type(beta)}'")
        if beta <= 0.0:
            raise ValueError(f"{owner}: invalid `beta` argument value. It should be > 0. Received: beta={beta}")
        if threshold is not None:
            if not isinstance(threshold, float):
                raise ValueError(f"{owner}: invalid `threshold` argument value. It should be a Python float. "
                                 f"Received: threshold={threshold!r} of type '{type(threshold)}'")
            if threshold > 1.0 or threshold <= 0.0:
                raise ValueError(f"{owner}: invalid `threshold` argument value. It should verify "
                                 f"0 < threshold <= 1. Received: threshold={threshold}")
        self.average = average
        self.beta = beta
        self.threshold = threshold
        self.axis = None if average == "micro" else 0
        self._built = False
        super().__init__(name=name, dtype=dtype)

    true_positives = StateBuffer()
    false_positives = StateBuffer()
    false_negatives = StateBuffer()
    intermediate_weights = StateBuffer()

    def reset_state(self):
        # Per-class counts take their shape from the first batch (as Keras builds them); a reset keeps it.
        shape = self.true_positives.shape if self._built else ()
        self._reset_states(**{count: shape for count in _F_COUNTS})

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = to_buffer(y_true, self.dtype)
        y_pred = to_buffer(y_pred, self.dtype)
        _check_2d(type(self).__name__, y_true, y_pred)
        if self.threshold is None:
            row_max = B.max(y_pred, axis=-1, keepdims=True)
            predicted = B.logical_and(B.greater_equal(y_pred, row_max), B.greater(B.abs(y_pred), 1e-9))
        else:
            predicted = B.greater(y_pred, self.threshold)
        predicted = B.astype(predicted, "float64")
        y_true = B.astype(y_true, "float64")
        weights = None if sample_weight is None else B.expand_dims(to_buffer(sample_weight, "float64"), 1)

        def weighted_sum(values):
            if weights is not None:
                values = B.multiply(values, weights)
            return B.sum(values, axis=self.axis)

        sums = {"true_positives": weighted_sum(B.multiply(predicted, y_true)),
                "false_positives": weighted_sum(B.multiply(predicted, B.subtract(1, y_true))),
                "false_negatives": weighted_sum(B.multiply(B.subtract(1, predicted), y_true)),
                "intermediate_weights": weighted_sum(y_true)}
        if not self._built:
            self._reset_states(**{count: sums[count].shape for count in _F_COUNTS})
            self._built = True
        for count in _F_COUNTS:
            self._accumulate(count, sums[count])

    def result(self):
        tp, fp, fn = self.true_positives, self.false_positives, self.false_negatives
        precision = B.divide(tp, B.add(B.add(tp, fp), EPSILON))
        recall = B.divide(tp, B.add(B.add(tp, fn), EPSILON))
        beta_squared = self.beta ** 2
        score = B.multiply(B.divide(B.multiply(precision, recall),
                                    B.add(B.add(B.multiply(beta_squared, precision), recall), EPSILON)),
                           1 + beta_squared)
        if self.average == "weighted":
            weights = self.intermediate_weights
            score = B.sum(B.divide(B.multiply(score, weights), B.add(B.sum(weights), EPSILON)))
        elif self.average is not None:  # micro, macro
            score = B.mean(score)
        return self._result(score)

    def get_config(self):
        return {**super().get_config(), "average": self.average, "beta": self.beta, "threshold": self.threshold}


class F1Score(FBetaScore):
    """The F1 score: the harmonic mean of precision and recall (FBetaScore with beta = 1)."""

    def __init__(self, average=None, threshold=None, name="f1_score", dtype=None):
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name, dtype=dtype)

    def get_config(self):
        config = super().get_config()
        del config["beta"]
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**{k: v for k, v in config.items() if k != "beta"})


class R2Score(Metric):
    """The coefficient of determination, 1 - sum of squared residuals / total sum of squares, per output column.

    Args:
        class_aggregation: "uniform_average" (default: the mean over columns), "variance_weighted_average" (weighted
            by each column's variance) or None (one score per column).
        num_regressors: the number of independent regressors for the adjusted R2 (0: plain R2).
    """

    _variable_dtype = "float32"  # as Keras: floatx variables whatever the dtype

    def __init__(self, class_aggregation="uniform_average", num_regressors=0, name="r2_score", dtype=None):
        valid = (None, "uniform_average", "variance_weighted_average")
        if class_aggregation not in valid:
            raise ValueError(f"R2Score: invalid value for argument `class_aggregation`. Expected one of {valid}. "
                             f"Received: class_aggregation={class_aggregation!r}")
        if num_regressors < 0:
            raise ValueError(f"R2Score: invalid value for argument `num_regressors`. Expected a value >= 0. "
                             f"Received: num_regressors={num_regressors}")
        self.class_aggregation = class_aggregation
        self.num_regressors = num_regressors
        super().__init__(name=name, dtype=dtype)

    sum = StateBuffer()
    squared_sum = StateBuffer()
    total_mse = StateBuffer()
    count = StateBuffer()

    def reset_state(self):
        # The per-column state gets its shape from the first batch; a reset keeps it (so a result after a reset is
        # nan, as in Keras).
        columns = getattr(self, "_num_columns", None)
        self.num_samples = 0  # a count of elements, known from the shapes (host metadata)
        shape = (columns,) if columns else ()
        self._reset_states(sum=shape, squared_sum=shape, total_mse=shape, count=shape)

    def update_state(self, y_true, y_pred, sample_weight=None):
        # Keras converts the inputs to the dtype
        y_true = B.astype(to_buffer(y_true, self.dtype), "float64")
        y_pred = B.astype(to_buffer(y_pred, self.dtype), "float64")
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        _check_2d("R2Score", y_true, y_pred)
        if getattr(self, "_num_columns", None) is None:
            self._num_columns = y_pred.shape[-1]
            self.reset_state()
        elif y_pred.shape[-1] != self._num_columns:
            raise ValueError(f"R2Score: y_pred has {y_pred.shape[-1]} columns, but the metric was built for "
                             f"{self._num_columns}")
        weights = B.asarray(1.0) if sample_weight is None else to_buffer(sample_weight, "float64")
        if weights.ndim == 1:
            weights = B.expand_dims(weights, 1)  # a features axis
        weights = B.broadcast_to(weights, y_true.shape)
        weighted_y_true = B.multiply(y_true, weights)
        self._accumulate("sum", B.sum(weighted_y_true, axis=0))
        self._accumulate("squared_sum", B.sum(B.multiply(y_true, weighted_y_true), axis=0))
        self._accumulate("total_mse", B.sum(B.multiply(B.square(B.subtract(y_true, y_pred)), weights), axis=0))
        self._accumulate("count", B.sum(weights, axis=0))
        self.num_samples += y_true.size  # as Keras: every element, not every row

    def result(self):
        if getattr(self, "_num_columns", None) is None:
            raise ValueError("R2Score: result() needs at least one update_state() call first (the number of output "
                             "columns is taken from the first batch)")
        with B.errstate(divide="ignore", invalid="ignore"):
            mean = B.divide(self.sum, self.count)
            total = B.subtract(self.squared_sum, B.multiply(self.sum, mean))
            raw_scores = B.subtract(1, B.divide(self.total_mse, total))
        raw_scores = B.where(B.isinf(raw_scores), 0.0, raw_scores)
        if self.class_aggregation == "uniform_average":
            score = B.mean(raw_scores)
        elif self.class_aggregation == "variance_weighted_average":
            score = B.divide(B.sum(B.multiply(total, raw_scores)), B.sum(total))
        else:
            score = raw_scores
        if self.num_regressors != 0:
            if self.num_regressors > self.num_samples - 1:
                warnings.warn("More independent predictors than datapoints in adjusted R2 score. Falling back to "
                              "standard R2 score.", stacklevel=2)
            elif self.num_regressors == self.num_samples - 1:
                warnings.warn("Division by zero in Adjusted R2 score. Falling back to standard R2 score.",
                              stacklevel=2)
            else:
                n, p = float(self.num_samples), float(self.num_regressors)
                score = B.subtract(1.0, B.divide(B.multiply(B.subtract(1.0, score), n - 1.0), n - p - 1.0))
        return self._result(score)

    def get_config(self):
        return {**super().get_config(), "class_aggregation": self.class_aggregation,
                "num_regressors": self.num_regressors}
