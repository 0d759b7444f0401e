"""Predict throughput of a loaded fitclass run against a transformers pipeline over the same
module: `python bench/_predict_worker.py SPEC.json` (this tree's fitclass on PYTHONPATH).

- `fitclass`: `fitclass.load_run(run, device=...).predict(texts, batch_size)`: fp32 master
  weights, the run's precision under autocast, length-sorted batches, the prediction frame.
- `pipeline`: `pipeline("text-classification")` over a BERT sequence classifier holding the
  run's encoder and head weights (its pooler swapped for the [CLS] row, which is what the
  run's CLS pooling reads, so both compute the same logits), same batch size, truncation at
  the run's max_length, rows in input order (padded to each batch's longest). Timed twice
  with bf16: fp32 weights under autocast (fitclass's numerics), and bf16 weights.

Each is timed on all texts after a warm-up on the first two batches, with a device sync on
both sides of the clock; `agreement` is the share of labels equal to fitclass's.
"""

from __future__ import annotations

import contextlib
import copy
import json
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from transformers import AutoModelForSequenceClassification, PreTrainedModel, pipeline

import fitclass
from _probes import emit, sync, versions


class FirstToken(nn.Module):
    """BERT's pooler replaced by the [CLS] hidden state (fitclass's CLS pooling)."""

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden[:, 0]


def pipeline_model(module: Any, class_names: list[str]) -> PreTrainedModel:
    """A transformers sequence classifier with the run's encoder and head weights."""
    if module.pooling != "cls":
        sys.exit(f"the run pools with {module.pooling!r}; this comparison needs CLS pooling")
    config = copy.deepcopy(module.encoder.config)
    config.num_labels = len(class_names)
    config.id2label = dict(enumerate(class_names))
    config.label2id = {name: i for i, name in enumerate(class_names)}
    model = AutoModelForSequenceClassification.from_config(config, attn_implementation="sdpa")
    base = getattr(model, model.base_model_prefix)
    base.load_state_dict(module.encoder.state_dict())
    base.pooler = FirstToken()
    model.classifier.load_state_dict(module.head.state_dict())
    return model.eval()


def in_bf16(model: PreTrainedModel) -> PreTrainedModel:
    """A copy with bf16 weights (how a pipeline is usually run fast)."""
    copied = copy.deepcopy(model)
    nn.Module.to(copied, dtype=torch.bfloat16)  # PreTrainedModel.to's wrapper defeats mypy
    return copied


def timed(device: str, work: Any) -> tuple[Any, float]:
    sync(device)
    started = time.perf_counter()
    out = work()
    sync(device)
    return out, time.perf_counter() - started


def main(spec_path: Path) -> None:
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    device, batch, max_length = spec["device"], spec["batch_size"], spec["max_length"]
    texts = pd.read_csv(spec["texts"], sep="\t", dtype=str,
                        keep_default_na=False)["text"].tolist()
    warm = texts[:2 * batch]
    run = fitclass.load_run(spec["run"], device=device)
    run.predict(warm, batch_size=batch)
    frame, seconds = timed(device, lambda: run.predict(texts, batch_size=batch))
    labels = frame["label"].astype(str).tolist()
    results: list[dict[str, Any]] = [{"system": "fitclass load_run.predict", "seconds": seconds,
                                      "weights": "float32", "compute": spec["precision"]}]
    classifier: Any = run.classifier
    base = pipeline_model(classifier.module, [str(c) for c in classifier.class_names])
    call = {"batch_size": batch, "truncation": True, "max_length": max_length}
    variants = [("float32", spec["precision"])]
    if spec["precision"] == "bf16":
        variants.append(("bfloat16", "bf16"))
    for weights, compute in variants:
        model = base if weights == "float32" else in_bf16(base)
        pipe = pipeline("text-classification", model=model, tokenizer=classifier.tokenizer,
                        device=torch.device(device))
        context = (torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
                   if compute == "bf16" and weights == "float32" else contextlib.nullcontext())
        with context:
            pipe(warm, **call)
            out, seconds = timed(device, lambda p=pipe: p(texts, **call))
        agree = sum(str(o["label"]) == want for o, want in zip(out, labels, strict=True))
        results.append({"system": "transformers pipeline", "seconds": seconds,
                        "weights": weights, "compute": compute,
                        "agreement": agree / len(texts)})
    emit({"rows": len(texts), "batch_size": batch, "results": results,
          "fitclass_version": fitclass.__version__, **versions()})


if __name__ == "__main__":
    main(Path(sys.argv[1]))
