"""Object configs as Keras 3 writes them (``keras.src.saving.serialization_lib``), both ways.

``serialize_keras_object(obj)`` turns any fastnn object (layer, model, initializer, regularizer, constraint,
activation, loss, metric, optimizer, learning-rate schedule) and plain Python / NumPy values into the JSON-ready
structure Keras 3 writes: objects as ``{"module", "class_name", "config", "registered_name"}`` (plus
``build_config`` / ``compile_config`` for layers and models), the module being Keras's public one
("keras.layers", "keras.optimizers", ...) so that configs move between fastnn and Keras in both directions.
``deserialize_keras_object(config)`` is the inverse: it finds the class through the custom objects (argument,
open ``custom_object_scope``, global registry) and then fastnn's own families, where each Keras module name
maps to its fastnn counterpart ("keras.layers.Dense" -> ``fastnn.layers.Dense``).

Loading never runs code from a config unless asked: a serialized Python lambda (``"__lambda__"``) is refused
unless ``safe_mode=False`` (or inside ``SafeModeScope(False)`` / after ``enable_unsafe_deserialization()``).

Example:
    >>> config = fastnn.saving.serialize_keras_object(fastnn.layers.Dense(3))
    >>> config["module"], config["class_name"]
    ('keras.layers', 'Dense')
    >>> layer = fastnn.saving.deserialize_keras_object(config)
"""
from __future__ import annotations

import codecs
import binascii
import importlib
import inspect
import marshal
import threading
import types
import warnings

# NumPy boundary: configs hold plain host values (NumPy scalars / arrays become Python values / nested lists).
import numpy as np

from fastnn.saving import object_registration

PLAIN_TYPES = (str, int, float, bool)

# The Keras modules whose built-in functions configs name by their bare name (module "builtins"): Keras searches
# them in this set for a function written as {"module": "builtins", "class_name": "function", "config": name}.
BUILTIN_MODULES = frozenset({"activations", "constraints", "initializers", "losses", "metrics", "optimizers",
                             "regularizers"})

# Keras refuses to deserialize these names from a config: they are not modeling objects (loading one could read
# or write files).
NON_MODELING_APIS = frozenset({
    "keras.backend.clear_session", "keras.config.enable_unsafe_deserialization", "keras.models.load_model",
    "keras.models.model_from_json", "keras.models.save_model", "keras.preprocessing.image_dataset_from_directory",
    "keras.preprocessing.image.load_img", "keras.preprocessing.image.save_img",
    "keras.preprocessing.text_dataset_from_directory", "keras.saving.deserialize_keras_object",
    "keras.saving.load_model", "keras.saving.load_weights", "keras.saving.register_keras_serializable",
    "keras.saving.save_model", "keras.saving.save_weights", "keras.saving.serialize_keras_object",
    "keras.utils.audio_dataset_from_directory", "keras.utils.clear_session", "keras.utils.deserialize_keras_object",
    "keras.utils.get_file", "keras.utils.image_dataset_from_directory", "keras.utils.load_img",
    "keras.utils.register_keras_serializable", "keras.utils.save_img", "keras.utils.serialize_keras_object",
    "keras.utils.text_dataset_from_directory",
})

# Keras 3's messages for a refused lambda (serialization_lib and the Lambda layer). fastnn's switch is named
# `fastnn.saving.enable_unsafe_deserialization()` where Keras names `keras.config.enable_unsafe_deserialization()`.
LAMBDA_REFUSED_MESSAGE = (
    "Requested the deserialization of a Python lambda. This carries a potential risk of arbitrary code execution "
    "and thus it is disallowed by default. If you trust the source of the artifact, you can override this error by "
    "passing `safe_mode=False` to the loading function, or calling "
    "`fastnn.saving.enable_unsafe_deserialization().")
LAMBDA_LAYER_REFUSED_MESSAGE = (
    "Requested the deserialization of a `Lambda` layer whose `function` is a Python lambda. This carries a "
    "potential risk of arbitrary code execution and thus it is disallowed by default. If you trust the source of "
    "the artifact, you can override this error by passing `safe_mode=False` to the loading function, or calling "
    "`fastnn.saving.enable_unsafe_deserialization().")


