"""`fitclass.ensemble` (module `ensembling`): a run made of runs, combined on validation rows.

Every combiner (mean, weighted, greedy, stacking) is scored by cross-fitting on the
validation rows, so the reported numbers never come from rows a combiner was fitted on; the
chosen combiner is then refitted on all of them. Decisions are refitted on the ensemble's
probabilities. `repoint_members` points members of a saved ensemble run at other runs that
stand in for them (a cross-validation run's refit).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from fitclass.atomic import atomic_write_text
from fitclass.data.table import Label
from fitclass.decide import combiners
from fitclass.errors import FitclassError, RecipeError, RunError
from fitclass.metrics import macro_f1
from fitclass.models.base import MODEL_INFO
from fitclass.models.catalog import get_backbone
from fitclass.models.ensemble import EnsembleClassifier
from fitclass.models.loading import read_model_info
from fitclass.models.members import ENSEMBLE_KIND, checked_members, resolve_member
from fitclass.recipe import SELECTABLE_METRICS, Recipe, load_recipe
from fitclass.runs import readers, writer
from fitclass.runs.folder import RunDir
from fitclass.runs.layout import RUN, Layout, is_run
from fitclass.runs.members import find_cycle
from fitclass.runs.run import Run, load_run, predictions_for
from fitclass.runs.scored_rows import across_members, row_intervals, scored_metrics
from fitclass.tasks import Task
from fitclass.uncertainty.paired import versus_best
from fitclass.uncertainty.scored import Scored

HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1", "micro_f1", "log_loss")


def check_members(members: Sequence[Run]) -> None:
    """Members must share task and label set, or their probabilities mean different things."""
    if len(members) < 2:
        raise FitclassError("an ensemble needs at least 2 member runs")
    first = members[0]
    for member in members[1:]:
        if member.recipe.task != first.recipe.task:
            raise RunError(f"{member.path}: task {member.recipe.task!r} differs from "
                           f"{first.path} ({first.recipe.task!r}); ensemble runs of one task")
        if member.class_names != first.class_names:
            raise RunError(f"{member.path}: classes {member.class_names} differ from "
                           f"{first.path} {first.class_names}; members need the same label set")


def refuse_out_among_members(out: Path, members: Sequence[Run]) -> None:
    """`out` must not be a member, nor inside one through nested ensembles: writing there
    would make an ensemble that contains itself (and --overwrite would delete a member)."""
    for member in members:
        cycle = find_cycle(member.path, (out.resolve(),))
        if cycle is not None:
            raise RunError(f"--out {out} is a member of this ensemble "
                           f"({' -> '.join(map(str, cycle))}); choose another --out folder")


def shared_validation(members: Sequence[Run]) -> tuple[list[str], str, list[Label], np.ndarray]:
    """Ids, id column, labels and member probabilities of the members' common validation rows
    (from each member's `valid_predictions.csv`, aligned by id)."""
    frames = [readers.read_valid_predictions(m.dir) for m in members]
    id_column = frames[0].columns[0]
    ids = frames[0][id_column].astype(str).tolist()
    probs = []
    prob_columns = [f"prob:{name}" for name in members[0].class_names]
    for member, frame in zip(members, frames, strict=True):
        indexed = frame.set_index(frame.columns[0].__str__())
        indexed.index = indexed.index.astype(str)
        if set(indexed.index) != set(ids) or len(indexed) != len(ids):
            raise RunError(f"{member.path}: validated on different rows than {members[0].path};"
                           f" train members with the same data and data.split (seed, "
                           f"valid_size), or pass --valid FILE to score all on one file")
        probs.append(indexed.loc[ids, prob_columns].to_numpy(dtype=float))
    task = members[0].task
    labels = [task.kind.parse_label(v) for v in frames[0][f"true_{task.label_column}"]]
    return ids, id_column, labels, np.stack(probs)


def file_validation(members: Sequence[Run],
                    valid: str | Path) -> tuple[list[str], str, list[Label], np.ndarray]:
    """The same, by predicting `valid` with every member (read with the first's columns)."""
    table = members[0]._table(valid, need_labels=True)
    probs = np.stack([m.predict_proba(list(table.texts)) for m in members])
    assert table.labels is not None
    return table.ids, table.id_column, table.labels, probs


#: Metrics computed from predictions alone, fast enough for greedy selection's inner loop.
FAST = {"accuracy": lambda t, p: skm.accuracy_score(t, p),
        "macro_f1": macro_f1,
        "micro_f1": lambda t, p: skm.f1_score(t, p, average="micro", zero_division=0),
        "weighted_f1": lambda t, p: skm.f1_score(t, p, average="weighted", zero_division=0)}


def make_score(task: Task, metric: str) -> combiners.Score:
    """Higher is better: losses are negated."""
    sign = -1.0 if SELECTABLE_METRICS[metric] == "min" else 1.0
    if metric in ("loss", "log_loss"):
        return lambda targets, probs: -task.kind.log_loss(targets, probs)
    if metric in FAST:
        fast = FAST[metric]
        return lambda targets, probs: float(fast(targets, task.decide(probs)))
    return lambda targets, probs: sign * float(task.metrics(targets, probs)[metric] or 0.0)


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: metrics[k] for k in HEADLINE if metrics.get(k) is not None}


