"""Weight constraints (``keras.constraints``), applied to a variable after each optimizer update.

A constraint maps a weight to the projected weight. The optimizer calls it with the variable's buffer and assigns
the result; called directly, a constraint also accepts a Tensor or the user's array. The built-in constraints
compute through ``fastnn.backend`` and return a buffer of the active backend (a NumPy array on the CPU backend).
"""
from __future__ import annotations

from fastnn import _registry
from fastnn import backend as B
from fastnn.autograd import Tensor

_EPS = 1e-7


def _buffer(w):
    """The weight as a buffer: a Tensor's own buffer, a buffer as it is, host data (the user's array) converted."""
    if isinstance(w, Tensor):
        return w._data
    return w if B.is_buffer(w) else B.asarray(w)


def _norms(w, axis):
    """sqrt(sum(w ** 2, axis)), keeping the reduced axes."""
    return B.sqrt(B.sum(B.square(w), axis=axis, keepdims=True))


class Constraint:
    def __call__(self, w):
        return w

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class MaxNorm(Constraint):
    """Rescales each slice along ``axis`` to norm at most ``max_value``."""

    def __init__(self, max_value=2, axis=0):
        self.max_value, self.axis = max_value, axis

    def __call__(self, w):
        w = _buffer(w)
        norms = _norms(w, self.axis)
        desired = B.clip(norms, 0, self.max_value)
        return B.astype(B.multiply(w, B.divide(desired, B.add(_EPS, norms))), w.dtype)

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    """Sets negative weights to zero."""

    def __call__(self, w):
        w = _buffer(w)
        return B.astype(B.multiply(w, B.greater_equal(w, 0)), w.dtype)


class UnitNorm(Constraint):
    """Scales each slice along ``axis`` to unit norm."""

    def __init__(self, axis=0):
        self.axis = axis

    def __call__(self, w):
        w = _buffer(w)
        return B.astype(B.divide(w, B.add(_EPS, _norms(w, self.axis))), w.dtype)

    def get_config(self):
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    """Rescales each slice along ``axis`` towards a norm in [min_value, max_value]: desired = rate * clipped norm +
    (1 - rate) * norm."""

    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value, self.max_value, self.rate, self.axis = min_value, max_value, rate, axis

    def __call__(self, w):
        w = _buffer(w)
        norms = _norms(w, self.axis)
        desired = B.add(B.multiply(self.rate, B.clip(norms, self.min_value, self.max_value)),
                        B.multiply(1 - self.rate, norms))
        return B.astype(B.multiply(w, B.divide(desired, B.add(_EPS, norms))), w.dtype)

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate, "axis": self.axis}


max_norm, non_neg, unit_norm, min_max_norm = MaxNorm, NonNeg, UnitNorm, MinMaxNorm
_TABLE = {"MaxNorm": MaxNorm, "NonNeg": NonNeg, "UnitNorm": UnitNorm, "MinMaxNorm": MinMaxNorm,
          "max_norm": MaxNorm, "non_neg": NonNeg, "unit_norm": UnitNorm, "min_max_norm": MinMaxNorm}


def get(identifier):
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        return _registry.from_dict("constraint", _TABLE, identifier)
    if isinstance(identifier, str):
        return _registry.lookup("constraint", _TABLE, identifier)
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret constraint identifier: {identifier!r}")
