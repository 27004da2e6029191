"""Helpers for the Keras parity tests (tests/e2e): one layer's output and input gradient, computed the same way in
Keras 3 (on TensorFlow, tf.GradientTape) and in fastnn, for the objective sum(y * upstream). TensorFlow and Keras
are imported only when a Keras-side helper is called, so this module imports without them."""
from __future__ import annotations

import numpy as np

import fastnn


def random_input(shape, seed=0):
    """A float32 standard-normal array of `shape` from a seeded generator."""
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def keras_forward_and_gradient(layer, x, upstream, **call_kwargs):
    """(y, dL/dx) of a Keras layer for L = sum(y * upstream), as NumPy arrays."""
    import tensorflow as tf

    xv = tf.Variable(x)
    with tf.GradientTape() as tape:
        y = layer(xv, **call_kwargs)
        objective = tf.reduce_sum(y * upstream)
    return np.asarray(y), np.asarray(tape.gradient(objective, xv))


def fastnn_forward_and_gradient(layer, x, upstream, **call_kwargs):
    """(y, dL/dx) of a fastnn layer for L = sum(y * upstream), as NumPy arrays."""
    xv = fastnn.Variable(x)
    with fastnn.GradientTape() as tape:
        y = layer(xv, **call_kwargs)
        objective = fastnn.ops.sum(fastnn.ops.multiply(y, upstream))
    return y.numpy(), tape.gradient(objective, xv).numpy()


def layer_pair(name, kwargs):
    """The Keras and the fastnn layer of class `name` with the same arguments, both named "layer"."""
    import keras

    return getattr(keras.layers, name)(name="layer", **kwargs), getattr(fastnn.layers, name)(name="layer", **kwargs)
