"""Damaged model configs (what a corrupt config.json or to_json string holds once it still parses as JSON): any
leaf of a valid config replaced by another JSON value must either load or raise ValueError / TypeError, never a
bare KeyError / AttributeError / RecursionError from deep inside the loaders."""
from __future__ import annotations

import json
import warnings

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import fastnn  # noqa: E402
from fastnn import layers  # noqa: E402


def _configs():
    a, b = fastnn.Input((4,), name="a"), fastnn.Input((3,), name="b")
    inner = fastnn.Sequential([fastnn.Input((5,)), layers.Dense(5, name="i")], name="inner")
    shared = layers.Dense(5, activation="relu", name="sh")
    h = layers.Concatenate(name="cat")([inner(shared(a)), layers.Dense(5, name="db")(b)])
    multi = fastnn.Model([a, b], [layers.Dense(1, name="o1")(h), layers.LSTM(2, name="l")(layers.Reshape((5, 2))(h))])
    multi.compile("adam", ["mse", "mae"], metrics=[["mae"], []])
    x = fastnn.Input((6, 6, 2))
    y = layers.GlobalAveragePooling2D()(layers.BatchNormalization()(layers.Conv2D(3, 3, padding="same")(x)))
    conv = fastnn.Model(x, layers.Dense(2, kernel_regularizer="l2")(y))
    t = fastnn.Input((5,), dtype="int32")
    e = layers.TimeDistributed(layers.Dense(3))(layers.Embedding(10, 3, mask_zero=True)(t))
    rnn = fastnn.Model(t, layers.Bidirectional(layers.GRU(2))(e))
    return [json.loads(m.to_json()) for m in (multi, conv, rnn)]


CONFIGS = _configs()


def _leaf_paths(config, path=()):
    if isinstance(config, dict):
        for key, value in config.items():
            yield from _leaf_paths(value, path + (key,))
    elif isinstance(config, list):
        for index, value in enumerate(config):
            yield from _leaf_paths(value, path + (index,))
    else:
        yield path


PATHS = [list(_leaf_paths(c)) for c in CONFIGS]
VALUES = st.one_of(st.none(), st.booleans(), st.integers(-3, 6), st.floats(-1e3, 1e3, allow_nan=False),
                   st.sampled_from(["", "x", "relu", "Dense", "keras.layers", "__lambda__", "function"]),
                   st.just([]), st.just({}), st.just([None, 2]), st.just(["x", 0, 0]),
                   st.just({"class_name": "Dense", "config": {}}))


@settings(max_examples=150, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(which=st.integers(0, len(CONFIGS) - 1), picks=st.lists(st.integers(0, 10 ** 6), min_size=1, max_size=3),
       values=st.lists(VALUES, min_size=3, max_size=3))
def test_damaged_configs_load_or_raise_value_or_type_errors(which, picks, values):
    config = json.loads(json.dumps(CONFIGS[which]))
    for pick, value in zip(picks, values):
        path = PATHS[which][pick % len(PATHS[which])]
        node = config
        try:
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            pass  # an earlier replacement removed this leaf's parent
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fastnn.models.model_from_json(json.dumps(config))
        except (ValueError, TypeError) as exc:
            assert str(exc)  # a message that says what is wrong
