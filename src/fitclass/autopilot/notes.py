"""OUT/auto.md: what doctor found, what auto searched and why, the leaderboard with 95%
intervals, what it chose, the budget it used, and the recipe that reproduces the best single
trial without `auto`."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from fitclass.atomic import atomic_write_text
from fitclass.autopilot.budget import format_seconds
from fitclass.autopilot.folder import NOTES
from fitclass.autopilot.space import SearchSpace
from fitclass.runs.layout import METRICS, RECIPE

#: Leaderboard rows shown (the rest are in the study).
SHOWN = 30


def _interval(run_dir: Any, metric: str) -> str:
    """`0.812 [0.771, 0.850]` from a run's metrics.json (its bootstrap interval over rows)."""
    if not isinstance(run_dir, str):
        return ""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return ""
    metrics = json.loads(path.read_text(encoding="utf-8"))
    found = metrics.get("intervals", {}).get(metric)
    value = metrics.get(metric)
    if found is None:
        return f"{value:.3f}" if isinstance(value, float) else ""
    return f"{found['estimate']:.3f} [{found['low']:.3f}, {found['high']:.3f}]"


def _params(row: pd.Series) -> str:
    shown = []
    for key, value in row.items():
        if not str(key).startswith("param:") or key == "param:model.backbone":
            continue
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        shown.append(f"{str(key)[6:]}={value:.3g}" if isinstance(value, float)
                     else f"{str(key)[6:]}={value}")
    return ", ".join(shown)


def leaderboard_lines(board: pd.DataFrame, metric: str, backbone: str) -> list[str]:
    lines = [f"| trial | status | backbone | {metric} [95% interval] | seconds | values |",
             "|---|---|---|---|---|---|"]
    for _, row in board.head(SHOWN).iterrows():
        seconds = row.get("wall_seconds")
        shown = f"{seconds:.1f}" if isinstance(seconds, float) and not math.isnan(seconds) else ""
        status = str(row["status"])
        if status == "fail" and isinstance(row.get("error"), str):
            status += f" ({row['error'][:80]})"
        lines.append(f"| {row['trial']} | {status} | {row.get('backbone') or backbone} | "
                     f"{_interval(row.get('run_dir'), metric)} | {shown} | {_params(row)} |")
    if len(board) > SHOWN:
        lines.append(f"\n({len(board) - SHOWN} more trials in the study.)")
    return lines


def diagnosis_lines(diagnosis: dict[str, Any]) -> list[str]:
    lines = [f"{diagnosis['source']}: {diagnosis['rows']} rows, {diagnosis['task']}, "
             f"{len(diagnosis['class_counts'])} classes; regimes: "
             f"{', '.join(diagnosis['regimes']) or 'none'}.", ""]
    for finding in diagnosis["findings"]:
        if finding["severity"] == "info" and not finding["recipe"]:  # a measurement
            lines.append(f"- {finding['code']}: {finding['title']}.")
            continue
        lines.append(f"- **{finding['code']}** ({finding['severity']}): {finding['title']}. "
                     f"Remedy: {finding['remedy']}.")
    return lines


def space_lines(space: SearchSpace) -> list[str]:
    lines = [f"Backbones: {', '.join(space.backbones)}. Trials are scored on validation "
             f"{space.metric}.", "", "| key | searched over | backbones | because of | why |",
             "|---|---|---|---|---|"]
    for choice in space.choices:
        spec = json.dumps(choice.spec, default=str)
        cost = ("" if choice.cost == 1.0 else f" (a trial with it costs {choice.cost:g} "
                f"plain ones; sampled only while that fits the time left)")
        lines.append(f"| {choice.key} | `{spec}` | {', '.join(choice.backbones)} | "
                     f"{choice.finding or '-'} | {choice.why}{cost} |")
    return lines


