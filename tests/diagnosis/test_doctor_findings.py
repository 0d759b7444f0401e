"""`fitclass.doctor` on tiny synthetic tables with one planted problem each: the diagnosis
names it, and the recipe it writes loads and carries the remedy's keys."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import fitclass
from fitclass.diagnosis import Diagnosis, write_recipe
from fitclass.diagnosis.recipe_file import MARKER
from fitclass.errors import DataError, FitclassError
from fitclass.recipe import load_recipe

Rows = Callable[..., list[dict[str, str]]]
Writer = Callable[[Any, Path], Path]
HANGUL_WORDS = ["영화", "정말", "재미", "있어요", "최고", "배우", "연기", "감동", "지루",
                "별로", "시간", "아깝다", "스토리", "음악", "좋아요", "추천", "다시", "보고",
                "싶다", "결말"]


def dotted(tree: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        tree = tree[part]
    return tree


def carries_every_remedy(diagnosis: Diagnosis, path: Path) -> dict[str, Any]:
    """Write the recipe, load it as `fitclass train` would, and check every finding's keys."""
    recipe = write_recipe(diagnosis, path).to_dict()
    assert load_recipe(path).to_dict() == recipe
    for finding in diagnosis.findings:
        for key, value in finding.recipe.items():
            loaded = dotted(recipe, key)
            if isinstance(value, dict):  # a section: the finding's keys, defaults beside
                loaded = {k: loaded[k] for k in value}
            assert loaded == value, (finding.code, key)
            assert f"# <- {finding.code}" in path.read_text(encoding="utf-8")
    return recipe


def test_planted_long_tail_is_named_with_inverse_weights(tmp_path: Path, rows_maker: Rows,
                                                          table_writer: Writer) -> None:
    data = table_writer(rows_maker({"sports": 300, "tech": 40, "food": 12}), tmp_path / "t.csv")
    diagnosis = fitclass.doctor(data, noise=False)
    found = diagnosis.finding("imbalance")
    assert found is not None and found.regime == "long_tail"
    assert found.measured["ratio"] == 25.0 and found.measured["largest"] == "sports"
    assert found.recipe["imbalance.class_weights"] == "inverse"
    assert "TREC" in found.why  # the benchmark behind the remedy
    assert diagnosis.finding("script").severity == "info"  # English with MiniLM: fine
    assert "long_tail" in diagnosis.regimes and "very_few_rows_per_class" not in diagnosis.regimes
    recipe = carries_every_remedy(diagnosis, tmp_path / "recipe.yaml")
    assert recipe["imbalance"]["class_weights"] == "inverse"
    assert recipe["model"]["backbone"] == "minilm"


def test_very_few_rows_per_class_advise_cross_validation(tmp_path: Path, rows_maker: Rows,
                                                         table_writer: Writer) -> None:
    data = table_writer(rows_maker({"sports": 12, "tech": 8, "food": 1}), tmp_path / "t.csv")
    found = fitclass.doctor(data, backbone="tfidf", noise=False).finding("few_rows")
    assert found is not None and found.regime == "very_few_rows_per_class"
    assert found.severity == "error" and found.measured["under_2_rows"] == ["food"]
    assert "--folds" in found.remedy


def flipped(rows: list[dict[str, str]], share: float, seed: int = 0) -> list[dict[str, str]]:
    rng = random.Random(seed)
    names = sorted({row["label"] for row in rows})
    out = []
    for row in rows:
        if rng.random() < share:
            row = {**row, "label": rng.choice([n for n in names if n != row["label"]])}
        out.append(row)
    return out


def test_planted_label_flips_raise_the_noise_estimate(tmp_path: Path, rows_maker: Rows,
                                                      table_writer: Writer) -> None:
    rows = rows_maker({"sports": 150, "tech": 150, "food": 150}, words=4)
    clean = fitclass.doctor(table_writer(rows, tmp_path / "clean.csv"), backbone="tfidf")
    noisy = fitclass.doctor(table_writer(flipped(rows, 0.25), tmp_path / "noisy.csv"),
                            backbone="tfidf")
    clean_share = clean.finding("label_noise").measured["estimated_noisy_share"]
    noisy_found = noisy.finding("label_noise")
    assert noisy_found.measured["estimated_noisy_share"] > clean_share + 0.1
    assert noisy_found.severity == "warning" and "noisy" in noisy.regimes
    assert "noisy" not in clean.regimes
    assert "fitclass audit" in noisy_found.remedy
    carries_every_remedy(noisy, tmp_path / "noisy.yaml")


