"""Layer.__call__'s fast path (one tensor in, built, no mask, only `training`) pinned to the general path.

The general path is forced by marking a class as not fast in ``layer._FAST_CLASSES`` (or every class, through
``_fast_class``); each test runs the same computation both ways and compares outputs, errors, masks, the training
flag seen by nested layers and the activity losses.
"""
import numpy as np
import pytest

import fastnn
from fastnn import layers
from fastnn.autograd import Tensor
from fastnn.autograd.keras_attrs import get_keras_mask
from fastnn.layers import layer as layer_mod


@pytest.fixture
def slow(monkeypatch):
    """Every class takes the general path while the fixture is active."""
    monkeypatch.setattr(layer_mod, "_fast_class", lambda cls: False)
    monkeypatch.setattr(layer_mod, "_FAST_CLASSES", {})
    yield
    layer_mod._FAST_CLASSES.clear()


def _both(fn, monkeypatch):
    """fn() on the fast path, then on the general path."""
    layer_mod._FAST_CLASSES.clear()
    fast = fn()
    with monkeypatch.context() as m:
        m.setattr(layer_mod, "_fast_class", lambda cls: False)
        m.setattr(layer_mod, "_FAST_CLASSES", {})
        ref = fn()
    layer_mod._FAST_CLASSES.clear()
    return fast, ref


def test_fast_path_is_taken_for_a_built_dense(monkeypatch):
    d = layers.Dense(3)
    x = np.ones((2, 4), "float32")
    d(x)  # builds through the general path
    calls = []
    orig = layer_mod.Layer._fast_eager_call
    monkeypatch.setattr(layer_mod.Layer, "_fast_eager_call", lambda self, *a: calls.append(1) or orig(self, *a))
    d(x)
    d(Tensor(x), training=True)
    d(x, mask=None)
    assert len(calls) == 3
    d(x, training=np.bool_(True))  # anything but None / True / False takes the general path
    assert len(calls) == 3


@pytest.mark.parametrize("make", [
    lambda: layers.Dense(5, activation="relu"),
    lambda: layers.Dense(5, activation="tanh", activity_regularizer="l2"),
    lambda: layers.Activation("sigmoid"),
    lambda: layers.BatchNormalization(),
    lambda: layers.Reshape((3, 2)),
    lambda: layers.Flatten(),
])
@pytest.mark.parametrize("training", [None, True, False])
def test_outputs_losses_and_shapes_match_the_general_path(make, training, monkeypatch):
    x = np.random.default_rng(0).standard_normal((4, 6)).astype("float32")

    def run():
        fastnn.utils.set_random_seed(1)
        lay = make()
        lay(x)
        outs = [lay(x, training=training).numpy() for _ in range(2)]
        outs.append(lay(Tensor(x.astype("float64"))).numpy())  # autocast to float32
        losses = [l.numpy() for l in lay.losses]
        return outs, losses, getattr(lay, "_last_output_shape", None), [w.numpy() for w in lay.weights]

    fast, ref = _both(run, monkeypatch)
    for a, b in zip(fast[0], ref[0]):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert len(fast[1]) == len(ref[1]) and all(np.array_equal(a, b) for a, b in zip(fast[1], ref[1]))
    assert fast[2] == ref[2]
    assert all(np.array_equal(a, b) for a, b in zip(fast[3], ref[3]))


def test_dropout_training_flag_and_model_predict_match(monkeypatch):
    x = np.random.default_rng(0).standard_normal((64, 10)).astype("float32")
    y = np.random.default_rng(1).standard_normal((64, 1)).astype("float32")

    def run():
        fastnn.utils.set_random_seed(3)
        m = fastnn.Sequential([fastnn.Input((10,)), layers.Dense(8, activation="relu"), layers.Dropout(0.5),
                               layers.Dense(1)])
        m.compile(optimizer="adam", loss="mse")
        h = m.fit(x, y, batch_size=16, epochs=2, verbose=0).history
        return h, m.predict(x, batch_size=16, verbose=0), m(x, training=True).numpy(), m.predict_on_batch(x[:5])

    fast, ref = _both(run, monkeypatch)
    assert fast[0] == ref[0]
    for a, b in zip(fast[1:], ref[1:]):
        assert np.array_equal(a, b)


def test_nested_layers_see_the_outer_training_flag(monkeypatch):
    seen = []

    class Probe(layers.Layer):
        def call(self, x, training=None):
            seen.append(training)
            return x

    class Outer(layers.Layer):
        def __init__(self):
            super().__init__()
            self.inner = Probe()

        def call(self, x, training=None):
            return self.inner(x)

    def run():
        seen.clear()
        o = Outer()
        x = np.ones((2, 3), "float32")
        o(x)
        o(x, training=True)
        o(x, training=False)
        o(x)
        return list(seen)

    fast, ref = _both(run, monkeypatch)
    assert fast == ref == [None, True, False, None]


def test_a_changed_input_shape_is_still_caught(monkeypatch):
    def run():
        d = layers.Dense(3, name="dense_spec")
        d(np.ones((2, 4), "float32"))
        d(np.ones((5, 4), "float32"))  # another batch size: accepted (the cached signature differs, re-checked)
        errors = []
        for bad in (np.ones((2, 5), "float32"), np.ones((4,), "float32")):
            with pytest.raises(ValueError) as e:
                d(bad)
            errors.append(str(e.value))
        d(np.ones((2, 4), "float32"))  # the good signature again after the errors
        return errors

    fast, ref = _both(run, monkeypatch)
    assert fast == ref
    assert "expected axis -1 of input shape to have value 4" in fast[0]


