"""Keras 3's native format: the ``.keras`` zip and the ``.weights.h5`` file (keras/src/saving/saving_lib.py).

A ``.keras`` file is a zip archive (members stored, not compressed) of

- ``metadata.json``: ``{"keras_version", "date_saved"}`` (fastnn adds ``"fastnn_version"``; Keras ignores it),
- ``config.json``: ``serialize_keras_object(model)``, the same JSON Keras writes,
- ``model.weights.h5``: the state of every saveable object (layers, the optimizer) in Keras's H5IOStore layout.

The HDF5 layout is Keras's ``_save_state`` walk: each saveable writes its own variables as datasets ``"0" .. "n"``
of a group ``<path>/vars`` whose attribute ``name`` is the object's name; ``<path>`` is the chain of attribute names
(or, inside a list, the snake-cased class name made unique: ``dense``, ``dense_1``) from the model to the object:

    vars                                       the model's own variables (usually none)
    layers/dense/vars/0, 1                     model.layers[i] (Sequential: no InputLayer; Functional: with it)
    layers/lstm/vars, layers/lstm/cell/vars    an RNN's cell
    layers/bidirectional/forward_layer/cell/vars, .../backward_layer/cell/vars
    layers/time_distributed/layer/vars         a Wrapper's inner layer
    layers/rnn/cell/cells/lstm_cell/vars       StackedRNNCells's cells
    layers/sequential/layers/dense/vars        a nested model's layers
    optimizer/vars/0 ..                        optimizer.variables in Keras's order (iterations, learning_rate, slots)

fastnn's objects do not keep their children under Keras's attribute names everywhere, and their ``dir()`` holds
fastnn-only attributes, so the walk does not list attributes as Keras does: ``_saveable_children`` is an explicit
table, per fastnn class, of the children Keras saves for the matching Keras class and the attribute names Keras
uses for them. User-defined layers and models (classes outside fastnn) are walked as Keras walks them: their
attributes in sorted order (private ones last), minus those of the fastnn base class.

A layer's own variables are ``layer._trainable_variables + layer._non_trainable_variables`` (Keras's
Layer.save_own_variables); loading checks the count and every shape before assigning anything to that layer, and
collects the failures of all objects into one ValueError (``skip_mismatch=True``: a warning) as Keras does.
Every file is written through ``fastnn.saving.file_io.atomic_write``; every file read is validated (zip members,
HDF5 links, dataset kinds and sizes) so that a corrupt file raises a ValueError / OSError that says what is wrong.
"""
from __future__ import annotations

import datetime
import io
import json
import math
import os
import re
import warnings
import zipfile

import numpy as np

from fastnn.saving.file_io import atomic_write

__all__ = ["save_model", "load_model", "save_weights_only", "load_weights_only", "H5IOStore"]

KERAS_VERSION = "3.15.1"  # the Keras release whose format (and metadata.json) these files follow

_CONFIG_FILENAME = "config.json"
_METADATA_FILENAME = "metadata.json"
_VARS_FNAME_H5 = "model.weights.h5"

# Guards against decompression / shape bombs, as Keras 3.15 (CWE-409 / CWE-789).
_ZIP_MEMBER_BOMB_FLOOR_BYTES = 1 << 32
_ZIP_MEMBER_MAX_EXPANSION = 100
_H5_DATASET_BOMB_FLOOR_BYTES = 1 << 32
_H5_DATASET_MAX_EXPANSION = 1000


def _h5py():
    try:
        import h5py
    except ImportError as e:  # pragma: no cover - h5py is a runtime dependency
        raise ImportError("h5py must be installed in order to save or load a model.") from e
    return h5py


# =====================================================================================================================
# Serialization: config.json is serialize_keras_object(model) inside an ObjectSharingScope, as Keras's saving_lib
# (an object used twice is written once with a shared_object_id and comes back as one object).
# =====================================================================================================================
def _serialize_model(model) -> dict:
    from fastnn.saving import serialization_lib

    with serialization_lib.ObjectSharingScope():
        return serialization_lib.serialize_keras_object(model)


