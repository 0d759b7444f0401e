"""`fitclass distil` end to end with other teachers: a cross-validation run (the mean of
its fold models) and a multi-label TF-IDF run, each taught to a tiny BERT student."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import load_file

import fitclass
from fitclass.runs.layout import TEACHER_PROBS

pytestmark = pytest.mark.usefixtures("no_reports")

STUDENT = ["model.max_length=32", "model.dropout=0.0", "train.epochs=3",
           "train.batch_size=16", "train.lr=3e-3", "train.eval_batch_size=64"]


def valid_rows(student: Path) -> pd.DataFrame:
    return pd.read_csv(student / "valid_predictions.csv", dtype=str, keep_default_na=False)


def check_distillation_record(student: Path, teacher: fitclass.Run, column: str,
                              metrics_named: tuple[str, ...]) -> None:
    """metrics.json `distillation` against the teacher as it predicts the student's
    validation rows: its raw probabilities cached, its metrics, agreement and gap."""
    metrics = json.loads((student / "metrics.json").read_text())
    summary = metrics["distillation"]
    valid = valid_rows(student)
    texts = valid["text"].tolist()
    assert summary["teacher"] == str(teacher.path.resolve())
    cached = load_file(str(student / TEACHER_PROBS))
    np.testing.assert_allclose(cached["valid"], teacher.model_proba(texts), atol=1e-5)
    taught = teacher.predict(texts)[column].fillna("").to_numpy()
    agreement = float((taught == valid[column].to_numpy()).mean())
    assert summary["agreement"] == pytest.approx(agreement)
    for metric in (*metrics_named, teacher.recipe.train.select.metric):
        assert metric in summary["teacher_metrics"], metric
        assert summary["gap"][metric] == pytest.approx(
            metrics[metric] - summary["teacher_metrics"][metric])


def test_a_cross_validation_teacher(tmp_path: Path, train_csv: Path, tiny_bert_dir: Path,
                                    recipe_for: Callable[..., dict[str, Any]]) -> None:
    """The teacher is the mean of 3 fold models; the student drops the folds and validates
    on a split of its own, where the record compares it with that mean."""
    teacher = fitclass.train(recipe_for("tfidf", train_csv), out=tmp_path / "cv", folds=3)
    assert (tmp_path / "cv" / "fold-2").is_dir()
    student = fitclass.distil(teacher.path, student=str(tiny_bert_dir),
                              out=tmp_path / "student", overrides=STUDENT)
    split = student.recipe.data.split
    assert split.folds is None and split.fold is None and not split.refit
    valid = valid_rows(student.path)
    assert len(valid) == 30  # the student's own 25% of the 120 rows
    assert set(valid["label"]) <= set(teacher.class_names)
    check_distillation_record(student.path, teacher, "label", ("accuracy", "macro_f1"))
    accuracy = float((valid["label"] == valid["true_label"]).mean())
    assert student.metrics["accuracy"] == pytest.approx(accuracy)
    # what a tiny random-init student learns from 90 rows is not pinned down: that distillation
    # teaches is the benchmark's job; here the saved student predicts the teacher's classes
    frame = student.predict(["football goal match team coach", "pizza cheese soup bread"])
    assert len(frame) == 2 and set(frame["label"]) <= set(teacher.class_names)


LABELS = ["food", "music", "sports", "tech"]
KEYWORDS = {"food": ["pizza", "cheese", "soup", "bread"],
            "music": ["guitar", "concert", "song", "piano"],
            "sports": ["football", "goal", "match", "coach"],
            "tech": ["laptop", "software", "server", "code"]}
FILLER = ["today", "we", "read", "about", "the", "new", "story", "my", "friend", "likes",
          "this", "week", "was", "really", "good", "people", "city", "news", "old", "big"]


def multilabel_frame(rows: int = 120, seed: int = 3) -> pd.DataFrame:
    """Rows with one or two labels, each cued by two of its keywords."""
    rng = random.Random(seed)
    records: list[dict[str, str]] = []
    seen: set[str] = set()
    while len(records) < rows:
        on = sorted(rng.sample(LABELS, rng.choice([1, 1, 2])))
        tokens = rng.sample(FILLER, 3) + [w for name in on for w in rng.sample(KEYWORDS[name], 2)]
        rng.shuffle(tokens)
        text = " ".join(tokens)
        if text not in seen:
            seen.add(text)
            records.append({"id": f"m{len(records):03d}", "text": text, "tags": "|".join(on)})
    return pd.DataFrame(records)


def test_a_multilabel_student(tmp_path: Path, tiny_bert_dir: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A multi-label TF-IDF teacher: the student learns each label's softened sigmoid
    (packed targets of 2 x 4 + 1 columns), predicts label sets with thresholds of its own,
    and its agreement counts rows whose whole label set matches the teacher's."""
    from fitclass.training.distillation import TeacherRows

    csv = tmp_path / "tags.csv"
    multilabel_frame().to_csv(csv, index=False)
    recipe = {"task": "multilabel",
              "data": {"train": str(csv), "id": "id", "label": "tags", "label_sep": "|",
                       "split": {"valid_size": 0.25, "seed": 0}},
              "model": {"backbone": "tfidf", "analyzer": "word", "ngram_range": [1, 1]},
              "train": {"select": {"metric": "micro_f1"}}}
    teacher = fitclass.train(recipe, out=tmp_path / "teacher")
    widths: list[int] = []
    packed = TeacherRows.targets

    def recorded(self: TeacherRows, labels: Any, positions: Any) -> Any:
        targets = packed(self, labels, positions)
        widths.append(int(targets.shape[1]))
        return targets

    monkeypatch.setattr(TeacherRows, "targets", recorded)
    student = fitclass.distil(teacher.path, student=str(tiny_bert_dir),
                              out=tmp_path / "student",
                              overrides=[*STUDENT, "train.epochs=6"])
    assert widths and set(widths) == {2 * len(LABELS) + 1}
    assert student.recipe.task == "multilabel"
    assert student.recipe.train.select.metric == "micro_f1"
    assert student.class_names == LABELS
    decision = json.loads((student.path / "decision.json").read_text())
    assert decision["multilabel"] is True
    valid = valid_rows(student.path)
    assert {name for tags in valid["labels"] for name in tags.split("|") if name} <= set(LABELS)
    check_distillation_record(student.path, teacher, "labels",
                              ("subset_accuracy", "micro_f1"))
    assert 0.0 <= student.metrics["micro_f1"] <= 1.0
    frame = student.predict(["guitar concert song piano today", "laptop software code"])
    assert set(frame.columns) >= {"labels", *(f"prob:{name}" for name in LABELS)}
    probs = frame[[f"prob:{name}" for name in LABELS]].to_numpy()
    assert probs.shape == (2, len(LABELS)) and ((probs >= 0) & (probs <= 1)).all()
