"""`fitclass pretrain`: masked-LM training of the backbone on the task's texts, whose output
folder is a backbone the next run fine-tunes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoTokenizer, DataCollatorForLanguageModeling

import fitclass
from fitclass.errors import RecipeError, RunError
from fitclass.pretrain import mask_batch, pretrain, task_texts
from fitclass.recipe import build_recipe

pytestmark = pytest.mark.filterwarnings("ignore:Random token replacement is not supported")

TEXTS = ["supercalifragilistic football responsibilities",
         "a match",
         "internationalisation of the extraordinary software server today",
         "pizza"]


def encoded_rows(tokenizer: Any, texts: list[str], offsets: bool) -> list[dict[str, Any]]:
    """Rows as `pretrain` builds them: unpadded ids, special-token masks, offsets."""
    encoded = tokenizer(texts, truncation=True, max_length=32,
                        return_offsets_mapping=offsets, return_special_tokens_mask=True)
    return [{k: encoded[k][i] for k in encoded} for i in range(len(texts))]


def padded(rows: list[dict[str, Any]], key: str, fill: int) -> torch.Tensor:
    width = max(len(row[key]) for row in rows)
    return torch.tensor([list(row[key]) + [fill] * (width - len(row[key])) for row in rows])


@pytest.mark.parametrize("probability", [0.5, 1.0])
def test_mask_batch_whole_words(tiny_bert_dir: Path, probability: float) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    assert tokenizer.is_fast
    rows = encoded_rows(tokenizer, TEXTS, offsets=True)
    encoding = tokenizer(TEXTS, truncation=True, max_length=32)
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=probability,
                                               whole_word_mask=True, seed=0)
    batch = mask_batch(collator, rows)
    ids = padded(rows, "input_ids", tokenizer.pad_token_id)
    special = padded(rows, "special_tokens_mask", 1).bool()  # padding is special too
    labels, inputs = batch["labels"], batch["input_ids"]
    assert "special_tokens_mask" not in batch and "offset_mapping" not in batch
    assert labels.shape == inputs.shape == ids.shape
    assert torch.equal(batch["attention_mask"], (padded(rows, "input_ids", -1) != -1).long())
    masked = labels != -100
    assert not masked[special].any()  # never [CLS], [SEP] or padding
    assert torch.equal(labels[masked], ids[masked])  # the original token is the target
    assert torch.equal(inputs[~masked], ids[~masked])  # the rest is untouched
    # whole-word masking replaces every chosen token by [MASK]
    assert (inputs[masked] == tokenizer.mask_token_id).all()
    if probability == 1.0:
        assert torch.equal(masked, ~special)
    else:
        assert masked.any() and (~masked & ~special).any()
    # the pieces of a word are masked together
    multi_piece = 0
    for row in range(len(TEXTS)):
        words = encoding.word_ids(row)
        for word in {w for w in words if w is not None}:
            positions = [i for i, w in enumerate(words) if w == word]
            multi_piece += len(positions) > 1
            assert len({bool(masked[row, i]) for i in positions}) == 1, (row, word)
    assert multi_piece >= 2  # the texts do contain words of several pieces


def test_mask_batch_without_offsets_masks_tokens(tiny_bert_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    rows = encoded_rows(tokenizer, TEXTS, offsets=False)
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=1.0, seed=0)
    batch = mask_batch(collator, rows)
    ids = padded(rows, "input_ids", tokenizer.pad_token_id)
    special = padded(rows, "special_tokens_mask", 1).bool()
    assert torch.equal(batch["labels"] == -100, special)
    assert torch.equal(batch["labels"][~special], ids[~special])
    assert torch.equal(batch["input_ids"][special], ids[special])


def test_task_texts_are_train_valid_and_unlabelled(
        tmp_path: Path, train_csv: Path, recipe_for: Callable[..., dict[str, Any]],
        rows_maker: Callable[..., list[dict[str, str]]], table_writer: Callable[..., Path]
) -> None:
    recipe = build_recipe(recipe_for("tiny_bert", train_csv))
    assert len(task_texts(recipe, None)) == 120  # the whole train file, split or not
    extra = [{"id": f"u{i}", "text": f"unlabelled text {i}"} for i in range(7)]
    unlabelled = table_writer(extra, tmp_path / "unlabelled.csv")
    texts = task_texts(recipe, unlabelled)
    assert len(texts) == 127 and texts[-1] == "unlabelled text 6"
    valid = table_writer(rows_maker({"sports": 4, "tech": 3, "food": 3}, seed=9),
                         tmp_path / "valid.csv")
    with_valid = build_recipe(recipe_for("tiny_bert", train_csv,
                                         data={"train": str(train_csv), "valid": str(valid),
                                               "id": "id"}))
    assert len(task_texts(with_valid, None)) == 130
    pairs = table_writer([{"id": "p0", "a": "first side", "b": "second side", "label": "x"},
                          {"id": "p1", "a": "one", "b": "two", "label": "y"}],
                         tmp_path / "pairs.csv")
    pair_recipe = build_recipe(recipe_for("tiny_bert", pairs,
                                          data={"train": str(pairs), "text": ["a", "b"],
                                                "id": "id"}))
    assert task_texts(pair_recipe, None) == ["first side", "second side", "one", "two"]


def test_pretrain_writes_a_backbone_the_next_run_fine_tunes(
        tmp_path: Path, train_csv: Path, tiny_bert_dir: Path,
        recipe_for: Callable[..., dict[str, Any]],
        rows_maker: Callable[..., list[dict[str, str]]], table_writer: Callable[..., Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FITCLASS_CACHE", str(tmp_path / "feature-cache"))
    valid = table_writer(rows_maker({"sports": 10, "tech": 10, "food": 10}, seed=7),
                         tmp_path / "valid.csv")
    recipe = recipe_for("tiny_bert", train_csv,
                        data={"train": str(train_csv), "valid": str(valid), "id": "id"})
    out = tmp_path / "adapted"
    out.mkdir()
    (out / "stale.txt").write_text("not written by a pretrain")
    with pytest.raises(RunError, match="not a fitclass pretrained backbone folder"):
        pretrain(recipe, out, epochs=1, lr=1e-3, overwrite=True)
    (out / "stale.txt").unlink()
    assert pretrain(recipe, out, epochs=1, lr=1e-3, overwrite=True) == out
    record = json.loads((out / "fitclass_pretrain.json").read_text())
    assert record["texts"] == 150  # 120 train rows + 30 valid rows
    assert record["whole_word_mask"] is True
    assert record["epochs"] == 1 and record["source"] == str(tiny_bert_dir)
    assert len(record["history"]) == 1 and record["history"][0]["mlm_loss"] > 0

    encoder = AutoModel.from_pretrained(out)
    assert type(encoder).__name__ == "BertModel"
    adapted = {k: v for k, v in encoder.state_dict().items() if k.startswith("embeddings.")}
    original = load_file(str(tiny_bert_dir / "model.safetensors"))
    assert adapted.keys() <= original.keys()
    assert any(not torch.equal(v, original[k]) for k, v in adapted.items())  # it trained
    assert AutoTokenizer.from_pretrained(out).is_fast

    follow_up = recipe_for("tiny_bert", train_csv,
                           model={"backbone": str(out), "max_length": 32, "dropout": 0.0},
                           train={"batch_size": 16, "stages": [
                               {"epochs": 1, "lr": 3e-3, "trainable": "head"},
                               {"epochs": 1, "lr": 1e-3, "trainable": {"top_k_blocks": 1}}]})
    run = fitclass.train(follow_up, out=tmp_path / "run")
    assert json.loads((run.path / "status.json").read_text())["status"] == "finished"
    # the frozen embeddings of the fine-tuned model are the pretrained output's
    model = load_file(str(run.path / "model" / "model.safetensors"))
    for key, value in adapted.items():
        assert torch.equal(model[f"encoder.{key}"], value), key


def test_pretrain_refuses_a_tfidf_backbone(tmp_path: Path, train_csv: Path,
                                           recipe_for: Callable[..., dict[str, Any]]) -> None:
    with pytest.raises(RecipeError,
                       match=r"needs a Hugging Face text encoder.*model.backbone is .tfidf."):
        pretrain(recipe_for("tfidf", train_csv), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_pretrain_refuses_a_non_empty_out(tmp_path: Path, train_csv: Path,
                                          recipe_for: Callable[..., dict[str, Any]]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(RunError, match=r"not a fitclass pretrained backbone folder") as error:
        pretrain(recipe_for("tiny_bert", train_csv), out)
    assert "--overwrite" not in str(error.value)  # it would not help: the folder is not ours
    assert (out / "keep.txt").read_text() == "precious"
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
