"""Cross-checks of models against Keras 3 (TensorFlow backend): layer order of functional graphs, class weights,
log names and values, configs, compile options, summary. Skipped when Keras is not installed.

Run with Keras in a separate environment, e.g.
    KERAS_BACKEND=tensorflow PYTHONPATH=$PWD/src /work/kvenv/bin/python -m pytest tests/e2e/test_keras_models.py
"""
from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")

import fastnn  # noqa: E402


# ---------------------------------------------------------------------------------------------------------------
# 1. Layer order of functional models
# ---------------------------------------------------------------------------------------------------------------
def random_graph(lib, seed, width=4):
    """A random branching functional model built from the same recipe for either library: several inputs (one
    maybe unused), Dense chains, Add / Concatenate merges, shared Dense layers called twice, a nested functional
    model, one or two outputs. Every layer has an explicit name so the orders can be compared."""
    rng = np.random.default_rng(seed)
    L = lib.layers
    n_inputs = int(rng.integers(1, 4))
    inputs = [lib.Input((width,), name=f"in{i}") for i in range(n_inputs)]
    tensors = list(inputs)
    dense_layers = []
    counter = iter(range(1000))
    for _ in range(int(rng.integers(4, 10))):
        kind = rng.choice(["dense", "dense", "add", "concat", "shared", "nested"])
        pick = lambda: tensors[int(rng.integers(len(tensors)))]  # noqa: E731
        if kind == "dense" or (kind == "shared" and not dense_layers):
            layer = L.Dense(width, name=f"d{next(counter)}")
            dense_layers.append(layer)
            tensors.append(layer(pick()))
        elif kind == "shared":
            tensors.append(dense_layers[int(rng.integers(len(dense_layers)))](pick()))
        elif kind == "add":
            tensors.append(L.Add(name=f"add{next(counter)}")([pick(), pick()]))
        elif kind == "concat":
            c = L.Concatenate(name=f"cat{next(counter)}")([pick(), pick()])
            tensors.append(L.Dense(width, name=f"d{next(counter)}")(c))
        else:
            k = next(counter)
            inner_in = lib.Input((width,), name=f"nin{k}")
            h = L.Dense(width, name=f"nd{k}a")(inner_in)
            inner = lib.Model(inner_in, L.Dense(width, name=f"nd{k}b")(h), name=f"nested{k}")
            tensors.append(inner(pick()))
    if n_inputs > 1 and rng.random() < 0.5:
        inputs.append(lib.Input((width,), name="unused"))
    outs = [tensors[-1]]
    if len(tensors) > n_inputs + 1 and rng.random() < 0.5:
        outs.append(tensors[int(rng.integers(n_inputs, len(tensors) - 1))])
    return lib.Model(inputs, outs if len(outs) > 1 else outs[0], name=f"graph{seed}")


def test_issue_example_order_matches_keras():
    def build(lib):
        x = lib.Input((4,), name="x")
        a = lib.layers.Dense(3, name="a")(x)
        b = lib.layers.Dense(3, name="b2")(lib.layers.Dense(5, name="b1")(x))
        return lib.Model(x, lib.layers.Add(name="add")([a, b]))

    km, fm = build(keras), build(fastnn)
    assert [l.name for l in km.layers] == ["x", "b1", "a", "b2", "add"]
    assert [l.name for l in fm.layers] == [l.name for l in km.layers]
    fm.set_weights(km.get_weights())
    x = np.random.default_rng(0).standard_normal((5, 4)).astype("float32")
    np.testing.assert_allclose(fm.predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("seed", list(range(25)))
def test_random_graph_layer_order_and_weights_match_keras(seed):
    km, fm = random_graph(keras, seed), random_graph(fastnn, seed)
    assert [l.name for l in fm.layers] == [l.name for l in km.layers]
    assert [w.shape for w in fm.get_weights()] == [tuple(w.shape) for w in km.get_weights()]
    fm.set_weights(km.get_weights())
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal((3, 4)).astype("float32") for _ in km.inputs]
    kp, fp = km.predict(xs, verbose=0), fm.predict(xs, verbose=0)
    for k, f in zip(kp if isinstance(kp, list) else [kp], fp if isinstance(fp, list) else [fp]):
        np.testing.assert_allclose(f, k, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# 2. class_weight
# ---------------------------------------------------------------------------------------------------------------
def _cw_fit(lib, **fit_kwargs):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 3)).astype("float32")
    y = rng.integers(0, 3, 20)
    sw = rng.uniform(0.5, 2.0, 5).astype("float32")
    m = lib.Sequential([lib.Input((3,)), lib.layers.Dense(3, activation="softmax")])
    m.set_weights([np.array([[0.5, -0.2, 0.1], [0.3, 0.8, -0.6], [-0.4, 0.2, 0.9]], "float32"),
                   np.array([0.1, 0.0, -0.1], "float32")])
    m.compile(optimizer=lib.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy",
              weighted_metrics=["accuracy"], metrics=["accuracy"])
    if fit_kwargs.pop("val3", False):
        fit_kwargs["validation_data"] = (x[15:], y[15:], sw)
        x, y = x[:15], y[:15]
    return m.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, **fit_kwargs).history


@pytest.mark.parametrize("kwargs", [dict(class_weight={0: 4.0, 2: 0.5}, validation_split=0.25),
                                    dict(class_weight={1: 3.0}, val3=True)])
def test_class_weight_histories_match_keras(kwargs):
    k, f = _cw_fit(keras, **dict(kwargs)), _cw_fit(fastnn, **dict(kwargs))
    assert sorted(f) == sorted(k)
    for name in k:
        np.testing.assert_allclose(f[name], k[name], rtol=1e-5, err_msg=name)
