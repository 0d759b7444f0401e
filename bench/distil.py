"""Distillation benchmark (issue 19): an SST-2 ensemble taught to one MiniLM.

Labelled rows: the first `--rows` of a seeded shuffle of sst2/train.tsv; the rest of the
training texts (up to `--unlabelled-rows`, labels dropped) are the unlabelled pool; test:
sst2/dev.tsv. All runs share one validation split of the labelled rows.

- teacher: MiniLM x `--seeds` (seeds S..S+n-1) + TF-IDF word 1-2-gram logistic
  regression, `fitclass.ensemble --method auto`;
- MiniLM on labels alone: the teacher's MiniLM members (same recipe and seeds);
- student: `fitclass.distil TEACHER --student minilm`, each seed, without and with the
  unlabelled pool.

Prints, per model and seed, test accuracy and macro-F1, agreement with the teacher on the
test rows (and on validation, from the student's metrics.json), and predict throughput
(rows/s over the test texts: the ensemble, the student in PyTorch and the student's int8
ONNX graph); then the mean and spread over seeds. Markdown tables, also written to
OUT/distil.md.

Usage (from the repo root): .venv/bin/python bench/distil.py [--rows 2000] [--seeds 3]
Smoke test: .venv/bin/python bench/distil.py --rows 160 --unlabelled-rows 80 --seeds 1 \
    --epochs 1 --max-length 32 --out /tmp/distil-smoke
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
from _holdout import markdown_table, scratch_dir, train_or_reuse
from fitclass.export import export_onnx


def write_pools(data: Path, rows: int, unlabelled_rows: int, seed: int) -> tuple[Path, Path]:
    """The labelled file (first `rows` of a seeded shuffle) and the unlabelled pool (the
    rest of the training sentences, labels dropped)."""
    frame = pd.read_csv(data / "train.tsv", sep="\t", dtype=str, keep_default_na=False)
    frame = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    work = scratch_dir(f"distil-sst2-{rows}-{unlabelled_rows}-{seed}")
    labelled, pool = work / "labelled.csv", work / "unlabelled.csv"
    frame.iloc[:rows].to_csv(labelled, index=False)
    frame.iloc[rows:rows + unlabelled_rows][["sentence"]].to_csv(pool, index=False)
    return labelled, pool


def minilm_settings(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    return {"model": {"backbone": "minilm", "max_length": args.max_length},
            "train": {"seed": args.seed, "epochs": args.epochs, "lr": 5e-5, "batch_size": 32}}


def student_overrides(args: argparse.Namespace, seed: int) -> list[str]:
    return [f"model.max_length={args.max_length}", f"train.epochs={args.epochs}",
            "train.lr=5e-5", "train.batch_size=32", f"train.seed={seed}"]


def rows_per_second(run: fitclass.Run, texts: list[str], engine: str = "torch") -> float:
    run.predict(texts[:64], batch_size=64, engine=engine)  # warm-up: loading, sessions
    start = time.perf_counter()
    run.predict(texts, batch_size=64, engine=engine)
    return round(len(texts) / (time.perf_counter() - start), 1)


def measure(run: fitclass.Run, name: str, seed: int | str, test: Path,
            teacher_labels: list[str] | None) -> dict[str, Any]:
    metrics = run.evaluate(test, batch_size=64)
    texts = pd.read_csv(test, sep="\t", dtype=str, keep_default_na=False)["sentence"].tolist()
    row: dict[str, Any] = {"model": name, "seed": seed, "test_accuracy": metrics["accuracy"],
                           "test_macro_f1": metrics["macro_f1"],
                           "rows_per_s": rows_per_second(run, texts)}
    if teacher_labels is not None:
        labels = run.predict(texts, batch_size=64)["label"].astype(str).tolist()
        row["test_agreement"] = float(np.mean([a == b for a, b in
                                               zip(labels, teacher_labels, strict=True)]))
    summary = run.metrics.get("distillation")
    if isinstance(summary, dict):
        row["valid_agreement"] = summary["agreement"]
        export_onnx(run.path, "int8")
        row["onnx_int8_rows_per_s"] = rows_per_second(fitclass.load_run(run.path), texts,
                                                      "onnx-int8")
    print(json.dumps(row), flush=True)
    return row


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation over seeds of each model's numbers."""
    frame = pd.DataFrame(rows)
    numbers = [c for c in frame.columns if c not in ("model", "seed")]
    out = []
    for name, group in frame.groupby("model", sort=False):
        row: dict[str, Any] = {"model": name, "seeds": len(group)}
        for column in numbers:
            values = group[column].dropna().astype(float)
            if len(values):
                row[column] = (f"{values.mean():.4f} ± {values.std(ddof=1):.4f}"
                               if len(values) > 1 else f"{values.mean():.4f}")
        out.append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--out", default="bench/out/distil")
    parser.add_argument("--rows", type=int, default=2000, help="labelled rows of train.tsv")
    parser.add_argument("--unlabelled-rows", type=int, default=10_000,
                        help="rows of the rest of train.tsv used as unlabelled texts")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--temperature", type=float, default=2.0)
    args = parser.parse_args()
    data, out = Path(args.data_dir).resolve() / "sst2", Path(args.out).resolve()
    test = data / "dev.tsv"
    labelled, pool = write_pools(data, args.rows, args.unlabelled_rows, args.seed)
    base = {"data": {"train": str(labelled), "text": "sentence", "label": "label",
                     "split": {"valid_size": 0.1, "seed": args.seed}}}
    tfidf = train_or_reuse({**base, "model": {"backbone": "tfidf", "analyzer": "word",
                                              "ngram_range": [1, 2]},
                            "train": {"seed": args.seed}}, out / "tfidf")
    members = []
    for seed in range(args.seed, args.seed + args.seeds):
        settings = minilm_settings(args)
        settings["train"]["seed"] = seed
        members.append(train_or_reuse({**base, **settings}, out / f"minilm-seed-{seed}").path)
    teacher = fitclass.ensemble([*members, tfidf.path], out / "teacher", method="auto",
                                overwrite=True)
    texts = pd.read_csv(test, sep="\t", dtype=str, keep_default_na=False)["sentence"].tolist()
    teacher_labels = teacher.predict(texts, batch_size=64)["label"].astype(str).tolist()
    rows = [measure(teacher, "teacher: ensemble (minilm x seeds + tfidf)", "-", test, None)]
    for path in members:
        seed = fitclass.load_run(path).recipe.train.seed
        rows.append(measure(fitclass.load_run(path), "minilm on labels alone", seed, test,
                            teacher_labels))
        for name, unlabelled in (("student", None), ("student + unlabelled", pool)):
            folder = out / f"{name.replace(' + ', '-')}-seed-{seed}"
            student = fitclass.distil(teacher.path, student="minilm", out=folder,
                                      unlabelled=unlabelled, alpha=args.alpha,
                                      temperature=args.temperature,
                                      overrides=student_overrides(args, seed), overwrite=True)
            rows.append(measure(student, name, seed, test, teacher_labels))
    columns = ["model", "seed", "test_accuracy", "test_macro_f1", "test_agreement",
               "valid_agreement", "rows_per_s", "onnx_int8_rows_per_s"]
    summary = summarise(rows)
    text = (markdown_table(rows, columns) + "\n\n"
            + markdown_table(summary, ["model", "seeds", *columns[2:]]))
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    (out / "distil.md").write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
