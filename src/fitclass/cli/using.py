"""Commands that use finished runs: evaluate, compare, predict, export, report, runs."""

from __future__ import annotations

import json
import sys
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from fitclass.cli.base import (
    DEVICE_HELP,
    LAYOUT_HELP,
    PRECISION_HELP,
    TEXT_COLUMN_HELP,
    app,
    err,
    friendly_errors,
    interval_line,
    printed_warnings,
    quiet_libraries,
)


@app.command()
@friendly_errors
def evaluate(
    run_dir: Path = typer.Argument(..., help="A finished run directory."),
    file: Path = typer.Argument(..., help="Labelled table with the recipe's columns."),
    out: Path | None = typer.Option(None, help="Write the metrics as JSON here."),
    text_column: str | None = typer.Option(None, help=TEXT_COLUMN_HELP),
    set_: list[str] | None = typer.Option(None, "--set", help=LAYOUT_HELP),
    device: str = typer.Option("auto", help=DEVICE_HELP),
    precision: str | None = typer.Option(None, help=PRECISION_HELP),
) -> None:
    """Score a labelled file with a trained run; prints the metrics as JSON (with `compute`:
    the device and precision it ran in)."""
    import fitclass
    from fitclass.data.writers import atomic_write_bytes, check_output

    if out is not None:
        check_output(out)
    quiet_libraries()
    with printed_warnings():
        metrics = fitclass.load_run(run_dir, device=device, precision=precision).evaluate(
            file, text_column=text_column, overrides=set_)
    text = json.dumps(metrics, indent=2, ensure_ascii=False)
    if out is not None:
        atomic_write_bytes(out, text.encode("utf-8"))
    if metrics["skipped_rows"]:
        err.print(f"{len(metrics['skipped_rows'])} rows without a prediction were not scored "
                  f"(skipped_rows)")
    err.print(f"{metrics['n']} rows: " + interval_line(metrics, list(metrics["intervals"])),
              soft_wrap=True)
    print(text)


