"""Checks a benchmark's fitclass recipes and measures its inputs, before any timed run:
`python bench/_inputs_worker.py SPEC.json` (this tree's fitclass on PYTHONPATH).

For each dataset: the recipe loads with the `--fitclass-set` overrides (so a misspelt key
fails here, not an hour into the benchmark), and its training rows' real tokens (ids
after truncation at `model.max_length`, special tokens included, no padding) are counted
with the backbone's own tokenizer. Also reported: the tokenizer's vocabulary size (what
`_probes.TokenCounter` recognises the word embeddings by) and torch's default thread count.

With `packed` in the spec (`{"batch_rows": N, "batch_tokens": None or a fixed budget}`), each
dataset also gets the overrides of the packed system (`train.packing=on` and a
`train.batch_tokens` budget, `token_budget`), checked the same way.
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

#: fitclass's recipe refuses a token budget below model.max_length rounded up to this
#: (`recipe/batching.py`: a padded CUDA row of max_length must fit)
BUDGET_MULTIPLE = 8


def token_budget(kept: np.ndarray, batch_rows: int, max_length: int) -> int:
    """The real tokens of `batch_rows` rows of mean length: a packed epoch then takes about
    as many steps as the row batches of the other systems (the same number of optimiser
    updates and the same schedule), with rows per step varying around `batch_rows`. At
    least `max_length` rounded up to 8, the smallest budget fitclass accepts."""
    floor = -(-max_length // BUDGET_MULTIPLE) * BUDGET_MULTIPLE
    return max(round(batch_rows * float(kept.mean())), floor)


def packed_overrides(recipe: dict[str, Any], overrides: list[str], kept: np.ndarray,
                     packed: dict[str, Any]) -> dict[str, Any]:
    """The packed system's overrides for this dataset, loaded once so a budget fitclass
    refuses fails here."""
    max_length = int(recipe["model"]["max_length"])
    budget = packed.get("batch_tokens") or token_budget(kept, int(packed["batch_rows"]),
                                                        max_length)
    extra = [*overrides, "train.packing=on", f"train.batch_tokens={budget}"]
    fitclass.load_recipe(recipe, extra)
    return {"packed_batch_tokens": budget, "packed_overrides": extra}


def measure(recipe: dict[str, Any], overrides: list[str],
            packed: dict[str, Any] | None = None) -> dict[str, Any]:
    loaded = fitclass.load_recipe(recipe, overrides or None)
    backbone = get_backbone(loaded.model)
    if not isinstance(backbone, TransformerBackbone):
        sys.exit(f"model.backbone {loaded.model.backbone!r}: expected a transformer backbone")
    data = recipe["data"]
    frame = pd.read_csv(data["train"], sep="\t", dtype=str, keep_default_na=False)
    lengths = backbone.token_lengths(frame[data["text"]].tolist())
    kept = np.minimum(lengths, loaded.model.max_length)
    tokenizer = AutoTokenizer.from_pretrained(backbone.source)
    measured = {"rows": len(frame), "real_tokens_per_epoch": int(kept.sum()),
                "mean_tokens": float(kept.mean()), "max_tokens": int(kept.max()),
                "truncated_rows": int((lengths > loaded.model.max_length).sum()),
                "vocab_size": len(tokenizer), "recipe_with_overrides": loaded.to_yaml()}
    if packed is not None:
        measured.update(packed_overrides(recipe, overrides, kept, packed))
    return measured


def main(spec_path: Path) -> None:
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    datasets = {name: measure(recipe, spec.get("overrides", []), spec.get("packed"))
                for name, recipe in spec["recipes"].items()}
    emit({"datasets": datasets, "torch_threads_default": torch.get_num_threads(),
          "fitclass_version": fitclass.__version__})


if __name__ == "__main__":
    main(Path(sys.argv[1]))