# -- safe mode ------------------------------------------------------------------------------------------------------
# Keras keeps the flag in its per-thread global state ("safe_mode_saving"): None (unset, loaders default to safe),
# True or False. SafeModeScope sets it for the calls nested in it; enable_unsafe_deserialization sets it for good.
_safe_mode_state = threading.local()


class SafeModeScope:
    """Scope that hands the ``safe_mode`` flag down to nested deserialization calls (Keras's SafeModeScope)."""

    def __init__(self, safe_mode=True):
        self.safe_mode = safe_mode

    def __enter__(self):
        self.original_value = in_safe_mode()
        _safe_mode_state.value = self.safe_mode

    def __exit__(self, *args, **kwargs):
        _safe_mode_state.value = self.original_value


def enable_unsafe_deserialization():
    """Disables safe mode (in this thread, as Keras's ``keras.config.enable_unsafe_deserialization``), allowing
    deserialization of lambdas. Only call it for files you trust."""
    _safe_mode_state.value = False


def in_safe_mode():
    """The safe-mode flag set by the open ``SafeModeScope`` or ``enable_unsafe_deserialization``; None when unset."""
    return getattr(_safe_mode_state, "value", None)


# -- shared objects (Keras's ObjectSharingScope: saving_lib serializes and deserializes a model inside one) ----------
_sharing_state = threading.local()


class ObjectSharingScope:
    """Inside the scope, an object serialized twice (one initializer instance used by two layers, ...) gets a
    ``"shared_object_id"`` in both its configs, and deserialization gives back one object for them (Keras's)."""

    def __enter__(self):
        _sharing_state.id_to_obj_map = {}
        _sharing_state.id_to_config_map = {}

    def __exit__(self, *args, **kwargs):
        _sharing_state.id_to_obj_map = None
        _sharing_state.id_to_config_map = None


def get_shared_object(obj_id):
    """The object deserialized earlier in this sharing scope under ``obj_id`` (None when none / no scope)."""
    id_to_obj_map = getattr(_sharing_state, "id_to_obj_map", None)
    if id_to_obj_map is not None:
        return id_to_obj_map.get(obj_id, None)
    return None


def record_object_after_serialization(obj, config):
    """Keeps track of a serialized object's config; the second time the object is seen, both configs get its
    ``shared_object_id``. (Also: a class of the main script gets module None, as in Keras.)"""
    if config["module"] == "__main__":
        config["module"] = None
    id_to_config_map = getattr(_sharing_state, "id_to_config_map", None)
    if id_to_config_map is None:
        return
    obj_id = int(id(obj))
    if obj_id not in id_to_config_map:
        id_to_config_map[obj_id] = config
    else:
        config["shared_object_id"] = obj_id
        id_to_config_map[obj_id]["shared_object_id"] = obj_id


def record_object_after_deserialization(obj, obj_id):
    id_to_obj_map = getattr(_sharing_state, "id_to_obj_map", None)
    if id_to_obj_map is not None:
        id_to_obj_map[obj_id] = obj


# -- Python functions as bytecode (Keras's python_utils.func_dump / func_load) --------------------------------------
def func_dump(func):
    """``(code, defaults, closure)`` of a user function: its marshalled bytecode in base64, as Keras writes it."""
    code = codecs.encode(marshal.dumps(func.__code__), "base64").decode("ascii")
    defaults = func.__defaults__
    closure = tuple(c.cell_contents for c in func.__closure__) if func.__closure__ else None
    return code, defaults, closure


def func_load(code, defaults=None, closure=None, globs=None):
    """The function ``func_dump`` wrote (a ``(code, defaults, closure)`` triple or its parts). This executes code
    from the config: callers check the safe mode first."""
    if isinstance(code, (tuple, list)):  # an unpacked previous dump
        code, defaults, closure = code
        if isinstance(defaults, list):
            defaults = tuple(defaults)
    if closure is not None:
        closure = tuple(value if isinstance(value, types.CellType) else types.CellType(value) for value in closure)
    try:
        raw_code = codecs.decode(code.encode("ascii"), "base64")
    except (UnicodeEncodeError, binascii.Error):
        raw_code = code.encode("raw_unicode_escape")
    code = marshal.loads(raw_code)
    if globs is None:
        globs = globals()
    return types.FunctionType(code, globs, name=code.co_name, argdefs=defaults, closure=closure)


