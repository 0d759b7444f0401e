"""`fitclass distil`: an ensemble of TF-IDF runs taught to a tiny BERT student."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import fitclass
from fitclass.distilling import teacher as teacher_module
from fitclass.errors import DataError, RecipeError, RunError
from fitclass.export import export_onnx
from fitclass.runs.layout import TEACHER_PROBS

pytestmark = pytest.mark.usefixtures("no_reports")


@pytest.fixture(scope="module")
def student_settings(tiny_bert_dir: Path) -> list[str]:
    return ["model.max_length=32", "model.dropout=0.0", "train.epochs=3",
            "train.batch_size=16", "train.lr=3e-3", "train.eval_batch_size=64"]


@pytest.fixture(scope="module")
def unlabelled_csv(tmp_path_factory: pytest.TempPathFactory,
                   rows_maker: Callable[..., list[dict[str, str]]]) -> Path:
    rows = [{"text": row["text"]} for row in rows_maker({"sports": 8, "tech": 8, "food": 8},
                                                        seed=77)]
    path = tmp_path_factory.mktemp("unlabelled") / "unlabelled.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory,
            analyzer_runs: dict[str, Path]) -> Path:
    """An ensemble of two TF-IDF runs (classical members) on one validation split."""
    out = tmp_path_factory.mktemp("teacher") / "ensemble"
    return fitclass.ensemble([analyzer_runs["char_wb"], analyzer_runs["word"]], out,
                             method="mean").path


#: What the training steps' targets held in the `student` fixture's training.
SEEN: dict[str, list[Any]] = {"widths": [], "unlabelled": []}


@pytest.fixture(scope="module")
def student(tmp_path_factory: pytest.TempPathFactory, teacher: Path, tiny_bert_dir: Path,
            unlabelled_csv: Path, student_settings: list[str]) -> Path:
    from fitclass.training.distillation import TeacherRows

    packed = TeacherRows.targets

    def recorded(self: TeacherRows, labels: Any, positions: Any) -> Any:
        targets = packed(self, labels, positions)
        SEEN["widths"].append(targets.shape[1])
        SEEN["unlabelled"].append(int((targets[:, -1] == 0).sum()))
        return targets

    out = tmp_path_factory.mktemp("student") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TeacherRows, "targets", recorded)
        return fitclass.distil(teacher, student=str(tiny_bert_dir), out=out,
                               unlabelled=unlabelled_csv, alpha=0.7, temperature=2.0,
                               overrides=student_settings).path


def test_training_steps_get_the_teachers_rows(student: Path) -> None:
    """Every step's targets are packed (3 classes: 2 x 3 + 1 columns); each epoch meets the
    24 unlabelled rows once (3 epochs)."""
    assert SEEN["widths"] and set(SEEN["widths"]) == {7}
    assert sum(SEEN["unlabelled"]) == 24 * 3


def test_student_is_a_normal_run(student: Path, teacher: Path) -> None:
    run = fitclass.load_run(student)
    recipe = run.recipe
    assert recipe.distil is not None and recipe.distil.teacher == teacher.resolve()
    assert (recipe.distil.alpha, recipe.distil.temperature) == (0.7, 2.0)
    assert recipe.model.backbone.endswith("tiny-bert0")
    taught = fitclass.load_run(teacher)
    assert run.class_names == taught.class_names
    frame = run.predict(["football goal for the team today", "pizza with cheese"])
    assert set(frame["label"]) <= set(run.class_names)
    valid = pd.read_csv(student / "valid_predictions.csv", dtype=str)
    teacher_valid = pd.read_csv(teacher / "valid_predictions.csv", dtype=str)
    assert sorted(valid["id"]) == sorted(teacher_valid["id"])  # the teacher's validation rows
    assert (student / "decision.json").is_file()


def test_metrics_report_agreement_and_gap(student: Path, teacher: Path) -> None:
    """The teacher as it predicts (its own decision) on the student's validation rows."""
    metrics = json.loads((student / "metrics.json").read_text())
    summary = metrics["distillation"]
    valid = pd.read_csv(student / "valid_predictions.csv", dtype=str)
    taught = fitclass.load_run(teacher).predict(valid["text"].tolist())["label"]
    truth, student_labels = valid["true_label"], valid["label"]
    teacher_accuracy = float((taught.to_numpy() == truth.to_numpy()).mean())
    assert summary["teacher_metrics"]["accuracy"] == pytest.approx(teacher_accuracy)
    assert summary["gap"]["accuracy"] == pytest.approx(metrics["accuracy"] - teacher_accuracy)
    agreement = float((taught.to_numpy() == student_labels.to_numpy()).mean())
    assert summary["agreement"] == pytest.approx(agreement)
    assert summary["unlabelled_rows"] == 24


