"""Masks flow through layers and models as in Keras 3 (keras/src/layers/layer.py ``__call__`` steps 6 and 8,
``compute_mask``, ``_set_mask_metadata``; keras/src/models/functional.py ``call``; the merge layers' and
Masking's ``compute_mask``). tests/e2e/test_keras_masks.py checks the same against live Keras."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import fastnn
from fastnn import layers
from fastnn.autograd.keras_attrs import get_keras_mask, set_keras_mask


def _mask(t):
    m = get_keras_mask(t)
    return None if m is None else np.asarray(m)


def _sequences():
    x = np.arange(1, 25, dtype="float32").reshape(2, 4, 3)
    x[0, 2:] = 0.0
    x[1, 1] = 0.0
    keep = np.array([[True, True, False, False], [True, False, True, True]])
    return x, keep


class Consume(layers.Layer):
    """Zeroes the masked timesteps; records the mask it was called with."""

    def __init__(self, supports_masking=False, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = supports_masking
        self.seen = []

    def get_config(self):
        return {**super().get_config(), "supports_masking": self.supports_masking}

    def call(self, x, mask=None):
        self.seen.append(None if mask is None else np.asarray(mask))
        if mask is None:
            return x
        return x * fastnn.ops.cast(fastnn.ops.expand_dims(mask, -1), x.dtype)


class TwoInputs(layers.Layer):
    def call(self, query, value, query_mask=None, value_mask=None):
        self.seen = (query_mask, value_mask)
        return query + value


# -- Masking ------------------------------------------------------------------------------------------------------
def test_masking_zeroes_masked_timesteps_and_attaches_the_mask():
    x, keep = _sequences()
    y = layers.Masking(0.0)(x)
    np.testing.assert_array_equal(_mask(y), keep)
    np.testing.assert_array_equal(y.numpy(), x * keep[..., None])
    x2 = x.copy()
    x2[0, 0] = 5.0
    np.testing.assert_array_equal(_mask(layers.Masking(5.0)(x2))[0], [False, True, True, True])


def test_masking_config_round_trip_and_gradient():
    layer = layers.Masking(mask_value=-1.0, name="m")
    assert layer.get_config()["mask_value"] == -1.0
    assert layers.Masking.from_config(layer.get_config()).mask_value == -1.0
    x, keep = _sequences()
    v = fastnn.Variable(x)
    with fastnn.GradientTape() as tape:
        loss = fastnn.ops.sum(layers.Masking(0.0)(v))
    np.testing.assert_array_equal(tape.gradient(loss, v).numpy(), np.broadcast_to(keep[..., None], x.shape))


# -- supports_masking ---------------------------------------------------------------------------------------------
def test_supports_masking_follows_keras():
    class WithComputeMask(layers.Layer):
        def compute_mask(self, inputs, previous_mask):
            return previous_mask

    assert WithComputeMask().supports_masking  # Keras: overriding compute_mask means supporting masks
    assert not layers.Layer().supports_masking
    assert not layers.Flatten().supports_masking and not layers.Reshape((2,)).supports_masking
    for layer in (layers.Dense(2), layers.Activation("relu"), layers.Dropout(0.5), layers.Identity(),
                  layers.Masking(), layers.Add(), layers.Concatenate()):
        assert layer.supports_masking, layer


def test_mask_passes_through_supporting_layers_unchanged():
    x, keep = _sequences()
    m = layers.Masking(0.0)(x)
    mask = get_keras_mask(m)
    for layer in (layers.Dense(2), layers.Activation("tanh"), layers.Identity()):
        out = layer(m)
        assert get_keras_mask(out) is mask, layer
    assert get_keras_mask(layers.Dropout(0.5)(m, training=True)) is mask
    assert get_keras_mask(layers.Dropout(0.5)(m)) is mask


def test_a_layer_without_mask_support_drops_the_mask_with_a_warning():
    x, _ = _sequences()
    m = layers.Masking(0.0)(x)
    with pytest.warns(UserWarning, match="does not support masking and will therefore destroy the mask"):
        out = layers.Flatten()(m)
    assert get_keras_mask(out) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning without a mask
        layers.Flatten()(x)


# -- the mask argument --------------------------------------------------------------------------------------------
def test_a_mask_consuming_layer_receives_the_inputs_mask():
    x, keep = _sequences()
    consume = Consume(supports_masking=True)
    out = consume(layers.Masking(0.0)(x))
    np.testing.assert_array_equal(consume.seen[-1], keep)
    np.testing.assert_array_equal(_mask(out), keep)  # passed on: supports_masking, default compute_mask
    consume(x)
    assert consume.seen[-1] is None
    explicit = np.array([[True, False, False, False], [True, True, True, True]])
    out = consume(layers.Masking(0.0)(x), mask=explicit)  # an explicit mask wins, and is the one passed on
    np.testing.assert_array_equal(consume.seen[-1], explicit)
    np.testing.assert_array_equal(_mask(out), explicit)


def test_masks_of_several_tensor_arguments_fill_their_argument_mask():
    x, keep = _sequences()
    q = layers.Masking(0.0)(x)
    v = fastnn.Tensor(x)
    layer = TwoInputs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TwoInputs does not support masking
        layer(q, v)
    np.testing.assert_array_equal(np.asarray(layer.seen[0]), keep)
    assert layer.seen[1] is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        layer(q, value=layers.Masking(0.0)(x[::-1].copy()))
    np.testing.assert_array_equal(np.asarray(layer.seen[1]), keep[::-1])


def test_a_custom_compute_mask_runs_without_an_input_mask():
    class MakesMask(layers.Layer):
        def call(self, x):
            return x

        def compute_mask(self, inputs, previous_mask):
            return fastnn.ops.not_equal(inputs[:, :, 0], 0.0)

    x, _ = _sequences()
    out = MakesMask()(fastnn.Tensor(x))
    np.testing.assert_array_equal(_mask(out), x[..., 0] != 0.0)


def test_autocast_keeps_the_mask():
    x, keep = _sequences()
    t = fastnn.Tensor(x.astype("float64"))
    set_keras_mask(t, fastnn.Tensor(keep))
    consume = Consume(supports_masking=True)
    out = consume(t)
    assert out.dtype == "float32"
    np.testing.assert_array_equal(consume.seen[-1], keep)


# -- merges -------------------------------------------------------------------------------------------------------
def test_merge_masks_are_the_or_of_the_inputs_masks():
    x, keep = _sequences()
    x2 = x[::-1].copy()
    keep2 = keep[::-1]
    a, b = layers.Masking(0.0)(x), layers.Masking(0.0)(x2)
    for cls in (layers.Add, layers.Subtract, layers.Multiply, layers.Average, layers.Maximum, layers.Minimum):
        np.testing.assert_array_equal(_mask(cls()([a, b])), keep | keep2)
        assert get_keras_mask(cls()([a, fastnn.Tensor(x2)])) is None  # one input without a mask: none


def test_concatenate_mask():
    x, keep = _sequences()
    x2 = x[::-1].copy()
    keep2 = keep[::-1]
    a, b = layers.Masking(0.0)(x), layers.Masking(0.0)(x2)
    np.testing.assert_array_equal(_mask(layers.Concatenate()([a, b])), keep | keep2)
    # An input without a mask counts as all True; along the time axis the masks are joined.
    np.testing.assert_array_equal(_mask(layers.Concatenate()([a, fastnn.Tensor(x2)])), np.ones_like(keep))
    np.testing.assert_array_equal(_mask(layers.Concatenate(axis=1)([a, b])),
                                  np.concatenate([keep, keep2], axis=1)[:, :, None].any(-1))
    assert get_keras_mask(layers.Concatenate()([fastnn.Tensor(x), fastnn.Tensor(x2)])) is None
    with pytest.raises(ValueError, match="should have the same length"):
        layers.Concatenate().compute_mask([a, b], [None])


# -- functional and Sequential models -----------------------------------------------------------------------------
def _functional():
    inp = fastnn.Input((4, 3))
    consume = Consume(supports_masking=True, name="consume")
    out = layers.Dense(1, name="out")(consume(layers.Dense(5, name="hidden")(layers.Masking(0.0)(inp))))
    return fastnn.Model(inp, out), consume


def test_symbolic_tensors_carry_mask_specs():
    inp = fastnn.Input((4, 3))
    assert inp._keras_mask is None
    m = layers.Masking(0.0)(inp)
    assert m._keras_mask.shape == (None, 4) and m._keras_mask.dtype == "bool"
    d = layers.Dense(5)(m)
    assert d._keras_mask is m._keras_mask  # passed through, as Keras does
    with pytest.warns(UserWarning, match="does not support masking"):
        f = layers.Flatten()(d)
    assert f._keras_mask is None
    a = layers.Add()([m, layers.Masking(1.0)(inp)])
    assert a._keras_mask.shape == (None, 4)
    assert layers.Add()([m, inp])._keras_mask is None
    assert layers.Concatenate()([m, inp])._keras_mask.shape == (None, 4)


def test_functional_model_carries_masks_to_the_consumer_and_the_output():
    model, consume = _functional()
    x, keep = _sequences()
    out = model(x)
    np.testing.assert_array_equal(consume.seen[-1], keep)
    np.testing.assert_array_equal(_mask(out), keep)
    # The node records mask=None (fastnn's config); the mask comes from the input tensor when the graph runs.
    node_kwargs = [l for l in model.get_config()["layers"] if l["name"] == "consume"][0]["inbound_nodes"][0]
    assert node_kwargs["kwargs"] == {"mask": None}
    # A model loaded from its config propagates the same masks.
    clone = fastnn.Model.from_config(model.get_config(), custom_objects={"Consume": Consume})
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(_mask(clone(x)), keep)


def test_model_call_with_a_mask_attaches_it_to_the_inputs():
    inp = fastnn.Input((4, 3))
    consume = Consume(supports_masking=True)
    model = fastnn.Model(inp, consume(inp))
    x, keep = _sequences()
    model(x)
    assert consume.seen[-1] is None
    with pytest.warns(UserWarning, match="'functional.*does not support masking"):  # as Keras: Functional does not
        out = model(fastnn.Tensor(x), mask=fastnn.Tensor(keep))
    np.testing.assert_array_equal(consume.seen[-1], keep)
    np.testing.assert_array_equal(_mask(out), keep)


def test_sequential_model_carries_masks():
    consume = Consume(supports_masking=True)
    model = fastnn.Sequential([fastnn.Input((4, 3)), layers.Masking(0.0), layers.Dense(2), consume])
    x, keep = _sequences()
    np.testing.assert_array_equal(_mask(model(x)), keep)
    np.testing.assert_array_equal(consume.seen[-1], keep)
    assert model.layers[-1].output._keras_mask.shape == (None, 4)
    np.testing.assert_array_equal(model.predict(x, verbose=0), model(x).numpy())


# -- losses in compile / fit / evaluate ---------------------------------------------------------------------------
def test_the_output_mask_weights_the_compiled_loss():
    fastnn.utils.set_random_seed(0)
    model = fastnn.Sequential([fastnn.Input((4, 3)), layers.Masking(0.0), layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, keep = _sequences()
    y = np.linspace(-1, 1, 8, dtype="float32").reshape(2, 4, 1)
    pred = model.predict(x, verbose=0)
    per_step = ((pred - y) ** 2).mean(-1)  # (2, 4)
    expected = float((per_step * keep).sum() / keep.sum())  # Keras: sum over the valid entries / their count
    assert model.evaluate(x, y, verbose=0) == pytest.approx(expected, rel=1e-6)
    assert abs(float(per_step.mean()) - expected) > 1e-3  # the mask made a difference
    # The masked timesteps get no gradient: training changes nothing when only masked targets differ.
    y2 = y.copy()
    y2[~keep] = 100.0
    w0 = model.get_weights()
    model.fit(x, y, epochs=1, batch_size=2, shuffle=False, verbose=0)
    w1 = model.get_weights()
    model.set_weights(w0)
    model.fit(x, y2, epochs=1, batch_size=2, shuffle=False, verbose=0)
    for a, b in zip(w1, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_lambda_masks():
    x, keep = _sequences()
    m = layers.Masking(0.0)(x)
    seen = []

    def fn(t, mask=None):
        seen.append(mask)
        return t * 2.0

    out = layers.Lambda(fn, mask=lambda inputs, previous: previous)(m)
    np.testing.assert_array_equal(np.asarray(seen[-1]), keep)  # the function takes `mask`: it receives it
    np.testing.assert_array_equal(_mask(out), keep)
    constant = fastnn.Tensor(np.ones((2, 4), bool))
    assert get_keras_mask(layers.Lambda(fn, mask=constant)(m)) is constant
    with pytest.warns(UserWarning, match="does not support masking"):
        assert get_keras_mask(layers.Lambda(fn)(m)) is None


def test_the_logical_mask_operations_of_keras_configs():
    # Keras 3.15 writes a merge layer's mask (Add of masked inputs ...) into functional configs as LogicalOr /
    # LogicalAnd operation nodes; fastnn's loader builds them from its operation table.
    from fastnn.layers.symbolic_ops import OPS

    a = np.array([[True, False, True, False]])
    b = np.array([[True, True, False, False]])
    for name, expected in (("LogicalOr", a | b), ("LogicalAnd", a & b)):
        op = OPS[name].from_config({"name": name.lower()})
        assert op.get_config() == {"name": name.lower()}
        np.testing.assert_array_equal(op(a, b).numpy(), expected)
        x = fastnn.Input((4,), dtype="bool")
        assert tuple(op(x, x).shape) == (None, 4)


def test_convert_to_tensor_operation_of_keras_configs():
    # Keras's Attention layers pass the query mask on through keras.ops.convert_to_tensor, a node in their configs.
    from fastnn.layers.symbolic_ops import OPS

    config = {"name": "convert_to_tensor", "dtype": None, "sparse": None, "ragged": None}
    op = OPS["ConvertToTensor"].from_config(config)
    assert op.get_config() == config
    m = np.array([[True, False]])
    np.testing.assert_array_equal(op(m).numpy(), m)
    assert OPS["ConvertToTensor"](dtype="float32")(m).numpy().dtype == np.float32
