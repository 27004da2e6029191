"""Writers of HDF5 files in tf.keras 2.x's legacy layout, for tests (Keras 2 itself is not installed).

This module is the "script that made the fixtures": the tests call it to write each Keras 2 file into a temporary
folder, so the files are never committed. The layout is tf.keras 2's ``saving/legacy/hdf5_format.py``
(save_model_to_hdf5 / save_weights_to_hdf5_group / save_attributes_to_hdf5_group) as written with the h5py of
that era: byte-string attributes stored as fixed-length HDF5 strings, ``layer_names`` and ``weight_names`` as
arrays of them (an empty list as an empty float64 array, which is what ``np.asarray([])`` gives), weight datasets
named by their TensorFlow variable names ("dense/kernel:0", nested as groups dense / kernel:0), the JSON configs
in Keras 2's form (no "module" keys, ``batch_input_shape``, dtype strings, list-form ``inbound_nodes``).
"""
from __future__ import annotations

import json

import h5py
import numpy as np


def _names_attr(names):
    """tf.keras: ``group.attrs[name] = [n.encode("utf8") for n in names]`` (fixed-length strings in h5py 2)."""
    if not names:
        return np.asarray([])  # float64, shape (0,)
    return np.array([n.encode("utf8") for n in names], dtype="S")


def write_weights_group(group, layers, keras_version="2.15.0", backend="tensorflow", top_level=True):
    """``layers``: [(layer_name, [(weight_name, array), ...]), ...] in ``model.layers`` order (weightless layers
    included with []). Layer groups are created in sorted name order, as tf.keras does."""
    group.attrs["layer_names"] = _names_attr([name for name, _ in layers])
    group.attrs["backend"] = np.bytes_(backend.encode("utf8"))
    group.attrs["keras_version"] = np.bytes_(keras_version.encode("utf8"))
    for name, weights in sorted(layers, key=lambda item: item[0]):
        g = group.create_group(name)
        g.attrs["weight_names"] = _names_attr([w for w, _ in weights])
        for weight_name, value in weights:
            value = np.asarray(value)
            d = g.create_dataset(weight_name, value.shape, dtype=value.dtype)
            if value.shape:
                d[:] = value
            else:
                d[()] = value
    if top_level:
        group.create_group("top_level_model_weights").attrs["weight_names"] = _names_attr([])


def write_weights_file(path, layers, **kwargs):
    """A tf.keras 2 ``model.save_weights("w.h5")`` file."""
    with h5py.File(path, "w") as f:
        write_weights_group(f, layers, **kwargs)


def write_model_file(path, model_config, layers, training_config=None, optimizer_weights=None,
                     keras_version="2.15.0"):
    """A tf.keras 2 ``model.save("m.h5")`` file. ``optimizer_weights``: [(name, array), ...]."""
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = keras_version
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = np.bytes_(json.dumps(model_config).encode("utf8"))
        if training_config is not None:
            f.attrs["training_config"] = np.bytes_(json.dumps(training_config).encode("utf8"))
        write_weights_group(f.create_group("model_weights"), layers, keras_version=keras_version)
        if optimizer_weights:
            g = f.create_group("optimizer_weights")
            g.attrs["weight_names"] = _names_attr([n for n, _ in optimizer_weights])
            for name, value in optimizer_weights:
                value = np.asarray(value)
                d = g.create_dataset(name, value.shape, dtype=value.dtype)
                if value.shape:
                    d[:] = value
                else:
                    d[()] = value


# ---- Keras 2 layer configs (tf.keras 2.x get_config output, legacy serialization) ----------------------------
def initializer(class_name, **config):
    return {"class_name": class_name, "config": config}


GLOROT = initializer("GlorotUniform", seed=None)
ZEROS = initializer("Zeros")
ONES = initializer("Ones")
ORTHOGONAL = initializer("Orthogonal", gain=1.0, seed=None)


def input_layer(name, batch_input_shape, dtype="float32"):
    return {"class_name": "InputLayer", "config": {"batch_input_shape": list(batch_input_shape), "dtype": dtype,
                                                   "sparse": False, "ragged": False, "name": name}}