def _deserialize_model(config, custom_objects, safe_mode):
    from fastnn.saving import serialization_lib

    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str) \
            or not isinstance(config.get("config"), dict):
        raise ValueError(f"Expected a serialized model ({{'class_name': ..., 'config': {{...}}}}), but received "
                         f"{_short(config)}")
    with serialization_lib.ObjectSharingScope():
        return serialization_lib.deserialize_keras_object(config, custom_objects=custom_objects, safe_mode=safe_mode)


def _short(value, limit=200):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


# =====================================================================================================================
# The HDF5 store (Keras's H5IOStore): groups <path>/vars holding datasets "0".."n".
# =====================================================================================================================
def _check_h5_link(parent, name):
    h5py = _h5py()
    link = parent.get(name, default=None, getclass=True, getlink=True)
    if link in (h5py.ExternalLink, h5py.SoftLink):
        raise ValueError(f"Not allowed: H5 file with {link.__name__}")


def safe_get_h5_group(parent, name):
    """Keras's safe_get_h5_group: the group at ``name`` (a "/" path), refusing links and non-groups."""
    h5py = _h5py()
    current = parent
    for part in name.split("/"):
        if not part:
            raise ValueError(f"Invalid path in H5 file: {name}")
        if part not in current:
            raise KeyError(name)
        _check_h5_link(current, part)
        current = current[part]
        if not isinstance(current, h5py.Group):
            raise ValueError(f"Invalid H5 file, expected Group but received {type(current)}")
    return current


def _read_h5_dataset(group, name):
    """The dataset ``name`` of ``group`` as a NumPy array, refusing links, external / virtual data, non-numeric
    dtypes and shape bombs (Keras's safe_get_h5_dataset)."""
    h5py = _h5py()
    if name not in group:
        raise KeyError(name)
    _check_h5_link(group, name)
    dataset = group[name]
    if not isinstance(dataset, h5py.Dataset):
        raise ValueError(f"Invalid H5 file, expected Dataset, received {type(dataset)}")
    if dataset.external:
        raise ValueError(f"Not allowed: H5 file with external Dataset: {dataset.external}")
    if dataset.is_virtual:
        raise ValueError("Not allowed: H5 file with virtual Dataset")
    if dataset.dtype.kind not in "biuf":
        raise ValueError(f"Invalid H5 file: dataset '{dataset.name}' has dtype {dataset.dtype}, not a numeric "
                         "variable")
    if dataset.attrs.get("dtype", None) == "bfloat16":
        raise ValueError(f"H5 dataset '{dataset.name}' holds bfloat16 values, which fastnn does not support")
    declared = math.prod(dataset.shape or ()) * dataset.dtype.itemsize
    stored = dataset.id.get_storage_size()
    if declared > _H5_DATASET_BOMB_FLOOR_BYTES and declared > _H5_DATASET_MAX_EXPANSION * stored:
        raise ValueError(f"Not allowed: H5 dataset '{name}' declares {declared} bytes but only {stored} are stored "
                         "on disk; refusing to load a potential decompression/shape bomb.")
    return np.array(dataset[()])


class _Entry:
    """The variables of one saveable: a dict-like view of ``<path>/vars`` (Keras's store passed to
    save_own_variables / load_own_variables)."""

    def __init__(self, store, path, group):
        self._store, self._path, self._group = store, path, group

    def __setitem__(self, key, value):
        self._store._write(self, key, value)

    def __getitem__(self, key):
        if self._group is None:
            raise KeyError(key)
        return _read_h5_dataset(self._group, key)

    def keys(self):
        return list(self._group.keys()) if self._group is not None else []

    def __len__(self):
        return len(self.keys())

    def __contains__(self, key):
        return self._group is not None and key in self._group