def test_unlabelled_rows_train_on_soft_targets_only(tmp_path: Path, teacher: Path,
                                                    unlabelled_csv: Path) -> None:
    """They join the training rows after the labelled ones, flagged unlabelled, with the
    teacher's calibrated probabilities (what its `predict` reports)."""
    from fitclass.data.prepare import prepare_data
    from fitclass.distilling.workflow import student_recipe
    from fitclass.recipe import load_recipe
    from fitclass.runs.folder import RunDir
    from fitclass.training.progress import Reporter

    taught = fitclass.load_run(teacher)
    recipe = load_recipe(student_recipe(taught, "minilm", unlabelled=unlabelled_csv))
    prepared = prepare_data(recipe.data)
    run = RunDir.create(tmp_path / "scratch")
    try:
        loaded = teacher_module.load_teacher(run, recipe, prepared, Reporter(enabled=False))
    finally:
        run.release()
    table, targets = loaded.fit_rows(prepared.train)
    labelled = len(prepared.train)
    assert len(table) == labelled + 24
    assert targets.labelled.tolist() == [True] * labelled + [False] * 24
    assert all(i.startswith("unlabelled:") for i in table.ids[labelled:])
    texts = pd.read_csv(unlabelled_csv)["text"].tolist()
    expected = taught.predict_proba(texts)
    np.testing.assert_allclose(targets.probs[labelled:], expected, atol=1e-5)


