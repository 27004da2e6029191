"""Live cross-check of fastnn.metrics against keras.metrics (Keras 3, TensorFlow backend): every metric class with
several argument sets, on random data from fixed seeds, with and without sample weights, over several
update_state calls of different batch sizes; results, reset_state and configs are compared. Skipped when Keras is
not installed.

    KERAS_BACKEND=tensorflow PYTHONPATH=src /work/kvenv/bin/python -m pytest tests/e2e/test_keras_metrics.py
"""
from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")

import fastnn  # noqa: E402

BATCHES = (7, 16, 9)  # three update_state calls of different sizes
SEEDS = (0, 1, 2)


def _with_exact_values(p, rng):
    """Predictions that sit exactly on 0, 1 and common thresholds, where ">" and bucketing matter."""
    flat = p.reshape(-1)
    idx = rng.choice(flat.size, size=min(8, flat.size), replace=False)
    flat[idx] = np.array([0.0, 1.0, 0.5, 0.25, 0.75, 0.3, 0.0, 1.0], dtype=p.dtype)[: idx.size]
    return p


def _data(kind, n, rng):
    """(y_true, y_pred) of one batch of ``kind``."""
    if kind == "binary":
        return rng.integers(0, 2, (n, 1)).astype("float32"), _with_exact_values(rng.uniform(0, 1, (n, 1)).astype(
            "float32"), rng)
    if kind == "binary_flat":
        return rng.integers(0, 2, (n,)).astype("float32"), rng.uniform(0, 1, (n,)).astype("float32")
    if kind == "logits":
        return rng.integers(0, 2, (n, 1)).astype("float32"), rng.normal(0, 2, (n, 1)).astype("float32")
    if kind == "multilabel":
        return rng.integers(0, 2, (n, 4)).astype("float32"), _with_exact_values(rng.uniform(0, 1, (n, 4)).astype(
            "float32"), rng)
    if kind in ("categorical", "sparse"):
        scores = rng.uniform(0, 1, (n, 5)).astype("float32")
        probs = scores / scores.sum(-1, keepdims=True)
        labels = rng.integers(0, 5, n)
        if kind == "sparse":
            return labels, probs
        return np.eye(5, dtype="float32")[labels], probs
    if kind == "labels":  # integer labels and integer predictions, some out of range
        return rng.integers(-1, 5, (n,)), rng.integers(0, 6, (n,))
    if kind == "regression":
        return rng.normal(0, 1, (n, 3)).astype("float32"), rng.normal(0, 1, (n, 3)).astype("float32")
    if kind == "positive":
        return rng.uniform(0.1, 2, (n, 3)).astype("float32"), rng.uniform(0.1, 2, (n, 3)).astype("float32")
    if kind == "hinge":
        return rng.choice([-1.0, 1.0], (n, 3)).astype("float32"), rng.normal(0, 1, (n, 3)).astype("float32")
    raise AssertionError(kind)