class H5IOStore:
    """Keras's H5IOStore over an h5py File: ``make(path, metadata)`` (write) creates ``<path>/vars`` with the
    metadata as attributes; ``get(path)`` (read) returns that group's datasets, or an empty entry when the file has
    no such group (the owner then fails its variable count check, naming itself)."""

    def __init__(self, path_or_io, mode="r"):
        if mode not in ("r", "w"):
            raise ValueError(f"`mode` should be either 'w' or 'r'. Received: {mode}")
        h5py = _h5py()
        self.mode = mode
        self.h5_file = h5py.File(path_or_io, mode=mode)

    def make(self, path, metadata=None):
        if self.mode != "w":
            raise ValueError("`make` is only allowed in write mode.")
        group = self.h5_file.create_group(f"{path}/vars" if path else "vars")
        for k, v in (metadata or {}).items():
            group.attrs[k] = v
        return _Entry(self, path, group)

    def _write(self, entry, key, value):
        if self.mode != "w":
            raise ValueError("Setting a value is only allowed in write mode.")
        entry._group[key] = np.asarray(value)

    def get(self, path):
        if self.mode != "r":
            raise ValueError("`get` is only allowed in read mode.")
        group = None
        if not path:
            if "vars" in self.h5_file:
                group = safe_get_h5_group(self.h5_file, "vars")
        elif path in self.h5_file:
            parent = safe_get_h5_group(self.h5_file, path)
            if "vars" in parent:
                group = safe_get_h5_group(parent, "vars")
        elif "_layer_checkpoint_dependencies" in self.h5_file:  # Keras 2.13's layout, as Keras reads it
            legacy = path.replace("layers", "_layer_checkpoint_dependencies")
            if legacy in self.h5_file:
                parent = safe_get_h5_group(self.h5_file, legacy)
                if "vars" in parent:
                    group = safe_get_h5_group(parent, "vars")
        return _Entry(self, path, group)

    def close(self):
        self.h5_file.close()


# =====================================================================================================================
# Which objects are saved, under which names (Keras's _walk_saveable, as an explicit table for fastnn's classes).
# =====================================================================================================================
def _to_snake_case(name):
    """keras.src.utils.naming.to_snake_case."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _is_saveable(obj):
    from fastnn.layers.layer import Layer
    from fastnn.optimizers.optimizer import Optimizer

    return isinstance(obj, (Layer, Optimizer))


def _is_fastnn_class(cls):
    return cls.__module__ == "fastnn" or cls.__module__.startswith("fastnn.")


_reference_dirs = {}


def _reference_dir(kind):
    """dir() of a plain fastnn Layer / Model: the attributes a user class inherits, which the walk skips (Keras's
    get_attr_skipset: dir(Layer())). For a Model subclass the Model attributes are skipped too, except the two
    Keras visits (layers, optimizer): fastnn's Model keeps fit/compile internals there that Keras does not save."""
    if kind not in _reference_dirs:
        from fastnn.layers.layer import Layer
        from fastnn.models.model import Model

        skip = set(dir(Layer(name="_saving_reference_layer")))
        if kind == "Model":
            skip |= set(dir(Model(name="_saving_reference_model"))) - {"layers", "optimizer"}
        skip.add("_self_unconditional_dependency_names")
        _reference_dirs[kind] = skip
    return _reference_dirs[kind]


def _name_key(name):
    """Keras visits private attributes last."""
    return f"~{name}" if name.startswith("_") else name


def _generic_children(obj, kind):
    skip = _reference_dir(kind)
    for attr in sorted(dir(obj), key=_name_key):
        if attr.startswith("__") or attr in skip:
            continue
        try:
            child = getattr(obj, attr)
        except Exception:  # as Keras: an attribute that raises is not visited
            continue
        yield attr, child


