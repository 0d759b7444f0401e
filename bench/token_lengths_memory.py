"""Truncation-check memory on long documents (issue 15): peak RSS of measuring every row's
untruncated token length the old way (one untruncated tokenisation of the whole corpus, all id
lists kept) against `untruncated_lengths` (tokenise at `max_length` in chunks of about 1M
characters, then re-measure only rows that reach it, keeping counts only).

Each method runs in its own process (`--method`), so each peak is its own. The corpus: seeded
documents of `--words` words drawn from a small vocabulary, tokenised by the embedded MiniLM
tokenizer. The old way's time is one pass; the new way's includes the tokenisation training
then loads from the token cache (the old way tokenised training rows a second time).

Usage (from the repo root):
    .venv/bin/python bench/token_lengths_memory.py --docs 300 --words 20000
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time

import numpy as np
from transformers import AutoTokenizer

from fitclass.data.tokens import tokenize_arrays, untruncated_lengths
from fitclass.models.text import embedded_minilm_path

WORDS = ["the", "movie", "was", "a", "wonderful", "surprising", "and", "deeply", "moving",
         "story", "about", "friendship", "in", "city", "at", "night"]


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def measure(method: str, docs: int, words: int, max_length: int) -> dict[str, float | str]:
    rng = random.Random(0)
    texts = [" ".join(rng.choices(WORDS, k=words)) for _ in range(docs)]
    tokenizer = AutoTokenizer.from_pretrained(embedded_minilm_path())
    before = peak_mb()
    started = time.perf_counter()
    if method == "old":
        encoded = tokenizer(texts, truncation=True, max_length=10**6)
        lengths = np.array([len(ids) for ids in encoded["input_ids"]])
    else:
        tokens = tokenize_arrays(tokenizer, texts, max_length)
        lengths = untruncated_lengths(tokenizer, texts, tokens, max_length)
    return {"method": method, "tokens": int(lengths.sum()),
            "rows_over": int((lengths > max_length).sum()),
            "seconds": time.perf_counter() - started, "peak_rss_mb": peak_mb(),
            "peak_rss_growth_mb": peak_mb() - before}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=300)
    parser.add_argument("--words", type=int, default=20000)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--method", choices=["old", "new"], help="run one method (internal)")
    args = parser.parse_args()
    if args.method:
        print(json.dumps(measure(args.method, args.docs, args.words, args.max_length)))
        return
    for method in ("new", "old"):
        subprocess.run([sys.executable, __file__, "--method", method, "--docs", str(args.docs),
                        "--words", str(args.words), "--max-length", str(args.max_length)],
                       check=True)


if __name__ == "__main__":
    main()
