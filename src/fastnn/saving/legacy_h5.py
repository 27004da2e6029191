"""The legacy Keras HDF5 format: full-model ``.h5`` files (``model.save("m.h5")``) and the weights-only ``.h5`` files
of Keras 2 / tf.keras, where most published pretrained weights live.

The reference is Keras 3.15's ``keras/src/legacy/saving/legacy_h5_format.py`` (with ``saving_utils.py``,
``serialization.py`` and ``json_utils.py`` beside it) and tf.keras 2's ``saving/legacy/hdf5_format.py``; the file
layout, attribute names, weight order and messages are theirs:

    /                        attrs: keras_version, backend, model_config (JSON), training_config (JSON, compiled)
    /model_weights           attrs: layer_names (every layer of ``model.layers``), backend, keras_version
    /model_weights/<layer>   attrs: weight_names; one dataset per name ("dense/kernel" nests as dense/kernel)
    /model_weights/top_level_model_weights      the model's own variables (usually none)
    /optimizer_weights       attrs: weight_names; the optimizer's variables in Keras's order

A weights-only file is the ``model_weights`` group at the root of the file. Each layer's weights are stored in
Keras's legacy order, ``layer.trainable_weights + layer.non_trainable_weights`` (so a nested model's group holds
all its trainable weights, then all its non-trainable ones). Loading matches layers with weights in order
(topological loading) or by name (``by_name=True``).

Keras 2 / tf.keras model configs (``model_config``) are the legacy form: no "module" keys, InputLayer
``batch_input_shape``, ``inbound_nodes`` as nested lists ``[[layer_name, node_index, tensor_index, kwargs]]`` (a
nested model counting the node of its own construction), dtype strings and a few Keras 2 argument names. They are
converted here to the configs fastnn's ``from_config`` takes (``_convert_model_config``), so files of Keras 3 and
of Keras 2 load alike.

Everything read from a file is validated: a missing, truncated or non-HDF5 file, a file without a model config,
a malformed config or a weights file for another architecture raises a Python exception that says what is wrong.
Loading never runs code from the file unless ``safe_mode=False`` (a Keras 2 ``Lambda`` layer holds marshalled
Python bytecode).
"""
from __future__ import annotations

import io
import json
import os
import warnings

import numpy as np

from fastnn.saving.file_io import atomic_write

# The Keras version whose legacy layout these files follow, written as keras_version (Keras reads it only to
# recognise Keras 1 files); the backend attribute names the library that wrote the weights.
KERAS_VERSION = "3.15.1"
BACKEND = "fastnn"
HDF5_OBJECT_HEADER_LIMIT = 64512  # Keras's limit for one attribute; longer lists are chunked as name0, name1, ...

# Keras 2 class names that are another name of a fastnn class.
_CLASS_ALIASES = {"Model": "Functional"}
# Keras 2's tf.nn activation names (tf.keras serialized tf.nn.softmax as "softmax_v2").
_ACTIVATION_ALIASES = {"softmax_v2": "softmax"}
_LAMBDA_DEPRECATED_ARGS = ("module", "function_type", "output_shape_type", "output_shape_module")  # Keras's list
_RNN_CLASSES = ("LSTM", "GRU", "SimpleRNN", "RNN")
_MODEL_CLASSES = ("Sequential", "Functional", "Model")


def _h5py():
    try:
        import h5py
    except ImportError as e:  # pragma: no cover - h5py is a dependency
        raise ImportError("The legacy Keras HDF5 format requires h5py. Could not import h5py.") from e
    return h5py


# ---------------------------------------------------------------------------------------------------------------
# Opening and reading files safely
# ---------------------------------------------------------------------------------------------------------------
class _OpenForReading:
    """``with _OpenForReading(filepath) as f``: an h5py.File (or the h5py File / Group passed in) opened for
    reading, with the errors of a missing or unreadable file turned into clear ones. Errors h5py raises while the
    body reads (a truncated or corrupt file) become ValueError naming the file."""

    def __init__(self, filepath, what):
        self.filepath, self.what, self.file, self.opened = filepath, what, None, False

    def __enter__(self):
        h5py = _h5py()
        if isinstance(self.filepath, (h5py.File, h5py.Group)):
            self.file = self.filepath
            return self.file
        path = os.fspath(self.filepath)
        if not os.path.exists(path):
            raise FileNotFoundError(f"{self.what}: no file found at {path!r}")
        if os.path.isdir(path):
            raise IsADirectoryError(f"{self.what}: {path!r} is a directory, not an HDF5 (.h5) file")
        try:
            is_hdf5 = h5py.is_hdf5(path)
        except OSError as e:
            raise OSError(f"{self.what}: cannot read {path!r}: {e}") from e
        if not is_hdf5:
            raise ValueError(f"{self.what}: {path!r} is not an HDF5 file (a legacy Keras .h5 file is HDF5; the file "
                             "is of another format, truncated or corrupt)")
        try:
            self.file = h5py.File(path, mode="r")
        except OSError as e:
            raise OSError(f"{self.what}: unable to open {path!r} as an HDF5 file (truncated or corrupt?): {e}") from e
        self.opened = True
        return self.file

    def __exit__(self, exc_type, exc, tb):
        if self.opened:
            try:
                self.file.close()
            except Exception:  # noqa: BLE001 - closing a corrupt file must not hide the first error
                pass
        if exc_type is not None and issubclass(exc_type, OSError) and not issubclass(exc_type, FileNotFoundError):
            # h5py's errors while reading a damaged file (OSError "Can't read data" ...): one message naming the file.
            name = getattr(self.file, "filename", self.filepath)
            raise ValueError(f"{self.what}: the HDF5 file {name!r} is truncated, corrupt or not in the Keras legacy "
                             f"layout: {type(exc).__name__}: {exc}") from exc
        return False


