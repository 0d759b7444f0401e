"""`fitclass pretrain`: task-adaptive pretraining (Gururangan et al. 2020), continued
masked-language-model training of the recipe's text backbone on the task's own texts
(train, valid and an optional unlabelled file; never the labels). Whole-word masking where
the tokenizer is a fast tokenizer with word ids. The output folder is a backbone that
`model.backbone` accepts."""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate.utils import set_seed
from transformers import AutoModelForMaskedLM, AutoTokenizer, DataCollatorForLanguageModeling

from fitclass.atomic import atomic_write_text, follow_umask
from fitclass.data.prepare import read_inputs, read_labelled
from fitclass.errors import FitclassError, RecipeError
from fitclass.models.catalog import get_backbone
from fitclass.precision import load_pretrained
from fitclass.recipe import load_recipe
from fitclass.runs.layout import (
    TOOL,
    Layout,
    has_content,
    refused,
    remove_entries,
    replace_refusal,
)
from fitclass.training.accelerator import make_accelerator
from fitclass.training.callbacks import Callback, CallbackList
from fitclass.training.loop import run_loop
from fitclass.training.masked_lm import MaskedLMStep
from fitclass.training.optim import adamw
from fitclass.training.progress import Reporter
from fitclass.training.state import LoopState

PRETRAIN_INFO = "fitclass_pretrain.json"


def task_texts(recipe: Any, unlabelled: str | Path | None) -> list[str]:
    """Every text of the task: train, valid, unlabelled (pairs contribute both sides)."""
    tables = [read_labelled(recipe.data.train, recipe.data, recipe.data.limit)]
    if recipe.data.valid is not None:
        tables.append(read_inputs(recipe.data.valid, recipe.data))
    if unlabelled is not None:
        tables.append(read_inputs(unlabelled, recipe.data))
    texts: list[str] = []
    for table in tables:
        for text in table.texts:
            texts.extend([text] if isinstance(text, str) else list(text))
    return texts


