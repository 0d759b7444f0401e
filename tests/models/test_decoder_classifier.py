"""Decoder-only LLMs as classifiers: a tiny Llama and Qwen2 built from config with a word-level
tokenizer that has no pad token; last-token pooling, left vs right padding, HF parity, LoRA."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import (
    AutoModel,
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen2Tokenizer,
)

from fitclass.models import adapters
from fitclass.models.text import TransformerBackbone, TransformerClassifier
from fitclass.recipe import ModelConfig, PeftConfig

TEXTS = ["alpha beta gamma", "delta", "a longer sentence with several words in it", "x y z"]
WORDS = sorted({w for text in TEXTS for w in text.split()} | {"the", "cat", "sat"})


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<unk>": 0, "<eos>": 1, **{w: i + 2 for i, w in enumerate(WORDS)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>",
                                   eos_token="<eos>")


def byte_tokenizer() -> PreTrainedTokenizerBase:
    """Qwen2's byte-level BPE with no merges (one token a byte); it has its own pad token.
    (transformers 5 loads a Qwen2 folder's tokenizer as Qwen2Tokenizer whatever class was
    saved, so the word-level one cannot stand in.)"""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = {c: i for i, c in enumerate(sorted(set(bytes_to_unicode().values())))}
    return Qwen2Tokenizer(vocab={**vocab, "<|endoftext|>": len(vocab)}, merges=[])


def decoder_folder(folder: Path, family: str) -> Path:
    tokenizer = tiny_tokenizer() if family == "llama" else byte_tokenizer()
    sizes = {"hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2,
             "vocab_size": len(tokenizer), "max_position_embeddings": 64,
             "eos_token_id": tokenizer.eos_token_id, "pad_token_id": None}
    torch.manual_seed(0)
    model = (LlamaForCausalLM(LlamaConfig(**sizes)) if family == "llama"
             else Qwen2ForCausalLM(Qwen2Config(**sizes)))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def decoder_dir(request: pytest.FixtureRequest,
                tmp_path_factory: pytest.TempPathFactory) -> Path:
    return decoder_folder(tmp_path_factory.mktemp(request.param), request.param)


def classifier_for(source: Path, peft: PeftConfig | None = None) -> TransformerClassifier:
    config = ModelConfig(backbone=str(source), max_length=32, dropout=0.0, peft=peft)
    return TransformerBackbone(str(source), config).build(["a", "b", "c"])


def test_a_decoder_pools_its_last_token_with_a_pad_token_from_eos(decoder_dir: Path) -> None:
    classifier = classifier_for(decoder_dir)
    assert classifier.pooling == "last"
    # the word-level (Llama) tokenizer has no pad token: its end-of-text token pads
    assert classifier.tokenizer.pad_token == ("<eos>" if "llama" in decoder_dir.name
                                              else "<|endoftext|>")
    assert classifier.module.encoder.config.pad_token_id == classifier.tokenizer.eos_token_id


def test_left_and_right_padding_give_the_same_logits(decoder_dir: Path) -> None:
    classifier = classifier_for(decoder_dir)
    torch.nn.init.normal_(classifier.module.head.weight)
    right = classifier.logits(TEXTS)
    classifier.tokenizer.padding_side = "left"
    left = TransformerClassifier(classifier.class_names, classifier.tokenizer,
                                 classifier.module, 32).logits(TEXTS)
    single = np.concatenate([classifier.logits([text]) for text in TEXTS])  # no padding
    assert np.isfinite(left).all()
    assert np.allclose(left, right, atol=1e-5)
    assert np.allclose(single, right, atol=1e-5)
    features = classifier.encode(TEXTS)  # the cached-feature path pools the same way
    assert np.allclose(features @ classifier.module.head.weight.detach().numpy().T
                       + classifier.module.head.bias.detach().numpy(), right, atol=1e-4)


def test_the_logits_are_hugging_faces_sequence_classification(tmp_path: Path) -> None:
    """Same weights in `LlamaForSequenceClassification` (its own last-non-pad pooling)."""
    folder = decoder_folder(tmp_path / "llama", "llama")
    classifier = classifier_for(folder)
    torch.nn.init.normal_(classifier.module.head.weight)
    torch.nn.init.zeros_(classifier.module.head.bias)  # HF's `score` has no bias
    hf = LlamaForSequenceClassification.from_pretrained(folder, num_labels=3)
    hf.config.pad_token_id = classifier.tokenizer.pad_token_id
    hf.score.weight.data.copy_(classifier.module.head.weight.data)
    hf.eval()
    batch = classifier.tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = hf(**batch).logits.numpy()
    assert np.allclose(classifier.logits(TEXTS), expected, atol=1e-5)


def test_lora_finds_the_decoder_projections_and_merges(decoder_dir: Path) -> None:
    encoder = AutoModel.from_pretrained(decoder_dir)
    targets = adapters.resolve_targets(encoder, PeftConfig(), "tiny")
    assert {t.rsplit(".", 1)[-1] for t in targets} == {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    classifier = classifier_for(decoder_dir, PeftConfig(r=4, alpha=8, dropout=0.0))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in classifier.module.named_parameters():
            if "lora_B" in name:
                parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))
    before = classifier.logits(TEXTS)
    classifier.module.encoder = adapters.merged(classifier.module.encoder)
    assert np.allclose(classifier.logits(TEXTS), before, atol=1e-4)


def test_a_decoder_run_with_lora_trains_saves_and_predicts(
        tmp_path: Path, train_csv: Path, recipe_for) -> None:
    import json

    import pandas as pd

    import fitclass

    folder = decoder_folder(tmp_path / "qwen2", "qwen2")
    recipe = recipe_for("tiny_bert", train_csv)
    recipe["model"] = {"backbone": str(folder), "max_length": 48, "dropout": 0.0,
                       "peft": {"r": 4, "alpha": 8}}
    recipe["train"] = {**recipe["train"], "epochs": 1}
    run = fitclass.train(recipe, out=tmp_path / "run")
    info = json.loads((run.path / "model" / "fitclass_model.json").read_text())
    assert info["pooling"] == "last" and info["peft"]["base"] == str(folder)
    texts = pd.read_csv(run.path / "valid_predictions.csv")["text"].astype(str).tolist()
    probs = fitclass.load_run(run.path).predict_proba(texts)
    assert probs.shape == (len(texts), 3) and np.allclose(probs.sum(1), 1.0, atol=1e-5)