def _get_group(parent, name):
    """``parent[name]`` as an h5py Group (Keras's safe_get_h5_group: no soft or external links)."""
    h5py = _h5py()
    current = parent
    for part in name.split("/"):
        if not part:
            raise ValueError(f"Invalid path in H5 file: {name!r}")
        if part not in current:
            raise ValueError(f"Invalid H5 file: group {name!r} not found in {current.name!r}")
        link = current.get(part, getclass=True, getlink=True)
        if link in (h5py.ExternalLink, h5py.SoftLink):
            raise ValueError(f"Not allowed: H5 file with {link.__name__} ({name!r})")
        current = current[part]
        if not isinstance(current, h5py.Group):
            raise ValueError(f"Invalid H5 file, expected Group at {name!r} but received {type(current).__name__}")
    return current


def _get_dataset(group, name):
    """``group[name]`` (a path such as "dense/kernel:0") read into a NumPy array, checked as Keras's
    safe_get_h5_dataset does (no links, no external or virtual datasets, no shape bombs)."""
    h5py = _h5py()
    if "/" in name:
        group_name, name = name.rsplit("/", 1)
        group = _get_group(group, group_name)
    if not name or name not in group:
        raise ValueError(f"Invalid H5 file: dataset {name!r} not found in {group.name!r}")
    link = group.get(name, getclass=True, getlink=True)
    if link in (h5py.ExternalLink, h5py.SoftLink):
        raise ValueError(f"Not allowed: H5 file with {link.__name__} ({name!r})")
    dataset = group[name]
    if not isinstance(dataset, h5py.Dataset):
        raise ValueError(f"Invalid H5 file, expected Dataset at {group.name}/{name} but received "
                         f"{type(dataset).__name__}")
    if dataset.external:
        raise ValueError(f"Not allowed: H5 file with external Dataset: {dataset.external}")
    if dataset.is_virtual:
        raise ValueError("Not allowed: H5 file with virtual Dataset")
    if dataset.dtype.kind not in "fiub":
        raise ValueError(f"Invalid H5 file: dataset {group.name}/{name} holds {dataset.dtype}, not numbers")
    declared = int(np.prod(dataset.shape, dtype=np.int64)) * dataset.dtype.itemsize
    if declared > (1 << 32) and declared > 1000 * dataset.id.get_storage_size():
        raise ValueError(f"Invalid H5 file: dataset {group.name}/{name} declares {declared} bytes but stores "
                         f"{dataset.id.get_storage_size()}")
    return np.asarray(dataset[()])


# ---------------------------------------------------------------------------------------------------------------
# Attributes (Keras's save_attributes_to_hdf5_group / load_attributes_from_hdf5_group)
# ---------------------------------------------------------------------------------------------------------------
def _save_attributes(group, name, data):
    """A list of byte strings as the attribute ``name`` (chunked as name0, name1, ... above HDF5's header limit)."""
    bad = [x for x in data if len(x) > HDF5_OBJECT_HEADER_LIMIT]
    if bad:
        raise RuntimeError("The following attributes cannot be saved to HDF5 file because they are larger than "
                           f"{HDF5_OBJECT_HEADER_LIMIT} bytes: {bad}")
    data_npy = np.asarray(data)
    num_chunks = 1
    chunks = np.array_split(data_npy, num_chunks)
    while any(x.nbytes > HDF5_OBJECT_HEADER_LIMIT for x in chunks):
        num_chunks += 1
        chunks = np.array_split(data_npy, num_chunks)
    if num_chunks > 1:
        for chunk_id, chunk in enumerate(chunks):
            group.attrs[f"{name}{chunk_id}"] = chunk
    else:
        group.attrs[name] = data


def _decode_name(n, what):
    if isinstance(n, (bytes, np.bytes_)):
        return bytes(n).decode("utf8")
    if isinstance(n, str):
        return n
    raise ValueError(f"Invalid H5 file: attribute {what!r} must hold strings, but holds {n!r}")


def _load_attributes(group, name):
    """The list of strings stored as ``name`` (or as its chunks name0, name1, ...); [] when absent."""
    def read(key):
        value = group.attrs[key]
        if isinstance(value, (bytes, str, np.bytes_)):
            value = [value]
        value = np.asarray(value)
        if value.size == 0:
            return []
        if value.ndim != 1:
            raise ValueError(f"Invalid H5 file: attribute {key!r} of {group.name!r} must be a list of names")
        return [_decode_name(n, key) for n in value.tolist()]

    if name in group.attrs:
        return read(name)
    data, chunk_id = [], 0
    while f"{name}{chunk_id}" in group.attrs:
        data.extend(read(f"{name}{chunk_id}"))
        chunk_id += 1
    return data


def _attr_string(f, name):
    value = f.attrs.get(name)
    if value is None:
        return None
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, (bytes, np.bytes_)):
        value = bytes(value).decode("utf-8")
    if not isinstance(value, str):
        raise ValueError(f"Invalid H5 file: attribute {name!r} must be a JSON string, but it is {type(value).__name__}")
    return value


# ---------------------------------------------------------------------------------------------------------------
# JSON (Keras's json_utils)
# ---------------------------------------------------------------------------------------------------------------
def _json_default(obj):
    """Keras's json_utils.get_json_type for what fastnn configs hold: NumPy values, Keras objects, functions."""
    if hasattr(obj, "get_config"):
        from fastnn.layers.serialization import serialize_keras_object

        return serialize_keras_object(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (bytes, bytearray)):
        return {"class_name": "__bytes__", "value": bytes(obj).decode("utf-8")}
    if obj is Ellipsis:
        return {"class_name": "__ellipsis__"}
    if callable(obj) and hasattr(obj, "__name__"):
        return obj.__name__
    if isinstance(obj, dict):
        return dict(obj)
    raise TypeError(f"Unable to serialize {obj!r} to JSON. Unrecognized type {type(obj)}.")


def _json_decode_hook(obj):
    """Keras's json_utils._decode_helper: __tuple__, __ellipsis__, __bytes__; a TensorShape of tf.keras becomes
    the tuple of its dimensions."""
    name = obj.get("class_name")
    if name == "__tuple__":
        return tuple(obj.get("items") or ())
    if name == "__ellipsis__":
        return Ellipsis
    if name == "__bytes__" and isinstance(obj.get("value"), str):
        return obj["value"].encode("utf-8")
    if name == "TensorShape" and "items" in obj and "config" not in obj:
        return None if obj["items"] is None else tuple(obj["items"])
    return obj


