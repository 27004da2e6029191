"""Live cross-check of every fastnn loss against Keras 3 (TensorFlow backend): value AND gradient wrt y_pred, for
every loss class x every reduction x several sample_weight shapes x random data from fixed seeds, plus the function
forms, string identifiers and configs. Skipped when Keras is not installed.

Tolerance: the inputs are float32 and both libraries compute in float32, but not in the same order (fastnn's
fused softmax-crossentropy kernel, TF's reduce_sum tree, rsqrt vs power(-0.5)); the differences seen are a few ulp
of the result. rtol = 2e-5 with atol = 1e-6 (float32's epsilon is 1.2e-7, so this is ~100 ulp, well below any
formula difference: a wrong divisor or a dropped term moves the value by percents).
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
import fastnn.losses as F  # noqa: E402

RTOL, ATOL = 2e-5, 1e-6
N, T, C = 6, 3, 4
SEEDS = (0, 1, 2)
REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)


# -- data generators: (y_true, y_pred) for a batch shape -----------------------------------------------------------
def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _regression(rng, shape):
    return rng.standard_normal(shape).astype("float32"), rng.standard_normal(shape).astype("float32")


def _positive(rng, shape):
    return rng.uniform(0.1, 3.0, shape).astype("float32"), rng.uniform(0.1, 3.0, shape).astype("float32")


def _probabilities(rng, shape):
    return (_softmax(rng.standard_normal(shape)).astype("float32"),
            _softmax(rng.standard_normal(shape)).astype("float32"))


def _binary_probs(rng, shape):
    return (rng.integers(0, 2, shape).astype("float32"), rng.uniform(0.03, 0.97, shape).astype("float32"))


def _binary_logits(rng, shape):
    return (rng.integers(0, 2, shape).astype("float32"), (2 * rng.standard_normal(shape)).astype("float32"))


def _soft_binary(rng, shape):
    return (rng.uniform(0, 1, shape).astype("float32"), rng.uniform(0.03, 0.97, shape).astype("float32"))


def _signed(rng, shape):
    return (rng.choice([-1.0, 1.0], shape).astype("float32"), rng.standard_normal(shape).astype("float32"))


def _one_hot_probs(rng, shape):
    labels = rng.integers(0, shape[-1], shape[:-1])
    return (np.eye(shape[-1], dtype="float32")[labels], _softmax(rng.standard_normal(shape)).astype("float32"))


def _one_hot_logits(rng, shape):
    labels = rng.integers(0, shape[-1], shape[:-1])
    return (np.eye(shape[-1], dtype="float32")[labels], (2 * rng.standard_normal(shape)).astype("float32"))


def _one_hot_logits_axis0(rng, shape):
    y, p = _one_hot_logits(rng, shape[::-1])
    return np.ascontiguousarray(y.T), np.ascontiguousarray(p.T)


def _one_hot_probs_axis0(rng, shape):
    y, p = _one_hot_probs(rng, shape[::-1])
    return np.ascontiguousarray(y.T), np.ascontiguousarray(p.T)


def _sparse_probs(rng, shape):
    return (rng.integers(0, shape[-1], shape[:-1]), _softmax(rng.standard_normal(shape)).astype("float32"))


def _sparse_logits(rng, shape):
    return (rng.integers(0, shape[-1], shape[:-1]), (2 * rng.standard_normal(shape)).astype("float32"))


def _sparse_trailing_one(rng, shape):
    y, p = _sparse_probs(rng, shape)
    return y[..., None], p


def _segmentation(rng, shape):
    return (rng.integers(0, 2, shape).astype("float32"), rng.uniform(0.0, 1.0, shape).astype("float32"))


def _embeddings(rng, shape):
    e = rng.standard_normal((shape[0], 5))
    e /= np.linalg.norm(e, axis=-1, keepdims=True)
    return rng.integers(0, 3, shape[0]), e.astype("float32")


def _ctc_sequences(rng, shape):
    """(N, 3) labels in 1..4 padded with the blank 0 (and a repeated label), (N, 7, 5) logits."""
    labels = rng.integers(1, 5, (shape[0], 3))
    labels[0, 2] = 0
    labels[1, 1] = labels[1, 0]
    return labels, rng.standard_normal((shape[0], 7, 5)).astype("float32")


# name, kwargs, data, whether (N, T, C) outputs make sense (per-timestep losses of shape (N, T))
CASES = [
    ("MeanSquaredError", {}, _regression, True),
    ("MeanAbsoluteError", {}, _regression, True),
    ("MeanAbsolutePercentageError", {}, _regression, True),
    ("MeanSquaredLogarithmicError", {}, _positive, True),
    ("Huber", {}, _regression, True),
    ("Huber", {"delta": 0.4}, _regression, True),
    ("LogCosh", {}, _regression, True),
    ("Poisson", {}, _positive, True),
    ("KLDivergence", {}, _probabilities, True),
    ("CosineSimilarity", {}, _regression, True),
    ("CosineSimilarity", {"axis": 0}, _regression, False),
    ("Hinge", {}, _signed, True),
    ("Hinge", {}, _binary_logits, True),
    ("SquaredHinge", {}, _signed, True),
    ("SquaredHinge", {}, _binary_logits, True),
    ("CategoricalHinge", {}, _one_hot_logits, True),
    ("BinaryCrossentropy", {}, _binary_probs, True),
    ("BinaryCrossentropy", {"from_logits": True}, _binary_logits, True),
    ("BinaryCrossentropy", {"label_smoothing": 0.2}, _soft_binary, True),
    ("BinaryCrossentropy", {"from_logits": True, "label_smoothing": 0.1, "axis": 0}, _binary_logits, False),
    ("BinaryFocalCrossentropy", {}, _binary_probs, True),
    ("BinaryFocalCrossentropy", {"from_logits": True, "gamma": 3.0}, _binary_logits, True),
    ("BinaryFocalCrossentropy", {"apply_class_balancing": True, "alpha": 0.4, "label_smoothing": 0.1},
     _binary_probs, True),
    ("CategoricalCrossentropy", {}, _one_hot_probs, True),
    ("CategoricalCrossentropy", {"from_logits": True}, _one_hot_logits, True),
    ("CategoricalCrossentropy", {"label_smoothing": 0.1}, _one_hot_probs, True),
    ("CategoricalCrossentropy", {"from_logits": True, "axis": 0}, _one_hot_logits_axis0, False),
    ("CategoricalCrossentropy", {"axis": 0}, _one_hot_probs_axis0, False),
    ("CategoricalFocalCrossentropy", {}, _one_hot_probs, True),
    ("CategoricalFocalCrossentropy", {"from_logits": True, "alpha": 0.5, "gamma": 1.5, "label_smoothing": 0.1},
     _one_hot_logits, True),
    ("SparseCategoricalCrossentropy", {}, _sparse_probs, True),
    ("SparseCategoricalCrossentropy", {"from_logits": True}, _sparse_logits, True),
    ("SparseCategoricalCrossentropy", {}, _sparse_trailing_one, True),
    ("SparseCategoricalCrossentropy", {"ignore_class": 1}, _sparse_probs, True),
    ("SparseCategoricalCrossentropy", {"ignore_class": 2, "from_logits": True}, _sparse_logits, True),
    ("SparseCategoricalCrossentropy", {"ignore_class": 0}, _sparse_trailing_one, True),
    ("Dice", {}, _segmentation, True),
    ("Dice", {"axis": -1}, _segmentation, True),
    ("Tversky", {}, _segmentation, True),
    ("Tversky", {"alpha": 0.7, "beta": 0.3, "axis": -1}, _segmentation, True),
    ("Circle", {}, _embeddings, False),
    ("Circle", {"gamma": 4.0, "margin": 0.25, "remove_diagonal": False}, _embeddings, False),
    ("CTC", {}, _ctc_sequences, False),
    ("CategoricalGeneralizedCrossEntropy", {}, _sparse_probs, False),
    ("CategoricalGeneralizedCrossEntropy", {"q": 0.2}, _sparse_probs, False),
]


def _sample_weights(rng, values_shape):
    """Weights for per-sample losses of ``values_shape``: None, a scalar, (N,), (N, 1), all zeros, and per-timestep
    (N, T) ones when the losses are (N, T)."""
    n = values_shape[0] if values_shape else N  # Dice / Tversky with axis=None: one value per batch
    out = [None, np.float32(2.5), rng.uniform(0, 2, n).astype("float32"),
           rng.uniform(0, 2, (n, 1)).astype("float32"), np.zeros(n, "float32")]
    if len(values_shape) == 2:
        out = [None, np.float32(0.5), rng.uniform(0, 2, values_shape).astype("float32"),
               rng.uniform(0, 2, (n, 1)).astype("float32"), np.zeros(values_shape, "float32")]
    return out


def _keras_value_and_grad(loss, y_true, y_pred, sw):
    var = tf.Variable(y_pred)
    with tf.GradientTape() as tape:
        value = loss(y_true, var, sample_weight=sw)
        total = tf.reduce_sum(value)
    return np.asarray(value), np.asarray(tape.gradient(total, var))


def _fastnn_value_and_grad(loss, y_true, y_pred, sw):
    var = fastnn.Variable(y_pred)
    with fastnn.GradientTape() as tape:
        value = loss(y_true, var, sample_weight=sw)
        total = fastnn.ops.sum(value)
    grad = tape.gradient(total, var)
    return value.numpy(), (np.zeros_like(y_pred) if grad is None else grad.numpy())


def _case_id(case):
    name, kwargs, data, _ = case
    options = "-".join(f"{k}={v}" for k, v in kwargs.items())
    return f"{name}-{data.__name__.strip('_')}" + (f"-{options}" if options else "")


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_loss_value_and_gradient_match_keras(case):
    name, kwargs, data, per_timestep = case
    shapes = [(N, C)] + ([(N, T, C)] if per_timestep else [])
    checked = 0
    for seed in SEEDS:
        for shape in shapes:
            rng = np.random.default_rng(seed)
            y_true, y_pred = data(rng, shape)
            probe = getattr(keras.losses, name)(**kwargs, reduction=None)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                values_shape = np.asarray(probe(y_true, y_pred)).shape
            for sw in _sample_weights(rng, values_shape):
                for reduction in REDUCTIONS:
                    k_loss = getattr(keras.losses, name)(**kwargs, reduction=reduction)
                    f_loss = getattr(F, name)(**kwargs, reduction=reduction)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        kv, kg = _keras_value_and_grad(k_loss, y_true, y_pred, sw)
                        fv, fg = _fastnn_value_and_grad(f_loss, y_true, y_pred, sw)
                    sw_shape = None if sw is None else np.shape(sw)
                    where = f"{name}({kwargs}) seed={seed} shape={shape} reduction={reduction!r} sw={sw_shape}"
                    assert fv.shape == kv.shape, where
                    np.testing.assert_allclose(fv, kv, rtol=RTOL, atol=ATOL, err_msg="value " + where)
                    # Rounding errors of a gradient element scale with the terms summed into it, so the absolute
                    # tolerance scales with the gradient's largest element (Circle's gamma = 80 gives elements of
                    # ~100 next to ~0.2 ones that are differences of such terms).
                    g_atol = max(ATOL, RTOL * float(np.max(np.abs(kg), initial=0.0)))
                    np.testing.assert_allclose(fg, kg, rtol=RTOL, atol=g_atol, err_msg="gradient " + where)
                    checked += 1
    assert checked >= 3 * 5 * 6


def test_label_smoothing_along_another_axis_uses_the_last_axis_size_as_keras():
    """Keras smooths with the size of the LAST axis whatever `axis` is, so the labels no longer sum to 1 along
    `axis`. The values agree; TF's softmax-crossentropy gradient is softmax - labels, which is the derivative only
    for labels summing to 1, while fastnn returns the true derivative (as Keras's JAX backend does), so only the
    values are compared here and fastnn's gradient is checked against finite differences."""
    y_true, y_pred = _one_hot_logits_axis0(np.random.default_rng(0), (N, C))
    for kw in ({"from_logits": True, "label_smoothing": 0.2, "axis": 0}, {"label_smoothing": 0.1, "axis": 0}):
        if not kw.get("from_logits"):
            y_pred = _softmax(y_pred.T).T.astype("float32")
        kv = np.asarray(keras.losses.CategoricalCrossentropy(**kw)(y_true, y_pred))
        fv = F.CategoricalCrossentropy(**kw)(y_true, y_pred).numpy()
        np.testing.assert_allclose(fv, kv, rtol=RTOL)
    from fastnn.testing.gradcheck import check_gradients

    check_gradients(lambda p: F.categorical_crossentropy(y_true.astype("float64"), p, from_logits=True,
                                                         label_smoothing=0.2, axis=0),
                    [y_pred.astype("float64")])


@pytest.mark.parametrize("case", CASES[:1] + [c for c in CASES if c[0] in (
    "CategoricalCrossentropy", "SparseCategoricalCrossentropy", "BinaryFocalCrossentropy", "Dice")],
    ids=lambda c: _case_id(c))
def test_loss_dtype_float64_matches_keras(case):
    name, kwargs, data, _ = case
    y_true, y_pred = data(np.random.default_rng(5), (N, C))
    y_pred = y_pred.astype("float64")
    k = getattr(keras.losses, name)(**kwargs, dtype="float64")
    f = getattr(F, name)(**kwargs, dtype="float64")
    assert f.dtype == k.dtype == "float64"
    kv, kg = _keras_value_and_grad(k, y_true, y_pred, None)
    fv, fg = _fastnn_value_and_grad(f, y_true, y_pred, None)
    assert fv.dtype == kv.dtype
    np.testing.assert_allclose(fv, kv, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(fg, kg, rtol=1e-12, atol=1e-14)


def test_float64_inputs_are_computed_in_the_loss_dtype_float32():
    y_true, y_pred = _regression(np.random.default_rng(3), (N, C))
    kv = keras.losses.MeanSquaredError()(y_true.astype("float64"), y_pred.astype("float64"))
    fv = F.MeanSquaredError()(y_true.astype("float64"), y_pred.astype("float64"))
    assert fv.numpy().dtype == np.asarray(kv).dtype == np.float32
    np.testing.assert_allclose(fv.numpy(), np.asarray(kv), rtol=RTOL)


FUNCTIONS = ["mean_squared_error", "mean_absolute_error", "mean_absolute_percentage_error",
             "mean_squared_logarithmic_error", "huber", "log_cosh", "kl_divergence", "poisson", "hinge",
             "squared_hinge", "categorical_hinge", "cosine_similarity", "binary_crossentropy",
             "binary_focal_crossentropy", "categorical_crossentropy", "categorical_focal_crossentropy",
             "sparse_categorical_crossentropy", "dice", "tversky", "circle", "ctc"]
DATA_OF = {"mean_squared_logarithmic_error": _positive, "poisson": _positive, "kl_divergence": _probabilities,
           "hinge": _signed, "squared_hinge": _binary_logits, "categorical_hinge": _one_hot_logits,
           "binary_crossentropy": _binary_probs, "binary_focal_crossentropy": _binary_probs,
           "categorical_crossentropy": _one_hot_probs, "categorical_focal_crossentropy": _one_hot_probs,
           "sparse_categorical_crossentropy": _sparse_probs, "dice": _segmentation, "tversky": _segmentation,
           "circle": _embeddings, "ctc": _ctc_sequences}


@pytest.mark.parametrize("fn_name", FUNCTIONS)
def test_function_forms_match_keras(fn_name):
    data = DATA_OF.get(fn_name, _regression)
    for seed in SEEDS:
        y_true, y_pred = data(np.random.default_rng(seed), (N, C))
        kv = np.asarray(getattr(keras.losses, fn_name)(y_true, y_pred))
        fv = getattr(F, fn_name)(y_true, y_pred).numpy()
        np.testing.assert_allclose(fv, kv, rtol=RTOL, atol=ATOL, err_msg=fn_name)


def test_categorical_generalized_cross_entropy_function_matches_keras():
    y_true, y_pred = _sparse_probs(np.random.default_rng(0), (N, C))
    kv = np.asarray(keras.losses.categorical_generalized_cross_entropy(y_true, y_pred, q=0.3))
    np.testing.assert_allclose(F.categorical_generalized_cross_entropy(y_true, y_pred, q=0.3).numpy(), kv, rtol=RTOL)


def test_sparse_labels_with_trailing_one_in_function_form():
    y_true, y_pred = _sparse_trailing_one(np.random.default_rng(0), (N, C))
    for kw in ({}, {"ignore_class": 1}):
        kv = np.asarray(keras.losses.sparse_categorical_crossentropy(y_true, y_pred, **kw))
        np.testing.assert_allclose(F.sparse_categorical_crossentropy(y_true, y_pred, **kw).numpy(), kv, rtol=RTOL)


@pytest.mark.parametrize("alias", ["mse", "MSE", "mae", "MAE", "mape", "MAPE", "msle", "MSLE", "kld", "KLD", "bce",
                                   "BCE"])
def test_aliases_are_keras_functions(alias):
    k = keras.losses.get(alias)
    f = F.get(alias)
    assert f.__name__ == k.__name__
    data = DATA_OF.get(f.__name__, _positive)
    y_true, y_pred = data(np.random.default_rng(0), (N, C))
    np.testing.assert_allclose(f(y_true, y_pred).numpy(), np.asarray(k(y_true, y_pred)), rtol=RTOL, atol=ATOL)


KERAS_NAMES = sorted(n for n, o in vars(keras.losses).items() if not n.startswith("_") and callable(o)
                     and n not in ("get", "serialize", "deserialize"))


@pytest.mark.parametrize("name", KERAS_NAMES)
def test_every_keras_loss_name_exists_in_fastnn(name):
    assert hasattr(F, name), f"fastnn.losses lacks keras.losses.{name}"
    if name[0].isupper() and name not in ("Loss",):
        assert F.get(name).__class__.__name__ == name


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_configs_equal_keras_key_for_key(case):
    name, kwargs, _, _ = case
    for extra in ({}, {"reduction": "sum", "name": "custom"}, {"reduction": None}):
        k = getattr(keras.losses, name)(**kwargs, **extra).get_config()
        f = getattr(F, name)(**kwargs, **extra).get_config()
        assert f == k, (name, kwargs, extra)
        again = getattr(F, name).from_config(f).get_config()
        assert again == f


def test_loss_function_wrapper_config_matches_keras():
    from keras.src.losses.losses import LossFunctionWrapper as KerasWrapper

    k = KerasWrapper(keras.losses.mean_squared_error, name="w", reduction="sum").get_config()
    f = F.LossFunctionWrapper(F.mean_squared_error, name="w", reduction="sum").get_config()
    assert f == k
    restored = F.LossFunctionWrapper.from_config(f)
    assert restored.fn is F.mean_squared_error


def test_mask_on_y_pred_reduces_as_keras():
    """A mask on y_pred (Keras: y_pred._keras_mask, set by a Masking/Embedding(mask_zero) layer; fastnn:
    set_keras_mask) is merged into the sample weights with Keras's total / valid weighting."""
    from keras.src import backend as kb

    rng = np.random.default_rng(0)
    y_true, y_pred = _regression(rng, (N, T, C))
    mask = rng.integers(0, 2, (N, T)).astype(bool)
    mask[0] = False
    for reduction in REDUCTIONS:
        for sw in (None, rng.uniform(0, 2, (N, T)).astype("float32"), rng.uniform(0, 2, (N, 1)).astype("float32")):
            kp = tf.Variable(y_pred)
            with tf.GradientTape() as tape:
                masked = tf.identity(kp)
                kb.set_keras_mask(masked, tf.constant(mask))
                kv = keras.losses.MeanSquaredError(reduction=reduction)(y_true, masked, sample_weight=sw)
                ktotal = tf.reduce_sum(kv)
            kg = tape.gradient(ktotal, kp)
            fp = fastnn.Variable(y_pred)
            with fastnn.GradientTape() as tape:
                masked = fastnn.ops.multiply(fp, 1.0)
                F.set_keras_mask(masked, mask)
                fv = F.MeanSquaredError(reduction=reduction)(y_true, masked, sample_weight=sw)
                ftotal = fastnn.ops.sum(fv)
            fg = tape.gradient(ftotal, fp)
            np.testing.assert_allclose(fv.numpy(), np.asarray(kv), rtol=RTOL, atol=ATOL, err_msg=str(reduction))
            np.testing.assert_allclose(fg.numpy(), np.asarray(kg), rtol=RTOL, atol=ATOL, err_msg=str(reduction))


def test_mask_on_y_pred_and_ignore_class_combine_as_keras():
    from keras.src import backend as kb

    rng = np.random.default_rng(1)
    y_true, y_pred = _sparse_logits(rng, (N, T, C))
    mask = rng.integers(0, 2, (N, T)).astype(bool)
    for reduction in REDUCTIONS:
        masked_k = tf.identity(tf.constant(y_pred))
        kb.set_keras_mask(masked_k, tf.constant(mask))
        kv = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=2, reduction=reduction)(
            y_true, masked_k)
        masked_f = fastnn.ops.multiply(fastnn.Tensor(y_pred), 1.0)
        F.set_keras_mask(masked_f, mask)
        fv = F.SparseCategoricalCrossentropy(from_logits=True, ignore_class=2, reduction=reduction)(y_true, masked_f)
        np.testing.assert_allclose(fv.numpy(), np.asarray(kv), rtol=RTOL, atol=ATOL, err_msg=str(reduction))


def test_issue9_ignore_class_example():
    y_true = np.array([0, 1, 2, 1])
    y_pred = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.3, 0.4, 0.3]], "float32")
    for ignore in (1, 2):
        kv = float(keras.losses.SparseCategoricalCrossentropy(ignore_class=ignore)(y_true, y_pred))
        fv = float(F.SparseCategoricalCrossentropy(ignore_class=ignore)(y_true, y_pred).numpy())
        assert fv == pytest.approx(kv, rel=1e-6)


