"""Recipe validation, `--set` overrides, eval_every parsing, paths and YAML round trips."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from fitclass.errors import RecipeError
from fitclass.recipe import Recipe, load_recipe, merge, parse_overrides

TRAIN = "/data/train.csv"


def base(**sections: Any) -> dict[str, Any]:
    recipe: dict[str, Any] = {"data": {"train": TRAIN}}
    recipe.update(sections)
    return recipe


def error_of(raw: dict[str, Any], overrides: list[str] | None = None) -> str:
    with pytest.raises(RecipeError) as info:
        load_recipe(raw, overrides)
    return str(info.value)


# --- unknown keys and bad values ---------------------------------------------------------


def test_defaults_fill_every_section() -> None:
    recipe = load_recipe(base())
    assert recipe.data.train == Path(TRAIN)
    assert recipe.model.backbone == "minilm"
    assert recipe.train.epochs == 3
    assert recipe.train.select.metric == "macro_f1"
    assert recipe.train.select.direction == "max"
    assert recipe.train.eval_every.value == 1.0 and recipe.train.eval_every.unit == "epochs"


@pytest.mark.parametrize(("raw", "path"), [
    (base(trian={"epochs": 2}), "trian"),
    (base(data={"train": TRAIN, "txt": "body"}), "data.txt"),
    (base(train={"early_stopping": {"patiense": 2}}), "train.early_stopping.patiense"),
    (base(model={"backbone": "tfidf", "ngrams": [1, 2]}), "model.ngrams"),
    (base(data={"train": TRAIN, "split": {"size": 0.2}}), "data.split.size"),
])
def test_unknown_key_names_its_dotted_path(raw: dict[str, Any], path: str) -> None:
    message = error_of(raw)
    assert f"{path}: unknown key" in message


def test_missing_required_key_is_named() -> None:
    assert "data.train: required key is missing" in error_of({"data": {"text": "t"}})
    assert "data: required key is missing" in error_of({})


@pytest.mark.parametrize(("raw", "key", "shown"), [
    (base(train={"lr": -1}), "train.lr", "-1"),
    (base(train={"epochs": 0}), "train.epochs", "0"),
    (base(train={"scheduler": "exponential"}), "train.scheduler", "'exponential'"),
    (base(model={"max_length": 4}), "model.max_length", "4"),
    (base(data={"train": TRAIN, "split": {"valid_size": 1.5}}), "data.split.valid_size",
     "1.5"),
    (base(train={"select": {"metric": "f1"}}), "train.select.metric", "'f1'"),
    (base(data={"train": TRAIN, "quoting": "double"}), "data.quoting", "'double'"),
])
def test_bad_value_names_key_and_value(raw: dict[str, Any], key: str, shown: str) -> None:
    message = error_of(raw)
    line = next(line for line in message.splitlines() if line.strip().startswith(key + ":"))
    assert f"(got {shown})" in line


def test_unknown_select_metric_lists_choices() -> None:
    message = error_of(base(train={"select": {"metric": "f1"}}))
    assert "macro_f1" in message and "balanced_accuracy" in message


def test_every_problem_is_reported_at_once() -> None:
    message = error_of(base(train={"lr": 0, "epochs": -2}, modle={}))
    assert "train.lr" in message and "train.epochs" in message and "modle" in message


def test_select_mode_defaults_to_metric_direction() -> None:
    assert load_recipe(base(train={"select": {"metric": "loss"}})).train.select.direction == \
        "min"
    assert load_recipe(base(train={"select": {"metric": "accuracy", "mode": "min"}})) \
        .train.select.direction == "min"


# --- --set overrides ---------------------------------------------------------------------


def test_parse_overrides_nests_and_types_values() -> None:
    parsed = parse_overrides([
        "train.lr=0.001", "train.epochs=5", "model.pretrained=false",
        "train.early_stopping.patience=2", "data.text=[question, answer]",
        "train.grad_clip=", "name=my run", "train.eval_every=200 steps",
    ])
    assert parsed == {
        "train": {"lr": 0.001, "epochs": 5, "early_stopping": {"patience": 2},
                  "grad_clip": None, "eval_every": "200 steps"},
        "model": {"pretrained": False},
        "data": {"text": ["question", "answer"]},
        "name": "my run",
    }
    assert isinstance(parsed["train"]["epochs"], int)
    assert isinstance(parsed["train"]["lr"], float)


def test_parse_overrides_splits_on_first_equals_only() -> None:
    assert parse_overrides(["data.label_sep=a=b"]) == {"data": {"label_sep": "a=b"}}


@pytest.mark.parametrize("pair", ["train.lr", "=3", " =x"])
def test_parse_overrides_rejects_pairs_without_key_or_equals(pair: str) -> None:
    with pytest.raises(RecipeError, match="expected key=value"):
        parse_overrides([pair])


def test_parse_overrides_rejects_a_key_set_as_value_and_section() -> None:
    with pytest.raises(RecipeError, match="'train' is set twice"):
        parse_overrides(["train=1", "train.lr=0.1"])


def test_parse_overrides_rejects_invalid_yaml_values() -> None:
    with pytest.raises(RecipeError, match=r"--set 'data.text=\[q, a': the value is not valid"):
        parse_overrides(["data.text=[q, a"])


def test_merge_is_deep_and_leaves_inputs_alone() -> None:
    original = {"train": {"lr": 1.0, "select": {"metric": "loss"}}, "name": "x"}
    merged = merge(original, {"train": {"select": {"mode": "max"}}, "name": "y"})
    assert merged == {"train": {"lr": 1.0, "select": {"metric": "loss", "mode": "max"}},
                      "name": "y"}
    assert original["train"]["select"] == {"metric": "loss"}


def test_load_recipe_applies_overrides_on_a_file(tmp_path: Path) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"data": {"train": "train.csv"},
                                    "train": {"epochs": 3, "lr": 1e-4,
                                              "select": {"metric": "accuracy"}}}))
    recipe = load_recipe(path, ["train.epochs=7", "train.lr=3e-5", "train.select.mode=min",
                                "model.backbone=tfidf", "model.ngram_range=[2, 4]",
                                "data.text=[q, a]"])
    assert recipe.train.epochs == 7
    assert recipe.train.lr == pytest.approx(3e-5)
    assert recipe.train.select.metric == "accuracy"  # a sibling key survives the merge
    assert recipe.train.select.mode == "min"
    assert recipe.model.ngram_range == (2, 4)
    assert recipe.data.text_columns == ["q", "a"]


def test_bad_override_value_is_named_like_a_file_key() -> None:
    message = error_of(base(), ["train.batch_size=zero"])
    assert "train.batch_size" in message and "'zero'" in message
    assert "train.batchsize: unknown key" in error_of(base(), ["train.batchsize=8"])


# --- eval_every --------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "value", "unit"), [
    ("200 steps", 200.0, "steps"),
    ("1 step", 1.0, "steps"),
    (0.5, 0.5, "epochs"),
    (2, 2.0, "epochs"),
    ("2 epochs", 2.0, "epochs"),
    (" 0.25 epoch ", 0.25, "epochs"),
    ({"value": 50, "unit": "steps"}, 50.0, "steps"),
])
def test_eval_every_forms(raw: Any, value: float, unit: str) -> None:
    every = load_recipe(base(train={"eval_every": raw})).train.eval_every
    assert (every.value, every.unit) == (value, unit)


def test_eval_every_from_set_override() -> None:
    every = load_recipe(base(), ["train.eval_every=50 steps"]).train.eval_every
    assert (every.value, every.unit) == (50.0, "steps")
    every = load_recipe(base(), ["train.eval_every=0.5"]).train.eval_every
    assert (every.value, every.unit) == (0.5, "epochs")


@pytest.mark.parametrize("raw", ["every 2 epochs", "200 batches", "steps", "1.5 hours"])
def test_eval_every_bad_string_names_key(raw: str) -> None:
    message = error_of(base(train={"eval_every": raw}))
    assert "train.eval_every" in message
    assert "'200 steps'" in message  # says what the allowed forms look like


def test_eval_every_must_be_positive() -> None:
    assert "train.eval_every.value" in error_of(base(train={"eval_every": 0}))


# --- backbone-specific keys and cross-key consistency ------------------------------------


@pytest.mark.parametrize("backbone", ["minilm", "bert-base-uncased", "/models/my-encoder"])
def test_tfidf_keys_rejected_for_transformer_backbones(backbone: str) -> None:
    message = error_of(base(model={"backbone": backbone, "C": 2.0, "analyzer": "word"}))
    assert "model.C" in message and "model.analyzer" in message
    assert "backbone: tfidf" in message


def test_tfidf_keys_rejected_for_the_default_backbone() -> None:
    assert "model.ngram_range only apply to backbone: tfidf" in \
        error_of(base(model={"ngram_range": [1, 2]}))


def test_tfidf_keys_accepted_for_tfidf() -> None:
    recipe = load_recipe(base(model={"backbone": "tfidf", "C": 2.0, "analyzer": "word",
                                     "ngram_range": [1, 2], "max_features": 500}))
    assert recipe.model.C == 2.0 and recipe.model.ngram_range == (1, 2)


def test_bad_ngram_range_rejected() -> None:
    assert "model.ngram_range must be" in error_of(base(model={"backbone": "tfidf",
                                                                 "ngram_range": [3, 1]}))


@pytest.mark.parametrize(("sections", "needle"), [
    ({"model": {"backbone": "tfidf"}, "imbalance": {"sampler": "weighted"}},
     "imbalance.sampler needs a neural backbone"),
    ({"model": {"backbone": "tfidf"}, "imbalance": {"loss": "focal"}},
     "imbalance.loss 'focal' needs a neural backbone"),
    ({"train": {"select": {"metric": "subset_accuracy"}}},
     "train.select.metric 'subset_accuracy' exists only for task: multilabel"),
    ({"data": {"train": TRAIN, "label": ["a", "b"]}}, "means task: multilabel"),
    ({"task": "multilabel"}, "task: multilabel needs data.label"),
])
def test_contradicting_keys_rejected(sections: dict[str, Any], needle: str) -> None:
    assert needle in error_of(base(**sections))


def test_text_accepts_one_or_two_columns_only() -> None:
    assert load_recipe(base(data={"train": TRAIN, "text": ["q", "a"]})).data.text_columns == \
        ["q", "a"]
    assert "data.text" in error_of(base(data={"train": TRAIN, "text": ["a", "b", "c"]}))


# --- files, paths and round trips --------------------------------------------------------


def test_relative_data_paths_resolve_against_recipe_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "project" / "recipes"
    folder.mkdir(parents=True)
    path = folder / "recipe.yaml"
    path.write_text("data:\n  train: ../data/train.csv\n  valid: valid.tsv\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    recipe = load_recipe(path)
    assert recipe.data.train == (tmp_path / "project" / "data" / "train.csv").resolve()
    assert recipe.data.valid == (folder / "valid.tsv").resolve()
    monkeypatch.chdir(tmp_path)
    assert load_recipe("project/recipes/recipe.yaml").data.train == recipe.data.train


def test_absolute_data_paths_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text(f"data:\n  train: {TRAIN}\n")
    assert load_recipe(path).data.train == Path(TRAIN)


def test_relative_override_paths_resolve_against_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A path typed with --set is a command-line path; the recipe's own stay the recipe's."""
    folder = tmp_path / "recipes"
    folder.mkdir()
    path = folder / "recipe.yaml"
    path.write_text("data:\n  train: a.csv\n  valid: v.csv\n")
    monkeypatch.chdir(tmp_path)
    recipe = load_recipe(path, ["data.train=data/b.csv", "noise.suspects=s.csv",
                                "self_training.unlabelled=u.csv"])
    assert recipe.data.train == (tmp_path / "data" / "b.csv").resolve()
    assert recipe.data.valid == (folder / "v.csv").resolve()  # written in the recipe
    assert recipe.noise.suspects == (tmp_path / "s.csv").resolve()
    assert recipe.self_training is not None
    assert recipe.self_training.unlabelled == (tmp_path / "u.csv").resolve()
    section = load_recipe(path, ["data={train: c.csv}"]).data  # a section set as a mapping
    assert section.train == (tmp_path / "c.csv").resolve()