def mask_batch(collator: DataCollatorForLanguageModeling,
               rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Pad, then mask with transformers' own masking; offsets are padded here because the
    tokenizer's `pad` cannot pad (start, end) pairs."""
    plain = [{k: v for k, v in row.items() if k != "offset_mapping"} for row in rows]
    batch = dict(collator.tokenizer.pad(plain, return_tensors="pt"))
    special = batch.pop("special_tokens_mask")
    offsets = None
    if "offset_mapping" in rows[0]:
        offsets = np.zeros((len(rows), batch["input_ids"].shape[1], 2), dtype=np.int64)
        for i, row in enumerate(rows):
            offsets[i, :len(row["offset_mapping"])] = row["offset_mapping"]
    batch["input_ids"], batch["labels"] = collator.torch_mask_tokens(
        batch["input_ids"], special_tokens_mask=special, offset_mapping=offsets)
    return batch


def pretrain(recipe_source: Any, out: str | Path, *, epochs: int = 1, lr: float = 5e-5,
             batch_size: int = 32, mlm_probability: float = 0.15,
             unlabelled: str | Path | None = None, overrides: list[str] | None = None,
             overwrite: bool = False, reporter: Reporter | None = None,
             callbacks: Iterable[Callback] = ()) -> Path:
    """Continue MLM training of the recipe's backbone; write it to `out`; return `out`.
    `callbacks` hear the same hooks as in fine-tuning (`training/callbacks.py`)."""
    recipe = load_recipe(recipe_source, overrides)
    backbone = get_backbone(recipe.model)
    source = backbone.source
    if not backbone.capabilities.masked_lm or source is None:
        raise RecipeError(f"fitclass pretrain needs a Hugging Face text encoder (masked-LM "
                          f"training); model.backbone is {recipe.model.backbone!r}: set "
                          f"model.backbone to a text model such as minilm or a hub id")
    out = Path(out)
    check_out(out, overwrite)
    reporter = reporter or Reporter()
    set_seed(recipe.train.seed)
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = load_pretrained(AutoModelForMaskedLM.from_pretrained, source)
    texts = task_texts(recipe, unlabelled)
    # whole-word masking groups sub-words by their character offsets (fast tokenizers only)
    whole_word = bool(getattr(tokenizer, "is_fast", False))
    encoded = tokenizer(texts, truncation=True, max_length=recipe.model.max_length,
                        return_offsets_mapping=whole_word, return_special_tokens_mask=True)
    rows: Any = [{k: encoded[k][i] for k in encoded} for i in range(len(texts))]
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=mlm_probability,
                                               whole_word_mask=whole_word,
                                               seed=recipe.train.seed)
    loader = torch.utils.data.DataLoader(rows, batch_size=batch_size, shuffle=True,
                                         collate_fn=lambda batch: mask_batch(collator, batch))
    accelerator = make_accelerator(recipe.train.precision)
    optimizer = adamw(model.parameters(), lr=lr)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    steps = math.ceil(len(loader)) * epochs
    reporter.log(f"pretrain: {len(texts)} texts, {steps} steps, whole-word masking "
                 f"{'on' if whole_word else 'off'}")
    start = time.perf_counter()
    strategy = MaskedLMStep(model, optimizer, loader, accelerator, epochs, reporter.log,
                            recipe.train.log_every)
    state = run_loop(strategy, LoopState(total_steps=steps), CallbackList(callbacks))
    history = state.history
    target = out.resolve()
    staged = target.with_name(f".{target.name}.staging")
    if staged.exists():
        shutil.rmtree(staged)
    accelerator.unwrap_model(model).save_pretrained(staged)
    tokenizer.save_pretrained(staged)
    pooling = Path(source) / "1_Pooling"
    if pooling.is_dir():  # keep sentence-transformers pooling, so `pooling: auto` still means it
        shutil.copytree(pooling, staged / "1_Pooling")
    follow_umask(staged)
    files = sorted([p.name for p in staged.iterdir()] + [PRETRAIN_INFO])
    atomic_write_text(staged / PRETRAIN_INFO, json.dumps({
        "tool": TOOL, "source": source, "texts": len(texts), "epochs": epochs,
        "lr": lr, "whole_word_mask": whole_word, "history": history,
        "seconds": round(time.perf_counter() - start, 2), "files": files}, indent=2))
    _move_into(staged, target, overwrite)
    return out


def backbone_layout(folder: Path) -> Layout:
    """What the pretrain that wrote `folder` wrote: the files its info file lists."""
    names = {PRETRAIN_INFO}
    # no or unreadable info: the folder is not provably ours, which the rule then reports
    with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):
        names |= {str(n) for n in json.loads(
            (folder / PRETRAIN_INFO).read_text(encoding="utf-8")).get("files", [])}
    return Layout("pretrained backbone", frozenset(names), proof=PRETRAIN_INFO)


def check_out(out: Path, overwrite: bool) -> None:
    """`out` must be new or empty, or (with `overwrite`) a backbone a pretrain wrote."""
    if out.exists() and not out.is_dir():
        raise FitclassError(f"{out}: is a file; --out names the folder for the backbone")
    if not has_content(out):
        return
    layout = backbone_layout(out)
    problem = replace_refusal(out, layout)
    if problem is not None:
        raise refused(out, problem, layout)
    if not overwrite:
        raise FitclassError(f"{out}: a pretrained backbone is already here; choose another "
                            f"--out or pass --overwrite to replace it")


def _move_into(staged: Path, target: Path, overwrite: bool) -> None:
    """Put the staged backbone's files into `target`, deleting only the files an earlier
    pretrain wrote there (the info file first, so a kill midway leaves a folder that a
    later --overwrite may replace)."""
    check_out(target, overwrite)  # again: the folder may have changed while training ran
    if has_content(target):
        remove_entries(target, backbone_layout(target))
    target.mkdir(parents=True, exist_ok=True)
    names = [PRETRAIN_INFO] + [p.name for p in staged.iterdir() if p.name != PRETRAIN_INFO]
    for name in names:
        (staged / name).rename(target / name)
    staged.rmdir()
