"""Sweeps: what pruning saves, and a small full fine-tune sweep (issue: sweeps and scale-out).

trec: a 30-trial TPE sweep of the MiniLM linear probe on cached features (TREC fine labels,
50 classes, 15% stratified validation split) over the probe's learning rate and epochs,
weight decay and label smoothing, run twice with the same sampler seed: with the median
pruner and without. Reported per sweep: best validation macro-F1, trials complete/pruned,
epochs actually trained (the compute), and wall seconds (the first sweep also pays the
one-off feature extraction; it is reported apart).

sst2: a 6-trial TPE sweep of the full MiniLM fine-tune (lr, weight decay, label smoothing)
on a seeded 2,000-row sample of sst2/train.tsv, scored on sst2/dev.tsv, median pruning.

Both resume: a rerun joins the SQLite study in the output folder and only runs the trials
that are missing.

Usage (from the repo root): .venv/bin/python bench/sweep.py trec|sst2
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd

from _holdout import markdown_table, scratch_dir

os.environ.setdefault("HF_HUB_OFFLINE", "1")

COLUMNS = ["sweep", "pruner", "trials", "complete", "pruned", "best_macro_f1", "best_accuracy",
           "epochs_trained", "trial_wall_s", "best_params"]


def trec_recipe(data_dir: Path) -> dict[str, Any]:
    return {"name": "trec-probe-sweep",
            "data": {"train": str(data_dir / "trec" / "train.tsv"), "text": "text",
                     "label": "fine_label", "split": {"valid_size": 0.15, "seed": 13}},
            "model": {"backbone": "minilm", "max_length": 32},
            "train": {"stages": [{"epochs": 10, "lr": 1e-2, "trainable": "head"}],
                      "batch_size": 64, "eval_every": 1, "select": {"metric": "macro_f1"}},
            "sweep": {"params": {"train.stages.0.lr": {"loguniform": [1e-4, 1e-1]},
                                 "train.stages.0.epochs": {"int": [5, 40]},
                                 "train.weight_decay": {"uniform": [0.0, 0.1]},
                                 "noise.label_smoothing": {"uniform": [0.0, 0.2]}},
                      "sampler": "tpe", "startup_trials": 5}}


def sst2_recipe(data_dir: Path, rows: int, epochs: int) -> dict[str, Any]:
    frame = pd.read_csv(data_dir / "sst2" / "train.tsv", sep="\t", dtype=str,
                        keep_default_na=False)
    sample = frame.sample(n=rows, random_state=13).reset_index(drop=True)
    path = scratch_dir("sst2") / f"train-{rows}-seed13.tsv"
    sample.to_csv(path, sep="\t", index=False)
    return {"name": "sst2-sweep",
            "data": {"train": str(path), "valid": str(data_dir / "sst2" / "dev.tsv"),
                     "text": "sentence"},
            "model": {"backbone": "minilm", "max_length": 64},
            "train": {"epochs": epochs, "eval_every": 0.5, "select": {"metric": "accuracy"}},
            "sweep": {"params": {"train.lr": {"loguniform": [1e-5, 2e-4]},
                                 "train.weight_decay": {"uniform": [0.0, 0.1]},
                                 "noise.label_smoothing": {"uniform": [0.0, 0.2]}},
                      "pruner": "median", "sampler": "tpe", "startup_trials": 2}}


def epochs_trained(out: Path, board: pd.DataFrame) -> float:
    """Epochs each trial actually trained (the last history row's epoch), summed."""
    total = 0.0
    for run_dir in board["run_dir"].dropna():
        history = Path(run_dir) / "history.csv"
        if history.is_file():
            total += float(pd.read_csv(history)["epoch"].max())
    return total


def best_accuracy(summary: dict[str, Any]) -> float | None:
    run = summary.get("best_run")
    if not run or not (Path(run) / "metrics.json").is_file():
        return None
    return json.loads((Path(run) / "metrics.json").read_text()).get("accuracy")


def run_sweep(name: str, recipe: dict[str, Any], out: Path, pruner: str,
              trials: int) -> dict[str, Any]:
    from fitclass.sweep import sweep

    recipe = {**recipe, "sweep": {**recipe["sweep"], "pruner": pruner}}
    folder = out / f"{name}-{pruner}"
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    summary = sweep(recipe, folder, trials=trials, storage=f"sqlite:///{folder / 'sweep.db'}",
                    study_name=f"{name}-{pruner}")
    board = pd.read_csv(folder / "leaderboard.csv")
    row = {"sweep": name, "pruner": pruner, "trials": summary["trials"],
           "complete": summary["complete"], "pruned": summary["pruned"],
           "best_macro_f1" if name == "trec" else "best_accuracy": summary.get("best_value"),
           "epochs_trained": epochs_trained(folder, board),
           "trial_wall_s": float(board["wall_seconds"].fillna(0).sum()),
           "this_call_s": time.perf_counter() - started,
           "best_params": json.dumps(summary.get("best_params", {}))}
    if name == "trec":
        row["best_accuracy"] = best_accuracy(summary)
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("benchmark", choices=["trec", "sst2"])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--out", default="bench/out/sweep")
    parser.add_argument("--trials", type=int, default=None)
    parser.add_argument("--rows", type=int, default=2000, help="sst2 sample size")
    parser.add_argument("--epochs", type=int, default=2, help="sst2 epochs per trial")
    args = parser.parse_args()
    data_dir, out = Path(args.data_dir), Path(args.out)
    rows = []
    if args.benchmark == "trec":
        recipe = trec_recipe(data_dir)
        for pruner in ("median", "none"):
            rows.append(run_sweep("trec", recipe, out, pruner, args.trials or 30))
    else:
        recipe = sst2_recipe(data_dir, args.rows, args.epochs)
        rows.append(run_sweep("sst2", recipe, out, "median", args.trials or 6))
    (out / f"{args.benchmark}.json").write_text(json.dumps(rows, indent=2))
    table = markdown_table(rows, COLUMNS)
    (out / f"{args.benchmark}.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
