"""Losses and metrics against NumPy formulas; reduction with sample weights; gradients of losses;
activations, initializers and string identifiers."""
from __future__ import annotations

import math

import numpy as np
import pytest

import fastnn
from fastnn import activations, initializers, losses, metrics

EPS = 1e-7
rng = np.random.default_rng(0)
YT = rng.uniform(0.05, 1.0, (6, 4)).astype("float64")
YP = rng.uniform(0.05, 1.0, (6, 4)).astype("float64")


def _softplus(x):
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)


def _norm(x):
    return x / np.sqrt(np.maximum((x * x).sum(-1, keepdims=True), 1e-12))


REFS = {
    "mean_squared_error": lambda t, p: ((t - p) ** 2).mean(-1),
    "mean_absolute_error": lambda t, p: np.abs(t - p).mean(-1),
    "mean_absolute_percentage_error": lambda t, p: 100 * np.abs((t - p) / np.maximum(np.abs(t), EPS)).mean(-1),
    "mean_squared_logarithmic_error": lambda t, p: ((np.log(np.maximum(p, EPS) + 1) - np.log(np.maximum(t, EPS) + 1))
                                                    ** 2).mean(-1),
    "huber": lambda t, p: np.where(np.abs(p - t) <= 1.0, 0.5 * (p - t) ** 2, np.abs(p - t) - 0.5).mean(-1),
    "log_cosh": lambda t, p: (p - t + _softplus(-2 * (p - t)) - math.log(2)).mean(-1),
    "kl_divergence": lambda t, p: (np.clip(t, EPS, 1) * np.log(np.clip(t, EPS, 1) / np.clip(p, EPS, 1))).sum(-1),
    "hinge": lambda t, p: np.maximum(1 - t * p, 0).mean(-1),
    "squared_hinge": lambda t, p: (np.maximum(1 - t * p, 0) ** 2).mean(-1),
    "poisson": lambda t, p: (p - t * np.log(p + EPS)).mean(-1),
    "cosine_similarity": lambda t, p: -(_norm(t) * _norm(p)).sum(-1),
    "binary_crossentropy": lambda t, p: -(t * np.log(np.clip(p, EPS, 1 - EPS)) +
                                          (1 - t) * np.log(1 - np.clip(p, EPS, 1 - EPS))).mean(-1),
}


@pytest.mark.parametrize("name", sorted(REFS))
def test_loss_functions_against_numpy(name):
    fn = losses.get(name)
    got = np.asarray(fn(YT, YP))
    np.testing.assert_allclose(got, REFS[name](YT, YP), rtol=1e-6, atol=1e-9)


def test_loss_classes_reduce_over_batch_size_with_sample_weights():
    sw = np.array([0.0, 1.0, 2.0, 0.5, 1.0, 3.0])
    per = REFS["mean_squared_error"](YT, YP)
    mse = losses.MeanSquaredError()
    assert float(mse(YT, YP)) == pytest.approx(per.mean())
    assert float(mse(YT, YP, sample_weight=sw)) == pytest.approx((per * sw).sum() / 6)
    assert float(losses.MeanSquaredError(reduction="sum")(YT, YP)) == pytest.approx(per.sum())
    # A Loss computes in its dtype (float32 by default), whatever the inputs' dtype, as Keras does.
    np.testing.assert_allclose(np.asarray(losses.MeanSquaredError(reduction="none")(YT, YP)), per, rtol=1e-6)
    assert losses.Huber().name == "huber_loss" and losses.MeanSquaredError().name == "mean_squared_error"
    h = losses.Huber(delta=0.1)
    d = YP - YT
    ref = np.where(np.abs(d) <= 0.1, 0.5 * d * d, 0.1 * np.abs(d) - 0.005).mean(-1).mean()
    assert float(h(YT, YP)) == pytest.approx(ref)
    with pytest.raises(ValueError, match="reduction"):
        losses.MeanSquaredError(reduction="avg")
    # rank-1 targets against (n, 1) predictions are expanded as in Keras
    assert float(mse(np.ones(6), np.zeros((6, 1)))) == pytest.approx(1.0)


