"""Keras 3's serialized forms of the pieces of a layer config: dtype policies, initializers / regularizers /
constraints, layer entries of model configs (``keras.src.saving.serialization_lib.serialize_keras_object``).

Keras writes every object inside a config as ``{"module", "class_name", "config", "registered_name"}``; the
configs fastnn writes are equal to Keras's key for key, so the ``.keras`` files of either library load in the
other. Readers accept both these dicts and the bare ``{"class_name", "config"}`` form of older fastnn configs.
"""
from __future__ import annotations

import numpy as np


def dtype_policy_config(dtype: str) -> dict:
    """Keras 3.15's ``dtype_policies.serialize(DTypePolicy(dtype))``."""
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": str(dtype)}, "registered_name": None}


def dtype_from_config(dtype):
    """The dtype name of a ``dtype`` argument: a name, a NumPy dtype, or a DTypePolicy config dict."""
    if isinstance(dtype, dict):
        if dtype.get("class_name") not in ("DTypePolicy", "FloatDTypePolicy"):
            raise ValueError(f"dtype: only DTypePolicy configs are supported, but received {dtype!r} (fastnn has no "
                             "mixed-precision or quantized policies)")
        return dtype["config"]["name"]
    return dtype


def _keras_module_of(cls):
    """(Keras's module, registered name) of a class, as serialize_keras_object writes them."""
    from fastnn.saving.serialization_lib import serialize_with_public_class

    config = serialize_with_public_class(cls)
    return config["module"], config["registered_name"]


def serialize_keras_object(obj):
    """Keras 3's ``serialize_keras_object`` (see ``fastnn.saving.serialization_lib``): the
    ``{"module", "class_name", "config", "registered_name"}`` dict of an initializer, regularizer, constraint,
    layer, ... (None stays None; a named function is written as Keras writes functions)."""
    from fastnn.saving import serialization_lib

    return serialization_lib.serialize_keras_object(obj)


def _plain(value):
    """Shapes as Keras stores them in build configs (tuples, Python ints)."""
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def serialize_layer(layer) -> dict:
    """A layer's (or nested model's) entry in a model config, ``serialize_keras_object(layer)``: module,
    class_name, config, registered_name, then build_config (built layers) and compile_config (models)."""
    from fastnn.saving import serialization_lib

    return serialization_lib.serialize_keras_object(layer)