def test_teacher_probabilities_cached_and_reused(student: Path, teacher: Path,
                                                 tiny_bert_dir: Path, unlabelled_csv: Path,
                                                 student_settings: list[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    assert (student / TEACHER_PROBS).is_file()
    first = json.loads((student / "metrics.json").read_text())["distillation"]
    assert first["teacher_probabilities"] == "computed"

    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the teacher scored rows again")

    monkeypatch.setattr(teacher_module, "score", never)
    run = fitclass.distil(teacher, student=str(tiny_bert_dir), out=student,
                          unlabelled=unlabelled_csv, alpha=0.7, temperature=2.0,
                          overrides=[*student_settings, "train.epochs=1"], overwrite=True)
    assert run.metrics["distillation"]["teacher_probabilities"] == "cached"


def test_seeds_score_the_teacher_once(tmp_path: Path, teacher: Path, tiny_bert_dir: Path,
                                     student_settings: list[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """`distil --seeds 2`: two students and their ensemble; the teacher scores the training
    and validation rows for the first student only, the second reads what it scored."""
    from safetensors.numpy import load_file

    real, calls = teacher_module.score, []

    def counted(run: Any, texts: list[Any], *args: Any) -> Any:
        calls.append(len(texts))
        return real(run, texts, *args)

    monkeypatch.setattr(teacher_module, "score", counted)
    out = tmp_path / "students"
    run = fitclass.distil(teacher, student=str(tiny_bert_dir), out=out, seeds=2,
                          overrides=[*student_settings, "train.epochs=1"])
    assert len(calls) == len(teacher_module.PARTS)  # one scoring of each row set
    members = sorted(out.glob("seed-*"))
    assert len(members) == 2 and run.path == out / "ensemble"
    how = [json.loads((m / "metrics.json").read_text())["distillation"]
           ["teacher_probabilities"] for m in members]
    assert how == ["computed", "cached"]
    first, second = (load_file(str(m / TEACHER_PROBS)) for m in members)
    assert first.keys() == second.keys()
    assert all(np.array_equal(first[k], second[k]) for k in first)
    assert run.metrics["accuracy"] >= 0.0 and set(run.class_names) == {"food", "sports",
                                                                         "tech"}
    with pytest.raises(fitclass.FitclassError, match="--seeds needs --out"):
        fitclass.distil(teacher, student=str(tiny_bert_dir), seeds=2)


def test_export_int8_and_predict_with_onnx(tmp_path: Path, student: Path) -> None:
    import shutil

    copy = tmp_path / "student"
    shutil.copytree(student, copy)
    report = export_onnx(copy, "int8")
    assert (copy / "onnx" / "model.int8.onnx").is_file() and report["int8"]
    run = fitclass.load_run(copy)
    texts = ["football goal for the team today", "pizza with cheese in the kitchen"]
    frame = run.predict(texts, engine="onnx")
    probs = frame[[f"prob:{c}" for c in run.class_names]].to_numpy()
    expected = run.decision.predict(probs)  # the run's decision applied to the int8 graph's
    assert frame["label"].tolist() == [run.class_names[i] for i in expected]


def test_tfidf_is_not_a_student(tmp_path: Path, teacher: Path) -> None:
    with pytest.raises(RecipeError, match="'tfidf' cannot be a student"):
        fitclass.distil(teacher, student="tfidf", out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_teacher_must_be_a_run(tmp_path: Path, tiny_bert_dir: Path) -> None:
    folder = tmp_path / "not-a-run"
    folder.mkdir()
    with pytest.raises(RunError, match="not a fitclass run folder"):
        fitclass.distil(folder, student=str(tiny_bert_dir), out=tmp_path / "out")


def test_unlabelled_file_needs_the_text_column(tmp_path: Path, teacher: Path,
                                               tiny_bert_dir: Path) -> None:
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"sentence": ["a b c"]}).to_csv(bad, index=False)
    with pytest.raises(DataError, match=r"bad\.csv has no column 'text'.*rename"):
        fitclass.distil(teacher, student=str(tiny_bert_dir), out=tmp_path / "out",
                        unlabelled=bad)


def test_label_sets_must_match(tmp_path: Path, teacher: Path, tiny_bert_dir: Path,
                               rows_maker: Callable[..., list[dict[str, str]]]) -> None:
    two = tmp_path / "two.csv"
    pd.DataFrame(rows_maker({"sports": 30, "tech": 30})).to_csv(two, index=False)
    with pytest.raises(DataError, match="predicts the classes"):
        fitclass.distil(teacher, student=str(tiny_bert_dir), out=tmp_path / "out",
                        overrides=[f"data.train={two}"])


def test_foreign_out_is_refused(tmp_path: Path, teacher: Path, tiny_bert_dir: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(RunError, match="not a fitclass run"):
        fitclass.distil(teacher, student=str(tiny_bert_dir), out=out)
    assert (out / "notes.txt").read_text() == "keep me"


def test_cli_refuses_a_tfidf_student(cli_main: Callable[..., tuple[int, str, str]],
                                     teacher: Path, tmp_path: Path) -> None:
    code, _, err = cli_main("distil", teacher, "--student", "tfidf", "--out",
                            tmp_path / "out")
    assert code == 2 and "cannot be a student" in err


def test_resume_reads_the_cached_teacher(tmp_path: Path, teacher: Path, tiny_bert_dir: Path,
                                         student_settings: list[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """An interrupted student resumes from its checkpoint without scoring the teacher's
    rows again, and finishes with the same distillation record."""
    from fitclass.training import loop

    real, calls = loop._evaluate, {"n": 0}

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    path = tmp_path / "student"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loop, "_evaluate", interrupted)
        with pytest.raises(KeyboardInterrupt):
            fitclass.distil(teacher, student=str(tiny_bert_dir), out=path,
                            overrides=student_settings)
    assert (path / TEACHER_PROBS).is_file() and not (path / "model").exists()

    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the teacher scored rows again")

    monkeypatch.setattr(teacher_module, "score", never)
    run = fitclass.train({}, resume=path)
    summary = run.metrics["distillation"]
    assert summary["teacher_probabilities"] == "cached"
    assert summary["teacher"] == str(teacher.resolve())
