"""Metrics with Keras 3's names and semantics (``keras.metrics``): stateful objects and per-sample functions.

A metric object accumulates over batches: ``update_state(y_true, y_pred, sample_weight=None)``, ``result()``,
``reset_state()``; calling it updates and returns the result. Running means are weighted by the number of values
(so an epoch's accuracy is the accuracy over every sample seen). Metrics are computed on NumPy values and never
build gradient graphs.

Example:
    >>> m = fastnn.metrics.SparseCategoricalAccuracy()
    >>> m.update_state([1, 0], [[0.1, 0.9], [0.2, 0.8]])
    >>> float(m.result())
    0.5
"""
from __future__ import annotations

import numpy as np

from fastnn import _registry
from fastnn import losses as _losses
from fastnn.autograd import Tensor, no_grad


def _np(x):
    if isinstance(x, Tensor):
        return x.numpy()
    return np.asarray(x)


def _same_rank(a, b):
    """NumPy form of Keras's squeeze_or_expand_to_same_rank."""
    if a.ndim == b.ndim + 1 and a.shape[-1] == 1:
        a = a[..., 0]
    elif b.ndim == a.ndim + 1 and b.shape[-1] == 1:
        b = b[..., 0]
    return a, b


# -- per-sample metric functions ----------------------------------------------------------------------------------
def accuracy(y_true, y_pred):
    t, p = _same_rank(_np(y_true), _np(y_pred))
    return (t == p).astype("float32")


def binary_accuracy(y_true, y_pred, threshold=0.5):
    t, p = _same_rank(_np(y_true), _np(y_pred))
    p = (p > threshold).astype(p.dtype if p.dtype.kind == "f" else "float32")
    return np.mean(t.astype(p.dtype) == p, axis=-1).astype("float32")


def categorical_accuracy(y_true, y_pred):
    t, p = _np(y_true), _np(y_pred)
    return (np.argmax(t, axis=-1) == np.argmax(p, axis=-1)).astype("float32")


def sparse_categorical_accuracy(y_true, y_pred):
    t, p = _np(y_true), _np(y_pred)
    if t.ndim == p.ndim and t.shape[-1] == 1:
        t = t[..., 0]
    return (t.astype("int64") == np.argmax(p, axis=-1)).astype("float32")


def _in_top_k(labels, p, k):
    k = min(k, p.shape[-1])
    target = np.take_along_axis(p, labels[..., None].astype("int64"), axis=-1)
    # A label is in the top k when fewer than k scores are strictly greater than its own.
    return (np.sum(p > target, axis=-1) < k).astype("float32")


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    t, p = _np(y_true), _np(y_pred)
    return _in_top_k(np.argmax(t, axis=-1), p, k)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5):
    t, p = _np(y_true), _np(y_pred)
    if t.ndim == p.ndim and t.shape[-1] == 1:
        t = t[..., 0]
    return _in_top_k(t, p, k)