def is_python_lambda(obj) -> bool:
    return isinstance(obj, types.FunctionType) and obj.__name__ == "<lambda>"


# -- which Keras name a fastnn class has -----------------------------------------------------------------------------
# fastnn module (prefix) -> (the fastnn public module that exports the family, Keras's public module).
_FAMILIES = (
    ("fastnn.optimizers.schedules", "fastnn.optimizers.schedules", "keras.optimizers.schedules"),
    ("fastnn.optimizers", "fastnn.optimizers", "keras.optimizers"),
    ("fastnn.layers", "fastnn.layers", "keras.layers"),
    ("fastnn.initializers", "fastnn.initializers", "keras.initializers"),
    ("fastnn.regularizers", "fastnn.regularizers", "keras.regularizers"),
    ("fastnn.constraints", "fastnn.constraints", "keras.constraints"),
    ("fastnn.losses", "fastnn.losses", "keras.losses"),
    ("fastnn.metrics", "fastnn.metrics", "keras.metrics"),
    ("fastnn.activations", "fastnn.activations", "keras.activations"),
)


def _keras_api_name(cls):
    """Keras's public name of a fastnn class ("keras.layers.Dense"), as ``api_export.get_name_from_symbol``; None
    for classes Keras does not export (users' classes, fastnn internals, ``Functional``)."""
    from fastnn.models.functional import Functional
    from fastnn.models.model import Model
    from fastnn.models.sequential import Sequential

    if cls is Sequential:
        return "keras.Sequential"
    if cls is Model:
        return "keras.Model"
    if cls is Functional:
        return None
    module = getattr(cls, "__module__", "") or ""
    for prefix, public, keras_module in _FAMILIES:
        if module == prefix or module.startswith(prefix + "."):
            if getattr(importlib.import_module(public), cls.__name__, None) is cls:
                return f"{keras_module}.{cls.__name__}"
            return None
    return None


def _symbolic_op_config(obj):
    """Keras's entry for an operation node of a functional graph (``x + y``): module keras.src.ops.numpy."""
    return {"module": obj.keras_module, "class_name": type(obj).__name__, "config": obj.get_config(),
            "registered_name": type(obj).__name__}


