"""String-identifier lookup shared by activations, initializers, losses, metrics, optimizers, ... (``get``)."""
from __future__ import annotations


def lookup(kind: str, table: dict, identifier, *, instantiate=True):
    """The object for ``identifier`` in ``table`` (case-sensitive, then lower-case); ValueError listing the valid
    names otherwise. Classes are instantiated with no arguments when ``instantiate``. As Keras's ``get``, a name
    of a custom object (an open ``custom_object_scope``, ``get_custom_objects()``, a registered "package>name")
    takes precedence."""
    obj = None
    if isinstance(identifier, str):
        from fastnn.saving.object_registration import get_registered_object

        obj = get_registered_object(identifier)
    if obj is None:
        obj = table.get(identifier)
    if obj is None and isinstance(identifier, str):
        obj = table.get(identifier.lower())
    if obj is None:
        valid = ", ".join(sorted(set(k for k in table if isinstance(k, str))))
        raise ValueError(f"Could not interpret {kind} identifier: {identifier!r}. Valid identifiers are: {valid}")
    if instantiate and isinstance(obj, type):
        return obj()
    return obj


def from_dict(kind: str, table: dict, config: dict):
    """Keras-style {"class_name": ..., "config": {...}} deserialisation."""
    if "class_name" not in config:
        raise ValueError(f"Could not interpret {kind} config {config!r}: it has no 'class_name'")
    if config["class_name"] in ("function", "__lambda__"):
        # A function written by serialize_keras_object (safe mode refuses lambdas there).
        from fastnn.saving.serialization_lib import deserialize_keras_object

        return deserialize_keras_object(config)
    # Keras's deserialize(..., module_objects=...): a custom object named by the config's registered name (or its
    # class name) first, then the family's own table.
    from fastnn.saving.object_registration import get_registered_object

    registered = config.get("registered_name")
    cls = (get_registered_object(registered) if isinstance(registered, str) else None) or \
        get_registered_object(config["class_name"])
    if cls is None:
        cls = lookup(kind, table, config["class_name"], instantiate=False)
    cfg = config.get("config") or {}
    return cls.from_config(cfg) if hasattr(cls, "from_config") else cls(**cfg)


def serialize(obj):
    """The bare {"class_name", "config"} form (fastnn's older configs); ``fastnn.saving.serialize_keras_object``
    writes Keras 3's full form."""
    if obj is None:
        return None
    if hasattr(obj, "get_config"):
        return {"class_name": type(obj).__name__, "config": obj.get_config()}
    return getattr(obj, "__name__", str(obj))