def chosen_lines(out: Path, final: dict[str, Any], metric: str) -> list[str]:
    metrics = json.loads((out / METRICS).read_text(encoding="utf-8"))
    lines = [f"OUT is the {final['kind']} of {len(final['members'])} trial(s): "
             + ", ".join(Path(m).name for m in final["members"]) + "."]
    if final.get("preferred"):
        lines.append(final["preferred"]["why"] + ".")
    info = metrics.get("ensemble")
    if isinstance(info, dict):
        lines.append(f"The combiner `{info.get('method')}` scored best on the validation rows "
                     f"(combiners cross-fitted, so the score is held out); its weights: "
                     + ", ".join(f"{Path(m['path']).name} {m['weight']:.2f}"
                                 for m in info.get("members", [])) + ".")
    refit = final.get("refit")
    if refit and refit["done"]:
        lines += refit_lines(refit, len(final["members"]), metrics.get("n"))
        lines.append(f"Its expected {metric} (out-of-fold, every labelled row): "
                     f"{_interval(str(out), metric)}.")
        return lines
    if refit and refit["skipped"]:
        lines.append(f"Not refit (the preset asks for it): {refit['skipped']}.")
    lines.append(f"Its validation {metric}: {_interval(str(out), metric)}.")
    if final["kind"] == "ensemble":
        lines.append("Rebuild it without auto: `fitclass ensemble "
                     + " ".join(final["members"]) + f" --out OUT --metric {metric}`.")
    return lines


def refit_lines(refit: dict[str, Any], members: int, rows: Any) -> list[str]:
    """What `best`'s refit did: each member cross-validated and retrained on every
    labelled row, the decision (and combiner) fitted on out-of-fold probabilities."""
    folds = refit["folds"]
    lines = [f"Refit: each chosen trial's recipe was cross-validated ({folds} folds over the "
             f"train and validation rows) and retrained on every labelled row: "
             + ", ".join(f"`{Path(r).parent.name}/{Path(r).name}`" for r in refit["refits"])
             + " (`fitclass train RECIPE --folds " + str(folds) + " --refit` does the same)."]
    if members >= 2:
        lines.append(f"The combiner and the decision were fitted on the out-of-fold "
                     f"probabilities of all {rows} labelled rows (the cross-validation "
                     f"runs), and the ensemble predicts with the refits.")
    else:
        lines.append("OUT is the refit: its decision was fitted on the raw out-of-fold "
                     "probabilities of every labelled row, and its scores are the "
                     "cross-validation's (what the refit is expected to score).")
    return lines


def worker_lines(record: dict[str, Any]) -> list[str]:
    found = record.get("workers") or {}
    if len(found) < 2:
        return []
    return ["Finished trials per worker: " + ", ".join(f"{w} {n}" for w, n in found.items())
            + ".", ""]


def write_notes(out: Path, diagnosis: dict[str, Any], space: SearchSpace,
                board: pd.DataFrame, final: dict[str, Any] | None, budget: dict[str, Any],
                stopped: str) -> Path:
    """Write OUT/auto.md."""
    best = next((Path(r) for r in board[board["status"] == "complete"]["run_dir"]
                 if isinstance(r, str) and (Path(r) / RECIPE).is_file()), None)
    counts = board["status"].value_counts().to_dict() if len(board) else {}
    parts = ["# fitclass auto", "", "## What doctor found", "", *diagnosis_lines(diagnosis),
             "", "## What auto searched, and why", "", *space_lines(space), "",
             "## What it tried", "",
             f"{len(board)} trials: " + ", ".join(f"{n} {s}" for s, n in counts.items())
             + f". The search stopped because {stopped}.", "",
             *leaderboard_lines(board, space.metric, space.backbones[0]), "",
             "Intervals: 95% bootstrap over validation rows (each run's metrics.json).", "",
             "## What it chose", "",
             *(chosen_lines(out, final, space.metric) if final is not None else
               ["Nothing: no trial finished within the budget (see the errors above)."]),
             "",
             "## Budget", "",
             f"Budget {format_seconds(budget['budget_seconds'])}; used "
             f"{format_seconds(budget['spent_seconds'])} over {len(budget['calls'])} "
             f"call(s) (diagnosis {budget['doctor_seconds']:.1f} s).", "",
             *worker_lines(budget)]
    if best is not None:
        parts += ["## Reproduce the best single trial without auto", "",
                  f"`fitclass train recipe.yaml` with this recipe ({best.name}):", "",
                  "```yaml", (best / RECIPE).read_text(encoding="utf-8").rstrip(), "```", ""]
    path = out / NOTES
    atomic_write_text(path, "\n".join(parts))
    return path
