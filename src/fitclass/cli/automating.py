"""`fitclass auto`: doctor, a time-boxed search over the remedies it names, one run."""

from __future__ import annotations

from pathlib import Path

import typer

from fitclass.cli.base import app, err, friendly_errors, print_summary, quiet_libraries
from fitclass.cli.data_options import Data, LabelColumns, TextColumns, ValidFile, columns


@app.command()
@friendly_errors
def auto(
    data: Data,
    label: LabelColumns = None,
    text: TextColumns = None,
    time: str = typer.Option("30m", "--time", help="Budget for the whole command: 90s, "
                                                   "30m, 1h, 1h30m."),
    preset: str = typer.Option("good", help="fast (TF-IDF only, 3 members), good (and the "
                                            "embedded MiniLM if affordable, 5), best (8, "
                                            "each refit on every labelled row)."),
    out: Path | None = typer.Option(None, help="Output run folder (default runs/auto-NAME); "
                                               "rerun the same command to continue it, or "
                                               "run it again meanwhile to add a worker."),
    storage: str | None = typer.Option(None, help="Optuna storage URL (default SQLite in "
                                                  "OUT); postgresql://... for many workers."),
    valid: ValidFile = None,
    backbone: list[str] | None = typer.Option(None, "--backbone", help="A backbone to "
                                                                       "search beside "
                                                                       "TF-IDF (hub id or "
                                                                       "folder); repeat."),
    trials: int | None = typer.Option(None, help="Stop once the study holds N finished "
                                                 "trials (earlier calls' included)."),
) -> None:
    """Diagnose DATA, search the remedies its findings call for within --time, ensemble the
    best trials into one run, and explain it all in OUT/auto.md."""
    import fitclass
    from fitclass.sweep_storage import import_optuna

    quiet_libraries()
    # auto logs each trial's start and result itself; optuna's own lines would repeat them
    import_optuna().logging.set_verbosity(import_optuna().logging.WARNING)
    run = fitclass.auto(data, label=columns(label), text=columns(text), time=time,
                        preset=preset, out=out, storage=storage, valid=valid,
                        backbones=backbone, trials=trials)
    print_summary(run)
    err.print(f"what it found, tried and chose: {run.path / 'auto.md'}", markup=False)
    print(run.path)
