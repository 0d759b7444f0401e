"""`fitclass auto`'s time budget: parsing `--time`, the deadline (counting the time earlier
calls of the same command already spent), and what one trial is predicted to cost.

A trial's cost is measured, not guessed, as soon as one of its backbone has finished: the
slowest finished trial of that backbone in the study (not the median: a word analyzer or a
weak regularisation makes one TF-IDF trial five times another on TREC, and the deadline must
hold for the slow ones), per plain trial: a trial whose remedies declare a cost (co-teaching
trains two networks) counts as that many plain ones, and the next trial's sampled remedies
are priced the same way (`autopilot/search.py`). Before that, a rough
estimate from the row count stands in; the first trial is always the cheapest member
(TF-IDF with its defaults), so the estimate is replaced by a measurement after one trial.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fitclass.capabilities import capabilities_for
from fitclass.errors import FitclassError

UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
PART = re.compile(r"(\d+(?:\.\d+)?)([smh])")
#: The cheapest member: its first run measures what a trial costs on this machine.
CHEAPEST = "tfidf"
#: Before anything is measured: seconds of a TF-IDF run's fixed cost (reading, writing the
#: run record and its report) and per training row (char n-grams and a logistic regression).
TFIDF_FIXED_S, TFIDF_PER_ROW_S = 3.0, 0.0005
#: A transformer epoch per training row on CPU (MiniLM-L6 at 128 tokens, forward and
#: backward, with validation), and on an accelerator; deliberately pessimistic.
NEURAL_PER_ROW_EPOCH_S = {"cpu": 0.02, "cuda": 0.002}
NEURAL_FIXED_S = 10.0
#: The finish: writing auto.md and copying a run (fixed), and ensembling members: the
#: combiners are cross-fitted on validation rows (greedy selection scores the metric many
#: times per member) and the ensemble's report is written; measured about 11-21 s for three
#: tiny TF-IDF members on a shared 2-core machine, and 28 s for three TF-IDF members on TREC
#: (50 classes, 546 validation rows), so these are deliberately generous.
FINISH_FIXED_S, ENSEMBLE_FIXED_S, ENSEMBLE_PER_MEMBER_S = 2.0, 8.0, 6.0
#: `--preset best`'s refit of each member: a REFIT_FOLDS-fold cross-validation and one run
#: on every labelled row, REFIT_FOLDS + 1 trainings on up to REFIT_ROWS times a trial's
#: training rows, plus the cross-validation run's record and report; the ensemble is then
#: fitted on every labelled row's out-of-fold probabilities (about five times the
#: validation rows), counted as ENSEMBLE_OOF times its cost on validation rows.
REFIT_FOLDS = 5
REFIT_ROWS, REFIT_FIXED_S, ENSEMBLE_OOF = 1.25, 5.0, 2.0

def parse_time(text: str) -> float:
    """`"30m"`, `"1h"`, `"90s"`, `"1h30m"` or plain seconds (`"45"`) -> seconds."""
    cleaned = str(text).strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+(?:\.\d+)?", cleaned):
        seconds = float(cleaned)
    elif cleaned and PART.sub("", cleaned) == "":
        seconds = sum(float(n) * UNITS[unit] for n, unit in PART.findall(cleaned))
    else:
        raise FitclassError(f"--time {text!r}: expected a duration such as 90s, 30m, 1h or "
                            f"1h30m (s, m, h), or plain seconds")
    if seconds <= 0:
        raise FitclassError(f"--time {text!r}: the budget must be more than 0 seconds")
    return seconds


def format_seconds(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


@dataclass
class Deadline:
    """The budget of the whole command, `spent_before` of it used by earlier calls (a killed
    run rerun), the rest counted from this call's start."""

    budget_s: float
    spent_before_s: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    def this_call(self) -> float:
        return time.perf_counter() - self.started

    def used(self) -> float:
        return self.spent_before_s + self.this_call()

    def remaining(self) -> float:
        return self.budget_s - self.used()


