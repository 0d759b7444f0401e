"""`fitclass audit`: out-of-fold probabilities for every training row, then suspect labels.

Out-of-fold (OOF) probabilities come from K-fold cross-fitting with the recipe's own model
(each fold is a normal run directory, so an interrupted audit resumes), or from a fast proxy:
`tfidf` (the TF-IDF backbone in the same fold runs) or `linear_probe` (a logistic regression
on frozen pooled features of the recipe's transformer). Confident learning (cleanlab) scores
them; training dynamics from the fold runs and conflicting duplicates add evidence.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, StratifiedGroupKFold, StratifiedKFold

from fitclass.atomic import atomic_write_text
from fitclass.data.dedupe_groups import dedupe_groups
from fitclass.data.prepare import class_names_of, read_labelled
from fitclass.data.table import TextTable
from fitclass.errors import FitclassError, RecipeError
from fitclass.noise import findings, near_copies, scoring
from fitclass.recipe import Recipe, load_recipe
from fitclass.runs.folder import RunDir
from fitclass.runs.layout import STATUS, Layout, claim_folder
from fitclass.runs.readers import read_dynamics
from fitclass.target_kinds import KINDS, TargetKind
from fitclass.training.cache import FeatureCache, feature_key

PROXIES = ("tfidf", "linear_probe")
SUSPECT_COLUMNS = ["id", "text", "given_label", "suggested_label", "score", "methods"]
#: The fold runs' folder (--work-dir): fold-<k>/ holding the fold's train.csv and run/.
WORK_DIR = Layout("audit work", frozenset({"mlruns.db", "mlartifacts"}),
                  patterns=("fold-*",), legacy=(f"fold-0/run/{STATUS}",))
FOLD_DIR = Layout("audit fold", frozenset({"train.csv", "run", "mlruns.db", "mlartifacts"}),
                  legacy=(f"run/{STATUS}", "train.csv"))
WORK_DIR_FIX = "choose another --work-dir (a new or empty folder)"


@dataclass
class AuditResult:
    suspects: pd.DataFrame
    summary: dict[str, Any]
    oof_probs: np.ndarray
    #: `--against`: rows of those files with an exact or near copy in train.
    near_copies: pd.DataFrame | None = None


def fold_splits(targets: np.ndarray, kind: TargetKind, groups: np.ndarray | None, k: int,
                seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """K folds: grouped when the recipe splits by group, stratified (iteratively for
    multi-label) where every class has k rows, plain otherwise."""
    rows = np.zeros(len(targets))
    if kind.multilabel:
        return list(MultilabelStratifiedKFold(k, shuffle=True, random_state=seed)
                    .split(rows, targets))
    if groups is not None:
        return list(StratifiedGroupKFold(k, shuffle=True, random_state=seed)
                    .split(rows, targets, groups))
    if np.bincount(targets).min() >= k:
        return list(StratifiedKFold(k, shuffle=True, random_state=seed).split(rows, targets))
    return list(KFold(k, shuffle=True, random_state=seed).split(rows))


def _fold_frame(table: TextTable, rows: np.ndarray, kind: TargetKind) -> pd.DataFrame:
    part = table.subset(rows)
    frame = pd.DataFrame({"id": part.ids})
    if part.texts and isinstance(part.texts[0], tuple):
        frame["text"], frame["text_b"] = [t[0] for t in part.texts], [t[1] for t in part.texts]
    else:
        frame["text"] = part.texts
    labels = part.labels or []
    frame["label"] = [kind.label_text(x) for x in labels]
    if part.groups is not None:
        frame["group"] = part.groups
    return frame


def _fold_recipe(recipe: Recipe, train_csv: Path, table: TextTable) -> dict[str, Any]:
    raw = recipe.to_dict()
    pair = bool(table.texts) and isinstance(table.texts[0], tuple)
    data = raw["data"]
    data.update({"train": str(train_csv), "valid": None, "id": "id", "limit": None,
                 "text": ["text", "text_b"] if pair else "text", "label": "label",
                 "label_sep": KINDS[recipe.task].label_sep,
                 "group": "group" if table.groups is not None else None, "quoting": "csv"})
    if recipe.data.images is not None:  # the fold table's text column holds absolute paths
        data["images"] = {**data["images"], "column": "text"}
    raw["noise"] = {**raw["noise"], "action": "none", "suspects": None}
    raw["self_training"] = None
    return raw


def oof_by_training(recipe: Recipe, table: TextTable, class_names: list[str],
                    splits: list[tuple[np.ndarray, np.ndarray]], work_dir: Path,
                    device: str | None = None) -> tuple[np.ndarray, dict[str, float]]:
    """OOF probabilities from one fitclass run per fold (each predicting on `device`, default
    auto), and mean dynamics margins by id."""
    from fitclass.api import train
    from fitclass.runs.run import load_run

    probs = np.zeros((len(table), len(class_names)))
    margins: dict[str, list[float]] = {}
    claim_folder(work_dir, WORK_DIR, fix=WORK_DIR_FIX)
    for k, (train_rows, held_rows) in enumerate(splits):
        fold_dir = claim_folder(work_dir / f"fold-{k}", FOLD_DIR, fix=WORK_DIR_FIX)
        train_csv = fold_dir / "train.csv"
        atomic_write_text(train_csv, _fold_frame(table, train_rows, KINDS[recipe.task])
                          .to_csv(index=False))
        run_dir = RunDir(fold_dir / "run")
        status = run_dir.status()
        if status != "finished":  # continue a fold from its checkpoint, else start over
            resumable = status == "running" or run_dir.has_checkpoint()
            train(_fold_recipe(recipe, train_csv, table), out=run_dir.path,
                  resume=run_dir.path if status is not None and resumable else None)
        run = load_run(run_dir.path, device=device)
        held = table.subset(held_rows)
        probs[held_rows] = _aligned(run, class_names, run.predict_proba(list(held.texts)))
        frame = read_dynamics(run.dir)
        if frame is not None:
            for row_id, margin in zip(frame["id"], frame["margin_mean"], strict=True):
                margins.setdefault(str(row_id), []).append(float(margin))
    return probs, {key: float(np.mean(values)) for key, values in margins.items()}


def _aligned(run: Any, class_names: list[str], probs: np.ndarray) -> np.ndarray:
    """A fold may miss a rare class: place its columns in the audit's class order."""
    out = np.zeros((len(probs), len(class_names)))
    index = {name: i for i, name in enumerate(class_names)}
    for column, name in enumerate(run.class_names):
        out[:, index[name]] = probs[:, column]
    return out