def mark_noise(task: Task, targets: np.ndarray, metric: str, rows: Sequence[dict[str, Any]],
               probs: Sequence[np.ndarray]) -> None:
    """Add `within_noise` and `p_vs_best` to each row of the members-and-methods table:
    whether its `metric` differs from the table's best by no more than noise, by the paired
    test of `fitclass.uncertainty.paired` on the shared rows (each row's probabilities with
    argmax / 0.5 thresholds, as the table scores them)."""
    entries = [Scored(targets, p, task.decide(p), task.kind) for p in probs]
    marks = versus_best(entries, "log_loss" if metric == "loss" else metric,
                        lower_is_better=SELECTABLE_METRICS[metric] == "min")
    for row, mark in zip(rows, marks, strict=True):
        row["within_noise"], row["p_vs_best"] = mark.within_noise, mark.p_value


def ensemble(run_dirs: Sequence[str | Path], out: str | Path, *, method: str = "auto",
             valid: str | Path | None = None, metric: str | None = None, folds: int = 5,
             seed: int = 0, overwrite: bool = False, within: Layout = RUN) -> Run:
    """Combine finished runs into an ensemble run at `out`; return it. `within`: the layout
    of `out` when it keeps entries of its own beside the run (`RunDir.create`)."""
    if method != "auto" and method not in combiners.METHODS:
        raise FitclassError(f"--method {method!r}: choose auto or one of "
                            f"{sorted(combiners.METHODS)}")
    members = [load_run(path) for path in run_dirs]
    check_members(members)
    refuse_out_among_members(Path(out), members)
    first, task = members[0], members[0].task
    metric = metric or first.recipe.train.select.metric
    if metric not in SELECTABLE_METRICS:
        raise FitclassError(f"--metric {metric!r}: choose one of {sorted(SELECTABLE_METRICS)}")
    ids, id_column, labels, member_probs = (file_validation(members, valid) if valid
                                            else shared_validation(members))
    targets = _targets(labels, first)
    score = make_score(task, metric)
    held_out = {name: combiners.cross_fit(name, member_probs, targets, score, task.kind,
                                          folds, seed)
                for name in combiners.METHODS}
    comparison = {name: headline(task.metrics(targets, probs)) | {metric: score(targets, probs)
                  * (-1 if SELECTABLE_METRICS[metric] == "min" else 1)}
                  for name, probs in held_out.items()}
    chosen = method if method != "auto" else max(held_out,
                                                 key=lambda n: score(targets, held_out[n]))
    combiner = combiners.METHODS.get(chosen)(member_probs, targets, score, task.kind)
    member_rows = [{"path": str(m.path), "backbone": m.recipe.model.backbone,
                    "weight": float(w), **headline(task.metrics(targets, p))}
                   for m, w, p in zip(members, combiner.weights, member_probs, strict=True)]
    mark_noise(task, targets, metric, [*member_rows, *comparison.values()],
               [*member_probs, *held_out.values()])
    across = across_members([task.score(targets, p, m.decision.predict(p))
                             for m, p in zip(members, member_probs, strict=True)])
    run = RunDir.create(out, overwrite=overwrite, within=within)  # locked until written
    try:
        _write(run, members, combiner, task, targets, labels, ids, id_column,
               held_out[chosen], {"method": chosen, "metric": metric, "folds": folds,
                                  "members": member_rows, "methods": comparison},
               shared_fingerprint(members) if valid is None else None, across)
    except BaseException as error:
        run.set_status("failed", error=f"{type(error).__name__}: {error}")
        raise
    finally:
        run.release()
    return Run(run.path)


def _targets(labels: list[Label], first: Run) -> np.ndarray:
    from fitclass.data.table import TextTable

    table = TextTable(source="validation", frame=pd.DataFrame(), texts=[""] * len(labels),
                      labels=labels, ids=[str(i) for i in range(len(labels))])
    return table.targets(first.class_names)