def test_a_replaced_input_spec_is_checked(monkeypatch):
    d = layers.Dense(3)
    x = np.ones((2, 4), "float32")
    d(x)
    d(x)
    d.input_spec = layer_mod.InputSpec(ndim=3)
    with pytest.raises(ValueError, match="expected ndim=3, found ndim=2"):
        d(x)


def test_compute_mask_override_runs_on_the_fast_path(monkeypatch):
    class MaskMaker(layers.Layer):
        def __init__(self):
            super().__init__()
            self.supports_masking = True

        def call(self, x):
            return x * 2.0

        def compute_mask(self, inputs, previous_mask):
            return np.asarray(inputs.numpy()[:, 0] > 0)

    def run():
        lay = MaskMaker()
        x = np.array([[1.0, 2.0], [-1.0, 0.0]], "float32")
        lay(x)
        y = lay(x)
        m = get_keras_mask(y)
        return y.numpy(), None if m is None else np.asarray(m)

    fast, ref = _both(run, monkeypatch)
    assert np.array_equal(fast[0], ref[0]) and np.array_equal(fast[1], ref[1])
    assert fast[1].tolist() == [True, False]


def test_masked_inputs_use_the_general_path_and_keep_masks(monkeypatch):
    def run():
        fastnn.utils.set_random_seed(0)
        emb = layers.Embedding(10, 4, mask_zero=True)
        d = layers.Dense(2)
        x = np.array([[1, 2, 0], [3, 0, 0]])
        h = emb(x)
        out = d(h)
        return out.numpy(), np.asarray(get_keras_mask(out))

    fast, ref = _both(run, monkeypatch)
    assert np.array_equal(fast[0], ref[0]) and np.array_equal(fast[1], ref[1])


def test_activity_losses_are_fresh_for_each_outer_call(monkeypatch):
    def run():
        fastnn.utils.set_random_seed(0)
        m = fastnn.Sequential([fastnn.Input((3,)), layers.Dense(2, activity_regularizer="l1"), layers.Dense(1)])
        x = np.ones((4, 3), "float32")
        counts = []
        for _ in range(3):
            m(x)
            counts.append(len(m.losses))
        extra = layers.Dense(1)
        extra(x)
        extra.add_loss(Tensor(np.float32(1.0)))
        counts.append(len(extra.losses))
        extra(x)  # the outermost call clears what add_loss added
        counts.append(len(extra.losses))
        return counts

    fast, ref = _both(run, monkeypatch)
    assert fast == ref == [1, 1, 1, 1, 0]


def test_layer_without_super_init_still_fails_clearly():
    class Bad(layers.Layer):
        def __init__(self):
            self.built = True

    with pytest.raises(RuntimeError, match=r"super\(\)\.__init__\(\) was not called"):
        Bad()(np.ones((1, 2), "float32"))


def test_subclass_overriding_call_machinery_takes_the_general_path():
    class Custom(layers.Layer):
        def _convert_input(self, x):
            return super()._convert_input(x) * 0.0

        def call(self, x):
            return x

    c = Custom()
    c(np.ones((1, 2), "float32"))
    assert np.array_equal(c(np.ones((1, 2), "float32")).numpy(), np.zeros((1, 2), "float32"))
    assert layer_mod._FAST_CLASSES[Custom] is False


def _reference_weights(layer, trainable):
    """The per-layer lists concatenated and deduplicated (the walk before the one-set gather)."""
    if trainable and not layer.trainable:
        return []
    out, seen = [], set()
    own = layer._trainable_variables if trainable else layer._trainable_variables + layer._non_trainable_variables
    for w in own:
        if (not trainable or w.trainable) and id(w) not in seen:
            seen.add(id(w))
            out.append(w)
    for sub in layer._sublayers():
        prop = "trainable_weights" if trainable else "weights"
        overridden = getattr(type(sub), prop) is not getattr(layer_mod.Layer, prop)
        sub_list = getattr(sub, prop) if overridden else _reference_weights(sub, trainable)
        for w in sub_list:
            if id(w) not in seen:
                seen.add(id(w))
                out.append(w)
    return out


def test_weight_lists_keep_the_order_of_the_per_layer_walk():
    class OnlyFirst(layers.Layer):  # overrides the lists: asked for them, not walked
        def __init__(self):
            super().__init__()
            self.a, self.b = layers.Dense(2), layers.Dense(2)

        def build(self, shape):
            self.a.build(shape)
            self.b.build(shape)

        def call(self, x):
            return self.a(x) + self.b(x)

        @property
        def trainable_weights(self):
            return self.a.trainable_weights

        @property
        def weights(self):
            return self.b.weights + self.a.weights

    shared = layers.Dense(3)
    inner = fastnn.Sequential([fastnn.Input((3,)), shared, layers.BatchNormalization(), layers.Dense(3)])
    frozen = layers.Dense(3)
    custom = OnlyFirst()
    inp = fastnn.Input((3,))
    h = shared(inp)
    h = inner(h)
    h = frozen(h)
    h = custom(h)
    model = fastnn.Model(inp, layers.Dense(1)(h))
    frozen.trainable = False
    for lay in [model, inner, shared]:
        assert [id(w) for w in lay.weights] == [id(w) for w in _reference_weights(lay, False)]
        assert [id(w) for w in lay.trainable_weights] == [id(w) for w in _reference_weights(lay, True)]
    assert len(model.trainable_weights) < len(model.weights)
