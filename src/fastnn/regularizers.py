"""Weight regularizers (``keras.regularizers``): L1, L2, L1L2 and their string names.

A regularizer maps a weight to a scalar penalty Tensor; ``fit`` adds the penalties of every layer to the loss.
"""
from __future__ import annotations

from fastnn import _registry
from fastnn.autograd.ops import elementwise as _ew
from fastnn.autograd.ops import reduce as _reduce


def _check(name, value):
    value = float(value)
    if value < 0 or value != value:
        raise ValueError(f"{name} must be a non-negative float, but received {value}")
    return value


class Regularizer:
    def __call__(self, x):  # pragma: no cover - abstract
        return 0.0

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class L1L2(Regularizer):
    """l1 * sum(|x|) + l2 * sum(x^2)."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _check("L1L2: l1", l1)
        self.l2 = _check("L1L2: l2", l2)

    def __call__(self, x):
        out = 0.0
        if self.l1:
            out = _ew.add(out, _ew.multiply(self.l1, _reduce.sum(_ew.abs(x))))
        if self.l2:
            out = _ew.add(out, _ew.multiply(self.l2, _reduce.sum(_ew.square(x))))
        return out

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(Regularizer):
    def __init__(self, l1=0.01):
        self.l1 = _check("L1: l1", l1)

    def __call__(self, x):
        return _ew.multiply(self.l1, _reduce.sum(_ew.abs(x)))

    def get_config(self):
        return {"l1": self.l1}


class L2(Regularizer):
    def __init__(self, l2=0.01):
        self.l2 = _check("L2: l2", l2)

    def __call__(self, x):
        return _ew.multiply(self.l2, _reduce.sum(_ew.square(x)))

    def get_config(self):
        return {"l2": self.l2}


l1, l2, l1_l2 = L1, L2, L1L2
_TABLE = {"L1": L1, "L2": L2, "L1L2": L1L2, "l1": L1, "l2": L2, "l1_l2": L1L2}


def get(identifier):
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        return _registry.from_dict("regularizer", _TABLE, identifier)
    if isinstance(identifier, str):
        return _registry.lookup("regularizer", _TABLE, identifier)
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret regularizer identifier: {identifier!r}")
