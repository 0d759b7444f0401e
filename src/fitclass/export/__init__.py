"""`fitclass export RUN_DIR --onnx [--quantize int8]`: a transformer run, or an ensemble run
made of transformer runs (`fitclass ensemble`, `--seeds`, `--folds`), as ONNX for fast CPU
inference with onnxruntime (`graph.py`: token ids in, logits out; `ensemble.py`: one graph
per member). Every export is checked against the PyTorch model on validation rows (max
probability difference, argmax agreement) and the result is written to `onnx/export.json`,
last and atomically: only a folder with that record is an export (`runs/onnx_folder.py`)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from fitclass.atomic import atomic_write_text
from fitclass.errors import FitclassError
from fitclass.export.ensemble import checked_plan, export_ensemble
from fitclass.export.graph import verification_texts, verify, write_graphs
from fitclass.models.ensemble import EnsembleClassifier
from fitclass.models.onnx import OnnxClassifier, require_onnxruntime, transformer_of
from fitclass.runs.layout import EXPORT_INFO, ONNX, claim_folder
from fitclass.runs.onnx_folder import ONNX_FOLDER, clear_export, export_folder, fix_for
from fitclass.runs.run import load_run

ONNX_DIR = ONNX


def export_onnx(run_dir: str | Path, quantize: str | None = None) -> dict[str, Any]:
    """Export (and optionally quantise) a run; returns and records the verification.
    Everything that can refuse is checked before anything is written; a previous export is
    replaced (only the files an export writes are deleted)."""
    if quantize not in (None, "int8"):
        raise FitclassError(f"--quantize {quantize!r}: only int8 is supported")
    require_onnxruntime()
    run = load_run(run_dir, device="cpu", precision="fp32")  # the graph's own reference
    ensemble = run.classifier if isinstance(run.classifier, EnsembleClassifier) else None
    entries = checked_plan(run.path) if ensemble is not None else None
    transformer = transformer_of(run.classifier, run.path) if ensemble is None else None
    target = export_folder(run.path)
    folder = claim_folder(target, ONNX_FOLDER, fix=fix_for(target))
    clear_export(folder)
    start = time.perf_counter()
    if ensemble is not None and entries is not None:
        report = export_ensemble(run, ensemble, entries, folder, quantize)
    else:
        assert transformer is not None
        graphs = write_graphs(transformer, folder, quantize)
        texts, source = verification_texts(run)
        report = {name: {"path": str(path), **verify(texts, transformer, path)}
                  for name, path in graphs.items()}
        report["verified_on"] = str(source)
    report["seconds"] = round(time.perf_counter() - start, 2)
    atomic_write_text(folder / EXPORT_INFO, json.dumps(report, indent=2))
    return report


__all__ = ["ONNX_DIR", "OnnxClassifier", "export_onnx"]