# (class name, constructor arguments, data kind)
CASES = [
    ("AUC", {}, "binary"),
    ("AUC", {"num_thresholds": 13}, "binary"),
    ("AUC", {"num_thresholds": 2}, "binary"),
    ("AUC", {"curve": "PR"}, "binary"),
    ("AUC", {"curve": "PR", "num_thresholds": 50}, "binary"),
    ("AUC", {"curve": "PR", "summation_method": "minoring"}, "binary"),
    ("AUC", {"curve": "PR", "summation_method": "majoring"}, "binary"),
    ("AUC", {"summation_method": "minoring"}, "binary"),
    ("AUC", {"summation_method": "majoring"}, "binary"),
    ("AUC", {"curve": "PRGAIN"}, "binary"),
    ("AUC", {"thresholds": [0.1, 0.35, 0.5, 0.8]}, "binary"),
    ("AUC", {"thresholds": [0.75, 0.25, 0.5]}, "binary"),  # evenly spaced once sorted: the bucketed path
    ("AUC", {"thresholds": [0.2, 0.6], "curve": "PR"}, "binary"),
    ("AUC", {"from_logits": True}, "logits"),
    ("AUC", {}, "binary_flat"),
    ("AUC", {}, "multilabel"),  # flattened
    ("AUC", {"label_weights": [1.0, 2.0, 0.5, 1.0]}, "multilabel"),
    ("AUC", {"multi_label": True}, "multilabel"),
    ("AUC", {"multi_label": True, "num_labels": 4}, "multilabel"),
    ("AUC", {"multi_label": True, "label_weights": [1.0, 2.0, 0.5, 0.0]}, "multilabel"),
    ("AUC", {"multi_label": True, "curve": "PR"}, "multilabel"),
    ("AUC", {"multi_label": True, "curve": "PR", "label_weights": [1.0, 2.0, 0.5, 1.0]}, "multilabel"),
    ("AUC", {"multi_label": True, "thresholds": [0.3, 0.6]}, "multilabel"),
    ("AUC", {"multi_label": True, "summation_method": "majoring"}, "multilabel"),
    ("Precision", {}, "binary"),
    ("Precision", {"thresholds": 0.3}, "binary"),
    ("Precision", {"thresholds": [0.0, 0.25, 0.5, 0.75, 1.0]}, "binary"),
    ("Precision", {"thresholds": [0.2, 0.55, 0.9]}, "binary"),
    ("Precision", {"class_id": 2}, "multilabel"),
    ("Precision", {"top_k": 2}, "multilabel"),
    ("Precision", {"top_k": 2, "thresholds": [0.3, 0.6]}, "multilabel"),
    ("Precision", {"top_k": 1, "class_id": 3}, "categorical"),
    ("Recall", {}, "binary"),
    ("Recall", {"thresholds": [0.2, 0.5, 0.8]}, "binary"),
    ("Recall", {"class_id": 1, "thresholds": [0.4, 0.6]}, "multilabel"),
    ("Recall", {"top_k": 1}, "multilabel"),
    ("Recall", {"top_k": 3}, "categorical"),
    ("TruePositives", {}, "binary"),
    ("TruePositives", {"thresholds": [0.2, 0.5, 0.8]}, "multilabel"),
    ("FalsePositives", {}, "binary"),
    ("FalsePositives", {"thresholds": [0.0, 0.5, 1.0]}, "binary"),
    ("TrueNegatives", {}, "multilabel"),
    ("TrueNegatives", {"thresholds": [0.25, 0.3]}, "binary"),
    ("FalseNegatives", {}, "binary"),
    ("FalseNegatives", {"thresholds": [0.0, 0.5, 1.0]}, "multilabel"),
    ("SensitivityAtSpecificity", {"specificity": 0.5}, "binary"),
    ("SensitivityAtSpecificity", {"specificity": 0.8, "num_thresholds": 1}, "binary"),
    ("SensitivityAtSpecificity", {"specificity": 0.5, "class_id": 1}, "multilabel"),
    ("SpecificityAtSensitivity", {"sensitivity": 0.6}, "binary"),
    ("SpecificityAtSensitivity", {"sensitivity": 0.9, "num_thresholds": 11}, "binary"),
    ("PrecisionAtRecall", {"recall": 0.7}, "binary"),
    ("PrecisionAtRecall", {"recall": 0.4, "class_id": 0}, "multilabel"),
    ("RecallAtPrecision", {"precision": 0.6, "num_thresholds": 20}, "binary"),
    ("RecallAtPrecision", {"precision": 0.5}, "multilabel"),
    ("F1Score", {}, "multilabel"),
    ("F1Score", {"average": "micro"}, "multilabel"),
    ("F1Score", {"average": "macro"}, "categorical"),
    ("F1Score", {"average": "weighted"}, "multilabel"),
    ("F1Score", {"threshold": 0.5}, "multilabel"),
    ("FBetaScore", {"beta": 2.0, "average": "macro", "threshold": 0.4}, "multilabel"),
    ("FBetaScore", {"beta": 0.5}, "categorical"),
    ("FBetaScore", {"beta": 1.5, "average": "weighted"}, "categorical"),
    ("R2Score", {}, "regression"),
    ("R2Score", {"class_aggregation": None}, "regression"),
    ("R2Score", {"class_aggregation": "variance_weighted_average"}, "regression"),
    ("R2Score", {"num_regressors": 2}, "regression"),
    ("R2Score", {"num_regressors": 100}, "regression"),  # more regressors than samples: plain R2 with a warning
    ("IoU", {"num_classes": 5, "target_class_ids": [1, 3]}, "labels"),
    ("IoU", {"num_classes": 5, "target_class_ids": [0, 2, 4], "ignore_class": 2}, "labels"),
    ("IoU", {"num_classes": 5, "target_class_ids": [0, 4], "sparse_y_pred": False}, "sparse"),
    ("IoU", {"num_classes": 5, "target_class_ids": [1, 2], "dtype": "float32"}, "labels"),
    ("MeanIoU", {"num_classes": 5}, "labels"),
    ("MeanIoU", {"num_classes": 5, "sparse_y_pred": False}, "sparse"),
    ("MeanIoU", {"num_classes": 5, "sparse_y_true": False, "sparse_y_pred": False, "dtype": "float32"}, "categorical"),
    ("BinaryIoU", {}, "binary"),
    ("BinaryIoU", {"target_class_ids": [1], "threshold": 0.3}, "binary"),
    ("OneHotIoU", {"num_classes": 5, "target_class_ids": [0, 2]}, "categorical"),
    ("OneHotMeanIoU", {"num_classes": 5}, "categorical"),
    ("OneHotMeanIoU", {"num_classes": 5, "ignore_class": 0, "dtype": "float32"}, "categorical"),
    ("Accuracy", {}, "labels"),
    ("BinaryAccuracy", {}, "binary"),
    ("BinaryAccuracy", {"threshold": 0.7}, "multilabel"),
    ("CategoricalAccuracy", {}, "categorical"),
    ("SparseCategoricalAccuracy", {}, "sparse"),
    ("TopKCategoricalAccuracy", {}, "categorical"),
    ("TopKCategoricalAccuracy", {"k": 2}, "categorical"),
    ("SparseTopKCategoricalAccuracy", {}, "sparse"),
    ("SparseTopKCategoricalAccuracy", {"k": 2}, "sparse"),
    ("MeanSquaredError", {}, "regression"),
    ("MeanAbsoluteError", {}, "regression"),
    ("MeanAbsolutePercentageError", {}, "positive"),
    ("MeanSquaredLogarithmicError", {}, "positive"),
    ("RootMeanSquaredError", {}, "regression"),
    ("LogCoshError", {}, "regression"),
    ("CosineSimilarity", {}, "regression"),
    ("CosineSimilarity", {"axis": 0}, "regression"),
    ("PearsonCorrelation", {}, "regression"),
    ("ConcordanceCorrelation", {}, "regression"),
    ("BinaryCrossentropy", {}, "binary"),
    ("BinaryCrossentropy", {"label_smoothing": 0.1}, "multilabel"),
    ("BinaryCrossentropy", {"from_logits": True}, "logits"),
    ("CategoricalCrossentropy", {}, "categorical"),
    ("CategoricalCrossentropy", {"label_smoothing": 0.1}, "categorical"),
    ("SparseCategoricalCrossentropy", {}, "sparse"),
    ("SparseCategoricalCrossentropy", {"ignore_class": 2}, "sparse"),
    ("SparseCategoricalCrossentropy", {"from_logits": True}, "sparse"),
    ("KLDivergence", {}, "categorical"),
    ("Poisson", {}, "positive"),
    ("Hinge", {}, "hinge"),
    ("SquaredHinge", {}, "hinge"),
    ("CategoricalHinge", {}, "categorical"),
]