def _saveable_children(obj):
    """(attribute name, child) pairs in the order Keras's _walk_saveable visits them for the matching Keras object.

    The table (fastnn class -> what Keras 3.15 saves for it, checked against files Keras writes):
      Sequential            layers (model.layers: no InputLayer), optimizer
      Functional            layers (with the InputLayers), optimizer
      Model subclass        its attributes as Keras walks them (user layers, ``layers``, ``optimizer``)
      RNN, LSTM, GRU, SimpleRNN
                            cell (the weights live on the cell: layers/lstm/cell/vars)
      StackedRNNCells       cells (a list: cells/lstm_cell, cells/gru_cell, cells/lstm_cell_1)
      Bidirectional         backward_layer, forward_layer (sorted, as Keras's dir walk; not the original layer)
      MultiHeadAttention    key_dense, output_dense, query_dense, value_dense, _dropout_layer, [_gate_dense,]
                            _softmax (the public properties first, then the private ones, each sorted)
      Wrapper, TimeDistributed
                            layer
      LossScaleOptimizer    inner_optimizer (saved a second time on its own, as Keras does)
      every other fastnn layer (Dense, Conv*, pooling, BatchNormalization, Embedding, merging, reshaping, ...)
                            no children: only its own variables
      a user-defined Layer  its attributes as Keras walks them
    """
    from fastnn.layers.attention import MultiHeadAttention
    from fastnn.layers.bidirectional import Bidirectional
    from fastnn.layers.layer import Layer
    from fastnn.layers.rnn import RNN
    from fastnn.layers.rnn_cells import StackedRNNCells
    from fastnn.layers.wrappers import Wrapper
    from fastnn.models.functional import Functional
    from fastnn.models.model import Model
    from fastnn.models.sequential import Sequential
    from fastnn.optimizers.optimizer import LossScaleOptimizer, Optimizer

    cls = type(obj)
    if cls in (Sequential, Functional) or (isinstance(obj, (Sequential, Functional)) and _is_fastnn_class(cls)):
        children = [("layers", obj.layers)]
        if getattr(obj, "optimizer", None) is not None:
            children.append(("optimizer", obj.optimizer))
        return children
    if isinstance(obj, Optimizer):
        if isinstance(obj, LossScaleOptimizer):
            return [("inner_optimizer", obj.inner_optimizer)]
        return []
    if not _is_fastnn_class(cls):
        if isinstance(obj, (Sequential, Functional)):  # a user subclass: Keras's internal state first
            children = [("layers", obj.layers)]
            children += [(a, c) for a, c in _generic_children(obj, "Model") if a != "layers"]
            return children
        return list(_generic_children(obj, "Model" if isinstance(obj, Model) else "Layer"))
    if isinstance(obj, RNN):
        return [("cell", obj.cell)]
    if isinstance(obj, StackedRNNCells):
        return [("cells", list(obj.cells))]
    if isinstance(obj, Bidirectional):
        return [("backward_layer", obj.backward_layer), ("forward_layer", obj.forward_layer)]
    if isinstance(obj, MultiHeadAttention):
        if not obj.built or obj._shapes is None:
            return []
        children = [("key_dense", obj._key_dense), ("output_dense", obj._output_dense),
                    ("query_dense", obj._query_dense), ("value_dense", obj._value_dense),
                    ("_dropout_layer", obj._dropout_layer)]
        if obj._use_gate:
            children.append(("_gate_dense", obj._gate_dense))
        return children + [("_softmax", obj._softmax)]
    if isinstance(obj, Wrapper):
        return [("layer", obj.layer)]
    if isinstance(obj, Layer):
        return []
    return []


def _own_variables(layer):
    """Keras's Layer.save_own_variables order: the layer's own trainable variables, then its non-trainable ones
    (creation order; sublayers' variables belong to the sublayers)."""
    return list(layer._trainable_variables) + list(layer._non_trainable_variables)


def _object_repr(obj):
    name = getattr(obj, "name", None)
    if hasattr(obj, "built") and not hasattr(obj, "apply_gradients"):
        return f"<{type(obj).__name__} name={name}, built={obj.built}>"
    return f"<{type(obj).__name__} name={name}>"


def _save_own_variables(obj, entry):
    if hasattr(obj, "save_own_variables") and not _is_fastnn_class(type(obj)) and \
            _overrides(obj, "save_own_variables"):
        obj.save_own_variables(entry)  # a user layer taking control of its saved state, as in Keras
        return
    from fastnn.optimizers.optimizer import Optimizer

    if isinstance(obj, Optimizer):
        obj.save_own_variables(entry)
        return
    for i, v in enumerate(_own_variables(obj)):
        entry[str(i)] = np.asarray(v.numpy())


