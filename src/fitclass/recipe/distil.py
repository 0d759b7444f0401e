"""The `distil` section: train this recipe's backbone as the student of a finished run.

`fitclass distil TEACHER_RUN --student BACKBONE --out DIR` writes it (see
`fitclass/distil/`); a recipe may also carry it by hand. The student trains on
(1 - alpha) * the hard-label loss + alpha * T^2 * KL(teacher_T || student_T), with the
teacher's probabilities computed once and cached in the run folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from fitclass.capabilities import capabilities_for
from fitclass.recipe.base import Strict

if TYPE_CHECKING:
    from fitclass.recipe import Recipe


class DistilConfig(Strict):
    """Knowledge distillation from a finished run (the teacher)."""

    #: The teacher run's folder: a single model, a soup, a cross-validation run or an
    #: ensemble (classical members included); anything `fitclass predict` can use.
    teacher: Path
    #: Weight of the distillation (KL) term; 0 trains on hard labels alone.
    alpha: float = Field(0.5, ge=0.0, le=1.0)
    #: Softening temperature of both teacher and student probabilities.
    temperature: float = Field(2.0, gt=0.0)
    #: A table with the recipe's text column(s): rows the teacher scores and the student
    #: learns from by the distillation term only (they have no hard label).
    unlabelled: Path | None = None


def distil_problems(recipe: Recipe) -> list[str]:
    """Settings a distillation cannot honour, refused rather than ignored."""
    config = recipe.distil
    if config is None:
        return []
    problems = []
    backbone = recipe.model.backbone
    capabilities = capabilities_for(backbone)
    if capabilities is not None and not (capabilities.neural and capabilities.trainable):
        problems.append(f"distil: model.backbone {backbone!r} cannot be a student (it learns "
                        f"no network from soft targets); use a neural backbone, e.g. "
                        f"`--student minilm` or a Hugging Face model id or folder")
    if recipe.data.images is not None:
        problems.append("distil: data.images is set, but distillation is text-only for now "
                        "(the teacher scores texts); remove the distil section to train on "
                        "the images, or distil a text teacher")
    if recipe.noise.coteaching:
        problems.append("distil does not combine with noise.coteaching (its two networks "
                        "train on the rows they select, not on the teacher's targets); "
                        "remove noise.coteaching or the distil section")
    if recipe.self_training is not None:
        problems.append("distil does not combine with self_training (its rounds train on "
                        "their own pseudo-labels, not on the teacher's targets); remove "
                        "self_training (distil.unlabelled gives the student unlabelled rows "
                        "through the teacher) or the distil section")
    if recipe.data.split.refit or recipe.data.split.folds is not None:
        problems.append("distil keeps validation rows to measure the student and its "
                        "agreement with the teacher; remove data.split.folds/fold/refit "
                        "(and --folds/--refit) from the student")
    return problems
