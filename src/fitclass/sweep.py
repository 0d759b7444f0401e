"""`fitclass sweep`: hyperparameter search with Optuna. Each trial is a normal run directory;
every evaluation feeds the pruner; the study lives in an Optuna storage (SQLite beside the
trials by default, any RDB URL such as PostgreSQL for several workers), so a killed sweep
resumes with the same command and several machines can join one study.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from fitclass.atomic import atomic_write_text
from fitclass.errors import FitclassError, Pruned, RecipeError
from fitclass.recipe import Recipe, SweepConfig, load_recipe, merge, parse_overrides
from fitclass.registry import Registry
from fitclass.runs.folder import RunDir
from fitclass.runs.layout import REPORT, Layout, claim_folder, is_run
from fitclass.runs.noise_marks import noise_marks
from fitclass.runs.readers import has_metrics
from fitclass.sweep_storage import fail_dead_trials, hide_password, rdb_storage
from fitclass.sweep_storage import import_optuna as _optuna
from fitclass.training.progress import Reporter

SCALARS = (str, int, float, bool, type(None))
#: The leaderboard's marks of trials within noise of the best (runs/noise_marks.py).
NOISE_COLUMNS = ("within_noise", "p_vs_best", "noise_rule")
SWEEP_FILE = "sweep.json"
LEADERBOARD = "leaderboard.csv"
BEST_RECIPE = "best_recipe.yaml"
#: What a sweep writes into its folder (the overwrite rule: runs.layout.claim_folder).
SWEEP_DIR = Layout("sweep", frozenset({
    SWEEP_FILE, LEADERBOARD, BEST_RECIPE, "importance.csv", REPORT, "trials",
    "sweep.db", "sweep.db-journal", "sweep.db-wal", "sweep.db-shm", "mlruns.db",
    "mlartifacts"}), legacy=("sweep.db", SWEEP_FILE))


def sample(trial: Any, params: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One value per dotted recipe key from its distribution."""
    values = {}
    for key, spec in params.items():
        if "loguniform" in spec:
            low, high = spec["loguniform"]
            values[key] = trial.suggest_float(key, low, high, log=True)
        elif "uniform" in spec:
            low, high = spec["uniform"]
            values[key] = trial.suggest_float(key, low, high, step=spec.get("step"))
        elif "int" in spec:
            low, high = spec["int"]
            values[key] = trial.suggest_int(key, low, high, step=spec.get("step", 1),
                                            log=bool(spec.get("log", False)))
        elif "categorical" in spec:
            # Optuna stores scalars; lists such as an ngram_range travel as JSON text
            choices = [c if isinstance(c, SCALARS) else json.dumps(c)
                       for c in spec["categorical"]]
            picked = trial.suggest_categorical(key, choices)
            values[key] = picked if picked in spec["categorical"] else json.loads(picked)
    return values


#: `sweep.sampler` names to (config, optuna module, seed) -> an Optuna sampler.
SWEEP_SAMPLERS: Registry[Callable[[SweepConfig, Any, int], Any]] = Registry("sampler",
                                                                           "sweep.sampler")
#: `sweep.pruner` names to (config, optuna module) -> an Optuna pruner.
PRUNERS: Registry[Callable[[SweepConfig, Any], Any]] = Registry("pruner", "sweep.pruner")


@SWEEP_SAMPLERS.register("grid")
def _grid(config: SweepConfig, optuna: Any, seed: int) -> Any:
    grid = {k: v["categorical"] for k, v in config.params.items()}
    return optuna.samplers.GridSampler(grid, seed=seed)


SWEEP_SAMPLERS.add("random", lambda config, optuna, seed: optuna.samplers.RandomSampler(seed=seed))
SWEEP_SAMPLERS.add("cmaes", lambda config, optuna, seed: optuna.samplers.CmaEsSampler(seed=seed))
SWEEP_SAMPLERS.add("tpe", lambda config, optuna, seed: optuna.samplers.TPESampler(seed=seed))
PRUNERS.add("median", lambda config, optuna: optuna.pruners.MedianPruner(
    n_startup_trials=config.startup_trials, n_warmup_steps=0))
