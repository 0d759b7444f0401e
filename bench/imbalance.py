"""Imbalance, multi-label and decision benchmarks (issue: imbalance, multi-label, decisions).

Every configuration trains with fitclass's Python API on the training part, fits decisions on
fitclass's own validation split, and is scored on a test hold-out it never saw:

- `unsmile`: multi-label Korean; macro/micro-F1 at 0.5 vs tuned per-label thresholds, for
  TF-IDF (class weights none vs inverse) and MiniLM (pos_weight, focal, none).
- `trec`: 50 fine classes, long-tailed, English, MiniLM: plain CE, class weights, samplers,
  focal and logit adjustment.
- `movie4`: 4 classes, long-tailed, Korean, grouped by movie, TF-IDF: class weights and
  prior correction.

Usage (from the repo root): .venv/bin/python bench/imbalance.py movie4|unsmile|trec
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

UNSMILE_LABELS = ["여성/가족", "남성", "성소수자", "인종/국적", "연령", "지역", "종교",
                  "기타 혐오", "악플/욕설", "clean"]


def score(run: fitclass.Run, test: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Test metrics with the run's fitted decision, and with the default (argmax / 0.5)."""
    return run.evaluate(test, 128), run.evaluate(test, 128, use_decision=False)


def train_and_score(name: str, recipe: dict[str, Any], test: Path, out: Path) -> dict[str, Any]:
    start = time.perf_counter()
    run = train_or_reuse(recipe, out / name)
    seconds = time.perf_counter() - start
    tuned, plain = score(run, test)
    # the run's own training time (a reused run took no time in this call)
    row = {"config": name, "train_s": round(run.metrics.get("train_seconds") or seconds, 1)}
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "micro_f1"):
        if key in tuned:
            row[key] = tuned[key]
            row[f"{key}@default"] = plain[key]
    row["predicted"] = json.dumps(tuned["predicted_distribution"], ensure_ascii=False)
    print(json.dumps(row, ensure_ascii=False), flush=True)
    return row


def movie4(args: argparse.Namespace) -> list[dict[str, Any]]:
    frame = pd.read_csv(Path(args.data_dir) / "movie4/train.tsv", sep="\t", dtype=str,
                        keep_default_na=False)
    train, test = holdout(frame, 0.2, args.seed, group="movie_id")
    work = scratch_dir("movie4")
    train.to_csv(work / "train.csv", index=False)
    test.to_csv(work / "test.csv", index=False)
    base = {"data": {"train": str(work / "train.csv"), "text": "review", "label": "label",
                     "id": "id", "group": "movie_id", "split": {"method": "group"}},
            "model": {"backbone": "tfidf"}, "train": {"seed": args.seed}}
    configs = {f"weights={w}": {"imbalance": {"class_weights": w}}
               for w in ("none", "inverse", "sqrt_inverse", "effective_number")}
    configs["weights=none+prior=uniform"] = {"decision": {"prior_correction": "uniform"}}
    return [train_and_score(name, {**base, **extra}, work / "test.csv", Path(args.out))
            for name, extra in configs.items()]


def unsmile(args: argparse.Namespace) -> list[dict[str, Any]]:
    frame = pd.read_csv(Path(args.data_dir) / "unsmile/train.tsv", sep="\t", dtype=str,
                        keep_default_na=False, quoting=3)
    train, test = holdout(frame, 0.2, args.seed, stratify=UNSMILE_LABELS)
    work = scratch_dir("unsmile")
    train.to_csv(work / "train.csv", index=False)
    test.to_csv(work / "test.csv", index=False)
    base: dict[str, Any] = {"task": "multilabel",
                            "data": {"train": str(work / "train.csv"), "text": "문장",
                                     "label": UNSMILE_LABELS},
                            "train": {"seed": args.seed}}
    tfidf = {"model": {"backbone": "tfidf"}}
    minilm_data = {**base["data"], "limit": args.minilm_rows}
    minilm = {"data": minilm_data,
              "model": {"backbone": "minilm", "max_length": args.max_length},
              "train": {"seed": args.seed, "epochs": args.epochs, "lr": 1e-4,
                        "batch_size": 32, "select": {"metric": "macro_f1"}}}
    configs: dict[str, dict[str, Any]] = {
        "tfidf weights=none": {**tfidf},
        "tfidf weights=inverse": {**tfidf, "imbalance": {"class_weights": "inverse"}},
    }
    if not args.skip_minilm:
        configs.update({
            "minilm bce": {**minilm},
            "minilm bce+pos_weight": {**minilm, "imbalance": {"pos_weight": "auto"}},
            "minilm focal": {**minilm, "imbalance": {"loss": "focal", "gamma": 2.0}},
        })
    return [train_and_score(name, {**base, **extra}, work / "test.csv", Path(args.out))
            for name, extra in configs.items()]


def trec(args: argparse.Namespace) -> list[dict[str, Any]]:
    frame = pd.read_csv(Path(args.data_dir) / "trec/train.tsv", sep="\t", dtype=str,
                        keep_default_na=False)
    train, test = holdout(frame, 0.2, args.seed, stratify="fine_label")
    work = scratch_dir("trec")
    train.to_csv(work / "train.csv", index=False)
    test.to_csv(work / "test.csv", index=False)
    base = {"data": {"train": str(work / "train.csv"), "text": "text", "label": "fine_label",
                     "split": {"valid_size": 0.15}},
            "model": {"backbone": "minilm", "max_length": 32},
            "train": {"seed": args.seed, "epochs": args.epochs, "lr": 2e-4, "batch_size": 32,
                      "select": {"metric": "macro_f1"}}}
    configs: dict[str, dict[str, Any]] = {
        "ce": {},
        "ce weights=inverse": {"class_weights": "inverse"},
        "ce weights=effective_number": {"class_weights": "effective_number", "beta": 0.999},
        "sampler=weighted": {"sampler": "weighted"},
        "sampler=class_aware": {"sampler": "class_aware"},
        "focal gamma=2 alpha=auto": {"loss": "focal", "gamma": 2.0, "alpha": "auto"},
        "logit_adjusted": {"loss": "logit_adjusted"},
    }
    return [train_and_score(name, {**base, "imbalance": extra}, work / "test.csv",
                            Path(args.out)) for name, extra in configs.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("benchmark", choices=["movie4", "unsmile", "trec"])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--out", default="bench/out/imbalance")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--skip-minilm", action="store_true")
    parser.add_argument("--minilm-rows", type=int, default=None,
                        help="unsmile: first N training rows for the MiniLM runs (CPU budget)")
    args = parser.parse_args()
    rows = {"movie4": movie4, "unsmile": unsmile, "trec": trec}[args.benchmark](args)
    columns = [c for c in ("config", "accuracy", "balanced_accuracy", "macro_f1", "micro_f1",
                           "macro_f1@default", "micro_f1@default", "accuracy@default",
                           "train_s", "predicted") if any(c in row for row in rows)]
    table = markdown_table(rows, columns)
    print(table)
    out = Path(args.out) / f"{args.benchmark}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