# -- base classes -------------------------------------------------------------------------------------------------
class Metric:
    """Base class of stateful metrics."""

    def __init__(self, name=None, dtype=None):
        self.name = name or _losses._snake(type(self).__name__)
        self.dtype = dtype or "float32"
        self.reset_state()

    def reset_state(self):
        pass

    def update_state(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError

    def result(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


def _weights_like(values, sample_weight):
    sw = _np(sample_weight).astype("float64")
    if sw.ndim > values.ndim and sw.shape[-1] == 1:
        sw = sw.reshape(sw.shape[:-1])
    while sw.ndim < values.ndim:
        sw = sw[..., None]
    return np.broadcast_to(sw, values.shape)


class Mean(Metric):
    """The (weighted) mean of every value passed to ``update_state(values, sample_weight=None)``."""

    def reset_state(self):
        self.total = 0.0
        self.count = 0.0

    def update_state(self, values, sample_weight=None):
        v = _np(values).astype("float64")
        if sample_weight is None:
            self.total += float(np.sum(v))
            self.count += float(v.size)
        else:
            sw = _weights_like(v, sample_weight)
            self.total += float(np.sum(v * sw))
            self.count += float(np.sum(sw))

    def result(self):
        return np.float32(self.total / self.count) if self.count else np.float32(0.0)


class Sum(Metric):
    def reset_state(self):
        self.total = 0.0

    def update_state(self, values, sample_weight=None):
        v = _np(values).astype("float64")
        self.total += float(np.sum(v if sample_weight is None else v * _weights_like(v, sample_weight)))

    def result(self):
        return np.float32(self.total)


class MeanMetricWrapper(Mean):
    """A Mean over the per-sample values of ``fn(y_true, y_pred, **kwargs)``."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        self._fn = fn
        self._fn_kwargs = kwargs
        super().__init__(name=name or getattr(fn, "__name__", "metric"), dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        with no_grad():
            values = _np(self._fn(y_true, y_pred, **self._fn_kwargs))
        super().update_state(values, sample_weight)

    def get_config(self):
        config = super().get_config()
        config.update(self._fn_kwargs)
        return config


def _wrapper_class(cls_name, fn, default_name, params=()):
    def __init__(self, *args, name=default_name, dtype=None, **kwargs):
        kw = dict(params)
        for n, a in zip(list(kw), args):
            kw[n] = a
        for k, v in kwargs.items():
            if k not in kw:
                raise TypeError(f"{cls_name}: unexpected argument {k!r}")
            kw[k] = v
        MeanMetricWrapper.__init__(self, fn, name=name, dtype=dtype, **kw)

    return type(cls_name, (MeanMetricWrapper,), {"__init__": __init__, "__doc__": f"Running mean of `{default_name}`."})


Accuracy = _wrapper_class("Accuracy", accuracy, "accuracy")
BinaryAccuracy = _wrapper_class("BinaryAccuracy", binary_accuracy, "binary_accuracy", {"threshold": 0.5})
CategoricalAccuracy = _wrapper_class("CategoricalAccuracy", categorical_accuracy, "categorical_accuracy")
SparseCategoricalAccuracy = _wrapper_class("SparseCategoricalAccuracy", sparse_categorical_accuracy,
                                           "sparse_categorical_accuracy")
TopKCategoricalAccuracy = _wrapper_class("TopKCategoricalAccuracy", top_k_categorical_accuracy,
                                         "top_k_categorical_accuracy", {"k": 5})
SparseTopKCategoricalAccuracy = _wrapper_class("SparseTopKCategoricalAccuracy", sparse_top_k_categorical_accuracy,
                                               "sparse_top_k_categorical_accuracy", {"k": 5})
MeanSquaredError = _wrapper_class("MeanSquaredError", _losses.mean_squared_error, "mean_squared_error")
MeanAbsoluteError = _wrapper_class("MeanAbsoluteError", _losses.mean_absolute_error, "mean_absolute_error")
MeanAbsolutePercentageError = _wrapper_class("MeanAbsolutePercentageError", _losses.mean_absolute_percentage_error,
                                             "mean_absolute_percentage_error")
MeanSquaredLogarithmicError = _wrapper_class("MeanSquaredLogarithmicError", _losses.mean_squared_logarithmic_error,
                                             "mean_squared_logarithmic_error")
BinaryCrossentropy = _wrapper_class("BinaryCrossentropy", _losses.binary_crossentropy, "binary_crossentropy",
                                    {"from_logits": False, "label_smoothing": 0.0})
CategoricalCrossentropy = _wrapper_class("CategoricalCrossentropy", _losses.categorical_crossentropy,
                                         "categorical_crossentropy", {"from_logits": False, "label_smoothing": 0.0})
SparseCategoricalCrossentropy = _wrapper_class("SparseCategoricalCrossentropy", _losses.sparse_categorical_crossentropy,
                                               "sparse_categorical_crossentropy", {"from_logits": False})
KLDivergence = _wrapper_class("KLDivergence", _losses.kl_divergence, "kl_divergence")
Hinge = _wrapper_class("Hinge", _losses.hinge, "hinge")
SquaredHinge = _wrapper_class("SquaredHinge", _losses.squared_hinge, "squared_hinge")
Poisson = _wrapper_class("Poisson", _losses.poisson, "poisson")
LogCoshError = _wrapper_class("LogCoshError", _losses.log_cosh, "logcosh")


class CosineSimilarity(MeanMetricWrapper):
    """Running mean of the cosine similarity (positive: 1 for identical directions)."""

    def __init__(self, name="cosine_similarity", dtype=None, axis=-1):
        def cos(y_true, y_pred, axis=-1):
            return _losses.cosine_similarity(y_true, y_pred, axis=axis) * -1.0

        MeanMetricWrapper.__init__(self, cos, name=name, dtype=dtype, axis=axis)


class RootMeanSquaredError(Mean):
    """sqrt of the running mean of squared errors (over every element)."""

    def __init__(self, name="root_mean_squared_error", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        t, p = _same_rank(_np(y_true), _np(y_pred))
        super().update_state(np.square(p.astype("float64") - t), sample_weight)

    def result(self):
        return np.float32(np.sqrt(self.total / self.count)) if self.count else np.float32(0.0)


class _Confusion(Metric):
    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        if top_k is not None:
            raise ValueError(f"{type(self).__name__}: top_k is not supported by fastnn yet")
        if thresholds is not None and not isinstance(thresholds, (int, float, np.floating)):
            raise ValueError(f"{type(self).__name__}: only one scalar threshold is supported by fastnn yet, but "
                             f"received thresholds={thresholds!r}")
        self.thresholds = 0.5 if thresholds is None else float(thresholds)
        self.class_id = class_id
        super().__init__(name=name, dtype=dtype)

    def reset_state(self):
        self.tp = self.fp = self.fn = self.tn = 0.0

    def update_state(self, y_true, y_pred, sample_weight=None):
        t, p = _same_rank(_np(y_true), _np(y_pred))
        if self.class_id is not None:
            t, p = t[..., self.class_id], p[..., self.class_id]
        pos = p > self.thresholds
        truth = t.astype(bool)
        w = np.ones(p.shape) if sample_weight is None else _weights_like(p.astype("float64"), sample_weight)
        self.tp += float(np.sum(w * (pos & truth)))
        self.fp += float(np.sum(w * (pos & ~truth)))
        self.fn += float(np.sum(w * (~pos & truth)))
        self.tn += float(np.sum(w * (~pos & ~truth)))

    def get_config(self):
        config = super().get_config()
        config.update({"thresholds": self.thresholds, "class_id": self.class_id})
        return config


class Precision(_Confusion):
    """tp / (tp + fp) with predictions above ``thresholds`` (0.5) counted as positive."""

    def __init__(self, thresholds=None, top_k=None, class_id=None, name="precision", dtype=None):
        super().__init__(thresholds, top_k, class_id, name, dtype)

    def result(self):
        d = self.tp + self.fp
        return np.float32(self.tp / d if d else 0.0)


class Recall(_Confusion):
    """tp / (tp + fn) with predictions above ``thresholds`` (0.5) counted as positive."""

    def __init__(self, thresholds=None, top_k=None, class_id=None, name="recall", dtype=None):
        super().__init__(thresholds, top_k, class_id, name, dtype)

    def result(self):
        d = self.tp + self.fn
        return np.float32(self.tp / d if d else 0.0)


class AUC(Metric):
    """Area under the ROC (or PR) curve, from confusion counts at ``num_thresholds`` thresholds (as Keras:
    thresholds i / (n - 1), the ends nudged by 1e-7), trapezoidal summation."""

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation", name="auc", dtype=None,
                 thresholds=None, multi_label=False, num_labels=None, label_weights=None, from_logits=False):
        if num_thresholds <= 1:
            raise ValueError(f"AUC: num_thresholds must be > 1, but received {num_thresholds}")
        if curve not in ("ROC", "PR"):
            raise ValueError(f"AUC: curve must be 'ROC' or 'PR', but received {curve!r}")
        self.num_thresholds = int(num_thresholds)
        self.curve = curve
        self.summation_method = summation_method
        self.from_logits = from_logits
        eps = 1e-7
        inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        self._thresholds = np.array([0.0 - eps] + inner + [1.0 + eps])
        super().__init__(name=name, dtype=dtype)

    def reset_state(self):
        n = self.num_thresholds
        self.tp, self.fp, self.fn, self.tn = (np.zeros(n) for _ in range(4))

    def update_state(self, y_true, y_pred, sample_weight=None):
        t, p = _same_rank(_np(y_true), _np(y_pred))
        p = p.astype("float64").reshape(-1)
        if self.from_logits:
            p = 1.0 / (1.0 + np.exp(-p))
        truth = t.reshape(-1).astype(bool)
        w = np.ones_like(p) if sample_weight is None else _weights_like(_np(y_pred).astype("float64"),
                                                                         sample_weight).reshape(-1)
        pos = p[None, :] > self._thresholds[:, None]
        self.tp += (pos & truth).astype("float64") @ w
        self.fp += (pos & ~truth).astype("float64") @ w
        self.fn += (~pos & truth).astype("float64") @ w
        self.tn += (~pos & ~truth).astype("float64") @ w

    def result(self):
        with np.errstate(divide="ignore", invalid="ignore"):
            tpr = np.where(self.tp + self.fn > 0, self.tp / (self.tp + self.fn), 0.0)
            if self.curve == "ROC":
                x = np.where(self.fp + self.tn > 0, self.fp / (self.fp + self.tn), 0.0)
                y = tpr
            else:
                x = tpr
                y = np.where(self.tp + self.fp > 0, self.tp / (self.tp + self.fp), 1.0)
        return np.float32(np.sum((x[:-1] - x[1:]) * (y[:-1] + y[1:]) / 2.0))


_CLASSES = {c.__name__: c for c in (
    Mean, Sum, Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy, TopKCategoricalAccuracy,
    SparseTopKCategoricalAccuracy, MeanSquaredError, MeanAbsoluteError, MeanAbsolutePercentageError,
    MeanSquaredLogarithmicError, RootMeanSquaredError, BinaryCrossentropy, CategoricalCrossentropy,
    SparseCategoricalCrossentropy, KLDivergence, Hinge, SquaredHinge, Poisson, LogCoshError, CosineSimilarity,
    Precision, Recall, AUC)}
_FUNCTIONS = {
    "accuracy": accuracy, "binary_accuracy": binary_accuracy, "categorical_accuracy": categorical_accuracy,
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    "top_k_categorical_accuracy": top_k_categorical_accuracy,
    "sparse_top_k_categorical_accuracy": sparse_top_k_categorical_accuracy,
    "mse": _losses.mean_squared_error, "mean_squared_error": _losses.mean_squared_error,
    "mae": _losses.mean_absolute_error, "mean_absolute_error": _losses.mean_absolute_error,
    "mape": _losses.mean_absolute_percentage_error,
    "mean_absolute_percentage_error": _losses.mean_absolute_percentage_error,
    "msle": _losses.mean_squared_logarithmic_error,
    "mean_squared_logarithmic_error": _losses.mean_squared_logarithmic_error,
    "binary_crossentropy": _losses.binary_crossentropy, "categorical_crossentropy": _losses.categorical_crossentropy,
    "sparse_categorical_crossentropy": _losses.sparse_categorical_crossentropy,
    "kl_divergence": _losses.kl_divergence, "hinge": _losses.hinge, "squared_hinge": _losses.squared_hinge,
    "poisson": _losses.poisson, "log_cosh": _losses.log_cosh, "logcosh": _losses.log_cosh,
    "auc": AUC, "precision": Precision, "recall": Recall, "rmse": RootMeanSquaredError,
    "root_mean_squared_error": RootMeanSquaredError,
}
_TABLE = {**_FUNCTIONS, **_CLASSES}


def get(identifier):
    """A metric from a name, config dict, Metric or callable; unknown names raise ValueError listing valid ones."""
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        return _registry.from_dict("metric", _TABLE, identifier)
    if isinstance(identifier, str):
        return _registry.lookup("metric", _TABLE, identifier)
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret metric identifier: {identifier!r}")
