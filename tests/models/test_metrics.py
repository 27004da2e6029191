"""fastnn.metrics against numbers computed with Keras 3.15 (TensorFlow backend) on the small data sets below, and
the behaviour Keras defines: automatic names, string identifiers, per-sample means, configs, argument errors. The
expected values are literals, so these tests run without Keras; tests/e2e/test_keras_metrics.py cross-checks the
same metrics live on random data.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import metrics

# (y_true, y_pred, sample_weight) of each data set
DATA = {
    "b": (np.array([1, 0, 1, 1, 0, 0, 1, 0], "float32"), np.array([0.9, 0.6, 0.4, 0.8, 0.1, 0.3, 0.5, 0.0], "float32"),
          np.array([1.0, 0.5, 2.0, 1.0, 1.0, 0.0, 1.5, 1.0], "float32")),
    "l": (np.array([[1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 1]], "float32"),
          np.array([[0.8, 0.3, 0.35], [0.2, 0.7, 0.4], [0.55, 0.45, 0.6], [0.6, 0.2, 0.9]], "float32"),
          np.array([1.0, 2.0, 0.5, 1.0], "float32")),
    "r": (np.array([[1.0, 2.0, 0.0], [2.0, 0.5, 1.0], [3.0, 1.5, -1.0], [4.0, 3.0, 0.5]], "float32"),
          np.array([[1.2, 1.8, 0.3], [1.9, 0.9, 0.5], [3.3, 1.0, -0.2], [3.6, 2.5, 1.0]], "float32"),
          np.array([1.0, 2.0, 0.5, 1.0], "float32")),
    "i": (np.array([0, 1, 2, 2, 1, 0, 3]), np.array([0, 2, 2, 1, 1, 0, 0]), np.array([1, 2, 1, 1, 0, 3, 1])),
    "o": (np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0], [1, 0, 0]], "float32"),
          np.array([[0.2, 0.3, 0.5], [0.1, 0.2, 0.7], [0.5, 0.3, 0.1], [0.1, 0.4, 0.5]], "float32"),
          np.array([1.0, 2.0, 0.5, 1.0], "float32")),
}
DATA["g"] = (DATA["b"][0], (DATA["b"][1] - 0.5) * 6, DATA["b"][2])  # logits

# (class, arguments, data set, Keras's result unweighted, Keras's result with the data set's sample weights)
CASES = [
    ('AUC', {}, 'b', 0.875, 0.8727273),
    ('AUC', {'curve': 'PR'}, 'b', 0.8722936, 0.9204119),
    ('AUC', {'curve': 'PR', 'summation_method': 'minoring'}, 'b', 0.6041667, 0.7181818),
    ('AUC', {'curve': 'PR', 'summation_method': 'majoring'}, 'b', 0.8875, 0.935606),
    ('AUC', {'curve': 'PRGAIN'}, 'b', 0.625, 0.7428571),
    ('AUC', {'num_thresholds': 5}, 'b', 0.8125, 0.8727273),
    ('AUC', {'thresholds': [0.35, 0.7]}, 'b', 0.9375, 0.9363636),
    ('AUC', {'from_logits': True}, 'g', 0.875, 0.8727273),
    ('AUC', {}, 'l', 0.7714286, 0.8636363),
    ('AUC', {'multi_label': True}, 'l', 0.6944444, 0.7129629),
    ('AUC', {'multi_label': True, 'label_weights': [1.0, 2.0, 0.5]}, 'l', 0.8333334, 0.8611111),
    ('AUC', {'label_weights': [1.0, 2.0, 0.5]}, 'l', 0.8769231, 0.9391481),
    ('AUC', {'multi_label': True, 'curve': 'PR'}, 'l', 0.8554061, 0.904637),
    ('AUC', {'multi_label': True, 'summation_method': 'minoring'}, 'l', 0.6944444, 0.7129629),
    ('Precision', {}, 'b', 0.6666667, 0.8),
    ('Precision', {'thresholds': [0.3, 0.5, 0.7]}, 'b', [0.8, 0.6666667, 1.0], [0.9166667, 0.8, 1.0]),
    ('Recall', {'thresholds': 0.45}, 'b', 0.75, 0.6363636),
    ('Precision', {'top_k': 1}, 'l', 0.75, 0.8888889),
    ('Recall', {'top_k': 2}, 'l', 0.8571429, 0.9375),
    ('Precision', {'class_id': 2}, 'l', 0.5, 0.6666667),
    ('Recall', {'top_k': 2, 'thresholds': [0.35, 0.5]}, 'l', [0.7142857, 0.5714286], [0.8125, 0.5625]),
    ('Precision', {'top_k': 1, 'class_id': 0}, 'l', 1.0, 1.0),
    ('TruePositives', {}, 'b', 2.0, 2.0),
    ('FalsePositives', {'thresholds': [0.0, 0.5, 1.0]}, 'b', [3.0, 1.0, 0.0], [1.5, 0.5, 0.0]),
    ('TrueNegatives', {'thresholds': [0.3, 0.55]}, 'l', [3.0, 3.0], [4.0, 4.0]),
    ('FalseNegatives', {}, 'b', 2.0, 3.5),
    ('SensitivityAtSpecificity', {'specificity': 0.7}, 'b', 1.0, 1.0),
    ('SpecificityAtSensitivity', {'sensitivity': 0.7}, 'b', 0.75, 0.8),
    ('PrecisionAtRecall', {'recall': 0.8}, 'b', 0.8, 0.9166667),
    ('RecallAtPrecision', {'precision': 0.75}, 'b', 1.0, 1.0),
    ('RecallAtPrecision', {'precision': 0.5, 'num_thresholds': 1}, 'b', 0.5, 0.3636364),
    ('SensitivityAtSpecificity', {'specificity': 0.5, 'class_id': 1}, 'l', 1.0, 1.0),
    ('F1Score', {}, 'l', [0.6666666, 0.6666666, 0.3999999], [0.7999999, 0.8888889, 0.3636363]),
    ('F1Score', {'average': 'micro'}, 'l', 0.5454544, 0.64),
    ('F1Score', {'average': 'macro'}, 'l', 0.5777777, 0.684175),
    ('F1Score', {'average': 'weighted'}, 'l', 0.5523809, 0.6095959),
    ('F1Score', {'threshold': 0.5}, 'l', [0.8, 0.6666666, 0.3999999], [0.7499999, 0.8888889, 0.3636363]),
    ('FBetaScore', {'beta': 2.0, 'average': 'macro', 'threshold': 0.5}, 'l', 0.6072631, 0.6671335),
    ('R2Score', {}, 'r', 0.7207766, 0.7201276),
    ('R2Score', {'class_aggregation': None}, 'r', [0.94, 0.7846154, 0.4377143], [0.947, 0.8366666, 0.3767164]),
    ('R2Score', {'class_aggregation': 'variance_weighted_average'}, 'r', 0.7863473, 0.8098778),
    ('R2Score', {'num_regressors': 1}, 'r', 0.6928542, 0.6921404),
    ('PearsonCorrelation', {}, 'r', 0.9367405, 0.9088559),
    ('ConcordanceCorrelation', {}, 'r', 0.905964, 0.8818217),
    ('CosineSimilarity', {}, 'r', 0.973331, 0.9717442),
    ('IoU', {'num_classes': 4, 'target_class_ids': [0, 2]}, 'i', 0.5, 0.525),
    ('MeanIoU', {'num_classes': 4}, 'i', 0.3333333, 0.2625),
    ('MeanIoU', {'num_classes': 4, 'ignore_class': 0}, 'i', 0.1666667, 0.0625),
    ('MeanIoU', {'num_classes': 4, 'dtype': 'float32'}, 'i', 0.3333333, 0.2625),
    ('BinaryIoU', {'threshold': 0.3}, 'b', 0.5833334, 1.0),
    ('OneHotIoU', {'num_classes': 3, 'target_class_ids': [0, 2]}, 'o', 0.1666667, 0.125),
    ('OneHotMeanIoU', {'num_classes': 3}, 'o', 0.1111111, 0.125),
    ('CategoricalHinge', {}, 'o', 1.25, 1.3333334),
    ('BinaryAccuracy', {}, 'l', 0.5833334, 0.6296297),
    ('SparseTopKCategoricalAccuracy', {'k': 1, 'from_sorted_ids': True}, 'i', 0.5714286, 0.5555556),
]



@pytest.mark.filterwarnings("ignore:.*you are passing weight as `float`")  # IoU's int64 default dtype, as Keras
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("name,kwargs,data,expected,expected_weighted", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_results_equal_keras(name, kwargs, data, expected, expected_weighted, weighted):
    y_true, y_pred, sample_weight = DATA[data]
    sample_weight = sample_weight if weighted else None
    if name == "SparseTopKCategoricalAccuracy":  # from_sorted_ids: y_pred holds class ids, best first
        y_pred = np.stack([y_pred, y_pred + 1], 1)
    metric = getattr(metrics, name)(**kwargs)
    metric.update_state(y_true, y_pred, sample_weight=sample_weight)
    np.testing.assert_allclose(np.asarray(metric.result()), expected_weighted if weighted else expected,
                               rtol=1e-6, atol=2e-7)
    # Two batches accumulate to the result of one, and a metric rebuilt from its config computes the same.
    split = metrics.get({"class_name": name, "config": metric.get_config()})
    half = len(y_true) // 2
    for part in (slice(None, half), slice(half, None)):
        split.update_state(y_true[part], y_pred[part], sample_weight=None if sample_weight is None else
                           sample_weight[part])
    np.testing.assert_allclose(np.asarray(split.result()), np.asarray(metric.result()), rtol=1e-6, atol=2e-7)


# -- names ------------------------------------------------------------------------------------------------------
def test_automatic_names_are_uniquified_as_keras_and_reset_by_clear_session():
    fastnn.utils.clear_session()
    names = [m.name for m in (metrics.Recall(), metrics.Recall(thresholds=0.7), metrics.AUC(), metrics.AUC(curve="PR"),
                              metrics.Precision(name="p"), metrics.TruePositives(), metrics.MeanIoU(3),
                              metrics.BinaryIoU(), metrics.F1Score(), metrics.Accuracy(), metrics.Accuracy())]
    # Keras 3.15 gives these names (metrics with a fixed default name, such as Accuracy, are not uniquified)
    assert names == ["recall", "recall_1", "auc", "auc_1", "p", "true_positives", "mean_io_u", "binary_io_u",
                     "f1_score", "accuracy", "accuracy"]
    fastnn.utils.clear_session()
    assert metrics.Recall().name == "recall"


def test_automatic_names_of_subclasses_and_wrappers():
    fastnn.utils.clear_session()

    class MyAUC(metrics.AUC):
        pass

    assert MyAUC().name == "my_auc"
    assert metrics.MeanMetricWrapper(metrics.binary_accuracy).name == "mean_metric_wrapper"
    assert metrics.MeanMetricWrapper(metrics.binary_accuracy, name="acc").name == "acc"


def test_metric_names_share_the_layer_name_counter_as_in_keras():
    fastnn.utils.clear_session()
    assert fastnn.layers.Dense(2).name == "dense"
    fastnn.utils.clear_session()
    metrics.AUC()
    assert metrics.AUC().name == "auc_1" and fastnn.layers.Dense(2).name == "dense"


# -- string identifiers -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("identifier,cls", [
    ("cosine_similarity", "CosineSimilarity"), ("CosineSimilarity", "CosineSimilarity"), ("mse", "MeanSquaredError"),
    ("MSE", "MeanSquaredError"), ("mae", "MeanAbsoluteError"), ("mape", "MeanAbsolutePercentageError"),
    ("msle", "MeanSquaredLogarithmicError"), ("bce", "BinaryCrossentropy"), ("BCE", "BinaryCrossentropy"),
    ("accuracy", "Accuracy"), ("binary_accuracy", "BinaryAccuracy"), ("auc", "AUC"), ("AUC", "AUC"),
    ("f1_score", "F1Score"), ("f_beta_score", "FBetaScore"), ("r2_score", "R2Score"),
    ("true_positives", "TruePositives"), ("false_negatives", "FalseNegatives"), ("binary_io_u", "BinaryIoU"),
    ("log_cosh_error", "LogCoshError"), ("categorical_hinge", "CategoricalHinge"),
    ("pearson_correlation", "PearsonCorrelation"), ("concordance_correlation", "ConcordanceCorrelation"),
    ("sparse_top_k_categorical_accuracy", "SparseTopKCategoricalAccuracy"), ("rmse", "RootMeanSquaredError"),
    ("root_mean_squared_error", "RootMeanSquaredError"), ("mean", "Mean"), ("sum", "Sum"),
])
def test_string_identifiers_give_keras_metric_objects(identifier, cls):
    metric = metrics.get(identifier)
    assert type(metric).__name__ == cls


def test_string_identifiers_of_metrics_that_need_arguments_or_are_abstract_raise():
    for identifier in ("io_u", "MeanIoU", "precision_at_recall", "SensitivityAtSpecificity"):
        with pytest.raises(TypeError):
            metrics.get(identifier)
    for identifier in ("metric", "MeanMetricWrapper"):
        with pytest.raises(ValueError, match="abstract"):
            metrics.get(identifier)
    with pytest.raises(ValueError, match="Could not interpret metric identifier: 'cosine'"):
        metrics.get("cosine")


def test_keras_function_forms_exist():
    assert metrics.mean_squared_error is fastnn.losses.mean_squared_error
    assert metrics.sparse_categorical_crossentropy is fastnn.losses.sparse_categorical_crossentropy
    np.testing.assert_allclose(metrics.categorical_hinge(DATA["o"][0], DATA["o"][1]), [0.8, 1.6, 1.2, 1.4],
                               rtol=1e-6)  # Keras 3.15
    # Keras 3's binary_accuracy is elementwise (no mean over the last axis)
    np.testing.assert_array_equal(metrics.binary_accuracy(DATA["l"][0], DATA["l"][1]),
                                  [[1, 1, 0], [1, 1, 0], [1, 0, 0], [0, 1, 1]])  # Keras 3.15
    np.testing.assert_allclose(metrics.pearson_correlation(DATA["r"][0], DATA["r"][1]),
                               [0.9933992, 0.8170573, 0.9483358, 0.9881694], rtol=1e-5)  # Keras 3.15


# -- means count samples ------------------------------------------------------------------------------------------
def test_mean_counts_each_sample_once_as_keras():
    m = metrics.Mean()
    m.update_state(np.arange(6.0).reshape(2, 3))  # per-sample means 1, 4
    m.update_state(np.arange(10.0).reshape(2, 5))  # per-sample means 2, 7
    assert float(m.result()) == pytest.approx(3.5)  # Keras 3.15; counting elements would give 3.75
    m = metrics.Mean()
    m.update_state([1.0, 2.0, 3.0], sample_weight=2.0)  # a scalar weight weighs the batch mean once
    m.update_state([10.0])
    assert float(m.result()) == pytest.approx(4.6666665)  # Keras 3.15
    m = metrics.Mean()
    m.update_state(np.ones((2, 3)), sample_weight=np.array([[1, 0, 1], [1, 1, 1]]))
    m.update_state([[4.0, 4.0]])
    assert float(m.result()) == pytest.approx(2.125)  # Keras 3.15


# -- arguments that used to be ignored or refused -----------------------------------------------------------------
def test_auc_multi_label_is_not_pooled():
    y, p, _ = DATA["l"]
    assert float(metrics.AUC(multi_label=True)(y, p)) == pytest.approx(0.6944444, abs=1e-6)
    assert float(metrics.AUC()(y, p)) == pytest.approx(0.7714286, abs=1e-6)


def test_auc_pr_uses_interpolation_by_default():
    y, p, _ = DATA["b"]
    interpolated = float(metrics.AUC(curve="PR")(y, p))
    assert interpolated == pytest.approx(0.8722936, abs=1e-6)  # Keras; trapezoids would give a different area
    m = metrics.AUC(curve="PR")
    m.update_state(y, p)
    recall = m.true_positives / (m.true_positives + m.false_negatives)
    precision = np.where(m.true_positives + m.false_positives > 0,
                         m.true_positives / np.maximum(m.true_positives + m.false_positives, 1e-12), 1.0)
    trapezoids = np.sum((recall[:-1] - recall[1:]) * (precision[:-1] + precision[1:]) / 2)
    assert abs(trapezoids - interpolated) > 1e-3


def test_auc_state_and_thresholds():
    m = metrics.AUC(num_thresholds=3)
    m.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9])  # Keras's docstring example
    np.testing.assert_allclose(m.true_positives, [2, 1, 0])
    np.testing.assert_allclose(m.false_positives, [2, 0, 0])
    assert float(m.result()) == 0.75
    assert m.thresholds == pytest.approx([-1e-7, 0.5, 1 + 1e-7])
    m = metrics.AUC(multi_label=True, num_labels=3)
    assert m.true_positives.shape == (200, 3)
    m.reset_state()
    assert m.true_positives.shape == (200, 3) and float(m.result()) == 0.0


def test_precision_recall_several_thresholds_top_k_class_id():
    y, p, _ = DATA["b"]
    np.testing.assert_allclose(metrics.Precision(thresholds=[0.3, 0.5, 0.7])(y, p), [0.8, 0.6666667, 1.0], rtol=1e-6)
    y, p, _ = DATA["l"]
    assert float(metrics.Precision(top_k=1)(y, p)) == pytest.approx(0.75)
    assert float(metrics.Precision(class_id=2)(y, p)) == pytest.approx(0.5)


@pytest.mark.parametrize("make,match", [
    (lambda: metrics.AUC(curve="ROCX"), "curve"),
    (lambda: metrics.AUC(summation_method="trapezoid"), "summation_method"),
    (lambda: metrics.AUC(num_thresholds=1), "num_thresholds"),
    (lambda: metrics.AUC(num_labels=3), "num_labels"),
    (lambda: metrics.AUC(label_weights=[1.0, -1.0]), "label_weights"),
    (lambda: metrics.Precision(thresholds=1.5), r"\[0, 1\]"),
    (lambda: metrics.Recall(thresholds=[0.2, -0.1]), r"\[0, 1\]"),
    (lambda: metrics.TruePositives(thresholds=2.0), r"\[0, 1\]"),
    (lambda: metrics.SensitivityAtSpecificity(1.5), "specificity"),
    (lambda: metrics.PrecisionAtRecall(0.5, num_thresholds=0), "num_thresholds"),
    (lambda: metrics.FBetaScore(beta=2), "beta"),
    (lambda: metrics.FBetaScore(average="samples"), "average"),
    (lambda: metrics.F1Score(threshold=1.5), "threshold"),
    (lambda: metrics.R2Score(class_aggregation="mean"), "class_aggregation"),
    (lambda: metrics.R2Score(num_regressors=-1), "num_regressors"),
    (lambda: metrics.IoU(3, [0, 3]), "out of range"),
    (lambda: metrics.MeanIoU(0), "num_classes"),
    (lambda: metrics.Mean(dtype="floaty"), "dtype"),
])
def test_bad_arguments_raise_naming_the_argument(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_inputs_raise_clear_errors():
    y, p, _ = DATA["l"]
    with pytest.raises(ValueError, match="top_k=4 is larger"):
        metrics.Precision(top_k=4).update_state(y, p)
    with pytest.raises(ValueError, match="class_id=5 is out of range"):
        metrics.Recall(class_id=5).update_state(y, p)
    with pytest.raises(ValueError, match="class_id is provided, y_pred must be a 2D array"):
        metrics.Recall(class_id=0).update_state([1, 0], [0.3, 0.6])
    with pytest.raises(ValueError, match="rank 2 when multi_label=True"):
        metrics.AUC(multi_label=True).update_state(np.zeros((2, 2, 2)), np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match=r"built for 3 labels, so y_pred must have shape \(batch, 3\)"):
        metrics.AUC(multi_label=True, num_labels=3).update_state(np.zeros((2, 4)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="F1Score expects 2D inputs"):
        metrics.F1Score().update_state([1, 0], [0.3, 0.6])
    with pytest.raises(ValueError, match="sample_weight of shape"):
        metrics.AUC().update_state(y, p, sample_weight=np.ones(3))


def test_iou_float_weights_with_the_int_default_dtype_warn_and_truncate_as_keras():
    y, p, _ = DATA["i"]
    weights = np.array([0.3, 2.7, 1, 1, 0.5, 3, 1], "float32")
    m = metrics.MeanIoU(4)
    with pytest.warns(UserWarning, match="passing weight as `float`"):
        m.update_state(y, p, sample_weight=weights)
    assert float(m.result()) == pytest.approx(0.25)  # Keras 3.15: the weights become [0, 2, 1, 1, 0, 3, 1]
    m = metrics.MeanIoU(4, dtype="float32")
    m.update_state(y, p, sample_weight=weights)
    assert float(m.result()) == pytest.approx(0.27481386)  # Keras 3.15


# -- configs ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("metric,config", [
    (metrics.AUC(name="auc", thresholds=[0.3, 0.6]),
     {"name": "auc", "dtype": "float32", "num_thresholds": 4, "curve": "ROC", "summation_method": "interpolation",
      "multi_label": False, "num_labels": None, "label_weights": None, "from_logits": False, "thresholds": [0.3, 0.6]}),
    (metrics.Precision(thresholds=[0.3, 0.6], top_k=2, class_id=1, name="precision"),
     {"name": "precision", "dtype": "float32", "thresholds": [0.3, 0.6], "top_k": 2, "class_id": 1}),
    (metrics.FBetaScore(beta=2.0), {"name": "fbeta_score", "dtype": "float32", "average": None, "beta": 2.0,
                                    "threshold": None}),
    (metrics.F1Score(), {"name": "f1_score", "dtype": "float32", "average": None, "threshold": None}),
    (metrics.R2Score(), {"name": "r2_score", "dtype": "float32", "class_aggregation": "uniform_average",
                         "num_regressors": 0}),
    (metrics.BinaryIoU(name="b"), {"target_class_ids": [0, 1], "threshold": 0.5, "name": "b", "dtype": "int64"}),
    (metrics.MeanIoU(3, name="m"), {"num_classes": 3, "name": "m", "dtype": "int64", "ignore_class": None,
                                    "sparse_y_true": True, "sparse_y_pred": True, "axis": -1}),
    (metrics.OneHotIoU(3, [1], name="o"), {"num_classes": 3, "target_class_ids": [1], "name": "o", "dtype": "int64",
                                           "ignore_class": None, "sparse_y_pred": False, "axis": -1}),
    (metrics.PrecisionAtRecall(0.5, name="p"), {"name": "p", "dtype": "float32", "class_id": None,
                                                "num_thresholds": 200, "recall": 0.5}),
    (metrics.TruePositives(name="t"), {"name": "t", "dtype": "float32", "thresholds": None}),
    (metrics.CosineSimilarity(), {"name": "cosine_similarity", "dtype": "float32"}),
    (metrics.SparseTopKCategoricalAccuracy(), {"name": "sparse_top_k_categorical_accuracy", "dtype": "float32",
                                               "k": 5}),
    (metrics.SparseCategoricalCrossentropy(), {"name": "sparse_categorical_crossentropy", "dtype": "float32",
                                               "from_logits": False, "ignore_class": None, "axis": -1}),
    (metrics.CategoricalCrossentropy(), {"name": "categorical_crossentropy", "dtype": "float32",
                                         "from_logits": False, "label_smoothing": 0, "axis": -1}),
    (metrics.BinaryAccuracy(), {"name": "binary_accuracy", "dtype": "float32", "threshold": 0.5}),
    (metrics.PearsonCorrelation(), {"name": "pearson_correlation", "dtype": "float32", "axis": -1}),
    (metrics.Mean(), {"name": "mean", "dtype": "float32"}),
    (metrics.RootMeanSquaredError(), {"name": "root_mean_squared_error", "dtype": "float32"}),
])
def test_configs_equal_keras(metric, config):
    assert metric.get_config() == config  # Keras 3.15's get_config, key for key
    rebuilt = type(metric).from_config(metric.get_config())
    assert rebuilt.get_config() == config


def test_mean_metric_wrapper_config_round_trip():
    m = metrics.MeanMetricWrapper(metrics.binary_accuracy, name="acc", threshold=0.3)
    config = m.get_config()
    assert config == {"name": "acc", "dtype": "float32", "fn": {  # Keras 3.15's config: the function serialized
        "module": "builtins", "class_name": "function", "config": "binary_accuracy", "registered_name": "function"},
        "threshold": 0.3}
    rebuilt = metrics.MeanMetricWrapper.from_config(config)
    y, p, _ = DATA["b"]
    assert float(rebuilt(y, p)) == float(m(y, p)) == pytest.approx(0.875)  # Keras 3.15


def test_results_take_the_metric_dtype_as_keras():
    y, p, _ = DATA["b"]
    # Keras 3.15 keeps the confusion counts and R2Score's sums in float32 variables whatever the dtype
    assert metrics.AUC(dtype="float64")(y, p).dtype == np.float32
    assert metrics.R2Score(dtype="float64")(DATA["r"][0], DATA["r"][1]).dtype == np.float32
    assert metrics.MeanSquaredError(dtype="float64")(y, p).dtype == np.float64
    assert metrics.F1Score(dtype="float64")(DATA["l"][0], DATA["l"][1]).dtype == np.float64
    assert metrics.Mean()([1.0, 2.0]).dtype == np.float32
    assert metrics.Precision(thresholds=[0.2, 0.7])(y, p).dtype == np.float32


def test_star_import_gives_every_public_name():
    namespace = {}
    exec("from fastnn.metrics import *", namespace)
    assert {"AUC", "F1Score", "OneHotMeanIoU", "mean_squared_error", "categorical_hinge", "get"} <= set(namespace)


def test_a_custom_metric_written_the_keras_way():
    """The custom metric of Keras's Metric docstring: variables from add_variable, reset_state zeroes them."""

    class BinaryTruePositives(metrics.Metric):
        def __init__(self, name="binary_true_positives", **kwargs):
            super().__init__(name=name, **kwargs)
            self.true_positives = self.add_variable(shape=(), initializer="zeros", name="true_positives")

        def update_state(self, y_true, y_pred, sample_weight=None):
            values = np.logical_and(np.asarray(y_true, bool), np.asarray(y_pred, bool)).astype(self.dtype)
            if sample_weight is not None:
                values = values * np.asarray(sample_weight, self.dtype)
            self.true_positives.assign(self.true_positives.numpy() + values.sum())

        def result(self):
            return self.true_positives

    m = BinaryTruePositives()
    m.update_state([1, 1, 0, 1], [1, 0, 1, 1], sample_weight=[1.0, 1.0, 1.0, 0.5])
    assert float(m.result()) == 1.5 and m.variables == [m.true_positives]
    m.reset_state()
    assert float(m.result()) == 0.0

    class Overridden(metrics.Metric):  # a reset_state that needs the subclass's attributes
        def __init__(self):
            super().__init__()
            self.total = self.add_weight(initializer="ones")

        def reset_state(self):
            self.total.assign(1.0)

    assert float(Overridden().total.numpy()) == 1.0


