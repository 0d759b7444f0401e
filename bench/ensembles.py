"""Ensemble benchmarks (issue: ensembles and classical members).

- `movie4`: TF-IDF members (char logreg, word logreg, word nbsvm, char linear SVM) on a
  group split by movie; ensembles by every method; scored on a held-out group split.
- `sst2`: TF-IDF members and MiniLM with 3 seeds (same validation split of train.tsv),
  ensembles by every method, scored on sst2/dev.tsv.

For each member and ensemble: test accuracy, macro-F1, predict throughput (rows/s, the
whole predict call including loading members), and the cross-fitted validation score the
ensemble reports (the rows a combiner was not fitted on).

Usage (from the repo root): .venv/bin/python bench/ensembles.py movie4|sst2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import pandas as pd

import fitclass
from _holdout import holdout, markdown_table, scratch_dir, train_or_reuse


def measure(run: fitclass.Run, test: Path, name: str) -> dict[str, Any]:
    start = time.perf_counter()
    metrics = run.evaluate(test, batch_size=128)
    seconds = time.perf_counter() - start
    row = {"model": name, "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"],
           "predict_rows_per_s": round(metrics["n"] / seconds, 1)}
    if "ensemble" in run.metrics:
        row["valid_held_out_macro_f1"] = run.metrics["macro_f1"]
        members = run.metrics["ensemble"]["members"]
        row["best_member_valid_macro_f1"] = max(m["macro_f1"] for m in members)
    print(json.dumps(row), flush=True)
    return row


def ensembles(members: list[Path], out: Path, test: Path,
              label: str = "ensemble") -> list[dict[str, Any]]:
    rows = []
    for method in ("mean", "weighted", "greedy", "stacking", "auto"):
        run = fitclass.ensemble(members, out / f"ensemble-{method}", method=method,
                                overwrite=True)
        chosen = run.metrics["ensemble"].get("method", method)
        name = f"{label}: auto (chose {chosen})" if method == "auto" else f"{label}: {method}"
        rows.append(measure(run, test, name))
    return rows


def movie4(args: argparse.Namespace) -> list[dict[str, Any]]:
    frame = pd.read_csv(Path(args.data_dir) / "movie4/train.tsv", sep="\t", dtype=str,
                        keep_default_na=False)
    train, test = holdout(frame, 0.2, args.seed, group="movie_id")
    work = scratch_dir("movie4-ensemble")
    train.to_csv(work / "train.csv", index=False)
    test.to_csv(work / "test.csv", index=False)
    base = {"data": {"train": str(work / "train.csv"), "text": "review", "label": "label",
                     "id": "id", "group": "movie_id", "split": {"method": "group"}},
            "train": {"seed": args.seed}}
    members = {
        "tfidf char logreg": {"backbone": "tfidf", "analyzer": "char_wb", "ngram_range": [1, 3]},
        "tfidf word logreg": {"backbone": "tfidf", "analyzer": "word", "ngram_range": [1, 2]},
        "tfidf word nbsvm": {"backbone": "tfidf", "analyzer": "word", "ngram_range": [1, 2],
                             "classifier": "nbsvm"},
        "tfidf char linear_svm": {"backbone": "tfidf", "analyzer": "char_wb",
                                  "ngram_range": [1, 3], "classifier": "linear_svm", "C": 0.2},
    }
    out = Path(args.out) / "movie4"
    rows, paths = [], []
    for name, model in members.items():
        path = out / name.replace(" ", "-")
        run = train_or_reuse({**base, "model": model}, path)
        rows.append(measure(run, work / "test.csv", name))
        paths.append(path)
    return rows + ensembles(paths, out, work / "test.csv")


def sst2(args: argparse.Namespace) -> list[dict[str, Any]]:
    data = Path(args.data_dir).resolve() / "sst2"
    base = {"data": {"train": str(data / "train.tsv"), "text": "sentence", "label": "label",
                     "limit": args.rows, "split": {"valid_size": 0.1, "seed": args.seed}},
            "train": {"seed": args.seed}}
    out = Path(args.out) / "sst2"
    rows, paths = [], []
    for name, model in {
        "tfidf word logreg": {"backbone": "tfidf", "analyzer": "word", "ngram_range": [1, 2]},
        "tfidf word nbsvm": {"backbone": "tfidf", "analyzer": "word", "ngram_range": [1, 2],
                             "classifier": "nbsvm"},
    }.items():
        path = out / name.replace(" ", "-")
        run = train_or_reuse({**base, "model": model}, path)
        rows.append(measure(run, data / "dev.tsv", name))
        paths.append(path)
    minilm = {**base, "model": {"backbone": "minilm", "max_length": 64},
              "train": {"seed": args.seed, "epochs": args.epochs, "lr": 5e-5,
                        "batch_size": 32}}
    seeds = fitclass.train_seeds(minilm, 3, out / "minilm", method="mean")
    member_paths = [Path(m["path"]) for m in seeds.metrics["ensemble"]["members"]]
    for path in member_paths:
        rows.append(measure(fitclass.load_run(path), data / "dev.tsv", f"minilm {path.name}"))
    rows += ensembles(member_paths, out / "minilm-only", data / "dev.tsv",
                      "ensemble of minilm x3")
    rows += ensembles(paths + member_paths, out / "all", data / "dev.tsv",
                      "ensemble of tfidf x2 + minilm x3")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("benchmark", choices=["movie4", "sst2"])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--out", default="bench/out/ensembles")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rows", type=int, default=None,
                        help="sst2: first N rows of train.tsv (CPU budget)")
    args = parser.parse_args()
    rows = {"movie4": movie4, "sst2": sst2}[args.benchmark](args)
    columns = ["model", "accuracy", "macro_f1", "predict_rows_per_s",
               "valid_held_out_macro_f1", "best_member_valid_macro_f1"]
    table = markdown_table(rows, columns)
    print(table)
    out = Path(args.out) / f"{args.benchmark}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