def _json_decode(text, what):
    try:
        return json.loads(text, object_hook=_json_decode_hook)
    except (ValueError, RecursionError) as e:
        raise ValueError(f"Invalid H5 file: its {what} is not valid JSON: {e}") from e


# ---------------------------------------------------------------------------------------------------------------
# Weights: Keras's legacy order, saving and loading a group
# ---------------------------------------------------------------------------------------------------------------
def _legacy_weights(layer):
    """Keras's legacy weight order: the trainable weights, then the non-trainable ones."""
    return list(layer.trainable_weights) + list(layer.non_trainable_weights)


def _top_level_weights(model):
    """The model's own variables (not those of its layers), Keras's top_level_model_weights."""
    own = list(model._trainable_variables) + list(model._non_trainable_variables)
    in_model = {id(w) for w in model.weights}
    return [v for v in own if id(v) in in_model]


def _variable_name(v, suffix):
    return f"{getattr(v, 'path', None) or getattr(v, 'name', None) or 'variable'}{suffix}"


def _save_subset_weights(group, weights, name_suffix=""):
    """One dataset per weight, named by its path ("dense/kernel"; ``name_suffix`` ":0" gives tf.keras's names),
    and the list of names as ``weight_names``."""
    names, seen = [], set()
    for v in weights:
        name = _variable_name(v, name_suffix)
        base, n = name, 1
        while name in seen:  # two variables with one path (layers named alike in different nested models)
            name = f"{base}_{n}"
            n += 1
        seen.add(name)
        names.append(name)
    _save_attributes(group, "weight_names", [n.encode("utf8") for n in names])
    for name, v in zip(names, weights):
        value = np.asarray(v.numpy())
        dataset = group.create_dataset(name, value.shape, dtype=value.dtype)
        if value.shape:
            dataset[:] = value
        else:
            dataset[()] = value


def _save_weights_group(group, model, name_suffix=""):
    """Keras's save_weights_to_hdf5_group: layer_names, backend, keras_version, one group per layer (created in
    name order, as Keras does) and top_level_model_weights."""
    _save_attributes(group, "layer_names", [layer.name.encode("utf8") for layer in model.layers])
    group.attrs["backend"] = BACKEND.encode("utf8")
    group.attrs["keras_version"] = KERAS_VERSION.encode("utf8")
    for layer in sorted(model.layers, key=lambda x: x.name):
        _save_subset_weights(group.create_group(layer.name), _legacy_weights(layer), name_suffix)
    _save_subset_weights(group.create_group("top_level_model_weights"), _top_level_weights(model), name_suffix)


def _load_subset_weights(group):
    return [_get_dataset(group, name) for name in _load_attributes(group, "weight_names")]


def _shape(v):
    return tuple(int(d) for d in v.shape)


def _set_weights(symbolic_weights, weight_values, name, skip_mismatch):
    """Keras's _set_weights: every shape is checked before anything is assigned (a mismatch raises, or is skipped
    with Keras's warning when ``skip_mismatch``)."""
    assignments = []
    for variable, value in zip(symbolic_weights, weight_values):
        expected, received = _shape(variable), tuple(value.shape)
        if expected != received:
            if skip_mismatch:
                warnings.warn(f"Skipping loading weights for {name} due to mismatch in shape for weight "
                              f"{variable.path}. Weight expects shape {expected}. Received saved weight with shape "
                              f"{received}", stacklevel=3)
                continue
            raise ValueError(f"Shape mismatch in {name} for weight {variable.path}. Weight expects shape {expected}. "
                             f"Received saved weight with shape {received}")
        if np.dtype(variable.dtype).kind == "f" and value.dtype.kind not in "fiub":
            raise ValueError(f"Invalid weight for {name}: {variable.path} is {variable.dtype} but the file holds "
                             f"{value.dtype}")
        assignments.append((variable, value))
    return assignments


def _assign_all(assignments):
    for variable, value in assignments:
        variable.assign(np.asarray(value).astype(variable.dtype, copy=False))


def _load_weights_group(group, model, skip_mismatch=False):
    """Keras's load_weights_from_hdf5_group (topological loading): the layers of ``model.layers`` that have
    weights take, in order, the weights of the saved layers that have weights. Nothing is assigned unless the
    whole file matches (or mismatches are skipped)."""
    filtered_layers = [layer for layer in model.layers if _legacy_weights(layer)]
    layer_names = _load_attributes(group, "layer_names")
    filtered_names = [name for name in layer_names if _load_attributes(_get_group(group, name), "weight_names")]
    if len(filtered_names) != len(filtered_layers):
        raise ValueError("Layer count mismatch when loading weights from file. Model expected "
                         f"{len(filtered_layers)} layers, found {len(filtered_names)} saved layers.")
    assignments = []
    for k, name in enumerate(filtered_names):
        layer = filtered_layers[k]
        symbolic_weights = _legacy_weights(layer)
        weight_values = _load_subset_weights(_get_group(group, name))
        if len(weight_values) != len(symbolic_weights):
            raise ValueError(f"Weight count mismatch for layer #{k} (named {layer.name} in the current model, {name} "
                             f"in the save file). Layer expects {len(symbolic_weights)} weight(s). Received "
                             f"{len(weight_values)} saved weight(s)")
        assignments += _set_weights(symbolic_weights, weight_values, f"layer #{k} (named {layer.name})", skip_mismatch)
    if "top_level_model_weights" in group:
        symbolic_weights = _top_level_weights(model)
        weight_values = _load_subset_weights(_get_group(group, "top_level_model_weights"))
        if len(weight_values) != len(symbolic_weights):
            raise ValueError("Weight count mismatch for top-level weights when loading weights from file. Model "
                             f"expects {len(symbolic_weights)} top-level weight(s). Received {len(weight_values)} "
                             "saved top-level weight(s)")
        assignments += _set_weights(symbolic_weights, weight_values, "top-level model", skip_mismatch)
    _assign_all(assignments)


