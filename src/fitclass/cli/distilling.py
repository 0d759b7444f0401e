"""`fitclass distil`: a finished run (the teacher) distilled into a trainable backbone."""

from __future__ import annotations

from pathlib import Path

import typer

from fitclass.cli.base import app, friendly_errors, print_summary, quiet_libraries


@app.command()
@friendly_errors
def distil(
    teacher: Path = typer.Argument(..., help="The teacher: a finished run folder (a model, "
                                             "soup, cross-validation run or ensemble)."),
    student: str = typer.Option(..., help="The student's backbone: minilm, a Hugging Face "
                                          "model id or folder (tfidf cannot be a student)."),
    out: Path = typer.Option(..., help="The student's run directory."),
    unlabelled: Path | None = typer.Option(None, help="A table with the text column: rows "
                                                      "the teacher scores and the student "
                                                      "learns from its probabilities "
                                                      "alone."),
    alpha: float = typer.Option(0.5, min=0.0, max=1.0, help="Weight of the distillation "
                                                            "(KL) term; 0: labels alone."),
    temperature: float = typer.Option(2.0, help="Softening temperature of both models "
                                                "(> 0)."),
    set_: list[str] | None = typer.Option(None, "--set", help="Override a key of the "
                                                              "student's recipe: "
                                                              "train.epochs=3"),
    overwrite: bool = typer.Option(False, help="Replace a run folder fitclass wrote (it "
                                               "never deletes a folder it did not write)."),
    seeds: int = typer.Option(1, min=1, help="Train N students (seeds S..S+N-1) into "
                                             "OUT/seed-<s> and their ensemble into "
                                             "OUT/ensemble; the teacher scores the rows "
                                             "once for all of them."),
) -> None:
    """Train a student on the teacher's labels and probabilities; prints its run directory
    as the last line (a normal run: predict, evaluate, report and export work)."""
    import fitclass

    quiet_libraries()
    run = fitclass.distil(teacher, student=student, out=out, unlabelled=unlabelled,
                          alpha=alpha, temperature=temperature, overrides=set_,
                          overwrite=overwrite, seeds=seeds)
    print_summary(run)
    print(run.path)
