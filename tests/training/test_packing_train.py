"""Packed and token-budget batches end to end through `fitclass.train` on tiny encoders, and
the batching each run records in `environment.json`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from transformers import AutoTokenizer, RobertaConfig, RobertaModel

import fitclass
from fitclass.errors import RecipeError


def environment(run_path: Path) -> dict[str, Any]:
    return json.loads((run_path / "environment.json").read_text())


@pytest.fixture(scope="module")
def tiny_roberta_dir(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> Path:
    """A tiny RoBERTa (its positions start after the padding index, not at 0) with the tiny
    BERT's tokenizer: an encoder the packing probe finds different packed and padded."""
    folder = tmp_path_factory.mktemp("tiny-roberta")
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    torch.manual_seed(0)
    RobertaModel(RobertaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=37, vocab_size=len(tokenizer),
                               max_position_embeddings=64, type_vocab_size=2,
                               pad_token_id=tokenizer.pad_token_id)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_packed_token_budget_training_end_to_end(tmp_path: Path, train_csv: Path,
                                                 recipe_for: Any) -> None:
    recipe = recipe_for("tiny_bert", train_csv,
                        train={"epochs": 4, "batch_tokens": 128, "packing": "on"})
    run = fitclass.train(recipe, out=tmp_path / "run")
    batching = environment(run.path)["batching"]
    assert batching["mode"] == "packed" and batching["batch_tokens"] == 128
    assert batching["attention"].startswith("block-diagonal mask (sdpa")
    assert batching["reason"].startswith("train.packing: on, and the encoder supports it")
    history = pd.read_csv(run.path / "history.csv")
    steps = history["step"].tolist()
    assert history["epoch"].tolist() == [1.0, 2.0, 3.0, 4.0]  # the same steps every epoch
    assert steps == [steps[0] * epoch for epoch in (1, 2, 3, 4)]
    metrics = json.loads((run.path / "metrics.json").read_text())
    assert metrics["accuracy"] > 0.5  # 3 classes, 60/40/20 rows: it learned something


def test_auto_falls_back_to_padded_batches_and_records_why(
        tmp_path: Path, train_csv: Path, recipe_for: Any, tiny_roberta_dir: Path) -> None:
    recipe = recipe_for("tiny_bert", train_csv, model={"backbone": str(tiny_roberta_dir)},
                        train={"epochs": 1, "batch_tokens": 256, "packing": "auto"})
    run = fitclass.train(recipe, out=tmp_path / "run")
    batching = environment(run.path)["batching"]
    assert batching["mode"] == "padded" and batching["attention"] is None
    assert batching["reason"].startswith("train.packing: auto, and a packed batch gave "
                                         "logits up to")
    assert batching["pad_to_multiple_of"] == 1


def test_packing_on_refuses_an_encoder_that_cannot_pack(
        tmp_path: Path, train_csv: Path, recipe_for: Any, tiny_roberta_dir: Path) -> None:
    recipe = recipe_for("tiny_bert", train_csv, model={"backbone": str(tiny_roberta_dir)},
                        train={"epochs": 1, "packing": "on"})
    with pytest.raises(RecipeError, match=r"train\.packing: on, but this encoder cannot pack"):
        fitclass.train(recipe, out=tmp_path / "run")


def test_padded_runs_record_their_batching(tmp_path: Path, train_csv: Path,
                                           recipe_for: Any) -> None:
    recipe = recipe_for("tiny_bert", train_csv, train={"epochs": 1, "packing": "off"})
    run = fitclass.train(recipe, out=tmp_path / "run")
    batching = environment(run.path)["batching"]
    assert (batching["mode"], batching["reason"]) == ("padded", "train.packing: off")
    assert batching["batch_size"] == 8
