"""`fitclass.distil`: a student recipe from the teacher run's, trained as a normal run.

The student reads the teacher's data section with the teacher's split rule (the same
`data.valid` file, or the same `valid_size` and seed), so it validates on the rows the
teacher validated on and never on rows a single teacher trained on. A cross-validation
teacher's folds are dropped: its every labelled row was some fold's training row, so its
validation rows here are rows the teacher saw (its agreement reads optimistic). The
teacher's task, decision settings and selection metric carry over; the student's
calibration and decision are fitted on its own validation probabilities. `seeds=N` trains
N students as `fitclass.train --seeds` does (OUT/seed-<s>, their ensemble in OUT/ensemble),
the teacher's probabilities scored once for all of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fitclass.crossval.workflow import train
from fitclass.distilling.teacher import open_teacher, shared_scores
from fitclass.errors import RecipeError
from fitclass.recipe import load_recipe
from fitclass.runs.layout import is_run
from fitclass.runs.run import Run
from fitclass.training.progress import Reporter

#: Split keys of a fold run, a cross-validation or a refit, which the student drops.
FOLD_KEYS = ("folds", "fold", "refit")


def student_recipe(teacher: Run, student: str, *, unlabelled: str | Path | None = None,
                   alpha: float = 0.5, temperature: float = 2.0) -> dict[str, Any]:
    """The student's recipe as a dict: the teacher's task, data (split rule without folds),
    decision settings, selection metric and seed; `student` as model.backbone; `distil`."""
    base = teacher.recipe.carried()
    data = dict(base["data"])
    data["split"] = {k: v for k, v in data["split"].items() if k not in FOLD_KEYS}
    distil: dict[str, Any] = {"teacher": str(teacher.path.resolve()), "alpha": alpha,
                              "temperature": temperature}
    if unlabelled is not None:
        distil["unlabelled"] = str(Path(unlabelled).resolve())
    name = Path(student).name or "student"
    return {**base, "name": f"distil-{name}", "data": data, "model": {"backbone": student},
            "distil": distil}


def distil(teacher_run: str | Path, *, student: str, out: str | Path | None = None,
           unlabelled: str | Path | None = None, alpha: float = 0.5,
           temperature: float = 2.0, overrides: list[str] | None = None,
           overwrite: bool = False, reporter: Reporter | None = None,
           seeds: int = 1) -> Run:
    """Distil the finished run `teacher_run` (a single model, soup, cross-validation run or
    ensemble) into the trainable backbone `student`; return the student's finished run.

    The student trains on (1 - alpha) * hard-label loss + alpha * T^2 * KL to the teacher's
    temperature-softened probabilities, plus `unlabelled` rows (a table with the text
    column) by the KL term alone. `overrides` (`--set key=value`) apply to the student's
    recipe (e.g. `train.epochs=3`). Its `metrics.json` `distillation` holds the agreement
    with the teacher and the metric gap (student - teacher). `seeds=N` trains N students
    (seeds S..S+N-1) into `out/seed-<s>` and returns their ensemble (`out/ensemble`); the
    teacher scores the rows once for all of them.
    """
    if is_run(Path(student)):
        raise RecipeError(f"--student {student}: this is a fitclass run folder (a trained "
                          f"model), not a backbone; a student trains from a backbone: "
                          f"minilm, a Hugging Face model id or a model folder. To learn from "
                          f"this run, give it as the teacher (fitclass distil {student} "
                          f"--student minilm ...)")
    teacher = open_teacher(Path(teacher_run))
    recipe = load_recipe(student_recipe(teacher, student, unlabelled=unlabelled, alpha=alpha,
                                        temperature=temperature), overrides)
    with shared_scores():
        return train(recipe, out=out, overwrite=overwrite, reporter=reporter, seeds=seeds)
