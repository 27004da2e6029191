"""The legacy Keras HDF5 format (fastnn.saving.legacy_h5): full-model .h5 round trips (Sequential, functional,
nested, every layer family, training config and optimizer state), the weights-only .h5 of tf.keras 2 (topological
and by_name loading, skip_mismatch, Keras's messages), tf.keras 2 files written in its exact layout by
tests/saving/keras2_h5.py, and bad files (clear Python exceptions, the previous file intact)."""
from __future__ import annotations

import json
import os
import sys
import warnings

import h5py
import numpy as np
import pytest

import fastnn
from fastnn import layers as L
from fastnn.saving import legacy_h5

sys.path.insert(0, os.path.dirname(__file__))
import keras2_h5 as k2  # noqa: E402

RNG = np.random.default_rng(0)


def _x(*shape):
    return RNG.standard_normal(shape).astype("float32")


def _assert_same_weights(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    assert len(wa) == len(wb)
    for x, y in zip(wa, wb):
        np.testing.assert_array_equal(x, y)


def _names(attribute):
    """A names attribute as str (fastnn writes fixed-length byte strings, as tf.keras 2 files hold)."""
    return [n.decode() if isinstance(n, bytes) else n for n in attribute]


def _round_trip(model, tmp_path, **load_kwargs):
    path = tmp_path / "m.h5"
    legacy_h5.save_model_to_hdf5(model, path)
    return legacy_h5.load_model_from_hdf5(path, **load_kwargs)


# ---------------------------------------------------------------------------------------------------------------
# Full-model round trips
# ---------------------------------------------------------------------------------------------------------------
def _mlp():
    return fastnn.Sequential([fastnn.Input((4,)), L.Dense(6, activation="relu"), L.BatchNormalization(),
                              L.Dropout(0.1), L.Dense(2)], name="mlp")


def test_sequential_round_trip_restores_weights_compile_and_optimizer_state(tmp_path):
    fastnn.utils.set_random_seed(1)
    model = fastnn.Sequential([fastnn.Input((4,)), L.Dense(6, activation="relu"), L.BatchNormalization(),
                               L.Dense(2)], name="mlp")  # no Dropout: training on is deterministic
    model.compile(optimizer=fastnn.optimizers.Adam(0.01), loss="mean_squared_error", metrics=["mae"])
    x, y = _x(32, 4), _x(32, 2)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False)
    loaded = _round_trip(model, tmp_path)
    assert type(loaded) is fastnn.Sequential and loaded.name == "mlp"
    lines, loaded_lines = [], []
    model.summary(print_fn=lines.append)
    loaded.summary(print_fn=loaded_lines.append)
    assert loaded_lines == lines
    assert [l.name for l in loaded.layers] == [l.name for l in model.layers]
    _assert_same_weights(model, loaded)
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    assert loaded.compiled and type(loaded.optimizer) is fastnn.optimizers.Adam
    assert loaded.optimizer.learning_rate == pytest.approx(0.01)
    assert loaded.get_compile_config()["loss"] == "mean_squared_error"
    assert loaded.get_compile_config()["metrics"] == ["mae"]
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert int(np.asarray(loaded.optimizer.iterations)) == 8
    # Training on from the loaded state gives the weights of the run that was never interrupted.
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    loaded.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    _assert_same_weights(model, loaded)


def test_include_optimizer_false_and_uncompiled_models(tmp_path):
    model = _mlp()
    model.compile(optimizer="sgd", loss="mean_squared_error")
    path = tmp_path / "m.h5"
    legacy_h5.save_model_to_hdf5(model, path, include_optimizer=False)
    with h5py.File(path) as f:
        assert "training_config" not in f.attrs and "optimizer_weights" not in f
    with pytest.warns(UserWarning, match="No training configuration found in the save file"):
        loaded = legacy_h5.load_model_from_hdf5(path)
    assert not loaded.compiled
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not legacy_h5.load_model_from_hdf5(path, compile=False).compiled  # no warning without compile


def test_file_layout_is_keras_legacy_h5(tmp_path):
    model = _mlp()
    model.compile(optimizer="adam", loss="mean_squared_error")
    model.fit(_x(8, 4), _x(8, 2), verbose=0)
    path = tmp_path / "m.h5"
    legacy_h5.save_model_to_hdf5(model, path)
    with h5py.File(path) as f:
        assert f.attrs["keras_version"] == b"3.15.1" and f.attrs["backend"] == b"fastnn"
        # Fixed-length strings only: reading variable-length ones from a corrupt file can crash HDF5.
        objects = [f]
        f.visit(lambda name: objects.append(f[name]))
        for obj in objects:
            for key in obj.attrs:
                assert obj.attrs.get_id(key).dtype.kind in "Sf", (obj.name, key)
        config = json.loads(f.attrs["model_config"])
        assert config["class_name"] == "Sequential"
        # Keras 3's legacy form: layer entries without module / registered_name / build_config.
        for entry in config["config"]["layers"]:
            assert set(entry) == {"class_name", "config"}
        training = json.loads(f.attrs["training_config"])
        assert training["optimizer_config"]["class_name"] == "Adam" and "optimizer" not in training
        group = f["model_weights"]
        names = _names(group.attrs["layer_names"])
        assert names == [layer.name for layer in model.layers]
        bn = names[1]
        assert _names(group[bn].attrs["weight_names"]) == [f"{bn}/gamma", f"{bn}/beta", f"{bn}/moving_mean",
                                                          f"{bn}/moving_variance"]
        assert group[bn][bn]["gamma"].shape == (6,)
        assert len(group[names[2]].attrs["weight_names"]) == 0  # Dropout: no weights
        assert "top_level_model_weights" in group
        opt = f["optimizer_weights"]
        opt_names = _names(opt.attrs["weight_names"])
        prefix = model.optimizer.name  # "adam", or "adam_<n>" (Keras's unique optimizer names)
        assert opt_names[:2] == [f"{prefix}/iteration", f"{prefix}/learning_rate"] and len(opt_names) == 2 + 2 * 6


def _functional_shared_multi_io():
    a, b = fastnn.Input((5,), name="a"), fastnn.Input((5,), name="b")
    shared = L.Dense(4, activation="tanh", name="shared")
    sa, sb = shared(a), shared(b)
    merged = L.Concatenate(name="concat")([sa, sb])
    added = L.Add(name="add")([sa, sb])
    out1 = L.Dense(3, name="out1")(merged)
    out2 = L.Dense(1, name="out2")(added)
    return fastnn.Model([a, b], [out1, out2], name="two_towers")


