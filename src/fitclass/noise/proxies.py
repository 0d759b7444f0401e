"""Out-of-fold (OOF) probabilities for every training row, from the audit's proxies.

- `model`: the recipe's own model, one fitclass run per fold (`fold-<k>/` under the work
  folder, so an interrupted audit resumes); neural fold runs also record training dynamics,
  whose mean margins become the area-under-the-margin evidence.
- `tfidf`: the TF-IDF backbone in the same kind of fold runs (`tfidf-fold-<k>/`).
- `linear_probe`: logistic regressions on the frozen, pooled and L2-normalised features of
  the recipe's transformer (cached on disk, `training/cache.py`); no fold runs.

`oof_tfidf` is the `tfidf` proxy without fold runs (one vectoriser, a cross-fitted logistic
regression in memory): what `fitclass doctor` estimates label noise with in seconds.

`auto` (the default) picks `tfidf,linear_probe` for a text recipe whose backbone has
cacheable features, `tfidf` for a TF-IDF recipe and the recipe's model otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, StratifiedGroupKFold, StratifiedKFold
from sklearn.preprocessing import normalize
from threadpoolctl import threadpool_limits

from fitclass.atomic import atomic_write_text
from fitclass.data.table import TextInput, TextTable
from fitclass.errors import FitclassError, RecipeError
from fitclass.recipe import ModelConfig, Recipe, load_recipe
from fitclass.runs.folder import RunDir
from fitclass.runs.layout import STATUS, Layout, claim_folder
from fitclass.runs.readers import read_dynamics
from fitclass.target_kinds import KINDS, TargetKind
from fitclass.training.cache import FeatureCache, feature_key

PROXIES = ("tfidf", "linear_probe", "model")
AUTO = "auto"
#: The linear probe averages this many repetitions of the K-fold cross-fit (other fold
#: seeds): its fits take milliseconds and the average is a steadier OOF estimate.
PROBE_REPEATS = 3
#: The fold runs' folder (--work-dir): fold-<k>/ (the recipe's model) and tfidf-fold-<k>/,
#: each holding the fold's train.csv and run/.
WORK_DIR = Layout("audit work", frozenset({"mlruns.db", "mlartifacts"}),
                  patterns=("fold-*", "tfidf-fold-*"), legacy=(f"fold-0/run/{STATUS}",))
FOLD_DIR = Layout("audit fold", frozenset({"train.csv", "run", "mlruns.db", "mlartifacts"}),
                  legacy=(f"run/{STATUS}", "train.csv"))
WORK_DIR_FIX = "choose another --work-dir (a new or empty folder)"
Splits = list[tuple[np.ndarray, np.ndarray]]


@dataclass
class ProxyOutput:
    """What the proxies found: OOF probabilities by proxy name, mean training-dynamics
    margins by row id (neural fold runs), and the probe's features (for outliers)."""

    probs: dict[str, np.ndarray] = field(default_factory=dict)
    margins: dict[str, float] = field(default_factory=dict)
    features: np.ndarray | None = None


def parse_proxies(proxy: str | Sequence[str] | None, recipe: Recipe) -> list[str]:
    """The proxy names of `--proxy` (a comma list, a sequence, `auto` or None: `auto`)."""
    names = ([p.strip() for p in proxy.split(",")] if isinstance(proxy, str)
             else [AUTO] if proxy is None else [str(p).strip() for p in proxy])
    unknown = [n for n in names if n not in (*PROXIES, AUTO)]
    if unknown or not names or (AUTO in names and len(names) > 1):
        raise FitclassError(f"--proxy {proxy!r}: expected {AUTO!r} or a comma list of "
                            f"{', '.join(PROXIES)} (e.g. tfidf,linear_probe); "
                            f"unknown: {unknown or names}")
    if names == [AUTO]:
        return auto_proxies(recipe)
    return list(dict.fromkeys(names))  # a name given twice runs once


def auto_proxies(recipe: Recipe) -> list[str]:
    """The measured best at a cost far below fold runs (docs/benchmarks.md, issue 17)."""
    from fitclass.models.catalog import get_backbone

    if recipe.data.images is not None:
        return ["model"]
    capabilities = get_backbone(recipe.model).capabilities
    if not capabilities.neural:  # a classical text model: the TF-IDF proxy is its kind
        return ["tfidf"]
    if capabilities.cacheable_features:
        return ["tfidf", "linear_probe"]
    return ["model"]


def fold_splits(targets: np.ndarray, kind: TargetKind, groups: np.ndarray | None, k: int,
                seed: int) -> Splits:
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


def tfidf_recipe(recipe: Recipe) -> Recipe:
    """The recipe with the TF-IDF backbone (and no noise or imbalance remedies)."""
    return load_recipe(recipe.to_dict() | {"model": {"backbone": "tfidf"},
                                           "noise": {}, "imbalance": {}})