def test_crossentropies_against_numpy():
    logits = rng.standard_normal((5, 3))
    labels = np.array([0, 2, 1, 1, 0])
    onehot = np.eye(3)[labels]
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    ref = -logp[np.arange(5), labels]
    np.testing.assert_allclose(np.asarray(losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)),
                               ref, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(losses.categorical_crossentropy(onehot, logits, from_logits=True)), ref,
                               rtol=1e-10)
    smooth = onehot * 0.9 + 0.1 / 3
    np.testing.assert_allclose(
        np.asarray(losses.categorical_crossentropy(onehot, logits, from_logits=True, label_smoothing=0.1)),
        -(smooth * logp).sum(-1), rtol=1e-10)
    with pytest.raises(ValueError, match="sparse_categorical_crossentropy"):
        losses.categorical_crossentropy(labels, logits)
    ignored = losses.sparse_categorical_crossentropy(labels, logits, from_logits=True, ignore_class=1)
    np.testing.assert_allclose(np.asarray(ignored), np.where(labels == 1, 0, ref), rtol=1e-10)


def test_loss_gradients_flow():
    p = fastnn.Variable(YP.copy())
    for name in ("mse", "huber", "log_cosh", "kl_divergence", "poisson", "cosine_similarity", "msle", "mape"):
        with fastnn.GradientTape() as tape:
            loss = losses.get(name)(YT, p)
        g = tape.gradient(loss, p)
        assert g is not None and np.isfinite(g.numpy()).all(), name
    with fastnn.GradientTape() as tape:
        loss = fastnn.ops.mean(losses.mse(YT, p))
    np.testing.assert_allclose(tape.gradient(loss, p).numpy(), 2 * (YP - YT) / YT.size, rtol=1e-10)


def test_unknown_loss_lists_valid_names():
    with pytest.raises(ValueError, match=r"Could not interpret loss identifier: 'mse_loss'\. Valid identifiers are: .*"
                                         r"categorical_crossentropy.*mse"):
        losses.get("mse_loss")


# -- metrics -------------------------------------------------------------------------------------------------------
def test_accuracy_metrics():
    y = np.array([0, 1, 2, 1])
    p = np.array([[0.8, 0.1, 0.1], [0.1, 0.2, 0.7], [0.2, 0.2, 0.6], [0.3, 0.4, 0.3]])
    assert float(metrics.SparseCategoricalAccuracy()(y, p)) == pytest.approx(0.75)
    assert float(metrics.CategoricalAccuracy()(np.eye(3)[y], p)) == pytest.approx(0.75)
    assert float(metrics.SparseTopKCategoricalAccuracy(k=2)(y, p)) == pytest.approx(1.0)
    assert float(metrics.TopKCategoricalAccuracy(k=1)(np.eye(3)[y], p)) == pytest.approx(0.75)
    assert float(metrics.BinaryAccuracy()([[1], [0], [1]], [[0.7], [0.6], [0.2]])) == pytest.approx(1 / 3)
    assert float(metrics.Accuracy()([1, 2, 3], [1, 2, 4])) == pytest.approx(2 / 3)


def test_stateful_metrics_accumulate_weighted_by_count():
    m = metrics.SparseCategoricalAccuracy()
    m.update_state([0, 1], [[0.9, 0.1], [0.9, 0.1]])  # 1 of 2
    m.update_state([0, 0, 0, 0], [[0.9, 0.1]] * 4)  # 4 of 4
    assert float(m.result()) == pytest.approx(5 / 6)
    m.reset_state()
    assert float(m.result()) == 0.0
    mean = metrics.Mean()
    mean.update_state([1.0, 2.0, 3.0], sample_weight=[1.0, 0.0, 1.0])
    assert float(mean.result()) == pytest.approx(2.0)
    r = metrics.RootMeanSquaredError()
    r.update_state([[0.0], [0.0]], [[3.0], [4.0]])
    assert float(r.result()) == pytest.approx(math.sqrt(12.5))
    mse = metrics.get("mse")
    assert callable(mse)


def test_precision_recall_auc():
    yt = np.array([1, 0, 1, 1, 0, 0], "float32")
    yp = np.array([0.9, 0.6, 0.4, 0.8, 0.1, 0.3], "float32")
    assert float(metrics.Precision()(yt, yp)) == pytest.approx(2 / 3)
    assert float(metrics.Recall()(yt, yp)) == pytest.approx(2 / 3)
    # exact ROC AUC: the fraction of (positive, negative) pairs ranked correctly
    pos, neg = yp[yt == 1], yp[yt == 0]
    exact = np.mean([p > n for p in pos for n in neg])
    assert float(metrics.AUC(num_thresholds=1000)(yt, yp)) == pytest.approx(exact, abs=2e-3)