def _overrides(obj, method):
    from fastnn.layers.layer import Layer

    base = getattr(Layer, method, None)
    return getattr(type(obj), method, None) is not base


def _load_own_variables(obj, entry):
    """Keras's Layer.load_own_variables: the count must match, then each shape; nothing is assigned unless
    everything fits (so a failed layer keeps its previous weights)."""
    from fastnn.optimizers.optimizer import Optimizer

    if isinstance(obj, Optimizer):
        obj.load_own_variables(entry)
        return
    if hasattr(obj, "load_own_variables") and not _is_fastnn_class(type(obj)) and \
            _overrides(obj, "load_own_variables"):
        obj.load_own_variables(entry)
        return
    variables = _own_variables(obj)
    keys = entry.keys()
    if len(keys) != len(variables):
        if not variables and not obj.built:
            raise ValueError(
                f"Layer '{obj.name}' was never built and thus it doesn't have any variables. However the weights "
                f"file lists {len(keys)} variables for this layer.\nIn most cases, this error indicates that either:"
                "\n\n1. The layer is owned by a parent layer that implements a `build()` method, but calling the "
                f"parent's `build()` method did NOT create the state of the child layer '{obj.name}'. A `build()` "
                "method must create ALL state for the layer, including the state of any children layers.\n\n2. You "
                f"need to implement the `def build_from_config(self, config)` method on layer '{obj.name}', to "
                "specify how to rebuild it during loading. In this case, you might also want to implement the "
                "method that generates the build config at saving time, `def get_build_config(self)`. The method "
                "`build_from_config()` is meant to create the state of the layer (i.e. its variables) upon "
                "deserialization.")
        raise ValueError(f"Layer '{obj.name}' expected {len(variables)} variables, but received {len(keys)} "
                         f"variables during loading. Expected: {[v.name for v in variables]}")
    values = []
    for i, v in enumerate(variables):
        value = entry[str(i)]
        if tuple(value.shape) != tuple(v.shape):
            raise ValueError(
                f"Layer '{obj.name}' weight '{getattr(v, 'path', v.name)}': the shape of the target variable and the "
                "shape of the target value in `variable.assign(value)` must match. "
                f"variable.shape={tuple(v.shape)}, Received: value.shape={tuple(value.shape)}")
        if value.dtype.kind not in "biuf":
            raise ValueError(f"Layer '{obj.name}' weight '{v.name}': expected a numeric array, but the file holds "
                             f"dtype {value.dtype}")
        values.append(value.astype(v.dtype, copy=False))
    for v, value in zip(variables, values):
        v.assign(value)


def _get_unique_name(name, used_names):
    if name in used_names:
        used_names[name] += 1
        return f"{name}_{used_names[name]}"
    used_names[name] = 0
    return name


def _join(path, name):
    return f"{path}/{name}" if path else name


def _save_state(obj, store, path, visited):
    if id(obj) in visited:
        return
    name = getattr(obj, "name", None)
    entry = store.make(path, metadata={"name": name} if isinstance(name, str) else None)
    _save_own_variables(obj, entry)
    visited.add(id(obj))
    for attr, child in _saveable_children(obj):
        if _is_saveable(child):
            _save_state(child, store, _join(path, attr), visited)
        elif isinstance(child, (list, tuple, dict)):
            _save_container_state(child, store, _join(path, attr), visited, set())


def _save_container_state(container, store, path, visited, visited_containers):
    if id(container) in visited_containers:
        return
    visited_containers.add(id(container))
    used = {}
    items = list(container.values()) if isinstance(container, dict) else list(container)
    for item in items:
        if _is_saveable(item):
            # As Keras: named by class, not by the (autogenerated, unreproducible) object name.
            _save_state(item, store, _join(path, _get_unique_name(_to_snake_case(type(item).__name__), used)),
                        visited)
        elif isinstance(item, (list, tuple, dict)):
            _save_container_state(item, store, _join(path, _get_unique_name("container", used)), visited,
                                  visited_containers)


