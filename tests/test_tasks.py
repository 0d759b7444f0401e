"""The task strategy: what each kind of task does where callers used to branch on the
targets' shape (counts, per-row losses, soft targets, bootstrapping rows, decisions,
degenerate-model warnings, label text)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from fitclass.recipe import DecisionConfig
from fitclass.target_kinds import MULTICLASS, MULTILABEL
from fitclass.tasks import MulticlassTask, MultilabelTask, make_task

LOGITS = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0], [0.0, 0.0, 3.0]])
INDICES = torch.tensor([0, 0, 1])
MATRIX = torch.tensor([[1, 0, 0], [0, 1, 1], [0, 0, 0]])


@pytest.fixture
def multiclass() -> MulticlassTask:
    task = make_task("multiclass", ["a", "b", "c"])
    assert isinstance(task, MulticlassTask)
    return task


@pytest.fixture
def multilabel() -> MultilabelTask:
    task = make_task("multilabel", ["x", "y", "z"])
    assert isinstance(task, MultilabelTask)
    return task


def test_a_task_owns_its_kind(multiclass: MulticlassTask, multilabel: MultilabelTask) -> None:
    assert multiclass.kind is MULTICLASS and not multiclass.multilabel
    assert multilabel.kind is MULTILABEL and multilabel.multilabel
    assert (multiclass.label_column, multilabel.label_column) == ("label", "labels")


def test_class_counts_and_priors(multiclass: MulticlassTask,
                                 multilabel: MultilabelTask) -> None:
    indices = np.array([0, 0, 2, 0])
    np.testing.assert_array_equal(multiclass.class_counts(indices), [3, 0, 1])  # all classes
    np.testing.assert_allclose(multiclass.class_priors(indices), [0.75, 0.0, 0.25])
    matrix = MATRIX.numpy().astype(np.float32)
    np.testing.assert_array_equal(multilabel.class_counts(matrix), [1, 1, 1])
    np.testing.assert_allclose(multilabel.class_priors(matrix), [1 / 3] * 3)


def test_per_row_loss(multiclass: MulticlassTask, multilabel: MultilabelTask) -> None:
    torch.testing.assert_close(multiclass.per_row_loss(LOGITS, INDICES),
                               F.cross_entropy(LOGITS, INDICES, reduction="none"))
    expected = F.binary_cross_entropy_with_logits(LOGITS, MATRIX.float(),
                                                  reduction="none").mean(1)
    torch.testing.assert_close(multilabel.per_row_loss(LOGITS, MATRIX), expected)


def test_soft_and_dense_targets(multiclass: MulticlassTask,
                                multilabel: MultilabelTask) -> None:
    onehot = F.one_hot(INDICES, 3).float()
    torch.testing.assert_close(multiclass.dense_rows(INDICES, 3), onehot)
    soft = torch.tensor([[0.5, 0.5, 0.0]])
    torch.testing.assert_close(multiclass.dense_rows(soft, 3), soft)  # probability rows kept
    torch.testing.assert_close(multiclass.soft_targets(INDICES, 3, 0.3), onehot * 0.7 + 0.1)
    torch.testing.assert_close(multilabel.dense_rows(MATRIX, 3), MATRIX.float())
    torch.testing.assert_close(multilabel.soft_targets(MATRIX, 3, 0.2),
                               MATRIX.float() * 0.8 + 0.1)


def test_predicted_rows(multiclass: MulticlassTask, multilabel: MultilabelTask) -> None:
    torch.testing.assert_close(multiclass.predicted_rows(LOGITS, hard=False),
                               torch.softmax(LOGITS, 1))
    torch.testing.assert_close(multiclass.predicted_rows(LOGITS, hard=True),
                               F.one_hot(torch.tensor([0, 1, 2]), 3).float())
    torch.testing.assert_close(multilabel.predicted_rows(LOGITS, hard=False),
                               torch.sigmoid(LOGITS))
    torch.testing.assert_close(multilabel.predicted_rows(LOGITS, hard=True),
                               (LOGITS > 0).float())


def test_fit_decision_fits_each_kinds_rule(multiclass: MulticlassTask,
                                           multilabel: MultilabelTask) -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet([1, 1, 1], size=60)
    config = DecisionConfig(calibration="none", prior_correction="uniform")
    decision = multiclass.fit_decision(config, rng.integers(0, 3, 60), probs,
                                       np.array([0.5, 0.3, 0.2]))
    assert not decision.multilabel and decision.thresholds is None
    assert decision.class_weights is not None
    matrix = (rng.random((60, 3)) < 0.4).astype(float)
    decision = multilabel.fit_decision(DecisionConfig(calibration="none"), matrix,
                                       rng.random((60, 3)), matrix.mean(0))
    assert decision.multilabel and decision.class_weights is None
    assert decision.thresholds is not None and len(decision.thresholds) == 3
    assert set(decision.report) == {"ece_before", "ece_after", "temperature"}


def test_label_strings(multiclass: MulticlassTask, multilabel: MultilabelTask) -> None:
    assert multiclass.label_strings(np.array([2, 0])) == ["c", "a"]
    assert multilabel.label_strings(np.array([[1, 0, 1], [0, 0, 0]])) == ["x|z", ""]


# --- degenerate_reasons -----------------------------------------------------------------------

def test_degenerate_one_class_predictions() -> None:
    task = make_task("multiclass", ["a", "b", "c"])
    targets = np.array([0, 0, 1, 2])
    probs = np.tile([0.5, 0.3, 0.2], (4, 1))
    reasons = task.degenerate_reasons(targets, probs, probs.argmax(1), "macro_f1")
    assert len(reasons) == 1 and "predicts 'a' for all 4 validation rows" in reasons[0]


def test_degenerate_no_better_than_majority() -> None:
    task = make_task("multiclass", ["a", "b"])
    targets = np.array([0, 0, 0, 1])
    preds = np.array([0, 0, 1, 0])  # two classes predicted, accuracy 0.5 < majority 0.75
    probs = np.eye(2)[preds] * 0.8 + 0.1
    reasons = task.degenerate_reasons(targets, probs, preds, "accuracy")
    assert len(reasons) == 1 and "no better than always predicting the most frequent " \
        "class 'a' (0.7500)" in reasons[0]
    assert task.degenerate_reasons(targets, np.eye(2)[targets], targets, "accuracy") == []
    assert task.degenerate_reasons(np.zeros(3, int), probs[:3], np.zeros(3, int),
                                   "accuracy") == []  # one class in validation: nothing to learn


def test_degenerate_multilabel_same_set_for_every_row() -> None:
    task = make_task("multilabel", ["x", "y"])
    targets = np.array([[1, 0], [0, 1], [1, 1]])
    preds = np.zeros_like(targets)
    reasons = task.degenerate_reasons(targets, np.full((3, 2), 0.2), preds, "micro_f1")
    assert "predicts the same labels (none) for all 3 validation rows" in reasons[0]
