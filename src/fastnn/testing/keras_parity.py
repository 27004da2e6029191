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


# --- whole models: the same builder run on both libraries, trained side by side (tests/e2e/test_keras_article_models)
def model_pair(build, dtype="float32", weights=None):
    """(fastnn model, Keras model) from ONE builder ``build(lib, dtype)``, lib being fastnn or keras. The Keras model
    starts from the fastnn model's weights (``weights`` if given, else fastnn's initial ones), copied with
    get_weights / set_weights, so the comparison does not depend on the two libraries' initializers."""
    import keras

    fastnn_model = build(fastnn, dtype)
    if weights is not None:
        fastnn_model.set_weights(weights)
    keras_model = build(keras, dtype)
    keras_model.set_weights(fastnn_model.get_weights())
    return fastnn_model, keras_model


def fit_pair(build, make_optimizer, x, y, dtype="float32", weights=None, epochs=2, batch_size=8, loss="categorical"):
    """Trains the model_pair of ``build`` side by side: the same optimizer (``make_optimizer(lib)``), the categorical
    (``loss="categorical"``) or binary (``loss="binary"``) crossentropy computed in ``dtype``, ``epochs`` epochs of
    fit with shuffle=False. Returns (fastnn model, Keras model, fastnn per-epoch losses, Keras per-epoch losses)."""
    import keras

    loss_class = {"categorical": "CategoricalCrossentropy", "binary": "BinaryCrossentropy"}[loss]
    fastnn_model, keras_model = model_pair(build, dtype, weights)
    histories = []
    for lib, model in ((fastnn, fastnn_model), (keras, keras_model)):
        model.compile(optimizer=make_optimizer(lib), loss=getattr(lib.losses, loss_class)(dtype=dtype))
        history = model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=False, verbose=0)
        histories.append(np.asarray(history.history["loss"]))
    return fastnn_model, keras_model, histories[0], histories[1]


def weight_names(keras_model):
    """The Keras model's weight paths without the model's own scope ("conv2d/kernel"), for messages."""
    return ["/".join(w.path.split("/")[-2:]) for w in keras_model.weights]


def scaled_weight_errors(fastnn_weights, keras_weights):
    """Per array: |fastnn - keras| over the array's scale (its largest |keras value|; 1 for an all-zero array) --
    elementwise relative error means nothing for weights that pass near zero."""
    errors = []
    for f, k in zip(fastnn_weights, keras_weights):
        scale = float(np.abs(k).max()) or 1.0
        errors.append(np.abs(np.asarray(f, np.float64) - np.asarray(k, np.float64)) / scale)
    return errors


def assert_weights_close(fastnn_model, keras_model, rtol, atol):
    """Every weight (BatchNormalization's moving statistics included) within rtol / atol, elementwise."""
    f_weights, k_weights = fastnn_model.get_weights(), keras_model.get_weights()
    assert [w.shape for w in f_weights] == [w.shape for w in k_weights]
    for name, f, k in zip(weight_names(keras_model), f_weights, k_weights):
        np.testing.assert_allclose(f, k, rtol=rtol, atol=atol, err_msg=name)


def assert_bulk_of_weights_close(fastnn_model, keras_model, bulk, quantile, everything):
    """Adam's rule: the scaled errors (scaled_weight_errors) of all the weights together have their ``quantile``
    (e.g. 99, percent) below ``bulk``, and every one is below ``everything``."""
    errors = scaled_weight_errors(fastnn_model.get_weights(), keras_model.get_weights())
    names = weight_names(keras_model)
    flat = np.concatenate([e.ravel() for e in errors])
    worst = max(range(len(errors)), key=lambda i: float(errors[i].max()))
    assert np.percentile(flat, quantile) < bulk, (np.percentile(flat, quantile), bulk)
    assert flat.max() < everything, (names[worst], float(errors[worst].max()), everything)
