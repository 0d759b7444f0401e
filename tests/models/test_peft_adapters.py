"""`model.peft`: LoRA/IA3 adapters on the tiny BERT; the recipe's checks, which layers get
adapters, what trains, what a run saves, loading it back, merging, resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.numpy import load_file, save_file
from transformers import AutoModel, BertConfig

import fitclass
from fitclass.errors import RecipeError
from fitclass.models import adapters
from fitclass.models.text import TransformerBackbone, TransformerClassifier
from fitclass.recipe import ModelConfig, PeftConfig, load_recipe
from fitclass.training import checkpoint, loop

LORA = {"method": "lora", "r": 4, "alpha": 8, "dropout": 0.0}


@pytest.fixture(scope="module")
def still_bert(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT without dropout: a resumed run must repeat an uninterrupted one."""
    folder = tmp_path_factory.mktemp("still-bert-peft")
    shutil.copytree(tiny_bert_dir, folder, dirs_exist_ok=True)
    config = BertConfig.from_pretrained(folder)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    config.save_pretrained(folder)
    return folder


def built(source: Path, **peft: Any) -> TransformerClassifier:
    config = ModelConfig(backbone=str(source), max_length=32, dropout=0.0,
                         peft=PeftConfig(**{**LORA, **peft}))
    return TransformerBackbone(str(source), config).build(["a", "b", "c"])