def test_functional_shared_layer_multi_io_round_trip(tmp_path):
    model = _functional_shared_multi_io()
    model.compile(optimizer="rmsprop", loss=["mean_squared_error", "mean_absolute_error"], loss_weights=[1.0, 0.5])
    xa, xb = _x(6, 5), _x(6, 5)
    loaded = _round_trip(model, tmp_path)
    assert [l.name for l in loaded.layers] == [l.name for l in model.layers]
    for p, q in zip(model.predict([xa, xb], verbose=0), loaded.predict([xa, xb], verbose=0)):
        np.testing.assert_array_equal(p, q)
    assert loaded.get_compile_config()["loss_weights"] == [1.0, 0.5]


def test_nested_models_round_trip(tmp_path):
    inner_seq = fastnn.Sequential([fastnn.Input((6,)), L.Dense(5, activation="relu"), L.BatchNormalization()],
                                  name="inner_seq")
    i = fastnn.Input((5,))
    inner_fn = fastnn.Model(i, L.Dense(3, name="inner_dense")(i), name="inner_fn")
    x = fastnn.Input((6,), name="x")
    y = inner_fn(inner_seq(x))
    outer = fastnn.Model(x, L.Dense(2, name="head")(y), name="outer")
    wrapper = fastnn.Sequential([fastnn.Input((6,)), outer, L.Dense(1, name="top")], name="wrapper")
    data = _x(4, 6)
    loaded = _round_trip(wrapper, tmp_path)
    _assert_same_weights(wrapper, loaded)
    np.testing.assert_array_equal(wrapper.predict(data, verbose=0), loaded.predict(data, verbose=0))
    nested = loaded.get_layer("outer")
    assert [l.name for l in nested.layers][1:] == ["inner_seq", "inner_fn", "head"]


def _conv2d_pool_bn():
    return fastnn.Sequential([
        fastnn.Input((8, 8, 3)), L.Conv2D(4, 3, padding="same", activation="relu"), L.BatchNormalization(),
        L.MaxPooling2D(), L.SeparableConv2D(5, 3), L.DepthwiseConv2D(2), L.AveragePooling2D(pool_size=1),
        L.GlobalAveragePooling2D(), L.Dense(2)]), (3, 8, 8, 3)


def _conv1d_family():
    return fastnn.Sequential([
        fastnn.Input((10, 3)), L.Conv1D(4, 3, activation="relu"), L.MaxPooling1D(), L.SeparableConv1D(3, 2),
        L.DepthwiseConv1D(2), L.ZeroPadding1D(1), L.Cropping1D(1), L.UpSampling1D(2), L.AveragePooling1D(2),
        L.GlobalMaxPooling1D(), L.Dense(2)]), (3, 10, 3)


def _transpose_reshape():
    return fastnn.Sequential([
        fastnn.Input((4, 4, 2)), L.Conv2DTranspose(3, 3, strides=2), L.ZeroPadding2D(1), L.Cropping2D(1),
        L.UpSampling2D(), L.Permute((2, 1, 3)), L.Reshape((-1, 3)), L.Conv1DTranspose(2, 2), L.Flatten(),
        L.RepeatVector(2), L.Flatten(), L.Dense(1)]), (2, 4, 4, 2)


def _recurrent():
    return fastnn.Sequential([
        fastnn.Input((5, 3)), L.Masking(0.0), L.LSTM(4, return_sequences=True), L.GRU(3, return_sequences=True),
        L.SimpleRNN(2)]), (3, 5, 3)


def _wrappers():
    return fastnn.Sequential([
        fastnn.Input((5, 3)), L.Bidirectional(L.LSTM(4, return_sequences=True)),
        L.TimeDistributed(L.Dense(2)), L.Bidirectional(L.GRU(2), merge_mode="sum")]), (3, 5, 3)


def _embedding_masked_lstm():
    ids = fastnn.Input((6,), dtype="int32")
    h = L.LSTM(3)(L.Embedding(20, 4, mask_zero=True)(ids))
    return fastnn.Model(ids, L.Dense(2, activation="softmax")(h)), "ids"


def _merging():
    a, b = fastnn.Input((4,)), fastnn.Input((4,))
    merged = [L.Add()([a, b]), L.Subtract()([a, b]), L.Multiply()([a, b]), L.Average()([a, b]),
              L.Maximum()([a, b]), L.Minimum()([a, b])]
    c = L.Concatenate()(merged)
    return fastnn.Model([a, b], L.Dense(2)(L.Activation("relu")(L.Identity()(c)))), ((2, 4), (2, 4))


_FAMILIES = {f.__name__.lstrip("_"): f for f in (_conv2d_pool_bn, _conv1d_family, _transpose_reshape, _recurrent,
                                                 _wrappers, _embedding_masked_lstm, _merging)}


def _inputs_for(spec):
    if spec == "ids":
        return RNG.integers(0, 20, size=(3, 6)).astype("int32")
    if isinstance(spec[0], tuple):
        return [_x(*s) for s in spec]
    return _x(*spec)


@pytest.mark.parametrize("family", sorted(_FAMILIES))
def test_every_layer_family_round_trips(family, tmp_path):
    model, spec = _FAMILIES[family]()
    x = _inputs_for(spec)
    expected = model.predict(x, verbose=0)
    loaded = _round_trip(model, tmp_path)
    _assert_same_weights(model, loaded)
    np.testing.assert_array_equal(expected, loaded.predict(x, verbose=0))
    # The weights-only file loads into a second copy of the architecture (by order, and by name).
    legacy_h5.save_weights_to_hdf5(model, tmp_path / "w.h5")
    for by_name in (False, True):
        clone = type(model).from_config(model.get_config())
        legacy_h5.load_weights_from_hdf5(clone, tmp_path / "w.h5", by_name=by_name)
        np.testing.assert_array_equal(expected, clone.predict(x, verbose=0))


def test_frozen_layers_keep_keras_legacy_order(tmp_path):
    """A frozen BatchNormalization stores all four weights as non-trainable; a model with a frozen nested model
    stores that model's group as trainable weights, then non-trainable ones (Keras's _legacy_weights)."""
    inner = fastnn.Sequential([fastnn.Input((3,)), L.BatchNormalization(), L.Dense(3)], name="inner")
    model = fastnn.Sequential([fastnn.Input((3,)), inner, L.BatchNormalization(name="bn_top")])
    model.get_layer("bn_top").trainable = False
    legacy_h5.save_weights_to_hdf5(model, tmp_path / "w.h5")
    with h5py.File(tmp_path / "w.h5") as f:
        names = _names(f["inner"].attrs["weight_names"])
        bn, dn = inner.layers[0].name, inner.layers[1].name
        assert names == [f"{bn}/gamma:0", f"{bn}/beta:0", f"{dn}/kernel:0", f"{dn}/bias:0", f"{bn}/moving_mean:0",
                         f"{bn}/moving_variance:0"]  # not the get_weights() order
        assert _names(f["bn_top"].attrs["weight_names"]) == ["bn_top/gamma:0", "bn_top/beta:0", "bn_top/moving_mean:0",
                                                           "bn_top/moving_variance:0"]
    clone = fastnn.Sequential.from_config(model.get_config())
    legacy_h5.load_weights_from_hdf5(clone, tmp_path / "w.h5")
    _assert_same_weights(model, clone)