def _load_state(obj, store, path, visited, failed, errors):
    """Keras's _load_state: the object's own variables, then its children; a failure is recorded (not raised) and
    an object counts as loaded only if it and its children loaded."""
    if id(obj) in visited:
        return
    failure = False
    try:
        _load_own_variables(obj, store.get(path))
    except Exception as e:  # noqa: BLE001 - every failure is reported together, as Keras does
        failed.add(id(obj))
        errors[id(obj)] = (obj, e)
        failure = True
    before = len(failed)
    for attr, child in _saveable_children(obj):
        if _is_saveable(child):
            _load_state(child, store, _join(path, attr), visited, failed, errors)
        elif isinstance(child, (list, tuple, dict)):
            _load_container_state(child, store, _join(path, attr), visited, failed, errors, set())
    newly_failed = len(failed) - before
    if not failure:
        if newly_failed <= 0:
            visited.add(id(obj))
        if id(obj) in failed:
            failed.remove(id(obj))
            errors.pop(id(obj))


def _load_container_state(container, store, path, visited, failed, errors, visited_containers):
    if id(container) in visited_containers:
        return
    visited_containers.add(id(container))
    used = {}
    items = list(container.values()) if isinstance(container, dict) else list(container)
    for item in items:
        if _is_saveable(item):
            _load_state(item, store, _join(path, _get_unique_name(_to_snake_case(type(item).__name__), used)),
                        visited, failed, errors)
        elif isinstance(item, (list, tuple, dict)):
            _load_container_state(item, store, _join(path, _get_unique_name("container", used)), visited, failed,
                                  errors, visited_containers)


def _raise_loading_failure(errors, warn_only=False):
    first = next(iter(errors.values()))
    saveable, error = first
    msg = (f"A total of {len(errors)} objects could not be loaded. Example error message for object "
           f"{_object_repr(saveable)}:\n\n{error}\n\nList of objects that could not be loaded:\n"
           f"[{', '.join(_object_repr(obj) for obj, _ in errors.values())}]")
    if warn_only:
        warnings.warn(msg, stacklevel=3)
    else:
        raise ValueError(msg)


def _write_state(model, path_or_io):
    store = H5IOStore(path_or_io, mode="w")
    try:
        _save_state(model, store, "", set())
    finally:
        store.close()


def _read_state(model, path_or_io, source, skip_mismatch=False):
    """Loads the weights store into ``model``; raises (or warns, ``skip_mismatch``) about what did not fit."""
    try:
        store = H5IOStore(path_or_io, mode="r")
    except OSError as e:
        raise OSError(f"Unable to read the weights in {source}: not a valid HDF5 file ({e})") from e
    except Exception as e:  # noqa: BLE001 - h5py raises RuntimeError / OverflowError for some corrupt superblocks
        raise OSError(f"Unable to read the weights in {source}: corrupt HDF5 file ({type(e).__name__}: {e})") from e
    try:
        failed, errors = set(), {}
        _load_state(model, store, "", set(), failed, errors)  # each object's failure is recorded, not raised
    finally:
        try:
            store.close()
        except Exception:  # noqa: BLE001 - closing a corrupt file must not hide the real error
            pass
    if failed:
        _raise_loading_failure(errors, warn_only=skip_mismatch)


def _weights_bytes(model) -> bytes:
    buf = io.BytesIO()
    _write_state(model, buf)
    return buf.getvalue()


# =====================================================================================================================
# The .keras archive.
# =====================================================================================================================
def _metadata_json():
    import fastnn

    return json.dumps({"keras_version": KERAS_VERSION,
                       "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
                       "fastnn_version": fastnn.__version__})


def _archive_bytes(model, weights_format="h5") -> bytes:
    if weights_format != "h5":
        raise ValueError("Unknown `weights_format` argument. Expected 'h5' or 'npz'. "
                         f"Received: weights_format={weights_format}"
                         if weights_format != "npz" else
                         "weights_format='npz' is not supported by fastnn; use the default 'h5'")
    config_json = json.dumps(_serialize_model(model))
    weights = _weights_bytes(model)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(_METADATA_FILENAME, _metadata_json())
        zf.writestr(_CONFIG_FILENAME, config_json)
        zf.writestr(_VARS_FNAME_H5, weights)
    return out.getvalue()


