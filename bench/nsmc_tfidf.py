"""TF-IDF + logistic regression (`model.backbone: tfidf`) on all of NSMC train.

NSMC (`nsmc/train.tsv`: id, document, label; 150,000 Korean movie reviews, binary,
balanced) is raw TSV with quote characters inside texts, so the recipe reads it with
`data.quoting: none`. Five documents are empty; fitclass refuses empty texts with a
`DataError` naming the rows, so this script first shows that error on the raw file, then
drops those rows into a copy in the system temp folder (never in the repository) and trains
on the copy. Every setting uses fitclass's own 10% stratified validation split (seeded,
identical across settings) and is scored on it.

Measured per setting:
- `accuracy`, `macro_f1`: on the 10% validation split (argmax, no calibration).
- `fit_s`: fitclass's own fit time (vectorizer fit + logistic regression), the
  `train_seconds` of `metrics.json`; `total_s`: the whole `fitclass.train` call (reading,
  data checks, split, fit, validation scoring, saving the run); `load_1m`: the 1-minute load
  average before and after (above 2, the core count here, other processes competed).
- `accuracy_unseen`: accuracy on the validation rows whose text (case and whitespace
  ignored) does not also occur in the training part; NSMC repeats some reviews, and fitclass
  warns that 3.4% of validation rows leak from train.
- `features`: vocabulary size actually kept.

Usage (from the repo root):
    .venv/bin/python bench/nsmc_tfidf.py
    .venv/bin/python bench/nsmc_tfidf.py --configs char_wb13-200k-C4
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import pandas as pd
import sklearn

import fitclass
from _holdout import markdown_table, scratch_dir
from fitclass.data.checks import normalise
from fitclass.environment import git_revision

#: name -> model keys; the first is fitclass's TF-IDF default.
CONFIGS: dict[str, dict[str, Any]] = {
    "char_wb13-200k-C4": {"analyzer": "char_wb", "ngram_range": [1, 3],
                          "max_features": 200_000, "C": 4.0},
    "char_wb13-500k-C4": {"analyzer": "char_wb", "ngram_range": [1, 3],
                          "max_features": 500_000, "C": 4.0},
    "char_wb24-500k-C4": {"analyzer": "char_wb", "ngram_range": [2, 4],
                          "max_features": 500_000, "C": 4.0},
    "char_wb13-200k-C1": {"analyzer": "char_wb", "ngram_range": [1, 3],
                          "max_features": 200_000, "C": 1.0},
    "char_wb24-500k-C1": {"analyzer": "char_wb", "ngram_range": [2, 4],
                          "max_features": 500_000, "C": 1.0},
    "char_wb24-500k-C8": {"analyzer": "char_wb", "ngram_range": [2, 4],
                          "max_features": 500_000, "C": 8.0},
    "char_wb14-1m-C4": {"analyzer": "char_wb", "ngram_range": [1, 4],
                        "max_features": 1_000_000, "C": 4.0},
}
COLUMNS = ["config", "accuracy", "macro_f1", "accuracy_unseen", "features", "fit_s",
           "total_s"]


def drop_empty_documents(raw: Path, column: str = "document") -> tuple[Path, list[int]]:
    """Copy `raw` without rows whose text is empty or blank (fitclass's own rule), byte for
    byte otherwise; return the copy and the dropped 1-based file line numbers."""
    out = scratch_dir("nsmc") / "train-nonempty.tsv"
    dropped = []
    with raw.open(encoding="utf-8", newline="") as src, out.open("w", encoding="utf-8",
                                                                 newline="") as dst:
        header = src.readline()
        position = header.rstrip("\r\n").split("\t").index(column)
        dst.write(header)
        for number, line in enumerate(src, start=2):
            fields = line.rstrip("\r\n").split("\t")
            if not fields[position].strip():
                dropped.append(number)
                continue
            dst.write(line)
    return out, dropped


def recipe(train: Path, model: dict[str, Any], seed: int) -> dict[str, Any]:
    return {"name": "nsmc-tfidf",
            "data": {"train": str(train.resolve()), "text": "document", "label": "label",
                     "id": "id", "quoting": "none",
                     "split": {"method": "stratified", "valid_size": 0.1, "seed": seed}},
            "model": {"backbone": "tfidf", **model},
            "train": {"seed": seed, "select": {"metric": "accuracy"}},
            "decision": {"calibration": "none"}}


def show_empty_text_error(raw: Path, out: Path, seed: int) -> str:
    """Train on the raw file: fitclass stops in its data checks, before any fitting."""
    try:
        fitclass.train(recipe(raw, CONFIGS["char_wb13-200k-C4"], seed), out=out / "raw-file",
                       overwrite=True)
    except fitclass.DataError as error:
        return str(error)
    raise SystemExit("expected a DataError for the empty documents of the raw file")


def unseen_accuracy(run: fitclass.Run, frame: pd.DataFrame) -> tuple[float, int]:
    """Accuracy on validation rows whose text is not also in the run's training part."""
    predictions = pd.read_csv(run.path / "valid_predictions.csv", dtype=str,
                              keep_default_na=False)
    in_valid = frame["id"].isin(set(predictions["id"]))
    seen = {normalise(text) for text in frame.loc[~in_valid, "document"]}
    unseen = ~predictions["text"].map(normalise).isin(seen)
    right = predictions.loc[unseen, "true_label"] == predictions.loc[unseen, "label"]
    return float(right.mean()), int(unseen.sum())


def run_config(name: str, train: Path, seed: int, out: Path,
               frame: pd.DataFrame) -> dict[str, Any]:
    started, load = time.perf_counter(), os.getloadavg()[0]
    run = fitclass.train(recipe(train, CONFIGS[name], seed), out=out / name, overwrite=True)
    total = time.perf_counter() - started
    load_1m = [round(load, 2), round(os.getloadavg()[0], 2)]
    metrics = run.metrics
    vocabulary = json.loads((run.path / "model" / "vocabulary.json").read_text("utf-8"))
    checks = json.loads((run.path / "data_checks.json").read_text("utf-8"))
    accuracy_unseen, unseen_rows = unseen_accuracy(run, frame)
    row = {"config": name, **CONFIGS[name], "accuracy": metrics["accuracy"],
           "macro_f1": metrics["macro_f1"], "accuracy_unseen": accuracy_unseen,
           "unseen_rows": unseen_rows, "features": len(vocabulary),
           "fit_s": metrics["train_seconds"], "total_s": total, "load_1m": load_1m,
           "valid_rows": metrics.get("n"),
           "warnings": {f["check"]: f["count"] for f in checks["warnings"]}}
    print(json.dumps(row, ensure_ascii=False), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--out", default="bench/out/nsmc_tfidf.json")
    args = parser.parse_args()
    raw = Path(args.data_dir) / "nsmc" / "train.tsv"
    out_json = Path(args.out)
    runs = out_json.parent / "nsmc_runs"
    error = show_empty_text_error(raw, runs, args.seed)
    print(f"raw file refused as expected:\n{error}", flush=True)
    train, dropped = drop_empty_documents(raw)
    print(f"dropped {len(dropped)} empty documents (file lines {dropped}) into {train}",
          flush=True)
    frame = pd.read_csv(train, sep="\t", dtype=str, keep_default_na=False,
                        quoting=csv.QUOTE_NONE)
    rows = []
    for name in args.configs:
        rows.append(run_config(name, train, args.seed, runs, frame))
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps({
            "benchmark": "nsmc_tfidf",
            "settings": vars(args),
            "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                        "python": platform.python_version(), "sklearn": sklearn.__version__,
                        "fitclass": fitclass.__version__, "git_revision": git_revision()},
            "raw_file_error": error, "dropped_lines": dropped, "results": rows,
        }, indent=2, ensure_ascii=False), encoding="utf-8")
    table = markdown_table(rows, COLUMNS)
    print(table)
    out_json.with_suffix(".md").write_text(table + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
