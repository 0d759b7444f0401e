"""`fitclass compare RUN_A RUN_B` (`fitclass.compare`): is A better than B, or is the
difference noise?

Both runs are scored on the same labelled rows: their own saved validation rows (refused
unless both hold the same ids with the same labels), or a labelled file `on` that both
predict. Each metric gets the paired difference A - B with a bootstrap 95% interval and a
paired test (`fitclass.uncertainty.paired`), and a one-line verdict. When both runs are
ensembles of several members (`train --seeds N`, CV folds, `fitclass ensemble`), the
members' scores on the same rows are also compared across runs: matched by (seed, member
folder name) a paired t over the matches, otherwise Welch's t.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fitclass.errors import FitclassError, RunError
from fitclass.metrics import LOWER_IS_BETTER
from fitclass.runs.members import member_runs
from fitclass.runs.run import Inputs, Run, load_run
from fitclass.runs.scored_rows import ScoredRows, aligned, file_rows, saved_rows
from fitclass.uncertainty.bootstrap import REPLICATES
from fitclass.uncertainty.paired import (
    PERMUTATIONS,
    Difference,
    compare_rows,
    compare_runs,
)
from fitclass.uncertainty.weighted import scores, supported

#: The metrics compared by default, after the first run's selection metric.
DEFAULT_METRICS = {"multiclass": ("accuracy", "balanced_accuracy", "macro_f1", "log_loss"),
                   "multilabel": ("micro_f1", "macro_f1", "samples_f1", "subset_accuracy",
                                  "log_loss")}


@dataclass
class Comparison:
    """A against B: `differences` on the rows (`rows`: how many, from where), and, when both
    are ensembles, `across_members` over their members' scores (`members_note` says why it
    is absent otherwise)."""

    name_a: str
    name_b: str
    rows: int
    source: str
    differences: dict[str, Difference]
    across_members: dict[str, Difference] = field(default_factory=dict)
    members_note: str | None = None

    def verdicts(self) -> list[str]:
        return [d.verdict(self.name_a, self.name_b) for d in self.differences.values()]

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.name_a, "b": self.name_b, "rows": self.rows, "source": self.source,
                "metrics": {k: d.to_dict(self.name_a, self.name_b)
                            for k, d in self.differences.items()},
                "across_members": {k: d.to_dict(self.name_a, self.name_b)
                                   for k, d in self.across_members.items()},
                "members_note": self.members_note}


def compare(run_a: str | Path, run_b: str | Path, *, on: Inputs | None = None,
            metrics: Sequence[str] | None = None, text_column: str | list[str] | None = None,
            overrides: Sequence[str] | None = None, replicates: int = REPLICATES,
            permutations: int = PERMUTATIONS, seed: int = 0) -> Comparison:
    """Compare two finished runs on the same labelled rows: their shared validation rows,
    or the labelled file `on` (read with each run's columns, `text_column`/`overrides` as
    for `evaluate`). `metrics` default to A's selection metric and the task's headline."""
    first, second = load_run(run_a), load_run(run_b)
    _check_comparable(first, second)
    rows_a, rows_b = _rows(first, second, on, text_column, overrides)
    names = _metric_names(first, rows_a, metrics)
    differences = compare_rows(rows_a.scored, rows_b.scored, names,
                               lower_is_better=LOWER_IS_BETTER, replicates=replicates,
                               permutations=permutations, seed=seed)
    name_a, name_b = display_names(first.path, second.path)
    comparison = Comparison(name_a, name_b, len(rows_a), rows_a.source, differences)
    _add_across_members(comparison, first, second, rows_a, names, on, text_column, overrides)
    return comparison


def _check_comparable(first: Run, second: Run) -> None:
    if first.recipe.task != second.recipe.task or first.class_names != second.class_names:
        raise RunError(f"{second.path}: task {second.recipe.task!r} with classes "
                       f"{second.class_names} differs from {first.path} "
                       f"({first.recipe.task!r}, {first.class_names}); compare runs of one "
                       f"task and label set")


def _rows(first: Run, second: Run, on: Inputs | None, text_column: str | list[str] | None,
          overrides: Sequence[str] | None) -> tuple[ScoredRows, ScoredRows]:
    """Both runs' scored rows, B's in A's order (refused unless the same ids and labels)."""
    if on is None:
        fix = ("compare them on one labelled file with --on FILE (both runs predict it), "
               "or train both with the same data and data.split")
        rows_a, rows_b = saved_rows(first), saved_rows(second)
    else:
        fix = ("give both runs the same id and label columns (--set data.id=..., "
               "data.label=...)")
        rows_a = file_rows(first, on, text_column=text_column, overrides=overrides)
        rows_b = file_rows(second, on, text_column=text_column, overrides=overrides)
    return rows_a, aligned(rows_a, rows_b, fix)


