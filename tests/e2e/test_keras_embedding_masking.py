"""Live cross-check of Embedding, Masking and TimeDistributed against Keras 3 / TensorFlow: outputs, masks and the
gradients (of the embedding table, and of Masking's / TimeDistributed's input and weights) at identical weights;
get_config equal to Keras's key for key; masks propagated by the same layers (supports_masking equal for every
layer class both libraries have); and Adam / SGD fits of Embedding -> GlobalAveragePooling1D (masked or not) or
Flatten -> Dense on sequences with repeated indices ending on Keras's embedding table to 1e-5. Skipped when Keras is
not installed; tests/layers/test_embedding_masking.py holds the semantics without Keras.

    KERAS_BACKEND=tensorflow PYTHONPATH=$PWD/src /work/kvenv/bin/python -m pytest tests/e2e/test_keras_embedding_masking.py
"""
from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

import fastnn  # noqa: E402
from fastnn import layers as fl  # noqa: E402
from fastnn.autograd.keras_attrs import get_keras_mask  # noqa: E402
from fastnn.testing import keras_parity  # noqa: E402

KL = keras.layers
VOCAB, DIM, STEPS = 12, 4, 7


def _ids(seed=0, batch=16):
    """Padded sequences: zeros at the end, at the start and inside; small vocabulary, so rows repeat."""
    ids = np.random.default_rng(seed).integers(1, VOCAB, size=(batch, STEPS))
    ids[0, 4:] = 0
    ids[1, :3] = 0
    ids[2, 2] = ids[2, 5] = 0
    ids[3, 1:3] = ids[3, 0]  # one index three times in a row
    return ids.astype("int32")


def _keras_mask(t):
    m = getattr(t, "_keras_mask", None)
    return None if m is None else np.asarray(m)