# ---------------------------------------------------------------------------------------------------------------
# Weights-only files: by order, by name, skip_mismatch, messages
# ---------------------------------------------------------------------------------------------------------------
def _two_dense(names=("d1", "d2"), units=(3, 2)):
    return fastnn.Sequential([fastnn.Input((4,)), L.Dense(units[0], name=names[0]), L.Dropout(0.0),
                              L.Dense(units[1], name=names[1])])


def test_weights_file_layout_is_tf_keras_2(tmp_path):
    model = _two_dense()
    legacy_h5.save_weights_to_hdf5(model, tmp_path / "w.h5")
    with h5py.File(tmp_path / "w.h5") as f:
        assert "model_config" not in f.attrs
        assert _names(f.attrs["layer_names"]) == ["d1", model.layers[1].name, "d2"]
        assert _names(f["d1"].attrs["weight_names"]) == ["d1/kernel:0", "d1/bias:0"]
        np.testing.assert_array_equal(f["d1"]["d1"]["kernel:0"][()], model.layers[0].kernel.numpy())


def test_topological_loading_ignores_names(tmp_path):
    source = _two_dense(("a", "b"))
    target = _two_dense(("x", "y"))
    legacy_h5.save_weights_to_hdf5(source, tmp_path / "w.h5")
    legacy_h5.load_weights_from_hdf5(target, tmp_path / "w.h5")
    _assert_same_weights(source, target)


def test_by_name_loads_matching_layers_only(tmp_path):
    source = _two_dense(("a", "b"))
    target = fastnn.Sequential([fastnn.Input((4,)), L.Dense(3, name="a"), L.Dense(2, name="other")])
    before = target.layers[1].get_weights()
    legacy_h5.save_weights_to_hdf5(source, tmp_path / "w.h5")
    legacy_h5.load_weights_from_hdf5(target, tmp_path / "w.h5", by_name=True)
    for p, q in zip(source.layers[0].get_weights(), target.layers[0].get_weights()):
        np.testing.assert_array_equal(p, q)
    for p, q in zip(before, target.layers[1].get_weights()):
        np.testing.assert_array_equal(p, q)


def test_shape_mismatch_names_layer_and_both_shapes(tmp_path):
    source = _two_dense(units=(3, 2))
    target = _two_dense(units=(5, 2))
    legacy_h5.save_weights_to_hdf5(source, tmp_path / "w.h5")
    before = target.get_weights()
    with pytest.raises(ValueError, match=r"Shape mismatch in layer #0 \(named d1\) for weight d1/kernel\. Weight "
                                         r"expects shape \(4, 5\)\. Received saved weight with shape \(4, 3\)"):
        legacy_h5.load_weights_from_hdf5(target, tmp_path / "w.h5")
    for p, q in zip(before, target.get_weights()):
        np.testing.assert_array_equal(p, q)  # nothing assigned
    with pytest.raises(ValueError, match=r"Shape mismatch in layer #0 \(named d1\)"):
        legacy_h5.load_weights_from_hdf5(target, tmp_path / "w.h5", by_name=True)


def test_skip_mismatch_warns_and_loads_the_rest(tmp_path):
    source = _two_dense(units=(3, 2))
    target = _two_dense(units=(5, 2))
    legacy_h5.save_weights_to_hdf5(source, tmp_path / "w.h5")
    with pytest.warns(UserWarning, match=r"Skipping loading weights for layer #0 \(named d1\) due to mismatch in "
                                         r"shape for weight d1/kernel\. Weight expects shape \(4, 5\)\. Received"):
        legacy_h5.load_weights_from_hdf5(target, tmp_path / "w.h5", skip_mismatch=True)
    # d1's bias (3,) vs (5,) is skipped too; d2's kernel (3, 2) vs (5, 2) skipped, d2's bias (2,) loaded.
    np.testing.assert_array_equal(target.layers[2].bias.numpy(), source.layers[2].bias.numpy())


def test_count_mismatches_raise_with_keras_messages(tmp_path):
    source = _two_dense()
    legacy_h5.save_weights_to_hdf5(source, tmp_path / "w.h5")
    three = fastnn.Sequential([fastnn.Input((4,)), L.Dense(3), L.Dense(2), L.Dense(1)])
    with pytest.raises(ValueError, match="Layer count mismatch when loading weights from file. Model expected 3 "
                                         "layers, found 2 saved layers."):
        legacy_h5.load_weights_from_hdf5(three, tmp_path / "w.h5")
    no_bias = fastnn.Sequential([fastnn.Input((4,)), L.Dense(3, name="d1", use_bias=False), L.Dense(2, name="d2")])
    with pytest.raises(ValueError, match=r"Weight count mismatch for layer #0 \(named d1 in the current model, d1 in "
                                         r"the save file\)\. Layer expects 1 weight\(s\)\. Received 2 saved"):
        legacy_h5.load_weights_from_hdf5(no_bias, tmp_path / "w.h5")
    with pytest.raises(ValueError, match=r"Weight count mismatch for layer #0 \(named d1\)\. Layer expects 1"):
        legacy_h5.load_weights_from_hdf5(no_bias, tmp_path / "w.h5", by_name=True)
    with pytest.warns(UserWarning, match=r"Skipping loading of weights for layer #0 \(named d1\) due to mismatch in "
                                         r"number of weights"):
        legacy_h5.load_weights_from_hdf5(no_bias, tmp_path / "w.h5", by_name=True, skip_mismatch=True)
    np.testing.assert_array_equal(no_bias.layers[1].kernel.numpy(), source.layers[2].kernel.numpy())


def test_load_weights_reads_a_full_model_file(tmp_path):
    model = _mlp()
    legacy_h5.save_model_to_hdf5(model, tmp_path / "m.h5")
    other = _mlp()
    legacy_h5.load_weights_from_hdf5(other, tmp_path / "m.h5")  # Keras: model_weights of a full-model file
    _assert_same_weights(model, other)


