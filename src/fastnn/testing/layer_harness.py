"""One harness every layer test goes through (in the spirit of Keras's ``run_layer_test``): build, output shape
(eager and symbolic), weight counts, config round trip, one training step, and bad input."""
from __future__ import annotations

import json

import numpy as np

import fastnn


def _random(shape, rng, dtype="float32"):
    return rng.standard_normal(shape).astype(dtype)


def _without_bytecode(config):
    """A config with the marshalled bytecode of lambdas left out: marshal's bytes for an equal code object depend
    on reference counts (FLAG_REF), so a reloaded lambda may write other bytes for the same code."""
    if isinstance(config, dict):
        if config.get("class_name") == "__lambda__":
            return {"class_name": "__lambda__", "config": {k: v for k, v in config["config"].items()
                                                           if k not in ("code", "value")}}
        return {k: _without_bytecode(v) for k, v in config.items()}
    if isinstance(config, list):
        return [_without_bytecode(v) for v in config]
    return config


def _check_compiled_step(layer_cls, init_kwargs, input_shape, expected_output_shape, input_data, target, seed):
    multi = isinstance(input_shape, list)
    roll = (lambda a: np.roll(a, 1, axis=0)) if (input_shape[0][0] if multi else input_shape[0]) > 1 else \
        (lambda a: a[..., ::-1].copy() if a.ndim > 1 else a)
    other = [roll(a) for a in input_data] if multi else roll(input_data)
    other_target = np.roll(target, 1, axis=0) if target.shape[0] > 1 else target * 0.5 + 0.25
    runs = []
    for jit in (False, True):
        fastnn.utils.set_random_seed(seed)
        sym_in = [fastnn.Input(shape=tuple(s[1:])) for s in input_shape] if multi else \
            fastnn.Input(shape=tuple(input_shape[1:]))
        # A wrapped layer given as an argument (TimeDistributed(Dense(3))) is fresh in each run.
        kwargs = {k: type(v).from_config(v.get_config()) if isinstance(v, fastnn.layers.Layer) else v
                  for k, v in init_kwargs.items()}
        model = fastnn.Model(sym_in, layer_cls(**kwargs)(sym_in))
        model.compile(optimizer=fastnn.optimizers.SGD(0.01), loss="mse", jit_compile=jit)
        losses = [model.train_on_batch(xb, yb) for xb, yb in
                  ((input_data, target), (other, other_target), (input_data, target))]
        preds = [model.predict_on_batch(input_data), model.predict_on_batch(other)]
        runs.append((losses, preds, model.get_weights()))
    (l0, p0, w0), (l1, p1, w1) = runs
    name = layer_cls.__name__
    np.testing.assert_array_equal(np.asarray(l1), np.asarray(l0), err_msg=f"{name}: compiled step's losses")
    for a, b in zip(p1, p0):
        np.testing.assert_array_equal(a, b, err_msg=f"{name}: compiled step's predictions")
    for a, b in zip(w1, w0):
        np.testing.assert_array_equal(a, b, err_msg=f"{name}: weights after compiled steps")


