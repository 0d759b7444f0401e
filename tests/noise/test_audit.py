"""`fitclass audit`: out-of-fold suspects on a dataset with planted label flips."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

import fitclass.api
from fitclass.errors import FitclassError
from fitclass.noise.audit import audit

CLASSES = ["food", "sports", "tech"]
COLUMNS = ["id", "text", "given_label", "suggested_label", "score", "methods"]
#: The per-method score columns of a tfidf audit: the proxy's own label score and the
#: outlier z-score (on TF-IDF vectors).
TFIDF_COLUMNS = [*COLUMNS, "score_tfidf", "score_outlier"]


pytestmark = pytest.mark.usefixtures("no_reports")


def _flip(label: str) -> str:
    return CLASSES[(CLASSES.index(label) + 1) % len(CLASSES)]


@pytest.fixture(scope="module")
def noisy(tmp_path_factory: pytest.TempPathFactory, rows_maker, table_writer) -> dict[str, Any]:
    """150 separable rows (50 per class) with 10 flipped labels, plus one text that occurs
    four times, once with a conflicting label (id dup-odd)."""
    rows = rows_maker({"sports": 50, "tech": 50, "food": 50}, seed=2, words=3)
    flipped = {}
    for row in rows[:10]:
        flipped[row["id"]] = row["label"]
        row["label"] = _flip(row["label"])
    source = rows[40]
    odd = _flip(source["label"])
    rows += [{"id": "dup-1", "text": source["text"], "label": source["label"]},
             {"id": "dup-2", "text": source["text"].upper(), "label": source["label"]},
             {"id": "dup-odd", "text": source["text"], "label": odd}]
    folder = tmp_path_factory.mktemp("audit")
    path = table_writer(rows, folder / "train.csv")
    return {"folder": folder, "train": path, "flipped": flipped, "rows": rows,
            "dup_majority": source["label"], "dup_odd": odd}


@pytest.fixture(scope="module")
def tfidf_recipe(noisy: dict[str, Any], recipe_for) -> dict[str, Any]:
    return recipe_for("tfidf", noisy["train"])


@pytest.fixture(scope="module")
def tfidf_audit(noisy: dict[str, Any], tfidf_recipe: dict[str, Any]) -> dict[str, Any]:
    out = noisy["folder"] / "suspects.csv"
    result = audit(tfidf_recipe, out, folds=3, proxy="tfidf")
    return {"result": result, "out": out}


def test_flags_most_planted_flips(noisy: dict[str, Any], tfidf_audit: dict[str, Any]) -> None:
    suspects = tfidf_audit["result"].suspects
    flagged = set(suspects["id"])
    planted = set(noisy["flipped"])
    hits = flagged & planted
    assert len(hits) / len(planted) >= 0.7
    # the duplicate conflict is a true finding too; everything else is a false alarm
    precision = len(flagged & (planted | {"dup-odd"})) / len(flagged)
    assert precision >= 0.6
    by_id = suspects.set_index("id")
    right = [i for i in hits if by_id.loc[i, "suggested_label"] == noisy["flipped"][i]]
    assert len(right) >= 0.8 * len(hits)
    for row_id in hits:
        assert by_id.loc[row_id, "given_label"] == _flip(noisy["flipped"][row_id])
        assert "confident_learning" in by_id.loc[row_id, "methods"]


def test_suspects_csv_layout(noisy: dict[str, Any], tfidf_audit: dict[str, Any]) -> None:
    frame = pd.read_csv(tfidf_audit["out"], dtype={"id": str}, keep_default_na=False)
    assert list(frame.columns) == TFIDF_COLUMNS
    # one proxy: the ranking's score is that proxy's own label score
    assert frame["score"].tolist() == pytest.approx(frame["score_tfidf"].tolist(), abs=1e-6)
    assert len(frame) == len(tfidf_audit["result"].suspects) > 0
    scores = frame["score"].tolist()
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    texts = {row["id"]: row["text"] for row in noisy["rows"]}
    labels = {row["id"]: row["label"] for row in noisy["rows"]}
    for _, row in frame.iterrows():
        assert row["text"] == texts[row["id"]]
        assert row["given_label"] == labels[row["id"]]
        assert row["suggested_label"] in CLASSES
        assert row["suggested_label"] != row["given_label"]


def test_summary_json(noisy: dict[str, Any], tfidf_audit: dict[str, Any]) -> None:
    path = noisy["folder"] / "suspects_summary.json"
    summary = json.loads(path.read_text())
    assert set(summary["estimated_noise_rate"]) == set(CLASSES)
    assert all(0.0 <= v <= 1.0 for v in summary["estimated_noise_rate"].values())
    assert 0.0 < summary["estimated_noisy_share"] < 0.3
    assert summary["rows"] == len(noisy["rows"])
    assert summary["suspects"] == len(tfidf_audit["result"].suspects)
    assert summary["folds"] == 3 and summary["proxy"] == "tfidf"
    assert "confident_learning" in summary["methods"]
    assert "duplicate_conflict" in summary["methods"]
    assert summary["proxy_weights"] == {"tfidf": 1.0}
    assert summary["outliers"]["features"] == "tfidf vectors"
    assert summary["outliers"]["flagged"] == sum(
        "outlier" in m.split("+") for m in tfidf_audit["result"].suspects["methods"])
    probs = tfidf_audit["result"].oof_probs
    assert probs.shape == (len(noisy["rows"]), 3)
    assert probs.sum(1) == pytest.approx(1.0, abs=1e-6)


def test_conflicting_duplicate_flagged(noisy: dict[str, Any],
                                       tfidf_audit: dict[str, Any]) -> None:
    by_id = tfidf_audit["result"].suspects.set_index("id")
    assert "duplicate_conflict" in by_id.loc["dup-odd", "methods"].split("+")
    assert by_id.loc["dup-odd", "given_label"] == noisy["dup_odd"]
    assert by_id.loc["dup-odd", "suggested_label"] == noisy["dup_majority"]
    # rows holding the majority label are not duplicate conflicts
    for row_id in ("dup-1", "dup-2"):
        if row_id in by_id.index:
            assert "duplicate_conflict" not in by_id.loc[row_id, "methods"]


def test_fold_runs_are_reused(noisy: dict[str, Any], tfidf_recipe: dict[str, Any],
                              tfidf_audit: dict[str, Any],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    folds = noisy["folder"] / "suspects_folds"
    statuses = sorted(folds.glob("tfidf-fold-*/run/status.json"))
    assert len(statuses) == 3
    assert all(json.loads(p.read_text())["status"] == "finished" for p in statuses)
    before = [p.stat().st_mtime_ns for p in statuses]

    def no_training(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a finished fold run was trained again")

    monkeypatch.setattr(fitclass.api, "train", no_training)
    again = audit(tfidf_recipe, noisy["folder"] / "suspects.csv", folds=3, proxy="tfidf")
    assert [p.stat().st_mtime_ns for p in statuses] == before
    pd.testing.assert_frame_equal(again.suspects, tfidf_audit["result"].suspects)


def test_linear_probe_proxy_caches_features(noisy: dict[str, Any], recipe_for,
                                            tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from fitclass.models.text import TransformerClassifier

    cache = tmp_path / "cache"
    monkeypatch.setenv("FITCLASS_CACHE", str(cache))
    recipe = recipe_for("tiny_bert", noisy["train"])
    first = audit(recipe, tmp_path / "probe.csv", folds=3, proxy="linear_probe")
    files = list(cache.glob("*.safetensors"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    assert first.oof_probs.shape == (len(noisy["rows"]), 3)
    assert first.oof_probs.sum(1) == pytest.approx(1.0, abs=1e-6)
    summary = json.loads((tmp_path / "probe_summary.json").read_text())
    assert summary["proxy"] == "linear_probe"
    assert list(pd.read_csv(tmp_path / "probe.csv").columns) == [
        *COLUMNS, "score_linear_probe", "score_outlier"]
    assert summary["outliers"]["features"] == "linear_probe features"
    # no fold runs: the probe fits logistic regressions on cached features
    assert not (tmp_path / "probe_folds").exists()

    def no_encoding(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("cached features were computed again")

    monkeypatch.setattr(TransformerClassifier, "encode", no_encoding)
    second = audit(recipe, tmp_path / "probe2.csv", folds=3, proxy="linear_probe")
    assert list(cache.glob("*.safetensors")) == files
    assert files[0].stat().st_mtime_ns == stamp
    assert second.oof_probs == pytest.approx(first.oof_probs, abs=1e-6)


def test_linear_probe_needs_a_transformer(noisy: dict[str, Any], tfidf_recipe: dict[str, Any],
                                         tmp_path: Path) -> None:
    with pytest.raises(FitclassError, match="transformer"):
        audit(tfidf_recipe, tmp_path / "s.csv", folds=3, proxy="linear_probe")


@pytest.mark.parametrize(("options", "message"), [
    ({"proxy": "bert"}, "proxy"),
    ({"proxy": "tfidf,bert"}, r"--proxy 'tfidf,bert'.*tfidf, linear_probe, model.*\['bert'\]"),
    ({"proxy": "auto,tfidf"}, r"--proxy.*'auto' or a comma list"),
    ({"proxy": "tfidf", "folds": 1}, "folds"),
])
def test_bad_options_refused(tfidf_recipe: dict[str, Any], tmp_path: Path,
                             options: dict[str, Any], message: str) -> None:
    with pytest.raises(FitclassError, match=message):
        audit(tfidf_recipe, tmp_path / "s.csv", **options)
    assert not (tmp_path / "s.csv").exists()


def test_cli_audit_prints_out_path(noisy: dict[str, Any], tfidf_recipe: dict[str, Any],
                                   tmp_path: Path) -> None:
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(tfidf_recipe))
    out = tmp_path / "cli_suspects.csv"
    script = Path(sys.executable).parent / "fitclass"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "COLUMNS": "200"}
    done = subprocess.run([str(script), "audit", str(recipe_path), "--out", str(out),
                           "--folds", "3", "--proxy", "tfidf",
                           # the fixture's finished fold runs: the CLI reuses them
                           "--work-dir", str(noisy["folder"] / "suspects_folds")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(out)
    assert out.is_file() and (tmp_path / "cli_suspects_summary.json").is_file()
    assert not (tmp_path / "cli_suspects_folds").exists()
    assert "suspects of" in done.stderr
    frame = pd.read_csv(out, dtype={"id": str})
    assert list(frame.columns) == TFIDF_COLUMNS
    assert "dup-odd" in set(frame["id"])



def test_cli_audit_comma_proxies_write_each_score(noisy: dict[str, Any],
                                                  tfidf_recipe: dict[str, Any],
                                                  tmp_path: Path) -> None:
    """`--proxy tfidf,model`: two proxies' probabilities mixed, one score column each."""
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(tfidf_recipe))
    out = tmp_path / "both.csv"
    script = Path(sys.executable).parent / "fitclass"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "COLUMNS": "200"}
    done = subprocess.run([str(script), "audit", str(recipe_path), "--out", str(out),
                           "--folds", "3", "--proxy", "tfidf,model"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    frame = pd.read_csv(out, dtype={"id": str})
    assert list(frame.columns) == [*COLUMNS, "score_tfidf", "score_model", "score_outlier"]
    assert frame[["score_tfidf", "score_model"]].notna().all().all()
    summary = json.loads((tmp_path / "both_summary.json").read_text())
    assert summary["proxy"] == "tfidf,model"
    assert set(summary["proxy_weights"]) == {"tfidf", "model"}
    assert sum(summary["proxy_weights"].values()) == pytest.approx(1.0, abs=1e-3)
    folds = tmp_path / "both_folds"
    assert sorted(p.name for p in folds.iterdir() if p.is_dir()) == [
        "fold-0", "fold-1", "fold-2", "tfidf-fold-0", "tfidf-fold-1", "tfidf-fold-2"]
    # a suspects table of an older version (no score_ columns) may be replaced
    out.write_text(",".join(COLUMNS) + "\n")
    again = audit(tfidf_recipe, out, folds=3, proxy="tfidf", work_dir=folds)
    assert len(again.suspects) > 0


def test_model_and_probe_proxies_add_training_dynamics(noisy: dict[str, Any], recipe_for,
                                                      tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Neural fold runs of the recipe's model give the AUM evidence beside the probe."""
    monkeypatch.setenv("FITCLASS_CACHE", str(tmp_path / "cache"))
    recipe = recipe_for("tiny_bert", noisy["train"], train={"epochs": 2})
    result = audit(recipe, tmp_path / "s.csv", folds=2, proxy="model,linear_probe")
    columns = list(pd.read_csv(tmp_path / "s.csv").columns)
    assert columns == [*COLUMNS, "score_model", "score_linear_probe", "score_aum",
                       "score_outlier"]
    assert set(result.proxy_probs) == {"model", "linear_probe"}
    assert result.summary["outliers"]["features"] == "linear_probe features"
    suspects, weights = result.suspects, result.summary["proxy_weights"]
    assert len(suspects) > 0 and sum(weights.values()) == pytest.approx(1.0, abs=1e-3)
    # score: the mixture's 1 - P(given label) (= the weighted proxy scores), mean with AUM
    mixed = (weights["model"] * suspects["score_model"]
             + weights["linear_probe"] * suspects["score_linear_probe"])
    expected = ((mixed + suspects["score_aum"]) / 2).tolist()
    assert suspects["score"].tolist() == pytest.approx(expected, abs=1e-3)