def save_model(model, filepath, weights_format="h5", zipped=True):
    """Saves ``model`` as a ``.keras`` archive (config, metadata, weights and optimizer state), atomically.

    ``filepath``: a path ending in ``.keras``, or a binary file object (written as it is, not atomically)."""
    if not model.built:
        warnings.warn("You are saving a model that has not yet been built. It might not contain any weights yet. "
                      "Consider building the model first by calling it on some data.", stacklevel=2)
    if not zipped:
        raise ValueError("zipped=False (a model saved as a folder) is not supported by fastnn; save a `.keras` "
                         "file")
    if isinstance(filepath, io.IOBase):
        filepath.write(_archive_bytes(model, weights_format))
        return
    filepath = os.fspath(filepath)
    if not str(filepath).endswith(".keras"):
        raise ValueError(f"Invalid `filepath` argument: expected a `.keras` extension. Received: filepath={filepath}")
    data = _archive_bytes(model, weights_format)
    with atomic_write(filepath, "wb") as f:
        f.write(data)


def _open_archive(fileobj, source):
    try:
        return zipfile.ZipFile(fileobj, "r")
    except zipfile.BadZipFile as e:
        raise ValueError(f"{source} is not a valid `.keras` file: it is not a zip archive ({e})") from e
    except (OSError, EOFError) as e:
        raise ValueError(f"{source} is not a valid `.keras` file: the zip archive cannot be read ({e})") from e


def _read_member(archive, name, source):
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise ValueError(f"{source} is not a Keras model archive: it has no `{name}` (members: "
                         f"{archive.namelist()[:10]})") from None
    if info.file_size > _ZIP_MEMBER_BOMB_FLOOR_BYTES and \
            info.file_size > _ZIP_MEMBER_MAX_EXPANSION * info.compress_size:
        raise ValueError(f"Not allowed: ZIP member '{name}' declares {info.file_size} bytes but only "
                         f"{info.compress_size} are stored on disk; refusing to load a potential decompression bomb.")
    try:
        with archive.open(name, "r") as f:
            return f.read()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, RuntimeError) as e:
        # RuntimeError: zipfile's "encrypted member" / unsupported feature; zlib errors are BadZipFile / OSError.
        raise ValueError(f"{source}: the archive member `{name}` is corrupt ({type(e).__name__}: {e})") from e
    except Exception as e:  # zlib.error and friends
        raise ValueError(f"{source}: the archive member `{name}` is corrupt ({type(e).__name__}: {e})") from e


def _config_from_json(raw, source):
    try:
        config = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ValueError(f"{source}: config.json is not valid JSON ({type(e).__name__}: {e})") from e
    if not isinstance(config, dict):
        raise ValueError(f"{source}: config.json must hold a serialized model (a JSON object), but it holds "
                         f"{type(config).__name__}")
    return config


def _model_from_config(config, custom_objects, compile, safe_mode, source):
    config = dict(config)
    if not compile:
        config["compile_config"] = None
    try:
        return _deserialize_model(config, custom_objects, safe_mode)
    except (KeyError, AttributeError, IndexError, RecursionError, OverflowError) as e:
        # A config that does not have the structure of a serialized model: say so rather than leak the lookup.
        raise ValueError(f"{source}: config.json is not a valid serialized model ({type(e).__name__}: {e})") from e


