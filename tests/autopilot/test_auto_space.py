"""`fitclass auto`'s search space: each finding's remedy is searched, on the backbones that
honour it; a script mismatch keeps the English encoder out."""

from __future__ import annotations

from typing import Any

import pytest

from fitclass.autopilot.budget import (
    REFIT_FOLDS,
    finish_seconds,
    members_that_fit,
    parse_time,
    refit_seconds,
    refuse_if_too_small,
    reserve_seconds,
)
from fitclass.autopilot.space import candidate_backbones, choose_space, trial_keys
from fitclass.diagnosis import Diagnosis, Finding
from fitclass.errors import FitclassError
from fitclass.recipe import build_recipe


def finding(code: str, regime: str | None = None, recipe: dict[str, Any] | None = None,
            severity: str = "warning") -> Finding:
    return Finding(code, severity, code, {}, f"remedy for {code}", f"why {code}",  # type: ignore[arg-type]
                   recipe or {}, regime)  # type: ignore[arg-type]


def diagnosis(*findings: Finding, classes: int = 3) -> Diagnosis:
    counts = {f"c{i}": 50 // (i + 1) for i in range(classes)}
    recipe = {"task": "multiclass", "name": "planted-doctor",
              "data": {"train": "/tmp/planted.csv", "text": "text", "label": "label"},
              "model": {"backbone": "minilm"}}
    return Diagnosis("/tmp/planted.csv", "multiclass", sum(counts.values()), counts,
                     list(findings), recipe, "minilm")


LONG_TAIL = finding("imbalance", "long_tail", {"imbalance.class_weights": "inverse"})
NOISY = finding("label_noise", "noisy", {"noise.bootstrap": {"mode": "soft", "beta": 0.2}})
MISMATCH = finding("script_mismatch", "script_mismatch", {"model.backbone": "tfidf"})


def test_long_tail_searches_class_weights_and_a_macro_f1_decision() -> None:
    space = choose_space(diagnosis(LONG_TAIL), ["tfidf", "minilm"], "good")
    params = space.params("tfidf")
    assert params["imbalance.class_weights"]["categorical"] == ["none", "sqrt_inverse",
                                                                 "inverse"]
    assert params["decision.optimize"]["categorical"] == ["none", "macro_f1"]
    assert space.metric == "macro_f1"
    assert set(space.remedies()["imbalance"]) == {"imbalance.class_weights",
                                                   "decision.optimize"}


def test_noise_searches_robust_losses_on_neural_and_a_stronger_prior_on_tfidf() -> None:
    space = choose_space(diagnosis(NOISY), ["tfidf", "minilm"], "good")
    neural = space.params("minilm")
    assert neural["noise.bootstrap"]["categorical"][1] == {"mode": "soft", "beta": 0.2}
    assert "noise.label_smoothing" in neural
    assert "noise.bootstrap" not in space.params("tfidf")  # TF-IDF refuses robust losses
    assert space.params("tfidf")["model.C"]["loguniform"][0] < 0.25
    assert set(space.remedies()["label_noise"]) >= {"noise.bootstrap", "model.C"}
    binary = choose_space(diagnosis(NOISY, classes=2), ["tfidf", "minilm"], "good")
    assert "noise.coteaching" in binary.params("minilm")


def test_script_mismatch_keeps_the_english_encoder_out_unless_named() -> None:
    found = diagnosis(MISMATCH)
    assert candidate_backbones(found, [], "good") == ["tfidf"]
    assert candidate_backbones(found, ["klue/roberta-small"], "good") == [
        "tfidf", "klue/roberta-small"]
    assert candidate_backbones(diagnosis(), [], "good") == ["tfidf", "minilm"]
    assert candidate_backbones(diagnosis(), [], "fast") == ["tfidf"]


def test_every_trial_recipe_of_the_space_validates() -> None:
    space = choose_space(diagnosis(LONG_TAIL, NOISY, finding("few_rows",
                                                             "very_few_rows_per_class")),
                         ["tfidf", "minilm"], "good")
    for backbone in space.backbones:
        values = {key: (spec["categorical"][-1] if "categorical" in spec
                        else next(iter(spec.values()))[0])
                  for key, spec in space.params(backbone).items()}
        recipe = build_recipe(trial_keys(space, backbone, values))
        assert recipe.model.backbone == backbone
    probe = space.params("minilm")["train.stages"]["categorical"][1]
    assert probe[0]["trainable"] == "head"
    assert space.defaults("tfidf") == {"model.backbone": "tfidf", "model.C": 4.0,
                                       "model.analyzer": "char_wb",
                                       "imbalance.class_weights": "none",
                                       "decision.optimize": "none"}


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("30m", 1800), ("1h", 3600),
                                          ("1h30m", 5400), ("45", 45), (" 2M ", 120)])
def test_parse_time(text: str, seconds: float) -> None:
    assert parse_time(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "30 minutes", "1d", "0s", "-5m", "m30"])
def test_bad_time_is_refused_with_the_formats(text: str) -> None:
    with pytest.raises(FitclassError, match=r"--time .*90s, 30m, 1h|more than 0"):
        parse_time(text)


def test_the_finish_takes_the_members_the_time_left_allows() -> None:
    assert members_that_fit(finish_seconds(3) + 0.1, 5) == (3, False)
    assert members_that_fit(finish_seconds(8) * 2, 5) == (5, False)
    assert members_that_fit(1.0, 5) == (1, False)


def test_best_keeps_back_each_members_refit_or_skips_the_refit_when_none_fits() -> None:
    trial_s = 4.0
    each = refit_seconds(trial_s)
    assert each >= (REFIT_FOLDS + 1) * trial_s  # K fold runs and the refit
    assert members_that_fit(finish_seconds(2, each) + 0.1, 8, each) == (2, True)
    assert members_that_fit(finish_seconds(1, each) + 0.1, 8, each) == (1, True)
    # not even one refit fits: the members the time allows, without a refit
    assert members_that_fit(finish_seconds(3) + 0.1, 8, each) == (3, False)
    plenty = 10 * finish_seconds(1, each)
    assert reserve_seconds(1, each, plenty) == finish_seconds(1, each)
    assert reserve_seconds(1, each, plenty) > reserve_seconds(1, None, plenty)
    assert reserve_seconds(0, each, plenty) == finish_seconds(1)  # the first trial must fit
    # a refit that no longer fits keeps nothing back for itself: the search goes on
    assert reserve_seconds(1, each, finish_seconds(1, each) - 1) == finish_seconds(2)


def test_a_budget_below_one_cheapest_run_is_refused_naming_what_would_do() -> None:
    with pytest.raises(FitclassError, match=r"too small to fit even one run of the cheapest "
                                            r"member \(tfidf.*give --time 1m or more"):
        refuse_if_too_small(5.0, 3.0, 4.0, 120)
    refuse_if_too_small(60.0, 3.0, 4.0, 120)  # fits: no error
