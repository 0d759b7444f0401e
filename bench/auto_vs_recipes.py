"""`fitclass auto` against (a) the default recipe and (b) the best hand-written recipe of
docs/benchmarks.md, on a test part none of them saw (issue 18).

Per dataset: a seeded hold-out (20%, stratified, or by movie for movie4, iteratively for
multi-label UnSmile) is written to the scratch folder; `fitclass.auto` gets the rest with a
CPU budget (15 minutes by default) and `preset good`; (a) and (b) train on the same rows.
Every model is scored on the hold-out with `Run.evaluate` (95% bootstrap intervals over the
test rows). Reported: macro-F1 and accuracy with intervals, the seconds each took, and the
budget auto actually used (its auto.json).

(b) is the best recipe each dataset's section of docs/benchmarks.md reports; the overrides
below cite the section. Auto's own choices are in OUT/auto.md.

Usage (from the repo root):
    .venv/bin/python bench/auto_vs_recipes.py sst2-2000 sst2 trec-fine movie4 unsmile \
        nsmc-20000 --time 15m
Smoke (TF-IDF only, 300 rows, 60 s; checks the script, measures nothing):
    .venv/bin/python bench/auto_vs_recipes.py sst2-2000 --smoke
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from _holdout import holdout, markdown_table, scratch_dir, train_or_reuse
from fitclass.diagnosis.findings import nested

os.environ.setdefault("HF_HUB_OFFLINE", "1")

UNSMILE_LABELS = ["여성/가족", "남성", "성소수자", "인종/국적", "연령", "지역", "종교", "기타 혐오",
                  "악플/욕설", "clean", "개인지칭"]
COLUMNS = ["dataset", "model", "macro_f1", "macro_f1_95", "accuracy", "seconds", "budget_used",
           "auto_vs_b"]


@dataclass
class Dataset:
    file: str
    text: str
    label: str | list[str]
    rows: int | None = None
    group: str | None = None
    #: (b): the best hand-written recipe's keys (dotted), from docs/benchmarks.md.
    best: dict[str, Any] = field(default_factory=dict)
    best_from: str = ""


DATASETS = {
    "sst2-2000": Dataset("sst2/train.tsv", "sentence", "label", rows=2000,
                         best={"model.backbone": "minilm", "train.epochs": 3},
                         best_from="Foundation (issue 2): MiniLM fine-tune, SST-2 2,000 rows"),
    "sst2": Dataset("sst2/train.tsv", "sentence", "label",
                    best={"model.backbone": "minilm", "train.epochs": 3},
                    best_from="Ensembles (issue 6): SST-2 MiniLM"),
    "trec-fine": Dataset("trec/train.tsv", "text", "fine_label",
                         best={"model.backbone": "minilm", "train.epochs": 4, "train.lr": 2e-4,
                               "model.max_length": 32, "imbalance.class_weights": "inverse",
                               "train.select.metric": "macro_f1"},
                         best_from="Imbalance (issue 3): TREC fine labels, inverse weights"),
    "movie4": Dataset("movie4/train.tsv", "review", "label", group="movie_id",
                      best={"model.backbone": "tfidf", "imbalance.class_weights": "inverse",
                            "decision.optimize": "macro_f1",
                            "train.select.metric": "macro_f1"},
                      best_from="Decisions fitted for macro-F1 (issue 16): movie4 TF-IDF"),
    "unsmile": Dataset("unsmile/train.tsv", "문장", UNSMILE_LABELS,
                       best={"task": "multilabel", "model.backbone": "tfidf",
                             "decision.thresholds": "per_class",
                             "train.select.metric": "macro_f1"},
                       best_from="Imbalance (issue 3): UnSmile TF-IDF, per-label thresholds"),
    "nsmc-20000": Dataset("nsmc/train.tsv", "document", "label", rows=20000,
                          best={"model.backbone": "tfidf"},
                          best_from="Foundation (issue 2): TF-IDF on NSMC"),
}


def split(name: str, spec: Dataset, data_dir: Path, rows: int | None,
          seed: int) -> tuple[Path, Path]:
    frame = pd.read_csv(data_dir / spec.file, sep="\t", dtype=str, keep_default_na=False)
    frame = frame[frame[spec.text].str.strip() != ""]
    if isinstance(spec.label, list):
        frame[spec.label] = frame[spec.label].astype(int)
    wanted = rows or spec.rows
    if wanted and wanted < len(frame):
        frame = frame.sample(n=wanted, random_state=seed)
    train, test = holdout(frame, 0.2, seed, stratify=spec.label if spec.group is None else None,
                          group=spec.group)
    work = scratch_dir(f"auto-{name}-{wanted or 'all'}-seed{seed}")
    train.to_csv(work / "train.csv", index=False)
    test.to_csv(work / "test.csv", index=False)
    return work / "train.csv", work / "test.csv"


def scored(dataset: str, model: str, run: Any, test: Path, seconds: float,
           used: float | None = None) -> dict[str, Any]:
    metrics = run.evaluate(str(test))
    interval = metrics.get("intervals", {}).get("macro_f1", {})
    row = {"dataset": dataset, "model": model, "macro_f1": metrics.get("macro_f1"),
           "macro_f1_95": f"[{interval.get('low', float('nan')):.3f}, "
                          f"{interval.get('high', float('nan')):.3f}]",
           "accuracy": metrics.get("accuracy"), "seconds": round(seconds, 1),
           "budget_used": "" if used is None else round(used, 1)}
    print(json.dumps(row, ensure_ascii=False), flush=True)
    return row


def recipe_for(spec: Dataset, train: Path, keys: dict[str, Any]) -> dict[str, Any]:
    task = "multilabel" if isinstance(spec.label, list) else "multiclass"
    base = {"task": task, "data": {"train": str(train), "text": spec.text,
                                   "label": spec.label}}
    return {**base, **{k: v for k, v in nested(keys).items() if k != "data"}}


def run_dataset(name: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    import fitclass

    spec = DATASETS[name]
    rows = 300 if args.smoke else None
    train, test = split(name, spec, Path(args.data_dir), rows, args.seed)
    out = Path(args.out) / name
    results = []
    default_keys = {"model.backbone": "tfidf"} if args.smoke else {}
    best_keys = ({k: v for k, v in spec.best.items() if not k.startswith(("model", "train"))}
                 | {"model.backbone": "tfidf"} if args.smoke else spec.best)
    baselines = {"default": ("default recipe", default_keys),
                 "best": ("best hand-written", best_keys)}
    for which, (model, keys) in baselines.items():
        if which not in args.only:
            continue
        started = time.perf_counter()
        run = train_or_reuse(recipe_for(spec, train, keys), out / folder(model))
        results.append(scored(name, model, run, test, time.perf_counter() - started))
    if "auto" not in args.only:
        return results
    started = time.perf_counter()
    run = fitclass.auto(train, label=spec.label, text=spec.text, time=args.time,
                        preset="fast" if args.smoke else args.preset, out=out / "auto")
    used = json.loads((run.path / "auto.json").read_text())["spent_seconds"]
    results.append(scored(name, f"auto {args.time}", run, test, time.perf_counter() - started,
                          used))
    if "best" in args.only:
        results[-1]["auto_vs_b"] = paired(run.path, out / folder(baselines["best"][0]), test)
        print(f"{name}: auto - (b), macro-F1 points on the test rows: "
              f"{results[-1]['auto_vs_b']}", flush=True)
    return results


def folder(model: str) -> str:
    """A baseline's run folder under OUT/DATASET ("best hand-written" -> best-hand-written)."""
    return model.replace(" ", "-")


