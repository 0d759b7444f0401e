"""`fitclass export RUN_DIR --onnx [--quantize int8]`: a transformer run as ONNX for fast CPU
inference with onnxruntime. The tokenizer stays in Python; the graph takes token ids and
returns logits, with dynamic batch and sequence axes. Every export is checked against the
PyTorch model on validation rows (max probability difference, argmax agreement) and the
result is written to `onnx/export.json`."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from fitclass import rundir
from fitclass.data.table import TextInput
from fitclass.errors import FitclassError, RunError
from fitclass.models.base import Classifier
from fitclass.models.text import TransformerClassifier, over_batches, probabilities
from fitclass.run import Run, load_run

ONNX_DIR = rundir.ONNX
FP32, INT8 = "model.onnx", "model.int8.onnx"
EXPORT_INFO = "export.json"
#: What an export writes into RUN/onnx (the overwrite rule: rundir.claim_folder); the
#: `.data` files are torch's external weights for graphs over 2 GB.
ONNX_FOLDER = rundir.Layout("ONNX export", frozenset({FP32, INT8, EXPORT_INFO}),
                            patterns=("*.onnx.data", "*.onnx_data"), legacy=(EXPORT_INFO,))


def _require_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise FitclassError("ONNX export and inference need onnx and onnxruntime: "
                            "pip install 'fitclass[onnx]'") from None
    return onnxruntime


class _LogitsOnly(torch.nn.Module):
    """The exported graph: token tensors in, logits out (no dict outputs in ONNX)."""

    def __init__(self, classifier: TransformerClassifier, names: list[str]) -> None:
        super().__init__()
        self.module, self.names = classifier.module, names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.module(**dict(zip(self.names, inputs, strict=True)))["logits"]


class OnnxClassifier(Classifier):
    """Predicts with an exported graph in onnxruntime; same probabilities as the run."""

    kind = "onnx"

    def __init__(self, source: TransformerClassifier, model_path: Path,
                 threads: int | None = None) -> None:
        super().__init__(source.class_names)
        ort = _require_onnxruntime()
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(model_path), options,
                                            providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.tokenizer, self.max_length = source.tokenizer, source.max_length
        self.multilabel = source.multilabel

    def logits(self, texts: Sequence[TextInput], batch_size: int = 64) -> np.ndarray:
        def run(batch: dict[str, torch.Tensor]) -> np.ndarray:
            feed = {name: batch[name].numpy().astype(np.int64) for name in self.inputs}
            return np.asarray(self.session.run(None, feed)[0])

        return over_batches(self.tokenizer, texts, self.max_length, batch_size,
                            len(self.class_names), run)

    def predict_proba(self, texts: Sequence[TextInput], batch_size: int = 64) -> np.ndarray:
        return probabilities(self.logits(texts, batch_size), self.multilabel)

    def save(self, model_dir: Path) -> None:
        raise RunError("an ONNX classifier is saved by `fitclass export`, not by a run")


def transformer_of(run: Run) -> TransformerClassifier:
    classifier = run.classifier
    if not isinstance(classifier, TransformerClassifier):
        raise FitclassError(f"{run.path}: ONNX export is for transformer runs; this run's "
                            f"model is {classifier.kind!r}")
    return classifier


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
    _require_onnxruntime()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)


def verify(run: Run, reference: TransformerClassifier, onnx_path: Path,
           rows: int = 256) -> dict[str, Any]:
    """Compare the exported graph with the PyTorch model on validation texts."""
    valid = pd.read_csv(run.dir.file(rundir.VALID_PREDICTIONS), keep_default_na=False)
    if "text" not in valid.columns:
        raise RunError(f"{run.path}: valid_predictions.csv has no text column to verify on")
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
    _require_onnxruntime()
    run = load_run(run_dir, device="cpu", precision="fp32")  # the graph's own reference
    classifier = transformer_of(run)
    folder = rundir.claim_folder(run.path / ONNX_DIR, ONNX_FOLDER, fix=(
        f"move those files out of {run.path / ONNX_DIR}, then export again"))
    start = time.perf_counter()
    export_graph(classifier, folder / FP32)
    report: dict[str, Any] = {"fp32": {"path": str(folder / FP32),
                                       **verify(run, classifier, folder / FP32)}}
    if quantize == "int8":
        quantize_int8(folder / FP32, folder / INT8)
        report["int8"] = {"path": str(folder / INT8), **verify(run, classifier, folder / INT8)}
    report["seconds"] = round(time.perf_counter() - start, 2)
    rundir.atomic_write_text(folder / EXPORT_INFO, json.dumps(report, indent=2))
    return report


def onnx_classifier(run: Run, quantized: bool | None = None) -> OnnxClassifier:
    """The exported graph of a run (int8 when present, unless `quantized=False`)."""
    folder = run.path / ONNX_DIR
    int8, fp32 = folder / INT8, folder / FP32
    path = int8 if (quantized is not False and int8.is_file()) else fp32
    if quantized and not int8.is_file():
        raise RunError(f"{run.path}: no int8 export; run `fitclass export {run.path} --onnx "
                       f"--quantize int8`")
    if not path.is_file():
        raise RunError(f"{run.path}: no ONNX export; run `fitclass export {run.path} --onnx`")
    return OnnxClassifier(transformer_of(run), path)
