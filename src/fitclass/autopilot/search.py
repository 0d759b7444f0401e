"""`fitclass auto`'s search: an Optuna study over the chosen space, each trial a normal run
under OUT/trials/, trained and pruned through `fitclass.sweep` (per-evaluation scores feed a
Hyperband pruner, so weak neural trials stop after an epoch), until the budget's remaining
time is below the predicted cost of the next trial (a plain one; a costly remedy, such as
co-teaching's second network, is sampled only when its declared cost still fits).

The study lives in an Optuna storage (SQLite in OUT by default; any RDB URL for several
workers), so a killed search rerun with the same command keeps its finished trials, and a
trial whose worker died is marked failed and queued once more (`sweep_storage`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fitclass.autopilot.budget import (
    CHEAPEST,
    Deadline,
    estimate_seconds,
    format_seconds,
    measured_seconds,
    refit_seconds,
    reserve_seconds,
)
from fitclass.autopilot.folder import trial_dir
from fitclass.autopilot.space import SearchSpace, trial_keys
from fitclass.errors import Pruned
from fitclass.recipe import SweepConfig, build_recipe
from fitclass.sweep import open_study, sample, train_trial
from fitclass.sweep_storage import fail_dead_trials, rdb_storage
from fitclass.sweep_storage import import_optuna as _optuna
from fitclass.training.progress import Reporter

#: A snapshot of a study's trials (optuna `FrozenTrial`s, in number order).
Trials = Sequence[Any]
#: Consecutive failed trials after which the search stops (a broken setup, not bad luck).
MAX_FAILURES_IN_A_ROW = 3
#: A backbone whose best score has not risen by `PLATEAU_GAIN` over its last `PLATEAU_TRIALS`
#: complete trials is set aside while another backbone is still climbing: on SST-2 and
#: UnSmile 92 and 118 TF-IDF trials were spent on a leaderboard flat to the third decimal
#: after about 20 (docs/benchmarks.md, fitclass auto).
PLATEAU_TRIALS = 10
PLATEAU_GAIN = 1e-3


def study_config(space: SearchSpace) -> SweepConfig:
    """The sweep settings auto's study uses: TPE and a Hyperband pruner, maximising."""
    return SweepConfig(metric=space.metric, mode="max", sampler="tpe", pruner="hyperband",
                       startup_trials=3)


def open_auto_study(space: SearchSpace, storage: str, name: str, seed: int,
                    reporter: Reporter, first: bool = True) -> Any:
    """Open (or resume, or join) the study; mark dead workers' trials failed; with `first`
    (the finisher; a contributing worker joins a study the finisher opened) queue the
    cheapest member with its defaults first, so the first trial measures the cost."""
    rdb = rdb_storage(storage)
    study = open_study(study_config(space), rdb, name, seed)
    fail_dead_trials(study, rdb, reporter)
    if first and not study.trials:
        study.enqueue_trial(space.defaults(CHEAPEST))
    return study


def predicted_seconds(trials: Trials, space: SearchSpace, backbone: str, rows: int,
                      device: str) -> float:
    """A plain `backbone` trial's cost (no costly remedy): measured when one of `trials`
    finished, else estimated."""
    measured = measured_seconds(trials, backbone, only_backbone=len(space.backbones) == 1,
                                cost_factor=space.cost_factor)
    return measured if measured is not None else estimate_seconds(backbone, rows,
                                                                  space.epochs, device)


def fitting_params(space: SearchSpace, backbone: str, plain_s: float, room_s: float
                   ) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The distributions a `backbone` trial samples when `room_s` is left for it and a plain
    trial costs `plain_s`: a costly choice that would not fit is left out (the trial keeps
    its default), so the finish keeps its reserve. Also returns the keys left out."""
    params = space.params(backbone)
    left_out = [c.key for c in space.choices
                if c.key in params and backbone in c.backbones and plain_s * c.cost > room_s]
    return {k: v for k, v in params.items() if k not in left_out}, left_out


def objective(space: SearchSpace, out: Path, deadline: Deadline, reporter: Reporter,
              plain_cost: Callable[[str], float], room: Callable[[], float]
              ) -> Callable[[Any], float]:
    """One trial: its backbone, then that backbone's values (the costly ones only when
    they fit the `room` left before the finish's reserve), then a normal run."""

    def past_deadline(row: dict[str, Any]) -> None:
        if deadline.remaining() <= 0:
            raise Pruned(f"the budget is spent (step {row.get('step')})")

    def run_trial(trial: Any) -> float:
        backbone = (space.backbones[0] if len(space.backbones) == 1 else
                    trial.suggest_categorical("model.backbone", space.backbones))
        params, left_out = fitting_params(space, backbone, plain_cost(backbone), room())
        values = sample(trial, params)
        if left_out:
            trial.set_user_attr("left_out", left_out)
            reporter.log(f"trial {trial.number}: {', '.join(left_out)} left at the default "
                         f"(a costlier trial would not fit the time left)")
        reporter.log(f"trial {trial.number}: {backbone} {values}")
        try:
            recipe = build_recipe(trial_keys(space, backbone, values),
                                  f"auto trial {trial.number}")
        except Exception as error:
            trial.set_user_attr("error", f"{type(error).__name__}: {error}")
            raise
        return train_trial(trial, recipe, trial_dir(out, trial.number), space.metric,
                           reporter, stop_checks=(past_deadline,))

    return run_trial


def ended(trials: Trials) -> set[int]:
    """The numbers of the trials that are over (complete, pruned or failed)."""
    return {t.number for t in trials if t.state.name in ("COMPLETE", "PRUNED", "FAIL")}