def _weights(kind, n, rng, metric_kwargs, name):
    if "IoU" in name and metric_kwargs.get("dtype") != "float32":
        return rng.integers(0, 3, n)  # the int64 default dtype: integer weights
    return rng.uniform(0, 2, n).astype("float32")


def _normalize(value):
    if isinstance(value, (list, tuple)):
        return [_normalize(v) for v in value]
    if hasattr(value, "numpy"):
        value = value.numpy()
    if isinstance(value, np.ndarray):
        return [_normalize(v) for v in value.tolist()]
    if isinstance(value, (np.floating, float)):
        return round(float(value), 6)
    if isinstance(value, np.integer):
        return int(value)
    return value


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("name,kwargs,kind", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_metric_matches_keras(name, kwargs, kind, weighted):
    if weighted and name == "CosineSimilarity" and kwargs.get("axis") == 0:
        pytest.skip("axis=0 reduces over the batch: per-sample weights do not apply")
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        k_metric = getattr(keras.metrics, name)(**kwargs)
        f_metric = getattr(fastnn.metrics, name)(**kwargs)
        for n in BATCHES:
            y_true, y_pred = _data(kind, n, rng)
            sw = _weights(kind, n, rng, kwargs, name) if weighted else None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                k_metric.update_state(y_true, y_pred, sample_weight=sw)
                f_metric.update_state(y_true, y_pred, sample_weight=sw)
                expected = np.asarray(k_metric.result())
                got = np.asarray(f_metric.result())
            assert got.shape == expected.shape, (name, kwargs, seed)
            np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-6, err_msg=f"{name}{kwargs} seed {seed}")
        k_metric.reset_state()
        f_metric.reset_state()
        np.testing.assert_allclose(np.asarray(f_metric.result()), np.asarray(k_metric.result()), atol=1e-7,
                                   err_msg=f"{name}{kwargs} after reset_state")
    k_config = {k: _normalize(v) for k, v in k_metric.get_config().items() if k != "name"}
    f_config = {k: _normalize(v) for k, v in f_metric.get_config().items() if k != "name"}
    assert f_config == k_config


