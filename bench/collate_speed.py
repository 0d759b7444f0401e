"""Collation micro-benchmark (issue 15): the numpy collator on flat token arrays against the
collator it replaced (one dict of Python lists per row, padded by `tokenizer.pad`).

A micro-benchmark: it times collation alone (no model), on one epoch's length-grouped batches
of SST-2 sentences tokenised by the embedded MiniLM tokenizer, the two collators interleaved
batch by batch so both see the same machine. It also checks that both give equal tensors, and
reports tokenisation time and the Python heap each representation holds (tracemalloc).

Usage (from the repo root):
    .venv/bin/python bench/collate_speed.py --data-dir ../shared/data --rows 2000
"""

from __future__ import annotations

import argparse
import json
import os
import timeit
import tracemalloc
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from fitclass.data.batching import Collator, LengthGroupedBatchSampler
from fitclass.data.tokens import TokenRows, tokenize_arrays
from fitclass.models.text import embedded_minilm_path


def old_rows(tokenizer: PreTrainedTokenizerBase, texts: list[str], labels: np.ndarray,
             max_length: int) -> list[dict[str, Any]]:
    """Before issue 15: the tokenizer's lists, then one dict per row."""
    encoded = tokenizer(texts, truncation=True, max_length=max_length)
    rows = [{key: encoded[key][i] for key in encoded} for i in range(len(texts))]
    for index, row in enumerate(rows):
        row["labels"], row["row"] = labels[index], index
    return rows


class OldCollator:
    """Before issue 15: `tokenizer.pad` on per-row dicts of Python lists."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.tokenizer = tokenizer

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        features = [{k: v for k, v in row.items() if k not in ("labels", "row")}
                    for row in rows]
        batch = dict(self.tokenizer.pad(features, return_tensors="pt"))
        for key in ("labels", "row"):
            batch[key] = torch.as_tensor(np.asarray([row[key] for row in rows]))
        return batch


def collate_batch(collate: Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]],
                  rows: Any, batch: list[int]) -> dict[str, torch.Tensor]:
    """What the DataLoader does per batch: fetch the rows, collate them."""
    return collate([rows[i] for i in batch])


def heap_bytes(build: Callable[[], Any]) -> tuple[int, Any]:
    """Python heap the built object keeps (tracemalloc, after the build's temporaries)."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    built = build()
    kept = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return kept, built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=20, help="timeit repeats per batch")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--out", default="bench/out/collate_speed.json")
    args = parser.parse_args()
    frame = pd.read_csv(Path(args.data_dir) / "sst2" / "train.tsv", sep="\t", dtype=str,
                        keep_default_na=False)
    sample = frame.sample(n=min(args.rows, len(frame)), random_state=args.seed)
    texts, labels = sample["sentence"].tolist(), sample["label"].astype(int).to_numpy()
    tokenizer = AutoTokenizer.from_pretrained(embedded_minilm_path())

    old_heap, before = heap_bytes(lambda: old_rows(tokenizer, texts, labels, args.max_length))
    new_heap, tokens = heap_bytes(lambda: tokenize_arrays(tokenizer, texts, args.max_length))
    after = TokenRows(tokens, labels)
    tokenise = {  # best of 3 each, outside tracemalloc (it slows allocation)
        "old": min(timeit.repeat(lambda: old_rows(tokenizer, texts, labels, args.max_length),
                                 number=1, repeat=3)),
        "arrays": min(timeit.repeat(lambda: tokenize_arrays(tokenizer, texts, args.max_length),
                                    number=1, repeat=3)),
    }

    old_collate, new_collate = OldCollator(tokenizer), Collator(tokenizer)
    batches = list(LengthGroupedBatchSampler(list(tokens.lengths), args.batch_size, args.seed))
    times: dict[str, list[float]] = {"old": [], "numpy": []}
    for batch in batches:
        if len(batch) < args.batch_size:
            continue  # per-batch figures are for full batches
        old_batch, new_batch = old_collate([before[i] for i in batch]), new_collate(
            [after[i] for i in batch])
        assert all(torch.equal(old_batch[k], new_batch[k]) for k in old_batch)
        # interleaved per batch: both collators see the same machine conditions
        for name, collate, rows in (("old", old_collate, before), ("numpy", new_collate, after)):
            run = partial(collate_batch, collate, rows, batch)
            times[name].append(min(timeit.repeat(run, number=1, repeat=args.repeats)))
    tokens_total = int(tokens.lengths.sum())
    result = {
        "rows": len(texts), "batch_size": args.batch_size, "max_length": args.max_length,
        "batches_timed": len(times["old"]), "tokens": tokens_total,
        "collate_ms_per_batch": {k: 1e3 * float(np.median(v)) for k, v in times.items()},
        "speedup": float(np.median(times["old"]) / np.median(times["numpy"])),
        "tokenise_s": tokenise,
        "heap_bytes_per_token": {"old": old_heap / tokens_total,
                                 "arrays": new_heap / tokens_total},
        "load_1min": os.getloadavg()[0], "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
