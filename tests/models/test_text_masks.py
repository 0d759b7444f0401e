"""The text classifier hands SDPA a 4-D boolean padding mask (no host read of the mask per
forward); its logits equal those of transformers' own 2-D mask handling, and padded rows
equal the same rows unpadded."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer

from fitclass.models.text import SequenceClassifier


def test_four_d_mask_gives_the_logits_of_the_two_d_mask(tiny_bert_dir: Path) -> None:
    encoder = AutoModel.from_pretrained(tiny_bert_dir, attn_implementation="sdpa")
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    torch.manual_seed(0)
    for pooling in ("mean", "cls"):
        module = SequenceClassifier(encoder, 3, pooling, dropout=0.0).eval()
        batch = tokenizer(["football goal today in the rain", "pizza"], padding=True,
                          return_tensors="pt")
        assert not bool(batch["attention_mask"].all())  # the second row is padded
        with torch.no_grad():
            ours = module(**batch)["logits"]
            hidden = encoder(**batch).last_hidden_state  # transformers' 2-D mask path
            theirs = module.head(module.pool(hidden, batch["attention_mask"]))
            alone = module(**tokenizer(["pizza"], return_tensors="pt"))["logits"]
        assert module.encoder_mask(batch["attention_mask"]).shape == (2, 1, 1,
                                                                      batch["input_ids"].shape[1])
        torch.testing.assert_close(ours, theirs)
        torch.testing.assert_close(ours[1:], alone, rtol=1e-4, atol=1e-5)
