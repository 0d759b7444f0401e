"""The one device/precision policy (`fitclass.precision`): with `train.precision: bf16` on
CPU (CPU autocast supports bf16) every path that runs a model computes its Linear layers in
bf16, loaded runs move to the policy's device, and weights load in fp32 whatever a
checkpoint says."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from typer.testing import CliRunner

import fitclass
from fitclass.cli import app
from fitclass.errors import RunError
from fitclass.models.text import TransformerBackbone, TransformerClassifier
from fitclass.precision import (
    Policy,
    load_pretrained,
    make_policy,
    resolve_device,
    resolve_precision,
)
from fitclass.recipe import ModelConfig
from fitclass.training import finetune


class LinearDtypes:
    """Output dtypes of every nn.Linear forward, by the phase the test says it is in."""

    def __init__(self) -> None:
        self.phase = "train"
        self.seen: dict[str, set[torch.dtype]] = {}

    def hook(self, module: nn.Module, _: Any, output: Any) -> None:
        if isinstance(module, nn.Linear) and isinstance(output, torch.Tensor):
            phase = self.phase if self.phase != "train" or module.training else "eval"
            self.seen.setdefault(phase, set()).add(output.dtype)

    @contextmanager
    def during(self, phase: str) -> Iterator[None]:
        before, self.phase = self.phase, phase
        try:
            yield
        finally:
            self.phase = before


@pytest.fixture
def dtypes() -> Iterator[LinearDtypes]:
    recorder = LinearDtypes()
    handle = nn.modules.module.register_module_forward_hook(recorder.hook)
    try:
        yield recorder
    finally:
        handle.remove()


def in_phase(recorder: LinearDtypes, phase: str, function: Callable[..., Any]
             ) -> Callable[..., Any]:
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with recorder.during(phase):
            return function(*args, **kwargs)
    return wrapped


def bf16_recipe(recipe_for: Callable[..., dict[str, Any]], train_csv: Path,
                **train: Any) -> dict[str, Any]:
    return recipe_for("tiny_bert", train_csv, train={"precision": "bf16", "epochs": 2,
                                                     "batch_size": 32, **train})


def test_bf16_in_training_evaluation_encode_and_loaded_runs(
        tmp_path: Path, train_csv: Path, recipe_for: Callable[..., dict[str, Any]],
        dtypes: LinearDtypes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FITCLASS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(finetune, "evaluate", in_phase(dtypes, "evaluation", finetune.evaluate))
    monkeypatch.setattr(TransformerClassifier, "encode",
                        in_phase(dtypes, "encode", TransformerClassifier.encode))
    stages = [{"epochs": 1, "lr": 3e-3, "trainable": "head"},
              {"epochs": 1, "lr": 1e-3, "trainable": "all"}]
    recipe = bf16_recipe(recipe_for, train_csv, stages=stages, cache_features=True)
    run = fitclass.train(recipe, out=tmp_path / "run")
    loaded = fitclass.load_run(run.path)
    with dtypes.during("predict"):
        loaded.predict(["football goal today", "pizza soup"])
    with dtypes.during("evaluate"):
        metrics = loaded.evaluate(train_csv)
    assert set(dtypes.seen) >= {"train", "evaluation", "encode", "predict", "evaluate"}
    assert dtypes.seen == {phase: {torch.bfloat16} for phase in dtypes.seen}
    assert metrics["compute"] == {"device": "cpu", "precision": "bf16",
                                  "compute_dtype": "bfloat16", "weights_dtype": "float32"}
    environment = json.loads((run.path / "environment.json").read_text())
    assert environment["compute"]["precision"] == "bf16"
    weights = [p.dtype for p in loaded.classifier.module.parameters()]  # type: ignore[attr-defined]
    assert set(weights) == {torch.float32}


def test_bf16_in_coteaching(tmp_path: Path, train_csv: Path,
                            recipe_for: Callable[..., dict[str, Any]],
                            dtypes: LinearDtypes) -> None:
    recipe = bf16_recipe(recipe_for, train_csv, epochs=1)
    recipe["noise"] = {"coteaching": {"forget_rate": 0.2, "ramp_epochs": 1.0}}
    fitclass.train(recipe, out=tmp_path / "run")
    assert {"train", "eval"} <= set(dtypes.seen)
    assert dtypes.seen == {phase: {torch.bfloat16} for phase in dtypes.seen}


def test_fp32_override_of_a_bf16_run(tmp_path: Path, train_csv: Path,
                                     recipe_for: Callable[..., dict[str, Any]],
                                     dtypes: LinearDtypes) -> None:
    run = fitclass.train(bf16_recipe(recipe_for, train_csv, epochs=1), out=tmp_path / "run")
    dtypes.seen.clear()
    with dtypes.during("predict"):
        fitclass.load_run(run.path, device="cpu", precision="fp32").predict(["pizza"])
    assert dtypes.seen == {"predict": {torch.float32}}


def test_a_loaded_run_moves_to_the_policy_device(
        tmp_path: Path, train_csv: Path, recipe_for: Callable[..., dict[str, Any]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    run = fitclass.train(recipe_for("tiny_bert", train_csv, train={"epochs": 1}),
                         out=tmp_path / "run")
    meta = Policy(torch.device("meta"), "fp32")  # stands in for an accelerator
    monkeypatch.setattr("fitclass.runs.run.make_policy", lambda *args, **kwargs: meta)
    loaded = fitclass.load_run(run.path)
    classifier = loaded.classifier
    assert isinstance(classifier, TransformerClassifier)
    assert classifier.policy is meta
    assert {p.device.type for p in classifier.module.parameters()} == {"meta"}
    assert not classifier.module.training


def bf16_checkpoint(tiny_bert_dir: Path, folder: Path) -> Path:
    """The tiny BERT saved as a bf16 checkpoint (weights and config)."""
    shutil.copytree(tiny_bert_dir, folder)
    weights = load_file(str(folder / "model.safetensors"))
    save_file({k: v.to(torch.bfloat16) for k, v in weights.items()},
              str(folder / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "dtype": "bfloat16"}))
    return folder


def test_models_load_with_fp32_master_weights(tmp_path: Path, tiny_bert_dir: Path) -> None:
    source = bf16_checkpoint(tiny_bert_dir, tmp_path / "bf16-bert")
    backbone = TransformerBackbone(str(source), ModelConfig(backbone=str(source)))
    built = backbone.build(["a", "b"])
    assert {p.dtype for p in built.module.parameters()} == {torch.float32}
    assert built.module.encoder.config._attn_implementation == "sdpa"
    saved = tmp_path / "model"
    built.save(saved)
    config = json.loads((saved / "config.json").read_text())
    (saved / "config.json").write_text(json.dumps({**config, "dtype": "bfloat16"}))
    loaded = TransformerBackbone.load(saved)
    assert {p.dtype for p in loaded.module.parameters()} == {torch.float32}


def test_sdpa_falls_back_where_a_model_lacks_it() -> None:
    calls: list[dict[str, Any]] = []

    def from_config(config: str, **kwargs: Any) -> str:
        calls.append(kwargs)
        if kwargs.get("attn_implementation") == "sdpa":
            raise ValueError("SomeModel does not support an attention implementation through "
                             "torch.nn.functional.scaled_dot_product_attention (sdpa) yet")
        return config

    assert load_pretrained(from_config, "config") == "config"
    assert calls == [{"dtype": torch.float32, "attn_implementation": "sdpa"},
                     {"dtype": torch.float32, "attn_implementation": "eager"}]
    with pytest.raises(ValueError, match="other"):
        load_pretrained(lambda *a, **k: (_ for _ in ()).throw(ValueError("other")), "x")


def test_an_architecture_without_sdpa_loads_with_fp32_weights() -> None:
    from transformers import AutoModelForImageClassification, ResNetConfig

    config = ResNetConfig(embedding_size=8, hidden_sizes=[8], depths=[1], dtype="bfloat16")
    model = load_pretrained(AutoModelForImageClassification.from_config, config)
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_device_and_precision_resolution() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None).type in ("cpu", "cuda", "mps")
    with pytest.raises(RunError, match=r"--device 'gpu': expected auto, cpu, cuda"):
        resolve_device("gpu")
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == "fp32"
    assert resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(RunError, match=r"--precision 'fp8'"):
        make_policy("fp8", "cpu")
    assert isinstance(Policy(cpu, "fp32").autocast(), type(Policy(cpu).autocast()))
    with Policy(cpu, "bf16").autocast():
        assert nn.Linear(2, 2)(torch.ones(1, 2)).dtype == torch.bfloat16


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_on_a_cpu_machine_names_the_option(
        tmp_path: Path, train_csv: Path, recipe_for: Callable[..., dict[str, Any]]) -> None:
    run = fitclass.train(recipe_for("tfidf", train_csv), out=tmp_path / "run")
    texts = tmp_path / "texts.csv"
    pd.DataFrame({"text": ["pizza"]}).to_csv(texts, index=False)
    runner = CliRunner()
    for command in (["predict", str(run.path), str(texts)],
                    ["evaluate", str(run.path), str(train_csv)]):
        result = runner.invoke(app, [*command, "--device", "cuda"])
        assert result.exit_code == 2, result.output
        assert "--device 'cuda'" in result.output and "devices present: cpu" in result.output
    with pytest.raises(RunError, match="--device 'cuda:1'"):
        fitclass.load_run(run.path, device="cuda:1")


def test_ensemble_members_load_under_the_ensemble_policy(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from fitclass.contracts.model import RunAccess
    from fitclass.decide.combiners import Combiner
    from fitclass.models.ensemble import EnsembleClassifier

    opened: list[dict[str, Any]] = []

    class Member:
        def __init__(self) -> None:
            self.class_names = ["a", "b"]

        def predict_proba(self, texts: list[str], batch_size: int) -> np.ndarray:
            return np.full((len(texts), 2), 0.5)

    def fake_load_run(path: Path, **kwargs: Any) -> Member:
        opened.append(kwargs)
        return Member()

    members = [{"relative": "m", "absolute": "/nowhere/m"}] * 2
    ensemble = EnsembleClassifier(["a", "b"], members, Combiner(
        method="mean", weights=np.array([0.5, 0.5])))
    # what the run layer binds when it loads an ensemble
    ensemble.bind_runs(RunAccess(load=fake_load_run, is_run=lambda path: True))
    ensemble.use(Policy(torch.device("cpu"), "bf16"))
    assert ensemble.predict_proba(["x"]).shape == (1, 2)
    assert opened == [{"device": "cpu", "precision": "bf16"}] * 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_audit_device_cuda_on_a_cpu_machine_fails_before_training(
        tmp_path: Path, train_csv: Path, recipe_for: Callable[..., dict[str, Any]]) -> None:
    from fitclass.noise.audit import audit

    with pytest.raises(RunError, match=r"--device 'cuda'.*devices present: cpu"):
        audit(recipe_for("tfidf", train_csv), tmp_path / "suspects.csv", device="cuda")
    assert not (tmp_path / "suspects_folds").exists()
