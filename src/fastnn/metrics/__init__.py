"""Metrics with Keras 3's names and semantics (``keras.metrics``): stateful objects and per-sample functions.

A metric object accumulates over batches: ``update_state(y_true, y_pred, sample_weight=None)``, ``result()``,
``reset_state()``; calling it updates and returns the result. Means count each sample once, as Keras's do (an
epoch's accuracy is the accuracy over every sample seen). Metrics without a fixed default name (Precision, Recall,
AUC, the counts, the "X at Y" and IoU metrics) take Keras's automatic names: ``recall``, then ``recall_1``, ...
(``fastnn.utils.clear_session()`` restarts the count). Metrics compute through ``fastnn.backend`` and never build
gradient graphs; their state is in non-trainable Variables (``metric.variables``, float64 sums) and ``result()``
returns a Tensor (the fit loop's logs turn it into a Python float).

``get(identifier)`` resolves strings as ``keras.metrics.get`` does: a class name or its snake-case form
(``"AUC"``, ``"auc"``, ``"cosine_similarity"``, ``"binary_io_u"``) or one of Keras's aliases (``"mse"``, ``"MSE"``,
``"mae"``, ``"mape"``, ``"msle"``, ``"bce"``) gives a new metric object. ``compile`` resolves ``"accuracy"`` /
``"acc"`` from the shapes before that. fastnn also accepts ``"rmse"`` and the loss-function names ``"huber"``,
``"log_cosh"`` / ``"logcosh"``, which Keras does not.

Example:
    >>> m = fastnn.metrics.SparseCategoricalAccuracy()
    >>> m.update_state([1, 0], [[0.1, 0.9], [0.2, 0.8]])
    >>> float(m.result())
    0.5
"""
from __future__ import annotations

from fastnn import _registry
from fastnn import losses as _losses
from fastnn.metrics.base import Mean, MeanMetricWrapper, Metric, Sum
from fastnn.metrics.confusion import (AUC, FalseNegatives, FalsePositives, Precision, PrecisionAtRecall, Recall,
                                      RecallAtPrecision, SensitivityAtSpecificity, SpecificityAtSensitivity,
                                      TrueNegatives, TruePositives)
from fastnn.metrics.functions import (accuracy, binary_accuracy, categorical_accuracy, concordance_correlation,
                                      pearson_correlation, sparse_categorical_accuracy,
                                      sparse_top_k_categorical_accuracy, top_k_categorical_accuracy)
from fastnn.metrics.iou import IoU, BinaryIoU, MeanIoU, OneHotIoU, OneHotMeanIoU
from fastnn.metrics.scores import F1Score, FBetaScore, R2Score
from fastnn.metrics.wrappers import (Accuracy, BinaryAccuracy, BinaryCrossentropy, CategoricalAccuracy,
                                     CategoricalCrossentropy, CategoricalHinge, ConcordanceCorrelation,
                                     CosineSimilarity, Hinge, KLDivergence, LogCoshError, MeanAbsoluteError,
                                     MeanAbsolutePercentageError, MeanSquaredError, MeanSquaredLogarithmicError,
                                     PearsonCorrelation, Poisson, RootMeanSquaredError, SparseCategoricalAccuracy,
                                     SparseCategoricalCrossentropy, SparseTopKCategoricalAccuracy, SquaredHinge,
                                     TopKCategoricalAccuracy)
from fastnn.metrics.base import keras_snake_case as _snake

# The loss functions that keras.metrics re-exports (keras.metrics.mean_squared_error is keras.losses's function).
binary_crossentropy = _losses.binary_crossentropy
categorical_crossentropy = _losses.categorical_crossentropy
sparse_categorical_crossentropy = _losses.sparse_categorical_crossentropy
hinge = _losses.hinge
squared_hinge = _losses.squared_hinge
huber = _losses.huber
kl_divergence = _losses.kl_divergence
log_cosh = _losses.log_cosh
mean_absolute_error = _losses.mean_absolute_error
mean_absolute_percentage_error = _losses.mean_absolute_percentage_error
mean_squared_error = _losses.mean_squared_error
mean_squared_logarithmic_error = _losses.mean_squared_logarithmic_error
poisson = _losses.poisson

# keras.metrics also re-exports these losses; fastnn.losses gains them with issue 9's losses work, so they are
# looked up there when first used (categorical_hinge falls back to the metric's own form until then).
_LATE_LOSS_FUNCTIONS = ("categorical_hinge", "binary_focal_crossentropy", "categorical_focal_crossentropy")


