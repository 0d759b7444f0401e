"""Hostile inputs: damaged, hand-edited or unrelated run folders.

Every damaged file gives a `RunError` naming it (exit 2 in the CLI, no traceback); `fitclass
runs` and reports carry on past a broken run; a model is never used with class names that
disagree with its own; saved TF-IDF settings and ensemble members are not trusted blindly;
the report's baseline is a run on the same data; a degenerate model is called out.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import fitclass
import fitclass.api
from fitclass.errors import RunError
from fitclass.report.build import gather, write_report
from fitclass.runs.listing import list_runs

_write_report = fitclass.api.write_report_safely


pytestmark = pytest.mark.usefixtures("no_reports")


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def copy_run(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def write(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload), encoding="utf-8")


def use_run(path: Path) -> None:
    """Everything a user does with a finished run: open it, read its metrics, predict."""
    run = fitclass.load_run(path)
    assert run.metrics
    run.predict(["a football match", "new laptop software"])



@pytest.fixture(scope="module")
def masters(tmp_path_factory: pytest.TempPathFactory, train_csv: Path, recipe_for,
            rows_maker, table_writer) -> dict[str, Path]:
    """Finished runs to copy: tfidf on the synthetic data (twice), tfidf on other data with
    the same classes, and a degenerate tfidf model (C so small it predicts the majority)."""
    root = tmp_path_factory.mktemp("masters")
    other_csv = table_writer(rows_maker(seed=5), root / "other.csv")
    runs = {"tfidf": recipe_for("tfidf", train_csv, name="tfidf"),
            "twin": recipe_for("tfidf", train_csv, name="twin"),
            "other_data": recipe_for("tfidf", other_csv, name="other"),
            "degenerate": recipe_for("tfidf", train_csv, model={"backbone": "tfidf",
                                                                "C": 1e-6})}
    for name, recipe in runs.items():
        fitclass.train(recipe, out=root / name)
    return {name: root / name for name in runs}


@pytest.fixture(scope="module")
def bert_master(tmp_path_factory: pytest.TempPathFactory, train_csv: Path,
                recipe_for) -> Path:
    out = tmp_path_factory.mktemp("bert") / "bert"
    fitclass.train(recipe_for("tiny_bert", train_csv, train={"epochs": 1}), out=out)
    return out


# --- damaged files: a RunError naming the file ---------------------------------------------

DAMAGED_FILES = ["labels.json", "status.json", "metrics.json", "decision.json",
                 "model/fitclass_model.json", "model/vocabulary.json",
                 "model/weights.safetensors"]


@pytest.mark.parametrize("name", DAMAGED_FILES)
def test_a_truncated_file_names_itself(masters: dict[str, Path], tmp_path: Path,
                                       name: str) -> None:
    run = copy_run(masters["tfidf"], tmp_path / "run")
    truncate(run / name)
    with pytest.raises(RunError) as error:
        use_run(run)
    message = str(error.value)
    assert str(run / name) in message and "damaged" in message, message
    if name.endswith(".json"):
        assert "not valid JSON (truncated at byte" in message


@pytest.mark.parametrize("name", ["model/weights.safetensors", "labels.json",
                                  "model/fitclass_model.json", "model/vocabulary.json"])
def test_a_missing_file_names_itself(masters: dict[str, Path], tmp_path: Path,
                                     name: str) -> None:
    run = copy_run(masters["tfidf"], tmp_path / "run")
    (run / name).unlink()
    with pytest.raises(RunError, match="is missing") as error:
        use_run(run)
    assert str(run / name) in str(error.value)


def test_a_truncated_validation_array_stops_the_report_clearly(masters: dict[str, Path],
                                                               tmp_path: Path) -> None:
    run = copy_run(masters["tfidf"], tmp_path / "run")
    truncate(run / "valid_probs.safetensors")
    with pytest.raises(RunError, match=r"valid_probs\.safetensors is not a readable safetensors"):
        write_report(run)


def test_cli_exits_2_on_a_damaged_run(cli_main, masters: dict[str, Path],
                                      tmp_path: Path) -> None:
    run = copy_run(masters["tfidf"], tmp_path / "run")
    truncate(run / "labels.json")
    (tmp_path / "in.csv").write_text("text\na football match\n", encoding="utf-8")
    code, _, err = cli_main("predict", run, tmp_path / "in.csv",
                          "--out", tmp_path / "preds.csv")
    assert code == 2
    assert "labels.json is not valid JSON" in err and "Traceback" not in err


@pytest.mark.parametrize(("name", "damage"), [
    ("model.safetensors", "truncate"), ("model.safetensors", "delete"),
    ("config.json", "truncate"), ("config.json", "delete")])
def test_a_damaged_transformer_names_its_file(bert_master: Path, tmp_path: Path, name: str,
                                              damage: str) -> None:
    run = copy_run(bert_master, tmp_path / "run")
    target = run / "model" / name
    if damage == "truncate":
        truncate(target)
    else:
        target.unlink()
    with pytest.raises(RunError) as error:
        use_run(run)
    message = str(error.value)
    assert str(run / "model") in message and "damaged" in message, message
    if name == "model.safetensors" or damage == "delete":
        assert str(target) in message, message


# --- labels.json against the model's own class names ----------------------------------------

def test_reversed_labels_are_refused(masters: dict[str, Path], tmp_path: Path) -> None:
    run = copy_run(masters["tfidf"], tmp_path / "run")
    labels = read(run / "labels.json")
    labels["classes"] = labels["classes"][::-1]
    write(run / "labels.json", labels)
    with pytest.raises(RunError) as error:
        fitclass.load_run(run)
    message = str(error.value)
    assert str(run / "labels.json") in message
    assert "['tech', 'sports', 'food']" in message and "['food', 'sports', 'tech']" in message


def test_reversed_labels_of_a_transformer_are_refused(bert_master: Path,
                                                      tmp_path: Path) -> None:
    run = copy_run(bert_master, tmp_path / "run")
    labels = read(run / "labels.json")
    labels["classes"] = labels["classes"][::-1]
    write(run / "labels.json", labels)
    with pytest.raises(RunError, match="mislabelled"):
        fitclass.load_run(run)


# --- saved TF-IDF settings are an allow-list --------------------------------------------------

@pytest.mark.parametrize(("key", "value"), [
    ("input", "filename"), ("analyzer", "callable"), ("ngram_range", [1, 1000]),
    ("max_features", -1), ("lowercase", "yes"), ("preprocessor", None)])
def test_crafted_vectorizer_settings_are_refused(masters: dict[str, Path], tmp_path: Path,
                                                 key: str, value: Any) -> None:
    run = copy_run(masters["tfidf"], tmp_path / "run")
    info_path = run / "model" / "fitclass_model.json"
    info = read(info_path)
    info["vectorizer"][key] = value
    write(info_path, info)
    secret = tmp_path / "secret.txt"
    secret.write_text("football football football", encoding="utf-8")
    with pytest.raises(RunError) as error:
        fitclass.load_run(run).predict([str(secret)])
    message = str(error.value)
    assert str(info_path) in message and key in message, message


# --- ensembles that contain themselves ------------------------------------------------------

@pytest.fixture(scope="module")
def ensembles(masters: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
              ) -> dict[str, Path]:
    """pair = ensemble(tfidf, twin); nested = ensemble(pair, tfidf)."""
    root = tmp_path_factory.mktemp("ensembles")
    first = copy_run(masters["tfidf"], root / "first")
    second = copy_run(masters["twin"], root / "second")
    pair = fitclass.ensemble([first, second], root / "pair", method="mean")
    nested = fitclass.ensemble([pair.path, first], root / "nested", method="mean")
    return {"first": first, "second": second, "pair": pair.path, "nested": nested.path}


def add_member(ensemble: Path, member: Path) -> None:
    info_path = ensemble / "model" / "fitclass_model.json"
    info = read(info_path)
    info["members"].append({"relative": f"../{member.name}", "absolute": str(member)})
    info["combiner"]["weights"].append(0.0)
    write(info_path, info)


def test_an_ensemble_naming_itself_is_refused(ensembles: dict[str, Path],
                                              tmp_path: Path) -> None:
    pair = copy_run(ensembles["pair"], tmp_path / "pair")
    for name in ("first", "second"):
        copy_run(ensembles[name], tmp_path / name)
    add_member(pair, pair)
    with pytest.raises(RunError, match="ensemble cycle") as error:
        use_run(pair)
    assert f"{pair.resolve()} -> {pair.resolve()}" in str(error.value)


def test_an_ensemble_cycle_is_refused(ensembles: dict[str, Path], tmp_path: Path) -> None:
    for name in ("first", "second", "pair", "nested"):
        copy_run(ensembles[name], tmp_path / name)
    add_member(tmp_path / "pair", tmp_path / "nested")  # pair -> nested -> pair
    with pytest.raises(RunError, match="ensemble cycle") as error:
        use_run(tmp_path / "nested")
    assert "pair" in str(error.value) and "nested" in str(error.value)
    statuses = {Path(row["run"]).name: row["status"] for row in list_runs(tmp_path)}
    assert statuses["first"] == "finished"
    assert statuses["pair"].startswith("broken: ensemble cycle")


def test_ensemble_refuses_an_out_folder_among_its_members(ensembles: dict[str, Path]) -> None:
    first = ensembles["first"]
    with pytest.raises(RunError, match="is a member of this ensemble"):
        fitclass.ensemble([first, ensembles["second"]], first, overwrite=True)
    with pytest.raises(RunError, match="is a member of this ensemble"):  # through `pair`
        fitclass.ensemble([ensembles["pair"], ensembles["second"]], first, overwrite=True)
    assert read(first / "status.json")["status"] == "finished"  # nothing was deleted
    fitclass.load_run(first)


# --- listings and reports carry on past a broken run ---------------------------------------

def test_runs_lists_healthy_runs_and_marks_a_broken_one(cli_main, masters: dict[str, Path],
                                                        tmp_path: Path) -> None:
    good = copy_run(masters["tfidf"], tmp_path / "runs" / "good")
    for name, damage in [("labels", "labels.json"), ("status", "status.json"),
                         ("weights", "model/weights.safetensors")]:
        truncate(copy_run(masters["tfidf"], tmp_path / "runs" / name) / damage)
    rows = {Path(row["run"]).name: row for row in list_runs(tmp_path / "runs")}
    assert rows["good"]["status"] == "finished" and rows["good"]["macro_f1"] is not None
    assert rows["labels"]["status"].startswith("broken: ")
    assert "labels.json is not valid JSON" in rows["labels"]["status"]
    assert "status.json" in rows["status"]["status"]
    assert "weights.safetensors" in rows["weights"]["status"]
    code, out, err = cli_main("runs", tmp_path / "runs", "--json")
    assert code == 0, err
    assert {Path(r["run"]).name for r in json.loads(out)} == {"good", "labels", "status",
                                                             "weights"}
    assert good.is_dir()


def test_a_broken_sibling_does_not_stop_a_report(masters: dict[str, Path],
                                                 tmp_path: Path) -> None:
    run = copy_run(masters["tfidf"], tmp_path / "a")
    truncate(copy_run(masters["twin"], tmp_path / "b") / "labels.json")
    truncate(copy_run(masters["twin"], tmp_path / "c") / "recipe.yaml", 0.3)
    (copy_run(masters["twin"], tmp_path / "d") / "status.json").write_text("{", "utf-8")
    assert write_report(run).is_file()


# --- the TF-IDF baseline is a run on the same data -------------------------------------------

def test_baseline_is_a_tfidf_run_on_the_same_data(masters: dict[str, Path],
                                                  tmp_path: Path) -> None:
    run = copy_run(masters["tfidf"], tmp_path / "a")
    copy_run(masters["other_data"], tmp_path / "other")  # same classes, other rows
    assert gather(run)["baselines"]["TF-IDF run"] is None
    twin = copy_run(masters["twin"], tmp_path / "twin")
    baseline = gather(run)["baselines"]["TF-IDF run"]
    assert baseline is not None and baseline["path"] == str(twin)
    assert baseline["macro_f1"] == read(twin / "metrics.json")["macro_f1"]


def test_fingerprint_depends_on_data_not_on_the_model(masters: dict[str, Path]) -> None:
    fingerprints = {name: read(path / "labels.json")["data_fingerprint"]
                    for name, path in masters.items()}
    assert fingerprints["tfidf"].startswith("sha256:")
    assert fingerprints["tfidf"] == fingerprints["twin"] == fingerprints["degenerate"]
    assert fingerprints["other_data"] != fingerprints["tfidf"]


def test_a_sibling_without_fingerprint_or_tfidf_backbone_is_no_baseline(
        masters: dict[str, Path], tmp_path: Path) -> None:
    run = copy_run(masters["tfidf"], tmp_path / "a")
    old = copy_run(masters["twin"], tmp_path / "old")
    labels = read(old / "labels.json")
    del labels["data_fingerprint"]
    write(old / "labels.json", labels)
    # a recipe that only mentions "backbone: tfidf" in its name is not a TF-IDF run
    named = copy_run(masters["twin"], tmp_path / "named")
    recipe = (named / "recipe.yaml").read_text(encoding="utf-8")
    (named / "recipe.yaml").write_text(
        recipe.replace("  backbone: tfidf", "  backbone: some-model")
        .replace("name: twin", "name: 'backbone: tfidf'"), encoding="utf-8")
    assert "backbone: tfidf" in (named / "recipe.yaml").read_text(encoding="utf-8")
    assert gather(run)["baselines"]["TF-IDF run"] is None


# --- degenerate models are called out ------------------------------------------------------

def test_a_degenerate_model_is_flagged(masters: dict[str, Path], tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    from fitclass.cli import print_summary

    run = copy_run(masters["degenerate"], tmp_path / "degenerate")
    warnings = read(run / "metrics.json")["warnings"]
    assert len(warnings) == 1 and "predicts 'sports' for all 30 validation rows" in warnings[0]
    assert read(masters["tfidf"] / "metrics.json")["warnings"] == []
    capsys.readouterr()
    print_summary(fitclass.load_run(run))
    assert "warning: the model predicts 'sports'" in capsys.readouterr().err
    html = write_report(run).read_text(encoding="utf-8")
    assert '<section id="warnings"' in html and "predicts &#39;sports&#39; for all" in html
    healthy = write_report(copy_run(masters["tfidf"], tmp_path / "healthy"))
    assert '<section id="warnings"' not in healthy.read_text(encoding="utf-8")