@pytest.mark.parametrize("values,sample_weight", [
    (np.arange(6.0).reshape(2, 3), None),
    (np.ones((2, 3)), np.array([[1, 0, 1], [1, 1, 1]], "float32")),
    (np.arange(6.0).reshape(2, 3), np.array([2.0, 0.5])),
    (np.array([1.0, 2.0, 3.0]), 2.0),
    (np.array([[1.0], [2.0], [5.0]]), np.array([1.0, 0.0, 3.0])),
    (np.array(4.0), None),
])
@pytest.mark.parametrize("name", ["Mean", "Sum"])
def test_mean_and_sum_match_keras(name, values, sample_weight):
    k_metric, f_metric = getattr(keras.metrics, name)(), getattr(fastnn.metrics, name)()
    for v in (values, np.arange(10.0).reshape(2, 5), np.array([7.0])):  # batches of different widths
        k_metric.update_state(v, sample_weight=sample_weight if v is values else None)
        f_metric.update_state(v, sample_weight=sample_weight if v is values else None)
        np.testing.assert_allclose(float(f_metric.result()), float(k_metric.result()), rtol=1e-6)


def test_confusion_metrics_with_per_element_sample_weight_match_keras():
    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 2, (12, 4)).astype("float32")
    y_pred = rng.uniform(0, 1, (12, 4)).astype("float32")
    sw = rng.uniform(0, 1, (12, 4)).astype("float32")
    for name, kwargs in [("AUC", {}), ("AUC", {"multi_label": True}), ("Precision", {"thresholds": [0.3, 0.7]}),
                         ("Recall", {}), ("TruePositives", {}), ("PrecisionAtRecall", {"recall": 0.5}),
                         ("AUC", {"thresholds": [0.3, 0.5]})]:
        k = getattr(keras.metrics, name)(**kwargs)
        f = getattr(fastnn.metrics, name)(**kwargs)
        k.update_state(y_true, y_pred, sample_weight=sw)
        f.update_state(y_true, y_pred, sample_weight=sw)
        np.testing.assert_allclose(np.asarray(f.result()), np.asarray(k.result()), rtol=2e-5, err_msg=name)


FUNCTIONS = [
    ("binary_accuracy", "multilabel", {}), ("binary_accuracy", "binary", {"threshold": 0.3}),
    ("categorical_accuracy", "categorical", {}), ("sparse_categorical_accuracy", "sparse", {}),
    ("top_k_categorical_accuracy", "categorical", {"k": 2}), ("sparse_top_k_categorical_accuracy", "sparse", {}),
    ("sparse_top_k_categorical_accuracy", "sparse", {"k": 1}),
    ("pearson_correlation", "regression", {}), ("concordance_correlation", "regression", {}),
    ("mean_squared_error", "regression", {}), ("mean_absolute_error", "regression", {}),
    ("mean_absolute_percentage_error", "positive", {}), ("mean_squared_logarithmic_error", "positive", {}),
    ("binary_crossentropy", "binary", {}), ("categorical_crossentropy", "categorical", {}),
    ("sparse_categorical_crossentropy", "sparse", {}), ("hinge", "hinge", {}), ("squared_hinge", "hinge", {}),
    ("kl_divergence", "categorical", {}), ("log_cosh", "regression", {}), ("poisson", "positive", {}),
    ("huber", "regression", {}), ("categorical_hinge", "categorical", {}),
]