def shared_fingerprint(members: Sequence[Run]) -> str | None:
    """The members' data fingerprint when they all trained and validated on the same data
    (the ensemble is scored on those validation rows), else None."""
    prints = {readers.read_labels(m.dir).get("data_fingerprint") for m in members}
    only = prints.pop() if len(prints) == 1 else None
    return only if isinstance(only, str) else None


def _write(run: RunDir, members: Sequence[Run], combiner: combiners.Combiner,
           task: Task, targets: np.ndarray, labels: list[Label], ids: list[str],
           id_column: str, held_out: np.ndarray, summary: dict[str, Any],
           fingerprint: str | None, across: dict[str, Any]) -> None:
    first = members[0]
    recipe = load_recipe(ensemble_recipe(first.recipe, summary["method"]))
    writer.write_start(run, recipe)
    train_counts = np.asarray(readers.read_labels(first.dir).get(
        "train_counts", np.ones(len(first.class_names))), dtype=float)
    priors = train_counts / max(train_counts.sum(), 1.0)  # used by multi-class prior correction
    decision = task.fit_decision(recipe.decision, targets, held_out, priors)
    metrics, scored = scored_metrics(task, targets, held_out, decision)
    metrics["intervals"] = row_intervals(scored, metrics)
    metrics["intervals_across_members"] = across
    metrics["ensemble"] = summary
    metrics.update(decision.metrics_sections())
    metrics["select"] = {"metric": summary["metric"], "held_out": True}
    metrics["warnings"] = task.degenerate_reasons(
        targets, held_out, scored.predictions, summary["metric"]) + decision.warnings
    members_info = [member_entry(m.path, run.path) for m in members]
    frame = predictions_for(ids, id_column, labels, held_out, task, decision)
    first_rows = readers.read_valid_predictions(first.dir)
    if "text" in first_rows.columns:
        texts = dict(zip(first_rows.iloc[:, 0].astype(str), first_rows["text"], strict=True))
        frame.insert(1, "text", [texts.get(i, "") for i in ids])
    writer.write_record(run, writer.RunRecord(
        recipe=recipe, classifier=EnsembleClassifier(first.class_names, members_info, combiner),
        classes=first.class_names, train_counts=train_counts, decision=decision,
        metrics=metrics, valid_predictions=frame, valid_probs=held_out, valid_targets=targets,
        data_fingerprint=fingerprint, ensemble=summary | {"combiner": combiner.to_dict()}))
    run.set_status("finished")
    from fitclass.api import write_report_safely
    from fitclass.training.progress import Reporter

    write_report_safely(run.path, Reporter())


def ensemble_recipe(first: Recipe, method: str) -> dict[str, Any]:
    """An ensemble's recipe: what its members share and it uses (`Recipe.carried`), taken
    from the first member. How each member learned (backbone, schedule, remedies, adapters,
    distillation) stays in that member's own recipe, where members may differ."""
    return {**first.carried(), "name": f"ensemble-{method}",
            "model": {"backbone": "ensemble"}}


def member_entry(member: Path, run_path: Path) -> dict[str, str]:
    """How an ensemble run records a member run: relative to the ensemble's run folder (the
    two can move together, `models/members.py` tries it first) and absolute."""
    target = member.resolve()
    return {"absolute": str(target), "relative": os.path.relpath(target, run_path.resolve())}


