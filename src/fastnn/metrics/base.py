"""The metric base classes (``Metric``, ``Mean``, ``Sum``, ``MeanMetricWrapper``), Keras's automatic metric names
and the helpers every metric shares.

Metrics are not differentiable: they read their inputs as backend buffers (a Tensor's buffer, or the user's data
converted with ``backend.asarray``), compute through ``fastnn.backend``, keep their state in non-trainable Variables
(``metric.variables``) and never build gradient graphs. ``result()`` returns a Tensor; the fit loop turns it into a
Python float for the logs.
"""
from __future__ import annotations

import re

import numpy as np

from fastnn import backend as B
from fastnn.autograd import Tensor, Variable, no_grad
from fastnn.autograd.keras_attrs import get_keras_mask

EPSILON = 1e-7  # keras.backend.epsilon()
STATE_DTYPE = "float64"  # fastnn's metrics accumulate their sums in float64 (Keras: float32 variables)


def to_buffer(x, dtype=None):
    """A backend buffer for a Tensor, array-like or scalar (cast to ``dtype`` when given). Host data (lists, scalars,
    NumPy arrays) is converted with ``backend.asarray``, so it keeps NumPy's dtypes (a list of floats is float64)."""
    if isinstance(x, Tensor):
        x = x._data
    elif not B.is_buffer(x):
        x = B.asarray(x)
    return x if dtype is None else B.astype(x, dtype, copy=False)


def squeeze_or_expand_to_same_rank(x1, x2, expand_rank_1=True):
    """Keras's rule on buffers: when the ranks differ by one and the longer has a trailing axis of 1, squeeze it
    (or, with ``expand_rank_1``, expand a rank-1 partner instead)."""
    r1, r2 = x1.ndim, x2.ndim
    if r1 == r2 + 1 and x1.shape[-1] == 1:
        if r2 == 1 and expand_rank_1:
            x2 = B.expand_dims(x2, -1)
        else:
            x1 = B.squeeze(x1, -1)
    if r2 == r1 + 1 and x2.shape[-1] == 1:
        if r1 == 1 and expand_rank_1:
            x1 = B.expand_dims(x1, -1)
        else:
            x2 = B.squeeze(x2, -1)
    return x1, x2


def divide_no_nan(a, b):
    """a / b in float64, 0 where b == 0 (keras.ops.divide_no_nan)."""
    a, b = to_buffer(a, "float64"), to_buffer(b, "float64")
    out = B.zeros(B.broadcast_shapes(a.shape, b.shape))
    B.divide(a, b, out=out, where=B.not_equal(b, 0))
    return out


