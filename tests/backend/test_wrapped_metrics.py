"""Every metric class and per-sample metric function computes through ``fastnn.backend``: run on the wrapped test
backend (whose buffers refuse NumPy, operators and methods), each gives results EQUAL to the CPU run's, with and
without sample weights, over two batches (one given as NumPy arrays, one as fastnn Tensors), after reset_state and
after updating again; the metric state lives in backend buffers (Variables). Any metric code that reaches around the
backend raises ``BackendLeak`` here."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import fastnn
from fastnn import metrics
from fastnn.testing.wrapped_backend import WrappedBuffer, use_wrapped_backend


def _with_exact_values(p, rng):
    """Predictions exactly on 0, 1 and common thresholds, where ">" and bucketing matter."""
    flat = p.reshape(-1)
    idx = rng.choice(flat.size, size=min(8, flat.size), replace=False)
    flat[idx] = np.array([0.0, 1.0, 0.5, 0.25, 0.75, 0.3, 0.0, 1.0], dtype=p.dtype)[: idx.size]
    return p


def _data(kind, n, rng):
    """(y_true, y_pred) of one batch of ``kind`` (as tests/e2e/test_keras_metrics.py)."""
    if kind == "binary":
        return (rng.integers(0, 2, (n, 1)).astype("float32"),
                _with_exact_values(rng.uniform(0, 1, (n, 1)).astype("float32"), rng))
    if kind == "binary_nan":
        p = rng.uniform(0, 1, (n,)).astype("float32")
        p[1] = np.nan
        return rng.integers(0, 2, (n,)).astype("float32"), p
    if kind == "logits":
        return rng.integers(0, 2, (n, 1)).astype("float32"), rng.normal(0, 2, (n, 1)).astype("float32")
    if kind == "multilabel":
        return (rng.integers(0, 2, (n, 4)).astype("float32"),
                _with_exact_values(rng.uniform(0, 1, (n, 4)).astype("float32"), rng))
    if kind in ("categorical", "sparse", "sparse_column"):
        scores = rng.uniform(0, 1, (n, 5)).astype("float32")
        probs = scores / scores.sum(-1, keepdims=True)
        labels = rng.integers(0, 5, n)
        if kind == "sparse":
            return labels, probs
        if kind == "sparse_column":
            return labels[:, None], probs
        return np.eye(5, dtype="float32")[labels], probs
    if kind == "sorted_ids":  # y_pred holds class ids sorted by score, best first
        return rng.integers(0, 5, n), np.argsort(-rng.uniform(0, 1, (n, 5)), axis=-1).astype("float32")
    if kind == "labels":  # integer labels and predictions, some out of range
        return rng.integers(-1, 5, (n,)), rng.integers(0, 6, (n,))
    if kind == "regression":
        return rng.normal(0, 1, (n, 3)).astype("float32"), rng.normal(0, 1, (n, 3)).astype("float32")
    if kind == "regression64":
        return rng.normal(0, 1, (n, 3)), rng.normal(0, 1, (n, 3))
    if kind == "positive":
        return rng.uniform(0.1, 2, (n, 3)).astype("float32"), rng.uniform(0.1, 2, (n, 3)).astype("float32")
    if kind == "hinge":
        return rng.choice([-1.0, 1.0], (n, 3)).astype("float32"), rng.normal(0, 1, (n, 3)).astype("float32")
    raise AssertionError(kind)


# (class name, constructor arguments, data kind): every metric class of fastnn.metrics, several argument sets
CASES = [
    ("AUC", {}, "binary"), ("AUC", {"num_thresholds": 13}, "binary"), ("AUC", {"curve": "PR"}, "binary"),
    ("AUC", {"curve": "PR", "summation_method": "minoring"}, "binary"),
    ("AUC", {"summation_method": "majoring"}, "binary"), ("AUC", {"curve": "PRGAIN"}, "binary"),
    ("AUC", {"thresholds": [0.1, 0.35, 0.5, 0.8]}, "binary"), ("AUC", {"thresholds": [0.75, 0.25, 0.5]}, "binary"),
    ("AUC", {"from_logits": True}, "logits"), ("AUC", {}, "multilabel"), ("AUC", {"multi_label": True}, "multilabel"),
    ("AUC", {"multi_label": True, "num_labels": 4, "label_weights": [1.0, 2.0, 0.5, 0.0]}, "multilabel"),
    ("AUC", {"label_weights": [1.0, 2.0, 0.5, 1.5]}, "multilabel"),
    ("AUC", {"multi_label": True, "curve": "PR"}, "multilabel"),
    ("AUC", {"multi_label": True, "thresholds": [0.3, 0.6]}, "multilabel"),
    ("Precision", {}, "binary"), ("Precision", {"thresholds": [0.3, 0.5, 0.7]}, "binary"),
    ("Precision", {"thresholds": [0.0, 0.5, 1.0]}, "binary"), ("Precision", {"top_k": 2}, "multilabel"),
    ("Precision", {"class_id": 2}, "multilabel"), ("Precision", {"top_k": 1, "class_id": 0}, "multilabel"),
    ("Recall", {}, "binary_nan"), ("Recall", {"thresholds": [0.2, 0.7]}, "binary_nan"),
    ("Recall", {"top_k": 2, "thresholds": [0.35, 0.5]}, "multilabel"),
    ("TruePositives", {}, "binary"), ("FalsePositives", {"thresholds": [0.0, 0.5, 1.0]}, "binary"),
    ("TrueNegatives", {"thresholds": [0.3, 0.55]}, "multilabel"), ("FalseNegatives", {}, "binary"),
    ("SensitivityAtSpecificity", {"specificity": 0.7}, "binary"),
    ("SensitivityAtSpecificity", {"specificity": 0.5, "class_id": 1}, "multilabel"),
    ("SpecificityAtSensitivity", {"sensitivity": 0.7}, "binary"),
    ("PrecisionAtRecall", {"recall": 0.8}, "binary"), ("RecallAtPrecision", {"precision": 0.75}, "binary"),
    ("RecallAtPrecision", {"precision": 0.5, "num_thresholds": 1}, "binary"),
    ("F1Score", {}, "multilabel"), ("F1Score", {"average": "micro"}, "multilabel"),
    ("F1Score", {"average": "macro"}, "multilabel"), ("F1Score", {"average": "weighted"}, "multilabel"),
    ("F1Score", {"threshold": 0.5}, "multilabel"),
    ("FBetaScore", {"beta": 2.0, "average": "macro", "threshold": 0.5}, "multilabel"),
    ("R2Score", {}, "regression"), ("R2Score", {"class_aggregation": None}, "regression"),
    ("R2Score", {"class_aggregation": "variance_weighted_average"}, "regression"),
    ("R2Score", {"num_regressors": 1}, "regression"),
    ("IoU", {"num_classes": 5, "target_class_ids": [0, 2]}, "labels"), ("MeanIoU", {"num_classes": 5}, "labels"),
    ("MeanIoU", {"num_classes": 5, "ignore_class": 0}, "labels"),
    ("MeanIoU", {"num_classes": 5, "dtype": "float32"}, "labels"),
    ("MeanIoU", {"num_classes": 5, "sparse_y_pred": False}, "sparse"), ("BinaryIoU", {"threshold": 0.3}, "binary"),
    ("OneHotIoU", {"num_classes": 5, "target_class_ids": [0, 2]}, "categorical"),
    ("OneHotMeanIoU", {"num_classes": 5}, "categorical"),
    ("Accuracy", {}, "labels"), ("BinaryAccuracy", {}, "multilabel"), ("BinaryAccuracy", {"threshold": 0.3}, "binary"),
    ("CategoricalAccuracy", {}, "categorical"), ("SparseCategoricalAccuracy", {}, "sparse"),
    ("SparseCategoricalAccuracy", {}, "sparse_column"), ("TopKCategoricalAccuracy", {"k": 2}, "categorical"),
    ("SparseTopKCategoricalAccuracy", {}, "sparse"), ("SparseTopKCategoricalAccuracy", {"k": 1}, "sparse"),
    ("SparseTopKCategoricalAccuracy", {"k": 2, "from_sorted_ids": True}, "sorted_ids"),
    ("MeanSquaredError", {}, "regression"), ("RootMeanSquaredError", {}, "regression"),
    ("MeanAbsoluteError", {}, "regression"), ("MeanAbsolutePercentageError", {}, "positive"),
    ("MeanSquaredLogarithmicError", {}, "positive"), ("CosineSimilarity", {}, "regression"),
    ("CosineSimilarity", {"axis": 0}, "regression64"), ("LogCoshError", {}, "regression"),
    ("PearsonCorrelation", {}, "regression"), ("ConcordanceCorrelation", {}, "regression"),
    ("BinaryCrossentropy", {}, "binary"), ("BinaryCrossentropy", {"from_logits": True, "label_smoothing": 0.1}, "logits"),
    ("CategoricalCrossentropy", {"label_smoothing": 0.1}, "categorical"),
    ("SparseCategoricalCrossentropy", {}, "sparse"), ("SparseCategoricalCrossentropy", {"ignore_class": 1}, "sparse"),
    ("KLDivergence", {}, "categorical"), ("Poisson", {}, "positive"), ("Hinge", {}, "hinge"),
    ("SquaredHinge", {}, "hinge"), ("CategoricalHinge", {}, "categorical"),
]


def _weights(name, kwargs, n, rng):
    if "IoU" in name and kwargs.get("dtype") != "float32":
        return rng.integers(0, 3, n)  # the int64 default dtype: integer weights
    return rng.uniform(0, 2, n).astype("float32")


def _run(name, kwargs, kind, weighted):
    """The results of a metric over two batches, after reset_state and after one more batch, and the buffers of its
    state variables; on whatever backend is active."""
    fastnn.utils.clear_session()
    rng = np.random.default_rng(0)
    metric = getattr(metrics, name)(**kwargs)
    batches = []
    for n in (7, 12, 5):
        y_true, y_pred = _data(kind, n, rng)
        batches.append((y_true, y_pred, _weights(name, kwargs, n, rng) if weighted else None))
    results = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # IoU's float-weight warning, R2Score's nan after reset
        for i, (y_true, y_pred, sw) in enumerate(batches):
            if i == 1:  # the second batch as fastnn Tensors
                y_true, y_pred = fastnn.Tensor(y_true), fastnn.Tensor(y_pred)
                sw = None if sw is None else fastnn.Tensor(sw)
            if i == 2:
                metric.reset_state()
                results.append(np.asarray(metric.result()))
            metric.update_state(y_true, y_pred, sample_weight=sw)
            results.append(np.asarray(metric.result()))
    return metric, results


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("name,kwargs,kind", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_metric_on_the_wrapped_backend_equals_the_cpu_run(name, kwargs, kind, weighted):
    if weighted and name == "CosineSimilarity" and kwargs.get("axis") == 0:
        pytest.skip("axis=0 reduces over the batch: per-sample weights do not apply")
    _, expected = _run(name, kwargs, kind, weighted)
    with use_wrapped_backend():
        metric, got = _run(name, kwargs, kind, weighted)
        assert metric.variables and all(isinstance(v._data, WrappedBuffer) for v in metric.variables)
        assert isinstance(metric.result()._data, WrappedBuffer)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.dtype == e.dtype and g.shape == e.shape
        np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("name", ["Mean", "Sum"])
@pytest.mark.parametrize("values,sample_weight", [
    (np.arange(6.0).reshape(2, 3), None), (np.ones((2, 3)), np.array([[1, 0, 1], [1, 1, 1]], "float32")),
    (np.arange(6.0).reshape(2, 3), np.array([2.0, 0.5])), (np.array([1.0, 2.0, 3.0]), 2.0),
    (np.array([[1.0], [2.0], [5.0]]), np.array([1.0, 0.0, 3.0])), (np.array(4.0), None), ([0.5, 1.5], None),
], ids=lambda v: "x".join(map(str, np.shape(v))) if v is not None else "none")
def test_mean_and_sum_on_the_wrapped_backend(name, values, sample_weight):
    def run():
        metric = getattr(metrics, name)()
        out = [np.asarray(metric.result())]
        for v, sw in ((values, sample_weight), (np.arange(10.0).reshape(2, 5), None), (fastnn.Tensor([7.0]), None)):
            metric.update_state(v, sample_weight=sw)
            out.append(np.asarray(metric.result()))
        metric.reset_state()
        return out + [np.asarray(metric.result())]

    expected = run()
    with use_wrapped_backend():
        got = run()
    for g, e in zip(got, expected):
        assert g.dtype == e.dtype
        np.testing.assert_array_equal(g, e)


FUNCTIONS = [
    ("accuracy", "labels", {}), ("binary_accuracy", "multilabel", {}), ("binary_accuracy", "binary", {"threshold": 0.3}),
    ("categorical_accuracy", "categorical", {}), ("sparse_categorical_accuracy", "sparse", {}),
    ("sparse_categorical_accuracy", "sparse_column", {}), ("top_k_categorical_accuracy", "categorical", {"k": 2}),
    ("sparse_top_k_categorical_accuracy", "sparse", {}), ("sparse_top_k_categorical_accuracy", "sparse", {"k": 1}),
    ("sparse_top_k_categorical_accuracy", "sorted_ids", {"k": 2, "from_sorted_ids": True}),
    ("pearson_correlation", "regression", {}), ("concordance_correlation", "regression", {}),
    ("categorical_hinge", "categorical", {}),
]


@pytest.mark.parametrize("fn,kind,kwargs", FUNCTIONS, ids=[f[0] + str(i) for i, f in enumerate(FUNCTIONS)])
def test_metric_function_on_the_wrapped_backend(fn, kind, kwargs):
    y_true, y_pred = _data(kind, 11, np.random.default_rng(5))
    expected = getattr(metrics, fn)(y_true, y_pred, **kwargs).numpy()
    with use_wrapped_backend():
        out = getattr(metrics, fn)(y_true, y_pred, **kwargs)
        assert isinstance(out._data, WrappedBuffer)
        got = out.numpy()
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


def test_cosine_similarity_function_and_mean_metric_wrapper_on_the_wrapped_backend():
    from fastnn.metrics.functions import cosine_similarity

    y_true, y_pred = _data("regression", 9, np.random.default_rng(2))

    def run():
        wrapper = metrics.MeanMetricWrapper(metrics.binary_accuracy, name="acc", threshold=0.3)
        wrapper.update_state(y_true > 0, y_pred, sample_weight=np.arange(9.0))
        return cosine_similarity(y_true, y_pred).numpy(), np.asarray(wrapper.result())

    expected = run()
    with use_wrapped_backend():
        got = run()
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)


def test_a_metric_error_check_runs_on_the_wrapped_backend():
    with use_wrapped_backend():
        with pytest.raises(ValueError, match="labels must be in"):
            metrics.sparse_top_k_categorical_accuracy([0, 7], np.ones((2, 3), "float32"))
        with pytest.raises(ValueError, match="top_k=4 is larger"):
            metrics.Precision(top_k=4).update_state(np.ones((2, 3)), np.ones((2, 3)))
        with pytest.raises(ValueError, match="sample_weight of shape"):
            metrics.AUC().update_state(np.ones((4, 3)), np.ones((4, 3)), sample_weight=np.ones(3))
        with pytest.raises(ValueError, match="label_weights must be non-negative"):
            metrics.AUC(label_weights=[1.0, -1.0])


def _compiled_fit():
    fastnn.utils.clear_session()
    fastnn.utils.set_random_seed(3)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 6)).astype("float32")
    y = (x[:, :1] + 0.3 * x[:, 1:2] > 0).astype("float32")
    model = fastnn.models.Sequential([fastnn.layers.Input((6,)), fastnn.layers.Dense(4, activation="relu"),
                                      fastnn.layers.Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", optimizer="sgd",
                  metrics=["accuracy", metrics.AUC(), metrics.Precision(), metrics.F1Score(threshold=0.5)])
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    return history.history, model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)


def test_fit_and_evaluate_with_compiled_metrics_on_the_wrapped_backend():
    expected = _compiled_fit()
    with use_wrapped_backend():
        got = _compiled_fit()
    np.testing.assert_equal(got, expected)


def test_metric_state_lives_in_non_trainable_variables_with_value_semantics():
    m = metrics.Mean()
    assert [v.name for v in m.variables] == ["total", "count"] and not any(v.trainable for v in m.variables)
    m.update_state([1.0, 3.0])
    taken = m.total  # the state's buffer (a NumPy array on the CPU)
    m.update_state([5.0])
    assert float(taken) == 4.0 and float(m.total) == 9.0 and float(m.result()) == 3.0
    total = m.variables[0]
    m.reset_state()
    assert m.variables[0] is total and float(m.total) == 0.0 and float(taken) == 4.0
    assert not hasattr(metrics.Precision(), "fn")  # Precision keeps tp and fp only
