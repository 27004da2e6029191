"""Keras 3's serialized forms of the pieces of a layer config: dtype policies, initializers / regularizers /
constraints, layer entries of model configs (``keras.src.saving.serialization_lib.serialize_keras_object``).

Keras writes every object inside a config as ``{"module", "class_name", "config", "registered_name"}``; the
configs fastnn writes are equal to Keras's key for key, so the ``.keras`` files of either library load in the
other. Readers accept both these dicts and the bare ``{"class_name", "config"}`` form of older fastnn configs.
"""
from __future__ import annotations

import numpy as np

# The Keras module each fastnn family is exported from (what Keras writes under "module").
_KERAS_MODULES = {
    "fastnn.initializers": "keras.initializers",
    "fastnn.regularizers": "keras.regularizers",
    "fastnn.constraints": "keras.constraints",
    "fastnn.layers": "keras.layers",
}


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
    module = cls.__module__
    for prefix, keras_module in _KERAS_MODULES.items():
        if module == prefix or module.startswith(prefix + "."):
            return keras_module, None
    return module, cls.__name__  # a user's class: Keras records its module and registered name


def serialize_keras_object(obj):
    """``{"module", "class_name", "config", "registered_name"}`` for an initializer, regularizer or constraint
    object (None stays None; a plain function is written by its name, as Keras writes built-in functions)."""
    if obj is None:
        return None
    if not hasattr(obj, "get_config"):
        return getattr(obj, "__name__", str(obj))
    module, registered = _keras_module_of(type(obj))
    return {"module": module, "class_name": type(obj).__name__, "config": obj.get_config(),
            "registered_name": registered}


def _plain(value):
    """Shapes as Keras stores them in build configs (tuples, Python ints)."""
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def serialize_layer(layer) -> dict:
    """A layer's (or nested model's) entry in a model config, as ``serialize_keras_object(layer)``: module,
    class_name, config, registered_name, then build_config (built layers) and compile_config (models)."""
    from fastnn.models.functional import Functional
    from fastnn.models.model import Model
    from fastnn.models.sequential import Sequential

    from fastnn.layers.symbolic_ops import SymbolicOp

    cls = type(layer)
    if isinstance(layer, SymbolicOp):  # Keras's operation entries: module, class, {"name"}, registered name
        return {"module": layer.keras_module, "class_name": cls.__name__, "config": layer.get_config(),
                "registered_name": cls.__name__}
    if cls is Sequential:
        module, registered = "keras", None
    elif cls is Functional:
        module, registered = "keras.src.models.functional", "Functional"  # not a public path: Keras names it
    else:
        module, registered = _keras_module_of(cls)
    entry = {"module": module, "class_name": cls.__name__, "config": layer.get_config(), "registered_name": registered}
    build_config = layer.get_build_config() if layer.built else None
    if build_config is not None:
        entry["build_config"] = {k: _plain(v) for k, v in build_config.items()}
    if isinstance(layer, Model):
        entry["compile_config"] = layer.get_compile_config()
    return entry