@pytest.mark.parametrize("fn,kind,kwargs", FUNCTIONS, ids=[f[0] + str(i) for i, f in enumerate(FUNCTIONS)])
def test_metric_functions_match_keras(fn, kind, kwargs):
    y_true, y_pred = _data(kind, 11, np.random.default_rng(5))
    expected = np.asarray(getattr(keras.metrics, fn)(y_true, y_pred, **kwargs))
    got = getattr(fastnn.metrics, fn)(y_true, y_pred, **kwargs)
    got = np.asarray(got.numpy() if hasattr(got, "numpy") else got)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_every_keras_metric_name_is_in_fastnn():
    import inspect

    names = [n for n in dir(keras.metrics) if not n.startswith("_")]
    missing = [n for n in names if not hasattr(fastnn.metrics, n)]
    # The focal crossentropies come from fastnn.losses (issue 9's losses work).
    missing = [n for n in missing if n not in ("binary_focal_crossentropy", "categorical_focal_crossentropy")
               or hasattr(fastnn.losses, n)]
    assert not missing
    assert all(inspect.isclass(getattr(fastnn.metrics, n)) == inspect.isclass(getattr(keras.metrics, n))
               for n in names if hasattr(fastnn.metrics, n))


def test_string_identifiers_resolve_as_keras():
    from keras.src.metrics import ALL_OBJECTS_DICT

    for identifier, cls in ALL_OBJECTS_DICT.items():
        if cls.__name__ in ("Metric", "MeanMetricWrapper"):
            continue
        try:
            k = keras.metrics.get(identifier)
        except TypeError:  # classes with required arguments (IoU, SensitivityAtSpecificity, ...)
            with pytest.raises(TypeError):
                fastnn.metrics.get(identifier)
            continue
        f = fastnn.metrics.get(identifier)
        assert type(f).__name__ == type(k).__name__, identifier
        assert f.name.split("_")[0] == k.name.split("_")[0]


def test_automatic_names_match_keras():
    keras.utils.clear_session()
    fastnn.utils.clear_session()
    for build in (lambda lib: [lib.metrics.Recall(), lib.metrics.Recall(thresholds=0.7), lib.metrics.AUC(),
                               lib.metrics.AUC(curve="PR"), lib.metrics.Precision(name="p"),
                               lib.metrics.TruePositives(), lib.metrics.MeanIoU(3), lib.metrics.BinaryIoU(),
                               lib.metrics.F1Score(), lib.metrics.Accuracy(), lib.metrics.Accuracy()],):
        assert [m.name for m in build(fastnn)] == [m.name for m in build(keras)]
    keras.utils.clear_session()
    fastnn.utils.clear_session()
    assert fastnn.metrics.Recall().name == keras.metrics.Recall().name == "recall"


def test_issue_9_pr_auc_interpolation_numbers():
    """The issue's example: Keras's default PR summation is interpolation, not trapezoids."""
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 2, (200, 1)).astype("float32")
    y_pred = rng.uniform(0, 1, (200, 1)).astype("float32")
    for kwargs in ({"curve": "PR"}, {"curve": "PR", "summation_method": "minoring"}):
        k, f = keras.metrics.AUC(**kwargs), fastnn.metrics.AUC(**kwargs)
        k.update_state(y_true, y_pred)
        f.update_state(y_true, y_pred)
        assert float(f.result()) == pytest.approx(float(k.result()), rel=1e-6, abs=1e-7)


WEIGHT_SHAPE_CASES = [c for c in CASES if "IoU" not in c[0] and c[0] not in ("FBetaScore", "F1Score")
                      and not (c[0] == "CosineSimilarity" and c[1])]