# -- serialization --------------------------------------------------------------------------------------------------
def serialize_keras_object(obj):
    """The config of ``obj`` as Keras 3's ``serialize_keras_object`` writes it (a JSON-ready structure).

    None, str, int, float and bool stay as they are; lists stay lists and tuples stay tuples (``json`` writes both
    as arrays); dicts are serialized value by value; NumPy scalars become Python numbers and arrays
    ``{"class_name": "__numpy__", ...}``; bytes, slices and Ellipsis get Keras's special entries; a Python lambda is
    written as marshalled bytecode (``"__lambda__"``, with Keras's warning); a named function as
    ``{"module": "builtins", "class_name": "function", "config": <registered name>, ...}``; any object with
    ``get_config()`` as ``{"module", "class_name", "config", "registered_name"}`` plus ``build_config`` /
    ``compile_config`` for layers and models.
    """
    from fastnn.autograd import Tensor
    from fastnn.layers.layer import KerasTensor

    if obj is None:
        return obj
    if isinstance(obj, PLAIN_TYPES):
        return obj
    if isinstance(obj, (list, tuple)):
        config_arr = [serialize_keras_object(x) for x in obj]
        return tuple(config_arr) if isinstance(obj, tuple) else config_arr
    if isinstance(obj, dict):
        return serialize_dict(obj)
    if isinstance(obj, bytes):
        return {"class_name": "__bytes__", "config": {"value": obj.decode("utf-8")}}
    if isinstance(obj, slice):
        return {"class_name": "__slice__", "config": {"start": serialize_keras_object(obj.start),
                                                       "stop": serialize_keras_object(obj.stop),
                                                       "step": serialize_keras_object(obj.step)}}
    if obj is Ellipsis:
        return {"class_name": "__ellipsis__", "config": {}}
    if isinstance(obj, KerasTensor):
        history = getattr(obj, "_history", None)
        if history:
            history = list(history)
            history[0] = history[0].name
        return {"class_name": "__keras_tensor__", "config": {"shape": obj.shape, "dtype": obj.dtype,
                                                              "keras_history": history}}
    if isinstance(obj, Tensor):
        value = np.asarray(obj)
        return {"class_name": "__tensor__", "config": {"value": value.tolist(), "dtype": str(value.dtype)}}
    if type(obj).__module__ == np.__name__:
        if isinstance(obj, np.ndarray) and obj.ndim > 0:
            return {"class_name": "__numpy__", "config": {"value": obj.tolist(), "dtype": str(obj.dtype)}}
        return obj.item()  # NumPy scalars (and 0-d arrays) as plain Python values, as Keras
    if isinstance(obj, np.dtype):
        return str(obj)
    if is_python_lambda(obj):
        try:
            source = inspect.getsource(obj)
        except (OSError, TypeError):
            source = "<source not available>"
        warnings.warn("The object being serialized includes a `lambda`. This is unsafe. In order to reload the "
                      "object, you will have to pass `safe_mode=False` to the loading function. Please avoid using "
                      "`lambda` in the future, and use named Python functions instead. This is the `lambda` being "
                      f"serialized: {source}", stacklevel=2)
        return {"class_name": "__lambda__", "config": {"value": func_dump(obj)}}

    from fastnn.layers.symbolic_ops import SymbolicOp

    if isinstance(obj, SymbolicOp):
        config = _symbolic_op_config(obj)
        config["config"] = serialize_dict(config["config"])
        record_object_after_serialization(obj, config)
        return config

    inner_config = _get_class_or_fn_config(obj)
    config = serialize_with_public_class(obj.__class__, inner_config)
    if config is None:  # not reached for classes (their __name__ is their default registered name), as in Keras
        module = obj.__module__ if isinstance(obj, types.FunctionType) else obj.__class__.__module__
        config = {"module": module, "class_name": obj.__class__.__name__, "config": inner_config,
                  "registered_name": object_registration.get_registered_name(obj.__class__)}
    _add_build_and_compile_config(obj, config)
    record_object_after_serialization(obj, config)
    return config


def _add_build_and_compile_config(obj, config):
    """Keras's get_build_and_compile_config: a built layer's build_config, a model's compile_config."""
    from fastnn.layers.layer import Layer

    if hasattr(obj, "get_build_config") and not (isinstance(obj, Layer) and not obj.built):
        build_config = obj.get_build_config()
        if build_config is not None:
            config["build_config"] = serialize_dict(build_config)
    if hasattr(obj, "get_compile_config"):
        compile_config = obj.get_compile_config()
        if compile_config is not None:
            config["compile_config"] = serialize_dict(compile_config)


def serialize_with_public_class(cls, inner_config=None):
    """The config of a class Keras exports (module = Keras's public module, no registered name), or of a
    registered / user class (module = its own module, registered_name = its registered name)."""
    from fastnn.models.functional import Functional

    if cls is Functional:  # Keras does not export Functional: it writes its source module and its name
        return {"module": "keras.src.models.functional", "class_name": "Functional", "config": inner_config,
                "registered_name": "Functional"}
    keras_api_name = _keras_api_name(cls)
    if keras_api_name is None:
        registered_name = object_registration.get_registered_name(cls)
        if registered_name is None:
            return None
        return {"module": cls.__module__, "class_name": cls.__name__, "config": inner_config,
                "registered_name": registered_name}
    parts = keras_api_name.split(".")
    return {"module": ".".join(parts[:-1]), "class_name": parts[-1], "config": inner_config, "registered_name": None}


