"""Commands that make runs: train, ensemble, audit, sweep, pretrain, demo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from fitclass.cli.base import (
    DEVICE_HELP,
    app,
    err,
    friendly_errors,
    print_summary,
    quiet_libraries,
)
from fitclass.errors import FitclassError


@app.command()
@friendly_errors
def train(
    recipe: Path | None = typer.Argument(None, help="YAML recipe (omit with --resume)."),
    set_: list[str] | None = typer.Option(None, "--set", help="Override a key: train.lr=3e-5"),
    out: Path | None = typer.Option(None, help="Run directory (default runs/<name>-<time>)."),
    overwrite: bool = typer.Option(False, help="Replace a run folder fitclass wrote (it "
                                               "never deletes a folder it did not write)."),
    resume: Path | None = typer.Option(None, help="Continue an interrupted run folder with "
                                                  "its stored recipe (--set may change only "
                                                  "early stopping, eval batch size, name, "
                                                  "tracking)."),
    seeds: int = typer.Option(1, min=1, help="Train N seeds and ensemble them (OUT/ensemble; "
                                             "with --folds, N runs per fold); refused for "
                                             "backbones whose training ignores the seed "
                                             "(tfidf)."),
    folds: int | None = typer.Option(None, help="K-fold cross-validation: fold runs "
                                                "OUT/fold-<k>, OUT their mean, with "
                                                "out-of-fold predictions (oof.csv) and every "
                                                "metric's mean over folds with a 95% "
                                                "interval (needs --out)."),
    refit: bool = typer.Option(False, "--refit", help="Then retrain one model on every "
                                                      "labelled row (train + valid) with the "
                                                      "schedule and decision chosen on CV or "
                                                      "validation, into OUT/refit (printed "
                                                      "last; needs --out)."),
) -> None:
    """Train a classifier from a recipe; prints the run directory as the last line."""
    import fitclass

    if recipe is None and resume is None:
        raise FitclassError("give a recipe file, or --resume RUN_DIR to continue a run")
    if seeds > 1 and recipe is None and folds is None:
        raise FitclassError("--seeds needs a recipe and --out DIR (members go to "
                            "DIR/seed-<s>, the ensemble to DIR/ensemble)")
    quiet_libraries()
    run = fitclass.train(recipe or {}, overrides=set_, out=out, overwrite=overwrite,
                         resume=resume, folds=folds, refit=refit, seeds=seeds)
    from fitclass.api import is_main_process

    if is_main_process():  # under DDP the other processes stay quiet
        print_summary(run)
        print(run.path)


@app.command("ensemble")
@friendly_errors
def ensemble_command(
    run_dirs: list[Path] = typer.Argument(..., help="Finished member runs (2 or more), or "
                                                    "sweep folders (their --top runs)."),
    out: Path = typer.Option(..., help="Ensemble run directory to write."),
    method: str = typer.Option("auto", help="auto, mean, weighted, greedy or stacking."),
    valid: Path | None = typer.Option(None, help="Score members on this labelled file "
                                                 "instead of their shared validation rows."),
    metric: str | None = typer.Option(None, help="Metric to optimise (default: the first "
                                                 "member's train.select.metric)."),
    overwrite: bool = typer.Option(False, help="Replace an existing ensemble directory."),
) -> None:
    """Combine finished runs into an ensemble run; prints its directory as the last line."""
    import fitclass
    from fitclass.sweep import SWEEP_FILE, sweep_members
    from fitclass.uncertainty.paired import mark_text

    quiet_libraries()
    members = [m for path in run_dirs for m in
               (sweep_members(path) if (path / SWEEP_FILE).is_file() else [path])]
    run = fitclass.ensemble(members, out, method=method, valid=valid, metric=metric,
                            overwrite=overwrite)
    summary = run.metrics["ensemble"]
    table = Table(title=f"held-out (cross-fitted) validation scores; chose {summary['method']}")
    for column in ("member / method", "weight", "accuracy", "macro_f1", "log_loss",
                   f"vs best on {summary['metric']}"):
        table.add_column(column)
    for row in summary["members"]:
        table.add_row(Path(row["path"]).name, f"{row['weight']:.3f}",
                      *(f"{row.get(k, float('nan')):.4f}" for k in ("accuracy", "macro_f1",
                                                                    "log_loss")),
                      mark_text(row))
    for name, row in summary["methods"].items():
        table.add_row(f"method: {name}", "", *(f"{row.get(k, float('nan')):.4f}"
                                          for k in ("accuracy", "macro_f1", "log_loss")),
                      mark_text(row))
    err.print(table)
    err.print("vs best: a paired test on the shared rows against the table's best entry; "
              "'within noise' differences are not detectable at 5%", soft_wrap=True)
    print_summary(run)
    print(run.path)


@app.command()
@friendly_errors
def audit(
    recipe: Path = typer.Argument(..., help="The recipe whose training rows to audit."),
    out: Path = typer.Option(..., help="Suspects CSV to write (a _summary.json goes beside)."),
    folds: int = typer.Option(5, help="Cross-fitting folds."),
    proxy: str | None = typer.Option(None, help="Fast stand-in for the recipe's model: "
                                                "tfidf or linear_probe."),
    set_: list[str] | None = typer.Option(None, "--set", help="Override a recipe key."),
    work_dir: Path | None = typer.Option(None, help="Fold runs (default <out>_folds/)."),
    device: str = typer.Option("auto", help=DEVICE_HELP),
    against: list[Path] | None = typer.Option(
        None, "--against", help="A file (test set, validation file) whose rows to look for "
                                "in train as exact or near copies; repeat for more."),
) -> None:
    """List training rows whose label is likely wrong, with a suggested label."""
    from fitclass.noise.audit import audit as run_audit

    quiet_libraries()
    result = run_audit(recipe, out, folds=folds, proxy=proxy, overrides=set_,
                       work_dir=work_dir, device=device, against=against)
    table = Table(title=f"{len(result.suspects)} suspects of {result.summary['rows']} rows "
                        f"(most suspect first)")
    for column in ("id", "given", "suggested", "score", "methods", "text"):
        table.add_column(column)
    for _, row in result.suspects.head(15).iterrows():
        table.add_row(str(row["id"]), str(row["given_label"]), str(row["suggested_label"]),
                      f"{row['score']:.3f}", str(row["methods"]), str(row["text"])[:60])
    err.print(table)
    err.print(checks_table(result.summary.get("checks") or []))
    rates = result.summary.get("estimated_noise_rate")
    if rates:
        err.print("estimated noise rate per given class: " + ", ".join(
            f"{k}={v:.1%}" for k, v in rates.items() if v is not None))
    for name, found in result.summary.get("near_copies", {}).get("against", {}).items():
        err.print(f"{name}: {found['with_copy_in_train']} of {found['rows']} rows "
                  f"({found['share']:.1%}) have an exact or near copy in train "
                  f"({found['exact']} exact); listed in {out.stem}_near_copies.csv")
    print(out)


def checks_table(rows: list[dict[str, Any]]) -> Table:
    """The checks list (every check, its status, count, worst example and fix) as a table."""
    table = Table(title="data and label checks (worst first)")
    for column in ("check", "status", "count", "worst example", "fix"):
        table.add_column(column, overflow="fold")
    style = {"fail": "bold red", "warn": "yellow", "ok": "green"}
    for row in rows:
        examples = row.get("examples") or [""]
        table.add_row(Text(str(row.get("check"))),
                      Text(str(row.get("status")), style=style.get(str(row.get("status")), "")),
                      Text(str(row.get("count"))), Text(str(examples[0])[:80]),
                      Text(str(row.get("fix"))))
    return table


@app.command()
@friendly_errors
def sweep(
    recipe: Path = typer.Argument(..., help="Recipe with a sweep.params section."),
    out: Path = typer.Option(Path("runs/sweep"), help="Sweep folder (trials, leaderboard)."),
    trials: int | None = typer.Option(None, help="Total trials wanted (default sweep.trials)."),
    timeout: float | None = typer.Option(None, help="Stop starting trials after S seconds."),
    storage: str | None = typer.Option(None, help="Optuna storage URL (default SQLite in "
                                                  "OUT); postgresql://... for many workers."),
    study: str | None = typer.Option(None, help="Study name (default the recipe name)."),
    top: int = typer.Option(0, help="Export the K best runs as ensemble members."),
    set_: list[str] | None = typer.Option(None, "--set", help="Override a recipe key."),
) -> None:
    """Search hyperparameters with pruning; resumable; workers join via --storage."""
    from fitclass.sweep import sweep as run_sweep

    quiet_libraries()
    summary = run_sweep(recipe, out, trials=trials, timeout=timeout, storage=storage,
                        study_name=study, overrides=set_, top=top)
    err.print(f"trials: {summary['trials']} ({summary['complete']} complete, "
              f"{summary['pruned']} pruned, {summary['failed']} failed); best "
              f"{summary.get('best_value')} with {summary.get('best_params')}")
    print(out)


@app.command()
@friendly_errors
def pretrain(
    recipe: Path = typer.Argument(..., help="Recipe whose backbone and texts to use."),
    out: Path = typer.Option(..., help="Folder for the adapted backbone."),
    epochs: int = typer.Option(1, help="Masked-LM epochs over the task's texts."),
    lr: float = typer.Option(5e-5, help="Learning rate."),
    unlabelled: Path | None = typer.Option(None, help="Extra unlabelled texts (same columns)."),
    overwrite: bool = typer.Option(False, help="Replace an existing --out folder."),
) -> None:
    """Task-adaptive pretraining: continued masked-LM training on the task's texts."""
    from fitclass.pretrain import pretrain as run_pretrain

    quiet_libraries()
    print(run_pretrain(recipe, out, epochs=epochs, lr=lr, unlabelled=unlabelled,
                       overwrite=overwrite))