def repoint_members(ensemble_run: str | Path,
                    replacements: Mapping[str | Path, str | Path]) -> Run:
    """Point members of the finished ensemble run `ensemble_run` at other finished runs:
    each key of `replacements` (a member's run folder) is replaced by its value; the
    combiner, decision and recorded scores stay as fitted. Sound only when a replacement
    predicts what the member it replaces did, as the refit of a cross-validation run does
    (it carries that run's decision; `fitclass auto --preset best`).

    A replacement must be a finished run of the ensemble's task and classes and must not
    contain the ensemble; a key must be a member (RunError naming the run otherwise).
    The member list is rewritten atomically (relative and absolute paths, as
    `fitclass ensemble` writes them) under the run's lock, and `status.json` lists what was
    replaced under `repointed`. Returns the ensemble run, loaded again."""
    run = load_run(ensemble_run)
    info_path = run.dir.model_dir / MODEL_INFO
    info = read_model_info(run.dir.model_dir)
    if info["kind"] != ENSEMBLE_KIND:
        raise RunError(f"{run.path}: not an ensemble run (its model is {info['kind']!r}); "
                       f"only an ensemble's members can be re-pointed")
    members = checked_members(info.get("members"), info_path)
    current = [resolve_member(run.dir.model_dir, m, is_run) for m in members]
    wanted = {Path(old).resolve(): Path(new) for old, new in replacements.items()}
    strangers = [str(old) for old in wanted if old not in current]
    if strangers:
        raise RunError(f"{run.path}: {', '.join(strangers)} is not a member of this ensemble "
                       f"(its members: {', '.join(map(str, current))}); name a member's run "
                       f"folder as it is now")
    for new in wanted.values():
        _check_replacement(run, new)
    entries = [member_entry(wanted[path], run.path) if path in wanted else member
               for path, member in zip(current, members, strict=True)]
    folder = RunDir(run.path)
    folder.acquire()  # no other process rewrites (or deletes) it meanwhile
    try:
        atomic_write_text(info_path, json.dumps(info | {"members": entries}, indent=2,
                                                ensure_ascii=False))
        earlier = (folder.status_record() or {}).get("repointed", [])
        folder.set_status("finished", repointed=[*earlier, *(
            {"from": str(old), "to": str(new.resolve())} for old, new in wanted.items())])
    finally:
        folder.release()
    return load_run(run.path)


def _check_replacement(ensemble_run: Run, path: Path) -> None:
    """A run may stand in for a member only when its probabilities mean the same thing:
    the ensemble's task and classes, and no ensemble containing this one."""
    replacement = load_run(path)  # RunError when it is not a finished run
    if (replacement.recipe.task, replacement.class_names) != (ensemble_run.recipe.task,
                                                              ensemble_run.class_names):
        raise RunError(
            f"{path}: cannot replace a member of the ensemble {ensemble_run.path}: it is a "
            f"{replacement.recipe.task} run of classes {replacement.class_names}, the "
            f"ensemble a {ensemble_run.recipe.task} run of {ensemble_run.class_names}; "
            f"re-point members only to runs trained on the same label set (a member's "
            f"refit), or build a new ensemble with `fitclass ensemble`")
    cycle = find_cycle(replacement.path, (ensemble_run.path.resolve(),))
    if cycle is not None:
        raise RunError(f"{path} contains the ensemble {ensemble_run.path} "
                       f"({' -> '.join(map(str, cycle))}); an ensemble cannot be its own "
                       f"member")


def refuse_identical_seeds(recipe: Recipe, seeds: int) -> None:
    """Several seeds of a backbone whose fit ignores the seed are identical models: their
    ensemble only costs N times the training and reads like a variance estimate it is not."""
    if seeds > 1 and not get_backbone(recipe.model).capabilities.seed_sensitive:
        raise RecipeError(
            f"--seeds {seeds}: model.backbone {recipe.model.backbone!r} learns the same model "
            f"whatever train.seed is, so {seeds} seeds would train {seeds} identical members "
            f"and an ensemble no better than one. Train it once (drop --seeds), or ensemble "
            f"models that differ: `fitclass ensemble RUN_A RUN_B --out DIR` over runs of "
            f"different recipes, or a sweep's best runs (`fitclass sweep RECIPE --out DIR "
            f"--top K`, then `fitclass ensemble DIR --out ENSEMBLE`)")


def train_seeds(recipe: Any, seeds: int, out: str | Path, *, overrides: list[str] | None = None,
                method: str = "mean", reporter: Any = None) -> Run:
    """Train one recipe with `seeds` consecutive seeds (init, data order, dropout vary; the
    validation split does not) into OUT/seed-<s>, then ensemble them into OUT/ensemble.
    Finished members are reused and unfinished ones resumed, so a rerun never redoes work."""
    from fitclass.api import train
    from fitclass.recipe import load_recipe as _load

    base = _load(recipe, overrides)
    refuse_identical_seeds(base, seeds)
    out = Path(out)
    paths = []
    for offset in range(seeds):
        seed = base.train.seed + offset
        path = out / f"seed-{seed}"
        member = RunDir(path)
        status = member.status()
        if status != "finished":
            # continue a member from its checkpoint; one with nothing to continue (or a live
            # one, which `train` refuses naming its process) is trained by the same call
            with_seed = (overrides or []) + [f"train.seed={seed}"]
            resumable = status == "running" or member.has_checkpoint()
            train(recipe, overrides=with_seed, out=path, reporter=reporter,
                  resume=path if status is not None and resumable else None)
        paths.append(path)
    return ensemble(paths, out / "ensemble", method=method, overwrite=True)
