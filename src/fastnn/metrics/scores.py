"""FBetaScore / F1Score and R2Score with Keras 3's formulas (keras.src.metrics.f_score_metrics,
regression_metrics.R2Score)."""
from __future__ import annotations

import warnings

import numpy as np

from fastnn.metrics.base import EPSILON, Metric, squeeze_or_expand_to_same_rank, to_numpy


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

    def reset_state(self):
        self.true_positives = self.false_positives = self.false_negatives = self.intermediate_weights = 0.0

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = to_numpy(y_true, self.dtype)
        y_pred = to_numpy(y_pred, self.dtype)
        _check_2d(type(self).__name__, y_true, y_pred)
        if self.threshold is None:
            row_max = np.max(y_pred, axis=-1, keepdims=True)
            predicted = (y_pred >= row_max) & (np.abs(y_pred) > 1e-9)
        else:
            predicted = y_pred > self.threshold
        predicted = predicted.astype("float64")
        y_true = y_true.astype("float64")
        weights = None if sample_weight is None else to_numpy(sample_weight, "float64")

        def weighted_sum(values):
            if weights is not None:
                values = values * np.expand_dims(weights, 1)
            return np.sum(values, axis=self.axis)

        self.true_positives = self.true_positives + weighted_sum(predicted * y_true)
        self.false_positives = self.false_positives + weighted_sum(predicted * (1 - y_true))
        self.false_negatives = self.false_negatives + weighted_sum((1 - predicted) * y_true)
        self.intermediate_weights = self.intermediate_weights + weighted_sum(y_true)
        self._built = True

    def result(self):
        tp, fp, fn = (np.asarray(v, dtype="float64") for v in (self.true_positives, self.false_positives,
                                                                self.false_negatives))
        precision = tp / (tp + fp + EPSILON)
        recall = tp / (tp + fn + EPSILON)
        beta_squared = self.beta ** 2
        score = precision * recall / (beta_squared * precision + recall + EPSILON) * (1 + beta_squared)
        if self.average == "weighted":
            weights = np.asarray(self.intermediate_weights, dtype="float64")
            score = np.sum(score * weights / (np.sum(weights) + EPSILON))
        elif self.average is not None:  # micro, macro
            score = np.mean(score)
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

    def reset_state(self):
        # The per-column state gets its shape from the first batch; a reset keeps it (so a result after a reset is
        # nan, as in Keras).
        columns = getattr(self, "_num_columns", None)
        self.num_samples = 0
        self.sum, self.squared_sum, self.total_mse, self.count = (
            np.zeros(columns) if columns else 0.0 for _ in range(4))

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = to_numpy(y_true, self.dtype).astype("float64")  # Keras converts the inputs to the dtype
        y_pred = to_numpy(y_pred, self.dtype).astype("float64")
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        _check_2d("R2Score", y_true, y_pred)
        if getattr(self, "_num_columns", None) is None:
            self._num_columns = y_pred.shape[-1]
        elif y_pred.shape[-1] != self._num_columns:
            raise ValueError(f"R2Score: y_pred has {y_pred.shape[-1]} columns, but the metric was built for "
                             f"{self._num_columns}")
        weights = np.asarray(1.0) if sample_weight is None else to_numpy(sample_weight, "float64")
        if weights.ndim == 1:
            weights = weights[:, None]  # a features axis
        weights = np.broadcast_to(weights, y_true.shape)
        weighted_y_true = y_true * weights
        self.sum = self.sum + np.sum(weighted_y_true, axis=0)
        self.squared_sum = self.squared_sum + np.sum(y_true * weighted_y_true, axis=0)
        self.total_mse = self.total_mse + np.sum((y_true - y_pred) ** 2 * weights, axis=0)
        self.count = self.count + np.sum(weights, axis=0)
        self.num_samples += y_true.size  # as Keras: every element, not every row

    def result(self):
        if getattr(self, "_num_columns", None) is None:
            raise ValueError("R2Score: result() needs at least one update_state() call first (the number of output "
                             "columns is taken from the first batch)")
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = self.sum / self.count
            total = self.squared_sum - self.sum * mean
            raw_scores = 1 - self.total_mse / total
        raw_scores = np.where(np.isinf(raw_scores), 0.0, raw_scores)
        if self.class_aggregation == "uniform_average":
            score = np.mean(raw_scores)
        elif self.class_aggregation == "variance_weighted_average":
            score = np.sum(total * raw_scores) / np.sum(total)
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
                score = 1.0 - (1.0 - score) * (n - 1.0) / (n - p - 1.0)
        return self._result(score)

    def get_config(self):
        return {**super().get_config(), "class_aggregation": self.class_aggregation,
                "num_regressors": self.num_regressors}
