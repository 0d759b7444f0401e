"""Metrics against hand-computed values; undefined metrics are None, never NaN."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import f1_score

from fitclass.metrics import headline, macro_f1, multiclass_metrics, multilabel_metrics

CLASSES = ["a", "b", "c"]
#: targets 0 0 1 1 2 2, predictions (argmax) 0 1 1 1 2 0
TARGETS = np.array([0, 0, 1, 1, 2, 2])
PROBS = np.array([
    [0.7, 0.2, 0.1],
    [0.3, 0.6, 0.1],
    [0.1, 0.8, 0.1],
    [0.2, 0.5, 0.3],
    [0.1, 0.1, 0.8],
    [0.5, 0.1, 0.4],
])


@pytest.fixture(scope="module")
def metrics() -> dict:
    return multiclass_metrics(TARGETS, PROBS, CLASSES)


def test_accuracy_and_confusion_matrix(metrics: dict) -> None:
    assert metrics["n"] == 6
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    # rows = true class, columns = predicted class
    assert metrics["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_per_class_and_averaged_f1(metrics: dict) -> None:
    # a: P 1/2 R 1/2 F1 1/2; b: P 2/3 R 1 F1 4/5; c: P 1 R 1/2 F1 2/3
    per_class = metrics["per_class"]
    assert per_class["a"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5,
                                            "support": 2})
    assert per_class["b"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8,
                                            "support": 2})
    assert per_class["c"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3,
                                            "support": 2})
    assert metrics["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert metrics["weighted_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)  # equal support
    assert metrics["micro_f1"] == pytest.approx(4 / 6)
    assert metrics["balanced_accuracy"] == pytest.approx((0.5 + 1.0 + 0.5) / 3)


def test_log_loss_is_mean_negative_log_of_true_class(metrics: dict) -> None:
    expected = -np.mean(np.log([0.7, 0.3, 0.8, 0.5, 0.8, 0.4]))
    assert metrics["log_loss"] == pytest.approx(expected)


def test_ranking_metrics_are_finite_when_all_classes_present(metrics: dict) -> None:
    assert 0.0 < metrics["roc_auc_macro"] <= 1.0
    assert 0.0 < metrics["pr_auc_macro"] <= 1.0


def test_distributions(metrics: dict) -> None:
    assert metrics["label_distribution"] == {"a": 2, "b": 2, "c": 2}
    assert metrics["predicted_distribution"] == {"a": 2, "b": 3, "c": 1}


def test_explicit_predictions_override_argmax() -> None:
    out = multiclass_metrics(TARGETS, PROBS, CLASSES, predictions=TARGETS)
    assert out["accuracy"] == 1.0
    assert out["predicted_distribution"] == out["label_distribution"]
    assert out["log_loss"] == pytest.approx(-np.mean(np.log([0.7, 0.3, 0.8, 0.5, 0.8, 0.4])))


def test_single_class_present_gives_none_auc_not_nan() -> None:
    targets = np.array([1, 1, 1])
    probs = np.array([[0.2, 0.7, 0.1], [0.5, 0.4, 0.1], [0.1, 0.1, 0.8]])
    out = multiclass_metrics(targets, probs, CLASSES)
    assert out["roc_auc_macro"] is None
    assert out["label_distribution"] == {"a": 0, "b": 3, "c": 0}
    assert out["predicted_distribution"] == {"a": 1, "b": 1, "c": 1}
    assert out["per_class"]["a"]["support"] == 0
    json.dumps(out, allow_nan=False)  # JSON has no NaN: nothing undefined may leak through
    assert not any(isinstance(v, float) and math.isnan(v) for v in out.values())


def test_absent_class_is_left_out_of_auc() -> None:
    targets = np.array([0, 0, 1, 1])
    probs = np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.3, 0.6, 0.1]])
    out = multiclass_metrics(targets, probs, CLASSES)
    # Class c never occurs: the averages run over a and b, both perfectly ranked.
    assert out["roc_auc_macro"] == pytest.approx(1.0)
    assert out["pr_auc_macro"] == pytest.approx(1.0)
    assert out["confusion_matrix"][2] == [0, 0, 0]
    json.dumps(out, allow_nan=False)


def test_zero_probability_of_true_class_gives_finite_log_loss() -> None:
    out = multiclass_metrics(np.array([0]), np.array([[0.0, 1.0, 0.0]]), CLASSES)
    assert math.isfinite(out["log_loss"]) and out["log_loss"] > 20


def test_multilabel_metrics_hand_example() -> None:
    targets = np.array([[1, 0], [1, 1], [0, 1], [0, 0]])
    preds = np.array([[1, 0], [1, 0], [0, 1], [0, 1]])
    probs = np.array([[0.9, 0.2], [0.8, 0.4], [0.1, 0.7], [0.2, 0.6]])
    out = multilabel_metrics(targets, probs, ["x", "y"], preds)
    assert out["subset_accuracy"] == pytest.approx(0.5)
    assert out["hamming_loss"] == pytest.approx(2 / 8)
    # x: P 1 R 1 F1 1; y: P 1/2 R 1/2 F1 1/2
    assert out["macro_f1"] == pytest.approx(0.75)
    assert out["label_distribution"] == {"x": 2, "y": 2}
    assert out["predicted_distribution"] == {"x": 2, "y": 2}
    json.dumps(out, allow_nan=False)


def test_multilabel_with_an_all_negative_label_is_json_safe() -> None:
    targets = np.array([[1, 0], [0, 0]])
    out = multilabel_metrics(targets, np.array([[0.9, 0.1], [0.2, 0.3]]), ["x", "y"],
                             np.array([[1, 0], [0, 0]]))
    json.dumps(out, allow_nan=False)
    assert out["lrap"] == pytest.approx(1.0)


def test_headline_puts_selection_metric_first(metrics: dict) -> None:
    head = headline({**metrics, "loss": 0.3}, "loss")
    assert list(head) == ["loss", "accuracy", "balanced_accuracy", "macro_f1", "log_loss"]
    assert list(headline(metrics, "macro_f1")) == ["macro_f1", "accuracy", "balanced_accuracy",
                                                   "log_loss"]


def test_macro_f1_averages_over_classes_in_targets_or_predictions() -> None:
    """A class neither true nor predicted is left out of macro-F1 (scikit-learn without
    labels=), in metrics.json, the selection score and both task kinds."""
    targets, preds = np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1])  # class "c" absent
    out = multiclass_metrics(targets, np.eye(3)[preds], CLASSES, preds)
    assert out["macro_f1"] == pytest.approx(f1_score(targets, preds, average="macro"))
    assert out["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    assert macro_f1(targets, preds) == pytest.approx(out["macro_f1"])
    label_targets = np.array([[1, 0, 0], [0, 1, 0]])  # label 2 never on, never predicted
    label_out = multilabel_metrics(label_targets, label_targets * 0.9, CLASSES, label_targets)
    assert label_out["macro_f1"] == 1.0
    assert macro_f1(label_targets, label_targets) == 1.0
