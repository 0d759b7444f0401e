"""Which device and dtype each path that runs a model used (issue 14's GPU check).

Trains the embedded MiniLM on SST-2 in bf16 (a cached-feature head stage, then the full
model: a few hundred optimiser steps on the whole training file), predicts and evaluates with
the loaded run, and prints, per path, the devices of the Linear layers' weights and the
dtypes of their outputs (a forward hook on every nn.Linear):
training forward, the loop's evaluation, `encode` (feature cache), loaded predict, loaded
evaluate. On a GPU every path should say `cuda:0` and `torch.bfloat16` outputs with float32
weights.

Usage (from the repo root, on the GPU machine):
    .venv/bin/python bench/gpu_paths.py --data ../shared/data/sst2
CPU smoke test: .venv/bin/python bench/gpu_paths.py --rows 64 --device cpu
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

import fitclass
from fitclass.models.text import TransformerClassifier
from fitclass.training import finetune


class PathRecorder:
    """Per path: the devices of Linear weights and the dtypes of Linear outputs."""

    def __init__(self) -> None:
        self.path = "training forward"
        self.seen: dict[str, dict[str, set[str]]] = {}

    def hook(self, module: nn.Module, _: Any, output: Any) -> None:
        if not isinstance(module, nn.Linear) or not isinstance(output, torch.Tensor):
            return
        path = self.path
        if path == "training forward" and not module.training:
            path = "other inference during training"
        entry = self.seen.setdefault(path, {"weight_device": set(), "weight_dtype": set(),
                                            "output_dtype": set()})
        entry["weight_device"].add(str(module.weight.device))
        entry["weight_dtype"].add(str(module.weight.dtype))
        entry["output_dtype"].add(str(output.dtype))

    def named(self, path: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            before, self.path = self.path, path
            try:
                return function(*args, **kwargs)
            finally:
                self.path = before
        return wrapped

    def report(self) -> dict[str, str]:
        """One line per path: `weights on <devices> in <dtypes>, outputs <dtypes>`."""
        def names(values: set[str]) -> str:
            return ",".join(sorted(v.removeprefix("torch.") for v in values))
        return {path: f"weights on {names(e['weight_device'])} in {names(e['weight_dtype'])}, "
                      f"outputs {names(e['output_dtype'])}" for path, e in self.seen.items()}


def subset(source: Path, rows: int | None, out: Path, seed: int) -> Path:
    frame = pd.read_csv(source, sep="\t", dtype=str, keep_default_na=False, quoting=3)
    if rows is not None and rows < len(frame):
        frame = frame.sample(n=rows, random_state=seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, sep="\t", index=False)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/sst2",
                        help="folder with SST-2's train.tsv and dev.tsv")
    parser.add_argument("--rows", type=int, default=None,
                        help="training rows (default all 6,920); dev uses at most as many")
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--device", default="auto", help="for the loaded run's paths")
    parser.add_argument("--out", default="bench/out/gpu_paths")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = Path(args.out)
    train = subset(Path(args.data) / "train.tsv", args.rows, out / "data" / "train.tsv",
                   args.seed)
    dev = subset(Path(args.data) / "dev.tsv", args.rows, out / "data" / "dev.tsv", args.seed)
    recipe = {
        "data": {"train": str(train), "valid": str(dev), "text": "sentence", "label": "label"},
        "model": {"backbone": "minilm", "max_length": 64},
        "train": {"precision": args.precision, "batch_size": 32, "eval_batch_size": 128,
                  "seed": args.seed, "cache_features": True,
                  "stages": [{"epochs": 1, "lr": 1e-3, "trainable": "head"},
                             {"epochs": 2, "lr": 5e-5, "trainable": "all"}]},
    }
    recorder = PathRecorder()
    finetune.evaluate = recorder.named("loop evaluation", finetune.evaluate)  # type: ignore[assignment]
    TransformerClassifier.encode = recorder.named(  # type: ignore[method-assign]
        "encode (feature cache)", TransformerClassifier.encode)
    handle = nn.modules.module.register_module_forward_hook(recorder.hook)
    started = time.perf_counter()
    run = fitclass.train(recipe, out=out / "run", overwrite=True)
    train_seconds = time.perf_counter() - started
    loaded = fitclass.load_run(run.path, device=args.device)
    recorder.named("loaded predict", loaded.predict)(dev)
    metrics = recorder.named("loaded evaluate", loaded.evaluate)(dev)
    handle.remove()
    environment = json.loads((run.path / "environment.json").read_text(encoding="utf-8"))
    result = {"cuda": torch.cuda.is_available(),
              "device_name": torch.cuda.get_device_name(0) if torch.cuda.is_available()
              else "cpu",
              "training_policy": environment.get("compute"),
              "loaded_policy": metrics["compute"],
              "train_seconds": round(train_seconds, 1),
              "dev_accuracy": metrics.get("accuracy"),
              "paths": recorder.report()}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