def _load_weights_group_by_name(group, model, skip_mismatch=False):
    """Keras's load_weights_from_hdf5_group_by_name: each saved layer's weights go to the layers of the model with
    that name; layers without a match are left as they are."""
    layer_names = _load_attributes(group, "layer_names")
    index = {}
    for layer in model.layers:
        index.setdefault(layer.name, []).append(layer)
    assignments = []
    for k, name in enumerate(layer_names):
        if name not in index:
            continue
        weight_values = _load_subset_weights(_get_group(group, name))
        for layer in index[name]:
            symbolic_weights = _legacy_weights(layer)
            if len(weight_values) != len(symbolic_weights):
                if skip_mismatch:
                    warnings.warn(f"Skipping loading of weights for layer #{k} (named {layer.name}) due to mismatch "
                                  f"in number of weights. Layer expects {len(symbolic_weights)} weight(s). Received "
                                  f"{len(weight_values)} saved weight(s)", stacklevel=2)
                    continue
                raise ValueError(f"Weight count mismatch for layer #{k} (named {layer.name}). Layer expects "
                                 f"{len(symbolic_weights)} weight(s). Received {len(weight_values)} saved weight(s)")
            assignments += _set_weights(symbolic_weights, weight_values, f"layer #{k} (named {layer.name})",
                                        skip_mismatch)
    if "top_level_model_weights" in group:
        symbolic_weights = _top_level_weights(model)
        weight_values = _load_subset_weights(_get_group(group, "top_level_model_weights"))
        if len(weight_values) != len(symbolic_weights):
            if not skip_mismatch:
                raise ValueError("Weight count mismatch for top-level weights of model. Model expects "
                                 f"{len(symbolic_weights)} top-level weight(s). Received {len(weight_values)} saved "
                                 "top-level weight(s)")
            warnings.warn("Skipping loading top-level weights for model due to mismatch in number of weights. Model "
                          f"expects {len(symbolic_weights)} top-level weight(s). Received {len(weight_values)} saved "
                          "top-level weight(s)", stacklevel=2)
        else:
            assignments += _set_weights(symbolic_weights, weight_values, "top-level model", skip_mismatch)
    _assign_all(assignments)


# ---------------------------------------------------------------------------------------------------------------
# Optimizer weights
# ---------------------------------------------------------------------------------------------------------------
def _optimizer_state(optimizer):
    """(name, value) of every optimizer variable in Keras's order."""
    states = getattr(optimizer, "_state_variables", None)
    if states is not None:
        return [(s.name, np.asarray(s.value())) for s in states()]
    return [(f"{optimizer.name}/variable_{i}", np.asarray(v.numpy())) for i, v in enumerate(optimizer.variables)]


def _save_optimizer_weights(f, optimizer):
    state = _optimizer_state(optimizer)
    if not state:
        return
    group = f.create_group("optimizer_weights")
    _save_attributes(group, "weight_names", [name.encode("utf8") for name, _ in state])
    for name, value in state:
        dataset = group.create_dataset(name, value.shape, dtype=value.dtype)
        if value.shape:
            dataset[:] = value
        else:
            dataset[()] = value


_OPTIMIZER_STATE_WARNING = ("Error in loading the saved optimizer state. As a result, your model is starting with a "
                            "freshly initialized optimizer.")


def _load_optimizer_weights(f, model):
    """Keras: build the optimizer on the model's trainable variables, then set its variables by position
    (Keras's Optimizer.set_weights zips the two lists: a file saved before the optimizer was built holds only
    iteration and learning_rate, which are set). Saved state whose shapes do not fit (another layout: a tf.keras
    2 optimizer) is not loaded at all, with Keras's warning."""
    optimizer = model.optimizer
    try:
        optimizer.build(model.trainable_variables)
    except (NotImplementedError, AttributeError):
        warnings.warn(f"Error when creating the weights of optimizer {optimizer}, making it impossible to restore the "
                      "saved optimizer state. As a result, your model is starting with a freshly initialized "
                      "optimizer.", stacklevel=3)
        return
    group = _get_group(f, "optimizer_weights")
    values = [_get_dataset(group, name) for name in _load_attributes(group, "weight_names")]
    states = getattr(optimizer, "_state_variables", None)
    entries = states() if states is not None else []
    pairs = list(zip(entries, values))
    if not pairs or any(tuple(np.shape(s.value())) != tuple(v.shape) for s, v in pairs):
        warnings.warn(_OPTIMIZER_STATE_WARNING, stacklevel=3)
        return
    for s, v in pairs:
        if s.name.endswith("/learning_rate") and v.shape == () and np.float32(np.asarray(s.value())) == v:
            # The same rate at float32 precision (the file holds Keras's float32 variable): keep the compile
            # config's exact Python float, so training on is bit-identical to the run that was never saved.
            continue
        s.assign(v)


# ---------------------------------------------------------------------------------------------------------------
# Model configs: what fastnn writes (Keras 3's legacy form) and what it reads (Keras 3 and Keras 2 forms)
# ---------------------------------------------------------------------------------------------------------------
def _legacy_entry(entry):
    """A layer entry as Keras 3 writes it under use_legacy_config: {"class_name", "config"} plus a functional
    model's "name" / "inbound_nodes" (no module, registered_name, build_config, compile_config); nested models'
    layer lists likewise. Operations (keras.src.ops entries) keep their module, which routes them on loading."""
    from fastnn.layers.symbolic_ops import SymbolicOp

    if entry.get("module") == SymbolicOp.keras_module:
        return entry
    out = {"class_name": entry["class_name"], "config": entry["config"]}
    for key in ("name", "inbound_nodes"):
        if key in entry:
            out[key] = entry[key]
    if entry["class_name"] in _MODEL_CLASSES and isinstance(entry["config"], dict) and "layers" in entry["config"]:
        out["config"] = dict(entry["config"], layers=[_legacy_entry(e) for e in entry["config"]["layers"]])
    return out


def _model_config(model):
    """The root ``model_config``: {"class_name", "config"} in Keras 3's legacy form."""
    entry = {"class_name": type(model).__name__, "config": model.get_config()}
    return _legacy_entry(entry)


