"""`fitclass doctor`: the diagnosis of a table as one page, and its recipe on request."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fitclass.cli.base import app, err, friendly_errors, printed_warnings, quiet_libraries
from fitclass.cli.data_options import Data, LabelColumns, Task, TextColumns, ValidFile, columns

#: Classes listed in the class table (the largest and the smallest, the middle elided).
SHOWN_CLASSES = 8
STYLE = {"error": "bold red", "warning": "yellow", "info": "dim"}


@app.command()
@friendly_errors
def doctor(
    data: Data,
    text: TextColumns = None,
    label: LabelColumns = None,
    task: Task = None,
    valid: ValidFile = None,
    test: Path | None = typer.Option(None, help="Test file: leakage (labels not needed)."),
    backbone: str | None = typer.Option(None, help="The backbone to check against (default "
                                                   "minilm; resnet-tiny for images)."),
    set_: list[str] | None = typer.Option(None, "--set", help="data.* layout keys "
                                                              "(data.quoting=none, "
                                                              "data.label_sep='|', ...) "
                                                              "or model.max_length=N."),
    write_recipe: Path | None = typer.Option(None, "--write-recipe", help="Write the "
                                                                          "recipe the "
                                                                          "findings imply "
                                                                          "(commented "
                                                                          "YAML)."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the findings as JSON."),
    noise: bool = typer.Option(True, "--noise/--no-noise", help="Run the proxy noise audit "
                                                                "(seconds on 20k rows)."),
) -> None:
    """Diagnose a table: classes, lengths, script, duplicates, leakage, label noise and
    validation shift, each with its remedy, why and recipe keys. DATA may also be a folder
    of class folders of images."""
    import fitclass
    from fitclass.diagnosis.recipe_file import check_replaceable
    from fitclass.diagnosis.recipe_file import write_recipe as write
    from fitclass.diagnosis.reports import check_json_output, write_json

    if write_recipe is not None:
        check_replaceable(write_recipe)
    if json_out is not None:
        check_json_output(json_out)
    quiet_libraries()
    with printed_warnings():
        diagnosis = fitclass.doctor(data, label=columns(label), text=columns(text), task=task,
                                    valid=valid, test=test, backbone=backbone, settings=set_,
                                    noise=noise)
    print_diagnosis(diagnosis, Console(highlight=False, soft_wrap=True))
    if json_out is not None:
        write_json(diagnosis, json_out)
        err.print(f"findings: {json_out}", markup=False)
    if write_recipe is not None:
        write(diagnosis, write_recipe)
        err.print(f"recipe: {write_recipe} (train it: fitclass train {write_recipe})",
                  markup=False)


def class_table(counts: dict[str, int], rows: int, multilabel: bool) -> Table:
    """Rows per class (positive rows per label), largest first; long lists keep the head
    and the tail."""
    title = (f"positive rows per label ({len(counts)} labels, {rows} rows)" if multilabel
             else f"rows per class ({len(counts)} classes, {rows} rows)")
    table = Table(title=title)
    for column in ("class", "rows", "share"):
        table.add_column(column, justify="left" if column == "class" else "right")
    items = list(counts.items())
    half = SHOWN_CLASSES // 2
    shown = items if len(items) <= SHOWN_CLASSES else [*items[:half], None, *items[-half:]]
    total = max(1, sum(counts.values()))
    for item in shown:
        if item is None:
            table.add_row(f"... {len(items) - 2 * half} more", "", "")
            continue
        table.add_row(escape(item[0]), str(item[1]), f"{item[1] / total:.1%}")
    return table


def print_diagnosis(diagnosis: object, console: Console) -> None:
    """One page: the class table, then each finding with its remedy, why and keys."""
    from fitclass.diagnosis.findings import Diagnosis

    assert isinstance(diagnosis, Diagnosis)
    console.print(f"[bold]{escape(diagnosis.source)}[/]: {diagnosis.rows} rows, "
                  f"{diagnosis.task}, checked against backbone {escape(diagnosis.backbone)}")
    console.print(class_table(diagnosis.class_counts, diagnosis.rows,
                              diagnosis.task == "multilabel"))
    for finding in diagnosis.findings:
        style = STYLE[finding.severity]
        console.print(f"[{style}]{finding.severity}[/] [bold]{finding.code}[/]: "
                      f"{escape(finding.title)}")
        if finding.severity == "info" and not finding.recipe:
            continue
        console.print(f"  remedy: {escape(finding.remedy)}")
        console.print(f"  why: {escape(finding.why)}", style="dim")
        if finding.recipe:
            keys = ", ".join(f"{k}={v}" for k, v in finding.recipe.items())
            console.print(f"  recipe: {escape(keys)}", style="cyan")
    console.print(f"regimes: {', '.join(diagnosis.regimes) or 'none'}  "
                  f"({diagnosis.seconds:.1f} s)")