def paired(auto_run: Path, best_run: Path, test: Path) -> str:
    """Auto - (b) on the test rows: the paired bootstrap interval and test of
    `fitclass compare` (the same rows resampled for both), in macro-F1 points."""
    import fitclass

    difference = fitclass.compare(auto_run, best_run, on=str(test),
                                  metrics=["macro_f1"]).differences["macro_f1"]
    low, high = difference.interval.low, difference.interval.high
    return (f"{100 * difference.interval.estimate:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]"
            f" p={difference.p_value:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("datasets", nargs="+", choices=sorted(DATASETS))
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--out", default=str(scratch_dir("auto-runs")))
    parser.add_argument("--time", default="15m")
    parser.add_argument("--preset", default="good", choices=["fast", "good", "best"])
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--without-default", action="store_true",
                        help="skip (a), the default recipe (on movie4 a MiniLM fine-tune of "
                             "32,000 Korean reviews: about two hours on 2 CPU cores)")
    parser.add_argument("--only", nargs="+", choices=["default", "best", "auto"],
                        default=["default", "best", "auto"],
                        help="train and score only these (a slow (a) can run alone, apart "
                             "from auto's timed budget)")
    parser.add_argument("--smoke", action="store_true",
                        help="300 rows, TF-IDF only, 60 s: checks the script")
    args = parser.parse_args()
    if args.smoke:
        args.time = "60s"
    if args.without_default:
        args.only = [which for which in args.only if which != "default"]
    rows = [row for name in args.datasets for row in run_dataset(name, args)]
    print(markdown_table(rows, COLUMNS))


if __name__ == "__main__":
    main()