def _strip_passive(value):
    """Removes the "__passive_serialization__" markers the legacy serializer adds to nested objects."""
    if isinstance(value, dict):
        return {k: _strip_passive(v) for k, v in value.items() if k != "__passive_serialization__"}
    if isinstance(value, list):
        return [_strip_passive(v) for v in value]
    return value


def _convert_dtype(dtype):
    """A dtype argument as fastnn takes it: a name, or a DTypePolicy config; tf.keras's mixed-precision "Policy"
    configs give their name (fastnn has float policies only)."""
    if isinstance(dtype, dict) and dtype.get("class_name") in ("Policy", "DTypePolicy", "FloatDTypePolicy"):
        name = (dtype.get("config") or {}).get("name")
        if not isinstance(name, str):
            raise ValueError(f"Invalid dtype policy in the model config: {dtype!r}")
        if name.startswith("mixed_"):
            raise ValueError(f"The model uses the mixed-precision dtype policy {name!r}; fastnn has no mixed "
                             "precision (float16 / bfloat16 compute) policies")
        return name
    return dtype


_LAMBDA_REFUSED = ("Requested the deserialization of a Python lambda. This carries a potential risk of arbitrary code "
                   "execution and thus it is disallowed by default. If you trust the source of the artifact, you can "
                   "override this error by passing `safe_mode=False` to the loading function.")


def _convert_lambda(config, safe_mode, custom_objects):
    """Keras's handling of Lambda configs of tf.keras: the deprecated arguments dropped, a function stored as
    [bytecode, defaults, closure] turned into a "__lambda__" entry; a lambda is refused in safe mode, else loaded
    here (so nothing downstream needs the flag)."""
    for arg in _LAMBDA_DEPRECATED_ARGS:
        config.pop(arg, None)
    for key in ("function", "output_shape", "mask"):
        value = config.get(key)
        if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str) and key == "function":
            value = {"class_name": "__lambda__", "config": {"code": value[0], "defaults": value[1],
                                                           "closure": value[2]}}
        elif isinstance(value, str) and key == "function":
            value = {"module": "builtins", "class_name": "function", "config": value, "registered_name": "function"}
        if isinstance(value, dict) and value.get("class_name") == "__lambda__":
            if safe_mode:
                raise ValueError(_LAMBDA_REFUSED)
            from fastnn.layers.core import _deserialize_function

            value = _deserialize_function(value, custom_objects, safe_mode=False)
        if value is not None:
            config[key] = value
    return config


def _convert_rnn(class_name, config):
    """tf.keras 2's RNN arguments Keras 3 dropped: time_major (only False is supported: fastnn, like Keras 3, is
    batch-major), enable_caching_device (a TF1 detail); zero_output_for_mask is Keras 3's default behaviour of the
    built-in layers when False."""
    if config.pop("time_major", False):
        raise ValueError(f"{class_name} layer {config.get('name')!r}: time_major=True (tf.keras 2) is not supported; "
                         "Keras 3 and fastnn RNN layers take batch-major inputs (batch, time, features)")
    config.pop("enable_caching_device", None)
    if class_name != "RNN" and not config.get("zero_output_for_mask", True):
        config.pop("zero_output_for_mask")
    return config


def _convert_layer_config(class_name, config, safe_mode, custom_objects):
    """One layer's config of Keras 2 (or Keras 3's legacy form) as fastnn's from_config takes it."""
    config = _strip_passive(dict(config))
    batch_input_shape = config.pop("batch_input_shape", None)
    if batch_input_shape is not None:
        if class_name == "InputLayer":
            config["batch_shape"] = batch_input_shape
        else:
            config["batch_input_shape"] = batch_input_shape  # fastnn's Layer takes it (the Sequential's input)
    if class_name == "InputLayer":
        config.pop("type_spec", None)
    axis = config.get("axis")
    if isinstance(axis, list) and len(axis) == 1:
        config["axis"] = int(axis[0])  # tf.keras's BatchNormalization wrote [3]
    elif isinstance(axis, float):
        config["axis"] = int(axis)
    if "dtype" in config:
        config["dtype"] = _convert_dtype(config["dtype"])
    for key in ("activation", "recurrent_activation"):
        if isinstance(config.get(key), str):
            config[key] = _ACTIVATION_ALIASES.get(config[key], config[key])
    if class_name == "Embedding":
        config.pop("input_length", None)  # tf.keras 2: the input shape is batch_input_shape's
    if class_name in _RNN_CLASSES:
        config = _convert_rnn(class_name, config)
    if class_name == "Lambda":
        config = _convert_lambda(config, safe_mode, custom_objects)
    for key in ("layer", "backward_layer", "cell"):  # wrappers and RNN: nested layer entries
        if isinstance(config.get(key), dict) and "class_name" in config[key]:
            config[key] = _convert_layer_entry(config[key], safe_mode, custom_objects)
    if class_name == "RNN" and isinstance(config.get("cell"), list):
        config["cell"] = [_convert_layer_entry(c, safe_mode, custom_objects) for c in config["cell"]]
    if class_name == "StackedRNNCells" and isinstance(config.get("cells"), list):
        config["cells"] = [_convert_layer_entry(c, safe_mode, custom_objects) for c in config["cells"]]
    return config


