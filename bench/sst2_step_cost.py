"""Training-step cost of each batching scheme, measured paired (contention-robust).

The end-to-end `cpu_vs_trainer.py` wall times move with whatever else runs on the machine.
This script isolates the one thing the two loops do differently per step, the batches: it
builds the MiniLM classifier once and trains it on one epoch's batches of each scheme, in
interleaved blocks of `--block` steps (fitclass length-grouped, Trainer random,
Trainer group_by_length), so every scheme sees the same machine conditions on average.
Each step is a full forward, backward, gradient clip and AdamW step, fp32.

Reported per scheme: padded tokens per epoch, mean seconds per step, and the projected
seconds for one epoch of training steps (mean step time x steps per epoch).

Usage (from the repo root): .venv/bin/python bench/sst2_step_cost.py --rows 2000 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from accelerate.utils import set_seed
from transformers.trainer_pt_utils import get_length_grouped_indices

from _holdout import markdown_table
from fitclass.data.batching import Collator, LengthGroupedBatchSampler
from fitclass.data.tokens import TokenRows, tokenize_arrays
from fitclass.models.text import TransformerBackbone, embedded_minilm_path
from fitclass.recipe import ModelConfig
from fitclass.training.optim import parameter_groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="passes over every epoch")
    parser.add_argument("--block", type=int, default=9, help="steps per interleaved block")
    parser.add_argument("--out", default="bench/out/sst2_step_cost.json")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    frame = pd.read_csv(Path(args.data_dir) / "sst2" / "train.tsv", sep="\t", dtype=str,
                        keep_default_na=False)
    sample = frame.sample(n=args.rows, random_state=args.seed).reset_index(drop=True)
    set_seed(args.seed)
    classifier = TransformerBackbone(embedded_minilm_path(), ModelConfig(
        max_length=args.max_length)).build(["0", "1"])
    tokens = tokenize_arrays(classifier.tokenizer, sample["sentence"].tolist(), args.max_length)
    rows = TokenRows(tokens, sample["label"].astype(int).to_numpy())
    lengths = tokens.lengths
    size = args.batch_size
    generator = torch.Generator().manual_seed(args.seed)

    def cut(order: np.ndarray) -> list[list[int]]:
        return [order[i:i + size].tolist() for i in range(0, len(order), size)]

    schemes = {
        "fitclass": list(LengthGroupedBatchSampler(list(lengths), size, args.seed)),
        "trainer": cut(torch.randperm(len(rows), generator=generator).numpy()),
        "trainer_grouped": cut(np.array(get_length_grouped_indices(
            lengths.tolist(), size, generator=generator))),
    }
    collate = Collator(classifier.tokenizer)
    module = classifier.module.train()
    optimizer = torch.optim.AdamW(parameter_groups(module, 0.01), lr=5e-5)

    def step(batch_rows: list[int]) -> float:
        batch = collate([rows[i] for i in batch_rows])
        labels = batch.pop("labels")
        batch.pop("row", None)  # the row positions fitclass's loop keeps for its dynamics
        started = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(module(**batch)["logits"], labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - started

    times: dict[str, list[float]] = {name: [] for name in schemes}
    steps = len(schemes["fitclass"])
    load = [os.getloadavg()[0]]
    for _ in range(args.rounds):
        for start in range(0, steps, args.block):
            for name, batches in schemes.items():
                times[name].extend(step(b) for b in batches[start:start + args.block])
        load.append(os.getloadavg()[0])
    results = []
    for name, batches in schemes.items():
        per_step = np.array(times[name])
        first = per_step[:len(batches)]  # round 1: first sight of every batch shape
        later = per_step[len(batches):] if args.rounds > 1 else first
        results.append({
            "scheme": name, "padded_tokens": int(sum(len(b) * lengths[b].max() for b in batches)),
            "steps": len(batches), "mean_step_s_first_round": float(first.mean()),
            "mean_step_s_later_rounds": float(later.mean()),
            "epoch_s_later_rounds": float(later.mean() * len(batches)),
        })
    table = markdown_table(results, list(results[0]))
    print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"settings": vars(args), "torch_threads": torch.get_num_threads(),
                               "load_1m": [round(x, 2) for x in load], "results": results,
                               "step_s": times}, indent=2), encoding="utf-8")
    print(f"load average (1 min) per round: {[round(x, 2) for x in load]}")


if __name__ == "__main__":
    main()
