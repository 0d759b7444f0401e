"""Recipe keys of packed and token-budget batches: `train.packing`, `train.batch_tokens`."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from fitclass.errors import RecipeError
from fitclass.recipe import load_recipe

TRAIN = "/data/train.csv"


def base(**sections: Any) -> dict[str, Any]:
    return {"data": {"train": TRAIN}, **sections}


def error_of(raw: dict[str, Any], overrides: list[str] | None = None) -> str:
    with pytest.raises(RecipeError) as info:
        load_recipe(raw, overrides)
    return str(info.value)


def test_defaults() -> None:
    train = load_recipe(base()).train
    assert (train.packing, train.batch_tokens) == ("off", None)


@pytest.mark.parametrize(("written", "value"), [("on", "on"), ("off", "off"),
                                                ("auto", "auto"), ("'on'", "on")])
def test_yaml_on_and_off_are_settings_not_booleans(written: str, value: str) -> None:
    raw = base(train=yaml.safe_load(f"packing: {written}"))
    assert load_recipe(raw).train.packing == value
    assert load_recipe(base(), [f"train.packing={written}"]).train.packing == value


def test_a_bad_packing_value_names_the_key_and_the_choices() -> None:
    message = error_of(base(train={"packing": "always"}))
    assert "train.packing: Input should be 'auto', 'on' or 'off' (got 'always')" in message


def test_a_bad_batch_tokens_value_names_the_key() -> None:
    assert "train.batch_tokens: Input should be greater than or equal to 8 (got 0)" in (
        error_of(base(train={"batch_tokens": 0})))


def test_batch_tokens_must_hold_one_longest_row() -> None:
    message = error_of(base(model={"max_length": 100}, train={"batch_tokens": 64}))
    assert ("train.batch_tokens 64 cannot hold one row of model.max_length 100 tokens; set "
            "it to at least 104") in message
    assert load_recipe(base(model={"max_length": 100}, train={"batch_tokens": 104}))


def test_batch_tokens_refuses_a_row_sampler() -> None:
    message = error_of(base(train={"batch_tokens": 4096},
                            imbalance={"sampler": "weighted"}))
    assert "imbalance.sampler 'weighted' makes batches by rows" in message
    assert "use train.batch_size with that sampler" in message


def test_batching_keys_need_a_text_transformer() -> None:
    message = error_of(base(model={"backbone": "tfidf"}, train={"packing": "on"}))
    assert "train.packing: on needs a text transformer backbone" in message
    assert "set train.packing: auto or off" in message
    message = error_of(base(model={"backbone": "tfidf"}, train={"batch_tokens": 4096}))
    assert "train.batch_tokens sizes batches of text tokens" in message
    assert "use train.batch_size" in message
    images = {"train": TRAIN, "images": {}}
    message = error_of({"data": images, "model": {"backbone": "resnet-tiny"},
                        "train": {"batch_tokens": 4096}})
    assert "with data.images); use train.batch_size" in message


def test_the_resolved_recipe_keeps_the_keys() -> None:
    recipe = load_recipe(base(train={"batch_tokens": 4096, "packing": "off"}))
    assert load_recipe(recipe).train.batch_tokens == 4096
    assert "packing: 'off'" in recipe.to_yaml()  # quoted: it reads back as a string