@pytest.mark.parametrize("weight_form", ["column", "scalar"])
@pytest.mark.parametrize("name,kwargs,kind", WEIGHT_SHAPE_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(WEIGHT_SHAPE_CASES)])
def test_metric_matches_keras_with_column_and_scalar_weights(name, kwargs, kind, weight_form):
    rng = np.random.default_rng(11)
    k_metric = getattr(keras.metrics, name)(**kwargs)
    f_metric = getattr(fastnn.metrics, name)(**kwargs)
    for n in BATCHES:
        y_true, y_pred = _data(kind, n, rng)
        sw = rng.uniform(0, 2, (n, 1)).astype("float32") if weight_form == "column" else np.float32(rng.uniform(0, 2))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                k_metric.update_state(y_true, y_pred, sample_weight=sw)
            except Exception as e:  # a weight shape Keras rejects must be rejected by fastnn too
                with pytest.raises(Exception):
                    f_metric.update_state(y_true, y_pred, sample_weight=sw)
                pytest.skip(f"Keras rejects it too: {type(e).__name__}")
            f_metric.update_state(y_true, y_pred, sample_weight=sw)
        np.testing.assert_allclose(np.asarray(f_metric.result()), np.asarray(k_metric.result()), rtol=2e-5,
                                   atol=2e-6, err_msg=f"{name}{kwargs}")


SEQUENCE_CASES = [("MeanSquaredError", {}), ("MeanAbsoluteError", {}), ("RootMeanSquaredError", {}),
                  ("CategoricalAccuracy", {}), ("BinaryAccuracy", {}), ("CategoricalCrossentropy", {}),
                  ("AUC", {}), ("Precision", {}), ("Recall", {"thresholds": [0.3, 0.6]}), ("TruePositives", {}),
                  ("CosineSimilarity", {}), ("KLDivergence", {}), ("TopKCategoricalAccuracy", {"k": 2})]


@pytest.mark.parametrize("weighted", [None, "per_sample", "per_step"])
@pytest.mark.parametrize("name,kwargs", SEQUENCE_CASES)
def test_sequence_outputs_match_keras(name, kwargs, weighted):
    """(batch, steps, classes) outputs, weighted per sample or per time step (Keras's temporal weights)."""
    rng = np.random.default_rng(4)
    k_metric = getattr(keras.metrics, name)(**kwargs)
    f_metric = getattr(fastnn.metrics, name)(**kwargs)
    for n in (3, 5):
        scores = rng.uniform(0, 1, (n, 4, 3)).astype("float32")
        y_pred = scores / scores.sum(-1, keepdims=True)
        y_true = np.eye(3, dtype="float32")[rng.integers(0, 3, (n, 4))]
        sw = {None: None, "per_sample": rng.uniform(0, 2, n).astype("float32"),
              "per_step": rng.uniform(0, 2, (n, 4)).astype("float32")}[weighted]
        try:
            k_metric.update_state(y_true, y_pred, sample_weight=sw)
        except Exception:  # the confusion metrics cannot broadcast (n,) weights to (n, steps, classes) in Keras
            with pytest.raises(ValueError, match="sample_weight of shape"):
                f_metric.update_state(y_true, y_pred, sample_weight=sw)
            return
        f_metric.update_state(y_true, y_pred, sample_weight=sw)
        np.testing.assert_allclose(np.asarray(f_metric.result()), np.asarray(k_metric.result()), rtol=2e-5,
                                   atol=2e-6, err_msg=name)


@pytest.mark.parametrize("name,kwargs,kind", [("AUC", {}, "binary"), ("MeanSquaredError", {}, "regression"),
                                              ("Precision", {"thresholds": [0.2, 0.5]}, "binary"),
                                              ("R2Score", {}, "regression"), ("F1Score", {}, "multilabel")])
def test_float64_metrics_match_keras(name, kwargs, kind):
    rng = np.random.default_rng(8)
    k_metric = getattr(keras.metrics, name)(dtype="float64", **kwargs)
    f_metric = getattr(fastnn.metrics, name)(dtype="float64", **kwargs)
    for n in BATCHES:
        y_true, y_pred = _data(kind, n, rng)
        y_pred = y_pred.astype("float64")
        k_metric.update_state(y_true, y_pred)
        f_metric.update_state(y_true, y_pred)
    expected = np.asarray(k_metric.result())
    got = np.asarray(f_metric.result())
    assert got.dtype == expected.dtype  # float64 for the means and F-scores, float32 (Keras's floatx state) else
    np.testing.assert_allclose(got, expected, rtol=1e-9 if got.dtype == np.float64 else 2e-6)


