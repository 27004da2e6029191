"""Saving and loading in Keras 3's formats (``keras.saving``): the ``.keras`` / ``.weights.h5`` files (saving_lib,
dispatched by extension in saving_api; legacy ``.h5`` in legacy_h5), atomic writes (file_io), object
(de)serialization and custom objects (serialization_lib, object_registration)."""
from fastnn.saving.object_registration import (CustomObjectScope, custom_object_scope, get_custom_objects,
                                               get_registered_name, get_registered_object,
                                               register_keras_serializable)
from fastnn.saving.saving_api import load_model, load_weights, save_model, save_weights
from fastnn.saving.serialization_lib import (SafeModeScope, deserialize_keras_object, enable_unsafe_deserialization,
                                             in_safe_mode, serialize_keras_object)

__all__ = [
    "save_model", "load_model", "save_weights", "load_weights",  # keras.saving.save_weights / load_weights too
    "register_keras_serializable", "get_custom_objects", "custom_object_scope", "CustomObjectScope",
    "get_registered_name", "get_registered_object", "serialize_keras_object", "deserialize_keras_object",
    "SafeModeScope", "in_safe_mode", "enable_unsafe_deserialization",
]
