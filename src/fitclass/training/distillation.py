"""Knowledge distillation as a loss of the one loop (Hinton et al. 2015).

The student trains on (1 - alpha) * the recipe's hard-label loss (rows with a label) +
alpha * T^2 * KL(teacher_T || student_T) (every row), both probabilities softened by the
temperature T (the T^2 keeps the soft term's gradients at the hard term's scale).

The teacher's probabilities ride with the rows: `TeacherRows` looks each batch row's up by
its table position (the batch's `row`) and packs it with the row's hard target into one
float row `[hard target (K) | teacher probabilities (K) | has a label (1)]`, which the
distillation loss reads. Any other targets (validation's class indices, a head stage's)
get the hard loss alone, so the validation loss stays the recipe's criterion.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from fitclass.contracts.fit import FitContext, TeacherTargets
from fitclass.tasks import Task
from fitclass.training.losses import Loss, row_mean

#: Probabilities are clipped here before a logarithm (a teacher's exact 0 or 1).
EPSILON = 1e-7


def packed_width(num_classes: int) -> int:
    """Columns of a packed distillation target row."""
    return 2 * num_classes + 1


def pack(hard: torch.Tensor, teacher: torch.Tensor, labelled: torch.Tensor) -> torch.Tensor:
    """One float row per batch row: hard target rows (K), teacher probabilities (K), and 1
    where the row has a hard label (0: learn from the teacher alone)."""
    return torch.cat([hard.float(), teacher.float(), labelled.float()[:, None]], dim=1)


class TeacherRows:
    """The teacher's probabilities of the training rows on the loop's device, packed with
    each batch's hard targets by the rows' table positions."""

    def __init__(self, teacher: TeacherTargets, task: Task, device: torch.device) -> None:
        self.task = task
        self.probs = torch.as_tensor(np.asarray(teacher.probs, dtype=np.float32),
                                     device=device)
        self.labelled = torch.as_tensor(np.asarray(teacher.labelled, dtype=bool),
                                        device=device)

    def targets(self, labels: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """The packed targets of a batch: its labels and rows' teacher probabilities."""
        rows = positions.to(self.probs.device).long()
        hard = self.task.dense_rows(labels, self.probs.shape[1])
        return pack(hard, self.probs[rows], self.labelled[rows])


def teacher_rows(context: FitContext, device: torch.device) -> TeacherRows | None:
    """The context's teacher rows on `device`, or None without a distillation."""
    if context.teacher is None:
        return None
    return TeacherRows(context.teacher, context.task, device)


def softened_multiclass(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(log p / T): the teacher's probabilities at temperature T."""
    return torch.softmax(probs.clamp_min(EPSILON).log() / temperature, dim=1)


def softened_multilabel(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """sigmoid(logit p / T) per label."""
    p = probs.clamp(EPSILON, 1 - EPSILON)
    return torch.sigmoid((p.log() - (1 - p).log()) / temperature)


def kl_multiclass(logits: torch.Tensor, teacher: torch.Tensor,
                  temperature: float) -> torch.Tensor:
    """KL(teacher_T || student_T) per row."""
    target = softened_multiclass(teacher, temperature)
    log_student = F.log_softmax(logits.float() / temperature, dim=1)
    return (target * (target.clamp_min(EPSILON).log() - log_student)).sum(1)


def kl_multilabel(logits: torch.Tensor, teacher: torch.Tensor,
                  temperature: float) -> torch.Tensor:
    """Binary KL(teacher_T || student_T) of each label, the mean over labels per row."""
    target = softened_multilabel(teacher, temperature).clamp(EPSILON, 1 - EPSILON)
    scaled = logits.float() / temperature
    log_q, log_not_q = F.logsigmoid(scaled), F.logsigmoid(-scaled)
    per_label = (target * (target.log() - log_q)
                 + (1 - target) * ((1 - target).log() - log_not_q))
    return per_label.mean(1)


def distillation_loss(hard_loss: Loss, task: Task, alpha: float, temperature: float) -> Loss:
    """The recipe's `hard_loss` mixed with the KL term on packed targets (`TeacherRows`);
    on any other targets, `hard_loss` alone. Never reads the device (no host sync)."""
    kl = kl_multilabel if task.multilabel else kl_multiclass
    width = packed_width(task.num_labels)

    def loss(logits: torch.Tensor, targets: torch.Tensor,
             rows: torch.Tensor | None = None) -> torch.Tensor:
        if not (targets.ndim == 2 and targets.is_floating_point()
                and targets.shape[1] == width):
            return hard_loss(logits, targets, rows)
        classes = task.num_labels
        hard, teacher = targets[:, :classes], targets[:, classes:2 * classes]
        soft = row_mean(kl(logits, teacher, temperature), rows) * temperature ** 2
        if alpha >= 1.0:
            return alpha * soft
        # rows without a label carry no hard term, a batch of only such rows none at all:
        # the hard loss weighs each row by its has-label flag (selecting the rows would read
        # the device twice a step)
        labelled = targets[:, -1] if rows is None else targets[:, -1] * rows
        return (1.0 - alpha) * hard_loss(logits, hard, labelled) + alpha * soft

    return loss