def oof_linear_probe(recipe: Recipe, table: TextTable, targets: np.ndarray,
                     splits: list[tuple[np.ndarray, np.ndarray]],
                     device: str | None = None) -> np.ndarray:
    """OOF probabilities of a logistic regression on frozen pooled transformer features
    (encoded on `device`, default auto, in the recipe's `train.precision`)."""
    from fitclass.models.catalog import get_backbone
    from fitclass.precision import make_policy

    backbone = get_backbone(recipe.model)
    encoder = backbone.feature_encoder() if backbone.capabilities.cacheable_features else None
    if encoder is None or encoder.feature_source is None:
        raise RecipeError(f"--proxy linear_probe needs a backbone with cacheable features "
                          f"(a transformer); model.backbone is {recipe.model.backbone!r} "
                          f"(use --proxy tfidf)")
    encoder.use(make_policy(recipe.train.precision, device))
    key = feature_key(encoder.feature_source, encoder.max_length, encoder.pooling, table.texts,
                      encoder.policy.precision)
    features = FeatureCache().get_or_compute(
        key, lambda: encoder.encode(list(table.texts), recipe.train.eval_batch_size))
    probe = _probe_per_label if KINDS[recipe.task].multilabel else _probe_multinomial
    return probe(features, targets, splits)