def _binary_metrics(lib):
    m = lib.metrics
    return [m.AUC(name="roc_auc"), m.AUC(curve="PR", name="pr_auc"), m.AUC(num_thresholds=17, name="auc17"),
            m.Precision(name="precision"), m.Recall(thresholds=0.3, name="recall"), m.TruePositives(name="tp"),
            m.FalseNegatives(name="fn"), m.BinaryAccuracy(name="binary_accuracy"),
            m.PrecisionAtRecall(0.6, name="p_at_r"), m.SensitivityAtSpecificity(0.4, name="s_at_s"),
            m.F1Score(threshold=0.5, average="micro", name="f1"), m.BinaryIoU(name="iou", dtype="float32"),
            m.BinaryCrossentropy(name="bce"), m.MeanSquaredError(name="mse"), "mae", "binary_crossentropy", "auc"]


def _categorical_metrics(lib):
    m = lib.metrics
    return [m.CategoricalAccuracy(name="ca"), m.TopKCategoricalAccuracy(k=2, name="top2"),
            m.AUC(multi_label=True, name="auc_ml"), m.Precision(top_k=1, name="p_top1"),
            m.Recall(class_id=1, name="r_c1"), m.F1Score(average="macro", name="f1"),
            m.FBetaScore(beta=2.0, average="weighted", name="f2"), m.OneHotMeanIoU(3, name="iou", dtype="float32"),
            m.CategoricalHinge(name="chinge"), m.KLDivergence(name="kld"), m.CosineSimilarity(name="cos"),
            m.R2Score(name="r2"), m.PearsonCorrelation(name="pearson"), m.ConcordanceCorrelation(name="ccc"),
            "accuracy", "categorical_crossentropy", "cosine_similarity"]


@pytest.mark.parametrize("task", ["binary", "categorical"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_compiled_metrics_in_fit_and_evaluate_match_keras(task, weighted):
    """Every metric through compile / fit / evaluate, batches of 8 with a partial last one, learning rate 0 (so
    both libraries see the same predictions in every batch)."""
    rng = np.random.default_rng(21)
    x = rng.normal(size=(37, 6)).astype("float32")
    if task == "binary":
        units, activation, loss, y = 1, "sigmoid", "binary_crossentropy", rng.integers(0, 2, (37, 1)).astype("float32")
        make = _binary_metrics
    else:
        units, activation, loss = 3, "softmax", "categorical_crossentropy"
        y = np.eye(3, dtype="float32")[rng.integers(0, 3, 37)]
        make = _categorical_metrics
    sw = rng.uniform(0.2, 2.0, 37).astype("float32") if weighted else None
    results = {}
    for lib in (keras, fastnn):
        lib.utils.clear_session()
        model = lib.Sequential([lib.Input((6,)), lib.layers.Dense(units, activation=activation)])
        model.compile(optimizer=lib.optimizers.SGD(learning_rate=0.0), loss=loss, metrics=make(lib))
        if lib is fastnn:
            model.set_weights(results["weights"])
        else:
            results["weights"] = model.get_weights()
        history = model.fit(x, y, sample_weight=sw, batch_size=8, epochs=2, shuffle=False, verbose=0)
        evaluated = model.evaluate(x, y, sample_weight=sw, batch_size=8, verbose=0, return_dict=True)
        results[lib.__name__] = ({k: np.asarray(v[-1]) for k, v in history.history.items()},
                                 {k: np.asarray(v) for k, v in evaluated.items()})
    (k_hist, k_eval), (f_hist, f_eval) = results["keras"], results["fastnn"]
    assert sorted(f_hist) == sorted(k_hist) and sorted(f_eval) == sorted(k_eval)
    for key in k_hist:
        np.testing.assert_allclose(f_hist[key], k_hist[key], rtol=5e-5, atol=5e-6, err_msg=f"fit {key}")
        np.testing.assert_allclose(f_eval[key], k_eval[key], rtol=5e-5, atol=5e-6, err_msg=f"evaluate {key}")
