"""Packed batches on the model side (`models/packed.py`, `models/pooling.py`): a packed batch
gives the logits of a padded one, and encoders that cannot pack fall back or are refused."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from transformers import AttentionInterface, RobertaConfig, RobertaModel

from fitclass.data.batching import Collator
from fitclass.data.packing import PackedCollator
from fitclass.data.tokens import TokenRows, tokenize_arrays
from fitclass.errors import RecipeError
from fitclass.models.packed import training_batching
from fitclass.models.text import SequenceClassifier, TransformerBackbone
from fitclass.recipe import ModelConfig

TEXTS: list[Any] = [
    "the match went to extra time", "ok", "a new phone with a faster chip and a bigger screen",
    ("pasta with tomato", "is it food or sports"), "the striker scored twice in the final",
    "soup", "the laptop battery lasts all day",
]
#: A test attention implementation: flash-style varlen (it reads `cu_seq_lens_q`), run with
#: SDPA one row at a time so the varlen path can be checked on a CPU without flash-attn.
VARLEN_TEST = "fitclass_test_flash_varlen"


def varlen_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor,
                     value: torch.Tensor, attention_mask: torch.Tensor | None,
                     scaling: float | None = None, dropout: float = 0.0,
                     **kwargs: Any) -> tuple[torch.Tensor, None]:
    bounds = kwargs["cu_seq_lens_q"].tolist()
    outputs = [torch.nn.functional.scaled_dot_product_attention(
        query[:, :, start:end], key[:, :, start:end], value[:, :, start:end], scale=scaling)
        for start, end in itertools.pairwise(bounds)]
    return torch.cat(outputs, dim=2).transpose(1, 2).contiguous(), None


AttentionInterface.register(VARLEN_TEST, varlen_attention)


def build(folder: Path, pooling: str) -> Any:
    return TransformerBackbone(str(folder), ModelConfig(max_length=32, pooling=pooling)
                               ).build(["a", "b", "c"])


def training_rows(classifier: Any) -> list[dict[str, Any]]:
    tokens = tokenize_arrays(classifier.tokenizer, TEXTS, classifier.max_length)
    rows = TokenRows(tokens, np.arange(len(TEXTS)) % 3)
    return [rows[i] for i in range(len(rows))]


def eval_logits(module: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor:
    module.eval()
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "row")}
    with torch.no_grad():
        return module(**inputs)["logits"]


@pytest.mark.parametrize("pooling", ["mean", "cls"])
@pytest.mark.parametrize("attention", ["sdpa", "eager", VARLEN_TEST])
def test_packed_logits_equal_padded_logits(tiny_bert_dir: Path, pooling: str,
                                           attention: str) -> None:
    classifier = build(tiny_bert_dir, pooling)
    rows = training_rows(classifier)
    padded = eval_logits(classifier.module, Collator(classifier.tokenizer)(rows))  # sdpa
    classifier.module.encoder.config._attn_implementation = attention
    varlen = attention == VARLEN_TEST
    # bins of 16 tokens: several rows share a bin, the longest row gets its own
    batch = PackedCollator(0, 16, varlen=varlen)(rows)
    assert batch["input_ids"].shape[0] == (1 if varlen else 5)
    packed = eval_logits(classifier.module, batch)
    assert packed.shape == (len(TEXTS), 3)
    torch.testing.assert_close(packed, padded, rtol=1e-5, atol=1e-5)


def test_packed_pooling_keeps_rows_apart(tiny_bert_dir: Path) -> None:
    """Changing one row's tokens changes only that row's logits (no attention across rows)."""
    classifier = build(tiny_bert_dir, "mean")
    rows = training_rows(classifier)
    collate = PackedCollator(0, 64)
    before = eval_logits(classifier.module, collate(rows))
    rows[1] = {**rows[1], "input_ids": [rows[1]["input_ids"][0], 7, 8, 9,
                                        rows[1]["input_ids"][-1]],
               "token_type_ids": [0] * 5, "attention_mask": [1] * 5}
    after = eval_logits(classifier.module, collate(rows))
    changed = ~torch.isclose(before, after, atol=1e-6).all(dim=1)
    assert changed.tolist() == [i == 1 for i in range(len(TEXTS))]


def test_auto_packs_a_bert_encoder_and_says_why(tiny_bert_dir: Path) -> None:
    classifier = build(tiny_bert_dir, "mean")
    batching, collate = training_batching(classifier.module, classifier.module.encoder,
                                          classifier.tokenizer, training_rows(classifier),
                                          "auto", 32)
    assert batching.packed and isinstance(collate, PackedCollator)
    assert batching.attention == "block-diagonal mask (sdpa, bins of up to 128 tokens)"
    assert "same logits packed as padded" in batching.reason


def test_off_pads(tiny_bert_dir: Path) -> None:
    classifier = build(tiny_bert_dir, "cls")
    batching, collate = training_batching(classifier.module, classifier.module.encoder,
                                          classifier.tokenizer, training_rows(classifier),
                                          "off", 32)
    assert not batching.packed and isinstance(collate, Collator)
    assert batching.reason == "train.packing: off"


def roberta_classifier(tiny_bert_dir: Path) -> tuple[SequenceClassifier, Any]:
    """A tiny RoBERTa (positions start at padding_idx + 1, not 0) with the BERT tokenizer."""
    classifier = build(tiny_bert_dir, "mean")
    torch.manual_seed(0)
    encoder = RobertaModel(RobertaConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
        vocab_size=len(classifier.tokenizer), max_position_embeddings=40,
        type_vocab_size=2, pad_token_id=0), add_pooling_layer=False)
    encoder.config._attn_implementation = "sdpa"
    return SequenceClassifier(encoder, 3, "mean", 0.0), classifier


def test_auto_falls_back_when_the_probe_disagrees(tiny_bert_dir: Path) -> None:
    module, classifier = roberta_classifier(tiny_bert_dir)
    batching, collate = training_batching(module, module.encoder, classifier.tokenizer,
                                          training_rows(classifier), "auto", 32)
    assert not batching.packed and isinstance(collate, Collator)
    assert batching.reason.startswith("train.packing: auto, and a packed batch gave logits")
    assert module.training  # the probe put the module back in the mode it found


def test_on_refuses_an_encoder_that_cannot_pack(tiny_bert_dir: Path) -> None:
    module, classifier = roberta_classifier(tiny_bert_dir)
    with pytest.raises(RecipeError, match=r"train.packing: on, but this encoder cannot pack "
                                          r"rows: a packed batch .* set train.packing: auto"):
        training_batching(module, module.encoder, classifier.tokenizer,
                          training_rows(classifier), "on", 32)


def test_an_attention_without_a_packed_path_falls_back(tiny_bert_dir: Path) -> None:
    classifier = build(tiny_bert_dir, "mean")
    classifier.module.encoder.config._attn_implementation = "flex_attention"
    batching, _ = training_batching(classifier.module, classifier.module.encoder,
                                    classifier.tokenizer, training_rows(classifier), "auto",
                                    32)
    assert not batching.packed
    assert "attention implementation 'flex_attention' has no packed path" in batching.reason


def test_a_kind_that_does_not_declare_packing_pads(tiny_bert_dir: Path) -> None:
    classifier = build(tiny_bert_dir, "mean")
    batching, _ = training_batching(classifier.module, classifier.module.encoder,
                                    classifier.tokenizer, training_rows(classifier), "auto",
                                    32, declared=False)
    assert not batching.packed and "does not declare packing" in batching.reason


def test_forward_ignores_keywords_of_other_callers(tiny_bert_dir: Path) -> None:
    """HF Trainer passes `num_items_in_batch` to the model: a padded batch ignores it."""
    classifier = build(tiny_bert_dir, "mean")
    batch = classifier.tokenizer(TEXTS[:2], padding=True, return_tensors="pt")
    module = classifier.module.eval()
    with torch.no_grad():
        plain = module(**batch)["logits"]
        extra = module(**batch, num_items_in_batch=torch.tensor(2))["logits"]
    torch.testing.assert_close(plain, extra)
