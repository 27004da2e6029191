"""Losses with Keras 3's names, formulas and reduction (``keras.losses``): functions and classes.

A loss function ``fn(y_true, y_pred)`` returns one value per sample (the mean over the last axis for the
elementwise losses). A loss class (``MeanSquaredError()``) is called as ``loss(y_true, y_pred, sample_weight=None)``
and reduces as Keras does: "sum_over_batch_size" = sum(per-sample loss * sample_weight) / number of per-sample values.

Example:
    >>> fastnn.losses.MeanSquaredError()(np.zeros((2, 3)), np.ones((2, 3))).numpy()
    array(1., dtype=float32)
"""
from __future__ import annotations

import math

import numpy as np

from fastnn import _registry
from fastnn.autograd import Tensor
from fastnn.autograd.ops import activation as _act
from fastnn.autograd.ops import elementwise as _ew
from fastnn.autograd.ops import loss as _xent
from fastnn.autograd.ops import reduce as _reduce
from fastnn.autograd.ops import shape as _shape
from fastnn.autograd.ops._util import float_tensor, tensor

EPSILON = 1e-7


def _pair(y_true, y_pred):
    y_pred = float_tensor(y_pred, "loss")
    y_true = tensor(y_true, "loss")
    if y_true.dtype != y_pred.dtype:
        y_true = _shape.cast(y_true, y_pred.dtype)
    return squeeze_or_expand_to_same_rank(y_true, y_pred)


def squeeze_or_expand_to_same_rank(x1, x2, expand_rank_1=True):
    """Keras's rule: when ranks differ by one and the longer has a trailing axis of 1, squeeze it (or expand a
    rank-1 partner)."""
    r1, r2 = len(x1.shape), len(x2.shape)
    if r1 == r2:
        return x1, x2
    if r1 == r2 + 1 and x1.shape[-1] == 1:
        if r2 == 1 and expand_rank_1:
            x2 = _shape.expand_dims(x2, -1)
        else:
            x1 = _shape.squeeze(x1, -1)
    if r2 == r1 + 1 and x2.shape[-1] == 1:
        if r1 == 1 and expand_rank_1:
            x1 = _shape.expand_dims(x1, -1)
        else:
            x2 = _shape.squeeze(x2, -1)
    return x1, x2


def _check_shapes(name, y_true, y_pred):
    if tuple(y_true.shape) != tuple(y_pred.shape):
        try:
            np.broadcast_shapes(tuple(y_true.shape), tuple(y_pred.shape))
        except ValueError:
            raise ValueError(f"{name}: y_true and y_pred have incompatible shapes: y_true.shape={tuple(y_true.shape)}, "
                             f"y_pred.shape={tuple(y_pred.shape)}") from None


# -- functions (per-sample losses) -----------------------------------------------------------------------------
def mean_squared_error(y_true, y_pred):
    y_true, y_pred = _pair(y_true, y_pred)
    _check_shapes("mean_squared_error", y_true, y_pred)
    return _reduce.mean(_ew.square(_ew.subtract(y_true, y_pred)), axis=-1)


def mean_absolute_error(y_true, y_pred):
    y_true, y_pred = _pair(y_true, y_pred)
    _check_shapes("mean_absolute_error", y_true, y_pred)
    return _reduce.mean(_ew.abs(_ew.subtract(y_true, y_pred)), axis=-1)


def mean_absolute_percentage_error(y_true, y_pred):
    y_true, y_pred = _pair(y_true, y_pred)
    diff = _ew.abs(_ew.divide(_ew.subtract(y_true, y_pred), _ew.maximum(_ew.abs(y_true), EPSILON)))
    return _ew.multiply(100.0, _reduce.mean(diff, axis=-1))


def mean_squared_logarithmic_error(y_true, y_pred):
    y_true, y_pred = _pair(y_true, y_pred)
    a = _ew.log(_ew.add(_ew.maximum(y_pred, EPSILON), 1.0))
    b = _ew.log(_ew.add(_ew.maximum(y_true, EPSILON), 1.0))
    return _reduce.mean(_ew.square(_ew.subtract(a, b)), axis=-1)