def keras_snake_case(name: str) -> str:
    """keras.src.utils.naming.to_snake_case: ``"BinaryIoU"`` -> ``"binary_io_u"``, ``"F1Score"`` -> ``"f1_score"``."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def auto_name(class_name: str) -> str:
    """Keras's ``auto_name``: the snake-case class name made unique by the global name counter that layers use too
    (``recall``, ``recall_1``, ...); ``fastnn.utils.clear_session()`` resets it."""
    from fastnn.layers.layer import unique_name  # the one counter shared with layer names, as in Keras

    return unique_name(keras_snake_case(class_name))


def _check_dtype(owner, dtype):
    try:
        return np.dtype(dtype).name
    except TypeError:
        raise ValueError(f"{owner}: dtype must be a NumPy dtype name such as 'float32', but received "
                         f"dtype={dtype!r}") from None


class StateBuffer:
    """A metric attribute (``total``, ``true_positives``, ...) that reads the buffer of the state Variable of that
    name: a NumPy array on the CPU, as these attributes were before the state moved into Variables, so code that
    computes on them with NumPy keeps working. The Variables themselves are in ``metric.variables``."""

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, metric, owner=None):
        if metric is None:
            return self
        variable = metric._state.get(self.name)
        if variable is None:  # a count this metric does not keep (Precision has no false negatives)
            raise AttributeError(f"{type(metric).__name__!r} object has no attribute {self.name!r}")
        return variable._data


class Metric:
    """Base class of stateful metrics: ``update_state(...)``, ``result()``, ``reset_state()``; calling the metric
    updates it and returns the result.

    Args:
        name: the metric name; ``None`` gives Keras's automatic name (the snake-case class name, uniquified).
        dtype: the dtype of the state and of the result (default "float32").
    """

    def __init__(self, name=None, dtype=None):
        self.name = name or auto_name(type(self).__name__)
        self.dtype = _check_dtype(type(self).__name__, dtype or "float32")
        self._tracked_variables = []
        self._state = {}  # fastnn's own state Variables by name (see _reset_states)
        # fastnn's metrics keep their state in Variables that their reset_state creates. A user's subclass written
        # the Keras way adds variables after this call and may override reset_state to use them, so only fastnn's
        # own reset_state runs here.
        if getattr(type(self).reset_state, "__module__", "").startswith("fastnn.metrics"):
            self.reset_state()

    def add_variable(self, shape=(), initializer="zeros", dtype=None, aggregation="sum", name=None):
        """A state variable (not trainable), as Keras's ``Metric.add_variable``; ``reset_state`` zeroes it."""
        from fastnn import initializers
        from fastnn.autograd import Variable

        variable = Variable(initializers.get(initializer if initializer is not None else "zeros"), shape=tuple(shape),
                            dtype=dtype or self.variable_dtype, trainable=False, aggregation=aggregation, name=name)
        self._tracked_variables.append(variable)
        return variable

    def add_weight(self, shape=(), initializer=None, dtype=None, name=None):
        """Keras's older name for ``add_variable``."""
        return self.add_variable(shape=shape, initializer=initializer, dtype=dtype, name=name)

    @property
    def variables(self):
        """The state Variables: those made by ``add_variable`` and fastnn's own (non-trainable, as Keras's)."""
        return list(self._tracked_variables) + list(self._state.values())

    def reset_state(self):
        """Zeroes every variable made by ``add_variable`` (as Keras's default)."""
        for variable in self._tracked_variables:
            variable.assign(B.zeros(variable.shape, variable.dtype))

    def _reset_states(self, dtype=STATE_DTYPE, **shapes):
        """Zeroes fastnn's own state: one non-trainable Variable per name, of the given shape. A Variable whose shape
        or dtype stays is zeroed in place (so it stays the same object); a new shape makes a new one."""
        dtype = np.dtype(dtype)
        for name, shape in shapes.items():
            shape = tuple(shape)
            variable = self._state.get(name)
            if variable is not None and variable.shape == shape and variable.dtype == dtype:
                variable.assign(B.zeros(shape, dtype))
            else:
                self._state[name] = Variable(B.zeros(shape, dtype), trainable=False, aggregation="sum", name=name)

    def _accumulate(self, name, value):
        """Adds ``value`` (a buffer of the state's shape and dtype, or a Python number) to the state Variable
        ``name``. The sum is a new buffer that becomes the Variable's (what ``assign`` does, without its checks and
        copy, which would cost more than the update itself on the fit loop's per-batch path); buffers taken from the
        state earlier (``metric.total``) keep their values, as with copy-on-write."""
        variable = self._state[name]
        variable._data = B.add(variable._data, value)

    def update_state(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError

    def result(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        self.update_state(*args, **kwargs)
        return self.result()

    # The dtype of the state and the result. Keras creates some metrics' variables in floatx whatever their dtype
    # (the confusion metrics, AUC, R2Score): those set this to "float32".
    _variable_dtype = None

    @property
    def variable_dtype(self):
        return self._variable_dtype or self.dtype

    def _result(self, value, dtype=None):
        """``value`` (a buffer or Python scalar) as a Tensor of ``dtype`` (default: the state's dtype)."""
        return Tensor._wrap(B.asarray(value, dtype or self.variable_dtype))

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


def reduce_to_samplewise_values(values, sample_weight, reduce_fn):
    """keras.src.metrics.reduction_metrics.reduce_to_samplewise_values on buffers: one value per sample
    (``reduce_fn``, a backend reduction, over the axes beyond the weights' rank, then over the non-batch axes) and the
    matching per-sample weights."""
    values = to_buffer(values, "float64")
    if sample_weight is not None:
        sample_weight = to_buffer(sample_weight, "float64")
        values, sample_weight = squeeze_or_expand_to_same_rank(values, sample_weight)
        weight_ndim, values_ndim = sample_weight.ndim, values.ndim
        if values_ndim > weight_ndim:
            values = reduce_fn(values, axis=tuple(range(weight_ndim, values_ndim)))
        try:
            sample_weight = B.broadcast_to(sample_weight, values.shape)
        except ValueError:
            raise ValueError(f"sample_weight of shape {sample_weight.shape} cannot be broadcast to the values of shape "
                             f"{values.shape}") from None
        values = B.multiply(values, sample_weight)
        if weight_ndim > 1:
            sample_weight = reduce_fn(sample_weight, axis=tuple(range(1, weight_ndim)))
    if values.ndim > 1:
        values = reduce_fn(values, axis=tuple(range(1, values.ndim)))
    return values, sample_weight


class Sum(Metric):
    """The (weighted) sum of every value passed to ``update_state(values, sample_weight=None)``."""

    def __init__(self, name="sum", dtype=None):
        super().__init__(name=name, dtype=dtype)

    total = StateBuffer()

    def reset_state(self):
        self._reset_states(total=())

    def update_state(self, values, sample_weight=None):
        values, _ = reduce_to_samplewise_values(values, sample_weight, B.sum)
        self._accumulate("total", B.sum(values))

    def result(self):
        return self._result(self.total)


class Mean(Metric):
    """The (weighted) mean of the values passed to ``update_state(values, sample_weight=None)``.

    As in Keras, each sample (row) counts once: values with more than one axis are first averaged over their
    non-batch axes, and ``count`` grows by the number of samples (or by the sum of the per-sample weights).
    """

    def __init__(self, name="mean", dtype=None):
        super().__init__(name=name, dtype=dtype)

    total = StateBuffer()
    count = StateBuffer()

    def reset_state(self):
        self._reset_states(total=(), count=())

    def update_state(self, values, sample_weight=None):
        values, sample_weight = reduce_to_samplewise_values(values, sample_weight, B.mean)
        self._accumulate("total", B.sum(values))
        if sample_weight is not None:
            self._accumulate("count", B.sum(sample_weight))
        else:
            self._accumulate("count", float(values.shape[0]) if values.ndim >= 1 else 1.0)

    def result(self):
        count = self.count
        return self._result(B.divide(self.total, count) if B.item(count) else 0.0)


class MeanMetricWrapper(Mean):
    """A Mean over the per-sample values of ``fn(y_true, y_pred, **kwargs)``.

    Args:
        fn: the metric function ``fn(y_true, y_pred, **kwargs)``.
        name: the metric name (default: Keras's automatic ``mean_metric_wrapper``).
        dtype: the result dtype.
        **kwargs: passed on to ``fn``.
    """

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        if not callable(fn):
            raise TypeError(f"MeanMetricWrapper: fn must be callable, but received fn={fn!r}")
        self._fn = fn
        self._fn_kwargs = kwargs
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        # As Keras: the mask of y_pred (a Masking layer upstream) joins the sample weights, entries counted as 0/1.
        mask = get_keras_mask(y_pred) if isinstance(y_pred, Tensor) else None
        with no_grad():
            values = to_buffer(self._fn(y_true, y_pred, **self._fn_kwargs))
            if mask is not None:
                from fastnn.losses import apply_mask

                sample_weight = apply_mask(sample_weight, mask, dtype=self.dtype, reduction="sum")
        super().update_state(values, sample_weight)

    def get_config(self):
        # As Keras: the function as serialize_keras_object writes it (by its registered name), never the function.
        from fastnn.saving import serialization_lib

        return {**Metric.get_config(self), "fn": serialization_lib.serialize_keras_object(self._fn),
                **serialization_lib.serialize_keras_object(self._fn_kwargs)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("fn"), str):  # fastnn's older configs: the function's bare name
            from fastnn.metrics import get_function

            config["fn"] = get_function(config["fn"])
        elif isinstance(config.get("fn"), dict):
            from fastnn.saving import serialization_lib

            config["fn"] = serialization_lib.deserialize_keras_object(config["fn"])
        return cls(**config)
