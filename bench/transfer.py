"""Transfer-schedule, averaging, TAPT and feature-cache benchmark (issue: transfer
schedule, weight averaging and cached features).

MiniLM on a seeded 3,000-row sample of sst2/train.tsv, validated and scored on
sst2/dev.tsv: direct full fine-tune, probe-then-full (head on cached features, then all),
full fine-tune with layer decay; the best checkpoint vs SWA (last 3) vs EMA vs greedy soup
(all recorded from one run with every averaging on: each candidate's dev macro-F1); TAPT
(1 epoch of masked-LM on the train texts) then fine-tune vs without; and the head-only
epoch time on cached features vs running the frozen backbone every epoch.

Usage (from the repo root): .venv/bin/python bench/transfer.py
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import pandas as pd

import fitclass
from _holdout import markdown_table, scratch_dir, train_or_reuse
from fitclass.pretrain import pretrain


def run(name: str, recipe: dict[str, Any], out: Path) -> tuple[fitclass.Run, dict[str, Any]]:
    start = time.perf_counter()
    result = train_or_reuse(recipe, out / name.replace(" ", "-"))
    row = {"config": name, "accuracy": result.metrics["accuracy"],
           "macro_f1": result.metrics["macro_f1"],
           "wall_s": round(time.perf_counter() - start, 1)}
    print(json.dumps(row), flush=True)
    return result, row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--out", default="bench/out/transfer")
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    data = Path(args.data_dir).resolve() / "sst2"
    out = Path(args.out)
    frame = pd.read_csv(data / "train.tsv", sep="\t", dtype=str, keep_default_na=False)
    sample = scratch_dir("transfer") / "train.csv"
    frame.sample(args.rows, random_state=args.seed).to_csv(sample, index=False)
    base: dict[str, Any] = {
        "data": {"train": str(sample), "valid": str(data / "dev.tsv"), "text": "sentence"},
        "model": {"backbone": "minilm", "max_length": 64},
        "train": {"epochs": 3, "lr": 5e-5, "batch_size": 32, "seed": args.seed},
    }
    rows = []
    direct, row = run("direct full fine-tune (+ SWA/EMA/soup recorded)",
                      base | {"averaging": {"swa": {"k": 3, "pick": "last", "keep": "always"},
                                            "ema": {"decay": 0.998}, "soup": True}}, out)
    rows.append(row)
    record = direct.metrics["select"].get("averaging", {})
    for key in ("best_checkpoint", "swa", "ema", "soup"):
        value = record.get(key)
        value = value.get("value") if isinstance(value, dict) else value
        steps = record.get(key, {}).get("steps") if isinstance(record.get(key), dict) else None
        rows.append({"config": f"  weights: {key}" + (f" (steps {steps})" if steps else ""),
                     "macro_f1": value})
    stages = [{"epochs": 2, "lr": 1e-3, "trainable": "head"},
              {"epochs": 3, "lr": 5e-5, "trainable": "all"}]
    rows.append(run("probe (cached) then full", base | {"train": base["train"] |
                                                        {"stages": stages}}, out)[1])
    rows.append(run("full with layer decay 0.8, lr 1e-4",
                    base | {"train": base["train"] | {"layer_decay": 0.8, "lr": 1e-4}}, out)[1])
    start = time.perf_counter()
    tapt_dir = out / "tapt-backbone"
    pretrain({"data": {"train": str(data / "train.tsv"), "text": "sentence"},
              "model": {"backbone": "minilm", "max_length": 64}}, tapt_dir, epochs=1,
             overwrite=True)
    tapt_seconds = time.perf_counter() - start
    _, row = run("TAPT (1 epoch MLM on train texts) then full",
                 base | {"model": base["model"] | {"backbone": str(tapt_dir.resolve())}}, out)
    row["wall_s"] = round(row["wall_s"] + tapt_seconds, 1)
    rows.append(row)
    head_only = {"stages": [{"epochs": 2, "lr": 1e-3, "trainable": "head"}]}
    cached, _ = run("head only, cached features",
                    base | {"train": base["train"] | head_only}, out)
    frozen, _ = run("head only, frozen backbone every epoch",
                    base | {"train": base["train"] | head_only | {"cache_features": False}},
                    out)
    cached_epoch = pd.read_csv(cached.path / "history.csv")["epoch_seconds"].mean()
    frozen_rate = pd.read_csv(frozen.path / "history.csv")["train_samples_per_s"].mean()
    frozen_epoch = args.rows / frozen_rate
    speed = {"config": "cached-feature speed-up (head-only epoch)",
             "cached_epoch_s": round(float(cached_epoch), 3),
             "frozen_epoch_s": round(float(frozen_epoch), 2),
             "speedup": round(float(frozen_epoch / cached_epoch), 1)}
    print(json.dumps(speed), flush=True)
    table = markdown_table(rows, ["config", "accuracy", "macro_f1", "wall_s"])
    table += "\n\n" + markdown_table([speed], ["config", "cached_epoch_s", "frozen_epoch_s",
                                               "speedup"])
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    (out / "transfer.md").write_text(table + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