def __getattr__(name):
    if name in _LATE_LOSS_FUNCTIONS:
        fn = getattr(_losses, name, None)
        if fn is None and name == "categorical_hinge":
            from fastnn.metrics.functions import categorical_hinge as fn
        if fn is not None:
            return fn
        raise AttributeError(f"fastnn.metrics.{name} needs fastnn.losses.{name}, which this build does not have")
    raise AttributeError(f"module 'fastnn.metrics' has no attribute {name!r}")


# As keras.src.metrics.ALL_OBJECTS: every class, by its name and by its snake-case name.
ALL_OBJECTS = (
    Metric, Mean, Sum, MeanMetricWrapper,
    MeanSquaredError, RootMeanSquaredError, MeanAbsoluteError, MeanAbsolutePercentageError,
    MeanSquaredLogarithmicError, CosineSimilarity, LogCoshError, R2Score,
    AUC, FalseNegatives, FalsePositives, Precision, PrecisionAtRecall, Recall, RecallAtPrecision,
    SensitivityAtSpecificity, SpecificityAtSensitivity, TrueNegatives, TruePositives,
    ConcordanceCorrelation, PearsonCorrelation,
    Hinge, SquaredHinge, CategoricalHinge,
    KLDivergence, Poisson, BinaryCrossentropy, CategoricalCrossentropy, SparseCategoricalCrossentropy,
    Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy, TopKCategoricalAccuracy,
    SparseTopKCategoricalAccuracy,
    F1Score, FBetaScore,
    IoU, BinaryIoU, MeanIoU, OneHotIoU, OneHotMeanIoU,
)
ALL_OBJECTS_DICT = {cls.__name__: cls for cls in ALL_OBJECTS}
ALL_OBJECTS_DICT.update({_snake(cls.__name__): cls for cls in ALL_OBJECTS})
ALL_OBJECTS_DICT.update({
    "bce": BinaryCrossentropy, "BCE": BinaryCrossentropy,
    "mse": MeanSquaredError, "MSE": MeanSquaredError,
    "mae": MeanAbsoluteError, "MAE": MeanAbsoluteError,
    "mape": MeanAbsolutePercentageError, "MAPE": MeanAbsolutePercentageError,
    "msle": MeanSquaredLogarithmicError, "MSLE": MeanSquaredLogarithmicError,
})
# fastnn's extra names (Keras's get raises for them): kept because fastnn has documented them.
_FASTNN_EXTRAS = {"rmse": RootMeanSquaredError, "huber": huber, "log_cosh": log_cosh, "logcosh": log_cosh}

# The per-sample functions by name, for MeanMetricWrapper configs.
_FUNCTIONS = {fn.__name__: fn for fn in (
    accuracy, binary_accuracy, categorical_accuracy, sparse_categorical_accuracy, top_k_categorical_accuracy,
    sparse_top_k_categorical_accuracy, pearson_correlation, concordance_correlation, binary_crossentropy,
    categorical_crossentropy, sparse_categorical_crossentropy, hinge, squared_hinge, huber, kl_divergence, log_cosh,
    mean_absolute_error, mean_absolute_percentage_error, mean_squared_error, mean_squared_logarithmic_error, poisson)}

_TABLE = {**_FASTNN_EXTRAS, **ALL_OBJECTS_DICT}
_ABSTRACT = (Metric, MeanMetricWrapper)


def get_function(name):
    """The per-sample metric function called ``name`` (for ``MeanMetricWrapper.from_config``)."""
    if name in _FUNCTIONS:
        return _FUNCTIONS[name]
    if name in _LATE_LOSS_FUNCTIONS:
        return __getattr__(name)
    raise ValueError(f"Could not interpret metric function: {name!r}. Valid names are: {', '.join(sorted(_FUNCTIONS))}")


def serialize(metric):
    """``{"class_name": ..., "config": ...}`` for a Metric, the name for a function."""
    return _registry.serialize(metric)


def deserialize(config):
    """A metric from ``serialize``'s output (a config dict or a name)."""
    return get(config)


def get(identifier):
    """A metric from a name, config dict, Metric or callable, as ``keras.metrics.get``: a name of a class gives a
    new instance of it; unknown names raise ValueError listing the valid ones."""
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        return _registry.from_dict("metric", _TABLE, identifier)
    if isinstance(identifier, str):
        obj = _registry.lookup("metric", _TABLE, identifier, instantiate=False)
        if obj in _ABSTRACT:
            raise ValueError(f"Could not interpret metric identifier: {identifier!r} (an abstract class: it needs "
                             "arguments)")
        return obj() if isinstance(obj, type) else obj
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret metric identifier: {identifier!r}")


__all__ = sorted([cls.__name__ for cls in ALL_OBJECTS] + list(_FUNCTIONS) + ["get", "serialize", "deserialize"]
                 + [n for n in _LATE_LOSS_FUNCTIONS if n == "categorical_hinge" or hasattr(_losses, n)])


def __dir__():
    return __all__