def huber(y_true, y_pred, delta=1.0):
    y_true, y_pred = _pair(y_true, y_pred)
    err = _ew.subtract(y_pred, y_true)
    abs_err = _ew.abs(err)
    quad = _ew.multiply(0.5, _ew.square(err))
    lin = _ew.subtract(_ew.multiply(delta, abs_err), 0.5 * delta * delta)
    return _reduce.mean(_ew.where(_ew.less_equal(abs_err, delta), quad, lin), axis=-1)


def log_cosh(y_true, y_pred):
    y_true, y_pred = _pair(y_true, y_pred)
    x = _ew.subtract(y_pred, y_true)
    return _reduce.mean(_ew.subtract(_ew.add(x, _act.softplus(_ew.multiply(-2.0, x))), math.log(2.0)), axis=-1)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    y_true, y_pred = _pair(y_true, y_pred)
    if label_smoothing:
        y_true = _ew.add(_ew.multiply(y_true, 1.0 - label_smoothing), 0.5 * label_smoothing)
    return _reduce.mean(_xent.binary_crossentropy(y_true, y_pred, from_logits=from_logits), axis=axis)


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    y_true, y_pred = _pair(y_true, y_pred)
    if tuple(y_true.shape) != tuple(y_pred.shape):
        raise ValueError(f"categorical_crossentropy: arguments `target` and `output` must have the same shape. "
                         f"Received: target.shape={tuple(y_true.shape)}, output.shape={tuple(y_pred.shape)}. "
                         "(Integer labels need sparse_categorical_crossentropy.)")
    if label_smoothing:
        n = y_pred.shape[axis]
        y_true = _ew.add(_ew.multiply(y_true, 1.0 - label_smoothing), label_smoothing / n)
    return _xent.categorical_crossentropy(y_true, y_pred, from_logits=from_logits, axis=axis)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None, axis=-1):
    y_pred = float_tensor(y_pred, "sparse_categorical_crossentropy")
    y_true = tensor(y_true, "sparse_categorical_crossentropy")
    if ignore_class is not None:
        labels = np.asarray(y_true.numpy())
        valid = labels != ignore_class
        safe = np.where(valid, labels, 0)
        losses = _xent.sparse_categorical_crossentropy(safe, y_pred, from_logits=from_logits, axis=axis)
        v = valid.reshape(losses.shape) if valid.size == int(np.prod(losses.shape)) else valid
        return _ew.multiply(losses, v.astype(losses.dtype))
    return _xent.sparse_categorical_crossentropy(y_true, y_pred, from_logits=from_logits, axis=axis)


def kl_divergence(y_true, y_pred):
    y_true, y_pred = _pair(y_true, y_pred)
    t = _ew.clip(y_true, EPSILON, 1.0)
    p = _ew.clip(y_pred, EPSILON, 1.0)
    return _reduce.sum(_ew.multiply(t, _ew.log(_ew.divide(t, p))), axis=-1)


def _hinge_labels(y_true):
    a = y_true.numpy()
    if np.all((a == 0) | (a == 1)):
        return _ew.subtract(_ew.multiply(2.0, y_true), 1.0)
    return y_true


def hinge(y_true, y_pred):
    y_true, y_pred = _pair(y_true, y_pred)
    y_true = _hinge_labels(y_true)
    return _reduce.mean(_ew.maximum(_ew.subtract(1.0, _ew.multiply(y_true, y_pred)), 0.0), axis=-1)


def squared_hinge(y_true, y_pred):
    y_true, y_pred = _pair(y_true, y_pred)
    y_true = _hinge_labels(y_true)
    return _reduce.mean(_ew.square(_ew.maximum(_ew.subtract(1.0, _ew.multiply(y_true, y_pred)), 0.0)), axis=-1)


def poisson(y_true, y_pred):
    y_true, y_pred = _pair(y_true, y_pred)
    return _reduce.mean(_ew.subtract(y_pred, _ew.multiply(y_true, _ew.log(_ew.add(y_pred, EPSILON)))), axis=-1)