def _get_class_or_fn_config(obj):
    """The inner config: a function's registered name, or ``get_config()`` serialized value by value."""
    if isinstance(obj, types.FunctionType):
        return object_registration.get_registered_name(obj)
    if hasattr(obj, "get_config"):
        config = obj.get_config()
        if not isinstance(config, dict):
            raise TypeError(f"The `get_config()` method of {obj} should return a dict. It returned: {config}")
        return serialize_dict(config)
    if hasattr(obj, "__name__"):
        return object_registration.get_registered_name(obj)
    raise TypeError(f"Cannot serialize object {obj} of type {type(obj)}. To be serializable, a class must implement "
                    "the `get_config()` method.")


def serialize_dict(obj):
    return {key: serialize_keras_object(value) for key, value in obj.items()}


# -- deserialization ------------------------------------------------------------------------------------------------
def deserialize_keras_object(config, custom_objects=None, safe_mode=True, **kwargs):
    """The object a config describes (the inverse of ``serialize_keras_object``), as Keras 3's.

    Args:
        config: what ``serialize_keras_object`` (fastnn's or Keras's) returned, or its JSON round trip.
        custom_objects: ``{name: class or function}`` for classes and functions that are not fastnn's own; they
            are also found through an open ``custom_object_scope`` and ``get_custom_objects()`` /
            ``register_keras_serializable`` (by their registered name "package>Name").
        safe_mode: refuse to load Python lambdas (arbitrary code) unless False. An enclosing ``SafeModeScope``
            decides for nested calls.
        module_objects: (keyword) a ``{name: object}`` table for bare names, as Keras's family ``deserialize``
            functions pass.

    Raises:
        TypeError: a class or function that cannot be located (the message says how to make it known), a config
            of the wrong form.
        ValueError: a Python lambda in safe mode; a non-modeling Keras API.
    """
    safe_scope_arg = in_safe_mode()
    safe_mode = safe_scope_arg if safe_scope_arg is not None else safe_mode

    module_objects = kwargs.pop("module_objects", None)
    custom_objects = {**(custom_objects or {}), **object_registration._scope_dict(),
                      **object_registration.GLOBAL_CUSTOM_OBJECTS}

    if config is None:
        return None
    if isinstance(config, str) and custom_objects.get(config) is not None:
        # A plain function written by name (legacy formats).
        return custom_objects[config]
    if isinstance(config, (list, tuple)):
        return [deserialize_keras_object(x, custom_objects=custom_objects, safe_mode=safe_mode) for x in config]

    if module_objects is not None:
        found = _from_module_objects(config, custom_objects, module_objects)
        if found is not _NOT_FOUND:
            return found

    if isinstance(config, PLAIN_TYPES):
        return config
    if not isinstance(config, dict):
        raise TypeError(f"Could not parse config: {config}")

    if "class_name" not in config or "config" not in config:
        return {key: deserialize_keras_object(value, custom_objects=custom_objects, safe_mode=safe_mode)
                for key, value in config.items()}

    class_name = config["class_name"]
    inner_config = config["config"] if config["config"] is not None else {}

    if class_name == "__keras_tensor__":
        from fastnn.layers.layer import KerasTensor

        obj = KerasTensor(tuple(inner_config["shape"]), dtype=inner_config["dtype"])
        obj._pre_serialization_keras_history = inner_config["keras_history"]
        return obj
    if class_name == "__tensor__":
        from fastnn.autograd import Tensor

        return Tensor(np.array(inner_config["value"], dtype=inner_config["dtype"]))
    if class_name == "__numpy__":
        return np.array(inner_config["value"], dtype=inner_config["dtype"])
    if class_name == "__bytes__":
        return inner_config["value"].encode("utf-8")
    if class_name == "__ellipsis__":
        return Ellipsis
    if class_name == "__slice__":
        return slice(*(deserialize_keras_object(inner_config[k], custom_objects=custom_objects, safe_mode=safe_mode)
                       for k in ("start", "stop", "step")))
    if class_name == "__lambda__":
        if safe_mode:
            raise ValueError(LAMBDA_REFUSED_MESSAGE)
        return func_load(inner_config["value"])

    module = config.get("module", None)
    registered_name = config.get("registered_name", class_name)
    for key, value in (("class_name", class_name), ("module", module), ("registered_name", registered_name)):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"Expected '{key}' to be a str or None, instead got {type(value)}\nFull config: {config}")

    if class_name == "function":
        fn_name = inner_config
        if not isinstance(fn_name, str):
            raise TypeError("Expected 'config' to be a non-null str for a function classname,\n"
                            f"instead got {type(fn_name)}\nFull config: {config}")
        return _retrieve_class_or_fn(fn_name, registered_name, module, obj_type="function", full_config=config,
                                     custom_objects=custom_objects)
    if not isinstance(inner_config, dict):
        raise TypeError(f"Expected 'config' to be a dict for {class_name},\ninstead got {type(inner_config)}\n"
                        f"Full config: {config}")

    if "shared_object_id" in config:  # seen before in this ObjectSharingScope: the same object again
        obj = get_shared_object(config["shared_object_id"])
        if obj is not None:
            return obj

    cls = _retrieve_class_or_fn(class_name, registered_name, module, obj_type="class", full_config=config,
                                custom_objects=custom_objects)
    if isinstance(cls, types.FunctionType):
        return cls
    if not hasattr(cls, "from_config"):
        raise TypeError(f"Unable to reconstruct an instance of '{class_name}' because the class is missing a "
                        f"`from_config()` method. Full object config: {config}")

    # from_config runs inside a custom-object scope (so the configs nested in this one find the same custom
    # objects) and a safe-mode scope (so a nested lambda is refused or accepted as this call says).
    with object_registration.CustomObjectScope(custom_objects), SafeModeScope(safe_mode):
        try:
            try:
                instance = cls.from_config(inner_config)
            except TypeError as e:
                raise TypeError(f"{cls} could not be deserialized properly. Please ensure that components that "
                                "are Python object instances (layers, models, etc.) returned by `get_config()` are "
                                "explicitly deserialized in the model's `from_config()` method."
                                f"\n\nconfig={config}.\n\nException encountered: {e}") from e
            build_config = config.get("build_config", None)
            if build_config and not getattr(instance, "built", True):
                build_from_config(instance, build_config)
            compile_config = config.get("compile_config", None)
            if compile_config:
                instance.compile_from_config(compile_config)
                instance.compiled = True
        except (KeyError, IndexError, AttributeError, OverflowError) as e:
            # A config that lacks an entry or names something that is not there (a damaged file): say which object
            # could not be rebuilt instead of surfacing a bare lookup error from deep inside.
            name = inner_config.get("name") if isinstance(inner_config, dict) else None
            raise ValueError(f"Could not deserialize {class_name}" + (f" '{name}'" if isinstance(name, str) else "")
                             + f": its config is malformed ({type(e).__name__}: {e}).") from e
    if "shared_object_id" in config:
        record_object_after_deserialization(instance, config["shared_object_id"])
    return instance


