"""`fitclass export RUN --merge --out NEW_RUN`: a `model.peft` run as a normal transformer run.

A peft run's `model/` holds only its adapters and head and names its base model, so predicting
needs the base weights at hand and pays the adapters' extra matmuls. The merged export folds
the adapters into the base weights (peft's `merge_and_unload`) and writes a new run folder
whose `model/` is a plain full-weight transformer model; the run's record (recipe, labels,
decision, metrics, validation predictions, history...) is copied beside it, so `fitclass
predict`, `evaluate`, `report` and `export --onnx` work on it as on any run, with the same
decision. The output folder must be new or a run fitclass may replace (`RunDir.create`: the
overwrite rule; nothing fitclass did not write is deleted); the source run is not touched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fitclass.atomic import atomic_write_bytes
from fitclass.errors import FitclassError
from fitclass.models import adapters
from fitclass.models.loading import read_model_info
from fitclass.models.onnx import transformer_of
from fitclass.runs.folder import RunDir
from fitclass.runs.layout import (
    DATA_CHECKS,
    DECISION,
    DYNAMICS,
    ENVIRONMENT,
    HISTORY,
    LABELS,
    METRICS,
    NOISE_CHANGES,
    RECIPE,
    SELF_TRAINING,
    VALID_PREDICTIONS,
    VALID_PROBS,
)
from fitclass.runs.readers import read_valid_predictions
from fitclass.runs.run import Run, load_run
from fitclass.runs.writer import save_model

#: The files of the run's record a merged run carries over unchanged.
RECORD_FILES = (RECIPE, LABELS, DECISION, METRICS, HISTORY, VALID_PREDICTIONS, VALID_PROBS,
                DATA_CHECKS, ENVIRONMENT, DYNAMICS, NOISE_CHANGES, SELF_TRAINING)


def export_merged(run_dir: str | Path, out: str | Path, *,
                  overwrite: bool = False) -> dict[str, Any]:
    """Write `out`: the run at `run_dir` with its adapters merged into full weights; checks
    that the merged model gives the run's validation probabilities."""
    source = load_run(run_dir, device="cpu", precision="fp32")
    info = read_model_info(source.model_dir)  # refused before any model is loaded
    if info.get("peft") is None:
        raise FitclassError(f"{source.path}: its model ({info['kind']!r}) has no adapters (it "
                            f"was trained without model.peft), so there is nothing to merge: "
                            f"its model/ already holds full weights; use it as it is")
    classifier = transformer_of(source.classifier, source.path)
    assert classifier.adapters is not None  # its saved model info named them
    if Path(out).resolve() == source.path.resolve():
        raise FitclassError(f"--out {out}: that is the run being merged; choose a new folder, "
                            f"e.g. {source.path}-merged")
    target = RunDir.create(out, overwrite=overwrite)  # refuses a folder it may not replace
    try:
        texts = _validation_texts(source)
        before = classifier.predict_proba(texts)
        base = classifier.adapters.get("base")
        classifier.module.encoder = adapters.merged(classifier.module.encoder)
        classifier.module.fixed = frozenset()
        classifier.adapters = None
        after = classifier.predict_proba(texts)
        for name in RECORD_FILES:
            if (source.path / name).is_file():
                atomic_write_bytes(target.file(name), (source.path / name).read_bytes())
        save_model(target, classifier)
        report = {"merged_from": str(source.path), "base": base, "rows": len(texts),
                  "max_abs_prob_diff": float(np.abs(before - after).max()) if texts else 0.0}
        target.set_status("finished", merged=report)
    finally:
        target.release()
    return {"path": str(target.path), **report}


def _validation_texts(run: Run, rows: int = 256) -> list[str]:
    """Up to `rows` validation texts of the run, to check the merge on."""
    valid = read_valid_predictions(run.dir)
    if "text" not in valid.columns:
        return []
    return valid["text"].astype(str).tolist()[:rows]


__all__ = ["export_merged"]
