"""Optimizers (``keras.optimizers``) and ``get`` for string identifiers ("sgd", "adam", ...)."""
from fastnn import _registry
from fastnn.optimizers import schedules
from fastnn.optimizers.optimizer import (SGD, Adadelta, Adafactor, Adagrad, Adam, Adamax, AdamW, Ftrl, Lamb, Lion,
                                         LossScaleOptimizer, Nadam, Optimizer, RMSprop)

_CLASSES = (SGD, Adam, AdamW, Adagrad, RMSprop, Adadelta, Adamax, Nadam, Lion, Lamb, Adafactor, Ftrl,
            LossScaleOptimizer)
# Keras's get() knows each class by its lower-case name ("lossscaleoptimizer" included); fastnn also knows "lamb",
# which Keras 3.15 leaves out of its table although it exports keras.optimizers.Lamb.
_TABLE = {c.__name__.lower(): c for c in _CLASSES}
_TABLE.update({c.__name__: c for c in _CLASSES})


def get(identifier):
    """An optimizer from a name ("adam"), a config dict or an Optimizer (returned as is)."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return _registry.from_dict("optimizer", _TABLE, identifier)
    if isinstance(identifier, str):
        if identifier.lower() == "lossscaleoptimizer":
            raise ValueError("Could not interpret optimizer identifier: 'LossScaleOptimizer' needs an "
                             "inner_optimizer; create LossScaleOptimizer(inner_optimizer) instead")
        return _registry.lookup("optimizer", _TABLE, identifier)
    raise ValueError(f"Could not interpret optimizer identifier: {identifier!r}")


def serialize(optimizer):
    """Keras 3's format: {"module": "keras.optimizers", "class_name", "config", "registered_name": None}."""
    if optimizer is None:
        return None
    return {"module": "keras.optimizers", "class_name": type(optimizer).__name__, "config": optimizer.get_config(),
            "registered_name": None}


def deserialize(config):
    return get(config)


__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "Adadelta", "Adamax", "Nadam", "Lion", "Lamb",
           "Adafactor", "Ftrl", "LossScaleOptimizer", "schedules", "get", "serialize", "deserialize"]