def test_crossentropies_use_the_logits_of_a_softmax_or_sigmoid_output_as_keras_tensorflow():
    """Keras's TensorFlow backend records the input of softmax / sigmoid (`_keras_logits`) and its crossentropies
    use it instead of the clipped probabilities; fastnn's crossentropies do the same for a Tensor annotated with
    keras_attrs.set_keras_logits (what a softmax / sigmoid activation is to call). Saturated logits show it:
    clipping would change the value and zero the gradient."""
    from fastnn.autograd.keras_attrs import set_keras_logits

    x = np.array([[30.0, 0.0, -30.0], [0.0, 1.0, 2.0], [-25.0, 3.0, 1.0]], "float32")
    onehot = np.array([[0, 0, 1.0], [1, 0, 0], [1, 0, 0]], "float32")
    labels = np.array([2, 0, 0])
    cases = [("CategoricalCrossentropy", keras.activations.softmax, fastnn.activations.softmax, onehot),
             ("SparseCategoricalCrossentropy", keras.activations.softmax, fastnn.activations.softmax, labels),
             ("BinaryCrossentropy", keras.activations.sigmoid, fastnn.activations.sigmoid, onehot),
             ("BinaryFocalCrossentropy", keras.activations.sigmoid, fastnn.activations.sigmoid, onehot)]
    for name, k_act, f_act, y in cases:
        kx = tf.Variable(x)
        with tf.GradientTape() as tape:
            kv = getattr(keras.losses, name)()(y, k_act(kx))
        kg = tape.gradient(kv, kx)
        fx = fastnn.Variable(x)
        with fastnn.GradientTape() as tape:
            probabilities = f_act(fx)
            set_keras_logits(probabilities, fx)
            fv = getattr(F, name)()(y, probabilities)
        fg = tape.gradient(fv, fx)
        np.testing.assert_allclose(fv.numpy(), np.asarray(kv), rtol=RTOL, err_msg=name)
        np.testing.assert_allclose(fg.numpy(), np.asarray(kg), rtol=RTOL, atol=ATOL, err_msg=name)


