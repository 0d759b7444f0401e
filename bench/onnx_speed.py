"""CPU inference speed: PyTorch eager vs ONNX fp32 vs ONNX int8 (issue: reports, ONNX).

Fine-tunes MiniLM briefly on an sst2 sample (or reuses --run), exports it, and measures
sentences per second on sst2/dev.tsv at batch 1 and batch 32 for each engine, plus dev
accuracy for each (the accuracy change from int8).

Usage (from the repo root): .venv/bin/python bench/onnx_speed.py [--run RUN_DIR]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import pandas as pd

import fitclass
from _holdout import markdown_table
from fitclass.export import export_onnx


def sentences_per_second(run: fitclass.Run, engine: str, texts: list[str], batch: int,
                         repeats: int = 1) -> float:
    model = run.engine(engine)
    model.predict_proba(texts[:batch * 2], batch)  # warm-up (sessions, allocations)
    start = time.perf_counter()
    for _ in range(repeats):
        model.predict_proba(texts, batch)
    return len(texts) * repeats / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--run", default=None, help="an existing MiniLM run to export")
    parser.add_argument("--out", default="bench/out/onnx")
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--batch1-rows", type=int, default=200,
                        help="dev rows timed at batch 1 (batch 1 is slow)")
    args = parser.parse_args()
    data = Path(args.data_dir).resolve() / "sst2"
    run_dir = args.run or str(Path(args.out) / "minilm-sst2")
    if args.run is None:
        fitclass.train({"data": {"train": str(data / "train.tsv"),
                                 "valid": str(data / "dev.tsv"), "text": "sentence",
                                 "limit": args.rows},
                        "model": {"backbone": "minilm", "max_length": 64},
                        "train": {"epochs": 2, "seed": 13}}, out=run_dir, overwrite=True)
    export = export_onnx(run_dir, "int8")
    run = fitclass.load_run(run_dir)
    dev = pd.read_csv(data / "dev.tsv", sep="\t", keep_default_na=False)
    texts = dev["sentence"].astype(str).tolist()
    rows: list[dict[str, Any]] = []
    for engine in ("torch", "onnx-fp32", "onnx-int8"):
        predictions = run.predict(texts, batch_size=32, engine=engine)["label"].astype(str)
        row = {"engine": engine,
               "batch1_sent_per_s": sentences_per_second(run, engine,
                                                         texts[:args.batch1_rows], 1),
               "batch32_sent_per_s": sentences_per_second(run, engine, texts, 32),
               "dev_accuracy": float((predictions == dev["label"].astype(str)).mean())}
        print(json.dumps(row), flush=True)
        rows.append(row)
    eager = rows[0]
    for row in rows:
        row["speedup_b1"] = row["batch1_sent_per_s"] / eager["batch1_sent_per_s"]
        row["speedup_b32"] = row["batch32_sent_per_s"] / eager["batch32_sent_per_s"]
    table = markdown_table(rows, ["engine", "batch1_sent_per_s", "batch32_sent_per_s",
                                  "speedup_b1", "speedup_b32", "dev_accuracy"])
    table += (f"\n\nexport check (256 validation rows): fp32 max |prob diff| "
              f"{export['fp32']['max_abs_prob_diff']:.2e}, argmax agreement "
              f"{export['fp32']['argmax_agreement']:.1%}; int8 max |prob diff| "
              f"{export['int8']['max_abs_prob_diff']:.3f}, argmax agreement "
              f"{export['int8']['argmax_agreement']:.1%}")
    print(table)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "onnx.md").write_text(table + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
