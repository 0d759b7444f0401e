"""Which trial leads the finish: the best one, unless a default recipe twin is within noise
of it, in which case the twin does.

Auto queues each backbone's default recipe first (`SearchSpace.defaults`) and then searches
around it; the trial that scores best on a few hundred validation rows has won a contest of
dozens, so part of its lead is luck (the winner's curse). On all of SST-2 the chosen
co-teaching trial led its default twin by 1.2 points on 554 validation rows (intervals
+-3) and then scored 1.6 points under the default recipe on the test part
(docs/benchmarks.md, fitclass auto). So, as the one-standard-error rule prefers the simplest
model within noise of the best, the best twin whose gap to the best trial the paired test
of `runs/noise_marks.py` cannot tell from noise leads the finish (alone when one member
fits, first among the members otherwise). A clear lead, such as tuned MiniLM on TREC fine
(0.8 against 0.4), keeps the best trial first.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from fitclass.autopilot.space import SearchSpace
from fitclass.runs.noise_marks import noise_marks


@dataclass(frozen=True)
class Preference:
    """The twin trial put first, the best trial it stands in for, and the paired test's p
    of the gap between them."""

    trial: int
    best: int
    p_value: float | None

    def why(self, metric: str) -> str:
        p = "" if self.p_value is None else f" (paired test p={self.p_value:.2f})"
        return (f"trial-{self.trial:04d} (a default recipe twin) leads: the best trial, "
                f"trial-{self.best:04d}, scores higher on validation {metric} by no more "
                f"than noise{p}, and the default recipe is the less tuned to that noise")

    def to_dict(self) -> dict[str, Any]:
        return {"trial": self.trial, "best": self.best, "p_value": self.p_value}


def _same(stored: Any, wanted: Any) -> bool:
    """Whether a trial's stored value is `wanted` (optuna keeps a list or a dict as JSON)."""
    return bool(stored == wanted) or (not isinstance(wanted, str) and wanted is not None
                                      and stored == json.dumps(wanted))


def default_twins(trials: Sequence[Any], space: SearchSpace) -> set[int]:
    """The complete `trials` whose values are their backbone's default recipe's."""
    twins = set()
    for trial in trials:
        if trial.state.name != "COMPLETE":
            continue
        backbone = trial.params.get("model.backbone", space.backbones[0])
        if all(_same(trial.params.get(key), value)
               for key, value in space.defaults(backbone).items()):
            twins.add(trial.number)
    return twins


def prefer_twin(board: pd.DataFrame, twins: set[int], metric: str) -> Preference | None:
    """The best twin within noise of the best complete trial of `board` (ranked, best
    first), or None when the best is a twin, no twin finished, or each is clearly worse."""
    complete = board[board["status"] == "complete"]
    if len(complete) < 2 or int(complete.iloc[0]["trial"]) in twins:
        return None
    best = complete.iloc[0]
    candidates = complete.iloc[1:][complete.iloc[1:]["trial"].isin(twins)]  # best first
    paths = [p if isinstance(p, str) else None
             for p in [best["run_dir"], *candidates["run_dir"]]]
    marks = noise_marks(paths, metric)[1:]  # the best trial's rows read once
    for trial, mark in zip(candidates["trial"], marks, strict=True):
        if mark["within_noise"]:
            return Preference(int(trial), int(best["trial"]), mark["p_vs_best"])
    return None