@app.command()
@friendly_errors
def demo(
    out: Path = typer.Option(Path("runs/demo"), help="Folder for the demo data and run."),
    rows: int = typer.Option(1000, help="Rows to generate (text demo)."),
    epochs: int | None = typer.Option(None, help="Training epochs (default 3; 20 with "
                                                 "--images)."),
    backbone: str = typer.Option("minilm", help="Backbone to fine-tune (text demo)."),
    images: bool = typer.Option(False, "--images", help="The image demo instead: digits as "
                                                        "PNG folders, a small ResNet from "
                                                        "config."),
    data_only: Path | None = typer.Option(None, "--data-only", metavar="DIR",
                                          help="Only write the demo data into DIR (text; the "
                                               "digits with --images) and print the paths; "
                                               "trains nothing. examples/*.yaml read "
                                               "runs/demo-data."),
) -> None:
    """Generate a small imbalanced, noisy dataset and fine-tune the default backbone on it."""
    import fitclass

    if data_only is not None:
        write_demo_files(data_only, images, rows)
        return
    quiet_libraries()
    # the demo data writers rewrite only their own files (same name, same content); a user's
    # file of the same name is refused, and nothing else in the folder is touched
    if images:
        from fitclass.data.demo_images import digits_recipe, write_digits_demo

        root = write_digits_demo(out / "data")
        err.print(f"demo images: {root} (digits 5-9 thinned to 40%, 8% of training labels "
                  f"moved on purpose; see {out / 'data' / 'digits_noise.csv'})")
        run = fitclass.train(digits_recipe(root, epochs or 20), out=out / "run",
                             overwrite=True)
        print_summary(run)
        print(run.path)
        return
    from fitclass.data.demo import write_demo_data

    train_file = write_demo_data(out / "data", rows=rows)["train"]
    recipe = {
        "name": "demo",
        "data": {"train": str(train_file.resolve()), "text": "text", "label": "label",
                 "id": "id", "split": {"valid_size": 0.2}},
        "model": {"backbone": backbone, "max_length": 48},
        "train": {"epochs": epochs or 3, "batch_size": 16, "lr": 1e-4,
                  "select": {"metric": "macro_f1"}},
    }
    err.print(f"demo data: {train_file} (8% of labels flipped on purpose; see demo_noise.csv)")
    run = fitclass.train(recipe, out=out / "run", overwrite=True)
    print_summary(run)
    print(run.path)


def write_demo_files(folder: Path, images: bool, rows: int) -> None:
    """`demo --data-only`: the data files on stdout, one per line; what they are on stderr."""
    if images:
        from fitclass.data.demo_images import write_digits_demo

        root = write_digits_demo(folder)
        err.print(f"digits demo: {root}/train and {root}/valid, one folder per digit (5-9 "
                  f"thinned to 40%, 8% of training images filed under a wrong digit on "
                  f"purpose: digits_noise.csv)", soft_wrap=True)
        print(root)
        print(folder / "digits_noise.csv")
        return
    from fitclass.data.demo import write_demo_data

    written = write_demo_data(folder, rows=rows)
    err.print(f"demo data in {folder}: train.csv ({rows} support messages, 4 classes, "
              f"8% of labels flipped on purpose: demo_noise.csv), valid.csv and test.csv "
              f"(clean labels), multilabel.csv (one 0/1 column per class)", soft_wrap=True)
    for path in written.values():
        print(path)
