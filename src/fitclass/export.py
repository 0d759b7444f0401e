"""`fitclass export RUN_DIR --onnx [--quantize int8]`: a transformer run as ONNX for fast CPU
inference with onnxruntime. The tokenizer stays in Python; the graph takes token ids and
returns logits, with dynamic batch and sequence axes. Every export is checked against the
PyTorch model on validation rows (max probability difference, argmax agreement) and the
result is written to `onnx/export.json`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fitclass.atomic import atomic_write_text
from fitclass.errors import FitclassError, RunError
from fitclass.models import adapters
from fitclass.models.onnx import (
    FP32,
    INT8,
    OnnxClassifier,
    onnx_classifier,
    require_onnxruntime,
    transformer_of,
)
from fitclass.models.text import TransformerClassifier
from fitclass.runs.layout import EXPORT_INFO, ONNX, VALID_PREDICTIONS, Layout, claim_folder
from fitclass.runs.readers import read_valid_predictions
from fitclass.runs.run import Run, load_run

ONNX_DIR = ONNX
#: What an export writes into RUN/onnx (the overwrite rule: runs.layout.claim_folder); the
#: `.data` files are torch's external weights for graphs over 2 GB.
ONNX_FOLDER = Layout("ONNX export", frozenset({FP32, INT8, EXPORT_INFO}),
                     patterns=("*.onnx.data", "*.onnx_data"), legacy=(EXPORT_INFO,))


class _LogitsOnly(torch.nn.Module):
    """The exported graph: token tensors in, logits out (no dict outputs in ONNX)."""

    def __init__(self, classifier: TransformerClassifier, names: list[str]) -> None:
        super().__init__()
        self.module, self.names = classifier.module, names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.module(**dict(zip(self.names, inputs, strict=True)))["logits"]


def export_graph(classifier: TransformerClassifier, path: Path) -> None:
    module = classifier.module.cpu().eval()
    sample = classifier.tokenizer(["an example sentence", "another one"], padding=True,
                                  return_tensors="pt")
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]
    axes = {name: {0: "batch", 1: "sequence"} for name in names} | {"logits": {0: "batch"}}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(_LogitsOnly(classifier, names).eval(),
                      tuple(sample[n] for n in names), str(path), input_names=names,
                      output_names=["logits"], dynamic_axes=axes, opset_version=17,
                      dynamo=False)
    del module


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantisation of weights (activations quantised at run time)."""
    require_onnxruntime()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)


def verify(run: Run, reference: TransformerClassifier, onnx_path: Path,
           rows: int = 256) -> dict[str, Any]:
    """Compare the exported graph with the PyTorch model on validation texts."""
    valid = read_valid_predictions(run.dir)
    if "text" not in valid.columns:
        raise RunError(f"{run.path}: {VALID_PREDICTIONS} has no text column to verify on")
    texts = valid["text"].astype(str).tolist()[:rows]
    torch_probs = reference.predict_proba(texts)
    onnx_probs = OnnxClassifier(reference, onnx_path).predict_proba(texts)
    return {"rows": len(texts),
            "max_abs_prob_diff": float(np.abs(torch_probs - onnx_probs).max()),
            "argmax_agreement": float((torch_probs.argmax(1) == onnx_probs.argmax(1)).mean())}


def export_onnx(run_dir: str | Path, quantize: str | None = None) -> dict[str, Any]:
    """Export (and optionally quantise) a run; returns and records the verification."""
    if quantize not in (None, "int8"):
        raise FitclassError(f"--quantize {quantize!r}: only int8 is supported")
    require_onnxruntime()
    run = load_run(run_dir, device="cpu", precision="fp32")  # the graph's own reference
    classifier = transformer_of(run.classifier, run.path)
    # adapters (`model.peft`) folded into the weights: one plain graph, as fast as any run's
    classifier.module.encoder = adapters.merged(classifier.module.encoder)
    folder = claim_folder(run.path / ONNX_DIR, ONNX_FOLDER, fix=(
        f"move those files out of {run.path / ONNX_DIR}, then export again"))
    start = time.perf_counter()
    export_graph(classifier, folder / FP32)
    report: dict[str, Any] = {"fp32": {"path": str(folder / FP32),
                                       **verify(run, classifier, folder / FP32)}}
    if quantize == "int8":
        quantize_int8(folder / FP32, folder / INT8)
        report["int8"] = {"path": str(folder / INT8), **verify(run, classifier, folder / INT8)}
    report["seconds"] = round(time.perf_counter() - start, 2)
    atomic_write_text(folder / EXPORT_INFO, json.dumps(report, indent=2))
    return report


__all__ = ["OnnxClassifier", "export_onnx", "onnx_classifier"]