def _load_from_archive(fileobj, source, custom_objects, compile, safe_mode):
    with _open_archive(fileobj, source) as archive:
        config = _config_from_json(_read_member(archive, _CONFIG_FILENAME, source), source)
        model = _model_from_config(config, custom_objects, compile, safe_mode, source)
        if _VARS_FNAME_H5 not in archive.namelist():
            raise ValueError(f"{source}: expected a {_VARS_FNAME_H5} file in the archive"
                             + (" (fastnn does not read model.weights.npz)"
                                if "model.weights.npz" in archive.namelist() else ""))
        weights = _read_member(archive, _VARS_FNAME_H5, source)
    _read_state(model, io.BytesIO(weights), source)
    return model


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Loads a ``.keras`` archive written by fastnn or Keras 3: the model from its config, compiled (unless
    ``compile=False``) with its optimizer built on ``model.trainable_variables``, then every variable assigned."""
    if isinstance(filepath, io.IOBase):
        return _load_from_archive(filepath, "the file object", custom_objects, compile, safe_mode)
    filepath = os.fspath(filepath)
    if not str(filepath).endswith(".keras"):
        raise ValueError(f"Invalid filename: expected a `.keras` extension. Received: filepath={filepath}")
    with open(filepath, "rb") as f:
        return _load_from_archive(f, filepath, custom_objects, compile, safe_mode)


# =====================================================================================================================
# Weights only (.weights.h5): the same store, with the optimizer's variables.
# =====================================================================================================================
def save_weights_only(model, filepath):
    """Writes ``model``'s state (layers and optimizer) to a ``.weights.h5`` file, atomically."""
    if not model.built:
        raise ValueError("You are saving a model that has not yet been built. Try building the model first by "
                         "calling it on some data or by using `build()`.")
    filepath = os.fspath(filepath)
    if not str(filepath).endswith(".weights.h5"):
        raise ValueError(f"The filename must end in `.weights.h5`. Received: filepath={filepath}")
    data = _weights_bytes(model)
    with atomic_write(filepath, "wb") as f:
        f.write(data)


def _build_optimizer_for_loading(model, has_optimizer_state):
    """A compiled model whose optimizer has not stepped yet gets it built on ``model.trainable_variables`` before a
    file with optimizer state is read, so that state is restored rather than skipped (Keras builds it in fit
    before callbacks run, and in compile_from_config when loading a model; fastnn's fit builds it lazily)."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and has_optimizer_state and not optimizer.built:
        optimizer.build(model.trainable_variables)


def load_weights_only(model, filepath, skip_mismatch=False):
    """Loads a ``.weights.h5`` file (or the weights of a ``.keras`` archive) into the built ``model``.

    Raises a ValueError naming every object whose variables do not fit (count or shape); ``skip_mismatch=True``
    warns instead and leaves those objects as they were."""
    if not model.built:
        raise ValueError("You are loading weights into a model that has not yet been built. Try building the model "
                         "first by calling it on some data or by using `build()`.")
    filepath = os.fspath(filepath)
    if str(filepath).endswith(".keras"):
        with open(filepath, "rb") as f:
            with _open_archive(f, filepath) as archive:
                data = _read_member(archive, _VARS_FNAME_H5, filepath)
        source = io.BytesIO(data)
    elif str(filepath).endswith("weights.h5"):
        if not os.path.exists(filepath):
            raise FileNotFoundError(f"No such file: {filepath}")
        if os.path.isdir(filepath):
            raise IsADirectoryError(f"{filepath} is a directory, not a weights file")
        source = filepath
    else:
        raise ValueError(f"File format not supported: filepath={filepath}. load_weights_only reads `.weights.h5` "
                         "and `.keras` files.")
    _maybe_build_optimizer_from(model, source, filepath)
    _read_state(model, source, filepath, skip_mismatch=skip_mismatch)


def _maybe_build_optimizer_from(model, source, filepath):
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or optimizer.built:
        return
    h5py = _h5py()
    try:
        with h5py.File(source, "r") as f:
            has_state = "optimizer" in f and isinstance(f["optimizer"], h5py.Group) and "vars" in f["optimizer"] \
                and len(f["optimizer"]["vars"]) > 2
    except (OSError, RuntimeError) as e:
        raise OSError(f"Unable to read the weights in {filepath}: not a valid HDF5 file ({e})") from e
    except Exception:  # noqa: BLE001 - a malformed group is reported by the load itself
        has_state = False
    if isinstance(source, io.BytesIO):
        source.seek(0)
    _build_optimizer_for_loading(model, has_state)