def _to_shape(shape):
    """A shape read back from JSON: lists of dims become tuples; a list of shapes stays a list of tuples."""
    if isinstance(shape, (list, tuple)) and all(d is None or isinstance(d, int) for d in shape):
        return tuple(shape)
    if isinstance(shape, (list, tuple)):
        return [_to_shape(s) for s in shape]
    if isinstance(shape, dict):
        return {k: _to_shape(v) for k, v in shape.items()}
    return shape


def build_from_config(instance, build_config):
    """Keras's ``Layer.build_from_config``: builds a layer for its recorded input shape (a layer's own
    ``build_from_config`` takes precedence)."""
    from fastnn.layers.layer import Layer

    own = getattr(type(instance), "build_from_config", None)
    if own is not None:
        instance.build_from_config(build_config)
        return
    if not isinstance(instance, Layer) or not build_config:
        return
    if build_config.get("input_shape") is not None:
        instance._maybe_build(_to_shape(build_config["input_shape"]))
    elif "shapes_dict" in build_config:
        instance.build(**{k: _to_shape(v) for k, v in build_config["shapes_dict"].items()})
        instance.built = True


_NOT_FOUND = object()


def _from_module_objects(config, custom_objects, module_objects):
    """Keras's ``module_objects`` branch: bare names (and configs naming a class of the table) resolve in the
    family's table unless a custom object has the name. _NOT_FOUND: go on with the general rules."""
    inner_config, fn_module_name, has_custom_object = None, None, False
    if isinstance(config, dict):
        if "config" in config:
            inner_config = config["config"]
        if "class_name" not in config:
            raise ValueError(f"Unknown `config` as a `dict`, config={config}")
        if custom_objects and (config["class_name"] in custom_objects
                               or config.get("registered_name") in custom_objects
                               or (isinstance(inner_config, str) and inner_config in custom_objects)):
            has_custom_object = True
        elif config["class_name"] in ("function", "__lambda__"):
            return _NOT_FOUND  # the general rules look functions up (and refuse lambdas in safe mode)
        else:
            if config.get("module", "_") is None:
                raise TypeError(f"Cannot deserialize object of type `{config['class_name']}`. If "
                                f"`{config['class_name']}` is a custom class, please register it using the "
                                "`@fastnn.saving.register_keras_serializable()` decorator.")
            config = config["class_name"]
    if has_custom_object:
        return _NOT_FOUND
    if not isinstance(config, str) or config not in module_objects:
        return _NOT_FOUND
    obj = module_objects[config]
    if isinstance(obj, type) and inner_config is not None:
        return obj.from_config(inner_config) if hasattr(obj, "from_config") else obj(**inner_config)
    return obj