PRUNERS.add("hyperband", lambda config, optuna: optuna.pruners.HyperbandPruner())
PRUNERS.add("none", lambda config, optuna: optuna.pruners.NopPruner())


def make_sampler(config: SweepConfig, seed: int) -> Any:
    return SWEEP_SAMPLERS.get(config.sampler)(config, _optuna(), seed)


def make_pruner(config: SweepConfig) -> Any:
    return PRUNERS.get(config.pruner)(config, _optuna())


def with_params(recipe: Recipe, values: dict[str, Any]) -> Recipe:
    """The recipe with sampled values set at their dotted keys (validated again)."""
    pairs = [f"{key}={json.dumps(value)}" for key, value in values.items()]
    raw = recipe.to_dict()
    raw.pop("sweep", None)
    return load_recipe(merge(raw, parse_overrides(pairs)))


def open_study(config: SweepConfig, rdb: Any, study_name: str, seed: int) -> Any:
    optuna = _optuna()
    return optuna.create_study(storage=rdb, study_name=study_name, load_if_exists=True,
                               direction="maximize" if config.mode == "max" else "minimize",
                               sampler=make_sampler(config, seed), pruner=make_pruner(config))


def train_trial(trial: Any, recipe: Recipe, trial_dir: Path, metric: str,
                reporter: Reporter,
                stop_checks: tuple[Callable[[dict[str, Any]], None], ...] = ()) -> float:
    """Train one trial's run into `trial_dir`: every evaluation of `metric` is reported to
    the pruner, which may stop it early (optuna's TrialPruned); extra `stop_checks` may stop
    it too (`fitclass auto`'s deadline). Returns the run's `metric`."""
    from fitclass.api import train

    optuna = _optuna()
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    trial_reporter = Reporter(enabled=reporter.enabled)

    def report(row: dict[str, Any]) -> None:
        value = row.get(metric)
        if value is not None:
            trial.report(float(value), int(row.get("step", 0)))

    def prune_if_behind(row: dict[str, Any]) -> None:
        # asked only when training goes on after this evaluation: pruning saves compute,
        # and a trial's last evaluation (a TF-IDF fit's only one) is a finished result
        if row.get(metric) is not None and trial.should_prune():
            raise Pruned(f"trial {trial.number} pruned at step {row.get('step')}")

    trial_reporter.listeners.append(report)
    trial_reporter.stop_checks.extend([prune_if_behind, *stop_checks])
    try:
        trial.set_user_attr("run_dir", str(trial_dir))  # only once it will exist
        run = train(recipe, out=trial_dir, overwrite=True, reporter=trial_reporter)
        value = run.metrics.get(metric)
        if value is None:
            raise FitclassError(f"trial {trial.number}: metric {metric!r} missing")
    except Pruned:
        raise optuna.TrialPruned() from None
    except Exception as error:
        # Optuna only logs a failed trial's exception: keep it for the leaderboard
        trial.set_user_attr("error", f"{type(error).__name__}: {error}")
        raise
    return float(value)


def objective(recipe: Recipe, config: SweepConfig, out: Path, reporter: Reporter) -> Any:
    metric = config.metric or recipe.train.select.metric

    def run_trial(trial: Any) -> float:
        values = sample(trial, config.params)
        reporter.log(f"trial {trial.number}: {values}")
        try:
            trial_recipe = with_params(recipe, values)
        except Exception as error:
            trial.set_user_attr("error", f"{type(error).__name__}: {error}")
            raise
        return train_trial(trial, trial_recipe, out / "trials" / f"trial-{trial.number:04d}",
                           metric, reporter)

    return run_trial