def _convert_layer_entry(entry, safe_mode=True, custom_objects=None):
    """A serialized layer or model ({"class_name", "config"}, plus "name" and "inbound_nodes" inside a
    functional config) converted for fastnn, recursively through nested models and wrappers."""
    from fastnn.layers.symbolic_ops import SymbolicOp

    if not isinstance(entry, dict) or "class_name" not in entry or "config" not in entry:
        raise ValueError(f"Improper config format for {entry!r}. Expecting python dict contains `class_name` and "
                         "`config` as keys")
    if entry.get("module") == SymbolicOp.keras_module:
        return entry
    class_name = entry["class_name"]
    if not isinstance(class_name, str):
        raise ValueError(f"Improper config format: class_name must be a string, but received {class_name!r}")
    class_name = _CLASS_ALIASES.get(class_name, class_name)
    config = entry["config"]
    if class_name == "Sequential" and isinstance(config, list):  # Keras <= 2.2.4: the config is the layer list
        config = {"name": None, "layers": config}
    if not isinstance(config, dict):
        raise ValueError(f"Improper config format for layer {class_name!r}: its config must be a dict, but received "
                         f"{type(config).__name__}")
    if class_name == "Sequential":
        config = dict(config)
        layers = config.get("layers")
        if not isinstance(layers, list):
            raise ValueError("A Sequential model configuration must be a dictionary containing the 'name' and "
                             f"'layers' keys. Received: config={config}")
        config["layers"] = [_convert_layer_entry(e, safe_mode, custom_objects) for e in layers]
        if "dtype" in config:
            config["dtype"] = _convert_dtype(config["dtype"])
    elif "layers" in config and "input_layers" in config:
        config = _convert_functional_config(config, safe_mode, custom_objects)
    else:
        config = _convert_layer_config(class_name, config, safe_mode, custom_objects)
    out = {k: v for k, v in entry.items() if k not in ("__passive_serialization__", "shared_object_id")}
    out["class_name"] = class_name
    out["config"] = config
    return out


def _is_tensor_ref(x):
    """Keras 2's reference to a layer output: [layer_name, node_index, tensor_index] (+ call kwargs)."""
    return isinstance(x, (list, tuple)) and len(x) in (3, 4) and isinstance(x[0], str) and \
        isinstance(x[1], int) and not isinstance(x[1], bool) and isinstance(x[2], int)


def _skips_first_node(entry):
    """Whether tf.keras counted a node of this layer's own construction before its calls (a nested functional
    model, or a Sequential model with a known input): its config node indices are then one higher."""
    class_name = _CLASS_ALIASES.get(entry.get("class_name"), entry.get("class_name"))
    if class_name == "Functional":
        return True
    if class_name != "Sequential":
        return False
    config = entry.get("config")
    layers = config if isinstance(config, list) else (config or {}).get("layers") or []
    if isinstance(config, dict) and config.get("build_input_shape"):
        return True
    if layers and isinstance(layers[0], dict):
        first = layers[0]
        return first.get("class_name") == "InputLayer" or "batch_input_shape" in (first.get("config") or {})
    return False


def _convert_functional_config(config, safe_mode, custom_objects):
    """A functional config with Keras 2's list-form inbound nodes rewritten as Keras 3's {"args", "kwargs"} with
    "__keras_tensor__" references (node indices of nested models brought to Keras 3's count); the layer entries
    converted. A Keras 3 config passes unchanged apart from the entries."""
    config = dict(config)
    layers = config.get("layers")
    if not isinstance(layers, list):
        raise ValueError(f"Invalid functional model config: 'layers' must be a list, but received {layers!r}")
    entries = []
    for e in layers:
        if not isinstance(e, dict) or not isinstance(e.get("name"), str) or not isinstance(e.get("inbound_nodes",
                                                                                             []), list):
            raise ValueError(f"Invalid functional model config: each layer entry needs a 'name' and a list of "
                             f"'inbound_nodes', but received {e!r}")
        entries.append(_convert_layer_entry(e, safe_mode, custom_objects))
    legacy = any(isinstance(n, list) for e in entries for n in e.get("inbound_nodes", []))
    offsets = {e["name"]: int(_skips_first_node(e)) for e in layers}
    sequential_offsets = {e["name"]: offsets[e["name"]] for e in layers
                          if _CLASS_ALIASES.get(e.get("class_name"), e.get("class_name")) == "Sequential"}

    def tensor(name, node_index, tensor_index):
        if name not in offsets:
            raise ValueError(f"Invalid Functional model configuration. Missing node: {name}")
        if node_index >= 1:
            node_index -= offsets[name]
        return {"class_name": "__keras_tensor__", "config": {"shape": None, "dtype": None,
                                                             "keras_history": [name, node_index, tensor_index]}}

    def convert_kwargs(value):
        if _is_tensor_ref(value) and len(value) == 3 and value[0] in offsets:
            return tensor(*value)
        if isinstance(value, list):
            return [convert_kwargs(v) for v in value]
        if isinstance(value, dict):
            return {k: convert_kwargs(v) for k, v in value.items()}
        return value

    def convert_node(node):
        if isinstance(node, dict) and "args" in node:
            return node
        kwargs = {}

        def walk(x):
            nonlocal kwargs
            if _is_tensor_ref(x):
                if x[0] == "_CONSTANT_VALUE":
                    raise ValueError("The model config calls a layer on a constant (tf.keras's _CONSTANT_VALUE node), "
                                     "which fastnn cannot rebuild")
                if len(x) == 4:
                    if not isinstance(x[3], dict):
                        raise ValueError(f"Cannot deserialize the model (invalid config data?): {node!r}")
                    kwargs = convert_kwargs(x[3])
                return tensor(x[0], x[1], x[2])
            if isinstance(x, list):
                return [walk(v) for v in x]
            if isinstance(x, dict):
                return {k: walk(v) for k, v in x.items()}
            raise ValueError(f"Cannot deserialize the model (invalid config data?): {node!r}")

        args = walk(node)
        if isinstance(args, list) and len(args) == 1:
            args = args[0]  # a layer called on one tensor (Keras's unpack_singleton)
        return {"args": [args], "kwargs": kwargs}

    if legacy:
        for e in entries:
            e["inbound_nodes"] = [convert_node(n) for n in e.get("inbound_nodes", [])]

        def io_ref(ref):
            if _is_tensor_ref(ref):
                name, node_index, tensor_index = ref[:3]
                if node_index >= 1:
                    node_index -= sequential_offsets.get(name, 0)  # Keras 3 counts a Functional's node, not a Sequential's
                return [name, node_index, tensor_index]
            if isinstance(ref, list):
                return [io_ref(r) for r in ref]
            if isinstance(ref, dict):
                return {k: io_ref(v) for k, v in ref.items()}
            raise ValueError(f"Invalid functional model config: bad input/output reference {ref!r}")

        for key in ("input_layers", "output_layers"):
            config[key] = io_ref(config[key])
    config["layers"] = entries
    return config