# Keras module -> the fastnn module(s) that hold the same names.
_KERAS_TO_FASTNN = {
    "keras.layers": ("fastnn.layers",),
    "keras.initializers": ("fastnn.initializers",),
    "keras.regularizers": ("fastnn.regularizers",),
    "keras.constraints": ("fastnn.constraints",),
    "keras.losses": ("fastnn.losses",),
    "keras.metrics": ("fastnn.metrics",),
    "keras.optimizers": ("fastnn.optimizers",),
    "keras.optimizers.schedules": ("fastnn.optimizers.schedules",),
    "keras.activations": ("fastnn.activations",),
}
# Keras's source packages (the module Keras writes for classes it does not export) -> fastnn's families.
_KERAS_SRC_TO_FASTNN = {
    "layers": "fastnn.layers", "initializers": "fastnn.initializers", "regularizers": "fastnn.regularizers",
    "constraints": "fastnn.constraints", "losses": "fastnn.losses", "metrics": "fastnn.metrics",
    "optimizers": "fastnn.optimizers", "activations": "fastnn.activations",
}


class _DTypePolicyConfig:
    """Keras's ``DTypePolicy`` / ``FloatDTypePolicy`` configs: fastnn's layers keep a dtype policy as its dtype
    name, so a policy config deserializes to that name ("float32"), which every ``dtype=`` argument takes."""

    @classmethod
    def from_config(cls, config):
        from fastnn.layers.serialization import dtype_from_config

        return dtype_from_config({"class_name": "DTypePolicy", "config": config})


def _model_classes():
    from fastnn.layers.input_layer import Input, InputLayer
    from fastnn.models.functional import Functional
    from fastnn.models.model import Model
    from fastnn.models.sequential import Sequential

    return {"Sequential": Sequential, "Model": Model, "Functional": Functional, "Input": Input,
            "InputLayer": InputLayer, "DTypePolicy": _DTypePolicyConfig, "FloatDTypePolicy": _DTypePolicyConfig}


def _fastnn_symbol(api_module, name):
    """fastnn's object for Keras's ``api_module.name`` (None when fastnn has no such object)."""
    if api_module in ("keras", "keras.models", "keras.src.models.functional", "keras.src.models.sequential",
                      "keras.src.models.model"):
        obj = _model_classes().get(name)
        if obj is not None:
            return obj
    if api_module.startswith("keras.src.ops"):
        from fastnn.layers.symbolic_ops import OPS

        return OPS.get(name)
    targets = _KERAS_TO_FASTNN.get(api_module)
    if targets is None and api_module.startswith("keras.src."):
        family = api_module.split(".")[2]
        if family == "optimizers" and ".schedules" in api_module:
            targets = ("fastnn.optimizers.schedules",)
        elif family in _KERAS_SRC_TO_FASTNN:
            targets = (_KERAS_SRC_TO_FASTNN[family],)
    for target in targets or ():
        obj = getattr(importlib.import_module(target), name, None)
        if obj is not None and not isinstance(obj, types.ModuleType):
            return obj
    return None