def test_a_nan_prediction_is_never_positive_as_in_keras():
    y, p = [1, 1, 0, 1], np.array([np.nan, 0.8, 0.3, 0.5], "float32")
    np.testing.assert_allclose(metrics.Recall(thresholds=[0.2, 0.7])(y, p), [0.6666667, 0.33333334])  # Keras 3.15
    np.testing.assert_allclose(metrics.Precision(thresholds=[0.2, 0.7])(y, p), [0.6666667, 1.0])  # Keras 3.15


def test_sparse_categorical_crossentropy_ignore_class_counts_as_keras():
    y = np.array([0, 1, 2, 1])
    p = np.array([[0.7, 0.2, 0.1], [0.3, 0.4, 0.3], [0.2, 0.2, 0.6], [0.1, 0.8, 0.1]], "float32")
    # Keras 3.15: unweighted, the ignored samples count with a loss of 0; weighted, they leave the count
    assert float(metrics.SparseCategoricalCrossentropy(ignore_class=1)(y, p)) == pytest.approx(0.2168751, rel=1e-6)
    m = metrics.SparseCategoricalCrossentropy(ignore_class=1)
    m.update_state(y[:, None], p, sample_weight=[1.0, 2.0, 3.0, 4.0])
    assert float(m.result()) == pytest.approx(0.4722879, rel=1e-6)
