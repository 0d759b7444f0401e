"""One transformer's ONNX graph: token tensors in, logits out, with dynamic batch and
sequence axes (the tokenizer stays in Python); its int8 quantisation; and how a graph's
probabilities are compared with PyTorch's (max probability difference, argmax agreement)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fitclass.errors import RunError
from fitclass.models.onnx import FP32, INT8, OnnxClassifier, require_onnxruntime
from fitclass.models.text import TransformerClassifier
from fitclass.runs.folder import RunDir
from fitclass.runs.layout import VALID_PREDICTIONS
from fitclass.runs.readers import read_refit_info, read_valid_predictions
from fitclass.runs.run import Run

#: Validation rows an export is checked on.
VERIFY_ROWS = 256


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


def write_graphs(classifier: TransformerClassifier, folder: Path,
                 quantize: str | None) -> dict[str, Path]:
    """`folder/model.onnx`, and `folder/model.int8.onnx` with `quantize="int8"`."""
    written = {"fp32": folder / FP32}
    export_graph(classifier, written["fp32"])
    if quantize == "int8":
        written["int8"] = folder / INT8
        quantize_int8(written["fp32"], written["int8"])
    return written


def verification_texts(run: Run, rows: int = VERIFY_ROWS) -> tuple[list[str], Path]:
    """The first `rows` validation texts of the run (out-of-fold rows for a cross-validation
    run), which every export is checked on, and the file they come from. A refit has none of
    its own: the run it was refitted from lends its validation rows (the refit trained on
    them, which does not matter to a check of the graph against PyTorch)."""
    sources = [run.dir]
    refit = read_refit_info(run.dir)
    if refit is not None:
        origin = refit.get("refit", {}).get("from")
        sources += [RunDir(run.path.parent)] + ([RunDir(origin)] if origin else [])
    for source in sources:
        valid = (read_valid_predictions(source) if source is run.dir else
                 read_valid_predictions(source, missing_ok=True))
        if valid is not None and "text" in valid.columns and len(valid):
            return valid["text"].astype(str).tolist()[:rows], source.file(VALID_PREDICTIONS)
    raise RunError(f"{run.path}: {VALID_PREDICTIONS} has no rows with a text column to check "
                   f"the export on" + (" (nor has the run it was refitted from)" if refit
                                       else "") + "; export a run that has validation rows")


def agreement(torch_probs: np.ndarray, onnx_probs: np.ndarray) -> dict[str, Any]:
    """How closely a graph's probabilities follow PyTorch's on the same rows."""
    return {"rows": len(torch_probs),
            "max_abs_prob_diff": float(np.abs(torch_probs - onnx_probs).max()),
            "argmax_agreement": float((torch_probs.argmax(1) == onnx_probs.argmax(1)).mean())}


def verify(texts: Sequence[str], reference: TransformerClassifier,
           onnx_path: Path) -> dict[str, Any]:
    """Compare the exported graph with the PyTorch model on `texts`."""
    return agreement(reference.predict_proba(list(texts)),
                     OnnxClassifier(reference, onnx_path).predict_proba(list(texts)))