def test_noisy_binary_table_with_a_neural_backbone_gets_coteaching(
        tmp_path: Path, rows_maker: Rows, table_writer: Writer) -> None:
    rows = flipped(rows_maker({"sports": 200, "tech": 200}, words=4), 0.25)
    diagnosis = fitclass.doctor(table_writer(rows, tmp_path / "t.csv"))
    found = diagnosis.finding("label_noise")
    assert "noise.coteaching" in found.recipe and "SST-2" in found.why
    assert carries_every_remedy(diagnosis, tmp_path / "r.yaml")["noise"]["coteaching"]


def test_planted_duplicates_and_leakage_against_valid(tmp_path: Path, rows_maker: Rows,
                                                      table_writer: Writer) -> None:
    rows = rows_maker({"sports": 80, "tech": 80, "food": 80})
    copies = [dict(row, id=f"copy{i}") for i, row in enumerate(rows[:20])]
    own = fitclass.doctor(table_writer(rows + copies, tmp_path / "t.csv"), backbone="tfidf",
                          noise=False)
    duplicates = own.finding("duplicates")
    assert duplicates.measured["exact_repeats"] == 20
    assert duplicates.recipe == {"data.split.dedupe": "group"}
    carries_every_remedy(own, tmp_path / "own.yaml")

    fresh = rows_maker({"sports": 20, "tech": 20, "food": 20}, seed=7)
    leaked = [dict(row) for row in rows[:10]]  # exact copies
    near = [dict(row, text=row["text"].upper() + "!!") for row in rows[10:15]]  # near copies
    valid = table_writer(fresh + leaked + near, tmp_path / "valid.csv")
    diagnosis = fitclass.doctor(tmp_path / "t.csv", valid=valid, backbone="tfidf", noise=False)
    leakage = diagnosis.finding("leakage_validation")
    assert leakage is not None and leakage.regime == "leaky"
    assert leakage.measured["with_copy"] >= 15 and leakage.measured["exact"] >= 10
    assert "--against valid.csv" in leakage.remedy
    assert diagnosis.finding("duplicates").recipe == {}  # a separate valid file: no split
    recipe = carries_every_remedy(diagnosis, tmp_path / "leak.yaml")
    assert Path(recipe["data"]["valid"]) == valid.resolve()
    unlabelled = table_writer([{"text": row["text"]} for row in fresh + leaked],
                              tmp_path / "test.csv")
    tested = fitclass.doctor(tmp_path / "t.csv", test=unlabelled, backbone="tfidf",
                             noise=False).finding("leakage_test")
    assert tested is not None and tested.measured["exact"] == 10


def test_planted_script_mismatch_korean_with_default_minilm(tmp_path: Path,
                                                            table_writer: Writer) -> None:
    rng = random.Random(0)
    rows = [{"text": " ".join(rng.sample(HANGUL_WORDS, 6)), "label": str(i % 2)}
            for i in range(120)]
    diagnosis = fitclass.doctor(table_writer(rows, tmp_path / "ko.csv"), noise=False)
    found = diagnosis.finding("script_mismatch")
    assert found is not None and found.severity == "warning"
    assert found.measured["main_script"] == "Hangul"
    assert "model.backbone" in found.remedy and "klue/roberta-base" in found.remedy
    assert found.recipe == {"model.backbone": "tfidf"}
    assert diagnosis.backbone == "tfidf"
    assert diagnosis.finding("text_length").measured["unit"] == "words"
    assert carries_every_remedy(diagnosis, tmp_path / "ko.yaml")["model"]["backbone"] == "tfidf"
    named = fitclass.doctor(tmp_path / "ko.csv", backbone="tfidf", noise=False)
    assert named.finding("script_mismatch") is None


def test_shifted_validation_corrects_priors(tmp_path: Path, rows_maker: Rows,
                                            table_writer: Writer) -> None:
    train = table_writer(rows_maker({"sports": 100, "tech": 100}), tmp_path / "t.csv")
    valid = table_writer(rows_maker({"sports": 45, "tech": 5}, seed=3), tmp_path / "v.csv")
    diagnosis = fitclass.doctor(train, valid=valid, backbone="tfidf", noise=False)
    found = diagnosis.finding("shifted_validation")
    assert found.measured["total_variation"] == pytest.approx(0.4)
    assert found.recipe["decision.prior_correction"] == {"sports": 0.9, "tech": 0.1}
    carries_every_remedy(diagnosis, tmp_path / "shift.yaml")


