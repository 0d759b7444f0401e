"""One measured fitclass training run: `python bench/_fitclass_worker.py SPEC.json`.

Whichever fitclass PYTHONPATH names trains (this tree's `src/` or an old commit's, which
the worker checks), through API every version has: `fitclass.train(recipe, out=...)`, then
the run's `metrics.json` and `history.csv`. The spec's `overrides` (`--set` syntax) and a
callback clock are passed only when asked for, since old versions may lack them.

The clock (`spec["clock"]`):
- `own`: the run's `train_seconds`, fitclass's own clock: its optimiser steps (batches,
  forward, backward, step and the per-step callbacks), evaluations and the checkpoint saves
  that follow them excluded. Used on CPU, where no clock needs a device sync.
- `callbacks`: `_probes.FitclassClock`, the same span marked from the loop's hooks with a
  CUDA sync at each mark (for recipes that evaluate once, after the last step).

A spec's `compile_mode` (GPU runs) sets `fitclass.training.compiling.MODE`, torch.compile's
mode for a compiled step (a CUDA-graph mode also builds AdamW capturable); this tree only.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

import fitclass
from _probes import FitclassClock, TokenCounter, emit, set_threads, versions


def check_source(src: str) -> Path:
    where = Path(fitclass.__file__).resolve()
    if not where.is_relative_to(Path(src).resolve()):
        sys.exit(f"worker: imported fitclass from {where}, expected it under {src}; an "
                 f"installed fitclass shadows PYTHONPATH")
    return where


def history_fields(run_path: Path, metrics: dict[str, Any]) -> dict[str, Any]:
    history = pd.read_csv(run_path / "history.csv")
    select = metrics["select"]
    best = history.loc[history["step"] == select["step"]]
    columns = [c for c in ("step", "epoch", "train_loss", "valid_loss", "accuracy",
                           "macro_f1", "train_samples_per_s", "is_best") if c in history]
    return {"best_step": int(select["step"]),
            "best_epoch": float(best["epoch"].iloc[0]) if len(best) else None,
            "steps": int(history["step"].max()),
            "history": history[columns].to_dict("records")}


def environment(run_path: Path) -> dict[str, Any]:
    """What the run recorded about how it trained (device, precision, batching...)."""
    path = run_path / "environment.json"
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return {k: v for k, v in data.items() if k not in ("packages", "pip_freeze")}


def parameters(run: Any) -> dict[str, int]:
    module = run.classifier.module
    embedding = sum(p.numel() for m in module.modules() if isinstance(m, torch.nn.Embedding)
                    for p in m.parameters(recurse=False))
    return {"params": sum(p.numel() for p in module.parameters()),
            "params_embedding": embedding}


def main(spec_path: Path) -> None:
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    where = check_source(spec["src"])
    threads = set_threads(spec.get("threads"))
    counter = TokenCounter(spec["vocab_size"]).install()
    kwargs: dict[str, Any] = {}
    if spec.get("overrides"):
        kwargs["overrides"] = spec["overrides"]
    if spec.get("compile_mode"):
        from fitclass.training import compiling

        compiling.MODE = spec["compile_mode"]
    clock = FitclassClock(spec["device"]) if spec["clock"] == "callbacks" else None
    if clock is not None:
        kwargs["callbacks"] = [clock]
    started = time.perf_counter()
    run = fitclass.train(spec["recipe"], out=spec["out"], **kwargs)
    total = time.perf_counter() - started
    run_path = Path(run.path)
    metrics = json.loads((run_path / "metrics.json").read_text(encoding="utf-8"))
    result: dict[str, Any] = {
        "accuracy": float(metrics["accuracy"]), "macro_f1": float(metrics["macro_f1"]),
        "own_train_s": float(metrics["train_seconds"]),
        "own_samples_per_s": float(metrics["train_samples_per_second"]),
        "total_s": total, "padded_tokens": counter.tokens, "train_batches": counter.batches,
        **history_fields(run_path, metrics), "environment": environment(run_path),
        "fitclass_file": str(where), "fitclass_version": fitclass.__version__,
        "torch_threads": threads, "torch_threads_end": torch.get_num_threads(), **versions(),
        "compile_mode": spec.get("compile_mode"),
    }
    if clock is None:
        result["train_s"] = result["own_train_s"]
        result["clock"] = "fitclass train_seconds"
    else:
        result.update(clock.marks.fields())
        result["clock"] = ("callbacks: epoch start to last step" if clock.ended_at_last_step
                           else "callbacks: epoch start to on_epoch_end (evaluation included)")
    if spec.get("count_params"):
        result.update(parameters(run))
    emit(result)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