def plateaued(trials: Trials, backbone: str) -> bool:
    """Whether `backbone`'s last `PLATEAU_TRIALS` complete trials left its best score where
    the trials before them had it (within `PLATEAU_GAIN`)."""
    values = [t.value for t in trials  # in trial-number order
              if t.state.name == "COMPLETE" and t.value is not None
              and t.params.get("model.backbone") == backbone]
    if len(values) <= PLATEAU_TRIALS:
        return False
    return max(values) < max(values[:-PLATEAU_TRIALS]) + PLATEAU_GAIN


def untried(trials: Trials, backbones: list[str]) -> list[str]:
    """The `backbones` none of `trials` has used or is queued to use."""
    seen = {t.params.get("model.backbone",
                         t.system_attrs.get("fixed_params", {}).get("model.backbone"))
            for t in trials}
    return [b for b in backbones if b not in seen]


def queue_next(study: Any, trials: Trials, space: SearchSpace, affordable: list[str],
               costs: dict[str, float]) -> None:
    """Queue what the next trial must be, if anything: first each affordable backbone's
    default recipe twin (`SearchSpace.defaults`: so auto always holds the default recipe's
    result for every backbone it searches), then a pin away from plateaued backbones."""
    if len(space.backbones) < 2:
        return
    first = untried(trials, affordable)
    if first:
        study.enqueue_trial(space.defaults(first[0]))
        return
    pinned = next_backbone(trials, space, affordable, costs)
    if pinned is not None:  # the sampler may pick only these now
        study.enqueue_trial({"model.backbone": pinned})


def next_backbone(trials: Trials, space: SearchSpace, affordable: list[str],
                  costs: dict[str, float]) -> str | None:
    """The backbone to pin the next trial to, or None to let the sampler choose: the cheapest
    of the affordable backbones that have not plateaued (all of them when every one has),
    pinned only when that leaves out some backbone of the space."""
    climbing = [b for b in affordable if not plateaued(trials, b)] or affordable
    if len(climbing) == len(space.backbones):
        return None
    return min(climbing, key=costs.__getitem__)


def finished(trials: Trials) -> int:
    return sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials)


def refit_reserve(trials: Trials, refit: bool) -> float | None:
    """One member's refit, priced by the slowest finished trial (any backbone: the winner's
    is not known yet); None when the preset does not refit or nothing has finished."""
    slowest = measured_seconds(trials, "", only_backbone=True) if refit else None
    return None if slowest is None else refit_seconds(slowest)


class StudyView:
    """The study's trials as last read, and what they predict: the room before the finish's
    share and a plain trial's cost. One read per search step (`refresh`), because a remote
    storage answers each read."""

    def __init__(self, study: Any, space: SearchSpace, deadline: Deadline, rows: int,
                 device: str, refit: bool) -> None:
        self.study, self.space, self.deadline = study, space, deadline
        self.rows, self.device, self.refit = rows, device, refit
        self.trials: Trials = study.get_trials(deepcopy=False)

    def refresh(self) -> None:
        self.trials = self.study.get_trials(deepcopy=False)

    def room(self) -> float:
        """Seconds left before the finish's reserve (as many members as the time allows)."""
        return self.deadline.remaining() - reserve_seconds(
            finished(self.trials), refit_reserve(self.trials, self.refit),
            self.deadline.remaining())

    def plain_cost(self, backbone: str) -> float:
        return predicted_seconds(self.trials, self.space, backbone, self.rows, self.device)


def search(study: Any, space: SearchSpace, out: Path, deadline: Deadline, rows: int,
           device: str, reporter: Reporter, *, trials: int | None = None,
           on_trial: Callable[[], None] | None = None, refit: bool = False) -> str:
    """Run trials one at a time while the next one fits the time left (keeping back the
    finish's share, a refit's under `refit`) and, with `trials`, until the study holds
    that many finished trials. Returns why it stopped."""
    view = StudyView(study, space, deadline, rows, device, refit)
    run_trial = objective(space, out, deadline, reporter, view.plain_cost, view.room)
    failures = 0
    while True:
        if trials is not None and finished(view.trials) >= trials:
            return f"the study holds {trials} finished trials (--trials)"
        costs = {b: view.plain_cost(b) for b in space.backbones}
        left = view.room()
        affordable = [b for b in space.backbones if costs[b] <= left]
        if not affordable:
            return (f"{format_seconds(max(0.0, left))} left before the finish, less than "
                    f"the next trial's predicted {format_seconds(min(costs.values()))}")
        queue_next(study, view.trials, space, affordable, costs)
        before = ended(view.trials)
        if on_trial is not None:  # a kill mid-trial then loses at most that trial's time
            on_trial()
        study.optimize(run_trial, n_trials=1, catch=(Exception,), gc_after_trial=True)
        if on_trial is not None:
            on_trial()
        view.refresh()
        now_ended = ended(view.trials)
        new = [t for t in view.trials if t.number not in before and t.number in now_ended]
        for done in new:
            value = "" if done.value is None else f" {space.metric} {done.value:.4f}"
            reporter.log(f"trial {done.number}: {done.state.name.lower()}{value}; "
                         f"{format_seconds(max(0.0, deadline.remaining()))} left")
        failed = [t for t in new if t.state.name == "FAIL"]
        failures = failures + 1 if failed else 0
        if failures >= MAX_FAILURES_IN_A_ROW:
            error = failed[-1].user_attrs.get("error", "see the log")
            return f"{MAX_FAILURES_IN_A_ROW} trials failed in a row (last: {error})"


def optuna_available() -> None:
    _optuna()  # a clear FitclassError naming the extra when optuna is missing