@app.command("compare")
@friendly_errors
def compare_command(
    run_a: Path = typer.Argument(..., help="A finished run (A)."),
    run_b: Path = typer.Argument(..., help="Another run of the same task and classes (B)."),
    on: Path | None = typer.Option(None, help="Labelled file both runs predict and are "
                                              "compared on (default: their shared "
                                              "validation rows)."),
    metric: list[str] | None = typer.Option(None, "--metric", help="A metric to compare "
                                                                   "(repeatable; default: "
                                                                   "A's selection metric "
                                                                   "and the headline)."),
    text_column: str | None = typer.Option(None, help=TEXT_COLUMN_HELP),
    set_: list[str] | None = typer.Option(None, "--set", help=LAYOUT_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Is A better than B? Paired differences on the same rows, with 95% intervals, tests
    and a verdict per metric (and across members when both are multi-seed ensembles)."""
    import fitclass

    quiet_libraries()
    with printed_warnings():
        comparison = fitclass.compare(run_a, run_b, on=on, metrics=metric,
                                      text_column=text_column, overrides=set_)
    if as_json:
        print(json.dumps(comparison.to_dict(), indent=2, ensure_ascii=False))
        return
    console = Console(highlight=False, soft_wrap=True)
    console.print(difference_table(f"A = {comparison.name_a}, B = {comparison.name_b}: "
                                   f"{comparison.rows} rows of {comparison.source}",
                                   comparison.differences))
    for line in comparison.verdicts():
        console.print(line, markup=False)
    if comparison.across_members:
        console.print(difference_table("across members (their scores on the same rows)",
                                       comparison.across_members))
        for difference in comparison.across_members.values():
            console.print(f"across members: "
                          f"{difference.verdict(comparison.name_a, comparison.name_b)}",
                          markup=False)


def difference_table(title: str, differences: dict[str, Any]) -> Table:
    """One row per metric: A, B, A - B with its 95% interval, p, the test, and whether the
    difference is detected or within noise."""
    from fitclass.uncertainty.paired import p_text

    table = Table(title=title)
    for column in ("metric", "A", "B", "A - B [95%]", "p", "test", ""):
        table.add_column(column, justify="left" if column in ("metric", "test") else "right")
    for name, d in differences.items():
        gap = d.interval
        table.add_row(name, f"{d.a:.4f}", f"{d.b:.4f}",
                      f"{gap.estimate:+.4f} [{gap.low:+.4f}, {gap.high:+.4f}]",
                      p_text(d.p_value).removeprefix("p="), d.test,
                      "detected" if d.detected else "within noise")
    return table


@app.command()
@friendly_errors
def predict(
    run_dir: Path = typer.Argument(..., help="A finished run directory."),
    file: Path = typer.Argument(..., help="Table with the recipe's text column(s); for image "
                                          "runs, an image folder or a table of paths; - reads "
                                          "one text per line from standard input."),
    out: Path | None = typer.Option(None, help="File to write (.csv, .tsv, .jsonl, .parquet): "
                                               "id, label, prob:<class>...; omitted or -: "
                                               "standard output."),
    format_: str | None = typer.Option(None, "--format", help="csv, tsv, jsonl or parquet "
                                                              "(default: --out's extension, "
                                                              "else csv)."),
    text_column: str | None = typer.Option(None, help=TEXT_COLUMN_HELP),
    set_: list[str] | None = typer.Option(None, "--set", help=LAYOUT_HELP),
    batch_size: int = typer.Option(64, help="Rows per inference batch."),
    engine: str = typer.Option("torch", help="torch, or onnx (after fitclass export; "
                                              "onnx-fp32 / onnx-int8 choose the graphs)."),
    device: str = typer.Option("auto", help=DEVICE_HELP),
    precision: str | None = typer.Option(None, help=PRECISION_HELP),
) -> None:
    """Predict labels and class probabilities for every row of a file (or of stdin)."""
    import fitclass
    from fitclass.data import scoring, writers

    target = None if out is None or str(out) == "-" else out
    if target is not None:
        writers.check_output(target)
    kind = writers.output_format(target, format_)
    quiet_libraries()
    run = fitclass.load_run(run_dir, device=device, precision=precision)
    inputs: Path | list[str] = file
    if str(file) == "-":
        scoring.check_line_inputs(run.scoring_data(text_column, set_), "standard input")
        inputs = scoring.lines_of(sys.stdin.buffer.read())
    # the table may go to stdout: anything a library prints goes to stderr instead
    with printed_warnings(), redirect_stdout(sys.stderr):
        frame = run.predict(inputs, batch_size=batch_size, engine=engine,
                            text_column=text_column, overrides=set_)
    if target is None:
        sys.stdout.buffer.write(writers.table_bytes(frame, kind))
        sys.stdout.flush()
    else:
        writers.write_table(frame, target)
    err.print(f"{len(frame)} predictions written to {target or 'standard output'}")


@app.command()
@friendly_errors
def export(
    run_dir: Path = typer.Argument(..., help="A finished transformer run, or an ensemble "
                                             "(or --folds) run of transformer runs."),
    onnx: bool = typer.Option(True, "--onnx", help="Export to ONNX (the only format)."),
    quantize: str | None = typer.Option(None, help="int8: also write quantised graphs."),
) -> None:
    """Export a run to ONNX (dynamic batch/sequence axes), verified against PyTorch; an
    ensemble exports one graph per transformer member."""
    from fitclass.export import ONNX_DIR, export_onnx

    quiet_libraries()
    report = export_onnx(run_dir, quantize)
    for name in ("fp32", "int8"):
        if name in report:
            row = report[name]
            labels = (f", labels agree {row['label_agreement']:.1%}"
                      if "label_agreement" in row else "")
            err.print(f"{name}: {row['path']}  max |prob diff| {row['max_abs_prob_diff']:.2e}, "
                      f"argmax agreement {row['argmax_agreement']:.1%}{labels} on "
                      f"{row['rows']} rows")
            for member, check in row.get("members", {}).items():
                err.print(f"  {member} ({check['engine']}): max |prob diff| "
                          f"{check['max_abs_prob_diff']:.2e}, argmax agreement "
                          f"{check['argmax_agreement']:.1%}")
    print(Path(run_dir) / ONNX_DIR)


@app.command()
@friendly_errors
def report(run_dir: Path = typer.Argument(..., help="A run (or ensemble) directory.")) -> None:
    """Write RUN_DIR/report.html: metrics, per-class table, plots, checks, suspects."""
    from fitclass.report.build import write_report

    print(write_report(run_dir))


@app.command()
@friendly_errors
def runs(
    folder: Path = typer.Argument(Path("runs"), help="Folder to search for runs."),
    sort: str | None = typer.Option(None, help="Sort by a column, e.g. macro_f1."),
    ascending: bool = typer.Option(False, help="Sort ascending (for losses)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """List the runs under a folder: name, task, backbone, metrics, date, status."""
    from fitclass.runs.listing import list_runs

    rows = list_runs(folder, sort, descending=not ascending)
    if as_json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    table = Table(title=f"{len(rows)} runs under {folder}")
    columns = ("name", "task", "backbone", "status", "select_metric", "select_value",
               "accuracy", "macro_f1", "started")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if row[c] is None else (f"{row[c]:.4f}" if isinstance(row[c], float)
                                                   else str(row[c])) for c in columns))
    Console(highlight=False).print(table)
