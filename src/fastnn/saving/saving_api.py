"""``fastnn.saving.save_model`` / ``load_model`` and the functions behind ``Model.save`` / ``save_weights`` /
``load_weights``: the file format chosen by the extension, as keras/src/saving/saving_api.py does.

- ``.keras``: Keras 3's native zip (fastnn.saving.saving_lib).
- ``.weights.h5``: Keras 3's weights file (layers and optimizer state).
- ``.h5`` / ``.hdf5`` (not ``.weights.h5``): the legacy Keras HDF5 format (fastnn.saving.legacy_h5): whole models
  for save_model / load_model, Keras 2 / tf.keras weights files for load_weights (``by_name`` too).
"""
from __future__ import annotations

import os
import warnings
import zipfile

from fastnn.saving import saving_lib

__all__ = ["save_model", "load_model", "save_weights", "load_weights"]


def _legacy_h5():
    try:
        from fastnn.saving import legacy_h5
    except ImportError as e:  # the legacy lane not merged into this build
        raise ImportError("The legacy HDF5 format (.h5 / .hdf5) needs fastnn.saving.legacy_h5, which this build of "
                          "fastnn does not have") from e
    return legacy_h5


def _is_legacy_h5(filepath):
    path = str(filepath)
    return path.endswith((".h5", ".hdf5")) and not path.endswith(".weights.h5")


def _ask_to_proceed_with_overwrite(filepath):
    """Keras's io_utils.ask_to_proceed_with_overwrite: asks on stdin; False when the user answers "n"."""
    answer = input(f"[WARNING] {filepath} already exists - overwrite? [y/n]").strip().lower()
    while answer not in ("y", "n"):
        answer = input('Enter "y" (overwrite) or "n" (cancel).').strip().lower()
    if answer == "n":
        return False
    print("[TIP] Next time specify overwrite=True!")
    return True


def _may_write(filepath, overwrite):
    try:
        exists = os.path.exists(filepath)
    except TypeError:
        exists = False
    return not exists or overwrite or _ask_to_proceed_with_overwrite(filepath)