def sweep(recipe_source: Any, out: str | Path, *, trials: int | None = None,
          timeout: float | None = None, storage: str | None = None,
          study_name: str | None = None, overrides: list[str] | None = None,
          top: int = 0, reporter: Reporter | None = None) -> dict[str, Any]:
    """Run (or resume, or join) a study; write leaderboard, best recipe, importances."""
    recipe = load_recipe(recipe_source, overrides)
    if recipe.sweep is None or not recipe.sweep.params:
        raise RecipeError("fitclass sweep needs a `sweep.params` section in the recipe, e.g. "
                          "sweep: {params: {train.lr: {loguniform: [1.0e-5, 1.0e-4]}}}")
    config = recipe.sweep.resolved(recipe.train.select.metric, recipe.train.select.direction)
    out = claim_folder(Path(out).resolve(), SWEEP_DIR)
    storage = storage or f"sqlite:///{(out / 'sweep.db').resolve()}"
    study_name = study_name or recipe.name or "fitclass-sweep"
    reporter = reporter or Reporter()
    rdb = rdb_storage(storage)
    study = open_study(config, rdb, study_name, recipe.train.seed)
    fail_dead_trials(study, rdb, reporter)
    optuna = _optuna()
    done = [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE,
                                                   optuna.trial.TrialState.PRUNED)]
    wanted = trials if trials is not None else config.trials
    remaining = max(0, wanted - len(done))
    reporter.log(f"study {study_name!r} in {hide_password(storage)}: {len(done)} trials done, "
                 f"{remaining} to run")
    started = time.perf_counter()
    if remaining:
        study.optimize(objective(recipe, config, out, reporter), n_trials=remaining,
                       timeout=timeout, catch=(Exception,), gc_after_trial=True)
    summary = write_outputs(study, recipe, config, out, top)
    summary["wall_seconds_this_call"] = round(time.perf_counter() - started, 1)
    atomic_write_text(out / SWEEP_FILE, json.dumps(summary, indent=2, default=str))
    write_sweep_report(study, summary, out, reporter)
    return summary


def write_sweep_report(study: Any, summary: dict[str, Any], out: Path,
                       reporter: Reporter) -> None:
    """OUT/report.html: the best trial's report with the leaderboard, parameter importance
    and optimisation history added."""
    best = summary.get("best_run")
    if not best or not has_metrics(RunDir(best)):
        return
    from fitclass.report import plots
    from fitclass.report.build import gather, render

    board = pd.read_csv(out / LEADERBOARD)
    values = [(t.number, t.value) for t in study.trials if t.value is not None]
    history = pd.DataFrame(values, columns=["trial", "value"])
    html = board.head(50).to_html(index=False, classes="scroll", border=0, na_rep="")
    parts = [f"<p>{summary['trials']} trials: {summary['complete']} complete, "
             f"{summary['pruned']} pruned, {summary['failed']} failed; best "
             f"{summary['metric']} {summary.get('best_value')}.</p>",
             f'<div class="scroll">{html}</div>']
    if summary.get("importance"):
        parts.append(plots.bar_chart(summary["importance"], "parameter importance"))
    if len(history):
        parts.append(plots.optimisation_history(history, summary["metric"], summary["mode"]))
    context = gather(best) | {"title": f"sweep {summary['study']} (best trial)",
                              "sweep": {"html": "".join(parts)}}
    try:
        atomic_write_text(out / REPORT, render(context))
    except Exception as error:
        reporter.log(f"warning: sweep report not written ({error})")


