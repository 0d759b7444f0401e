"""The distillation loss (`training/distillation.py`) against hand computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from fitclass.contracts.fit import TeacherTargets
from fitclass.tasks import make_task
from fitclass.training.distillation import TeacherRows, distillation_loss, pack
from fitclass.training.losses import LossSpec, make_loss

CLASSES = ["a", "b", "c"]


def _setup(task_name: str = "multiclass", classes: list[str] = CLASSES):
    task = make_task(task_name, classes)
    hard = make_loss("ce", LossSpec(task=task, priors=np.full(len(classes), 1 / len(classes))))
    return task, hard


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(5, 3, generator=generator) * 2
    labels = torch.tensor([0, 2, 1, 0, 2])
    teacher = torch.softmax(torch.randn(5, 3, generator=generator) * 3, dim=1)
    labelled = torch.tensor([True, True, False, True, False])
    return logits, labels, teacher, labelled


def hand_multiclass(logits: torch.Tensor, labels: torch.Tensor, teacher: torch.Tensor,
                    labelled: torch.Tensor, alpha: float, t: float) -> float:
    """(1 - alpha) * CE over labelled rows + alpha * T^2 * mean KL(p_T || q_T), in numpy."""
    z, p = logits.double().numpy(), teacher.double().numpy()
    q_t = np.exp(z / t) / np.exp(z / t).sum(1, keepdims=True)
    p_t = p ** (1 / t) / (p ** (1 / t)).sum(1, keepdims=True)
    kl = (p_t * (np.log(p_t) - np.log(q_t))).sum(1).mean()
    log_q = z - np.log(np.exp(z).sum(1, keepdims=True))
    rows = labelled.numpy()
    ce = -log_q[rows, labels.numpy()[rows]].mean() if rows.any() else 0.0
    return (1 - alpha) * ce + alpha * t * t * kl


@pytest.mark.parametrize(("alpha", "temperature"), [(0.3, 2.0), (0.7, 4.0), (1.0, 1.0)])
def test_multiclass_equals_hand_computation(alpha: float, temperature: float) -> None:
    task, hard = _setup()
    loss = distillation_loss(hard, task, alpha, temperature)
    logits, labels, teacher, labelled = _batch()
    packed = pack(task.dense_rows(labels, 3), teacher, labelled)
    expected = hand_multiclass(logits, labels, teacher, labelled, alpha, temperature)
    assert float(loss(logits, packed)) == pytest.approx(expected, rel=1e-5)


def test_alpha_zero_is_the_hard_loss_of_labelled_rows() -> None:
    task, hard = _setup()
    loss = distillation_loss(hard, task, 0.0, 3.0)
    logits, labels, teacher, labelled = _batch(1)
    packed = pack(task.dense_rows(labels, 3), teacher, labelled)
    expected = F.cross_entropy(logits[labelled], labels[labelled])
    assert float(loss(logits, packed)) == pytest.approx(float(expected), rel=1e-6)
    everyone = pack(task.dense_rows(labels, 3), teacher, torch.ones(5, dtype=torch.bool))
    assert float(loss(logits, everyone)) == pytest.approx(float(F.cross_entropy(logits, labels)),
                                                          rel=1e-6)


def test_plain_targets_get_the_hard_loss() -> None:
    """Validation's class indices: the recipe's criterion alone (the history's valid_loss)."""
    task, hard = _setup()
    loss = distillation_loss(hard, task, 0.5, 2.0)
    logits, labels, _, _ = _batch(2)
    assert float(loss(logits, labels)) == pytest.approx(float(hard(logits, labels)))


def test_unlabelled_rows_get_the_soft_term_only() -> None:
    """A batch of unlabelled rows: alpha * T^2 * KL, whatever their (teacher) labels say,
    and zero when the student already matches the teacher."""
    task, hard = _setup()
    loss = distillation_loss(hard, task, 0.4, 2.0)
    logits, labels, teacher, _ = _batch(3)
    none = torch.zeros(5, dtype=torch.bool)
    first = loss(logits, pack(task.dense_rows(labels, 3), teacher, none))
    relabelled = loss(logits, pack(task.dense_rows((labels + 1) % 3, 3), teacher, none))
    assert float(first) == pytest.approx(float(relabelled))
    assert float(first) == pytest.approx(hand_multiclass(logits, labels, teacher, none, 1.0,
                                                         2.0) * 0.4, rel=1e-5)
    matched = loss(teacher.log(), pack(task.dense_rows(labels, 3), teacher, none))
    assert float(matched) == pytest.approx(0.0, abs=1e-6)


def test_multilabel_binary_kl() -> None:
    task, hard = _setup("multilabel", ["x", "y"])
    loss = distillation_loss(hard, task, 1.0, 2.0)
    logits = torch.tensor([[0.5, -1.0], [2.0, 0.0]])
    teacher = torch.tensor([[0.9, 0.2], [0.6, 0.5]])
    p = teacher.double().numpy()
    p_t = 1 / (1 + np.exp(-np.log(p / (1 - p)) / 2))
    q_t = 1 / (1 + np.exp(-logits.double().numpy() / 2))
    kl = p_t * np.log(p_t / q_t) + (1 - p_t) * np.log((1 - p_t) / (1 - q_t))
    packed = pack(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), teacher, torch.ones(2).bool())
    assert float(loss(logits, packed)) == pytest.approx(4 * kl.mean(), rel=1e-5)


def test_teacher_rows_follow_the_batch_positions() -> None:
    task, _ = _setup()
    probs = np.eye(3, dtype=np.float32)[[2, 0, 1, 1]]
    rows = TeacherRows(TeacherTargets(probs=probs, labelled=np.array([1, 1, 0, 1], bool)),
                       task, torch.device("cpu"))
    packed = rows.targets(torch.tensor([1, 0]), torch.tensor([2, 0]))
    assert packed.tolist() == [[0, 1, 0, 0, 1, 0, 0], [1, 0, 0, 0, 0, 1, 1]]
