"""The audit's combined ranking and outlier check on arrays with known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import softmax

from fitclass.data.table import TextTable
from fitclass.errors import FitclassError
from fitclass.noise import scoring
from fitclass.noise.outliers import knn_outliers, outliers_of
from fitclass.noise.proxies import parse_proxies
from fitclass.noise.ranking import (
    SUSPECT_COLUMNS,
    is_suspects_header,
    mixture_weights,
    rank_suspects,
)
from fitclass.recipe import load_recipe
from fitclass.target_kinds import KINDS

MULTICLASS = KINDS["multiclass"]
CLASSES = ["a", "b", "c"]


def _planted(rows: int = 900, seed: int = 0) -> dict[str, np.ndarray]:
    """True classes, given labels with 10% flipped, two proxies' probabilities and mean
    margins: each source sees the true class through its own independent noise."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, rows)
    given = truth.copy()
    flipped = rng.choice(rows, rows // 10, replace=False)
    given[flipped] = (truth[flipped] + rng.integers(1, 3, len(flipped))) % 3

    def proxy() -> np.ndarray:
        return softmax(2.0 * np.eye(3)[truth] + rng.normal(0, 1.6, (rows, 3)), axis=1)

    margins = np.where(given == truth, 1.0, -1.0) + rng.normal(0, 1.6, rows)
    return {"truth": truth, "given": given, "flipped": flipped, "tfidf": proxy(),
            "linear_probe": proxy(), "margins": margins}


def _table(given: np.ndarray) -> TextTable:
    ids = [str(i) for i in range(len(given))]
    return TextTable(source="synthetic", frame=pd.DataFrame({"id": ids}),
                     texts=[f"row {i}" for i in ids], labels=[CLASSES[g] for g in given],
                     ids=ids)


def _hits(order: np.ndarray, flipped: np.ndarray) -> int:
    return len(set(order[:len(flipped)].tolist()) & set(flipped.tolist()))


def test_combined_ranking_beats_each_component() -> None:
    case = _planted()
    given, flipped = case["given"], case["flipped"]
    probs = {"tfidf": case["tfidf"], "linear_probe": case["linear_probe"]}
    margins = {str(i): float(m) for i, m in enumerate(case["margins"])}
    ranking = rank_suspects(_table(given), CLASSES, given, MULTICLASS, probs, margins, None)
    combined = _hits(ranking.suspects["id"].astype(int).to_numpy(), flipped)
    components = {name: _hits(np.argsort(-scoring.label_score(given, MULTICLASS, p)), flipped)
                  for name, p in probs.items()}
    components["aum"] = _hits(np.argsort(-scoring.margin_score(case["margins"])), flipped)
    assert combined > max(components.values()), (combined, components)
    # equally informative proxies share the mixture; each keeps its own score column
    assert ranking.weights["tfidf"] == pytest.approx(0.5, abs=0.15)
    assert list(ranking.suspects.columns) == [*SUSPECT_COLUMNS, "score_tfidf",
                                              "score_linear_probe", "score_aum"]
    row = ranking.suspects.iloc[0]
    assert row["score"] == pytest.approx((1 - ranking.probs[int(row["id"]), given[int(row["id"])]]
                                          + row["score_aum"]) / 2, abs=1e-5)


def test_mixture_weights_favour_the_informative_proxy() -> None:
    case = _planted()
    uniform = np.full_like(case["tfidf"], 1 / 3)  # a proxy that knows nothing
    weights = mixture_weights([case["tfidf"], uniform], case["given"], MULTICLASS)
    assert weights.sum() == pytest.approx(1.0)
    assert weights[0] > 0.7  # the rest: smoothing that softens confident mistakes


def test_outlier_score_ranks_off_topic_row_first() -> None:
    rng = np.random.default_rng(1)
    centres = rng.normal(0, 1, (3, 32))
    classes = rng.integers(0, 3, 300)
    features = centres[classes] + rng.normal(0, 0.3, (300, 32))
    features[17] = rng.normal(0, 1, 32)  # off-topic: near no class centre
    found = knn_outliers(features, classes)
    assert int(np.argmax(found.score)) == 17
    assert found.flagged[17] and found.flagged.sum() <= 3


def test_outliers_on_tfidf_vectors_find_a_foreign_text(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    words = {"sports": ["goal", "match", "team", "score", "league", "coach"],
             "tech": ["laptop", "software", "chip", "server", "update", "screen"]}
    labels = [str(rng.choice(list(words))) for _ in range(120)]
    texts = [" ".join(rng.choice(words[label], 4)) for label in labels]
    texts[40] = "영화 정말 재미있었어요 최고"  # another language, another topic
    recipe = load_recipe({"data": {"train": str(tmp_path / "t.csv")},
                          "model": {"backbone": "tfidf"}})
    table = TextTable(source="t", frame=pd.DataFrame(), texts=texts, labels=labels,
                      ids=[str(i) for i in range(120)])
    targets = np.array([list(words).index(label) for label in labels])
    found = outliers_of(recipe, table, targets, None)
    assert found is not None and found.features == "tfidf vectors"
    assert int(np.argmax(found.score)) == 40 and found.flagged[40]


def test_suspects_header_accepts_older_and_newer_tables() -> None:
    assert is_suspects_header(SUSPECT_COLUMNS)  # written before the score_ columns
    assert is_suspects_header([*SUSPECT_COLUMNS, "score_tfidf", "score_outlier"])
    assert not is_suspects_header([*SUSPECT_COLUMNS, "notes"])
    assert not is_suspects_header(["id", "text"])


def test_bad_proxy_names_the_option_and_choices(tmp_path: Path) -> None:
    recipe = load_recipe({"data": {"train": str(tmp_path / "t.csv")},
                          "model": {"backbone": "tfidf"}})
    with pytest.raises(FitclassError, match=r"--proxy 'tfidf,bret'.*tfidf, linear_probe, "
                                            r"model.*\['bret'\]"):
        parse_proxies("tfidf,bret", recipe)
    assert parse_proxies(None, recipe) == ["tfidf"]  # auto on a TF-IDF recipe
    assert parse_proxies(" linear_probe , tfidf,tfidf", recipe) == ["linear_probe", "tfidf"]
    assert parse_proxies(["model"], recipe) == ["model"]


def test_audit_is_public() -> None:
    import fitclass
    from fitclass.noise.audit import audit

    assert fitclass.audit is audit


def test_noise_action_skips_rows_listed_only_as_outliers(tmp_path: Path) -> None:
    from fitclass.noise.actions import read_suspects

    path = tmp_path / "suspects.csv"
    pd.DataFrame({"id": ["1", "2", "3"], "text": ["x", "y", "z"], "given_label": ["a"] * 3,
                  "suggested_label": ["b"] * 3, "score": [0.9, 0.8, 0.7],
                  "methods": ["confident_learning", "outlier", "confident_learning+outlier"],
                  "score_outlier": [0.0, 5.0, 4.0]}).to_csv(path, index=False)
    assert read_suspects(path, 0.5)["id"].tolist() == ["1", "3"]


def test_outlier_check_row_names_its_own_fix(tmp_path: Path) -> None:
    from fitclass.noise.findings import suspect_rows

    frame = pd.DataFrame({"id": ["1", "2"], "text": ["x", "y"], "given_label": ["a", "a"],
                          "suggested_label": ["b", "b"], "score": [0.9, 0.1],
                          "methods": ["confident_learning", "outlier"]})
    rows = {row.check: row for row in suspect_rows(frame, tmp_path / "s.csv")}
    assert "method outlier" in rows["suspects:outlier"].fix
    assert "noise.action" in rows["suspects:confident_learning"].fix
