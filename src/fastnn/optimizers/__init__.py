"""Optimizers (``keras.optimizers``) and ``get`` for string identifiers ("sgd", "adam", ...)."""
from fastnn import _registry
from fastnn.optimizers import schedules
from fastnn.optimizers.optimizer import (SGD, Adadelta, Adagrad, Adam, Adamax, AdamW, Nadam, Optimizer, RMSprop)

_TABLE = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "adagrad": Adagrad, "rmsprop": RMSprop, "adadelta": Adadelta,
          "adamax": Adamax, "nadam": Nadam}
_TABLE.update({c.__name__: c for c in (SGD, Adam, AdamW, Adagrad, RMSprop, Adadelta, Adamax, Nadam)})


def get(identifier):
    """An optimizer from a name ("adam"), a config dict or an Optimizer (returned as is)."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return _registry.from_dict("optimizer", _TABLE, identifier)
    if isinstance(identifier, str):
        return _registry.lookup("optimizer", _TABLE, identifier)
    raise ValueError(f"Could not interpret optimizer identifier: {identifier!r}")


def serialize(optimizer):
    return _registry.serialize(optimizer)


def deserialize(config):
    return get(config)


__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "Adadelta", "Adamax", "Nadam", "schedules",
           "get", "serialize", "deserialize"]