@pytest.mark.parametrize("raw", [
    base(),
    base(name="exp", model={"backbone": "tfidf", "ngram_range": [2, 5], "C": 0.5},
         train={"eval_every": "100 steps", "early_stopping": {"patience": 2},
                "select": {"metric": "loss"}}),
    base(data={"train": TRAIN, "valid": "/data/v.jsonl", "text": ["q", "a"], "id": "uid",
               "split": {"method": "group", "valid_size": 0.3}, "group": "user"},
         model={"backbone": "/models/enc", "max_length": 64, "pooling": "mean"},
         imbalance={"class_weights": {"a": 2.0}, "loss": "focal"},
         decision={"prior_correction": "uniform"}),
    base(task="multilabel", data={"train": TRAIN, "label": "tags", "label_sep": "|"},
         decision={"thresholds": "global", "at_least_one": True}),
])
def test_to_yaml_round_trips(tmp_path: Path, raw: dict[str, Any]) -> None:
    recipe = load_recipe(raw)
    path = tmp_path / "recipe.yaml"
    path.write_text(recipe.to_yaml())
    again = load_recipe(path)
    assert again == recipe
    assert again.to_yaml() == recipe.to_yaml()


def test_to_dict_drops_tfidf_keys_for_transformers() -> None:
    assert "C" not in load_recipe(base()).to_dict()["model"]
    assert load_recipe(base(model={"backbone": "tfidf"})).to_dict()["model"]["C"] == 4.0