def test_accuracy_string_is_resolved_from_shapes_as_keras_does():
    fastnn.utils.set_random_seed(0)
    x = np.random.default_rng(0).standard_normal((32, 4)).astype("float32")
    for out, act, loss, y, cls in [
        (1, "sigmoid", "binary_crossentropy", (x[:, :1] > 0).astype("float32"), metrics.BinaryAccuracy),
        (3, "softmax", "sparse_categorical_crossentropy", np.arange(32) % 3, metrics.SparseCategoricalAccuracy),
        (3, "softmax", "categorical_crossentropy", np.eye(3)[np.arange(32) % 3], metrics.CategoricalAccuracy),
    ]:
        m = fastnn.Sequential([fastnn.Input((4,)), fastnn.layers.Dense(out, activation=act)])
        m.compile(optimizer="sgd", loss=loss, metrics=["accuracy"])
        m.fit(x, y, epochs=1, verbose=0)
        assert isinstance(m.metrics[1].metrics[0], cls) and m.metrics[1].metrics[0].name == "accuracy"


# -- activations and initializers ---------------------------------------------------------------------------------
def test_activations_by_name():
    x = np.linspace(-3, 3, 13)
    np.testing.assert_allclose(np.asarray(activations.get("relu")(x)), np.maximum(x, 0))
    np.testing.assert_allclose(np.asarray(activations.get("sigmoid")(x)), 1 / (1 + np.exp(-x)), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(activations.get("softmax")(x[None]))[0], np.exp(x) / np.exp(x).sum(),
                               rtol=1e-12)
    assert activations.get(None) is activations.linear
    np.testing.assert_allclose(np.asarray(activations.relu(x, max_value=1.0)), np.clip(x, 0, 1))
    with pytest.raises(ValueError, match="Could not interpret activation function identifier: 'rellu'"):
        activations.get("rellu")


@pytest.mark.parametrize("name,std", [
    ("glorot_uniform", math.sqrt(2 / (300 + 200))), ("glorot_normal", math.sqrt(2 / (300 + 200))),
    ("he_uniform", math.sqrt(2 / 300)), ("he_normal", math.sqrt(2 / 300)),
    ("lecun_uniform", math.sqrt(1 / 300)), ("lecun_normal", math.sqrt(1 / 300)),
    ("random_normal", 0.05), ("truncated_normal", 0.05 * 0.8796), ("random_uniform", 0.1 / math.sqrt(12))])
def test_initializer_statistics(name, std):
    fastnn.utils.set_random_seed(0)
    w = initializers.get(name)((300, 200))
    assert w.shape == (300, 200) and w.dtype == np.float32
    assert abs(w.mean()) < 0.05 * std + 1e-3
    assert w.std() == pytest.approx(std, rel=0.03)
    if "uniform" in name:
        limit = std * math.sqrt(3)
        assert np.abs(w).max() <= limit * 1.0001
    if name in ("glorot_normal", "he_normal", "lecun_normal", "truncated_normal"):
        raw = std / 0.8796 if name != "truncated_normal" else 0.05
        assert np.abs(w).max() <= 2 * raw * 1.0001


def test_other_initializers():
    assert (initializers.get("zeros")((2, 3)) == 0).all() and (initializers.get("ones")((2,)) == 1).all()
    assert (initializers.Constant(3.0)((2,)) == 3).all()
    q = initializers.Orthogonal(seed=1)((6, 4))
    np.testing.assert_allclose(q.T @ q, np.eye(4), atol=1e-5)
    np.testing.assert_array_equal(initializers.Identity(2.0)((3, 3)), 2 * np.eye(3))
    np.testing.assert_array_equal(initializers.GlorotUniform(seed=3)((4, 4)), initializers.GlorotUniform(seed=3)((4, 4)))
    vs = initializers.VarianceScaling(scale=2.0, mode="fan_out", distribution="uniform", seed=0)((1000, 50))
    assert vs.std() == pytest.approx(math.sqrt(2 / 50), rel=0.05)
    with pytest.raises(ValueError, match="mode"):
        initializers.VarianceScaling(mode="fan_x")
    with pytest.raises(ValueError, match="Could not interpret initializer identifier: 'he'"):
        initializers.get("he")
    fastnn.utils.set_random_seed(7)
    a = fastnn.layers.Dense(3, kernel_initializer="random_normal")
    a.build((None, 5))
    fastnn.utils.set_random_seed(7)
    b = fastnn.layers.Dense(3, kernel_initializer="random_normal")
    b.build((None, 5))
    np.testing.assert_array_equal(a.kernel.numpy(), b.kernel.numpy())
