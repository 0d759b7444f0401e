"""bench/cpu_vs_trainer.py's tables: per-run ratios against the two Trainer rows of the same
dataset and seed, the mean and min-max over seeds, and the issue's goal line."""

from __future__ import annotations

from typing import Any

from _holdout import markdown_table
from _runs import spread

GOAL = 1.15  # issue 15: fitclass >= 1.15x Trainer grouped at equal accuracy (CPU)
#: the systems the goal is for: this tree's fitclass, padded and packed
FITCLASS = ("fitclass", "fitclass_packed")

RUN_COLUMNS = ["dataset", "system", "seed", "position", "accuracy", "macro_f1",
               "samples_per_s", "tokens_per_s", "x_grouped", "x_default", "acc_vs_grouped",
               "padded_tokens_per_epoch", "padding", "batches_per_epoch", "batching",
               "train_s", "total_s", "wall_s", "load_1m"]
SUMMARY_KEYS = ["accuracy", "macro_f1", "samples_per_s", "tokens_per_s", "x_grouped",
                "x_default", "acc_vs_grouped", "padding"]
#: measures shown once per system (mean and spread), not compared with Trainer's
COUNTS = ["padded_tokens_per_epoch", "batches_per_epoch"]
SUMMARY_COLUMNS = ["dataset", "system", "seeds", *SUMMARY_KEYS, *COUNTS]


def per_seed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each run with its ratios to the Trainer rows of its dataset and seed (absent until
    that Trainer row has run)."""
    out = []
    for row in rows:
        peers = {r["system"]: r for r in rows
                 if r["dataset"] == row["dataset"] and r["seed"] == row["seed"]}
        extra: dict[str, Any] = {}
        if "trainer_grouped" in peers:
            grouped = peers["trainer_grouped"]
            extra["x_grouped"] = row["samples_per_s"] / grouped["samples_per_s"]
            extra["acc_vs_grouped"] = row["accuracy"] - grouped["accuracy"]
        if "trainer" in peers:
            extra["x_default"] = row["samples_per_s"] / peers["trainer"]["samples_per_s"]
        out.append({**row, **extra})
    return out


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per dataset and system: mean, std, min and max over seeds of each measure."""
    rated = per_seed(rows)
    groups = dict.fromkeys((r["dataset"], r["system"]) for r in rated)
    out = []
    for dataset, system in groups:
        mine = [r for r in rated if r["dataset"] == dataset and r["system"] == system]
        entry: dict[str, Any] = {"dataset": dataset, "system": system, "seeds": len(mine)}
        for key in [*SUMMARY_KEYS, *COUNTS]:
            values = [float(r[key]) for r in mine if key in r]
            if values:
                entry[key] = spread(values)
        out.append(entry)
    return out


def _cell(stats: dict[str, float] | None, digits: int, signed: bool = False,
          kind: str = "f") -> str:
    if stats is None:
        return ""
    sign = "+" if signed else ""
    mean, low, high = (f"{stats[k]:{sign}.{digits}{kind}}" for k in ("mean", "min", "max"))
    return mean if low == high else f"{mean} ({low} to {high})"


def goal_lines(entries: list[dict[str, Any]]) -> list[str]:
    lines = []
    for entry in entries:
        if entry["system"] not in FITCLASS or "x_grouped" not in entry:
            continue
        ratio, diff = entry["x_grouped"], entry["acc_vs_grouped"]
        verdict = ("met on every seed" if ratio["min"] >= GOAL else
                   "met on the mean, not on every seed" if ratio["mean"] >= GOAL else
                   "not met")
        lines.append(f"- {entry['dataset']}: {entry['system']} / Trainer grouped samples/s "
                     f"{_cell(ratio, 3)}; accuracy minus Trainer grouped's "
                     f"{_cell(diff, 4, signed=True)}; goal >= {GOAL}x: {verdict}")
    return lines


def markdown(rated: list[dict[str, Any]], entries: list[dict[str, Any]]) -> str:
    shown = [{**r, "load_1m": " to ".join(map(str, r["load_1m"])),
              "padding": f"{r['padding']:+.1%}"} for r in rated]
    digits = {"accuracy": 4, "macro_f1": 4, "samples_per_s": 1, "tokens_per_s": 0,
              "x_grouped": 3, "x_default": 3, "acc_vs_grouped": 4, "padding": 1,
              "padded_tokens_per_epoch": 0, "batches_per_epoch": 1}
    table = [{"dataset": e["dataset"], "system": e["system"], "seeds": e["seeds"],
              **{k: _cell(e.get(k), digits[k], signed=k in ("acc_vs_grouped", "padding"),
                          kind="%" if k == "padding" else "f")
                 for k in digits}} for e in entries]
    parts = ["## Runs", "", markdown_table(shown, RUN_COLUMNS), "",
             "## Per dataset and system: mean (min to max) over seeds", "",
             markdown_table(table, SUMMARY_COLUMNS), "", *goal_lines(entries)]
    return "\n".join(parts)
