"""Keras's ``MeanMetricWrapper`` metrics: the running mean of a per-sample function (accuracies, regression errors,
crossentropies, hinges, correlations), with Keras's signatures, default names and config keys."""
from __future__ import annotations

from fastnn import backend as B
from fastnn import losses as _losses
from fastnn.metrics import functions as F
from fastnn.metrics.base import Mean, MeanMetricWrapper, Metric, squeeze_or_expand_to_same_rank, to_buffer


class _Wrapper(MeanMetricWrapper):
    """A MeanMetricWrapper whose config is Keras's: name, dtype and the class's own arguments (not ``fn``)."""

    _config_keys = ()

    def get_config(self):
        return {**Metric.get_config(self), **{k: getattr(self, k) for k in self._config_keys}}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


# -- accuracy ---------------------------------------------------------------------------------------------------
class Accuracy(_Wrapper):
    """How often ``y_pred`` equals ``y_true``."""

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(F.accuracy, name=name, dtype=dtype)


class BinaryAccuracy(_Wrapper):
    """How often ``y_pred > threshold`` equals the binary ``y_true``."""
    _config_keys = ("threshold",)

    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        self.threshold = threshold
        super().__init__(F.binary_accuracy, name=name, dtype=dtype, threshold=threshold)


class CategoricalAccuracy(_Wrapper):
    """How often the arg-max of ``y_pred`` equals the arg-max of the one-hot ``y_true``."""

    def __init__(self, name="categorical_accuracy", dtype=None):
        super().__init__(F.categorical_accuracy, name=name, dtype=dtype)


class SparseCategoricalAccuracy(_Wrapper):
    """How often the arg-max of ``y_pred`` equals the integer label ``y_true``."""

    def __init__(self, name="sparse_categorical_accuracy", dtype=None):
        super().__init__(F.sparse_categorical_accuracy, name=name, dtype=dtype)


class TopKCategoricalAccuracy(_Wrapper):
    """How often the one-hot target is among the ``k`` highest predictions."""
    _config_keys = ("k",)

    def __init__(self, k=5, name="top_k_categorical_accuracy", dtype=None):
        self.k = k
        super().__init__(F.top_k_categorical_accuracy, name=name, dtype=dtype, k=k)


class SparseTopKCategoricalAccuracy(_Wrapper):
    """How often the integer target is among the ``k`` highest predictions (or, with ``from_sorted_ids``, among
    the first ``k`` entries of ``y_pred``, which then holds class ids sorted by score)."""

    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy", dtype=None, from_sorted_ids=False):
        self.k = k
        self.from_sorted_ids = from_sorted_ids
        super().__init__(F.sparse_top_k_categorical_accuracy, name=name, dtype=dtype, k=k,
                         from_sorted_ids=from_sorted_ids)

    def get_config(self):
        config = {**Metric.get_config(self), "k": self.k}
        if self.from_sorted_ids:  # as Keras: written only when set
            config["from_sorted_ids"] = True
        return config


# -- regression -------------------------------------------------------------------------------------------------
class MeanSquaredError(_Wrapper):
    """The running mean of ``mean_squared_error``."""

    def __init__(self, name="mean_squared_error", dtype=None):
        super().__init__(_losses.mean_squared_error, name=name, dtype=dtype)


class MeanAbsoluteError(_Wrapper):
    """The running mean of ``mean_absolute_error``."""

    def __init__(self, name="mean_absolute_error", dtype=None):
        super().__init__(_losses.mean_absolute_error, name=name, dtype=dtype)


class MeanAbsolutePercentageError(_Wrapper):
    """The running mean of ``mean_absolute_percentage_error``."""

    def __init__(self, name="mean_absolute_percentage_error", dtype=None):
        super().__init__(_losses.mean_absolute_percentage_error, name=name, dtype=dtype)


class MeanSquaredLogarithmicError(_Wrapper):
    """The running mean of ``mean_squared_logarithmic_error``."""

    def __init__(self, name="mean_squared_logarithmic_error", dtype=None):
        super().__init__(_losses.mean_squared_logarithmic_error, name=name, dtype=dtype)


class CosineSimilarity(_Wrapper):
    """The running mean of the cosine similarity along ``axis`` (1 for identical directions). As in Keras, the
    config holds only name and dtype."""

    def __init__(self, name="cosine_similarity", dtype=None, axis=-1):
        super().__init__(F.cosine_similarity, name=name, dtype=dtype, axis=axis)


class LogCoshError(_Wrapper):
    """The running mean of ``log_cosh`` (Keras's default name is "logcosh")."""

    def __init__(self, name="logcosh", dtype=None):
        super().__init__(_losses.log_cosh, name=name, dtype=dtype)