# -- configs ------------------------------------------------------------------------------------------------------
CONFIG_CASES = {
    "embedding": lambda L: L.Embedding(VOCAB, DIM, name="e"),
    "embedding_mask_zero": lambda L: L.Embedding(VOCAB, DIM, mask_zero=True, embeddings_regularizer="l2",
                                                 embeddings_constraint="non_neg", name="e"),
    "masking": lambda L: L.Masking(mask_value=-1.0, name="m"),
    "time_distributed": lambda L: L.TimeDistributed(L.Dense(3, name="d"), name="td"),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_get_config_equals_keras_key_for_key(case):
    k_layer, f_layer = CONFIG_CASES[case](KL), CONFIG_CASES[case](fl)
    if case == "time_distributed":  # built: the wrapped layer's entry carries its build_config
        k_layer(np.ones((2, STEPS, 5), "float32"))
        f_layer(np.ones((2, STEPS, 5), "float32"))
    k_config, f_config = k_layer.get_config(), f_layer.get_config()
    assert list(f_config) == list(k_config)
    for key in k_config:
        assert f_config[key] == k_config[key], key
    clone_config = type(f_layer).from_config(k_config).get_config()  # fastnn reads Keras's config
    if case == "time_distributed":  # the clone's wrapped layer is built on its first call
        clone_config["layer"]["build_config"] = k_config["layer"]["build_config"]
    assert clone_config == f_config


def test_embedding_input_length_is_ignored_with_keras_warning():
    with warnings.catch_warnings(record=True) as k_warnings:
        warnings.simplefilter("always")
        k_layer = KL.Embedding(VOCAB, DIM, input_length=STEPS)
    with warnings.catch_warnings(record=True) as f_warnings:
        warnings.simplefilter("always")
        f_layer = fl.Embedding(VOCAB, DIM, input_length=STEPS)
    assert [str(w.message) for w in f_warnings] == [str(w.message) for w in k_warnings if "input_length" in
                                                    str(w.message)]
    assert "input_length" not in k_layer.get_config() and "input_length" not in f_layer.get_config()


# -- outputs, masks, gradients ---------------------------------------------------------------------------------
@pytest.mark.parametrize("mask_zero", [False, True])
def test_embedding_outputs_masks_and_table_gradient_match_keras(mask_zero):
    ids = _ids()
    k_layer = KL.Embedding(VOCAB, DIM, mask_zero=mask_zero)
    f_layer = fl.Embedding(VOCAB, DIM, mask_zero=mask_zero)
    k_layer.build()
    f_layer.build()
    f_layer.set_weights(k_layer.get_weights())
    upstream = keras_parity.random_input(ids.shape + (DIM,), seed=1)
    with tf.GradientTape() as tape:
        k_y = k_layer(ids)
        k_obj = tf.reduce_sum(k_y * upstream)
    k_grad = tf.convert_to_tensor(tape.gradient(k_obj, k_layer.embeddings)).numpy()  # IndexedSlices made dense
    with fastnn.GradientTape() as ftape:
        f_y = f_layer(ids)
        f_obj = fastnn.ops.sum(fastnn.ops.multiply(f_y, upstream))
    f_grad = ftape.gradient(f_obj, f_layer.embeddings).numpy()
    np.testing.assert_array_equal(f_y.numpy(), np.asarray(k_y))
    np.testing.assert_allclose(f_grad, k_grad, rtol=1e-6, atol=1e-6)
    k_mask = k_layer.compute_mask(ids)
    f_mask = get_keras_mask(f_y)
    assert (k_mask is None) == (f_mask is None)
    if k_mask is not None:
        np.testing.assert_array_equal(np.asarray(f_mask), np.asarray(k_mask))
    # float indices are cast to int32 by both
    floats = ids.astype("float32") + 0.5
    np.testing.assert_array_equal(f_layer(floats).numpy(), np.asarray(k_layer(floats)))


def test_embedding_bad_indices_raise_in_both():
    ids = _ids()
    ids[2, 3] = VOCAB
    k_layer, f_layer = KL.Embedding(VOCAB, DIM), fl.Embedding(VOCAB, DIM, name="emb")
    with pytest.raises(Exception):  # TensorFlow's InvalidArgumentError on the CPU
        k_layer(ids)
    with pytest.raises(ValueError, match=rf'Layer "emb" .*received {VOCAB} at flat position {2 * STEPS + 3}'):
        f_layer(ids)


def test_masking_outputs_masks_and_gradients_match_keras():
    x = keras_parity.random_input((3, STEPS, 5), seed=2)
    x[0, 4:] = 0.0
    x[1, 0] = 0.0
    x[2, 3, :2] = 0.0  # partly zero: not masked
    k_layer, f_layer = keras_parity.layer_pair("Masking", {"mask_value": 0.0})
    upstream = keras_parity.random_input(x.shape, seed=3)
    k_y, k_dx = keras_parity.keras_forward_and_gradient(k_layer, x, upstream)
    f_y, f_dx = keras_parity.fastnn_forward_and_gradient(f_layer, x, upstream)
    np.testing.assert_array_equal(f_y, k_y)
    np.testing.assert_array_equal(f_dx, k_dx)
    np.testing.assert_array_equal(np.asarray(get_keras_mask(f_layer(x))), _keras_mask(k_layer(x)))


@pytest.mark.parametrize("inner", ["dense", "conv", "batch_norm"])
def test_time_distributed_outputs_and_gradients_match_keras(inner):
    make = {"dense": lambda L: L.Dense(3, activation="tanh"), "conv": lambda L: L.Conv1D(2, 3),
            "batch_norm": lambda L: L.BatchNormalization()}[inner]
    shape = (4, 5, 6) if inner != "conv" else (4, 5, 6, 2)
    x = keras_parity.random_input(shape, seed=4)
    k_layer, f_layer = KL.TimeDistributed(make(KL)), fl.TimeDistributed(make(fl))
    k_layer(x)
    f_layer(x)
    f_layer.set_weights(k_layer.get_weights())
    upstream = keras_parity.random_input(np.asarray(k_layer(x)).shape, seed=5)
    kwargs = {"training": True} if inner == "batch_norm" else {}
    k_y, k_dx = keras_parity.keras_forward_and_gradient(k_layer, x, upstream, **kwargs)
    f_y, f_dx = keras_parity.fastnn_forward_and_gradient(f_layer, x, upstream, **kwargs)
    np.testing.assert_allclose(f_y, k_y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(f_dx, k_dx, rtol=1e-4, atol=1e-5)
    if inner == "batch_norm":  # the moving statistics updated once per time slice, as Keras
        for f, k in zip(f_layer.get_weights(), k_layer.get_weights()):
            np.testing.assert_allclose(f, k, rtol=1e-5, atol=1e-6)


# -- mask propagation ------------------------------------------------------------------------------------------
def _masked_stack(L, lib):
    inputs = lib.Input((STEPS,), dtype="int32")
    h = L.Embedding(VOCAB, DIM, mask_zero=True, name="emb")(inputs)
    h = L.Dropout(0.3, name="drop")(h)
    h = L.Dense(5, name="dense3d")(h)
    h = L.Activation("relu", name="act")(h)
    h = L.TimeDistributed(L.Dense(3), name="td")(h)
    pooled = L.GlobalAveragePooling1D(name="gap")(h)
    return lib.Model(inputs, [h, pooled])


def test_masks_propagate_through_the_same_layers_as_keras():
    ids = _ids()
    k_model, f_model = _masked_stack(KL, keras), _masked_stack(fl, fastnn)
    f_model.set_weights(k_model.get_weights())
    for name in ("emb", "drop", "dense3d", "act", "td", "gap"):
        k_mask = getattr(k_model.get_layer(name).output, "_keras_mask", None)  # symbolic masks: presence and shape
        f_mask = getattr(f_model.get_layer(name).output, "_keras_mask", None)
        assert (k_mask is None) == (f_mask is None), name
        if k_mask is not None:
            assert tuple(f_mask.shape) == tuple(k_mask.shape), name
    k_seq, k_pooled = k_model(ids)
    f_seq, f_pooled = f_model(ids)
    np.testing.assert_array_equal(np.asarray(get_keras_mask(f_seq)), _keras_mask(k_seq))
    assert get_keras_mask(f_pooled) is None and _keras_mask(k_pooled) is None
    np.testing.assert_allclose(f_pooled.numpy(), np.asarray(k_pooled), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(f_seq.numpy(), np.asarray(k_seq), rtol=1e-5, atol=1e-6)


SUPPORTS_MASKING_CASES = {
    "Dense": (2,), "Activation": ("relu",), "Dropout": (0.5,), "Flatten": (), "Identity": (), "Masking": (),
    "Reshape": ((2,),), "Permute": ((1,),), "RepeatVector": (2,), "Add": (), "Concatenate": (), "Multiply": (),
    "Conv1D": (2, 1), "Conv2D": (2, 1), "MaxPooling1D": (2,), "AveragePooling1D": (2,), "GlobalAveragePooling1D": (),
    "GlobalMaxPooling1D": (), "GlobalAveragePooling2D": (), "BatchNormalization": (), "SpatialDropout1D": (0.1,),
    "ZeroPadding1D": (), "Cropping1D": (), "UpSampling1D": (), "Embedding": (3, 2),
    "Subtract": (), "Average": (), "Maximum": (), "Minimum": (), "Conv1DTranspose": (2, 1), "Conv2DTranspose": (2, 1),
    "DepthwiseConv1D": (1,), "DepthwiseConv2D": (1,), "SeparableConv1D": (2, 1), "SeparableConv2D": (2, 1),
    "MaxPooling2D": (), "AveragePooling2D": (2,), "GlobalMaxPooling2D": (), "SpatialDropout2D": (0.1,),
    "ZeroPadding2D": (), "Cropping2D": (), "UpSampling2D": (), "Lambda": (lambda x: x,),
}


@pytest.mark.parametrize("name", list(SUPPORTS_MASKING_CASES))
def test_supports_masking_equals_keras(name):
    args = SUPPORTS_MASKING_CASES[name]
    assert getattr(fl, name)(*args).supports_masking == getattr(KL, name)(*args).supports_masking
    assert fl.Embedding(3, 2, mask_zero=True).supports_masking == KL.Embedding(3, 2, mask_zero=True).supports_masking
    assert fl.TimeDistributed(fl.Dense(2)).supports_masking == KL.TimeDistributed(KL.Dense(2)).supports_masking


# -- training -----------------------------------------------------------------------------------------------------
def _embedding_model(head, mask_zero):
    def build(lib, dtype):
        inputs = lib.Input((STEPS,), dtype="int32")
        h = lib.layers.Embedding(VOCAB, DIM, mask_zero=mask_zero, dtype=dtype)(inputs)
        h = lib.layers.GlobalAveragePooling1D(dtype=dtype)(h) if head == "gap" else lib.layers.Flatten(dtype=dtype)(h)
        return lib.Model(inputs, lib.layers.Dense(3, activation="softmax", dtype=dtype)(h))

    return build


OPTIMIZERS = {"sgd": lambda lib: lib.optimizers.SGD(0.5), "adam": lambda lib: lib.optimizers.Adam(0.01)}


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("head,mask_zero", [("gap", False), ("gap", True), ("flatten", False)])
def test_fit_updates_the_embedding_table_as_keras(optimizer, head, mask_zero):
    ids = _ids(seed=7, batch=48)
    y = np.eye(3, dtype="float32")[ids[:, -1] % 3]  # a learnable rule: the last token's class
    fastnn.utils.set_random_seed(0)
    f_model, k_model, f_losses, k_losses = keras_parity.fit_pair(_embedding_model(head, mask_zero),
                                                                 OPTIMIZERS[optimizer], ids, y, epochs=2)
    np.testing.assert_allclose(f_losses, k_losses, rtol=1e-5)
    assert f_losses[-1] < f_losses[0]  # it learned something
    f_table, k_table = f_model.get_weights()[0], k_model.get_weights()[0]
    assert f_table.shape == (VOCAB, DIM)
    np.testing.assert_allclose(f_table, k_table, rtol=1e-5, atol=1e-6)  # the embedding table: Keras's, to 1e-5
    if optimizer == "sgd":
        keras_parity.assert_weights_close(f_model, k_model, rtol=1e-5, atol=1e-6)
    else:  # Adam's dense-layer weights judged as the other Adam parity tests judge them (test_keras_article_models)
        keras_parity.assert_bulk_of_weights_close(f_model, k_model, bulk=2e-5, quantile=99, everything=1e-3)
    np.testing.assert_allclose(f_model.predict(ids, verbose=0), k_model.predict(ids, verbose=0), rtol=1e-5,
                               atol=1e-6)


def test_adam_velocity_of_a_table_sums_the_squares_of_each_lookup():
    # Keras on TensorFlow squares the IndexedSlices gradient lookup by lookup: one step of Adam on a table whose row 1
    # is looked up twice with gradients a and b gives that row's velocity (1 - beta_2) * (a^2 + b^2), not
    # (1 - beta_2) * (a + b)^2. Both libraries, one step, compared slot for slot.
    ids = np.array([[1, 1, 2]], "int32")
    upstream = np.array([[[1.0, -2.0], [3.0, 0.5], [-1.0, 1.0]]], "float32")
    results = []
    for lib in (keras, fastnn):
        layer = lib.layers.Embedding(4, 2, embeddings_initializer="zeros")
        opt = lib.optimizers.Adam(0.1)
        if lib is keras:
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(layer(ids) * upstream)
            opt.apply(tape.gradient(loss, [layer.embeddings]), [layer.embeddings])
            velocity = [np.asarray(v) for v in opt.variables if "velocity" in v.path][0]
        else:
            with fastnn.GradientTape() as tape:
                loss = fastnn.ops.sum(fastnn.ops.multiply(layer(ids), upstream))
            opt.apply(tape.gradient(loss, [layer.embeddings]), [layer.embeddings])
            velocity = np.asarray(opt.variables[-1])
        results.append((velocity, layer.get_weights()[0]))
    (k_velocity, k_table), (f_velocity, f_table) = results
    np.testing.assert_allclose(k_velocity[1], 0.001 * np.array([1 + 9, 4 + 0.25]), rtol=1e-5)  # Keras's rule
    np.testing.assert_allclose(f_velocity, k_velocity, rtol=1e-6)
    np.testing.assert_allclose(f_table, k_table, rtol=1e-6)


TABLE_OPTIMIZERS = {
    "sgd_momentum": lambda o: o.SGD(0.1, momentum=0.9), "sgd_nesterov": lambda o: o.SGD(0.1, momentum=0.5,
                                                                                          nesterov=True),
    "adam": lambda o: o.Adam(0.05), "adam_amsgrad": lambda o: o.Adam(0.05, amsgrad=True),
    "adamw": lambda o: o.AdamW(0.05, weight_decay=0.1), "adagrad": lambda o: o.Adagrad(0.1),
    "rmsprop": lambda o: o.RMSprop(0.05), "rmsprop_centered": lambda o: o.RMSprop(0.05, momentum=0.5, centered=True),
    "nadam": lambda o: o.Nadam(0.05), "adadelta": lambda o: o.Adadelta(1.0), "adamax": lambda o: o.Adamax(0.05),
    "lion": lambda o: o.Lion(0.01), "ftrl": lambda o: o.Ftrl(0.1), "lamb": lambda o: o.Lamb(0.05),
    "ftrl_regularized": lambda o: o.Ftrl(0.1, l1_regularization_strength=0.01, l2_regularization_strength=0.02,
                                         l2_shrinkage_regularization_strength=0.03, beta=0.1),
    "adam_weight_decay": lambda o: o.Adam(0.05, weight_decay=0.1),
    "adafactor": lambda o: o.Adafactor(0.05),
}


@pytest.mark.parametrize("name", list(TABLE_OPTIMIZERS))
def test_optimizer_steps_on_a_table_match_keras(name):
    # Three steps of each optimizer on an embedding table looked up with repeated indices (Keras: IndexedSlices).
    rng = np.random.default_rng(8)
    ids = rng.integers(0, 6, size=(5, 9)).astype("int32")
    upstreams = [rng.standard_normal((5, 9, 3)).astype("float32") for _ in range(3)]
    table = rng.standard_normal((6, 3)).astype("float32")
    tables = []
    for lib in (keras, fastnn):
        layer = lib.layers.Embedding(6, 3, weights=table)
        opt = TABLE_OPTIMIZERS[name](lib.optimizers)
        for up in upstreams:
            if lib is keras:
                with tf.GradientTape() as tape:
                    loss = tf.reduce_sum(layer(ids) * up)
                grads = tape.gradient(loss, [layer.embeddings])
                assert isinstance(grads[0], tf.IndexedSlices)
            else:
                with fastnn.GradientTape() as tape:
                    loss = fastnn.ops.sum(fastnn.ops.multiply(layer(ids), up))
                grads = tape.gradient(loss, [layer.embeddings])
            opt.apply(grads, [layer.embeddings])
        tables.append(layer.get_weights()[0])
    np.testing.assert_allclose(tables[1], tables[0], rtol=1e-5, atol=1e-6)