def oof_by_training(recipe: Recipe, table: TextTable, class_names: list[str], splits: Splits,
                    work_dir: Path, device: str | None = None,
                    prefix: str = "fold") -> tuple[np.ndarray, dict[str, float]]:
    """OOF probabilities from one fitclass run per fold (`<prefix>-<k>/`, each predicting on
    `device`, default auto), and mean dynamics margins by id."""
    from fitclass.api import train
    from fitclass.runs.run import load_run

    probs = np.zeros((len(table), len(class_names)))
    margins: dict[str, list[float]] = {}
    claim_folder(work_dir, WORK_DIR, fix=WORK_DIR_FIX)
    for k, (train_rows, held_rows) in enumerate(splits):
        fold_dir = claim_folder(work_dir / f"{prefix}-{k}", FOLD_DIR, fix=WORK_DIR_FIX)
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


def probe_features(recipe: Recipe, table: TextTable, device: str | None = None) -> np.ndarray:
    """Frozen pooled features of the recipe's transformer (encoded on `device`, default
    auto, in the recipe's `train.precision`; cached on disk), L2-normalised as
    sentence-transformers normalises its embeddings: raw mean-pooled MiniLM features vary
    in length and gave a weaker probe (docs/benchmarks.md, issue 17)."""
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
    return normalize(np.asarray(features, dtype=np.float64))


def oof_linear_probe(features: np.ndarray, targets: np.ndarray, kind: TargetKind,
                     groups: np.ndarray | None, folds: int, seed: int) -> np.ndarray:
    """OOF probabilities of logistic regressions on `features`, averaged over
    `PROBE_REPEATS` K-fold cross-fits (fold seeds `seed`, `seed + 1`, ...)."""
    probe = _probe_per_label if kind.multilabel else _probe_multinomial
    return np.mean([probe(features, targets, fold_splits(targets, kind, groups, folds,
                                                         seed + repeat))
                    for repeat in range(PROBE_REPEATS)], axis=0)


def _probe_per_label(features: np.ndarray, targets: np.ndarray, splits: Splits) -> np.ndarray:
    """OOF probabilities of one binary logistic regression per label."""
    probs = np.zeros((len(targets), targets.shape[1]))
    for train_rows, held_rows in splits:
        for label in range(targets.shape[1]):
            if len(np.unique(targets[train_rows, label])) < 2:  # a label absent from a fold
                probs[held_rows, label] = targets[train_rows, label].mean()
                continue
            model = LogisticRegression(max_iter=2000, C=1.0)
            model.fit(features[train_rows], targets[train_rows, label])
            probs[held_rows, label] = model.predict_proba(features[held_rows])[:, 1]
    return probs


def _probe_multinomial(features: np.ndarray, targets: np.ndarray,
                       splits: Splits) -> np.ndarray:
    return oof_logistic(features, targets, splits, LogisticRegression(max_iter=2000, C=1.0))


def oof_logistic(features: Any, targets: np.ndarray, splits: Splits,
                 model: LogisticRegression) -> np.ndarray:
    """OOF probabilities of a multinomial logistic regression (`model`'s settings, refitted
    per fold) over class indices; a class absent from a fold's training rows gets 0."""
    probs = np.zeros((len(targets), int(targets.max()) + 1))
    for train_rows, held_rows in splits:
        fitted = clone(model).fit(features[train_rows], targets[train_rows])
        probs[np.ix_(held_rows, fitted.classes_)] = fitted.predict_proba(features[held_rows])
    return probs


def oof_tfidf(texts: Sequence[TextInput], targets: np.ndarray, folds: int,
              seed: int = 0) -> np.ndarray:
    """The `tfidf` proxy in seconds, without fold runs (`fitclass doctor`): the TF-IDF
    backbone's vectoriser fitted once on every row, then its logistic regression (the
    backbone's C) cross-fitted over stratified folds. Class indices only."""
    from fitclass.models.classical import TfidfBackbone, flatten

    config = ModelConfig(backbone="tfidf")
    features = TfidfBackbone(config).vectorizer().fit_transform(flatten(texts))
    # tol 1e-3: probabilities settle long before the default 1e-4 (50 s to 1 s a fit on
    # 16,000 movie4 rows, 4 classes); a proxy needs the ranking, not the last digits
    model = LogisticRegression(C=config.C, tol=1e-3, max_iter=300)
    splits = fold_splits(targets, KINDS["multiclass"], None, folds, seed)
    # one BLAS thread: the fit is sparse products and small dense steps, and BLAS threads
    # contending with other work on a shared machine made it slower, not faster
    with threadpool_limits(limits=1, user_api="blas"):
        return oof_logistic(features, targets, splits, model)


def run_proxies(names: list[str], recipe: Recipe, table: TextTable, class_names: list[str],
                targets: np.ndarray, splits: Splits, work_dir: Path, *,
                groups: np.ndarray | None, folds: int, seed: int,
                device: str | None = None) -> ProxyOutput:
    """Every proxy of `names`, in order; the probe's features are kept for outliers."""
    kind = KINDS[recipe.task]
    out = ProxyOutput()
    for name in names:
        if name == "linear_probe":
            out.features = probe_features(recipe, table, device)
            out.probs[name] = oof_linear_probe(out.features, targets, kind, groups, folds,
                                               seed)
        elif name == "tfidf":
            out.probs[name], _ = oof_by_training(tfidf_recipe(recipe), table, class_names,
                                                 splits, work_dir, device, prefix="tfidf-fold")
        else:
            out.probs[name], out.margins = oof_by_training(recipe, table, class_names, splits,
                                                           work_dir, device)
    return out
