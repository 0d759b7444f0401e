"""Decisions fitted for macro-F1 (issue 16): movie4, TF-IDF char, sqrt class weights.

For each seed the script makes its own grouped 80/20 split by `movie_id` (the 20% test part
is never seen by a run), trains the same recipe twice through `fitclass.train` (argmax, and
`decision.optimize: macro_f1`, whose offsets are fitted on fitclass's own grouped validation
split of the 80%), and scores both on the test part: macro-F1, accuracy, balanced accuracy
and the predicted class counts against the true ones. The validation columns are what the
optimized run reports: its argmax score, the cross-fitted score (metrics.json's headline)
and the in-sample score of the saved offsets.

Usage (from the repo root): .venv/bin/python bench/optimize_movie4.py [--seeds 13 14 15]
[--class-weights none]
(smoke: --limit 3000 --seeds 1 --out /tmp/optimize-smoke)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from _holdout import holdout, markdown_table, scratch_dir, train_or_reuse

KEYS = ("macro_f1", "accuracy", "balanced_accuracy")


def recipe(train: Path, seed: int, optimize: str, weights: str) -> dict[str, Any]:
    """examples/real/movie4_grouped.yaml on the script's training part."""
    return {"name": f"movie4-optimize-{optimize}",
            "data": {"train": str(train), "text": "review", "label": "label", "id": "id",
                     "group": "movie_id",
                     "split": {"method": "group", "valid_size": 0.2, "seed": seed}},
            "model": {"backbone": "tfidf", "classifier": "logreg"},
            "imbalance": {"class_weights": weights},
            "train": {"seed": seed},
            "decision": {"optimize": optimize}}


def one_seed(frame: pd.DataFrame, seed: int, out: Path, weights: str) -> list[dict[str, Any]]:
    train, test = holdout(frame, 0.2, seed, group="movie_id")
    work = scratch_dir(f"optimize-movie4-{seed}")
    train.to_csv(work / "train.csv", index=False)
    test.to_csv(work / "test.csv", index=False)
    true = {str(k): int(v) for k, v in test["label"].value_counts().sort_index().items()}
    rows = []
    for optimize in ("none", "macro_f1"):
        start = time.perf_counter()
        run = train_or_reuse(recipe(work / "train.csv", seed, optimize, weights),
                             out / weights / f"seed-{seed}" / optimize)
        scored = run.evaluate(work / "test.csv", 256)
        row: dict[str, Any] = {"seed": seed, "decision": optimize,
                               "seconds": round(time.perf_counter() - start, 1),
                               **{f"test {k}": scored[k] for k in KEYS},
                               "test predicted": json.dumps(scored["predicted_distribution"]),
                               "test true": json.dumps(true)}
        fitted = run.metrics.get("optimize")
        if fitted is not None:
            row.update({"valid argmax": fitted["score"]["before"],
                        "valid cross-fitted": fitted["score"]["cross_fitted"],
                        "valid in-sample": fitted["score"]["in_sample"],
                        "offsets": json.dumps({k: round(v, 3)
                                               for k, v in fitted["offsets"].items()})})
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def mean_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    means = []
    for optimize in ("none", "macro_f1"):
        picked = [r for r in rows if r["decision"] == optimize]
        mean: dict[str, Any] = {"seed": "mean", "decision": optimize}
        for key in picked[0]:
            values = [r.get(key) for r in picked]
            if all(isinstance(v, float) for v in values):
                mean[key] = float(np.mean(values))
        means.append(mean)
    return means


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--out", default="bench/out/optimize_movie4")
    parser.add_argument("--seeds", type=int, nargs="+", default=[13, 14, 15])
    parser.add_argument("--limit", type=int, default=None,
                        help="first N rows only (a smoke run)")
    parser.add_argument("--class-weights", default="sqrt_inverse",
                        help="imbalance.class_weights (none: the issue's under-predicting model)")
    args = parser.parse_args()
    frame = pd.read_csv(Path(args.data_dir) / "movie4/train.tsv", sep="\t", dtype=str,
                        keep_default_na=False, nrows=args.limit)
    rows = [row for seed in args.seeds
            for row in one_seed(frame, seed, Path(args.out), args.class_weights)]
    rows += mean_rows(rows)
    columns = ["seed", "decision", *(f"test {k}" for k in KEYS), "valid argmax",
               "valid cross-fitted", "valid in-sample", "test predicted", "test true",
               "offsets", "seconds"]
    table = markdown_table(rows, columns)
    print(table)
    path = Path(args.out) / f"optimize_movie4-{args.class_weights}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(table + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