class RootMeanSquaredError(Mean):
    """sqrt of the running mean of the per-sample mean squared errors."""

    def __init__(self, name="root_mean_squared_error", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = to_buffer(y_true, "float64")
        y_pred = to_buffer(y_pred, "float64")
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        super().update_state(B.square(B.subtract(y_pred, y_true)), sample_weight)

    def result(self):
        count = self.count
        return self._result(B.sqrt(B.divide(self.total, count)) if B.item(count) else 0.0)


# -- probabilistic ----------------------------------------------------------------------------------------------
class BinaryCrossentropy(_Wrapper):
    """The running mean of ``binary_crossentropy``."""
    _config_keys = ("from_logits", "label_smoothing")

    def __init__(self, name="binary_crossentropy", dtype=None, from_logits=False, label_smoothing=0):
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing
        super().__init__(_losses.binary_crossentropy, name=name, dtype=dtype, from_logits=from_logits,
                         label_smoothing=label_smoothing)


class CategoricalCrossentropy(_Wrapper):
    """The running mean of ``categorical_crossentropy``."""
    _config_keys = ("from_logits", "label_smoothing", "axis")

    def __init__(self, name="categorical_crossentropy", dtype=None, from_logits=False, label_smoothing=0, axis=-1):
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing
        self.axis = axis
        super().__init__(_losses.categorical_crossentropy, name=name, dtype=dtype, from_logits=from_logits,
                         label_smoothing=label_smoothing, axis=axis)


class SparseCategoricalCrossentropy(_Wrapper):
    """The running mean of ``sparse_categorical_crossentropy``."""
    _config_keys = ("from_logits", "ignore_class", "axis")

    def __init__(self, name="sparse_categorical_crossentropy", dtype=None, from_logits=False, ignore_class=None,
                 axis=-1):
        self.from_logits = from_logits
        self.ignore_class = ignore_class
        self.axis = axis
        super().__init__(_losses.sparse_categorical_crossentropy, name=name, dtype=dtype, from_logits=from_logits,
                         ignore_class=ignore_class, axis=axis)

    def update_state(self, y_true, y_pred, sample_weight=None):
        if self.ignore_class is not None and sample_weight is not None:
            # Keras's loss masks the ignored samples, and its Mean applies that mask to sample weights only: weighted,
            # the ignored samples drop out of the count; unweighted, they count with a loss of 0.
            labels = to_buffer(y_true)
            if labels.ndim == to_buffer(y_pred).ndim and labels.shape[-1] == 1:
                labels = B.squeeze(labels, -1)
            valid = B.astype(B.not_equal(labels, self.ignore_class), "float64")
            valid, sample_weight = squeeze_or_expand_to_same_rank(valid, to_buffer(sample_weight, "float64"))
            sample_weight = B.multiply(sample_weight, valid)
        super().update_state(y_true, y_pred, sample_weight)


class KLDivergence(_Wrapper):
    """The running mean of ``kl_divergence``."""

    def __init__(self, name="kl_divergence", dtype=None):
        super().__init__(_losses.kl_divergence, name=name, dtype=dtype)


class Poisson(_Wrapper):
    """The running mean of ``poisson``."""

    def __init__(self, name="poisson", dtype=None):
        super().__init__(_losses.poisson, name=name, dtype=dtype)


# -- hinge ------------------------------------------------------------------------------------------------------
class Hinge(_Wrapper):
    """The running mean of ``hinge``."""

    def __init__(self, name="hinge", dtype=None):
        super().__init__(_losses.hinge, name=name, dtype=dtype)


class SquaredHinge(_Wrapper):
    """The running mean of ``squared_hinge``."""

    def __init__(self, name="squared_hinge", dtype=None):
        super().__init__(_losses.squared_hinge, name=name, dtype=dtype)


class CategoricalHinge(_Wrapper):
    """The running mean of ``categorical_hinge``: max(0, 1 + max((1 - y_true) * y_pred) - sum(y_true * y_pred))."""

    def __init__(self, name="categorical_hinge", dtype=None):
        super().__init__(F.categorical_hinge, name=name, dtype=dtype)


# -- correlation ------------------------------------------------------------------------------------------------
class PearsonCorrelation(_Wrapper):
    """The running mean of Pearson's correlation coefficient along ``axis`` (per sample for ``axis=-1``)."""
    _config_keys = ("axis",)

    def __init__(self, name="pearson_correlation", dtype=None, axis=-1):
        self.axis = axis
        super().__init__(F.pearson_correlation, name=name, dtype=dtype, axis=axis)


class ConcordanceCorrelation(_Wrapper):
    """The running mean of Lin's concordance correlation coefficient along ``axis``."""
    _config_keys = ("axis",)

    def __init__(self, name="concordance_correlation", dtype=None, axis=-1):
        self.axis = axis
        super().__init__(F.concordance_correlation, name=name, dtype=dtype, axis=axis)