def estimate_seconds(backbone: str, rows: int, epochs: int, device: str) -> float:
    """A trial's cost before any trial of `backbone` has finished (pessimistic)."""
    declared = capabilities_for(backbone)
    if declared is not None and not declared.neural:
        return TFIDF_FIXED_S + TFIDF_PER_ROW_S * rows
    per_row = NEURAL_PER_ROW_EPOCH_S["cuda" if device == "cuda" else "cpu"]
    return NEURAL_FIXED_S + per_row * rows * epochs


def measured_seconds(trials: Sequence[Any], backbone: str, only_backbone: bool,
                     cost_factor: Callable[[dict[str, Any]], float] | None = None
                     ) -> float | None:
    """The longest wall time of `backbone`'s finished (complete) `trials`, or None; with
    `cost_factor`, each divided by what its trial's values cost against a plain trial
    (the cost of a plain trial, measured also on the costlier ones)."""
    seconds = [(t.datetime_complete - t.datetime_start).total_seconds()
               / (cost_factor(t.params) if cost_factor is not None else 1.0)
               for t in trials
               if t.state.name == "COMPLETE" and t.datetime_start and t.datetime_complete
               and (only_backbone or t.params.get("model.backbone") == backbone)]
    return max(seconds) if seconds else None


def refit_seconds(trial_s: float) -> float:
    """One member's cross-validation and refit, from its trial's cost `trial_s`."""
    return (REFIT_FOLDS + 1) * REFIT_ROWS * trial_s + REFIT_FIXED_S


def finish_seconds(members: int, refit_each_s: float | None = None) -> float:
    """Time kept back for the finish: an ensemble of `members` runs (one: a copy) and
    auto.md; with `refit_each_s`, each member's refit first and an ensemble fitted on
    out-of-fold rows."""
    refits = 0.0 if refit_each_s is None else members * refit_each_s
    if members < 2:
        return FINISH_FIXED_S + refits
    ensemble = ENSEMBLE_FIXED_S + ENSEMBLE_PER_MEMBER_S * members
    return FINISH_FIXED_S + refits + ensemble * (1.0 if refit_each_s is None
                                                 else ENSEMBLE_OOF)


def members_that_fit(remaining_s: float, top: int,
                     refit_each_s: float | None = None) -> tuple[int, bool]:
    """The most members (at most `top`) whose finish fits the time left (1 means copy the
    best trial), and whether they are refit: with `refit_each_s` (the preset refits) as
    many refitted members as fit, else, when not even one refit fits, no refit."""
    if refit_each_s is not None and finish_seconds(1, refit_each_s) <= remaining_s:
        fits = [k for k in range(2, top + 1)
                if finish_seconds(k, refit_each_s) <= remaining_s]
        return (max(fits) if fits else 1), True
    fits = [k for k in range(2, top + 1) if finish_seconds(k) <= remaining_s]
    return (max(fits) if fits else 1), False


def reserve_seconds(finished: int, refit_each_s: float | None, remaining_s: float) -> float:
    """What the search keeps back for the finish: a copy while nothing has finished (the
    first trial must fit, as the refusal at the start promised), then an ensemble of two
    or, when the preset refits, one refitted member if that costs more and still fits the
    `remaining_s` (when it no longer does the finish goes without a refit, and the search
    spends the time on trials)."""
    if not finished:
        return finish_seconds(1)
    ensemble = finish_seconds(2)
    if refit_each_s is None or finish_seconds(1, refit_each_s) > remaining_s:
        return ensemble
    return max(ensemble, finish_seconds(1, refit_each_s))


def refuse_if_too_small(budget_s: float, spent_s: float, cheapest_s: float,
                        rows: int | None) -> None:
    """Refuse at the start when the budget cannot fit one run of the cheapest member and
    the finish, saying what would."""
    needed = spent_s + cheapest_s + finish_seconds(1)
    if budget_s >= needed:
        return
    suggestion = max(60.0, 2 * needed)
    raise FitclassError(
        f"--time {format_seconds(budget_s)}: too small to fit even one run of the cheapest "
        f"member ({CHEAPEST}, about {cheapest_s:.0f} s "
        f"{'at the least' if rows is None else f'on {rows} rows'}) plus the diagnosis "
        f"and the finish ({format_seconds(needed)} in all); give --time "
        f"{int(suggestion // 60) or 1}m or more")