# ---------------------------------------------------------------------------------------------------------------
# tf.keras 2 files (written in its layout by keras2_h5.py)
# ---------------------------------------------------------------------------------------------------------------
def _dense_weights(name, n_in, n_out, suffix=":0"):
    return [(f"{name}/kernel{suffix}", _x(n_in, n_out)), (f"{name}/bias{suffix}", _x(n_out))]


def test_keras2_sequential_model_file(tmp_path):
    config = {"class_name": "Sequential", "config": {"name": "sequential", "layers": [
        k2.input_layer("dense_input", [None, 4]), k2.dense("dense", 3, "relu", batch_input_shape=[None, 4]),
        k2.batch_normalization("batch_normalization", [1]), k2.simple("Dropout", "dropout", rate=0.5,
                                                                       noise_shape=None, seed=None),
        k2.dense("dense_1", 2, "softmax_v2")]}}
    d0, d1 = _dense_weights("dense", 4, 3), _dense_weights("dense_1", 3, 2)
    bn = [("batch_normalization/gamma:0", _x(3)), ("batch_normalization/beta:0", _x(3)),
          ("batch_normalization/moving_mean:0", _x(3)), ("batch_normalization/moving_variance:0",
                                                          np.abs(_x(3)) + 0.5)]
    training = {"loss": "categorical_crossentropy", "metrics": [[{"class_name": "MeanMetricWrapper", "config": {
        "name": "accuracy", "dtype": "float32", "fn": "categorical_accuracy"}}]], "weighted_metrics": None,
        "loss_weights": None, "optimizer_config": {"class_name": "Custom>Adam", "config": {
            "name": "Adam", "weight_decay": None, "clipnorm": None, "global_clipnorm": None, "clipvalue": None,
            "use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None, "jit_compile": False,
            "is_legacy_optimizer": False, "learning_rate": 0.0020000000949949026, "beta_1": 0.9, "beta_2": 0.999,
            "epsilon": 1e-07, "amsgrad": False}}}
    # tf.keras 2.11+'s optimizer variables: iteration, then m and v per variable (no learning-rate variable).
    opt = [("iteration:0", np.array(7, dtype="int64"))]
    for name, value in d0 + bn[:2] + d1:
        opt += [(f"Adam/m/{name}", np.zeros_like(value)), (f"Adam/v/{name}", np.zeros_like(value))]
    path = tmp_path / "k2.h5"
    k2.write_model_file(path, config, [("dense", d0), ("batch_normalization", bn), ("dropout", []),
                                       ("dense_1", d1)], training_config=training, optimizer_weights=opt)
    with pytest.warns(UserWarning, match="Error in loading the saved optimizer state"):
        model = legacy_h5.load_model_from_hdf5(path)
    assert [l.name for l in model.layers] == ["dense", "batch_normalization", "dropout", "dense_1"]
    assert model.layers[1].axis in (1, -1, [1])
    x = _x(5, 4)
    h = np.maximum(x @ d0[0][1] + d0[1][1], 0)
    g, b, mm, mv = (v for _, v in bn)
    h = (h - mm) / np.sqrt(mv + 1e-3) * g + b
    logits = h @ d1[0][1] + d1[1][1]
    expected = np.exp(logits - logits.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    assert model.compiled and type(model.optimizer) is fastnn.optimizers.Adam
    assert model.optimizer.learning_rate == pytest.approx(0.002)
    model.evaluate(x, np.eye(2)[[0, 1, 0, 1, 0]].astype("float32"), verbose=0)  # the restored compile works


def test_keras2_functional_model_with_shared_layer_and_nested_models(tmp_path):
    inner = {"class_name": "Sequential", "config": {"name": "inner", "layers": [
        k2.input_layer("inner_input", [None, 3]), k2.dense("inner_dense", 3, "tanh", batch_input_shape=[None, 3])]}}
    inner_fn = {"class_name": "Functional", "config": {"name": "inner_fn", "layers": [
        k2.functional_entry(k2.input_layer("fn_in", [None, 3]), []),
        k2.functional_entry(k2.dense("fn_dense", 2), [k2.node(("fn_in", 0, 0))])],
        "input_layers": [["fn_in", 0, 0]], "output_layers": [["fn_dense", 0, 0]]}}
    layers = [
        k2.functional_entry(k2.input_layer("input_1", [None, 3]), []),
        k2.functional_entry(k2.dense("shared", 3, "relu"), [k2.node(("input_1", 0, 0)), k2.node(("inner", 1, 0))]),
        # tf.keras counts a nested model's own construction as its node 0: its first call is node 1.
        k2.functional_entry(inner, [k2.node(("shared", 0, 0))]),
        k2.functional_entry(k2.simple("Add", "add"), [k2.node(("shared", 0, 0), ("shared", 1, 0))]),
        k2.functional_entry(inner_fn, [k2.node(("add", 0, 0))]),
        k2.functional_entry(k2.dense("out", 1), [k2.node(("inner_fn", 1, 0))]),
    ]
    config = {"class_name": "Functional", "config": {"name": "model", "layers": layers,
                                                      "input_layers": [["input_1", 0, 0]],
                                                      "output_layers": [["out", 0, 0], ["inner", 1, 0],
                                                                        ["inner_fn", 1, 0]]}}
    shared, inner_w, fn_w, out = _dense_weights("shared", 3, 3), _dense_weights("inner_dense", 3, 3), \
        _dense_weights("fn_dense", 3, 2), _dense_weights("out", 2, 1)
    path = tmp_path / "k2f.h5"
    k2.write_model_file(path, config, [("input_1", []), ("shared", shared), ("inner", inner_w), ("add", []),
                                       ("inner_fn", fn_w), ("out", out)])
    with pytest.warns(UserWarning, match="No training configuration"):
        model = legacy_h5.load_model_from_hdf5(path)
    x = _x(4, 3)
    s0 = np.maximum(x @ shared[0][1] + shared[1][1], 0)
    t = np.tanh(s0 @ inner_w[0][1] + inner_w[1][1])
    s1 = np.maximum(t @ shared[0][1] + shared[1][1], 0)
    f = (s0 + s1) @ fn_w[0][1] + fn_w[1][1]
    got_out, got_inner, got_fn = model.predict(x, verbose=0)
    np.testing.assert_allclose(got_out, f @ out[0][1] + out[1][1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_inner, t, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_fn, f, rtol=1e-5, atol=1e-6)
    # Saved again by fastnn (Keras 3's form) and loaded: the same graph.
    again = _round_trip(model, tmp_path)
    for p, q in zip(model.predict(x, verbose=0), again.predict(x, verbose=0)):
        np.testing.assert_array_equal(p, q)


def test_keras2_recurrent_layers_and_wrappers_weights_order(tmp_path):
    config = {"class_name": "Sequential", "config": {"name": "seq", "layers": [
        k2.input_layer("embedding_input", [None, 6], dtype="float32"),
        k2.embedding("embedding", 30, 4, 6, [None, 6]),
        k2.bidirectional("bidirectional", k2.lstm("lstm", 3, return_sequences=True)),
        k2.time_distributed("time_distributed", k2.dense("dense", 2)),
        k2.gru("gru", 2, return_sequences=True),
        k2.lstm("lstm_1", 2)]}}

    def rnn(prefix, n_in, units, gates, bias_shape):
        return [(f"{prefix}/kernel:0", _x(n_in, gates * units)),
                (f"{prefix}/recurrent_kernel:0", _x(units, gates * units)),
                (f"{prefix}/bias:0", _x(*bias_shape))]

    emb = [("embedding/embeddings:0", _x(30, 4))]
    bi = rnn("bidirectional/forward_lstm/lstm_cell", 4, 3, 4, (12,)) + \
        rnn("bidirectional/backward_lstm/lstm_cell", 4, 3, 4, (12,))
    td = [("time_distributed/kernel:0", _x(6, 2)), ("time_distributed/bias:0", _x(2))]
    gr = rnn("gru/gru_cell", 2, 2, 3, (2, 6))
    ls = rnn("lstm_1/lstm_cell", 2, 2, 4, (8,))
    path = tmp_path / "k2r.h5"
    k2.write_model_file(path, config, [("embedding", emb), ("bidirectional", bi), ("time_distributed", td),
                                       ("gru", gr), ("lstm_1", ls)])
    model = legacy_h5.load_model_from_hdf5(path, compile=False)
    expected = [v for _, v in emb + bi + td + gr + ls]
    got = [w.numpy() for layer in model.layers for w in layer.trainable_weights + layer.non_trainable_weights]
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)
    bidir = model.get_layer("bidirectional")
    np.testing.assert_array_equal(bidir.backward_layer.cell.kernel.numpy(), bi[3][1])
    assert model.get_layer("lstm_1").cell.recurrent_kernel.shape == (2, 8)
    assert model.predict(RNG.integers(0, 30, (2, 6)).astype("float32"), verbose=0).shape == (2, 2)


@pytest.mark.parametrize("fixed_length", [True, False], ids=["h5py2_strings", "h5py3_strings"])
def test_keras2_weights_file_by_order_and_by_name(fixed_length, tmp_path):
    """A pretrained-weights file of tf.keras 2 (weights-only, layer names of the original model)."""
    d0, d1 = _dense_weights("fc1", 4, 3), _dense_weights("predictions", 3, 2)
    path = tmp_path / "pretrained.h5"
    k2.write_weights_file(path, [("input_1", []), ("fc1", d0), ("dropout", []), ("predictions", d1)],
                          top_level=False, fixed_length=fixed_length)
    model = _two_dense(("dense_a", "dense_b"))
    legacy_h5.load_weights_from_hdf5(model, path)
    np.testing.assert_array_equal(model.layers[0].kernel.numpy(), d0[0][1])
    np.testing.assert_array_equal(model.layers[2].bias.numpy(), d1[1][1])
    # Transfer learning: a new head of another size, loaded by name with skip_mismatch.
    transfer = fastnn.Sequential([fastnn.Input((4,)), L.Dense(3, name="fc1"), L.Dense(5, name="predictions")])
    with pytest.warns(UserWarning, match=r"named predictions\) due to mismatch in shape"):
        legacy_h5.load_weights_from_hdf5(transfer, path, by_name=True, skip_mismatch=True)
    np.testing.assert_array_equal(transfer.layers[0].kernel.numpy(), d0[0][1])
    assert transfer.layers[1].kernel.shape == (3, 5)


def _to_cudnn(weights, gates):
    """tf.keras 2's conversion of native LSTM / GRU(reset_after) weights to CuDNNLSTM / CuDNNGRU's layout."""
    kernel, recurrent_kernel, bias = weights

    def per_gate(k, fn):
        return np.hstack([fn(part) for part in np.hsplit(k, gates)])

    cudnn_bias = np.tile(0.5 * bias, 2) if bias.ndim == 1 else bias.reshape(-1)
    return [per_gate(kernel, lambda k: k.T.reshape(k.shape, order="C")), per_gate(recurrent_kernel, lambda k: k.T),
            cudnn_bias]


def test_cudnn_rnn_weights_are_converted_as_tf_keras_does(tmp_path):
    """Pretrained weights of tf.keras 2's CuDNNLSTM / CuDNNGRU (recognised by the bias shape) load into LSTM and
    GRU(reset_after=True), inside Bidirectional too, by order and by name."""
    model = fastnn.Sequential([fastnn.Input((4, 3)), L.Bidirectional(L.LSTM(2, return_sequences=True), name="bi"),
                               L.GRU(3, name="gru")])
    x = _x(2, 4, 3)
    expected = model.predict(x, verbose=0)
    bi, gru = model.get_layer("bi"), model.get_layer("gru")
    fwd = [w.numpy() for w in bi.forward_layer.weights]
    bwd = [w.numpy() for w in bi.backward_layer.weights]
    gw = [w.numpy() for w in gru.weights]
    layers = [("bi", [(f"bi/w{i}:0", v) for i, v in enumerate(_to_cudnn(fwd, 4) + _to_cudnn(bwd, 4))]),
              ("gru", [(f"gru/w{i}:0", v) for i, v in enumerate(_to_cudnn(gw, 3))])]
    assert layers[0][1][2][1].shape == (16,) and layers[1][1][2][1].shape == (18,)
    k2.write_weights_file(tmp_path / "cudnn.h5", layers)
    for by_name in (False, True):
        target = fastnn.Sequential.from_config(model.get_config())
        legacy_h5.load_weights_from_hdf5(target, tmp_path / "cudnn.h5", by_name=by_name)
        np.testing.assert_allclose(target.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    no_reset_after = fastnn.Sequential([fastnn.Input((4, 3)), L.Bidirectional(L.LSTM(2, return_sequences=True)),
                                        L.GRU(3, reset_after=False)])
    with pytest.raises(ValueError, match="CuDNNGRU weights, which are not compatible with GRU"):
        legacy_h5.load_weights_from_hdf5(no_reset_after, tmp_path / "cudnn.h5")


def test_keras22_sequential_list_config_and_legacy_optimizer(tmp_path):
    """Keras <= 2.2.4: a Sequential config that is the list of layers, a functional class named "Model", legacy
    optimizer arguments (lr, decay)."""
    config = {"class_name": "Sequential", "config": [k2.dense("dense_1", 2, "sigmoid", batch_input_shape=[None, 3])]}
    d = _dense_weights("dense_1", 3, 2)
    training = {"loss": "binary_crossentropy", "metrics": ["acc"], "sample_weight_mode": None, "loss_weights": None,
                "optimizer_config": {"class_name": "SGD", "config": {"lr": 0.05, "momentum": 0.0, "decay": 0.0,
                                                                     "nesterov": False}}}
    path = tmp_path / "k22.h5"
    k2.write_model_file(path, config, [("dense_1", d)], training_config=training, keras_version="2.2.4")
    model = legacy_h5.load_model_from_hdf5(path)
    x = _x(3, 3)
    np.testing.assert_allclose(model.predict(x, verbose=0), 1 / (1 + np.exp(-(x @ d[0][1] + d[1][1]))), rtol=1e-5)
    assert model.optimizer.learning_rate == pytest.approx(0.05)
    functional = {"class_name": "Model", "config": {"name": "m", "layers": [
        k2.functional_entry(k2.input_layer("in", [None, 3]), []),
        k2.functional_entry(k2.dense("dense_1", 2, "sigmoid"), [k2.node(("in", 0, 0))])],
        "input_layers": [["in", 0, 0]], "output_layers": [["dense_1", 0, 0]]}}
    k2.write_model_file(tmp_path / "k22f.h5", functional, [("in", []), ("dense_1", d)], keras_version="2.2.4")
    model = legacy_h5.load_model_from_hdf5(tmp_path / "k22f.h5", compile=False)
    np.testing.assert_allclose(model.predict(x, verbose=0), 1 / (1 + np.exp(-(x @ d[0][1] + d[1][1]))), rtol=1e-5)


def test_keras2_conv_model_with_tensor_shape_and_policy_dtype(tmp_path):
    conv = k2.conv2d("conv2d", 2, (3, 3), batch_input_shape=[None, 5, 5, 1])
    conv["config"]["dtype"] = {"class_name": "Policy", "config": {"name": "float32"}}
    config = {"class_name": "Sequential", "config": {"name": "cnn", "layers": [
        conv, k2.batch_normalization("bn", [3]), k2.simple("Flatten", "flatten", data_format="channels_last"),
        k2.dense("dense", 1)]}}
    w = [("conv2d/kernel:0", _x(3, 3, 1, 2)), ("conv2d/bias:0", _x(2))]
    bn = [("bn/gamma:0", _x(2)), ("bn/beta:0", _x(2)), ("bn/moving_mean:0", _x(2)),
          ("bn/moving_variance:0", np.abs(_x(2)) + 1)]
    d = _dense_weights("dense", 18, 1)
    k2.write_model_file(tmp_path / "cnn.h5", config, [("conv2d", w), ("bn", bn), ("flatten", []), ("dense", d)])
    model = legacy_h5.load_model_from_hdf5(tmp_path / "cnn.h5", compile=False)
    assert model.get_layer("bn").axis in (3, -1, [3])
    assert model.predict(_x(2, 5, 5, 1), verbose=0).shape == (2, 1)
    np.testing.assert_array_equal(model.layers[0].kernel.numpy(), w[0][1])


def test_keras2_arguments_keras3_dropped(tmp_path):
    """tf.keras 2's base Conv wrote groups=1 into SeparableConv / DepthwiseConv / Conv2DTranspose configs and the
    spatial dropouts wrote noise_shape and trainable; Keras 3 takes none of them."""
    sep = k2.conv2d("sep", 2, (3, 3), batch_input_shape=[None, 6, 6, 2])
    sep["class_name"] = "SeparableConv2D"
    cfg = sep["config"]
    for key in ("kernel_initializer", "kernel_regularizer", "kernel_constraint"):
        cfg.pop(key)
    cfg.update(depth_multiplier=1, depthwise_initializer=k2.GLOROT, pointwise_initializer=k2.GLOROT,
               depthwise_regularizer=None, pointwise_regularizer=None, depthwise_constraint=None,
               pointwise_constraint=None)
    transpose = k2.conv2d("transpose", 2, (2, 2))
    transpose["class_name"] = "Conv2DTranspose"
    transpose["config"]["output_padding"] = None
    drop = k2.simple("SpatialDropout2D", "spatial_dropout2d", rate=0.3, noise_shape=None, seed=None,
                     data_format="channels_last")
    config = {"class_name": "Sequential", "config": {"name": "s", "layers": [sep, drop, transpose]}}
    weights = [("sep", [("sep/depthwise_kernel:0", _x(3, 3, 2, 1)), ("sep/pointwise_kernel:0", _x(1, 1, 2, 2)),
                        ("sep/bias:0", _x(2))]), ("spatial_dropout2d", []),
               ("transpose", [("transpose/kernel:0", _x(2, 2, 2, 2)), ("transpose/bias:0", _x(2))])]
    k2.write_model_file(tmp_path / "convs.h5", config, weights)
    model = legacy_h5.load_model_from_hdf5(tmp_path / "convs.h5", compile=False)
    assert model.predict(_x(1, 6, 6, 2), verbose=0).shape == (1, 5, 5, 2)
    np.testing.assert_array_equal(model.layers[0].pointwise_kernel.numpy(), weights[0][1][1][1])
    transpose["config"]["groups"] = 2
    k2.write_model_file(tmp_path / "bad.h5", config, weights)
    with pytest.raises(ValueError, match=r"Conv2DTranspose layer 'transpose': groups=2"):
        legacy_h5.load_model_from_hdf5(tmp_path / "bad.h5")


def test_keras2_tf_op_lambda_is_refused_clearly(tmp_path):
    layers = [k2.functional_entry(k2.input_layer("x", [None, 3]), []),
              {"class_name": "TFOpLambda", "config": {"name": "tf.math.add", "trainable": True, "dtype": "float32",
                                                      "function": "math.add"}, "name": "tf.math.add",
               "inbound_nodes": [["x", 0, 0, {"y": 1.0, "name": None}]]}]
    config = {"class_name": "Functional", "config": {"name": "m", "layers": layers, "input_layers": [["x", 0, 0]],
                                                      "output_layers": [["tf.math.add", 0, 0]]}}
    k2.write_model_file(tmp_path / "op.h5", config, [("x", []), ("tf.math.add", [])])
    with pytest.raises(ValueError, match="TensorFlow function 'math.add'"):
        legacy_h5.load_model_from_hdf5(tmp_path / "op.h5")


def test_keras2_time_major_is_refused_clearly(tmp_path):
    layer = k2.lstm("lstm", 2)
    layer["config"]["time_major"] = True
    config = {"class_name": "Sequential", "config": {"name": "s", "layers": [k2.input_layer("i", [None, 3, 2]),
                                                                              layer]}}
    k2.write_model_file(tmp_path / "tm.h5", config, [("lstm", [])])
    with pytest.raises(ValueError, match="time_major=True"):
        legacy_h5.load_model_from_hdf5(tmp_path / "tm.h5")


def test_keras2_lambda_is_refused_in_safe_mode(tmp_path):
    import codecs
    import marshal

    code = codecs.encode(marshal.dumps((lambda t: t * 2.0).__code__), "base64").decode("ascii")
    lam = {"class_name": "Lambda", "config": {"name": "lambda", "trainable": True, "dtype": "float32",
                                              "function": [code, None, None], "function_type": "lambda",
                                              "module": "__main__", "output_shape": None, "output_shape_type": "raw",
                                              "output_shape_module": None, "arguments": {}}}
    config = {"class_name": "Sequential", "config": {"name": "s", "layers": [k2.input_layer("i", [None, 3]), lam]}}
    k2.write_model_file(tmp_path / "lam.h5", config, [("lambda", [])])
    with pytest.raises(ValueError, match="Requested the deserialization of a Python lambda"):
        legacy_h5.load_model_from_hdf5(tmp_path / "lam.h5")
    model = legacy_h5.load_model_from_hdf5(tmp_path / "lam.h5", safe_mode=False, compile=False)
    x = _x(2, 3)
    np.testing.assert_allclose(model.predict(x, verbose=0), 2 * x, rtol=1e-6)


def test_keras2_chunked_layer_names_attribute(tmp_path):
    """Keras splits an attribute over name0, name1, ... when it exceeds HDF5's 64 KiB object header."""
    d = _dense_weights("d", 2, 2)
    with h5py.File(tmp_path / "w.h5", "w") as f:
        k2.write_weights_group(f, [("d", d)])
        names = f.attrs["layer_names"]
        del f.attrs["layer_names"]
        f.attrs["layer_names0"] = names
    model = fastnn.Sequential([fastnn.Input((2,)), L.Dense(2)])
    legacy_h5.load_weights_from_hdf5(model, tmp_path / "w.h5")
    np.testing.assert_array_equal(model.layers[0].kernel.numpy(), d[0][1])


def test_custom_layer_through_custom_objects(tmp_path):
    class Scale(L.Layer):
        def __init__(self, factor=2.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="w")

        def call(self, x):
            return x * self.w * self.factor

        def get_config(self):
            return {**super().get_config(), "factor": self.factor}

    model = fastnn.Sequential([fastnn.Input((3,)), Scale(3.0, name="scale")])
    model.layers[0].w.assign(np.array([1.0, 2.0, 3.0], "float32"))
    legacy_h5.save_model_to_hdf5(model, tmp_path / "c.h5")
    with pytest.raises(ValueError, match="custom_objects"):
        legacy_h5.load_model_from_hdf5(tmp_path / "c.h5")
    loaded = legacy_h5.load_model_from_hdf5(tmp_path / "c.h5", custom_objects={"Scale": Scale})
    np.testing.assert_array_equal(loaded.predict(np.ones((1, 3), "float32"), verbose=0), [[3.0, 6.0, 9.0]])


# ---------------------------------------------------------------------------------------------------------------
# Bad input: clear Python exceptions, never a crash; atomic writes
# ---------------------------------------------------------------------------------------------------------------
def test_missing_and_non_hdf5_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no file found"):
        legacy_h5.load_model_from_hdf5(tmp_path / "nope.h5")
    with pytest.raises(FileNotFoundError):
        legacy_h5.load_weights_from_hdf5(_mlp(), tmp_path / "nope.h5")
    (tmp_path / "text.h5").write_text("not an hdf5 file")
    with pytest.raises(ValueError, match="is not an HDF5 file"):
        legacy_h5.load_model_from_hdf5(tmp_path / "text.h5")
    with pytest.raises(IsADirectoryError):
        legacy_h5.load_model_from_hdf5(tmp_path)


def test_hdf5_without_model_config_or_with_bad_json(tmp_path):
    with h5py.File(tmp_path / "empty.h5", "w") as f:
        f.create_group("something")
    with pytest.raises(ValueError, match="No model config found in the file"):
        legacy_h5.load_model_from_hdf5(tmp_path / "empty.h5")
    with pytest.raises(ValueError, match="no 'layer_names' attribute"):
        legacy_h5.load_weights_from_hdf5(_mlp(), tmp_path / "empty.h5")
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f.attrs["model_config"] = b"{not json"
    with pytest.raises(ValueError, match="not valid JSON"):
        legacy_h5.load_model_from_hdf5(tmp_path / "bad.h5")
    for bad in ([1, 2], {"class_name": "Sequential"}, {"class_name": "Nope", "config": {}},
                {"class_name": "Functional", "config": {"layers": [{"class_name": "Dense"}], "input_layers": [],
                                                        "output_layers": []}}):
        with h5py.File(tmp_path / "bad.h5", "w") as f:
            f.attrs["model_config"] = json.dumps(bad).encode()
        with pytest.raises((ValueError, TypeError)):
            legacy_h5.load_model_from_hdf5(tmp_path / "bad.h5")


def test_truncated_and_corrupt_files_raise_cleanly(tmp_path):
    model = _mlp()
    model.compile(optimizer="adam", loss="mean_squared_error")
    model.fit(_x(8, 4), _x(8, 2), verbose=0)
    legacy_h5.save_model_to_hdf5(model, tmp_path / "m.h5")
    legacy_h5.save_weights_to_hdf5(model, tmp_path / "w.h5")
    for name in ("m.h5", "w.h5"):
        data = (tmp_path / name).read_bytes()
        for cut in (0, 100, len(data) // 3, len(data) // 2, len(data) - 100):
            (tmp_path / "t.h5").write_bytes(data[:cut])
            with pytest.raises((ValueError, OSError)):
                if name == "m.h5":
                    legacy_h5.load_model_from_hdf5(tmp_path / "t.h5")
                else:
                    legacy_h5.load_weights_from_hdf5(_mlp(), tmp_path / "t.h5")
        # Random bytes changed: a clear Python exception (a flipped byte inside a weight, or in unused space, may
        # also load), never a crash of the interpreter.
        rng = np.random.default_rng(3)
        for i in range(60):
            corrupt = bytearray(data)
            for j in rng.integers(0, len(data), size=rng.integers(1, 16)):
                corrupt[j] = rng.integers(0, 256)
            (tmp_path / "c.h5").write_bytes(bytes(corrupt))
            try:
                if name == "m.h5":
                    legacy_h5.load_model_from_hdf5(tmp_path / "c.h5")
                else:
                    legacy_h5.load_weights_from_hdf5(_mlp(), tmp_path / "c.h5", by_name=bool(i % 2))
            except (ValueError, OSError, TypeError):
                pass  # TypeError: a config key damaged into an unknown argument ("Unrecognized keyword arguments")


def test_weights_of_another_architecture_and_non_numeric_datasets(tmp_path):
    legacy_h5.save_weights_to_hdf5(_two_dense(), tmp_path / "w.h5")
    conv = fastnn.Sequential([fastnn.Input((4, 4, 1)), L.Conv2D(2, 3), L.Flatten(), L.Dense(2)])
    with pytest.raises(ValueError, match=r"Shape mismatch in layer #0 .*expects shape \(3, 3, 1, 2\)\. Received "
                                         r"saved weight with shape \(4, 3\)"):
        legacy_h5.load_weights_from_hdf5(conv, tmp_path / "w.h5")
    with h5py.File(tmp_path / "w.h5", "a") as f:
        del f["d1"]["d1"]["kernel:0"]
        f["d1"]["d1"].create_dataset("kernel:0", data=np.array([b"a", b"b"]))
    with pytest.raises(ValueError, match="not numbers"):
        legacy_h5.load_weights_from_hdf5(_two_dense(), tmp_path / "w.h5")
    with h5py.File(tmp_path / "w.h5", "a") as f:
        del f["d1"]["d1"]["kernel:0"]
    with pytest.raises(ValueError, match="dataset 'kernel:0' not found"):
        legacy_h5.load_weights_from_hdf5(_two_dense(), tmp_path / "w.h5")


def test_soft_links_are_refused(tmp_path):
    legacy_h5.save_weights_to_hdf5(_two_dense(), tmp_path / "w.h5")
    with h5py.File(tmp_path / "w.h5", "a") as f:
        del f["d1"]["d1"]["kernel:0"]
        f["d1"]["d1"]["kernel:0"] = h5py.SoftLink("/d2/d2/kernel:0")
    with pytest.raises(ValueError, match="Not allowed: H5 file with SoftLink"):
        legacy_h5.load_weights_from_hdf5(_two_dense(), tmp_path / "w.h5")


def test_writes_are_atomic_and_overwrite_false_refuses(tmp_path, monkeypatch):
    model = _mlp()
    path = tmp_path / "m.h5"
    legacy_h5.save_model_to_hdf5(model, path)
    before = path.read_bytes()
    answers = iter(["maybe", "n"])  # overwrite=False asks, as Keras does; "n" keeps the file
    monkeypatch.setattr("builtins.input", lambda prompt="": next(answers))
    legacy_h5.save_model_to_hdf5(_mlp(), path, overwrite=False)
    assert path.read_bytes() == before

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(legacy_h5, "_save_weights_group", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        legacy_h5.save_model_to_hdf5(_mlp(), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.h5"]  # no temporary file left behind
    monkeypatch.undo()
    legacy_h5.save_model_to_hdf5(model, tmp_path / "new_dir" / "m.h5")  # Keras creates the folder
    assert (tmp_path / "new_dir" / "m.h5").exists()
    with h5py.File(tmp_path / "open.h5", "w") as f:  # an open h5py.File is written in place, as Keras accepts
        legacy_h5.save_model_to_hdf5(model, f)
    with h5py.File(tmp_path / "open.h5", "r") as f:
        _assert_same_weights(model, legacy_h5.load_model_from_hdf5(f, compile=False))


def test_loading_weights_into_an_unbuilt_model_says_so(tmp_path):
    legacy_h5.save_weights_to_hdf5(_two_dense(), tmp_path / "w.h5")
    with pytest.raises(ValueError, match="has not been built yet"):
        legacy_h5.load_weights_from_hdf5(fastnn.Sequential([L.Dense(3), L.Dense(2)]), tmp_path / "w.h5")


def test_non_model_arguments_raise_type_error(tmp_path):
    with pytest.raises(TypeError, match="expects a fastnn Model"):
        legacy_h5.save_model_to_hdf5(L.Dense(2), tmp_path / "x.h5")
    with pytest.raises(TypeError, match="expects a fastnn Model"):
        legacy_h5.load_weights_from_hdf5("model", tmp_path / "x.h5")


def test_through_model_save_load_model_and_load_weights(tmp_path):
    """The public entry points dispatch .h5 / .hdf5 (not .weights.h5) to this module."""
    model = _mlp()
    model.compile(optimizer="adam", loss="mean_squared_error")
    x = _x(4, 4)
    with pytest.warns(UserWarning, match="This file format is considered legacy"):
        model.save(tmp_path / "m.h5")
    for load in (fastnn.saving.load_model, fastnn.models.load_model):
        loaded = load(tmp_path / "m.h5")
        np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
        assert loaded.compiled
    model.save_weights(tmp_path / "w.hdf5")
    with h5py.File(tmp_path / "w.hdf5") as f:
        assert "layer_names" in f.attrs and "model_config" not in f.attrs  # the tf.keras 2 weights layout
    other = _mlp()
    other.load_weights(tmp_path / "w.hdf5")
    _assert_same_weights(model, other)
    renamed = fastnn.Sequential([fastnn.Input((4,)), L.Dense(6, name=model.layers[0].name)])
    renamed.load_weights(tmp_path / "w.hdf5", by_name=True)
    _assert_same_weights(model.layers[0], renamed.layers[0])


def test_operations_without_module_as_keras_legacy_writer_stores_them(tmp_path):
    """Keras 3's legacy writer drops the module of operation entries (``x + y``; the NotEqual / Any of an
    Embedding mask): such entries (config {"name"} only) load as operations, not as the layers of that name."""
    ids = fastnn.Input((5,), dtype="int32")
    h = L.LSTM(2)(L.Embedding(10, 3, mask_zero=True)(ids))
    a = fastnn.Input((2,))
    model = fastnn.Model([ids, a], L.Dense(1)(h + a))
    x = [np.array([[1, 2, 0, 0, 0], [3, 4, 5, 6, 7]], "int32"), _x(2, 2)]
    legacy_h5.save_model_to_hdf5(model, tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5", "a") as f:
        config = json.loads(f.attrs["model_config"])
        stripped = 0
        for entry in config["config"]["layers"]:
            if entry.pop("module", None) is not None:
                stripped += 1
        assert stripped >= 1  # the Add of h + a (fastnn keeps the mask out of the graph)
        f.attrs["model_config"] = np.bytes_(json.dumps(config).encode())
    loaded = legacy_h5.load_model_from_hdf5(tmp_path / "m.h5", compile=False)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
