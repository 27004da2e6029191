"""Embedding, Masking and TimeDistributed through the layer harness, the embedding table's gradient against float64
central differences, masks through models the way Keras 3 propagates them (Embedding(mask_zero) -> Dropout ->
Dense on 3-D input -> TimeDistributed -> a mask consumer), and bad input naming the layer.
tests/e2e/test_keras_embedding_masking.py checks the same against live Keras."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import fastnn
from fastnn import layers
from fastnn.autograd.keras_attrs import get_keras_mask
from fastnn.autograd.ops.embedding import lookup_row_sums
from fastnn.testing.gradcheck import central_difference
from fastnn.testing.layer_harness import run_layer_test


def _mask(t):
    m = get_keras_mask(t)
    return None if m is None else np.asarray(m)


def _ids(seed=0, shape=(4, 6), vocab=10):
    ids = np.random.default_rng(seed).integers(1, vocab, size=shape)
    ids[0, 4:] = 0  # padding at the end, at the start and inside
    ids[1, :2] = 0
    ids[2, 3] = 0
    return ids


# -- Embedding ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mask_zero", [False, True])
def test_embedding_through_the_harness(mask_zero):
    ids = _ids().astype("float32")  # the harness's symbolic inputs are float32: cast to int32 as Keras
    run_layer_test(layers.Embedding, {"input_dim": 10, "output_dim": 3, "mask_zero": mask_zero}, (4, 6), (4, 6, 3),
                   expected_num_trainable_weights=1, input_data=ids, bad_input_shape=(4, 6),
                   bad_input_match=r"every index must lie in \[0, 10\)")


def test_embedding_outputs_are_table_rows_and_mask_is_nonzero():
    ids = _ids()
    layer = layers.Embedding(10, 4, mask_zero=True)
    y = layer(ids)
    table = layer.get_weights()[0]
    assert table.shape == (10, 4) and layer.embeddings.path.endswith("embeddings")
    np.testing.assert_array_equal(y.numpy(), table[ids])
    np.testing.assert_array_equal(_mask(y), ids != 0)
    assert layer.supports_masking
    plain = layers.Embedding(10, 4)
    assert get_keras_mask(plain(ids)) is None and not plain.supports_masking
    # the default initializer is Keras's "uniform": RandomUniform(-0.05, 0.05)
    assert np.abs(table).max() <= 0.05 and np.abs(table).max() > 0.01


def test_embedding_indices_of_every_integer_dtype_and_floats_truncated():
    layer = layers.Embedding(5, 2, weights=np.arange(10.0).reshape(5, 2))
    expected = np.arange(10.0).reshape(5, 2)[[[1, 4], [0, 2]]]
    for dt in ("int8", "uint8", "int16", "int32", "int64", "uint32"):
        np.testing.assert_array_equal(layer(np.array([[1, 4], [0, 2]], dt)).numpy(), expected)
    np.testing.assert_array_equal(layer(np.array([[1.7, 4.2], [0.0, 2.9]])).numpy(), expected)  # cast to int32
    assert layer(np.array([3])).dtype == "float32"


def test_embedding_weights_argument_and_input_length_warning():
    w = np.random.default_rng(0).standard_normal((6, 3)).astype("float32")
    for weights in (w, [w]):
        layer = layers.Embedding(6, 3, weights=weights)
        assert layer.built
        np.testing.assert_array_equal(layer.get_weights()[0], w)
    with pytest.warns(UserWarning, match=r"Argument `input_length` is deprecated. Just remove it."):
        layer = layers.Embedding(6, 3, input_length=7)
    assert "input_length" not in layer.get_config()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layers.Embedding(6, 3, input_length=None)


def test_embedding_table_gradient_matches_central_differences():
    rng = np.random.default_rng(4)
    table = rng.standard_normal((7, 3))
    ids = np.array([[1, 1, 6, 0], [1, 3, 3, 3]])  # repeated rows, unused rows (2, 4, 5)
    upstream = rng.standard_normal((2, 4, 3))
    layer = layers.Embedding(7, 3, dtype="float64", weights=table)

    def objective(t):
        layer.set_weights([t])
        return float(np.sum(layer(ids).numpy() * upstream))

    layer.set_weights([table])
    with fastnn.GradientTape() as tape:
        loss = fastnn.ops.sum(fastnn.ops.multiply(layer(ids), upstream))
    analytic = tape.gradient(loss, layer.embeddings).numpy()
    numeric = central_difference(objective, table.copy())
    np.testing.assert_allclose(analytic, numeric, rtol=1e-7, atol=1e-9)
    assert np.all(analytic[[2, 4, 5]] == 0)  # dense: rows nobody looked up get exact zeros


def test_embedding_regularizer_and_constraint():
    layer = layers.Embedding(4, 2, embeddings_regularizer=fastnn.regularizers.L2(0.5),
                             embeddings_constraint="non_neg", weights=np.full((4, 2), -1.0, "float32"))
    layer(np.array([[1]]))
    assert np.isclose(float(np.asarray(sum(layer.losses))), 0.5 * 8.0)
    model = fastnn.Sequential([fastnn.Input((1,), dtype="int32"), layer, layers.Flatten()])
    model.compile(optimizer=fastnn.optimizers.SGD(0.1), loss="mse")
    model.train_on_batch(np.array([[1]]), np.zeros((1, 2), "float32"))
    assert layer.get_weights()[0].min() >= 0.0  # non_neg applied after the update


@pytest.mark.parametrize("bad", [-1, 10, 12345])
def test_embedding_bad_indices_name_the_layer(bad):
    layer = layers.Embedding(10, 2, name="words")
    ids = np.array([[1, 2], [3, bad]])
    with pytest.raises(ValueError, match=rf'Layer "words" \(Embedding, input_dim=10\): every index must lie in '
                                         rf"\[0, 10\); .*received {bad} at flat position 3"):
        layer(ids)
    model = fastnn.Sequential([fastnn.Input((2,), dtype="int32"), layers.Embedding(10, 2, name="emb")])
    with pytest.raises(ValueError, match=r'Layer "emb"'):
        model.predict(ids, verbose=0)


def test_embedding_bad_arguments():
    for arg, value in (("input_dim", 0), ("input_dim", 2.0), ("input_dim", True), ("output_dim", -3)):
        kwargs = {"input_dim": 5, "output_dim": 2, arg: value}
        with pytest.raises(ValueError, match=rf"`{arg}` must be a positive integer. Received: {arg}={value}"):
            layers.Embedding(**kwargs)
    with pytest.raises(ValueError, match="lora_rank is not supported"):
        layers.Embedding(5, 2, lora_rank=4)
    with pytest.raises(ValueError, match="quantization_config is not supported"):
        layers.Embedding(5, 2, quantization_config={"mode": "int8"})
    with pytest.raises(TypeError, match=r'Layer "e": cannot convert input of dtype <U1'):
        layers.Embedding(5, 2, name="e")(np.array(["a"]))


def test_embedding_in_a_model_config_round_trip():
    model = fastnn.Sequential([fastnn.Input((6,), dtype="int32"), layers.Embedding(10, 3, mask_zero=True),
                               layers.TimeDistributed(layers.Dense(4)), layers.GlobalAveragePooling1D(),
                               layers.Dense(2)])
    ids = _ids()
    clone = fastnn.Sequential.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    assert clone.get_config() == model.get_config()
    np.testing.assert_allclose(clone.predict(ids, verbose=0), model.predict(ids, verbose=0), rtol=1e-6)


def test_take_axis0_uses_the_kernel_semantics():
    table = fastnn.Variable(np.arange(12.0).reshape(4, 3))
    idx = np.array([[3, -1], [0, 3]])
    with fastnn.GradientTape() as tape:
        y = fastnn.ops.take(table, idx, axis=0)
        loss = fastnn.ops.sum(y)
    np.testing.assert_array_equal(y.numpy(), np.take(np.arange(12.0).reshape(4, 3), idx, axis=0))
    np.testing.assert_array_equal(tape.gradient(loss, table).numpy(), [[1] * 3, [0] * 3, [0] * 3, [3] * 3])
    with pytest.raises(IndexError, match=r"take: .*input shape \(4, 3\), axis 0"):
        fastnn.ops.take(table, np.array([4]), axis=0)
    three_d = np.arange(24.0).reshape(4, 3, 2)
    np.testing.assert_array_equal(fastnn.ops.take(three_d, [2, 0], axis=0).numpy(), three_d[[2, 0]])


# -- Masking ----------------------------------------------------------------------------------------------------
def test_masking_through_the_harness():
    run_layer_test(layers.Masking, {"mask_value": 0.5}, (2, 5, 3), (2, 5, 3), run_training_check=False)


# -- TimeDistributed --------------------------------------------------------------------------------------------
class TimeDistributedDense(layers.TimeDistributed):
    """TimeDistributed(Dense(units)) as one class of plain arguments, so the harness can make fresh instances (the
    harness reuses init_kwargs; a Dense instance there would be shared). The real config is tested below."""

    def __init__(self, units=4, **kwargs):
        super().__init__(layers.Dense(units), **kwargs)
        self.units = units

    def get_config(self):
        config = super().get_config()
        del config["layer"]
        return {**config, "units": self.units}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**config)


def test_time_distributed_through_the_harness():
    layer = run_layer_test(TimeDistributedDense, {"units": 4}, (3, 5, 2), (3, 5, 4),
                           expected_num_trainable_weights=2, bad_input_shape=(3, 2),
                           bad_input_match="at least 3 dimensions")
    assert layer.layer.kernel.shape == (2, 4)


def test_time_distributed_equals_the_layer_on_each_slice():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4, 6, 6, 2)).astype("float32")
    for inner in (layers.Dense(5, activation="tanh"), layers.Conv2D(3, 3), layers.Flatten()):
        td = layers.TimeDistributed(inner)
        y = td(x).numpy()
        expected = np.stack([inner(x[:, t]).numpy() for t in range(4)], axis=1)
        np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6)
        assert td.compute_output_shape((None,) + x.shape[1:]) == (None,) + y.shape[1:]


def test_time_distributed_batch_norm_runs_each_slice_as_its_own_batch():
    x = np.random.default_rng(2).standard_normal((8, 3, 4)).astype("float32") * np.array([1.0, 5.0, 20.0], "float32")[None, :, None]
    td = layers.TimeDistributed(layers.BatchNormalization())
    y = td(x, training=True).numpy()
    for t in range(3):  # each slice normalized by its own batch statistics
        np.testing.assert_allclose(y[:, t].mean(axis=0), 0, atol=1e-5)
        np.testing.assert_allclose(y[:, t].std(axis=0), 1, atol=1e-2)


def test_time_distributed_gradients_reach_the_wrapped_weights():
    td = layers.TimeDistributed(layers.Dense(2))
    x = np.random.default_rng(3).standard_normal((2, 3, 4)).astype("float32")
    with fastnn.GradientTape() as tape:
        loss = fastnn.ops.sum(td(x))
    gk, gb = tape.gradient(loss, td.trainable_weights)
    np.testing.assert_allclose(gk.numpy(), np.broadcast_to(x.reshape(-1, 4).sum(0)[:, None], (4, 2)), rtol=1e-5)
    np.testing.assert_allclose(gb.numpy(), [6.0, 6.0])


def test_time_distributed_passes_the_mask_through_and_to_the_inner_call():
    class SeeMask(layers.Layer):
        def call(self, x, mask=None):
            self.seen = None if mask is None else np.asarray(mask)
            return x

    ids = _ids()
    inner = SeeMask()
    emb = layers.Embedding(10, 3, mask_zero=True)
    y = layers.TimeDistributed(inner)(emb(ids))
    np.testing.assert_array_equal(_mask(y), ids != 0)
    np.testing.assert_array_equal(inner.seen.reshape(ids.shape), ids != 0)
    td = layers.TimeDistributed(layers.Dense(2), name="td")
    with pytest.raises(ValueError, match=r'Layer "td": The `mask` passed to the `TimeDistributed` layer has a shape '
                                         r"\(4, 5\) that is incompatible"):
        td(np.ones((4, 6, 3), "float32"), mask=np.ones((4, 5), bool))
    with pytest.raises(ValueError, match="must be at least 2D"):
        td(np.ones((4, 6, 3), "float32"), mask=np.ones((4,), bool))
    with pytest.raises(ValueError, match="Please initialize `TimeDistributed` layer with a `keras.layers.Layer`"):
        layers.TimeDistributed("dense")


def test_time_distributed_config_round_trip_rebuilds_the_inner_layer():
    td = layers.TimeDistributed(layers.Dense(3, activation="relu"))
    td(np.ones((2, 4, 5), "float32"))
    clone = layers.TimeDistributed.from_config(td.get_config())
    assert isinstance(clone.layer, layers.Dense) and clone.layer.units == 3
    assert clone.get_config()["layer"]["config"] == td.get_config()["layer"]["config"]


# -- mask propagation through a model ------------------------------------------------------------------------------
def test_mask_flows_from_embedding_through_dropout_dense_timedistributed_to_pooling():
    ids = _ids()
    inputs = fastnn.Input((6,), dtype="int32")
    h = layers.Embedding(10, 4, mask_zero=True)(inputs)
    h = layers.Dropout(0.5)(h)
    h = layers.Dense(3)(h)  # Dense on 3-D input keeps the mask
    h = layers.Activation("relu")(h)
    h = layers.TimeDistributed(layers.Dense(2))(h)
    assert h._keras_mask is not None
    seq = fastnn.Model(inputs, h)
    out = seq(ids)
    np.testing.assert_array_equal(_mask(out), ids != 0)
    pooled = fastnn.Model(inputs, layers.GlobalAveragePooling1D()(h))
    y = pooled.predict(ids, verbose=0)
    full = seq.predict(ids, verbose=0)
    keep = (ids != 0)[..., None]
    np.testing.assert_allclose(y, (full * keep).sum(1) / keep.sum(1), rtol=1e-6)  # padded steps left out
    # Flatten does not support masking (as Keras): the mask is dropped with Keras's warning
    with pytest.warns(UserWarning, match="does not support masking"):
        layers.Flatten()(layers.Embedding(10, 2, mask_zero=True)(ids))


# -- optimizers on embedding tables (Keras squares TensorFlow's IndexedSlices lookup by lookup) ----------------------
def _one_step(optimizer, regularizer=None):
    layer = layers.Embedding(4, 2, embeddings_initializer="ones", embeddings_regularizer=regularizer)
    ids = np.array([[1, 1, 2]])
    upstream = np.array([[[1.0, -2.0], [3.0, 0.5], [-1.0, 1.0]]], "float32")
    with fastnn.GradientTape() as tape:
        loss = fastnn.ops.sum(fastnn.ops.multiply(layer(ids), upstream))
        if regularizer is not None:
            loss = loss + sum(layer.losses)
    grad = tape.gradient(loss, layer.embeddings)
    optimizer.apply([grad], [layer.embeddings])
    return layer.get_weights()[0], [np.asarray(v) for v in optimizer.variables[2:]], grad.numpy()


SUM_G = np.array([[0, 0], [4.0, -1.5], [-1.0, 1.0], [0, 0]], "float32")  # dense gradient: row 1 = a + b
SUM_G2 = np.array([[0, 0], [10.0, 4.25], [1.0, 1.0], [0, 0]], "float32")  # per-lookup squares: a^2 + b^2


def test_adam_on_a_table_adds_the_squares_of_each_lookup():
    table, (m, v), grad = _one_step(fastnn.optimizers.Adam(0.1))
    np.testing.assert_array_equal(grad, SUM_G)
    np.testing.assert_allclose(m, np.float32(0.1) * SUM_G, rtol=1e-6)
    np.testing.assert_allclose(v, np.float32(1 - 0.999) * SUM_G2, rtol=1e-6)
    alpha = 0.1 * np.sqrt(1 - 0.999) / (1 - 0.9)
    np.testing.assert_allclose(table, 1 - alpha * m / (np.sqrt(v) + 1e-7), rtol=2e-5)
    assert np.all(table[[0, 3]] == 1)  # rows nobody looked up do not move


def test_adagrad_and_rmsprop_on_a_table_add_the_squares_of_each_lookup():
    table, (acc,), _ = _one_step(fastnn.optimizers.Adagrad(0.1))
    np.testing.assert_allclose(acc, 0.1 + SUM_G2, rtol=1e-6)
    np.testing.assert_allclose(table, 1 - 0.1 * SUM_G / np.sqrt(0.1 + SUM_G2 + 1e-7), rtol=1e-6)
    table, slots, _ = _one_step(fastnn.optimizers.RMSprop(0.1, momentum=0.5, centered=True))
    vel, mom, avg = slots
    np.testing.assert_allclose(vel, 0.1 * SUM_G2, rtol=1e-6)
    np.testing.assert_allclose(avg, 0.1 * SUM_G, rtol=1e-6)
    np.testing.assert_allclose(mom, 0.1 * SUM_G / np.sqrt(vel - avg ** 2 + 1e-7), rtol=1e-5)
    np.testing.assert_allclose(table, 1 - mom, rtol=1e-6)


def test_a_dense_contribution_makes_the_table_gradient_dense_again():
    # As in Keras (IndexedSlices + a dense regularizer gradient = a dense tensor): then g * g of the summed gradient.
    _, (m, v), grad = _one_step(fastnn.optimizers.Adam(0.1), regularizer=fastnn.regularizers.L2(0.5))
    np.testing.assert_allclose(grad, SUM_G + 1.0, rtol=1e-6)  # d(0.5 * sum w^2)/dw = w = 1
    np.testing.assert_allclose(v, (1 - 0.999) * (SUM_G + 1.0) ** 2, rtol=2e-5)
    # clipping is not modelled on slices: the dense formula runs
    _, (m, v), _ = _one_step(fastnn.optimizers.Adam(0.1, clipvalue=100.0))
    np.testing.assert_allclose(v, (1 - 0.999) * SUM_G ** 2, rtol=2e-5)


ROW_PATH_OPTIMIZERS = {
    "adam": lambda o: o.Adam(0.05), "adam_amsgrad_wd": lambda o: o.Adam(0.05, amsgrad=True, weight_decay=0.1),
    "adamw": lambda o: o.AdamW(0.05), "adagrad": lambda o: o.Adagrad(0.1), "rmsprop": lambda o: o.RMSprop(0.05),
    "rmsprop_centered": lambda o: o.RMSprop(0.05, momentum=0.5, centered=True), "nadam": lambda o: o.Nadam(0.05),
    "adadelta": lambda o: o.Adadelta(1.0), "adamax": lambda o: o.Adamax(0.05),
    "ftrl": lambda o: o.Ftrl(0.1, l1_regularization_strength=0.01, l2_regularization_strength=0.02,
                             l2_shrinkage_regularization_strength=0.03, beta=0.1),
    "lamb": lambda o: o.Lamb(0.05), "adafactor": lambda o: o.Adafactor(0.05),
}


@pytest.mark.parametrize("name", list(ROW_PATH_OPTIMIZERS))
def test_row_path_equals_the_fused_kernel_when_no_row_repeats(name):
    # Without repeated indices sum_i g_i^2 = (sum_i g_i)^2 (and |.| likewise): each optimizer's per-lookup path
    # (_update_rows, backend ops) must then agree with its fused C++ kernel fed the same gradient as a plain array.
    rng = np.random.default_rng(9)
    ids = rng.permutation(12)[:8].reshape(2, 4)  # 8 distinct rows of 12
    table = rng.standard_normal((12, 3)).astype("float32")
    results = []
    for registered in (True, False):
        layer = layers.Embedding(12, 3, weights=table)
        opt = ROW_PATH_OPTIMIZERS[name](fastnn.optimizers)
        for step in range(3):
            up = np.random.default_rng(step).standard_normal((2, 4, 3)).astype("float32")
            with fastnn.GradientTape() as tape:
                loss = fastnn.ops.sum(fastnn.ops.multiply(layer(ids), up))
            grad = tape.gradient(loss, layer.embeddings)
            assert lookup_row_sums(grad._data) is not None  # the lookup's gradient, registered
            if not registered:
                grad = fastnn.Tensor(grad.numpy().copy())  # a plain dense array: the fused kernel's formula
                assert lookup_row_sums(grad._data) is None
            opt.apply([grad], [layer.embeddings])
        results.append(layer.get_weights()[0])
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5, atol=1e-6)