# The fastnn modules searched for a built-in function written by its bare name (Keras's BUILTIN_MODULES, losses
# before metrics so that a loss name finds the loss function), then fastnn.ops (Lambda layers wrapping an op).
_BUILTIN_FUNCTION_MODULES = ("fastnn.activations", "fastnn.losses", "fastnn.metrics", "fastnn.initializers",
                             "fastnn.regularizers", "fastnn.constraints", "fastnn.optimizers", "fastnn.ops")


def _assert_no_registered_name_for_builtin(full_config, name, resolved_name):
    explicit = full_config.get("registered_name")
    if not explicit or explicit in (name, full_config.get("class_name")):
        return
    raise ValueError(f"`registered_name={explicit!r}` was provided in the config, but '{resolved_name}' resolved to "
                     "a Keras built-in and does not use registered names. Remove the `registered_name` field from "
                     f"the config. Full object config: {full_config}")


def _retrieve_class_or_fn(name, registered_name, module, obj_type, full_config, custom_objects=None):
    """Keras's lookup: a registered / custom object first (by registered name for classes, by name for
    functions), then the library's own object for the module, then the built-in functions by bare name."""
    if obj_type == "function":
        custom_obj = object_registration.get_registered_object(name, custom_objects=custom_objects)
    else:
        custom_obj = object_registration.get_registered_object(registered_name, custom_objects=custom_objects)
        if custom_obj is None and registered_name is not None and registered_name != name:
            # fastnn also finds a class passed in custom_objects under its class name when the config carries a
            # registered name ("package>Name") that was not registered in this process.
            custom_obj = object_registration.get_registered_object(name, custom_objects=custom_objects)
    if custom_obj is not None:
        return custom_obj

    if module:
        if module == "keras" or module.startswith("keras."):
            api_name = f"{module}.{name}"
            if api_name in NON_MODELING_APIS:
                raise ValueError(f"Cannot deserialize `{api_name}` because it is not a modeling function. "
                                 "Non-modeling APIs are disallowed during deserialization for security. Model "
                                 "configuration should only contains operations, layers, metrics, losses, or "
                                 "registered custom objects and functions.")
            obj = _fastnn_symbol(module, name)
            if obj is not None and (obj_type == "function" or isinstance(obj, type)):
                if not module.startswith("keras.src."):
                    _assert_no_registered_name_for_builtin(full_config, name, api_name)
                return obj
        if obj_type == "function" and module == "builtins":
            for candidate in _BUILTIN_FUNCTION_MODULES:
                obj = getattr(importlib.import_module(candidate), name, None)
                if callable(obj) and not isinstance(obj, type):
                    _assert_no_registered_name_for_builtin(full_config, name, f"{candidate}.{name}")
                    return obj
            # Keras <= 3.6 wrote registered functions by name only ("name" for "package>name").
            if ">" not in name:
                for custom_name, custom_object in (custom_objects or {}).items():
                    if custom_name.endswith(f">{name}"):
                        return custom_object
        if module == "fastnn" or module.startswith("fastnn."):
            # A fastnn class that Keras has no public name for (written with its own module): import only from
            # fastnn, and only classes that can rebuild themselves from a config.
            try:
                obj = vars(importlib.import_module(module)).get(name)
            except ModuleNotFoundError:
                raise TypeError(f"Could not deserialize {obj_type} '{name}' because its parent module {module} "
                                f"cannot be imported. Full object config: {full_config}") from None
            if (obj_type == "class" and isinstance(obj, type) and hasattr(obj, "from_config")) or \
                    (obj_type == "function" and isinstance(obj, types.FunctionType)):
                return obj

    raise TypeError(f"Could not locate {obj_type} '{name}'. Make sure custom classes and functions are decorated "
                    "with `@fastnn.saving.register_keras_serializable()` or passed in `custom_objects`. If they are "
                    "already decorated, make sure they are all imported so that the decorator is run before trying "
                    f"to load them. Full object config: {full_config}")
