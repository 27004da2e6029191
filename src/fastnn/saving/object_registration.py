"""Custom-object registration for (de)serialization, as ``keras.saving``'s object_registration.

A class or function becomes loadable by name in three ways, as in Keras 3:

- ``@register_keras_serializable(package="my_pkg")``: stored globally under ``"my_pkg>ClassName"``, the name
  ``serialize_keras_object`` writes as ``registered_name``;
- ``get_custom_objects()["MyLayer"] = MyLayer``: the global dictionary itself (a live reference);
- ``with custom_object_scope({"MyLayer": MyLayer}): ...``: only while the scope is open (per thread).

Example:
    >>> @fastnn.saving.register_keras_serializable(package="demo")
    ... class Scale(fastnn.layers.Layer):
    ...     def get_config(self):
    ...         return super().get_config()
    >>> fastnn.saving.get_registered_name(Scale)
    'demo>Scale'
"""
from __future__ import annotations

import inspect
import threading

# The global registry (Keras's GLOBAL_CUSTOM_OBJECTS / GLOBAL_CUSTOM_NAMES): registered name -> object, and the
# reverse map object -> registered name.
GLOBAL_CUSTOM_OBJECTS = {}
GLOBAL_CUSTOM_NAMES = {}

# Keras keeps the open custom-object scope in its per-thread global state; so does fastnn.
_scope_state = threading.local()


def _scope_dict() -> dict:
    """The custom objects of the innermost open ``custom_object_scope`` of this thread ({} when none is open)."""
    return getattr(_scope_state, "custom_objects", {})


class CustomObjectScope:
    """Exposes custom classes / functions to deserialization while the ``with`` block runs.

    Args:
        custom_objects: dictionary of ``{name: class or function}``. As in Keras, entering the scope replaces the
            custom objects of an enclosing scope (they come back when it exits).

    Example:
        >>> with fastnn.saving.custom_object_scope({"my_regularizer": my_regularizer}):
        ...     layer = fastnn.layers.Dense.from_config(config)
    """

    def __init__(self, custom_objects):
        self.custom_objects = custom_objects or {}
        self.backup = None

    def __enter__(self):
        self.backup = _scope_dict().copy()
        _scope_state.custom_objects = dict(self.custom_objects)
        return self

    def __exit__(self, *args, **kwargs):
        _scope_state.custom_objects = self.backup.copy()


# Alias, as in Keras.
custom_object_scope = CustomObjectScope


def get_custom_objects() -> dict:
    """A live reference to the global dictionary of custom objects (Keras's ``get_custom_objects``): entries added
    to it are found by every later deserialization. Objects of a ``custom_object_scope`` are not in it.

    Example:
        >>> fastnn.saving.get_custom_objects()["MyObject"] = MyObject
    """
    return GLOBAL_CUSTOM_OBJECTS


def register_keras_serializable(package="Custom", name=None):
    """Registers a class or function under ``"package>name"`` (``name`` defaults to its ``__name__``), so that
    configs that name it deserialize without ``custom_objects``. Classes must have a ``get_config()`` method.

    Args:
        package: the first part of the registered name.
        name: the second part (default: the object's ``__name__``).

    Returns:
        A decorator that registers the decorated object and returns it unchanged.
    """

    def decorator(arg):
        class_name = name if name is not None else arg.__name__
        registered_name = f"{package}>{class_name}"
        if inspect.isclass(arg) and not hasattr(arg, "get_config"):
            raise ValueError("Cannot register a class that does not have a get_config() method.")
        GLOBAL_CUSTOM_OBJECTS[registered_name] = arg
        GLOBAL_CUSTOM_NAMES[arg] = registered_name
        return arg

    return decorator


def get_registered_name(obj) -> str:
    """The name ``obj`` was registered under, or its ``__name__`` when it was never registered."""
    if obj in GLOBAL_CUSTOM_NAMES:
        return GLOBAL_CUSTOM_NAMES[obj]
    return obj.__name__


def get_registered_object(name, custom_objects=None, module_objects=None):
    """The class / function registered as ``name``: looked up in the open custom-object scope, then the global
    custom objects, then ``custom_objects``, then ``module_objects`` (Keras's order); None when none has it."""
    scope = _scope_dict()
    if name in scope:
        return scope[name]
    if name in GLOBAL_CUSTOM_OBJECTS:
        return GLOBAL_CUSTOM_OBJECTS[name]
    if custom_objects and name in custom_objects:
        return custom_objects[name]
    if module_objects and name in module_objects:
        return module_objects[name]
    return None
