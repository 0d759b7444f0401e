"""bench/gpu_throughput.py's derived measures, ratios and tables."""

from __future__ import annotations

import argparse
from typing import Any

from _holdout import markdown_table

# issue 15's GPU goals: fitclass / Trainer default and / Trainer grouped samples/s, and MFU
# on 128-token rows
GOALS = {"x_trainer": 2.0, "x_grouped": 1.5, "mfu": 0.40}

TRAIN_COLUMNS = ["dataset", "system", "position", "last_samples_per_s", "last_tokens_per_s",
                 "mfu", "x_trainer", "x_grouped", "samples_per_s", "padded_tokens_per_epoch",
                 "padding", "train_s", "epoch_s", "wall_s"]
PREDICT_COLUMNS = ["system", "weights", "compute", "rows_per_s", "tokens_per_s", "seconds",
                   "agreement"]


def derive(row: dict[str, Any], data: dict[str, Any], args: argparse.Namespace
           ) -> dict[str, Any]:
    """Throughput over all epochs and over the last one (no warm-up), padding, and MFU:
    6 x parameters x real tokens/s over the peak (the last epoch's)."""
    rows, real, epochs = data["train_rows"], data["train_real_tokens"], args.epochs
    last = row["epoch_s"][-1]
    padded = row["padded_tokens"] / epochs
    flops = 6 * row["params"]
    row.update(samples_per_s=rows * epochs / row["train_s"],
               tokens_per_s=real * epochs / row["train_s"],
               last_samples_per_s=rows / last, last_tokens_per_s=real / last,
               real_tokens_per_epoch=real, padded_tokens_per_epoch=padded,
               padding=padded / real - 1,
               mfu=flops * real / last / (args.peak_tflops * 1e12),
               mfu_all_epochs=flops * real * epochs / row["train_s"] / (args.peak_tflops * 1e12),
               mfu_non_embedding=6 * (row["params"] - row["params_embedding"]) * real / last
               / (args.peak_tflops * 1e12))
    return row


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Last-epoch samples/s over Trainer default's (`x_trainer`) and grouped's (`x_grouped`)
    on the same dataset."""
    out = []
    for row in rows:
        peers = {r["system"]: r for r in rows if r["dataset"] == row["dataset"]}
        extra = {}
        for key, system in (("x_trainer", "trainer"), ("x_grouped", "trainer_grouped")):
            if system in peers:
                extra[key] = row["last_samples_per_s"] / peers[system]["last_samples_per_s"]
        out.append({**row, **extra})
    return out


def goal_lines(rated: list[dict[str, Any]]) -> list[str]:
    lines = []
    for row in rated:
        if row["system"] != "fitclass":
            continue
        parts = [f"{key} {row[key]:.2f} (goal >= {GOALS[key]})"
                 for key in ("x_trainer", "x_grouped") if key in row]
        if row["dataset"] == "fixed128":
            parts.append(f"MFU {row['mfu']:.1%} (goal >= {GOALS['mfu']:.0%})")
        lines.append(f"- {row['dataset']}: fitclass " + ", ".join(parts))
    return lines


def markdown(rows: list[dict[str, Any]], predict: dict[str, Any] | None,
             args: argparse.Namespace) -> str:
    rated = ratios(rows)
    shown = [{**r, "mfu": f"{r['mfu']:.1%}", "padding": f"{r['padding']:+.1%}",
              "epoch_s": ", ".join(f"{s:.2f}" for s in r["epoch_s"])} for r in rated]
    parts = [f"## Training ({args.precision}, batch {args.batch_size}, {args.epochs} epochs; "
             f"last_*, MFU and ratios from the last epoch; peak {args.peak_tflops:g} TFLOPS)",
             "", markdown_table(shown, TRAIN_COLUMNS), "", *goal_lines(rated)]
    if predict is not None:
        parts += ["", f"## Predict ({predict['rows']} {predict['dataset']} rows, batch "
                      f"{predict['batch_size']})", "",
                  markdown_table(predict["results"], PREDICT_COLUMNS)]
    return "\n".join(parts)
