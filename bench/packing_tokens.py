"""Tokens computed per training epoch under each batching scheme (issue 15), measured
without training: batch composition is deterministic given the seed, so this needs no GPU.

For SST-2 (a seeded sample of `--rows` training sentences) and TREC (all 5,452 training
questions), tokenized by the embedded MiniLM tokenizer at `--max-length`, one epoch of:

- `trainer`: Hugging Face Trainer's default, random batches of `--batch-size` rows padded to
  their longest row;
- `trainer_grouped`: Trainer's `group_by_length` (its megabatch length grouping);
- `grouped`: fitclass's length-grouped rows (`LengthGroupedBatchSampler`), padded;
- `grouped_packed_bins`: the same row batches packed into bins under a block-diagonal mask
  (`train.packing: auto` on CPU / SDPA), bin width chosen by `data/packing.bin_width`;
- `tokens_padded`, `tokens_packed_bins`, `tokens_packed_varlen`: `train.batch_tokens`
  batches, padded (rows x longest), packed into bins, and packed into one varlen sequence
  (flash attention's layout: no padding at all).

fitclass's padded lengths and bins are rounded up to `--pad-multiple` (8: what fitclass does
on CUDA; 1: on CPU); Trainer's rows are padded as its default collator pads, to the longest.

Columns: steps and rows per step; real and computed tokens (computed = the tensor the
encoder runs on: real plus padding); padding as a share of computed tokens; and
`cost_vs_ideal`, the modelled encoder multiply-adds (per layer and hidden unit: each token
slot of a sequence of width W costs 6 d + W, projections plus attention) relative to the
rows computed alone without padding (what varlen attention does; MiniLM: d = 384).

Usage (from the repo root):
    PYTHONPATH=src .venv/bin/python bench/packing_tokens.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from transformers.trainer_pt_utils import get_length_grouped_indices

from _holdout import markdown_table
from fitclass.data.batching import LengthGroupedBatchSampler
from fitclass.data.packing import PackedCollator, TokenBudgetBatchSampler, round_up
from fitclass.data.tokens import tokenize_arrays
from fitclass.models.packed import BIN_WIDTH_FACTOR
from fitclass.models.text import embedded_minilm_path

#: MiniLM's hidden size (the cost model's d).
HIDDEN = 384

#: One batch's computed shape: (sequences, width).
Shape = tuple[int, int]


def read_texts(data_dir: Path, rows: int, seed: int) -> dict[str, list[str]]:
    sst2 = pd.read_csv(data_dir / "sst2" / "train.tsv", sep="\t", dtype=str,
                       keep_default_na=False)
    trec = pd.read_csv(data_dir / "trec" / "train.tsv", sep="\t", dtype=str,
                       keep_default_na=False)
    return {f"SST-2 ({rows:,} rows)": sst2.sample(n=rows, random_state=seed)["sentence"].tolist(),
            f"TREC ({len(trec):,} rows)": trec["text"].tolist()}


def padded_shapes(batches: list[list[int]], lengths: np.ndarray,
                  multiple: int) -> list[Shape]:
    return [(len(b), round_up(int(lengths[b].max()), multiple)) for b in batches]


def packed_shapes(batches: list[list[int]], lengths: np.ndarray,
                  collate: PackedCollator) -> list[Shape]:
    shapes = []
    for batch in batches:
        ids = collate([{"input_ids": np.zeros(lengths[i], dtype=np.int64)} for i in batch])
        shapes.append((int(ids["input_ids"].shape[0]), int(ids["input_ids"].shape[1])))
    return shapes


def schemes(lengths: np.ndarray, args: argparse.Namespace
            ) -> dict[str, tuple[list[list[int]], Callable[[list[list[int]]], list[Shape]]]]:
    """Each scheme's batches (row indices) and how it turns them into computed shapes."""
    size, budget, seed = args.batch_size, args.batch_tokens, args.seed
    multiple = args.pad_multiple
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(lengths), generator=generator).numpy()
    grouped_order = np.array(get_length_grouped_indices(lengths.tolist(), size,
                                                        generator=generator))

    def cut(rows: np.ndarray) -> list[list[int]]:
        return [rows[i:i + size].tolist() for i in range(0, len(rows), size)]

    def padded(batches: list[list[int]]) -> list[Shape]:
        return padded_shapes(batches, lengths, multiple)

    def trainer(batches: list[list[int]]) -> list[Shape]:  # its collator pads to the longest
        return padded_shapes(batches, lengths, 1)

    bins = PackedCollator(0, BIN_WIDTH_FACTOR * args.max_length, hidden_size=HIDDEN,
                          pad_multiple=multiple)
    varlen = PackedCollator(0, budget, varlen=True)

    def sampled(packed: bool, grouped: bool) -> list[list[int]]:
        return list(TokenBudgetBatchSampler(lengths, budget, seed, packed=packed,
                                            group_by_length=grouped, pad_multiple=multiple))

    fitclass_rows = list(LengthGroupedBatchSampler(list(lengths), size, seed))
    return {
        "trainer": (cut(order), trainer),
        "trainer_grouped": (cut(grouped_order), trainer),
        "grouped": (fitclass_rows, padded),
        "grouped_packed_bins": (fitclass_rows, lambda b: packed_shapes(b, lengths, bins)),
        "tokens_padded": (sampled(False, True), padded),
        "tokens_packed_bins": (sampled(True, True), lambda b: packed_shapes(b, lengths, bins)),
        "tokens_packed_varlen": (sampled(True, False),
                                 lambda b: packed_shapes(b, lengths, varlen)),
    }


def measure(name: str, batches: list[list[int]], shapes: list[Shape],
            lengths: np.ndarray, varlen: bool) -> dict[str, Any]:
    real = int(lengths.sum())
    computed = sum(n * w for n, w in shapes)
    ideal = float((lengths * (6 * HIDDEN + lengths)).sum())
    # varlen: one sequence, but attention runs row by row: the ideal exactly
    cost = ideal if varlen else float(sum(n * w * (6 * HIDDEN + w) for n, w in shapes))
    return {"scheme": name, "steps": len(batches),
            "rows_per_step": round(len(lengths) / len(batches), 1), "real_tokens": real,
            "computed_tokens": computed,
            "padding_pct": round(100 * (computed - real) / computed, 1),
            "cost_vs_ideal": round(cost / ideal, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batch-tokens", type=int, default=1024)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--pad-multiple", type=int, default=1,
                        help="round padded lengths up to this (8: fitclass on CUDA)")
    parser.add_argument("--out", default="bench/out/packing_tokens.json")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(embedded_minilm_path())
    report: dict[str, Any] = {"settings": vars(args), "datasets": {}}
    for dataset, texts in read_texts(Path(args.data_dir), args.rows, args.seed).items():
        multiple = args.pad_multiple
        lengths = tokenize_arrays(tokenizer, texts, args.max_length).lengths
        results = [measure(name, batches, shape(batches), lengths,
                           name.endswith("varlen"))
                   for name, (batches, shape) in schemes(lengths, args).items()]
        report["datasets"][dataset] = {"mean_length": float(lengths.mean()),
                                       "max_length": int(lengths.max()), "results": results}
        print(f"\n{dataset}: mean {lengths.mean():.1f} tokens, longest {lengths.max()}; "
              f"batch_size {args.batch_size}, batch_tokens {args.batch_tokens}, padded to a "
              f"multiple of {multiple}\n")
        shown: list[dict[str, object]] = [
            {k: f"{v:,}" if isinstance(v, int) else str(v) for k, v in row.items()}
            for row in results]
        print(markdown_table(shown, list(results[0])))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
