"""String-identifier lookup shared by activations, initializers, losses, metrics, optimizers, ... (``get``)."""
from __future__ import annotations


def lookup(kind: str, table: dict, identifier, *, instantiate=True):
    """The object for ``identifier`` in ``table`` (case-sensitive, then lower-case); ValueError listing the valid
    names otherwise. Classes are instantiated with no arguments when ``instantiate``."""
    key = identifier
    obj = table.get(key)
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
    cls = lookup(kind, table, config["class_name"], instantiate=False)
    cfg = config.get("config") or {}
    return cls.from_config(cfg) if hasattr(cls, "from_config") else cls(**cfg)


def serialize(obj):
    if obj is None:
        return None
    if hasattr(obj, "get_config"):
        return {"class_name": type(obj).__name__, "config": obj.get_config()}
    return getattr(obj, "__name__", str(obj))
