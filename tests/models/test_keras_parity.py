"""Behaviour that must match Keras 3.15 exactly, with Keras's numbers as literals (measured with Keras 3.15.1 on
TensorFlow 2.21; the live cross-checks are in tests/e2e/test_keras_models.py)."""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import layers as L


# -- 1. layer order of functional models --------------------------------------------------------------------------
def test_functional_layers_are_ordered_by_depth_as_in_keras():
    x = fastnn.Input((4,), name="x")
    a = L.Dense(3, name="a")(x)
    b = L.Dense(3, name="b2")(L.Dense(5, name="b1")(x))
    model = fastnn.Model(x, L.Add(name="add")([a, b]))
    assert [l.name for l in model.layers] == ["x", "b1", "a", "b2", "add"]  # Keras 3.15
    assert [w.shape for w in model.get_weights()] == [(4, 5), (5,), (4, 3), (3,), (5, 3), (3,)]
    assert [c["name"] for c in model.get_config()["layers"]] == ["x", "b1", "a", "b2", "add"]


def test_layer_order_with_shared_nested_multiple_and_unused_inputs():
    a, b, u = fastnn.Input((4,), name="a"), fastnn.Input((4,), name="b"), fastnn.Input((4,), name="u")
    shared = L.Dense(4, name="shared")
    sa = shared(a)
    h = L.Dense(4, name="h")(b)
    sh = shared(h)
    inner_in = fastnn.Input((4,), name="inner_in")
    inner = fastnn.Model(inner_in, L.Dense(4, name="inner_d")(inner_in), name="inner")
    n = inner(sa)
    o1 = L.Dense(2, name="o1")(L.Concatenate(name="cat")([n, sh]))
    o2 = L.Add(name="o2")([sa, h])
    model = fastnn.Model([u, a, b], [o1, o2])
    # Keras 3.15: the shared layer takes its deepest node's depth; the unused input leads depth 0.
    assert [l.name for l in model.layers] == ["a", "b", "shared", "h", "inner", "cat", "u", "o1", "o2"]
    x = [np.ones((2, 4), "float32")] * 3
    p1, p2 = model.predict(x, verbose=0)
    assert p1.shape == (2, 2) and p2.shape == (2, 4)


# -- 2. class_weight ------------------------------------------------------------------------------------------------
def _cw_model():
    w = [np.array([[0.5, -0.2, 0.1], [0.3, 0.8, -0.6], [-0.4, 0.2, 0.9]], "float32"),
         np.array([0.1, 0.0, -0.1], "float32")]
    m = fastnn.Sequential([fastnn.Input((3,)), L.Dense(3, activation="softmax")])
    m.set_weights(w)
    m.compile(optimizer=fastnn.optimizers.SGD(0.0), loss="sparse_categorical_crossentropy",
              weighted_metrics=["accuracy"])
    return m


def _cw_data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((20, 3)).astype("float32"), rng.integers(0, 3, 20), rng


def test_class_weight_missing_class_weighs_one_and_validation_split_is_unweighted():
    x, y, _ = _cw_data()
    h = _cw_model().fit(x, y, batch_size=8, class_weight={0: 4.0, 2: 0.5}, validation_split=0.25, shuffle=False,
                        verbose=0).history
    keras = {"accuracy": 0.06383, "loss": 2.589417, "val_accuracy": 0.6, "val_loss": 0.796485}
    for k, v in keras.items():
        np.testing.assert_allclose(h[k][0], v, rtol=2e-5, err_msg=k)


def test_class_weight_with_weighted_validation_data():
    x, y, rng = _cw_data()
    sw = rng.uniform(0.5, 2.0, 5).astype("float32")
    h = _cw_model().fit(x[:15], y[:15], batch_size=8, class_weight={1: 3.0}, validation_data=(x[15:], y[15:], sw),
                        shuffle=False, verbose=0).history
    keras = {"accuracy": 0.173913, "loss": 2.382648, "val_accuracy": 0.660762, "val_loss": 1.184099}
    for k, v in keras.items():
        np.testing.assert_allclose(h[k][0], v, rtol=2e-5, err_msg=k)


def test_class_weight_and_sample_weight_together_raise_as_in_keras():
    x, y, _ = _cw_data()
    m = _cw_model()
    with pytest.raises(ValueError, match="class_weight` and `sample_weight"):
        m.fit(x, y, class_weight={0: 2.0}, sample_weight=np.ones(20), verbose=0)
    with pytest.raises(ValueError, match="`sample_weight` and `class_weight` cannot be specified"):
        m.train_on_batch(x, y, class_weight={0: 2.0}, sample_weight=np.ones(20))
