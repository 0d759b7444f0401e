"""Count metrics (`fitclass/count_metrics.py`) equal scikit-learn's, absent classes included."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from fitclass.count_metrics import COUNT_METRICS, class_share, confusion_counts, from_counts

REFERENCE = {
    "accuracy": accuracy_score,
    "micro_f1": lambda t, p: f1_score(t, p, average="micro"),
    "balanced_accuracy": balanced_accuracy_score,
    "macro_f1": lambda t, p: f1_score(t, p, average="macro", labels=range(4), zero_division=0),
    "weighted_f1": lambda t, p: f1_score(t, p, average="weighted", zero_division=0),
}


@pytest.mark.parametrize("name", COUNT_METRICS)
def test_every_count_metric_matches_scikit_learn(name: str) -> None:
    rng = np.random.default_rng(3)
    targets = rng.choice([0, 1, 3], size=60)  # class 2 absent from the targets
    predictions = rng.integers(0, 4, size=60)
    counts = confusion_counts(targets, predictions, 4)
    assert from_counts(*counts)[name] == pytest.approx(REFERENCE[name](targets, predictions))


def test_shares_sum_to_the_metric_for_a_batch_of_count_rows() -> None:
    """Rows of counts (bootstrap replicates) give one metric each, the shares' sum."""
    tp = np.array([[3, 0, 2], [1, 1, 1]])
    support = np.array([[4, 1, 3], [2, 2, 2]])
    predicted = np.array([[5, 0, 3], [2, 1, 3]])
    shares = class_share("macro_f1", tp, predicted, support, support)
    assert shares.shape == (2, 3)
    assert from_counts(tp, support, predicted)["macro_f1"] == pytest.approx(shares.sum(axis=1))
    with pytest.raises(ValueError, match="not a count metric"):
        class_share("log_loss", tp, predicted, support, support)
