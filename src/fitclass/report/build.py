"""`fitclass report RUN_DIR`: gather a run's files into one self-contained `report.html`."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from fitclass.capabilities import capabilities_for
from fitclass.data.check_list import rows_from_record
from fitclass.decide.calibration import expected_calibration_error, scale
from fitclass.decide.decision import Decision
from fitclass.errors import RunError
from fitclass.report import plots
from fitclass.runs import readers
from fitclass.runs.folder import RunDir
from fitclass.runs.layout import REPORT, is_run, not_a_run
from fitclass.uncertainty.paired import mark_text

SCALARS = ("accuracy", "balanced_accuracy", "macro_f1", "micro_f1", "weighted_f1",
           "samples_f1", "subset_accuracy", "hamming_loss", "lrap", "pr_auc_macro",
           "roc_auc_macro", "log_loss")


def majority_baseline(metrics: dict[str, Any], multilabel: bool) -> dict[str, float] | None:
    """Accuracy and macro-F1 of always predicting the most frequent class."""
    counts = metrics.get("label_distribution") or {}
    if multilabel or not counts:
        return None
    total, top = sum(counts.values()), max(counts.values())
    share = top / total if total else 0.0
    return {"accuracy": share, "macro_f1": (2 * share / (1 + share)) / len(counts)}


def tfidf_baseline(run: RunDir, labels: dict[str, Any]) -> dict[str, Any] | None:
    """The newest finished TF-IDF run beside this one trained and validated on the same
    data (same `data_fingerprint` in labels.json, which covers the class names), if any.
    Damaged or unrelated siblings are passed over: they never stop the report."""
    fingerprint = labels.get("data_fingerprint")
    if not fingerprint:  # a run from before fingerprints: nothing is known to compare with
        return None
    candidates = []
    for sibling in sorted(run.path.parent.iterdir()):
        if sibling == run.path or not is_run(sibling):
            continue
        try:
            metrics = _baseline_metrics(RunDir(sibling), fingerprint)
        except RunError:
            continue
        if metrics is not None:
            candidates.append((sibling.stat().st_mtime, str(sibling), metrics))
    if not candidates:
        return None
    _, path, metrics = max(candidates)
    return {"path": path, **{k: v for k, v in metrics.items() if k in SCALARS}}


def _baseline_metrics(other: RunDir, fingerprint: str) -> dict[str, Any] | None:
    """`other`'s metrics when it is a finished baseline run (a kind that declares
    `report_baseline`, i.e. TF-IDF) on the same data, else None."""
    if readers.read_status(other)["status"] != "finished":
        return None
    model = readers.read_recipe_dict(other).get("model")
    backbone = model.get("backbone") if isinstance(model, dict) else None
    capabilities = capabilities_for(backbone) if isinstance(backbone, str) else None
    if capabilities is None or not capabilities.report_baseline:
        return None
    if readers.read_labels(other).get("data_fingerprint") != fingerprint:
        return None
    return readers.read_metrics(other)


def _calibration_plot(run: RunDir, decision: Decision) -> dict[str, Any] | None:
    arrays = readers.read_valid_arrays(run)
    if "raw" not in arrays or not len(arrays["raw"]):  # a refit has no validation rows
        return None
    kind = decision.kind
    raw, targets = arrays["raw"].astype(float), kind.restore(arrays["targets"])
    after = decision.calibrate(raw)
    return {
        "svg": plots.reliability(*kind.confidence_and_correct(targets, raw),
                                 *kind.confidence_and_correct(targets, after)),
        "ece_before": expected_calibration_error(targets, raw, kind),
        "ece_after": expected_calibration_error(targets, after, kind),
        "temperature": decision.temperature,
        "pr_svg": plots.pr_curves(kind.indicator(targets, raw.shape[1]),
                                  scale(raw, decision.temperature, kind),
                                  readers.read_labels(run)["classes"]),
    }


def _rule(decision: Decision, i: int) -> str:
    """How class `i` is decided: its threshold, its offset, or argmax."""
    if decision.thresholds is not None:
        return f"{decision.thresholds[i]:.3f}"
    if decision.offsets is not None:
        return f"argmax, offset {decision.offsets[i]:+.3f}"
    return "argmax"


def _optimize(metrics: dict[str, Any]) -> dict[str, Any] | None:
    """decision.optimize's scores and class shares: true, predicted before and after."""
    fitted = metrics.get("optimize")
    if not isinstance(fitted, dict):
        return None
    shares, offsets = fitted.get("shares", {}), fitted.get("offsets", {})
    rows = [{"name": name, "true": true, "before": shares.get("before", {}).get(name),
             "after": shares.get("after", {}).get(name), "offset": offsets.get(name)}
            for name, true in shares.get("true", {}).items()]
    return {"metric": fitted.get("metric"), "folds": fitted.get("folds"),
            "score": fitted.get("score", {}), "rows": rows}


def _intervals(saved: Any) -> dict[str, dict[str, Any]]:
    """`metrics.json`'s intervals (absent in runs from before them: none shown)."""
    if not isinstance(saved, dict):
        return {}
    return {k: v for k, v in saved.items() if isinstance(v, dict)
            and all(isinstance(v.get(f), float | int) for f in ("estimate", "low", "high"))}


def _per_class(metrics: dict[str, Any], decision: Decision) -> list[dict[str, Any]]:
    rows = []
    for i, (name, row) in enumerate(metrics.get("per_class", {}).items()):
        threshold = _rule(decision, i)
        rows.append({"name": name, **row, "threshold": threshold,
                     "predicted": metrics.get("predicted_distribution", {}).get(name)})
    return sorted(rows, key=lambda r: (r["f1"], -r["support"]))