def run_layer_test(layer_cls, init_kwargs, input_shape, expected_output_shape, *,
                   expected_num_trainable_weights=0, expected_num_non_trainable_weights=0, input_data=None,
                   bad_input_shape=None, bad_input_match=None, run_training_check=True, seed=0, custom_objects=None):
    """Checks a layer class.

    Args:
        layer_cls: the class; init_kwargs: its arguments.
        input_shape: the full input shape (batch axis included), or a list of shapes for multi-input layers.
        expected_output_shape: the full output shape for that input.
        bad_input_shape: an input shape the built layer must reject with a ValueError naming the layer.
        custom_objects: passed to deserialization (the layer's custom functions / classes).
    """
    rng = np.random.default_rng(seed)
    multi = isinstance(input_shape, list)
    if input_data is None:
        input_data = [_random(s, rng) for s in input_shape] if multi else _random(input_shape, rng)

    # 1. Eager call: build + output shape + weights.
    layer = layer_cls(**init_kwargs)
    out = layer(input_data)
    assert tuple(out.shape) == tuple(expected_output_shape), (out.shape, expected_output_shape)
    assert layer.built
    assert len(layer.trainable_weights) == expected_num_trainable_weights
    assert len(layer.non_trainable_weights) == expected_num_non_trainable_weights
    assert len(layer.get_weights()) == expected_num_trainable_weights + expected_num_non_trainable_weights

    # 2. Symbolic call: compute_output_shape with a None batch axis.
    fresh = layer_cls(**init_kwargs)
    if multi:
        sym_in = [fastnn.Input(shape=tuple(s[1:])) for s in input_shape]
    else:
        sym_in = fastnn.Input(shape=tuple(input_shape[1:]))
    sym_out = fresh(sym_in)
    assert sym_out.shape == (None,) + tuple(expected_output_shape[1:]), (sym_out.shape, expected_output_shape)

    # 3. Config round trip: the same config, and the same outputs with the same weights.
    from fastnn.saving import SafeModeScope

    config = layer.get_config()
    # A config holding a Python lambda (a Lambda's function, a lambda activation) loads only with safe mode off
    # (checked in 3b); from_config on its own follows the enclosing scope.
    with SafeModeScope(False if '"__lambda__"' in json.dumps(config) else None):
        clone = layer_cls.from_config(config)
    assert _without_bytecode(clone.get_config()) == _without_bytecode(config)
    clone(input_data)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(np.asarray(clone(input_data)), np.asarray(layer(input_data)), rtol=1e-6, atol=1e-6)

    # 3b. The same through Keras's serialized form and JSON (what .keras files and to_json hold): the entry is
    # plain JSON, deserialize_keras_object rebuilds an equal layer (built from its build_config), same outputs.
    from fastnn.saving import deserialize_keras_object, serialize_keras_object

    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The object being serialized includes a `lambda`")
        entry = serialize_keras_object(layer)
        text = json.dumps(entry)  # fails on any live Python object left in the config
        assert entry["class_name"] == layer_cls.__name__, entry
        # A user's layer class (not fastnn's, so not found by its Keras module) comes back through custom_objects;
        # fastnn's own classes are looked up by module and class name (their entries have no registered name).
        user_classes = {layer_cls.__name__: layer_cls} if entry["registered_name"] is not None else {}
        customs = {**user_classes, **(custom_objects or {})}
        has_lambda = '"__lambda__"' in text
        if has_lambda:  # a Python lambda (a Lambda's function, a lambda activation) loads only outside safe mode
            try:
                deserialize_keras_object(json.loads(text), custom_objects=customs)
            except ValueError as exc:
                assert "safe_mode=False" in str(exc), exc
            else:
                raise AssertionError(f"{layer_cls.__name__}: a config with a Python lambda loaded in safe mode")
        revived = deserialize_keras_object(json.loads(text), custom_objects=customs, safe_mode=not has_lambda)
        assert type(revived) is layer_cls and revived.built
        assert _without_bytecode(json.loads(json.dumps(serialize_keras_object(revived)))) == \
            _without_bytecode(json.loads(text))
    revived.set_weights(layer.get_weights())
    np.testing.assert_allclose(np.asarray(revived(input_data)), np.asarray(layer(input_data)), rtol=1e-6, atol=1e-6)

    # 4. One training step through a functional model: finite loss, trainable weights move.
    if run_training_check:
        model = fastnn.Model(sym_in, sym_out)
        model.compile(optimizer=fastnn.optimizers.SGD(0.01), loss="mse")
        before = [w.copy() for w in fresh.get_weights()]
        target = rng.standard_normal((input_shape[0][0] if multi else input_shape[0],) +
                                     tuple(expected_output_shape[1:])).astype("float32")
        loss = model.train_on_batch(input_data, target)
        assert np.isfinite(loss)
        if expected_num_trainable_weights:
            after = fresh.get_weights()
            assert any(not np.array_equal(a, b) for a, b in zip(before, after)), "training did not move weights"

        # 4b. The compiled step (compile's default) against eager execution: three training steps on two batches,
        # then predictions of both, must give the same bits (a plan that baked in a value of the first batch, lost
        # a random draw or a state update, would not).
        _check_compiled_step(layer_cls, init_kwargs, input_shape, expected_output_shape, input_data, target, seed)

    # 5. Bad input: a ValueError naming the layer.
    if bad_input_shape is not None:
        bad = [_random(s, rng) for s in bad_input_shape] if isinstance(bad_input_shape, list) else \
            _random(bad_input_shape, rng)
        try:
            layer(bad)
        except ValueError as exc:
            msg = str(exc)
            assert f'"{layer.name}"' in msg, msg
            if bad_input_match is not None:
                import re

                assert re.search(bad_input_match, msg), msg
        else:
            raise AssertionError(f"{layer_cls.__name__} accepted an input of shape {bad_input_shape}")
    return layer