def _probe_per_label(features: np.ndarray, targets: np.ndarray,
                     splits: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """OOF probabilities of one binary logistic regression per label."""
    probs = np.zeros((len(targets), targets.shape[1]))
    for train_rows, held_rows in splits:
        for label in range(targets.shape[1]):
            model = LogisticRegression(max_iter=2000, C=1.0)
            model.fit(features[train_rows], targets[train_rows, label])
            probs[held_rows, label] = model.predict_proba(features[held_rows])[:, 1]
    return probs


def _probe_multinomial(features: np.ndarray, targets: np.ndarray,
                       splits: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """OOF probabilities of one multinomial logistic regression over class indices."""
    probs = np.zeros((len(targets), int(targets.max()) + 1))
    for train_rows, held_rows in splits:
        model = LogisticRegression(max_iter=2000, C=1.0)
        model.fit(features[train_rows], targets[train_rows])
        probs[np.ix_(held_rows, model.classes_)] = model.predict_proba(features[held_rows])
    return probs


def rank_suspects(table: TextTable, class_names: list[str], targets: np.ndarray,
                  kind: TargetKind, probs: np.ndarray,
                  margins: dict[str, float]) -> pd.DataFrame:
    """One row per flagged training row, most suspect first."""
    cl_score, cl_mask = scoring.confident_learning(targets, kind, probs)
    has_dynamics = bool(margins)
    margin = np.array([margins.get(i, np.nan) for i in table.ids])
    score = (cl_score + scoring.margin_score(margin)) / 2 if has_dynamics else cl_score
    given = [kind.label_text(x) for x in table.labels or []]
    duplicates = ({} if kind.multilabel else  # a conflict of duplicates: one label each
                  scoring.conflicting_duplicates([str(t) for t in table.texts], given))
    rows = []
    for i in range(len(table)):
        methods = []
        if cl_mask[i]:
            methods.append("confident_learning")
        if has_dynamics and np.isfinite(margin[i]) and margin[i] < 0:
            methods.append("training_dynamics")
        if i in duplicates:
            methods.append("duplicate_conflict")
        if methods:
            rows.append({"id": table.ids[i], "text": str(table.texts[i]),
                         "given_label": given[i],
                         "suggested_label": _suggestion(i, probs, targets, kind,
                                                        class_names, duplicates),
                         "score": round(float(score[i]), 6), "methods": "+".join(methods)})
    frame = pd.DataFrame(rows, columns=SUSPECT_COLUMNS)
    return frame.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)


def _suggestion(row: int, probs: np.ndarray, targets: np.ndarray, kind: TargetKind,
                class_names: list[str], duplicates: dict[int, str]) -> str:
    if kind.multilabel:  # every label the model believes in
        return "|".join(n for n, p in zip(class_names, probs[row], strict=True) if p >= 0.5)
    order = np.argsort(-probs[row])
    best = order[0] if order[0] != targets[row] else order[1]
    if row in duplicates and probs[row, order[0]] < 0.5:
        return duplicates[row]
    return class_names[int(best)]


def audit(recipe: Any, out: str | Path, *, folds: int = 5, proxy: str | None = None,
          overrides: list[str] | None = None, work_dir: str | Path | None = None,
          seed: int = 0, device: str | None = None,
          against: Sequence[str | Path] | None = None) -> AuditResult:
    """Rank the training rows of `recipe` by how likely their label is wrong; write
    `out` (suspects CSV) and `<out stem>_summary.json`. The proxies and fold runs predict
    on `device` (auto, cpu, cuda, cuda:N, mps; default auto). `against`: files whose rows
    to look for in train as exact or near copies (`<out stem>_near_copies.csv`)."""
    from fitclass.precision import resolve_device
    if proxy is not None and proxy not in PROXIES:
        raise FitclassError(f"--proxy {proxy!r}: choose one of {list(PROXIES)} or none")
    if folds < 2:
        raise FitclassError("--folds must be at least 2")
    resolve_device(device)  # a device that is not here fails before any fold trains
    config = load_recipe(recipe, overrides)
    data = config.data
    if data.images is not None:  # an image root holding train/ (and valid/) audits train/
        from fitclass.data.image_tables import resolve_layout

        data = resolve_layout(data)
    table = read_labelled(data.train, data, data.limit)
    class_names = class_names_of(table, config.data)
    targets, kind = table.targets(class_names), KINDS[config.task]
    groups = dedupe_groups(table, data)  # near-duplicate clusters never straddle folds
    splits = fold_splits(targets, kind, groups, folds, seed)
    out = Path(out)
    summary_path = out.with_name(f"{out.stem}_summary.json")
    check_outputs(out, summary_path, config)
    copies = None
    if against:  # before any fold trains: a missing file or a foreign output fails fast
        near_copies.check_output(near_copies.output_path(out))
        copies, copies_summary = near_copies.near_copies(table, against, data)
    work = Path(work_dir) if work_dir else out.with_name(f"{out.stem}_folds")
    margins: dict[str, float] = {}
    if proxy == "linear_probe":
        probs = oof_linear_probe(config, table, targets, splits, device)
    else:
        fold_recipe = config if proxy is None else load_recipe(
            config.to_dict() | {"model": {"backbone": "tfidf"},
                                "noise": {}, "imbalance": {}})
        probs, margins = oof_by_training(fold_recipe, table, class_names, splits, work,
                                         device)
    suspects = rank_suspects(table, class_names, targets, kind, probs, margins)
    summary = scoring.noise_summary(targets, kind, probs, class_names) | {
        "rows": len(table), "suspects": len(suspects), "folds": folds,
        "proxy": proxy or "recipe model", "methods": sorted({m for ms in suspects["methods"]
                                                             for m in ms.split("+")}),
    }
    if copies is not None:
        summary["near_copies"] = copies_summary
        atomic_write_text(near_copies.output_path(out), copies.to_csv(index=False))
    summary["checks"] = findings.audit_checks(table, data, suspects, summary, out, copies)
    atomic_write_text(out, suspects.to_csv(index=False))
    atomic_write_text(summary_path, json.dumps(summary, indent=2, ensure_ascii=False))
    return AuditResult(suspects=suspects, summary=summary, oof_probs=probs,
                       near_copies=copies)


def check_outputs(out: Path, summary: Path, recipe: Recipe) -> None:
    """Replace only files an audit wrote: `out` must be new or a suspects table (its
    columns), the summary new or an audit summary (its keys); never one of the recipe's
    inputs."""
    inputs = [Path(p).resolve() for p in (recipe.data.train, recipe.data.valid,
                                          recipe.noise.suspects) if p]
    for path in (out, summary):
        if path.resolve() in inputs:
            raise FitclassError(f"{path}: is an input of the recipe; write the audit to "
                                f"another --out, e.g. suspects.csv")
    if out.is_dir():
        raise FitclassError(f"{out}: is a folder; --out names the suspects CSV to write, "
                            f"e.g. {out / 'suspects.csv'}")
    if out.exists() and _header(out) != SUSPECT_COLUMNS:
        raise FitclassError(f"{out}: exists and is not a suspects table written by fitclass "
                            f"audit (columns {', '.join(SUSPECT_COLUMNS)}); fitclass will not "
                            f"replace it: choose another --out")
    if summary.exists() and not _is_audit_summary(summary):
        raise FitclassError(f"{summary}: exists and is not an audit summary written by "
                            f"fitclass; fitclass will not replace it: choose another --out")


def _header(path: Path) -> list[str]:
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            return next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


def _is_audit_summary(path: Path) -> bool:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and {"rows", "suspects", "folds", "proxy"} <= record.keys()