def _worst_errors(valid: pd.DataFrame | None, multilabel: bool) -> list[dict[str, Any]]:
    if valid is None or multilabel or "true_label" not in valid.columns:
        return []
    probs = valid[[c for c in valid.columns if c.startswith("prob:")]]
    frame = valid.assign(confidence=probs.max(axis=1))
    wrong = frame[frame["true_label"].astype(str) != frame["label"].astype(str)]
    wrong = wrong.sort_values("confidence", ascending=False).head(20)
    return [{"id": r.iloc[0], "text": str(r.get("text", ""))[:300], "given": r["true_label"],
             "predicted": r["label"], "confidence": r["confidence"]} for _, r in wrong.iterrows()]


def _suspects(run: RunDir) -> tuple[str, list[dict[str, Any]]]:
    audit = readers.read_suspects(run)
    if audit is not None:
        return "audit", _records(audit.head(50))
    dynamics = readers.read_dynamics(run)
    if dynamics is None:
        return "", []
    return "training dynamics", _records(dynamics.head(50))


def check_rows(run: RunDir, recorded: dict[str, Any]) -> list[dict[str, Any]]:
    """The data section's checks list: every data check the run recorded (ok, warn or fail,
    count, worst examples, fix), then the rows of an audit saved into the run."""
    data = readers.read_recipe_dict(run).get("data")
    separate_valid = isinstance(data, dict) and bool(data.get("valid"))
    rows = [row.to_dict() for row in rows_from_record(recorded, separate_valid=separate_valid)]
    audit = readers.read_audit_summary(run) or {}
    listed = audit.get("checks")
    if isinstance(listed, list):
        rows += [row for row in listed if isinstance(row, dict) and row.get("source") == "audit"]
    return rows


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]


def gather(path: str | Path) -> dict[str, Any]:
    """Everything the template shows, from the run's files."""
    run = RunDir(path)
    if not is_run(run.path):
        raise not_a_run(run.path)
    status = readers.read_status(run)
    metrics = readers.read_metrics(run)
    labels = readers.read_labels(run)
    multilabel = labels.get("task") == "multilabel"  # as labels.json records the task
    saved = readers.read_decision(run, len(labels["classes"]))
    decision = Decision(multilabel=multilabel) if saved is None else saved
    select = metrics.get("select", {}).get("metric", "macro_f1")
    headline = [(select, metrics.get(select))] + [(k, metrics[k]) for k in SCALARS
                                                   if k != select and k in metrics]
    history = readers.read_history(run)
    valid = readers.read_valid_predictions(run, missing_ok=True)
    checks = readers.read_data_checks(run)
    suspects_source, suspects = _suspects(run)
    recipe_text = readers.read_recipe_text(run)
    matrix = metrics.get("confusion_matrix")
    classes = labels["classes"]
    return {
        "title": run.path.name, "path": str(run.path), "task": labels.get("task"),
        "status": status, "recipe": recipe_text, "select": select,
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "headline": [(k, v) for k, v in headline if v is not None],
        "rows": metrics.get("n"),
        "intervals": _intervals(metrics.get("intervals")),
        "across_members": _intervals(metrics.get("intervals_across_members")),
        "baselines": {"majority class": majority_baseline(metrics, multilabel),
                      "TF-IDF run": tfidf_baseline(run, labels)},
        "warnings": [str(w) for w in metrics.get("warnings") or []],
        "per_class": _per_class(metrics, decision),
        "confusion": None if multilabel or matrix is None or len(classes) > 60 else {
            "counts": plots.confusion_heatmap(np.asarray(matrix), classes, False),
            "normalised": plots.confusion_heatmap(np.asarray(matrix), classes, True)},
        "calibration": _calibration_plot(run, decision),
        "optimize": _optimize(metrics),
        "distribution": plots.distribution_bars(metrics.get("label_distribution", {}),
                                                metrics.get("predicted_distribution", {})),
        "curves": (plots.learning_curves(history, select)
                   if history is not None and len(history) else None),
        "checks": checks, "check_rows": check_rows(run, checks),
        "suspects_source": suspects_source, "suspects": suspects,
        "errors": _worst_errors(valid, multilabel),
        "ensemble": metrics.get("ensemble"),
        "sweep": None,
        **crossval_context(metrics),
    }


#: Metrics the cross-validation table shows first, when present.
CV_FIRST = ("accuracy", "balanced_accuracy", "macro_f1", "log_loss")


def crossval_context(metrics: dict[str, Any]) -> dict[str, Any]:
    """A cross-validation run's scores over folds (every metric: mean, std, 95% interval;
    each fold's rows, best epochs and scores) and a refit's origin (no validation split of
    its own; the expected score it carries)."""
    cv = metrics.get("cv") or {}
    select = metrics.get("select", {}).get("metric")
    order = list(dict.fromkeys([select, *CV_FIRST, *sorted(cv)]))
    return {"crossval": {"detail": metrics.get("crossval") or {},
                         "scores": [(name, cv[name]) for name in order if name in cv],
                         "folds": metrics.get("folds") or [], "select": select}
            if cv else None,
            "refit": metrics.get("refit")}


def render(context: dict[str, Any]) -> str:
    environment = Environment(loader=PackageLoader("fitclass.report", "templates"),
                              autoescape=select_autoescape(["html", "j2"]))
    environment.filters["num"] = lambda v: (f"{v:.4f}" if isinstance(v, float)
                                            else ("" if v is None else str(v)))
    environment.filters["noise"] = mark_text
    return environment.get_template("report.html.j2").render(**context)


def write_report(path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Render the run's report to `RUN_DIR/report.html`; return its path."""
    run = RunDir(path)
    context = gather(path) | (extra or {})
    run.write_text(REPORT, render(context))
    return run.file(REPORT)