def _metric_names(first: Run, rows: ScoredRows, wanted: Sequence[str] | None) -> list[str]:
    available = supported(rows.scored)
    if wanted:
        unknown = [m for m in wanted if m not in available]
        if unknown:
            raise FitclassError(f"--metric {unknown[0]!r}: {first.recipe.task} runs compare "
                                f"on {', '.join(available)}")
        return list(dict.fromkeys(wanted))
    select = first.recipe.train.select.metric
    select = "log_loss" if select == "loss" else select
    chosen = [select, *DEFAULT_METRICS[first.recipe.task]]
    return [m for m in dict.fromkeys(chosen) if m in available]


def display_names(path_a: Path, path_b: Path) -> tuple[str, str]:
    """The shortest path tails that tell the two runs apart (`plain/ensemble`)."""
    parts_a, parts_b = path_a.resolve().parts, path_b.resolve().parts
    for depth in range(1, max(len(parts_a), len(parts_b)) + 1):
        name_a, name_b = "/".join(parts_a[-depth:]), "/".join(parts_b[-depth:])
        if name_a != name_b:
            return name_a, name_b
    return f"A ({path_a})", f"B ({path_b})"  # the same run twice


def _add_across_members(comparison: Comparison, first: Run, second: Run, rows: ScoredRows,
                        names: list[str], on: Inputs | None,
                        text_column: str | list[str] | None,
                        overrides: Sequence[str] | None) -> None:
    members_a, members_b = member_runs(first.path), member_runs(second.path)
    if len(members_a) < 2 or len(members_b) < 2:
        comparison.members_note = "not both runs are ensembles of 2 or more members"
        return
    try:
        scores_a = _member_scores(members_a, rows, names, on, text_column, overrides)
        scores_b = _member_scores(members_b, rows, names, on, text_column, overrides)
    except FitclassError as error:
        comparison.members_note = f"members not compared: {error}"
        return
    comparison.across_members = {
        name: compare_runs({k: v[name] for k, v in scores_a.items()},
                           {k: v[name] for k, v in scores_b.items()}, name,
                           lower_is_better=name in LOWER_IS_BETTER)
        for name in names}


def _member_scores(paths: list[Path], rows: ScoredRows, names: list[str],
                   on: Inputs | None, text_column: str | list[str] | None,
                   overrides: Sequence[str] | None) -> dict[tuple[int, str], dict[str, float]]:
    """Each member's metrics on the compared rows, keyed by (seed, member folder name)."""
    found = {}
    for path in paths:
        member = load_run(path)
        mine = (saved_rows(member) if on is None else
                file_rows(member, on, text_column=text_column, overrides=overrides))
        mine = aligned(rows, mine, "members must have scored the compared rows")
        found[(member.recipe.train.seed, path.name)] = scores(mine.scored, tuple(names))
    if len(found) < len(paths):
        raise RunError(f"members of {paths[0].parent} repeat a seed and folder name")
    return found