def save_model(model, filepath, overwrite=True, zipped=None, **kwargs):
    """Saves ``model`` to ``filepath``: a ``.keras`` archive, or a legacy ``.h5`` / ``.hdf5`` file.

    Args:
        overwrite: False asks on stdin before replacing an existing file (as Keras).
        zipped: must be True or None (fastnn does not save models as folders).
        include_optimizer: (``.h5`` only) whether the optimizer state is written; default True.
    """
    include_optimizer = kwargs.pop("include_optimizer", True)
    save_format = kwargs.pop("save_format", False)
    if save_format:
        if str(filepath).endswith((".h5", ".hdf5", ".keras")):
            warnings.warn("The `save_format` argument is deprecated in Keras 3. We recommend removing this argument "
                          f"as it can be inferred from the file path. Received: save_format={save_format}",
                          stacklevel=2)
        else:
            raise ValueError("The `save_format` argument is deprecated in Keras 3. Please remove this argument and "
                             "pass a file path with either `.keras` or `.h5` extension."
                             f"Received: save_format={save_format}")
    if kwargs:
        raise ValueError(f"The following argument(s) are not supported: {list(kwargs.keys())}")
    if _is_legacy_h5(filepath):
        warnings.warn("You are saving your model as an HDF5 file via `model.save()` or "
                      "`keras.saving.save_model(model)`. This file format is considered legacy. We recommend using "
                      "instead the native Keras format, e.g. `model.save('my_model.keras')` or "
                      "`keras.saving.save_model(model, 'my_model.keras')`. ", stacklevel=2)
    if zipped is None:
        zipped = True
    if os.path.isdir(filepath):
        raise IsADirectoryError(f"Cannot save the model to {filepath}: it is a directory. Pass a file path ending "
                                "in `.keras`.")
    if not _may_write(filepath, overwrite):
        return None
    if not zipped:
        return saving_lib.save_model(model, filepath, zipped=False)
    if str(filepath).endswith(".keras"):
        return saving_lib.save_model(model, filepath)
    if _is_legacy_h5(filepath):
        return _legacy_h5().save_model_to_hdf5(model, filepath, overwrite, include_optimizer)
    raise ValueError("Invalid filepath extension for saving. Please add either a `.keras` extension for the native "
                     "Keras format (recommended) or a `.h5` extension. Use `model.export(filepath)` if you want to "
                     "export a SavedModel for use with TFLite/TFServing/etc. "
                     f"Received: filepath={filepath}.")


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Loads a model saved by ``model.save()`` (fastnn or Keras): a ``.keras`` archive or a legacy ``.h5`` file.

    Args:
        custom_objects: dict of names to the classes / functions of a model's custom objects.
        compile: False returns the model uncompiled.
        safe_mode: False allows deserializing Python lambdas (code from the file; only for files you trust).
    """
    path = str(filepath)
    if path.endswith(".keras"):
        if os.path.isdir(filepath):
            raise ValueError(f"File format not supported: filepath={filepath}. {filepath} is a directory; fastnn "
                             "loads `.keras` zip files.")
        if not os.path.exists(filepath):
            raise ValueError(f"File not found: filepath={filepath}. Please ensure the file is an accessible "
                             "`.keras` zip file.")
        if not zipfile.is_zipfile(filepath):
            raise ValueError(f"{filepath} is not a valid `.keras` file: it is not a zip archive (the file is "
                             "truncated, corrupt, or of another format).")
        return saving_lib.load_model(filepath, custom_objects=custom_objects, compile=compile, safe_mode=safe_mode)
    if path.endswith((".h5", ".hdf5")):
        if not os.path.exists(filepath):
            raise FileNotFoundError(f"No file or directory found at {filepath}")
        return _legacy_h5().load_model_from_hdf5(filepath, custom_objects=custom_objects, compile=compile,
                                                 safe_mode=safe_mode)
    raise ValueError(f"File format not supported: filepath={filepath}. Keras 3 only supports V3 `.keras` files, "
                     "legacy H5 format files (`.h5` extension). Note that the legacy SavedModel format is not "
                     "supported by `load_model()` in Keras 3. In order to reload a TensorFlow SavedModel as an "
                     "inference-only layer in Keras 3, use `keras.layers.TFSMLayer("
                     f"{filepath}, call_endpoint='serving_default')` (note that your `call_endpoint` might have a "
                     "different name).")


def save_weights(model, filepath, overwrite=True, **kwargs):
    """``model.save_weights``: a ``.weights.h5`` file (Keras 3), or a legacy ``.h5`` weights file (tf.keras)."""
    if kwargs.pop("max_shard_size", None) is not None:
        raise ValueError("max_shard_size (sharded weights files) is not supported by fastnn")
    if kwargs:
        raise ValueError(f"Invalid keyword arguments: {kwargs}")
    path = str(filepath)
    legacy = _is_legacy_h5(filepath)
    if not path.endswith(".weights.h5") and not legacy:
        raise ValueError(f"The filename must end in `.weights.h5`. Received: filepath={path}")
    if os.path.isdir(filepath):
        raise IsADirectoryError(f"Cannot save the weights to {filepath}: it is a directory")
    if not _may_write(filepath, overwrite):
        return
    if legacy:
        _legacy_h5().save_weights_to_hdf5(model, filepath)
        return
    saving_lib.save_weights_only(model, filepath)


def load_weights(model, filepath, skip_mismatch=False, **kwargs):
    """``model.load_weights``: ``.weights.h5`` and ``.keras`` files (Keras 3), legacy ``.h5`` / ``.hdf5`` weights
    (``by_name=True`` matches layers by name, as Keras 2)."""
    path = str(filepath)
    by_name = kwargs.pop("by_name", None)
    if kwargs.pop("objects_to_skip", None) is not None:
        raise ValueError("objects_to_skip is not supported by fastnn")
    if kwargs:
        raise ValueError(f"Invalid keyword arguments: {kwargs}")
    if path.endswith(".keras") or path.endswith(".weights.h5"):
        if by_name is not None:
            raise ValueError(f"`by_name` only supports loading legacy '.h5' or '.hdf5' files. Received: {filepath}")
        saving_lib.load_weights_only(model, filepath, skip_mismatch=skip_mismatch)
        return
    if path.endswith((".h5", ".hdf5")):
        if not os.path.exists(filepath):
            raise FileNotFoundError(f"No such file or directory: {filepath}")
        _legacy_h5().load_weights_from_hdf5(model, filepath, by_name=bool(by_name), skip_mismatch=skip_mismatch)
        return
    raise ValueError(f"File format not supported: filepath={filepath}. Keras 3 only supports V3 `.keras` files, "
                     "`.weights.h5` files, legacy H5 format files (`.h5` extension), or Orbax checkpoints.")