def _l2_normalize(x, axis):
    sq = _reduce.sum(_ew.square(x), axis=axis, keepdims=True)
    return _ew.multiply(x, _ew.divide(1.0, _ew.sqrt(_ew.maximum(sq, 1e-12))))


def cosine_similarity(y_true, y_pred, axis=-1):
    y_true, y_pred = _pair(y_true, y_pred)
    return _ew.negative(_reduce.sum(_ew.multiply(_l2_normalize(y_true, axis), _l2_normalize(y_pred, axis)), axis=axis))


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
mape = MAPE = mean_absolute_percentage_error
msle = MSLE = mean_squared_logarithmic_error
kld = KLD = kullback_leibler_divergence = kl_divergence
logcosh = log_cosh


# -- reduction -----------------------------------------------------------------------------------------------------
_REDUCTIONS = ("sum_over_batch_size", "sum", "none", None, "mean", "mean_with_sample_weight")


def reduce_weighted_values(values, sample_weight=None, reduction="sum_over_batch_size"):
    """Keras's reduction of per-sample losses with optional sample weights."""
    values = float_tensor(values, "loss")
    if sample_weight is not None:
        sw = float_tensor(sample_weight, "loss")
        if sw.dtype != values.dtype:
            sw = _shape.cast(sw, values.dtype)
        values, sw = squeeze_or_expand_to_same_rank(values, sw)
        values = _ew.multiply(values, sw)
    if reduction in (None, "none"):
        return values
    total = _reduce.sum(values)
    if reduction == "sum":
        return total
    if reduction == "mean_with_sample_weight" and sample_weight is not None:
        return _ew.divide(total, float(np.sum(np.broadcast_to(np.asarray(sw.numpy()), values.shape))))
    n = int(np.prod(values.shape))
    return _ew.divide(total, float(max(n, 1))) if n else total


class Loss:
    """Base class: subclasses implement ``call(y_true, y_pred)`` returning per-sample losses.

    Args:
        name: the loss name.
        reduction: "sum_over_batch_size" (default), "sum", "mean_with_sample_weight" or "none".
    """

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        if reduction not in _REDUCTIONS:
            raise ValueError(f"Invalid value for argument `reduction`. Expected one of {_REDUCTIONS[:3] + _REDUCTIONS[4:]}. "
                             f"Received: reduction={reduction!r}")
        self.name = name or _snake(type(self).__name__)
        self.reduction = reduction
        self.dtype = dtype

    def __call__(self, y_true, y_pred, sample_weight=None):
        values = self.call(y_true, y_pred)
        return reduce_weighted_values(values, sample_weight, self.reduction)

    def call(self, y_true, y_pred):  # pragma: no cover - abstract
        raise NotImplementedError

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _snake(name):
    import re

    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s).lower()


class LossFunctionWrapper(Loss):
    """A Loss around a per-sample loss function and its keyword arguments."""

    def __init__(self, fn, reduction="sum_over_batch_size", name=None, dtype=None, **kwargs):
        super().__init__(name=name or getattr(fn, "__name__", "loss"), reduction=reduction, dtype=dtype)
        self.fn = fn
        self._fn_kwargs = kwargs

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred, **self._fn_kwargs)

    def get_config(self):
        config = super().get_config()
        config.update(self._fn_kwargs)
        return config


def _loss_class(cls_name, fn, default_name, params=()):
    def __init__(self, *args, reduction="sum_over_batch_size", name=default_name, dtype=None, **kwargs):
        kw = dict(params)
        names = list(kw)
        if len(args) > len(names):
            raise TypeError(f"{cls_name}() takes at most {len(names)} positional arguments")
        for n, a in zip(names, args):
            kw[n] = a
        for k, v in kwargs.items():
            if k not in kw:
                raise TypeError(f"{cls_name}: unexpected argument {k!r}; expected one of "
                                f"{names + ['reduction', 'name', 'dtype']}")
            kw[k] = v
        if "label_smoothing" in kw and not 0 <= float(kw["label_smoothing"]) <= 1:
            raise ValueError(f"{cls_name}: label_smoothing must be in [0, 1], but received {kw['label_smoothing']}")
        LossFunctionWrapper.__init__(self, fn, reduction=reduction, name=name, dtype=dtype, **kw)

    return type(cls_name, (LossFunctionWrapper,), {"__init__": __init__, "__doc__": f"Class form of `{default_name}`."})