def leaderboard(trials: Sequence[Any]) -> pd.DataFrame:
    """One row per trial of a study (`study.get_trials()`, read once by the caller)."""
    # a retry's retry_history ends with the trial it repeats
    retried_as = {t.system_attrs["retry_history"][-1]: t.number for t in trials
                  if t.system_attrs.get("retry_history")}
    rows = []
    for trial in trials:
        seconds = ((trial.datetime_complete - trial.datetime_start).total_seconds()
                   if trial.datetime_complete and trial.datetime_start else None)
        error = trial.user_attrs.get("error") or trial.system_attrs.get("fail_reason")
        if error is None and trial.state.name == "FAIL":  # no exception: the worker died
            error = "stopped mid-trial (its worker was killed or lost its heartbeat)" + (
                f"; retried as trial {retried_as[trial.number]}"
                if trial.number in retried_as else "")
        elif trial.state.name == "WAITING" and "failed_trial" in trial.system_attrs:
            error = (f"queued: the retry of trial {trial.system_attrs['retry_history'][-1]}; "
                     f"runs when the sweep goes on with more --trials")
        rows.append({"trial": trial.number, "status": trial.state.name.lower(),
                     "metric": trial.value, "wall_seconds": seconds,
                     "last_step": trial.last_step, "run_dir": trial.user_attrs.get("run_dir"),
                     "error": error, "retry_of": trial.system_attrs.get("failed_trial"),
                     **{f"param:{k}": v for k, v in trial.params.items()}})
    board = pd.DataFrame(rows)
    if len(board):
        board["retry_of"] = board["retry_of"].astype("Int64")  # trial numbers, blank if none
    return board


def write_outputs(study: Any, recipe: Recipe, config: SweepConfig, out: Path,
                  top: int) -> dict[str, Any]:
    optuna = _optuna()
    board = leaderboard(study.get_trials(deepcopy=False))
    complete = board[board["status"] == "complete"] if len(board) else board
    if len(complete):
        complete = complete.sort_values("metric", ascending=config.mode == "min")
        marks = noise_marks([r if isinstance(r, str) else None for r in complete["run_dir"]],
                            config.metric or recipe.train.select.metric,
                            lower_is_better=config.mode == "min")
        complete = complete.assign(**{key: [m[key] for m in marks] for key in NOISE_COLUMNS})
    atomic_write_text(out / LEADERBOARD, pd.concat(
        [complete, board.drop(complete.index)]).to_csv(index=False))
    summary: dict[str, Any] = {"study": study.study_name, "metric": config.metric,
                               "mode": config.mode, "trials": len(board),
                               "complete": len(complete),
                               "pruned": int((board["status"] == "pruned").sum())
                               if len(board) else 0,
                               "failed": int((board["status"] == "fail").sum())
                               if len(board) else 0}
    if len(complete):
        best = study.best_trial
        best_recipe = with_params(recipe, decoded(best.params, config))
        atomic_write_text(out / BEST_RECIPE, best_recipe.to_yaml())
        summary |= {"best_trial": best.number, "best_value": best.value,
                    "best_params": best.params, "best_run": best.user_attrs.get("run_dir")}
        summary["top_runs"] = [r for r in complete["run_dir"].head(max(top, 1)).tolist()
                               if r and is_run(Path(r))]
    if len(complete) >= 2:
        try:
            importances = optuna.importance.get_param_importances(study)
            summary["importance"] = {k: float(v) for k, v in importances.items()}
        except (RuntimeError, ValueError, TypeError) as error:  # e.g. a constant parameter
            summary["importance_error"] = str(error)
    atomic_write_text(out / "importance.csv", pd.DataFrame(
        list(summary.get("importance", {}).items()),
        columns=["param", "importance"]).to_csv(index=False))
    return summary


def decoded(params: dict[str, Any], config: SweepConfig) -> dict[str, Any]:
    """Trial parameters with JSON-encoded categorical choices turned back into values."""
    out = {}
    for key, value in params.items():
        choices = config.params.get(key, {}).get("categorical")
        out[key] = (json.loads(value) if choices is not None and isinstance(value, str)
                    and value not in choices else value)
    return out


def sweep_members(path: Path) -> list[Path]:
    """A sweep folder's top runs (for `fitclass ensemble SWEEP_DIR`)."""
    summary = json.loads((path / SWEEP_FILE).read_text(encoding="utf-8"))
    runs = [Path(p) for p in summary.get("top_runs", [])]
    if not runs:
        raise FitclassError(f"{path}: the sweep has no finished trials to ensemble; rerun "
                            f"it with --top K")
    return runs


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
