"""Count metrics (`fitclass/count_metrics.py`) equal scikit-learn's, absent classes included."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from fitclass.count_metrics import (
    COUNT_METRICS,
    class_terms,
    confusion_counts,
    counted_in_macro,
    from_counts,
)

REFERENCE = {
    "accuracy": accuracy_score,
    "micro_f1": lambda t, p: f1_score(t, p, average="micro"),
    "balanced_accuracy": balanced_accuracy_score,
    # scikit-learn's label set without labels=: the classes in the targets or predictions
    "macro_f1": lambda t, p: f1_score(t, p, average="macro", zero_division=0),
    "weighted_f1": lambda t, p: f1_score(t, p, average="weighted", zero_division=0),
}


@pytest.mark.parametrize("name", COUNT_METRICS)
def test_every_count_metric_matches_scikit_learn(name: str) -> None:
    rng = np.random.default_rng(3)
    targets = rng.choice([0, 1, 3], size=60)  # class 2 absent from the targets
    predictions = rng.integers(0, 4, size=60)
    counts = confusion_counts(targets, predictions, 4)
    assert from_counts(*counts)[name] == pytest.approx(REFERENCE[name](targets, predictions))


def test_terms_sum_to_the_metric_for_a_batch_of_count_rows() -> None:
    """Rows of counts (bootstrap replicates) give one metric each: the sum of the classes'
    numerators over the sum of their denominators."""
    tp = np.array([[3, 0, 2], [1, 1, 1]])
    support = np.array([[4, 1, 3], [2, 2, 2]])
    predicted = np.array([[5, 0, 3], [2, 1, 3]])
    numerator, denominator = class_terms("macro_f1", tp, predicted, support)
    assert numerator.shape == denominator.shape == (2, 3)
    assert from_counts(tp, support, predicted)["macro_f1"] == pytest.approx(
        numerator.sum(axis=1) / denominator.sum(axis=1))
    with pytest.raises(ValueError, match="not a count metric"):
        class_terms("log_loss", tp, predicted, support)


def test_macro_f1_skips_a_class_absent_from_targets_and_predictions() -> None:
    """The rule: a class neither true nor predicted is not averaged in (it is not an F1 of
    0); a class predicted but never true, or true but never predicted, counts as 0."""
    tp, support, predicted = np.array([5, 3, 0]), np.array([5, 4, 0]), np.array([5, 3, 0])
    assert counted_in_macro(support, predicted).tolist() == [True, True, False]
    f1_b = 2 * 3 / (4 + 3)
    assert from_counts(tp, support, predicted)["macro_f1"] == pytest.approx((1 + f1_b) / 2)
    predicted_c = np.array([5, 2, 1])  # class 2 predicted once, never true: an F1 of 0
    f1_b = 2 * 3 / (4 + 2)
    assert from_counts(tp, support, predicted_c)["macro_f1"] == pytest.approx((1 + f1_b) / 3)
    assert from_counts(np.zeros(3), np.zeros(3), np.zeros(3))["macro_f1"] == 0.0