def _convert_model_config(model_config, safe_mode=True, custom_objects=None):
    """The root ``model_config`` of a legacy .h5 file (Keras 3 or Keras 2) as a fastnn {"class_name", "config"}."""
    if isinstance(model_config, list):
        raise TypeError("`model_from_config` expects a dictionary, not a list. Received: config="
                        f"{model_config}. Did you meant to use `Sequential.from_config(config)`?")
    if not isinstance(model_config, dict) or "config" not in model_config:
        raise ValueError("The provided configuration is not a valid Keras configuration. Expected a dictionary "
                         f"containing a 'config' key. Received: config={model_config}")
    return _convert_layer_entry(model_config, safe_mode, custom_objects)


def _model_from_config(model_config, custom_objects, safe_mode):
    from fastnn.models.model import Model
    from fastnn.models.sequential import deserialize_layer

    entry = _convert_model_config(model_config, safe_mode, custom_objects)
    try:
        model = deserialize_layer(entry, custom_objects)
    except (KeyError, IndexError, AttributeError) as e:
        raise ValueError(f"Invalid model config in the HDF5 file: {type(e).__name__}: {e}") from e
    if not isinstance(model, Model):
        raise ValueError(f"The model config of the HDF5 file describes a {type(model).__name__}, not a model")
    return model


def _custom_objects(custom_objects):
    """The user's custom objects merged with the registered ones (Keras: custom, then global, then scoped)."""
    merged = dict(custom_objects or {})
    try:
        from fastnn.saving import object_registration
    except ImportError:
        return merged
    getter = getattr(object_registration, "get_custom_objects", None)
    if getter is not None:
        merged.update(getter())
    return merged


# ---------------------------------------------------------------------------------------------------------------
# Training config (compile)
# ---------------------------------------------------------------------------------------------------------------
def _training_config(model):
    """Keras's model_metadata training_config: the compile config without the optimizer, plus optimizer_config
    {"class_name", "config"}."""
    from fastnn.optimizers import serialize as serialize_optimizer

    config = dict(model.get_compile_config())
    config.pop("optimizer", None)
    optimizer = serialize_optimizer(model.optimizer)
    config["optimizer_config"] = {"class_name": optimizer["class_name"], "config": optimizer["config"]}
    return config


# tf.keras 2 optimizer arguments that Keras 3 dropped and that do not change the update when at their defaults.
_OPTIMIZER_DROPPED = ("is_legacy_optimizer", "jit_compile")


def _optimizer_from_config(config, custom_objects):
    from fastnn import optimizers

    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise ValueError(f"Invalid training config: optimizer_config must be {{'class_name', 'config'}}, but "
                         f"received {config!r}")
    class_name = config["class_name"]
    if class_name.startswith("Custom>"):  # tf.keras 2.11+'s registered names of its built-in optimizers
        class_name = class_name[len("Custom>"):]
    if custom_objects and class_name in custom_objects:
        cls = custom_objects[class_name]
        return cls.from_config(config.get("config") or {})
    inner = _strip_passive(dict(config.get("config") or {}))
    for key in _OPTIMIZER_DROPPED:
        inner.pop(key, None)
    if "lr" in inner:  # Keras 2's legacy optimizers
        inner.setdefault("learning_rate", inner.pop("lr"))
        inner.pop("lr", None)
    if not inner.get("decay"):
        inner.pop("decay", None)  # 0.0 in every Keras 2 legacy optimizer: no decay, nothing to warn about
    if isinstance(inner.get("learning_rate"), dict):
        inner["learning_rate"] = _strip_passive(inner["learning_rate"])
    return optimizers.get({"class_name": class_name, "config": inner})


