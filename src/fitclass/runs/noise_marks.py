"""Which runs of a table (a sweep's leaderboard) are within noise of its best run.

Where both runs hold per-row validation predictions on the same rows, the paired test of
`fitclass.uncertainty.paired` decides (the difference is noise unless the test rejects at
5% and the 95% interval excludes zero). Otherwise, when both recorded bootstrap intervals
in `metrics.json`, overlapping intervals count as noise (conservative: two overlapping 95%
intervals can still differ). Otherwise nothing is known and the mark is left blank.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fitclass.errors import FitclassError
from fitclass.runs.readers import read_metrics
from fitclass.runs.run import Run
from fitclass.runs.scored_rows import ScoredRows, aligned, saved_rows
from fitclass.uncertainty.intervals import Interval
from fitclass.uncertainty.paired import against_best, overlaps


def noise_marks(run_dirs: Sequence[str | Path | None], metric: str, *,
                lower_is_better: bool = False) -> list[dict[str, Any]]:
    """For each run folder (the best first): `within_noise` (True, False, or None when
    unknown), `p_vs_best` (the paired test's p, when it was run) and `noise_rule` (`paired
    test`, `interval overlap` or blank). A damaged or missing run is left blank."""
    if not run_dirs:
        return []
    key = "log_loss" if metric == "loss" else metric
    best_rows, best_interval = _rows(run_dirs[0]), _interval(run_dirs[0], key)
    marks = [{"within_noise": True, "p_vs_best": None, "noise_rule": "best"}]
    for path in run_dirs[1:]:
        marks.append(_mark(path, best_rows, best_interval, key, lower_is_better))
    return marks


def _mark(path: str | Path | None, best_rows: ScoredRows | None,
          best_interval: Interval | None, metric: str,
          lower_is_better: bool) -> dict[str, Any]:
    rows = _rows(path)
    if rows is not None and best_rows is not None:
        try:
            mine = aligned(best_rows, rows, "")
        except FitclassError:
            mine = None
        if mine is not None:
            mark = against_best(mine.scored, best_rows.scored, metric,
                                lower_is_better=lower_is_better)
            return {"within_noise": mark.within_noise, "p_vs_best": mark.p_value,
                    "noise_rule": "paired test"}
    interval = _interval(path, metric)
    if interval is not None and best_interval is not None:
        return {"within_noise": overlaps(interval, best_interval), "p_vs_best": None,
                "noise_rule": "interval overlap"}
    return {"within_noise": None, "p_vs_best": None, "noise_rule": None}


def _rows(path: str | Path | None) -> ScoredRows | None:
    if path is None:
        return None
    try:
        return saved_rows(Run(path))
    except FitclassError:
        return None


def _interval(path: str | Path | None, metric: str) -> Interval | None:
    if path is None:
        return None
    try:
        saved = read_metrics(Run(path).dir).get("intervals", {}).get(metric)
        return Interval.from_dict(saved) if isinstance(saved, dict) else None
    except (FitclassError, TypeError, ValueError):
        return None
