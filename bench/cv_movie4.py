"""Cross-validation and refit on movie4 (issue 16): one run vs the 5-fold average vs a refit.

movie4 (Korean reviews, 4 long-tailed classes, grouped by `movie_id`) is cut once into a
grouped 80/20 train/test hold-out (no movie on both sides; the test part is never seen by
any run). On the 80% part, the TF-IDF char backbone with square-root class weights is
trained three ways:

- `single`: one run, validated on fitclass's own group split (20% of the movies);
- `cv-mean`: `fitclass train --folds K`, the mean of K grouped fold runs (OUT);
- `refit`: `--refit` after the CV, one model on every training row (median best epoch).

Each is scored on the test part: macro-F1 with a 95% percentile bootstrap interval over the
test rows (1,000 resamples, computed here from the predictions), next to the
estimate the run carries before seeing the test rows (the CV's mean over folds with its t
interval, or the single run's validation score) and whether that interval covers the test
score. `--optimize` adds the same three with `decision.optimize: macro_f1` (per-class
offsets fitted on validation / out-of-fold rows; needs a fitclass that has the key).
Wall time: `--folds K` against one run.

Usage (from the repo root):
  .venv/bin/python bench/cv_movie4.py [--folds 5] [--optimize] [--rows N for a smoke test]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import fitclass
from _holdout import holdout, markdown_table, scratch_dir


def macro_f1(true: np.ndarray, pred: np.ndarray, classes: int) -> float:
    """Macro-F1 from a confusion count (fast enough for a thousand resamples)."""
    confusion = np.bincount(true * classes + pred, minlength=classes * classes).reshape(
        classes, classes)
    tp = np.diag(confusion).astype(float)
    denominator = confusion.sum(0) + confusion.sum(1)
    f1 = np.divide(2 * tp, denominator, out=np.zeros(classes), where=denominator > 0)
    return float(f1.mean())


def bootstrap(true: np.ndarray, pred: np.ndarray, classes: int, replicates: int,
              seed: int) -> tuple[float, float]:
    """95% percentile bootstrap interval of macro-F1 over the test rows."""
    rng = np.random.default_rng(seed)
    scores = [macro_f1(true[rows], pred[rows], classes)
              for rows in (rng.integers(0, len(true), len(true)) for _ in range(replicates))]
    low, high = np.percentile(scores, [2.5, 97.5])
    return float(low), float(high)


def test_scores(run: fitclass.Run, test: Path, replicates: int, seed: int) -> dict[str, Any]:
    predicted = run.predict(test, 256)
    names = run.class_names
    index = {name: i for i, name in enumerate(names)}
    true = np.array([index[str(v)] for v in predicted["true_label"]])
    pred = np.array([index[str(v)] for v in predicted["label"]])
    low, high = bootstrap(true, pred, len(names), replicates, seed)
    counts = np.bincount(pred, minlength=len(names))
    return {"test_macro_f1": macro_f1(true, pred, len(names)), "test_low": low,
            "test_high": high, "test_accuracy": float((true == pred).mean()),
            "predicted": json.dumps(dict(zip(names, counts.tolist(), strict=True)))}


def estimate(run: fitclass.Run, source: fitclass.Run) -> dict[str, Any]:
    """The score a run carries before the test: the CV interval, or one split's score (with
    its bootstrap interval when the run records one under `intervals`)."""
    metrics = source.metrics
    cv = metrics.get("cv", {}).get("macro_f1")
    if cv is not None:
        return {"estimate": cv["estimate"], "est_low": cv["low"], "est_high": cv["high"],
                "estimate_from": f"CV mean over {cv['n']} folds (t)"}
    interval = (metrics.get("intervals") or {}).get("macro_f1")
    if isinstance(interval, dict):
        return {"estimate": interval["estimate"], "est_low": interval["low"],
                "est_high": interval["high"], "estimate_from": "validation (bootstrap)"}
    return {"estimate": metrics["macro_f1"], "estimate_from": "validation (one split)"}


def fit_seconds(run: fitclass.Run) -> float:
    """Seconds spent fitting models: the run's own, or the sum over a CV run's fold runs
    (less noisy than wall time on a shared machine)."""
    folds = sorted(run.path.glob("fold-*"))
    runs = [fitclass.load_run(path) for path in folds] if folds else [run]
    return float(sum(r.metrics.get("train_seconds") or 0.0 for r in runs))


def row(name: str, run: fitclass.Run, source: fitclass.Run, test: Path, seconds: float,
        args: argparse.Namespace) -> dict[str, Any]:
    result = {"model": name, **test_scores(run, test, args.boot, args.seed),
              **estimate(run, source), "wall_s": round(seconds, 1),
              "fit_s": round(fit_seconds(run), 1)}
    low, high = result.get("est_low"), result.get("est_high")
    result["covers"] = ("" if low is None else
                        "yes" if low <= result["test_macro_f1"] <= high else "no")
    print(json.dumps(result, ensure_ascii=False), flush=True)
    return result


def timed(call: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    value = call()
    return value, time.perf_counter() - start


def run_config(base: dict[str, Any], tag: str, test: Path, out: Path,
               args: argparse.Namespace) -> list[dict[str, Any]]:
    single, single_s = timed(lambda: fitclass.train(base, out=out / f"single{tag}",
                                                    overwrite=True))
    cv, cv_s = timed(lambda: fitclass.train(base, out=out / f"cv{tag}", folds=args.folds,
                                            overwrite=True))
    refit, refit_s = timed(lambda: fitclass.train(base, out=out / f"cv{tag}",
                                                  folds=args.folds, refit=True))
    return [row(f"single{tag}", single, single, test, single_s, args),
            row(f"cv-mean (K={args.folds}){tag}", cv, cv, test, cv_s, args),
            row(f"refit{tag}", refit, cv, test, refit_s, args)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--out", default="bench/out/cv_movie4")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--boot", type=int, default=1000, help="bootstrap replicates")
    parser.add_argument("--rows", type=int, default=None, help="first N rows (smoke test)")
    parser.add_argument("--optimize", action="store_true",
                        help="also with decision.optimize: macro_f1")
    args = parser.parse_args()
    frame = pd.read_csv(Path(args.data_dir) / "movie4/train.tsv", sep="\t", dtype=str,
                        keep_default_na=False)
    if args.rows:
        frame = frame.head(args.rows)
    train, test = holdout(frame, 0.2, args.seed, group="movie_id")
    work = scratch_dir("cv_movie4")
    train.to_csv(work / "train.csv", index=False)
    test.to_csv(work / "test.csv", index=False)
    base: dict[str, Any] = {
        "name": "movie4-tfidf-char",
        "data": {"train": str(work / "train.csv"), "text": "review", "label": "label",
                 "id": "id", "group": "movie_id",
                 "split": {"method": "group", "valid_size": 0.2, "seed": args.seed}},
        "model": {"backbone": "tfidf", "analyzer": "char_wb", "classifier": "logreg"},
        "imbalance": {"class_weights": "sqrt_inverse"}, "train": {"seed": args.seed}}
    out = Path(args.out)
    rows = run_config(base, "", work / "test.csv", out, args)
    if args.optimize:
        optimized = {**base, "decision": {"optimize": "macro_f1"}}
        rows += run_config(optimized, " +optimize", work / "test.csv", out, args)
    single = next(r for r in rows if r["model"] == "single")
    cv = next(r for r in rows if r["model"].startswith("cv-mean"))
    print(f"\ntrain {len(train)} rows, test {len(test)} rows "
          f"({test['movie_id'].nunique()} movies); true test distribution "
          f"{test['label'].value_counts().sort_index().to_dict()}")
    for key in ("wall_s", "fit_s"):
        print(f"{key}: --folds {args.folds} {cv[key]:.1f}s vs one run {single[key]:.1f}s "
              f"({cv[key] / max(single[key], 1e-9):.1f}x)")
    print()
    print(markdown_table(rows, ["model", "test_macro_f1", "test_low", "test_high",
                                "test_accuracy", "estimate", "est_low", "est_high",
                                "estimate_from", "covers", "wall_s", "fit_s", "predicted"]))
    (out / "results.json").write_text(json.dumps(rows, indent=2, ensure_ascii=False),
                                      encoding="utf-8")


if __name__ == "__main__":
    main()