def perturbed(classifier: TransformerClassifier) -> TransformerClassifier:
    """Adapters away from their identity start (LoRA's B is zero when built)."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, parameter in classifier.module.named_parameters():
            if name not in classifier.module.fixed:
                parameter.add_(0.2 * torch.randn(parameter.shape, generator=generator))
    return classifier


TEXTS = ["alpha beta gamma", "delta", "a longer sentence with several words in it", "x y"]


def test_the_recipe_refuses_peft_where_it_cannot_apply(train_csv: Path, recipe_for) -> None:
    with pytest.raises(RecipeError, match=r"model\.peft needs a backbone .* 'tfidf'"):
        load_recipe(recipe_for("tfidf", train_csv, model={"backbone": "tfidf",
                                                          "peft": LORA}))
    with pytest.raises(RecipeError, match=r"train\.gradient_checkpointing needs a neural"):
        load_recipe(recipe_for("tfidf", train_csv, train={"gradient_checkpointing": True}))
    with pytest.raises(RecipeError, match=r"model\.peft\.method.*no BitFit method"):
        load_recipe(recipe_for("tiny_bert", train_csv), ["model.peft.method=bitfit"])
    with pytest.raises(RecipeError, match=r"model\.peft\.target_modules.*non-empty list"):
        load_recipe(recipe_for("tiny_bert", train_csv), ["model.peft.target_modules=[]"])
    with pytest.raises(RecipeError, match=r"model\.peft\.r"):
        load_recipe(recipe_for("tiny_bert", train_csv), ["model.peft.r=0"])
    recipe = load_recipe(recipe_for("tiny_bert", train_csv), ["model.peft.method=lora"])
    assert recipe.to_dict()["model"]["peft"] == {"method": "lora", "r": 16, "alpha": 32,
                                                 "dropout": 0.05, "target_modules": "auto"}
    assert recipe.train.gradient_checkpointing is False


def test_auto_targets_are_the_projections_inside_the_blocks(tiny_bert_dir: Path) -> None:
    encoder = AutoModel.from_pretrained(tiny_bert_dir)
    targets = adapters.resolve_targets(encoder, PeftConfig(), "tiny")
    assert {t.rsplit(".", 1)[-1] for t in targets} == {"query", "key", "value", "dense"}
    assert len(targets) == 2 * 6  # per block: q, k, v, attention out, intermediate, output
    assert not any("pooler" in t for t in targets)  # the pooler's dense is not in a block
    with pytest.raises(RecipeError, match=r"target_modules.*named.*'query'"):
        adapters.resolve_targets(encoder, PeftConfig(target_modules=["q_proj"]), "tiny")


def test_only_adapters_and_head_train(tiny_bert_dir: Path) -> None:
    classifier = built(tiny_bert_dir, target_modules=["query", "value"])
    trainable = {n: p.numel() for n, p in classifier.module.named_parameters()
                 if p.requires_grad}
    hidden, r = 32, 4
    lora = 2 * 2 * r * (hidden + hidden)  # 2 blocks x (query, value), A and B
    assert sum(trainable.values()) == lora + hidden * 3 + 3  # + the head
    assert {n for n in trainable if "lora_" not in n} == {"head.weight", "head.bias"}
    assert classifier.fixed_parameters() == {
        n for n, _ in classifier.module.named_parameters() if n not in trainable}


@pytest.mark.parametrize("method", ["lora", "ia3"])
def test_save_load_and_merge_give_the_same_logits(tiny_bert_dir: Path, tmp_path: Path,
                                                  method: str) -> None:
    classifier = perturbed(built(tiny_bert_dir, method=method))
    expected = classifier.logits(TEXTS)
    classifier.save(tmp_path / "model")
    saved = load_file(str(tmp_path / "model" / "model.safetensors"))
    assert set(saved) == {n for n in classifier.module.state_dict()
                          if n not in classifier.module.fixed}
    assert {k.split(".")[0] for k in saved} == {"encoder", "head"}
    info = json.loads((tmp_path / "model" / "fitclass_model.json").read_text())
    assert info["peft"]["method"] == method and info["peft"]["base"] == str(tiny_bert_dir)

    loaded = TransformerBackbone.load(tmp_path / "model")
    assert np.allclose(loaded.logits(TEXTS), expected, atol=1e-5)
    loaded.module.encoder = adapters.merged(loaded.module.encoder)
    assert not adapters.has_adapters(loaded.module.encoder)
    assert np.allclose(loaded.logits(TEXTS), expected, atol=1e-4)


def test_a_damaged_adapter_file_is_named(tiny_bert_dir: Path, tmp_path: Path) -> None:
    classifier = built(tiny_bert_dir)
    classifier.save(tmp_path / "model")
    other = built(tiny_bert_dir, target_modules=["query"])
    other.save(tmp_path / "other")
    shutil.copy(tmp_path / "other" / "model.safetensors", tmp_path / "model")
    with pytest.raises(fitclass.RunError, match=r"model\.safetensors.*does not fit"):
        TransformerBackbone.load(tmp_path / "model")


def peft_recipe(recipe_for, train_csv: Path, backbone: Path, **train: Any) -> dict[str, Any]:
    recipe: dict[str, Any] = recipe_for("tiny_bert", train_csv)
    recipe["model"] = {**recipe["model"], "backbone": str(backbone), "peft": LORA}
    recipe["train"] = {**recipe["train"], "epochs": 2, "lr": 1e-2, **train}
    return recipe


def test_a_run_with_stages_layer_decay_and_ema_trains_only_adapters_and_head(
        tmp_path: Path, train_csv: Path, recipe_for, tiny_bert_dir: Path) -> None:
    recipe = peft_recipe(recipe_for, train_csv, tiny_bert_dir, layer_decay=0.8,
                         stages=[{"epochs": 1, "lr": 1e-2, "trainable": "head"},
                                 {"epochs": 1, "lr": 1e-2, "trainable": "all"}],
                         cache_features=False, gradient_checkpointing=True)
    recipe["averaging"] = {"ema": {"decay": 0.9}}
    run = fitclass.train(recipe, out=tmp_path / "run")
    classifier = run.classifier
    assert isinstance(classifier, TransformerClassifier)
    base = AutoModel.from_pretrained(tiny_bert_dir).state_dict()
    weights = classifier.module.encoder.get_base_model().state_dict()
    for name, tensor in base.items():  # the backbone's own weights never moved
        kept = name if name in weights else name.replace(".weight", ".base_layer.weight")
        kept = kept if kept in weights else name.replace(".bias", ".base_layer.bias")
        assert torch.equal(weights[kept], tensor), name
    history = pd.read_csv(run.path / "history.csv")
    assert history["stage"].tolist() == [0, 1] and "ema_macro_f1" in history

    valid = pd.read_csv(run.path / "valid_predictions.csv")
    raw = load_file(str(run.path / "valid_probs.safetensors"))["raw"]
    assert np.allclose(classifier.predict_proba(valid["text"].astype(str).tolist()), raw,
                       atol=1e-5)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, train_csv: Path, recipe_for,
                  still_bert: Path) -> tuple[dict[str, Any], fitclass.Run]:
    """A 3-epoch LoRA run trained without a cut, and its recipe."""
    recipe = peft_recipe(recipe_for, train_csv, still_bert, epochs=3)
    return recipe, fitclass.train(recipe, out=tmp_path_factory.mktemp("peft") / "full")


def interrupt_at_second_evaluation(monkeypatch: pytest.MonkeyPatch) -> None:
    """The training stops as a Ctrl-C at its second evaluation would stop it."""
    real, calls = loop._evaluate, {"n": 0}

    def evaluate(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "_evaluate", evaluate)


@pytest.mark.parametrize("layout", ["trainable", "every tensor"])
def test_a_peft_run_resumes_to_the_same_numbers(
        tmp_path: Path, uninterrupted: tuple[dict[str, Any], fitclass.Run],
        monkeypatch: pytest.MonkeyPatch, layout: str) -> None:
    """The resume state holds the adapters and the head (the frozen base is rebuilt from
    the backbone); one written with every tensor (before it left the base out) resumes too,
    and both end where the uninterrupted run did."""
    recipe, full = uninterrupted
    interrupt_at_second_evaluation(monkeypatch)
    if layout == "every tensor":
        monkeypatch.setattr(checkpoint, "without_fixed", lambda state, fixed: state)
    with pytest.raises(KeyboardInterrupt):
        fitclass.train(recipe, out=tmp_path / "cut")
    monkeypatch.undo()
    best = load_file(str(tmp_path / "cut" / "checkpoints" / "best" / "model.safetensors"))
    assert best and all("lora_" in k or k.startswith("head.") for k in best)  # no base weights
    module = full.classifier.module  # type: ignore[attr-defined]
    last = tmp_path / "cut" / "checkpoints" / "last" / "model.safetensors"
    saved = load_file(str(last))
    state_bytes = sum(t.numel() * t.element_size() for t in module.state_dict().values())
    if layout == "trainable":
        assert set(saved) == {k for k in module.state_dict() if k not in module.fixed}
        assert last.stat().st_size < state_bytes / 4  # adapters + head: a fraction
        optimizer = torch.load(last.parent / "optimizer.bin", weights_only=False)
        trained = [n for n, _ in module.named_parameters() if n not in module.fixed]
        assert len(optimizer["state"]) == len(trained)  # moments of these alone
    else:
        assert set(saved) == set(module.state_dict())
    resumed = fitclass.train({}, resume=tmp_path / "cut")
    lora_b = [p for n, p in module.named_parameters() if "lora_B" in n]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b)  # the adapters trained
    columns = ["step", "train_loss", "valid_loss", "accuracy"]
    rows = pd.read_csv(resumed.path / "history.csv")[columns].to_numpy()
    assert np.allclose(rows, pd.read_csv(full.path / "history.csv")[columns].to_numpy(),
                       atol=1e-5)
    assert resumed.metrics["accuracy"] == pytest.approx(full.metrics["accuracy"])
    expected = load_file(str(full.path / "model" / "model.safetensors"))
    weights = load_file(str(resumed.path / "model" / "model.safetensors"))
    assert weights.keys() == expected.keys()
    for name, tensor in expected.items():
        assert np.allclose(weights[name], tensor, atol=1e-5), name


def test_a_resume_state_without_the_adapters_is_refused(
        tmp_path: Path, uninterrupted: tuple[dict[str, Any], fitclass.Run],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A weights file that lacks tensors the run trains is not this run's: named, not
    silently resumed from fresh adapters."""
    recipe, _ = uninterrupted
    interrupt_at_second_evaluation(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        fitclass.train(recipe, out=tmp_path / "cut")
    monkeypatch.undo()
    last = tmp_path / "cut" / "checkpoints" / "last" / "model.safetensors"
    kept = {k: v for k, v in load_file(str(last)).items() if "lora_" not in k}
    save_file(kept, str(last))
    with pytest.raises(fitclass.RunError, match=r"model\.safetensors: the training state "
                                                r"lacks .*lora_.*--overwrite"):
        fitclass.train({}, resume=tmp_path / "cut")


def test_export_merge_writes_a_full_weight_run_that_predicts_the_same(
        tmp_path: Path, train_csv: Path, recipe_for, tiny_bert_dir: Path, cli_main) -> None:
    run = fitclass.train(peft_recipe(recipe_for, train_csv, tiny_bert_dir, epochs=1),
                         out=tmp_path / "run")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    code, _, err = cli_main("export", run.path, "--merge", "--out", foreign)
    assert code != 0 and "will not write into this folder" in err
    assert (foreign / "notes.txt").read_text() == "mine"  # never touched

    code, out, err = cli_main("export", run.path, "--merge", "--out", tmp_path / "merged")
    assert code == 0, err
    merged = fitclass.load_run(out.strip())
    info = json.loads((merged.path / "model" / "fitclass_model.json").read_text())
    assert "peft" not in info
    weights = load_file(str(merged.path / "model" / "model.safetensors"))
    assert not any("lora" in key for key in weights) and len(weights) > 30
    texts = pd.read_csv(run.path / "valid_predictions.csv")["text"].astype(str).tolist()
    assert np.allclose(merged.predict_proba(texts), run.predict_proba(texts), atol=1e-5)
    assert (merged.path / "decision.json").read_bytes() == (run.path / "decision.json"
                                                            ).read_bytes()
    with pytest.raises(fitclass.FitclassError, match="no adapters"):
        from fitclass.export.merged import export_merged

        export_merged(merged.path, tmp_path / "again")


def test_a_missing_base_model_is_named(tiny_bert_dir: Path, tmp_path: Path) -> None:
    base = tmp_path / "base"
    shutil.copytree(tiny_bert_dir, base)
    built(base).save(tmp_path / "model")
    shutil.rmtree(base)
    with pytest.raises(fitclass.RunError, match=r"names the base model .*base"):
        TransformerBackbone.load(tmp_path / "model")


def test_adapters_get_gradients_under_gradient_checkpointing(tiny_bert_dir: Path) -> None:
    classifier = built(tiny_bert_dir)
    assert classifier.enable_gradient_checkpointing()
    module = classifier.module.train()
    batch = classifier.tokenizer(TEXTS, padding=True, return_tensors="pt")
    module(**batch)["logits"].sum().backward()
    grads = {n: p.grad for n, p in module.named_parameters() if p.requires_grad}
    assert all(g is not None for g in grads.values())  # every adapter and the head
    assert all(p.grad is None for n, p in module.named_parameters() if n in module.fixed)


def test_stages_and_layer_decay_under_adapters(tiny_bert_dir: Path) -> None:
    """A stage never unfreezes the backbone's weights; the optimiser holds only the adapters
    and the head, in per-depth groups whose learning rates follow the adapters' blocks."""
    from fitclass.recipe import TrainConfig
    from fitclass.training.optim import build_stage_optimizer
    from fitclass.training.stages import set_trainable

    classifier = built(tiny_bert_dir)
    module, fixed = classifier.module, classifier.fixed_parameters()
    assert set(set_trainable(module, "head", fixed)) == {"head.weight", "head.bias"}
    top = set_trainable(module, 1, fixed)  # the top block's adapters and the head
    assert top and all(".layer.1." in n or n.startswith("head.") for n in top)
    assert {n for n in set_trainable(module, "all", fixed)} == {
        n for n, _ in module.named_parameters() if n not in fixed}
    optimizer = build_stage_optimizer(module, TrainConfig(lr=1e-3, layer_decay=0.5), fixed)
    grouped = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert grouped == {id(p) for n, p in module.named_parameters() if n not in fixed}
    rates = {round(group["lr"], 8) for group in optimizer.param_groups}
    assert rates == {1e-3, 5e-4, 2.5e-4}  # head, block 1's adapters, block 0's adapters


def test_onnx_export_of_a_peft_run_merges_its_adapters(
        tmp_path: Path, train_csv: Path, recipe_for, tiny_bert_dir: Path) -> None:
    pytest.importorskip("onnxruntime")
    from fitclass.export import export_onnx

    run = fitclass.train(peft_recipe(recipe_for, train_csv, tiny_bert_dir, epochs=1),
                         out=tmp_path / "run")
    report = export_onnx(run.path)
    assert report["fp32"]["argmax_agreement"] == 1.0
    assert report["fp32"]["max_abs_prob_diff"] < 1e-4