def test_load_recipe_accepts_a_recipe_object() -> None:
    recipe = load_recipe(base(train={"epochs": 9}))
    again = load_recipe(recipe, ["train.lr=0.01"])
    assert isinstance(again, Recipe)
    assert again.train.epochs == 9 and again.train.lr == 0.01


def test_recipe_file_errors(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="recipe file not found"):
        load_recipe(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(RecipeError, match="YAML mapping"):
        load_recipe(listed)


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text("data:\n  train: x.csv\ntrain:\n  epoch: 3\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert str(path) in str(info.value)
    assert "train.epoch: unknown key" in str(info.value)


def test_numeric_override_key_addresses_a_stage() -> None:
    base = {"data": {"train": "t.csv"},
            "train": {"stages": [{"epochs": 2, "lr": 1e-3, "trainable": "head"},
                                 {"epochs": 1, "lr": 1e-4, "trainable": "all"}]}}
    recipe = load_recipe(base, ["train.stages.0.lr=0.05", "train.stages.1.epochs=4"])
    assert recipe.train.stages is not None
    assert [(s.epochs, s.lr) for s in recipe.train.stages] == [(2, 0.05), (4, 1e-4)]


def test_override_of_a_missing_stage_names_the_valid_positions() -> None:
    base = {"data": {"train": "t.csv"},
            "train": {"stages": [{"epochs": 2, "lr": 1e-3, "trainable": "head"}]}}
    with pytest.raises(RecipeError, match=r"list of 1 items.*position 0-0"):
        merge(base, parse_overrides(["train.stages.3.lr=0.1"]))