def test_multilabel_cardinality_and_thresholds(tmp_path: Path, table_writer: Writer) -> None:
    rng = random.Random(1)
    rows = [{"text": f"row {i} " + " ".join(rng.sample(HANGUL_WORDS, 3)),
             "labels": "|".join(sorted(rng.sample(["a", "b", "c"], rng.choice([0, 1, 2]))))
             if i % 10 else "d"} for i in range(200)]
    diagnosis = fitclass.doctor(table_writer(rows, tmp_path / "ml.csv"), label="labels",
                                settings=["data.label_sep='|'"], task="multi_label")
    assert diagnosis.task == "multilabel" and diagnosis.finding("label_noise") is None
    # Korean with the default MiniLM: TF-IDF is settled first, so no neural-only remedy
    assert diagnosis.backbone == "tfidf"
    assert "imbalance.pos_weight" not in diagnosis.finding("imbalance").recipe
    assert diagnosis.finding("label_cardinality").measured["max_labels_per_row"] == 2
    assert diagnosis.finding("imbalance").recipe["decision.thresholds"] == "per_class"
    carries_every_remedy(diagnosis, tmp_path / "ml.yaml")
    with pytest.raises(FitclassError, match="--task multiclass: the labels say multilabel"):
        fitclass.doctor(tmp_path / "ml.csv", label="labels", settings=["data.label_sep='|'"],
                        task="multiclass")


def test_missing_column_lists_the_columns(tmp_path: Path, rows_maker: Rows,
                                          table_writer: Writer) -> None:
    data = table_writer(rows_maker({"sports": 5, "tech": 5}), tmp_path / "t.csv")
    with pytest.raises(DataError, match=r"column 'body' not found; the columns are \['id', "
                                        r"'text', 'label'\]; name the right one with --text"):
        fitclass.doctor(data, text="body")


def test_unusable_rows_are_left_out_and_named(tmp_path: Path, rows_maker: Rows,
                                              table_writer: Writer) -> None:
    rows = rows_maker({"sports": 30, "tech": 30})
    rows[3]["text"], rows[5]["label"] = "", ""
    diagnosis = fitclass.doctor(table_writer(rows, tmp_path / "t.csv"), backbone="tfidf",
                                noise=False)
    assert diagnosis.rows == 58 and diagnosis.finding("unusable_rows").measured["rows"] == 2


def test_dataframe_api_and_json(rows_maker: Rows) -> None:
    frame = pd.DataFrame(rows_maker({"sports": 60, "tech": 15}))
    diagnosis = fitclass.doctor(frame, backbone="tfidf", noise=False)
    assert diagnosis.class_counts == {"sports": 60, "tech": 15}
    assert diagnosis.recipe["data"]["train"] == "TABLE.csv"
    assert '"code": "imbalance"' in diagnosis.to_json()


def test_recipe_never_replaces_a_file_doctor_did_not_write(tmp_path: Path, rows_maker: Rows,
                                                           table_writer: Writer) -> None:
    data = table_writer(rows_maker({"sports": 60, "tech": 15}), tmp_path / "t.csv")
    diagnosis = fitclass.doctor(data, backbone="tfidf", noise=False)
    mine = tmp_path / "mine.yaml"
    mine.write_text("data:\n  train: x.csv\n", encoding="utf-8")
    with pytest.raises(FitclassError, match="not a recipe fitclass doctor wrote"):
        write_recipe(diagnosis, mine)
    assert mine.read_text(encoding="utf-8") == "data:\n  train: x.csv\n"
    ours = tmp_path / "ours.yaml"
    write_recipe(diagnosis, ours)
    write_recipe(diagnosis, ours)  # its own file: replaced
    assert ours.read_text(encoding="utf-8").startswith(MARKER)


def test_image_folder_classes_only(tmp_path: Path) -> None:
    for name, count in (("cat", 40), ("dog", 4)):
        (tmp_path / "pics" / name).mkdir(parents=True)
        for i in range(count):
            (tmp_path / "pics" / name / f"{i}.png").write_bytes(b"")  # never decoded
    diagnosis = fitclass.doctor(tmp_path / "pics")
    assert diagnosis.class_counts == {"cat": 40, "dog": 4}
    assert {f.code for f in diagnosis.findings} == {"few_rows", "imbalance"}
    assert diagnosis.recipe["data"]["images"] is True
    assert diagnosis.recipe["model"]["backbone"] == "resnet-tiny"
