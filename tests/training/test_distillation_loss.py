"""The distillation loss (`training/distillation.py`) against hand computation."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from fitclass.contracts.fit import TeacherTargets
from fitclass.tasks import make_task
from fitclass.training.distillation import TeacherRows, distillation_loss, pack
from fitclass.training.losses import Loss, LossSpec, make_loss, with_bootstrap

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


def old_distillation_loss(hard_loss: Loss, task: Any, alpha: float,
                          temperature: float) -> Loss:
    """The form before the row weights: the labelled rows chosen by a boolean mask (two
    host syncs a step). The new form must equal it."""
    from fitclass.training.distillation import kl_multiclass, kl_multilabel

    kl = kl_multilabel if task.multilabel else kl_multiclass

    def loss(logits: torch.Tensor, targets: torch.Tensor, rows: Any = None) -> torch.Tensor:
        classes = task.num_labels
        hard, teacher = targets[:, :classes], targets[:, classes:2 * classes]
        labelled = targets[:, -1] > 0.5
        soft = kl(logits, teacher, temperature).mean() * temperature ** 2
        hard_term = (hard_loss(logits[labelled], hard[labelled])
                     if bool(labelled.any()) else logits.sum() * 0.0)
        return (1.0 - alpha) * hard_term + alpha * soft

    return loss


#: Hard losses of either task kind: class weights, smoothing, focal, logit adjustment,
#: positive weights and bootstrapping, each as the recipe builds it.
HARD_LOSSES = {
    "ce": ("multiclass", "ce", {}),
    "ce+weights+smoothing": ("multiclass", "ce", {"weights": [0.5, 2.0, 1.3],
                                                  "label_smoothing": 0.1}),
    "focal+weights+alpha": ("multiclass", "focal", {"weights": [1.0, 3.0, 0.7],
                                                    "alpha": [0.2, 0.5, 0.3]}),
    "logit_adjusted+smoothing": ("multiclass", "logit_adjusted", {"label_smoothing": 0.05}),
    "ce+bootstrap": ("multiclass", "ce", {"bootstrap": "soft"}),
    "bce+weights+pos_weight": ("multilabel", "bce", {"weights": [0.5, 2.0, 1.0],
                                                     "pos_weight": [1.5, 3.0, 0.8],
                                                     "label_smoothing": 0.1}),
    "focal per label": ("multilabel", "focal", {"alpha": 0.3}),
    "ml bootstrap": ("multilabel", "logit_adjusted", {"bootstrap": "hard"}),
}


def _hard_loss(name: str) -> tuple[Any, Loss]:
    kind, loss_name, settings = HARD_LOSSES[name]
    task = make_task(kind, CLASSES)
    settings = dict(settings)
    bootstrap = settings.pop("bootstrap", None)
    spec = LossSpec(task=task, priors=np.array([0.2, 0.5, 0.3]),
                    **{k: np.asarray(v) if isinstance(v, list) and k != "alpha" else v
                       for k, v in settings.items()})
    loss = make_loss(loss_name, spec)
    return task, loss if bootstrap is None else with_bootstrap(loss, bootstrap, 0.3, task)


def _packed(task: Any, labelled: list[bool], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    rows = len(labelled)
    logits = torch.randn(rows, 3, generator=generator) * 2
    if task.multilabel:
        hard = (torch.rand(rows, 3, generator=generator) > 0.5).float()
        teacher = torch.rand(rows, 3, generator=generator)
    else:
        hard = task.dense_rows(torch.randint(0, 3, (rows,), generator=generator), 3)
        teacher = torch.softmax(torch.randn(rows, 3, generator=generator) * 3, dim=1)
    return logits, pack(hard, teacher, torch.tensor(labelled))


@pytest.mark.parametrize("name", list(HARD_LOSSES))
@pytest.mark.parametrize("labelled", [[True, False, True, True, False, False],
                                      [False] * 4, [True] * 5],
                         ids=["some labelled", "none labelled", "all labelled"])
def test_row_weights_equal_choosing_the_labelled_rows(name: str, labelled: list[bool]) -> None:
    """Value and gradients: the per-row hard loss weighed by the has-label flag, divided by
    the clamped count (or summed class weight), is the old boolean-mask form."""
    task, hard = _hard_loss(name)
    logits, packed = _packed(task, labelled, seed=len(labelled))
    for alpha in (0.0, 0.4):
        got_logits = logits.clone().requires_grad_()
        old_logits = logits.clone().requires_grad_()
        got = distillation_loss(hard, task, alpha, 2.0)(got_logits, packed)
        old = old_distillation_loss(hard, task, alpha, 2.0)(old_logits, packed)
        got.backward()
        old.backward()
        assert torch.allclose(got, old, atol=1e-6), (alpha, float(got), float(old))
        assert got_logits.grad is not None and old_logits.grad is not None
        assert torch.allclose(got_logits.grad, old_logits.grad, atol=1e-6), alpha
        if alpha == 0.0 and not any(labelled):
            assert float(got) == 0.0  # no labelled row: no hard term at all


def test_row_weights_of_a_plain_hard_loss() -> None:
    """`rows` on a recipe loss: the loss of the marked rows alone; none marked gives 0."""
    _, hard = _hard_loss("ce+weights+smoothing")
    logits, labels = torch.randn(6, 3), torch.tensor([0, 1, 2, 2, 1, 0])
    marked = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    chosen = marked.bool()
    assert torch.allclose(hard(logits, labels, marked), hard(logits[chosen], labels[chosen]))
    assert float(hard(logits, labels, torch.zeros(6))) == 0.0
