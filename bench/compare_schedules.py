"""Is probe-then-full really better than a plain fine-tune? (issue 16: uncertainty)

MiniLM on a seeded `--rows` sample of `sst2/train.tsv` (default 2,000), validated and scored
on `sst2/dev.tsv` (all 872 rows, or a seeded `--valid-rows` sample), with `--seeds`
consecutive seeds (default 5, from `--seed`) of two schedules:

- plain: all layers for `--epochs` epochs at lr 5e-5 (docs/benchmarks.md's "direct full
  fine-tune");
- probe-then-full: the head 2 epochs on cached features at lr 1e-3, then all layers
  `--epochs` epochs at 5e-5 (docs/benchmarks.md's "probe (cached) then full").

Each schedule is `fitclass train --seeds N` (members OUT/<schedule>/seed-<s>, their mean
ensemble OUT/<schedule>/ensemble). Reported: every run's macro-F1 and accuracy with its
bootstrap 95% interval over the dev rows; each schedule's mean over seeds with the t
interval across seeds; `fitclass compare` of the two schedules seed by seed (paired on the
dev rows), of their ensembles on the rows, and across seeds (paired t, matched by seed).
This answers whether docs/benchmarks.md's "+0.2 points" for probe-then-full is real.

Runs are reused when finished with the same recipe (`train --seeds` reuses members), so an
interrupted benchmark resumes.

Usage (from the repo root):
    .venv/bin/python bench/compare_schedules.py                      # the benchmark
    .venv/bin/python bench/compare_schedules.py --rows 120 --valid-rows 100 --seeds 2 \
        --epochs 1 --out /tmp/fitclass-bench/compare-smoke          # a smoke run
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import pandas as pd

import fitclass
from _holdout import markdown_table, scratch_dir

METRICS = ["macro_f1", "accuracy"]


def recipes(args: argparse.Namespace, train: Path, valid: Path) -> dict[str, dict[str, Any]]:
    base: dict[str, Any] = {
        "name": "sst2-schedules",
        "data": {"train": str(train), "valid": str(valid), "text": "sentence",
                 "id": "id"},
        "model": {"backbone": "minilm", "max_length": 64},
        "train": {"epochs": args.epochs, "lr": 5e-5, "batch_size": 32, "seed": args.seed,
                  "select": {"metric": "macro_f1"}},
    }
    stages = [{"epochs": 2, "lr": 1e-3, "trainable": "head"},
              {"epochs": args.epochs, "lr": 5e-5, "trainable": "all"}]
    return {"plain": base,
            "probe-then-full": base | {"train": base["train"] | {"stages": stages}}}


def data_files(args: argparse.Namespace) -> tuple[Path, Path]:
    """The train sample and the dev rows, written outside the repository."""
    folder = Path(args.data_dir).resolve() / "sst2"
    train = pd.read_csv(folder / "train.tsv", sep="\t", dtype=str, keep_default_na=False)
    dev = pd.read_csv(folder / "dev.tsv", sep="\t", dtype=str, keep_default_na=False)
    scratch = scratch_dir("compare-schedules")
    sample = train.sample(args.rows, random_state=args.seed)
    sample.insert(0, "id", [f"train-{i}" for i in sample.index])
    dev.insert(0, "id", [f"dev-{i}" for i in dev.index])
    if args.valid_rows:
        dev = dev.sample(args.valid_rows, random_state=args.seed)
    train_file, valid_file = scratch / f"train-{args.rows}.csv", scratch / "dev.csv"
    sample.to_csv(train_file, index=False)
    dev.to_csv(valid_file, index=False)
    return train_file, valid_file


def run_rows(name: str, run: fitclass.Run) -> dict[str, Any]:
    """A run's dev scores with their bootstrap intervals, as a table row."""
    metrics, intervals = run.metrics, run.metrics.get("intervals", {})
    row: dict[str, Any] = {"run": name}
    for metric in METRICS:
        interval = intervals.get(metric)
        row[metric] = (f"{metrics[metric]:.4f} [{interval['low']:.4f}, {interval['high']:.4f}]"
                       if interval else f"{metrics[metric]:.4f}")
    return row


def across_row(name: str, run: fitclass.Run) -> dict[str, Any]:
    across = run.metrics.get("intervals_across_members", {})
    row: dict[str, Any] = {"run": f"{name}: mean of seeds (t interval)"}
    for metric in METRICS:
        interval = across.get(metric)
        row[metric] = (f"{interval['estimate']:.4f} [{interval['low']:.4f}, "
                       f"{interval['high']:.4f}], std {interval['std']:.4f}"
                       if interval else "")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--out", default="bench/out/compare_schedules")
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--valid-rows", type=int, default=0, help="0: all of dev.tsv")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    out = Path(args.out)
    train, valid = data_files(args)
    started = time.perf_counter()
    ensembles = {}
    for schedule, recipe in recipes(args, train, valid).items():
        ensembles[schedule] = fitclass.train_seeds(recipe, args.seeds, out / schedule)
        print(f"{schedule}: {time.perf_counter() - started:.0f}s", flush=True)
    seeds = range(args.seed, args.seed + args.seeds)
    table = []
    for schedule, ensemble in ensembles.items():
        table += [run_rows(f"{schedule} seed {s}",
                           fitclass.load_run(out / schedule / f"seed-{s}")) for s in seeds]
        table += [across_row(schedule, ensemble), run_rows(f"{schedule}: ensemble", ensemble)]
    verdicts = []
    for s in seeds:
        found = fitclass.compare(out / "plain" / f"seed-{s}",
                                 out / "probe-then-full" / f"seed-{s}", metrics=METRICS)
        verdicts += [f"seed {s}: {line}" for line in found.verdicts()]
    pooled = fitclass.compare(ensembles["plain"].path, ensembles["probe-then-full"].path,
                              metrics=METRICS)
    verdicts += [f"ensembles: {line}" for line in pooled.verdicts()]
    verdicts += [f"across seeds ({d.test}): {d.verdict(pooled.name_a, pooled.name_b)}"
                 for d in pooled.across_members.values()]
    text = (markdown_table(table, ["run", *METRICS]) + "\n\n"
            + "\n".join(f"- {line}" for line in verdicts) + "\n")
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare_schedules.md").write_text(text, encoding="utf-8")
    (out / "compare_schedules.json").write_text(json.dumps(
        {"args": vars(args), "ensembles": pooled.to_dict(),
         "wall_seconds": round(time.perf_counter() - started, 1)}, indent=2),
        encoding="utf-8")


if __name__ == "__main__":
    main()
