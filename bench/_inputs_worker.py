"""Checks a benchmark's fitclass recipes and measures its inputs, before any timed run:
`python bench/_inputs_worker.py SPEC.json` (this tree's fitclass on PYTHONPATH).

For each dataset: the recipe loads with the `--fitclass-set` overrides (so a misspelt key
fails here, not an hour into the benchmark), and its training rows' real tokens (ids
after truncation at `model.max_length`, special tokens included, no padding) are counted
with the backbone's own tokenizer. Also reported: the tokenizer's vocabulary size (what
`_probes.TokenCounter` recognises the word embeddings by) and torch's default thread count.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from transformers import AutoTokenizer

import fitclass
from _probes import emit
from fitclass.models.catalog import get_backbone
from fitclass.models.text import TransformerBackbone


def measure(recipe: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    loaded = fitclass.load_recipe(recipe, overrides or None)
    backbone = get_backbone(loaded.model)
    if not isinstance(backbone, TransformerBackbone):
        sys.exit(f"model.backbone {loaded.model.backbone!r}: expected a transformer backbone")
    data = recipe["data"]
    frame = pd.read_csv(data["train"], sep="\t", dtype=str, keep_default_na=False)
    lengths = backbone.token_lengths(frame[data["text"]].tolist())
    kept = np.minimum(lengths, loaded.model.max_length)
    tokenizer = AutoTokenizer.from_pretrained(backbone.source)
    return {"rows": len(frame), "real_tokens_per_epoch": int(kept.sum()),
            "mean_tokens": float(kept.mean()), "max_tokens": int(kept.max()),
            "truncated_rows": int((lengths > loaded.model.max_length).sum()),
            "vocab_size": len(tokenizer), "recipe_with_overrides": loaded.to_yaml()}


def main(spec_path: Path) -> None:
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    datasets = {name: measure(recipe, spec.get("overrides", []))
                for name, recipe in spec["recipes"].items()}
    emit({"datasets": datasets, "torch_threads_default": torch.get_num_threads(),
          "fitclass_version": fitclass.__version__})


if __name__ == "__main__":
    main(Path(sys.argv[1]))