def dense(name, units, activation="linear", batch_input_shape=None, use_bias=True):
    config = {"name": name, "trainable": True, "dtype": "float32"}
    if batch_input_shape is not None:
        config["batch_input_shape"] = list(batch_input_shape)
    config.update({"units": units, "activation": activation, "use_bias": use_bias, "kernel_initializer": GLOROT,
                   "bias_initializer": ZEROS, "kernel_regularizer": None, "bias_regularizer": None,
                   "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None})
    return {"class_name": "Dense", "config": config}


def batch_normalization(name, axis):
    return {"class_name": "BatchNormalization", "config": {
        "name": name, "trainable": True, "dtype": "float32", "axis": axis, "momentum": 0.99, "epsilon": 0.001,
        "center": True, "scale": True, "beta_initializer": ZEROS, "gamma_initializer": ONES,
        "moving_mean_initializer": ZEROS, "moving_variance_initializer": ONES, "beta_regularizer": None,
        "gamma_regularizer": None, "beta_constraint": None, "gamma_constraint": None}}


def conv2d(name, filters, kernel_size, batch_input_shape=None, activation="relu"):
    config = {"name": name, "trainable": True, "dtype": "float32"}
    if batch_input_shape is not None:
        config["batch_input_shape"] = list(batch_input_shape)
    config.update({"filters": filters, "kernel_size": list(kernel_size), "strides": [1, 1], "padding": "valid",
                   "data_format": "channels_last", "dilation_rate": [1, 1], "groups": 1, "activation": activation,
                   "use_bias": True, "kernel_initializer": GLOROT, "bias_initializer": ZEROS,
                   "kernel_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
                   "kernel_constraint": None, "bias_constraint": None})
    return {"class_name": "Conv2D", "config": config}


def _rnn_base(name, units, return_sequences):
    return {"name": name, "trainable": True, "dtype": "float32", "return_sequences": return_sequences,
            "return_state": False, "go_backwards": False, "stateful": False, "unroll": False, "time_major": False,
            "units": units, "activation": "tanh", "use_bias": True, "kernel_initializer": GLOROT,
            "recurrent_initializer": ORTHOGONAL, "bias_initializer": ZEROS, "kernel_regularizer": None,
            "recurrent_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
            "kernel_constraint": None, "recurrent_constraint": None, "bias_constraint": None, "dropout": 0.0,
            "recurrent_dropout": 0.0}


def lstm(name, units, return_sequences=False):
    config = _rnn_base(name, units, return_sequences)
    config.update({"recurrent_activation": "sigmoid", "unit_forget_bias": True, "implementation": 2})
    return {"class_name": "LSTM", "config": config}


def gru(name, units, return_sequences=False):
    config = _rnn_base(name, units, return_sequences)
    config.update({"recurrent_activation": "sigmoid", "implementation": 2, "reset_after": True})
    return {"class_name": "GRU", "config": config}


def embedding(name, input_dim, output_dim, input_length, batch_input_shape):
    return {"class_name": "Embedding", "config": {
        "name": name, "trainable": True, "dtype": "float32", "batch_input_shape": list(batch_input_shape),
        "input_dim": input_dim, "output_dim": output_dim,
        "embeddings_initializer": initializer("RandomUniform", minval=-0.05, maxval=0.05, seed=None),
        "embeddings_regularizer": None, "activity_regularizer": None, "embeddings_constraint": None,
        "mask_zero": False, "input_length": input_length}}


def bidirectional(name, layer):
    return {"class_name": "Bidirectional", "config": {"name": name, "trainable": True, "dtype": "float32",
                                                      "layer": layer, "merge_mode": "concat"}}


def time_distributed(name, layer):
    return {"class_name": "TimeDistributed", "config": {"name": name, "trainable": True, "dtype": "float32",
                                                        "layer": layer}}


def simple(class_name, name, **config):
    return {"class_name": class_name, "config": {"name": name, "trainable": True, "dtype": "float32", **config}}


def node(*refs):
    """One call of a layer: [[layer_name, node_index, tensor_index, kwargs], ...]."""
    return [[name, node_index, tensor_index, {}] for name, node_index, tensor_index in refs]


def functional_entry(layer_config, inbound_nodes):
    return dict(layer_config, name=layer_config["config"]["name"], inbound_nodes=inbound_nodes)