def test_binary_focal_from_logits_is_exact_for_saturated_logits():
    y = np.array([[0, 1, 1], [1, 0, 0]], "float32")
    x = np.array([[40.0, -35.0, 2.0], [-50.0, 20.0, 0.5]], "float32")
    for kw in ({"from_logits": True}, {"from_logits": True, "apply_class_balancing": True, "gamma": 0.5}):
        kv = np.asarray(keras.losses.BinaryFocalCrossentropy(**kw)(y, x))
        fv = F.BinaryFocalCrossentropy(**kw)(y, x).numpy()
        np.testing.assert_allclose(fv, kv, rtol=RTOL)


EDGE_CASES = [  # degenerate inputs where a careless formula gives nan or a different branch
    ("Circle", {}, np.array([0, 1, 2]), np.eye(3, dtype="float32"), None),  # no positive pairs: every loss 0
    ("CosineSimilarity", {}, np.array([[1.0, 2, 3], [0, 0, 0]], "float32"),
     np.array([[0.0, 0, 0], [1, 2, 3]], "float32"), None),  # zero vectors
    ("SparseCategoricalCrossentropy", {"ignore_class": 1}, np.array([1, 1]),
     np.array([[0.2, 0.8], [0.5, 0.5]], "float32"), None),  # everything ignored
    ("MeanSquaredError", {"reduction": "mean_with_sample_weight"}, np.ones((2, 2), "float32"),
     np.zeros((2, 2), "float32"), np.zeros(2, "float32")),  # all weights zero
    ("Dice", {}, np.zeros((2, 2), "float32"), np.zeros((2, 2), "float32"), None),
    ("KLDivergence", {}, np.array([[0.0, 1]], "float32"), np.array([[0.0, 1]], "float32"), None),
    ("Poisson", {}, np.array([[0.0, 1]], "float32"), np.array([[0.0, 1]], "float32"), None),
    ("MeanSquaredLogarithmicError", {}, np.array([[0.0, 1]], "float32"), np.array([[-1.0, 1]], "float32"), None),
    ("Huber", {}, np.array([[0.0, 1]], "float32"), np.array([[1.0, 3]], "float32"), None),  # |error| == delta
    ("Hinge", {}, np.array([[0.0, 1]], "float32"), np.array([[-1.0, 1]], "float32"), None),  # on the kink
    ("CategoricalHinge", {}, np.array([[0.0, 1]], "float32"), np.array([[0.0, -1]], "float32"), None),
    ("BinaryCrossentropy", {}, np.array([[0.0, 1]], "float32"), np.array([[0.0, 1]], "float32"), None),  # clipped
    ("MeanAbsoluteError", {}, np.array([[0.0, 1]], "float32"), np.array([[0.0, 1]], "float32"), None),  # |0|'
]


@pytest.mark.parametrize("name, kwargs, y_true, y_pred, sw", EDGE_CASES, ids=[c[0] for c in EDGE_CASES])
def test_degenerate_inputs_match_keras(name, kwargs, y_true, y_pred, sw):
    kv, kg = _keras_value_and_grad(getattr(keras.losses, name)(**kwargs), y_true, y_pred, sw)
    fv, fg = _fastnn_value_and_grad(getattr(F, name)(**kwargs), y_true, y_pred, sw)
    np.testing.assert_allclose(fv, kv, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(fg, kg, rtol=RTOL, atol=ATOL)