def _loss_from_config(config, custom_objects):
    from fastnn import losses

    if config is None:
        return None
    if isinstance(config, str):
        return config if not custom_objects or config not in custom_objects else custom_objects[config]
    if isinstance(config, dict) and "class_name" in config:
        inner = _strip_passive(dict(config.get("config") or {}))
        if inner.get("reduction") == "auto":  # tf.keras's default reduction
            inner["reduction"] = "sum_over_batch_size"
        inner.pop("fn", None)
        return losses.deserialize({"class_name": config["class_name"], "config": inner}, custom_objects)
    if isinstance(config, dict):
        return {k: _loss_from_config(v, custom_objects) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [_loss_from_config(v, custom_objects) for v in config]
    raise ValueError(f"Saved configuration not understood. Configuration should be a dictionary, string, tuple or "
                     f"list. Received: config={config}.")


def _metric_from_config(config, custom_objects):
    from fastnn import metrics

    if config is None:
        return None
    if isinstance(config, str):
        return custom_objects[config] if custom_objects and config in custom_objects else config
    if isinstance(config, dict) and "class_name" in config:
        if custom_objects and config["class_name"] in custom_objects:
            return custom_objects[config["class_name"]].from_config(config.get("config") or {})
        inner = _strip_passive(dict(config.get("config") or {}))
        if config["class_name"] == "MeanMetricWrapper":  # tf.keras: a metric function wrapped by name
            return inner.get("fn") or inner.get("name")
        return metrics.deserialize({"class_name": config["class_name"], "config": inner})
    if isinstance(config, dict):
        return {k: _metric_from_config(v, custom_objects) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [_metric_from_config(v, custom_objects) for v in config]
    raise ValueError(f"Saved configuration not understood. Configuration should be a dictionary, string, tuple or "
                     f"list. Received: config={config}.")


def _compile_args_from_training_config(training_config, custom_objects):
    """Keras's compile_args_from_training_config."""
    if not isinstance(training_config, dict) or "optimizer_config" not in training_config:
        raise ValueError("Invalid training config in the HDF5 file: it has no optimizer_config")
    return {"optimizer": _optimizer_from_config(training_config["optimizer_config"], custom_objects),
            "loss": _loss_from_config(training_config.get("loss"), custom_objects),
            "metrics": _metric_from_config(training_config.get("metrics"), custom_objects),
            "weighted_metrics": _metric_from_config(training_config.get("weighted_metrics"), custom_objects),
            "loss_weights": training_config.get("loss_weights")}


# ---------------------------------------------------------------------------------------------------------------
# Public entry points (called by saving_api / Model.save / load_weights for .h5 / .hdf5)
# ---------------------------------------------------------------------------------------------------------------
def _write_h5(filepath, overwrite, fill):
    """Builds the HDF5 file in memory with ``fill(h5py.File)``, then writes it with atomic_write (an interrupted
    save leaves the previous file intact). ``overwrite=False`` refuses an existing file."""
    h5py = _h5py()
    path = os.fspath(filepath)
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path!r} already exists; pass overwrite=True to replace it")
    dirpath = os.path.dirname(path)
    if dirpath and not os.path.exists(dirpath):
        os.makedirs(dirpath, exist_ok=True)
    buffer = io.BytesIO()
    with h5py.File(buffer, mode="w") as f:
        fill(f)
        f.flush()
    with atomic_write(path, "wb") as out:
        out.write(buffer.getbuffer())


def _check_model(model, what):
    from fastnn.models.model import Model

    if not isinstance(model, Model):
        raise TypeError(f"{what} expects a fastnn Model, but received {type(model).__name__}")


def save_model_to_hdf5(model, filepath, overwrite=True, include_optimizer=True):
    """Saves ``model`` as a legacy Keras .h5 file: its config, weights and (compiled) training config and
    optimizer state, in the layout Keras 3's ``model.save("m.h5")`` writes.

    Args:
        model: a fastnn Model (Sequential, functional, nested).
        filepath: where to write; an existing file is replaced atomically.
        overwrite: False refuses to replace an existing file (FileExistsError).
        include_optimizer: also write the training config's optimizer state (``optimizer_weights``).
    """
    _check_model(model, "save_model_to_hdf5")
    model_config = _model_config(model)
    training_config = _training_config(model) if include_optimizer and getattr(model, "compiled", False) and \
        getattr(model, "optimizer", None) is not None else None

    def fill(f):
        f.attrs["keras_version"] = KERAS_VERSION
        f.attrs["backend"] = BACKEND
        f.attrs["model_config"] = json.dumps(model_config, default=_json_default).encode("utf8")
        if training_config is not None:
            f.attrs["training_config"] = json.dumps(training_config, default=_json_default).encode("utf8")
        _save_weights_group(f.create_group("model_weights"), model)
        if training_config is not None:
            _save_optimizer_weights(f, model.optimizer)

    _write_h5(filepath, overwrite, fill)


def load_model_from_hdf5(filepath, custom_objects=None, compile=True, safe_mode=True):  # noqa: A002 - Keras's name
    """Loads a model from a legacy .h5 file written by Keras 3, by Keras 2 / tf.keras, or by fastnn.

    Args:
        filepath: path of the file (or an open h5py.File).
        custom_objects: {name: class or function} for custom layers, losses, metrics.
        compile: compile the model from the file's training config (when it has one) and restore the optimizer
            state; without a training config the model is returned uncompiled, with Keras's warning.
        safe_mode: refuse to load Python lambdas (code) from the file.

    Returns:
        The model, with its weights.
    """
    custom_objects = _custom_objects(custom_objects)
    with _OpenForReading(filepath, "load_model") as f:
        text = _attr_string(f, "model_config")
        if text is None:
            raise ValueError(f"No model config found in the file at {filepath}.")
        model = _model_from_config(_json_decode(text, "model_config"), custom_objects, safe_mode)
        if "model_weights" not in f:
            raise ValueError(f"Invalid H5 file {filepath}: it has a model config but no 'model_weights' group")
        _load_weights_group(_get_group(f, "model_weights"), model)
        if not compile:
            return model
        text = _attr_string(f, "training_config")
        if text is None:
            warnings.warn("No training configuration found in the save file, so the model was *not* compiled. "
                          "Compile it manually.", stacklevel=2)
            return model
        model.compile(**_compile_args_from_training_config(_json_decode(text, "training_config"), custom_objects))
        if "optimizer_weights" in f:
            _load_optimizer_weights(f, model)
    return model


def save_weights_to_hdf5(model, filepath, overwrite=True):
    """Saves the weights of ``model`` as a weights-only .h5 file in tf.keras 2's layout (root attributes
    layer_names / backend / keras_version, one group per layer, weight names such as "dense/kernel:0"), which
    ``load_weights_from_hdf5`` and Keras's ``model.load_weights("m.h5")`` read."""
    _check_model(model, "save_weights_to_hdf5")
    _write_h5(filepath, overwrite, lambda f: _save_weights_group(f, model, name_suffix=":0"))


def load_weights_from_hdf5(model, filepath, by_name=False, skip_mismatch=False):
    """Loads a weights-only .h5 file (tf.keras 2 / Keras 3 legacy) or the weights of a full-model .h5 file into
    ``model``.

    Args:
        model: a built fastnn Model.
        filepath: path of the file (or an open h5py.File).
        by_name: match saved layers to the model's layers by name (layers without a match keep their weights);
            by default the layers with weights are matched in order.
        skip_mismatch: skip (with a warning) weights whose shape differs, and with ``by_name`` layers whose
            number of weights differs, instead of raising.

    Raises:
        ValueError: a layer count, weight count or shape mismatch (naming the layer and both shapes), a damaged
            file. Nothing is assigned when loading fails.
    """
    _check_model(model, "load_weights_from_hdf5")
    with _OpenForReading(filepath, "load_weights") as f:
        group = f
        if "layer_names" not in f.attrs and "model_weights" in f:
            group = _get_group(f, "model_weights")
        if "layer_names" not in group.attrs and "layer_names0" not in group.attrs:
            raise ValueError(f"load_weights: {getattr(f, 'filename', filepath)!r} is not a Keras weights file: it "
                             "has no 'layer_names' attribute (a Keras 3 '.weights.h5' file must be named so)")
        if by_name:
            _load_weights_group_by_name(group, model, skip_mismatch)
        else:
            _load_weights_group(group, model, skip_mismatch)
