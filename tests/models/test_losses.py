"""Losses against values computed with Keras 3.15.1 (TensorFlow 2.21 backend, float32) and written here as
literals, so these run without Keras. tests/e2e/test_keras_losses.py repeats the comparison live, broadly."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import fastnn
from fastnn import losses

REL = 1e-6  # float32 results computed in a different order than TensorFlow's agree to a few ulp

Y_SPARSE = np.array([0, 1, 2, 1])
P_SPARSE = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.3, 0.4, 0.3]], "float32")
SW4 = np.array([1, 2, 0.5, 3.0], "float32")
A = np.arange(24, dtype="float32").reshape(2, 3, 4) / 10
B = np.ones((2, 3, 4), "float32")


def _value(x):
    return float(np.asarray(x.numpy()))


# -- issue 9: ignore_class averages over the entries that are not ignored -----------------------------------------
def test_ignore_class_divides_by_the_kept_entries():
    # Keras 0.43375027; fastnn on main divided by all 4 samples: 0.21687514.
    assert _value(losses.SparseCategoricalCrossentropy(ignore_class=1)(Y_SPARSE, P_SPARSE)) == pytest.approx(
        0.4337502717971802, rel=REL)


@pytest.mark.parametrize("reduction, expected", [
    ("sum_over_batch_size", 0.3060438632965088), ("mean", 0.3060438632965088), ("sum", 0.6120877265930176),
    ("mean_with_sample_weight", 0.4080584943294525)])
def test_ignore_class_with_sample_weights_and_every_reduction(reduction, expected):
    loss = losses.SparseCategoricalCrossentropy(ignore_class=1, reduction=reduction)
    assert _value(loss(Y_SPARSE, P_SPARSE, sample_weight=SW4)) == pytest.approx(expected, rel=REL)


def test_ignore_class_without_reduction_zeroes_the_ignored_entries():
    got = losses.SparseCategoricalCrossentropy(ignore_class=1, reduction=None)(Y_SPARSE, P_SPARSE, sample_weight=SW4)
    np.testing.assert_allclose(got.numpy(), [0.3566749691963196, 0.0, 0.2554127871990204, 0.0], rtol=REL)


def test_ignore_class_everything_ignored_gives_zero_not_nan():
    assert _value(losses.SparseCategoricalCrossentropy(ignore_class=1)(np.array([1, 1]), P_SPARSE[:2])) == 0.0


def test_ignore_class_per_timestep_with_trailing_one_labels():
    y = np.array([[[0], [1], [2]], [[1], [1], [0]]])
    p = np.stack([P_SPARSE[:3], P_SPARSE[1:]])
    assert _value(losses.SparseCategoricalCrossentropy(ignore_class=1)(y, p)) == pytest.approx(0.6904911398887634,
                                                                                                rel=REL)
    sw = np.array([[1.0, 2, 3], [4, 5, 6]])
    assert _value(losses.SparseCategoricalCrossentropy(ignore_class=1, reduction="sum")(y, p, sample_weight=sw)) == \
        pytest.approx(9.112988471984863, rel=REL)


def test_ignore_class_gradient_is_zero_for_ignored_rows():
    p = fastnn.Variable(P_SPARSE)
    with fastnn.GradientTape() as tape:
        loss = losses.SparseCategoricalCrossentropy(ignore_class=1)(Y_SPARSE, p)
    g = tape.gradient(loss, p).numpy()
    assert np.all(g[[1, 3]] == 0) and np.all(g[[0, 2]] != 0)


# -- the other reduction paths ---------------------------------------------------------------------------------------
def test_mean_with_sample_weight_of_zeros_is_zero_not_nan():
    loss = losses.MeanSquaredError(reduction="mean_with_sample_weight")
    assert _value(loss(A, B, sample_weight=np.zeros((2, 1)))) == 0.0  # main: nan


def test_mean_with_sample_weight_divides_by_the_weights_as_given():
    # Keras divides by sum(sample_weight) = 4 for (N, 1) weights of (N, T) losses, not by the broadcast sum 12.
    loss = losses.MeanSquaredError(reduction="mean_with_sample_weight")
    assert _value(loss(A, B, sample_weight=np.array([[1.0], [3.0]]))) == pytest.approx(1.7749998569488525, rel=REL)


def test_per_timestep_and_per_sample_weights_of_sequence_losses():
    mse = losses.MeanSquaredError()
    assert _value(mse(A, B, sample_weight=np.array([[1.0], [3.0]]))) == pytest.approx(1.1833332777023315, rel=REL)
    assert _value(mse(A, B, sample_weight=np.array([[1.0, 0, 2], [3, 1, 0]]))) == pytest.approx(0.29083335399627686,
                                                                                                rel=REL)


def test_empty_batch_is_returned_unreduced():
    got = losses.MeanSquaredError()(np.zeros((0, 3)), np.zeros((0, 3)))
    assert got.shape == (0,)  # as Keras (main gave a scalar 0)


def test_incompatible_sample_weight_names_the_shapes():
    with pytest.raises(ValueError, match=r"sample_weight of shape \(2,\).*\(2, 3\)"):
        losses.MeanSquaredError()(A, B, sample_weight=np.ones(2))


def test_loss_computes_in_its_dtype():
    got = losses.MeanSquaredError()(A.astype("float64"), B.astype("float64"))
    assert got.numpy().dtype == np.float32  # Keras: float32; main: float64
    assert losses.MeanSquaredError().dtype == "float32"
    assert losses.MeanSquaredError(dtype="float64")(A, B).numpy().dtype == np.float64


def test_invalid_reduction_is_named():
    with pytest.raises(ValueError, match="Invalid value for argument `reduction`.*Received: reduction=avg"):
        losses.MeanSquaredError(reduction="avg")


# -- masks -----------------------------------------------------------------------------------------------------------
MASK = np.array([[True, False, True], [False, False, True]])


@pytest.mark.parametrize("reduction, expected", [
    ("sum_over_batch_size", 0.6949999928474426), ("sum", 2.0850000381469727),
    ("mean_with_sample_weight", 0.6949999928474426),
    (None, [[0.7350000143051147, 0.0, 0.015000001527369022], [0.0, 0.0, 1.334999918937683]])])
def test_mask_on_y_pred_is_merged_into_the_weights(reduction, expected):
    y_pred = fastnn.ops.multiply(fastnn.Tensor(B), 1.0)
    losses.set_keras_mask(y_pred, MASK)
    assert losses.get_keras_mask(y_pred) is MASK
    np.testing.assert_allclose(losses.MeanSquaredError(reduction=reduction)(A, y_pred).numpy(), expected, rtol=REL)


def test_mask_is_dropped_with_its_tensor():
    import gc

    t = fastnn.Tensor(B)
    losses.set_keras_mask(t, MASK)
    before = len(losses._MASKS)
    del t
    gc.collect()
    assert len(losses._MASKS) == before - 1


# -- function forms and Keras quirks ---------------------------------------------------------------------------------
def test_cosine_similarity_normalizes_with_keras_epsilon():
    # keras.ops.normalize caps 1 / norm at 1 / epsilon = 1e7 (main capped at 1e6 and gave -0.022).
    got = losses.cosine_similarity(np.array([[3.0, 4.0]]), np.array([[1e-8, 2e-8]]))
    assert float(got.numpy()[0]) == pytest.approx(-0.22, rel=REL)


def test_categorical_label_smoothing_counts_the_last_axis():
    onehot = np.eye(3, dtype="float32")[[0, 2, 1, 1]]
    logits = np.array([[1, 2, 0.5], [0.1, -1, 2], [0, 0, 1], [2, 1, 0]], "float32")
    got = losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2, axis=0)(onehot, logits)
    assert _value(got) == pytest.approx(2.055572986602783, rel=REL)


def test_categorical_crossentropy_warns_for_one_class_and_rejects_bool_axis():
    with pytest.warns(SyntaxWarning, match="binary_crossentropy"):
        losses.categorical_crossentropy(np.ones((2, 1)), np.ones((2, 1)))
    with pytest.raises(ValueError, match="`axis` must be of type `int`"):
        losses.categorical_crossentropy(np.ones((2, 2)), np.ones((2, 2)), axis=True)


@pytest.mark.parametrize("alias, target", [("mse", "mean_squared_error"), ("MSE", "mean_squared_error"),
                                           ("mae", "mean_absolute_error"), ("MAE", "mean_absolute_error"),
                                           ("mape", "mean_absolute_percentage_error"),
                                           ("msle", "mean_squared_logarithmic_error"), ("kld", "kl_divergence"),
                                           ("KLD", "kl_divergence"), ("bce", "binary_crossentropy"),
                                           ("BCE", "binary_crossentropy")])
def test_aliases(alias, target):
    assert losses.get(alias) is getattr(losses, target) and getattr(losses, alias) is getattr(losses, target)


# -- the losses added for Keras 3.15 ---------------------------------------------------------------------------------
BT = np.array([[0, 1, 1], [1, 0, 0]], "float32")
BP = np.array([[0.2, 0.7, 0.9], [0.6, 0.3, 0.05]], "float32")
ONEHOT = np.eye(3, dtype="float32")[[0, 2, 1, 1]]
LOGITS = np.array([[1, 2, 0.5], [0.1, -1, 2], [0, 0, 1], [2, 1, 0]], "float32")
ST = np.array([[[1, 0], [1, 1]], [[0, 0], [1, 0]]], "float32")
SP = np.array([[[0.9, 0.2], [0.6, 0.8]], [[0.1, 0.3], [0.7, 0.4]]], "float32")
EMB = np.array([[1, 0, 0], [0.6, 0.8, 0], [0, 1, 0], [0, 0.6, 0.8], [0.8, 0, 0.6]], "float32")
EMB_LABELS = np.array([0, 0, 1, 1, 2])


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype("float32")


def test_binary_focal_crossentropy():
    np.testing.assert_allclose(losses.binary_focal_crossentropy(BT, BP).numpy(),
                               [0.014026697725057602, 0.03798701986670494], rtol=REL)
    np.testing.assert_allclose(
        losses.binary_focal_crossentropy(BT, BP, apply_class_balancing=True, alpha=0.3, gamma=1.5,
                                         label_smoothing=0.1).numpy(),
        [0.01621963642537594, 0.03256293758749962], rtol=REL)
    np.testing.assert_allclose(losses.binary_focal_crossentropy(BT, np.log(BP / (1 - BP)), from_logits=True).numpy(),
                               [0.014026697725057602, 0.03798702731728554], rtol=2e-6)
    assert _value(losses.BinaryFocalCrossentropy()(BT, BP)) == pytest.approx(0.02600685879588127, rel=REL)


def test_categorical_focal_crossentropy():
    np.testing.assert_allclose(losses.categorical_focal_crossentropy(ONEHOT, _softmax(LOGITS)).numpy(),
                               [0.21636657416820526, 0.0012556182919070125, 0.24087576568126678, 0.2007369101047516],
                               rtol=2e-6)
    np.testing.assert_allclose(
        losses.categorical_focal_crossentropy(ONEHOT, LOGITS, from_logits=True, alpha=0.5, gamma=1.0,
                                              label_smoothing=0.1).numpy(),
        [0.5563830137252808, 0.09529871493577957, 0.5948331356048584, 0.5349130630493164], rtol=2e-6)
    assert _value(losses.CategoricalFocalCrossentropy()(ONEHOT, _softmax(LOGITS))) == pytest.approx(
        0.1648087203502655, rel=2e-6)


def test_categorical_hinge():
    np.testing.assert_allclose(losses.categorical_hinge(ONEHOT, LOGITS).numpy(), [2.0, 0.0, 2.0, 2.0])
    assert _value(losses.CategoricalHinge()(ONEHOT, LOGITS)) == pytest.approx(1.5, rel=REL)


def test_dice_and_tversky():
    assert float(losses.dice(ST, SP).numpy()) == pytest.approx(0.2500000596046448, rel=REL)
    np.testing.assert_allclose(losses.dice(ST, SP, axis=(1, 2)).numpy(), [0.16363638639450073, 0.4399999976158142],
                               rtol=REL)
    assert _value(losses.Dice()(ST, SP)) == pytest.approx(0.2500000596046448, rel=REL)
    assert _value(losses.Dice(axis=(1, 2))(ST, SP)) == pytest.approx(0.30181819200515747, rel=REL)
    # a scalar (axis=None) loss times (N,) weights: Keras averages the weighted copies
    assert _value(losses.Dice()(ST, SP, sample_weight=np.array([1.0, 3.0]))) == pytest.approx(0.5000001192092896,
                                                                                               rel=REL)
    assert float(losses.tversky(ST, SP).numpy()) == pytest.approx(0.25, rel=REL)
    np.testing.assert_allclose(losses.tversky(ST, SP, alpha=0.7, beta=0.3, axis=(1, 2)).numpy(),
                               [0.19298243522644043, 0.3913044333457947], rtol=REL)
    assert _value(losses.Tversky(alpha=0.7, beta=0.3, axis=(1, 2))(ST, SP)) == pytest.approx(0.29214343428611755,
                                                                                             rel=REL)


def test_circle():
    np.testing.assert_allclose(losses.circle(EMB_LABELS, EMB).numpy(),
                               [38.400001525878906, 38.400001525878906, 38.400001525878906, 6.326937675476074, 0.0],
                               rtol=REL)
    np.testing.assert_allclose(losses.circle(EMB_LABELS, EMB, gamma=4, margin=0.25, remove_diagonal=False).numpy(),
                               [3.3046610355377197, 3.4829764366149902, 3.3046610355377197, 2.449934720993042,
                                2.525832414627075], rtol=REL)
    # the zero loss of the last sample (no positive pair) is masked out of the average, as in Keras
    assert _value(losses.Circle()(EMB_LABELS, EMB)) == pytest.approx(30.38173484802246, rel=REL)
    assert _value(losses.Circle(reduction="sum")(EMB_LABELS, EMB)) == pytest.approx(121.52693939208984, rel=REL)
    e = fastnn.Variable(EMB)
    with fastnn.GradientTape() as tape:
        loss = losses.Circle(gamma=4.0)(EMB_LABELS, e)
    assert _value(loss) == pytest.approx(2.0362586975097656, rel=REL)
    np.testing.assert_allclose(tape.gradient(loss, e).numpy(), [
        [0.12361514568328857, -1.1467732191085815, 0.7377712726593018],
        [-1.336269736289978, 2.5274484157562256, 0.4137136936187744],
        [1.3631017208099365, 1.0264434814453125, -1.0547007322311401],
        [0.49923160672187805, -0.9775596857070923, 0.18271461129188538],
        [1.3025163412094116, 0.2799113094806671, 0.24361947178840637]], rtol=1e-5, atol=1e-6)


def test_categorical_generalized_cross_entropy():
    np.testing.assert_allclose(losses.categorical_generalized_cross_entropy(Y_SPARSE, P_SPARSE, q=0.5).numpy(),
                               [0.32667994499206543, 0.21114563941955566, 0.4508066177368164, 0.7350889444351196],
                               rtol=REL)
    assert _value(losses.CategoricalGeneralizedCrossEntropy(q=0.3)(Y_SPARSE, P_SPARSE)) == pytest.approx(
        0.457210898399353, rel=REL)
    for q in (0, 1, 1.5):
        with pytest.raises(ValueError, match=r"q must be in the interval \(0, 1\)"):
            losses.CategoricalGeneralizedCrossEntropy(q=q)


@pytest.mark.parametrize("name, y_true, y_pred, expected", [
    ("BinaryFocalCrossentropy", BT, BP, [[0.023209568113088608, -0.05709607154130936, -0.005363871809095144],
                                         [-0.11255450546741486, 0.05709607154130936, 0.0012934854021295905]]),
    ("CategoricalFocalCrossentropy", np.eye(3, dtype="float32")[Y_SPARSE], P_SPARSE,
     [[-0.00642330851405859, 0.014987719245254993, 0.014987719245254993],
      [0.006962870247662067, -0.0017407173290848732, 0.006962870247662067],
      [0.025324765592813492, 0.025324765592813492, -0.01688317582011223],
      [0.049988724291324615, -0.07498308271169662, 0.049988724291324615]]),
    ("Dice", BT, BP, [[0.13308127224445343, -0.21474482119083405, -0.21474482119083405],
                      [-0.21474482119083405, 0.13308127224445343, 0.13308127224445343]]),
    ("Tversky", BT, BP, [[0.13308127224445343, -0.21474482119083405, -0.21474482119083405],
                         [-0.21474482119083405, 0.13308127224445343, 0.13308127224445343]]),
    ("CategoricalGeneralizedCrossEntropy", Y_SPARSE, P_SPARSE,
     [[-0.29880714416503906, 0, 0], [0, -0.279508501291275, 0], [0, 0, -0.322748601436615],
      [0, -0.3952847123146057, 0]]),
])
def test_new_losses_gradients_match_tensorflow(name, y_true, y_pred, expected):
    p = fastnn.Variable(y_pred)
    with fastnn.GradientTape() as tape:
        loss = getattr(losses, name)()(y_true, p)
    np.testing.assert_allclose(tape.gradient(loss, p).numpy(), expected, rtol=1e-5, atol=1e-7)


def test_new_losses_train_a_model():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 5)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    model = fastnn.models.Sequential([fastnn.layers.Dense(1, activation="sigmoid", input_shape=(5,))])
    model.compile(optimizer=fastnn.optimizers.SGD(0.5), loss="BinaryFocalCrossentropy")
    history = model.fit(x, y, epochs=5, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


# -- configs, signatures, names, identifiers -------------------------------------------------------------------------
KERAS_CONFIGS = {  # keras.losses.<Name>().get_config() in Keras 3.15.1
    "MeanSquaredError": {"name": "mean_squared_error", "reduction": "sum_over_batch_size"},
    "Huber": {"name": "huber_loss", "reduction": "sum_over_batch_size"},  # no delta, as in Keras
    "CosineSimilarity": {"name": "cosine_similarity", "reduction": "sum_over_batch_size"},  # no axis
    "CategoricalHinge": {"name": "categorical_hinge", "reduction": "sum_over_batch_size"},
    "SparseCategoricalCrossentropy": {"name": "sparse_categorical_crossentropy", "reduction": "sum_over_batch_size",
                                      "from_logits": False, "ignore_class": None},
    "BinaryFocalCrossentropy": {"name": "binary_focal_crossentropy", "reduction": "sum_over_batch_size",
                                "from_logits": False, "label_smoothing": 0.0, "axis": -1,
                                "apply_class_balancing": False, "alpha": 0.25, "gamma": 2.0},
    "CategoricalFocalCrossentropy": {"name": "categorical_focal_crossentropy", "reduction": "sum_over_batch_size",
                                     "from_logits": False, "label_smoothing": 0.0, "axis": -1, "alpha": 0.25,
                                     "gamma": 2.0},
    "Dice": {"name": "dice", "reduction": "sum_over_batch_size", "axis": None},
    "Tversky": {"name": "tversky", "reduction": "sum_over_batch_size", "alpha": 0.5, "beta": 0.5, "axis": None},
    "Circle": {"name": "circle", "reduction": "sum_over_batch_size", "gamma": 80.0, "margin": 0.4,
               "remove_diagonal": True},
    "CategoricalGeneralizedCrossEntropy": {"name": "categorical_generalized_cross_entropy",
                                           "reduction": "sum_over_batch_size", "q": 0.5},
}


@pytest.mark.parametrize("name", sorted(KERAS_CONFIGS))
def test_configs_are_keras_configs(name):
    cls = getattr(losses, name)
    assert cls().get_config() == KERAS_CONFIGS[name]
    assert cls.from_config(KERAS_CONFIGS[name]).get_config() == KERAS_CONFIGS[name]
    assert losses.get(name).get_config() == KERAS_CONFIGS[name]
    assert losses.deserialize(losses.serialize(cls())).get_config() == KERAS_CONFIGS[name]


def test_loss_function_wrapper_config_is_keras_config():
    w = losses.LossFunctionWrapper(losses.mean_squared_error, name="w", reduction="sum", foo=1)
    assert w.get_config() == {"name": "w", "reduction": "sum", "foo": 1, "fn": {
        "module": "builtins", "class_name": "function", "config": "mean_squared_error", "registered_name": "function"}}
    cfg = dict(w.get_config())
    cfg.pop("foo")
    assert losses.LossFunctionWrapper.from_config(cfg).fn is losses.mean_squared_error


def test_keras_positional_argument_order():
    # Keras: SparseCategoricalCrossentropy(from_logits, ignore_class, reduction, axis, name, dtype)
    loss = losses.SparseCategoricalCrossentropy(True, 1, "sum")
    assert (loss.from_logits, loss.ignore_class, loss.reduction) == (True, 1, "sum")
    assert losses.Dice("sum", "d", (1, 2)).get_config() == {"name": "d", "reduction": "sum", "axis": (1, 2)}
    assert losses.Huber(0.3, None).reduction is None
    assert losses.Tversky(0.7, 0.3).get_config()["alpha"] == 0.7


def test_unnamed_custom_losses_get_unique_names():
    class MyLoss(losses.Loss):
        def call(self, y_true, y_pred):
            return losses.mean_squared_error(y_true, y_pred)

    first, second = MyLoss(), MyLoss()
    assert first.name.startswith("my_loss") and second.name != first.name
    assert _value(first(A, B)) == pytest.approx(float(((A - B) ** 2).mean()), rel=REL)


@pytest.mark.parametrize("name", ["binary_focal_crossentropy", "categorical_focal_crossentropy", "categorical_hinge",
                                  "dice", "tversky", "circle", "categorical_generalized_cross_entropy"])
def test_new_function_identifiers(name):
    assert losses.get(name) is getattr(losses, name)


def test_compile_with_new_loss_names_records_the_config():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = fastnn.models.Sequential([fastnn.layers.Dense(3, activation="softmax", input_shape=(4,))])
        model.compile(optimizer="sgd", loss=losses.CategoricalFocalCrossentropy(gamma=1.0))
        x = np.random.default_rng(1).standard_normal((8, 4)).astype("float32")
        y = np.eye(3, dtype="float32")[np.arange(8) % 3]
        loss = model.evaluate(x, y, verbose=0)
    expected = losses.CategoricalFocalCrossentropy(gamma=1.0)(y, model.predict(x, verbose=0))
    assert float(np.ravel(loss)[0]) == pytest.approx(_value(expected), rel=1e-5)


# -- the logits of a softmax / sigmoid output (Keras's TensorFlow backend: `_keras_logits`) --------------------------
def test_crossentropies_use_recorded_logits_of_saturated_outputs():
    from fastnn.autograd.keras_attrs import set_keras_logits

    x = np.array([[30.0, 0.0, -30.0], [0.0, 1.0, 2.0]], "float32")
    y = np.array([[0, 0, 1.0], [1, 0, 0]], "float32")
    v = fastnn.Variable(x)
    with fastnn.GradientTape() as tape:
        p = fastnn.activations.softmax(v)
        set_keras_logits(p, v)
        loss = losses.CategoricalCrossentropy()(y, p)
    # Keras: 31.20380210876465 (clipped probabilities would give 9.2628508)
    assert _value(loss) == pytest.approx(31.20380210876465, rel=REL)
    np.testing.assert_allclose(tape.gradient(loss, v).numpy(), [[0.5, 4.6788115e-14, -0.5],
                                                               [-0.45498472, 0.12236424, 0.33262047]],
                               rtol=1e-6, atol=1e-7)
    assert _value(losses.SparseCategoricalCrossentropy()(np.array([2, 0]), p)) == pytest.approx(31.20380210876465,
                                                                                                 rel=REL)
    s = fastnn.activations.sigmoid(fastnn.Tensor(x))
    set_keras_logits(s, fastnn.Tensor(x))
    assert _value(losses.BinaryCrossentropy()(y, s)) == pytest.approx(10.804413795471191, rel=REL)
    assert _value(losses.BinaryFocalCrossentropy()(y, s)) == pytest.approx(10.449753761291504, rel=REL)
    with pytest.warns(UserWarning, match="does not represent logits"):
        losses.binary_crossentropy(y, s, from_logits=True)


def test_cosine_similarity_gradient_at_a_zero_vector_is_finite_as_tensorflow():
    y_true = np.array([[1.0, 2, 3], [0, 0, 0]], "float32")
    p = fastnn.Variable(np.array([[0.0, 0, 0], [1, 2, 3]], "float32"))
    with fastnn.GradientTape() as tape:
        loss = losses.CosineSimilarity()(y_true, p)
    assert _value(loss) == 0.0
    # TensorFlow: the 1 / epsilon cap of keras.ops.normalize is a constant, so the zero row gets 1e7 * y_true_hat / 2
    np.testing.assert_allclose(tape.gradient(loss, p).numpy(), [[-1336306.1, -2672612.2, -4008918.5], [0, 0, 0]],
                               rtol=1e-6)


def test_keras_loss_function_wrapper_config_deserializes():
    config = {"class_name": "LossFunctionWrapper", "config": {
        "name": "loss_function_wrapper", "reduction": "sum", "fn": {
            "module": "builtins", "class_name": "function", "config": "mean_absolute_error",
            "registered_name": "function"}}}
    loss = losses.get(config)
    assert loss.fn is losses.mean_absolute_error and loss.reduction == "sum"
    assert _value(loss(A, B)) == pytest.approx(float(np.abs(A - B).mean(-1).sum()), rel=REL)
    with pytest.raises(ValueError, match="unknown loss function 'nope'"):
        losses.LossFunctionWrapper.from_config({"fn": "nope"})


KERAS_CTC = [4.891139984130859, 5.167621612548828]
KERAS_CTC_GRAD = [[-0.13801434636116028, -0.22751495242118835, 0.1380021572113037, 0.22752711176872253],
                  [-0.016843117773532867, -0.1706337034702301, 0.1751788705587387, 0.01229798048734665]]


def test_ctc():
    # Keras 3.15.1 (tf.nn.ctc_loss, blank 0): labels padded with 0, one with a repeated label
    labels = np.array([[1, 2, 0], [3, 3, 1]])
    logits = (np.arange(2 * 6 * 4).reshape(2, 6, 4) % 7 - 3).astype("float32") / 2
    expected = KERAS_CTC
    np.testing.assert_allclose(losses.ctc(labels, logits).numpy(), expected, rtol=REL)
    v = fastnn.Variable(logits)
    with fastnn.GradientTape() as tape:
        loss = losses.CTC()(labels, v)
    assert _value(loss) == pytest.approx(float(np.mean(expected)), rel=REL)
    np.testing.assert_allclose(tape.gradient(loss, v).numpy()[0, :2], KERAS_CTC_GRAD, rtol=1e-5, atol=1e-7)
    assert losses.CTC().get_config() == {"name": "ctc", "reduction": "sum_over_batch_size"}
    with pytest.raises(ValueError, match="y_true.shape"):
        losses.ctc(labels[0], logits)


def test_loss_dtype_argument():
    assert losses.MeanSquaredError(dtype="mixed_float16").dtype == "float16"  # Keras: the policy's compute dtype
    assert losses.MeanSquaredError(dtype="float16")(A, B).numpy().dtype == np.float16
    with pytest.raises(ValueError, match="`dtype` must be a float dtype"):
        losses.MeanSquaredError(dtype="int32")
    with pytest.raises(ValueError, match="invalid argument `dtype`"):
        losses.MeanSquaredError(dtype="not_a_dtype")


def test_deserialize_with_custom_objects():
    class Scaled(losses.Loss):
        def call(self, y_true, y_pred):
            return losses.mean_absolute_error(y_true, y_pred)

    loss = losses.deserialize({"class_name": "Scaled", "config": {"name": "s"}}, custom_objects={"Scaled": Scaled})
    assert isinstance(loss, Scaled) and loss.name == "s"
    assert losses.deserialize("MeanSquaredError").name == "mean_squared_error"


def test_ignore_class_minus_one_and_python_list_inputs():
    labels = np.array([0, -1, 2, -1])
    got = losses.SparseCategoricalCrossentropy(ignore_class=-1)(labels, P_SPARSE)
    kept = losses.SparseCategoricalCrossentropy()(labels[[0, 2]], P_SPARSE[[0, 2]])
    assert _value(got) == pytest.approx(_value(kept), rel=REL)  # the mean over the kept entries
    nested = losses.MeanSquaredError()([[0.0, 1.0], [1.0, 0.0]], [[0.5, 0.5], [0.5, 0.5]])
    assert _value(nested) == pytest.approx(0.25, rel=REL)


def test_softmax_and_sigmoid_outputs_carry_their_logits_into_crossentropy():
    """Keras's TensorFlow backend: a crossentropy of softmax(z) / sigmoid(z) computes from z, not from the clipped
    probabilities (Keras 3.15.1 gives 60.0 and 40.0 here; clipping would give -log(1e-7) = 16.118)."""
    z = fastnn.Variable(np.array([[30.0, 0.0, -30.0]], "float32"))
    y = np.array([[0.0, 0.0, 1.0]], "float32")
    with fastnn.GradientTape() as tape:
        loss = fastnn.losses.categorical_crossentropy(y, fastnn.activations.softmax(z))
    np.testing.assert_allclose(np.asarray(loss), [60.0], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(tape.gradient(loss, z)), [[1.0, 0.0, -1.0]], atol=1e-6)
    model = fastnn.Sequential([fastnn.Input((3,)), fastnn.layers.Activation("softmax")])
    model.compile(loss="categorical_crossentropy")
    np.testing.assert_allclose(model.evaluate(np.asarray(z), y, verbose=0), 60.0, rtol=1e-6)
    bce = fastnn.losses.binary_crossentropy(np.array([[1.0]], "float32"), fastnn.ops.sigmoid(np.array([[-40.0]], "float32")))
    np.testing.assert_allclose(np.asarray(bce), [40.0], rtol=1e-6)