MeanSquaredError = _loss_class("MeanSquaredError", mean_squared_error, "mean_squared_error")
MeanAbsoluteError = _loss_class("MeanAbsoluteError", mean_absolute_error, "mean_absolute_error")
MeanAbsolutePercentageError = _loss_class("MeanAbsolutePercentageError", mean_absolute_percentage_error,
                                          "mean_absolute_percentage_error")
MeanSquaredLogarithmicError = _loss_class("MeanSquaredLogarithmicError", mean_squared_logarithmic_error,
                                          "mean_squared_logarithmic_error")
Huber = _loss_class("Huber", huber, "huber_loss", {"delta": 1.0})
LogCosh = _loss_class("LogCosh", log_cosh, "log_cosh")
BinaryCrossentropy = _loss_class("BinaryCrossentropy", binary_crossentropy, "binary_crossentropy",
                                 {"from_logits": False, "label_smoothing": 0.0, "axis": -1})
CategoricalCrossentropy = _loss_class("CategoricalCrossentropy", categorical_crossentropy, "categorical_crossentropy",
                                      {"from_logits": False, "label_smoothing": 0.0, "axis": -1})
SparseCategoricalCrossentropy = _loss_class("SparseCategoricalCrossentropy", sparse_categorical_crossentropy,
                                            "sparse_categorical_crossentropy",
                                            {"from_logits": False, "ignore_class": None})
KLDivergence = _loss_class("KLDivergence", kl_divergence, "kl_divergence")
Hinge = _loss_class("Hinge", hinge, "hinge")
SquaredHinge = _loss_class("SquaredHinge", squared_hinge, "squared_hinge")
Poisson = _loss_class("Poisson", poisson, "poisson")
CosineSimilarity = _loss_class("CosineSimilarity", cosine_similarity, "cosine_similarity", {"axis": -1})

_FUNCTIONS = {
    "mean_squared_error": mean_squared_error, "mse": mean_squared_error, "MSE": mean_squared_error,
    "mean_absolute_error": mean_absolute_error, "mae": mean_absolute_error, "MAE": mean_absolute_error,
    "mean_absolute_percentage_error": mean_absolute_percentage_error, "mape": mean_absolute_percentage_error,
    "MAPE": mean_absolute_percentage_error,
    "mean_squared_logarithmic_error": mean_squared_logarithmic_error, "msle": mean_squared_logarithmic_error,
    "MSLE": mean_squared_logarithmic_error,
    "huber": huber, "huber_loss": huber, "log_cosh": log_cosh, "logcosh": log_cosh,
    "binary_crossentropy": binary_crossentropy, "bce": binary_crossentropy,
    "categorical_crossentropy": categorical_crossentropy, "cce": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "kl_divergence": kl_divergence, "kld": kl_divergence, "KLD": kl_divergence,
    "kullback_leibler_divergence": kl_divergence,
    "hinge": hinge, "squared_hinge": squared_hinge, "poisson": poisson, "cosine_similarity": cosine_similarity,
}
_CLASSES = {c.__name__: c for c in (
    MeanSquaredError, MeanAbsoluteError, MeanAbsolutePercentageError, MeanSquaredLogarithmicError, Huber, LogCosh,
    BinaryCrossentropy, CategoricalCrossentropy, SparseCategoricalCrossentropy, KLDivergence, Hinge, SquaredHinge,
    Poisson, CosineSimilarity)}
_TABLE = {**_FUNCTIONS, **_CLASSES}


def get(identifier):
    """A loss from a name ("mse", "categorical_crossentropy", "MeanSquaredError"), a config dict, a Loss or a
    callable (returned as is). Unknown names raise ValueError listing the valid ones."""
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        return _registry.from_dict("loss", _TABLE, identifier)
    if isinstance(identifier, str):
        return _registry.lookup("loss", _TABLE, identifier)
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret loss identifier: {identifier!r}")


def serialize(loss):
    return _registry.serialize(loss)


def deserialize(config):
    return get(config)
