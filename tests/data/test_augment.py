"""AEDA minority augmentation: what it inserts, which rows it copies, and never validation."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import fitclass
from fitclass.data.augment import PUNCTUATION, aeda, augment_minority, extra_copies
from fitclass.data.table import TextTable
from fitclass.errors import RecipeError
from fitclass.recipe import MinorityAugmentConfig

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
         "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo"]
CUES = {"big": ["apple", "banana"], "mid": ["carrot", "pepper"], "small": ["salmon", "tuna"]}


def table(counts: dict[str, int], multilabel: bool = False) -> TextTable:
    rng = random.Random(0)
    texts: list[str] = []
    labels: list[str | tuple[str, ...]] = []
    for name, n in counts.items():
        for _ in range(n):
            texts.append(" ".join(rng.sample(WORDS, 6) + CUES.get(name, ["x"])[:1]))
            labels.append((name,) if multilabel else name)
    return TextTable(source="t", frame=pd.DataFrame({"text": texts}), texts=texts,
                     labels=labels, ids=[str(i) for i in range(len(texts))])


def without_punctuation(text: str) -> list[str]:
    return [token for token in text.split() if token not in PUNCTUATION]


def test_aeda_keeps_words_in_order_and_inserts_punctuation() -> None:
    rng = np.random.default_rng(0)
    text = "the quick brown fox jumps over the lazy dog again today"
    words = text.split()
    changed = 0
    for _ in range(200):
        out = aeda(text, rng)
        assert without_punctuation(out) == words
        inserted = [t for t in out.split() if t in PUNCTUATION]
        assert 1 <= len(inserted) <= max(1, len(words) // 3)
        assert len(out.split()) == len(words) + len(inserted)
        changed += out != text
    assert changed == 200
    assert aeda("", rng) == ""
    one = aeda("word", rng)
    assert without_punctuation(one) == ["word"] and len(one.split()) == 2


def test_aeda_is_seeded() -> None:
    text = "one two three four five six seven eight nine"
    a = [aeda(text, np.random.default_rng(5)) for _ in range(3)]
    assert len(set(a)) == 1


def test_augment_minority_adds_rows_only_for_minority_classes() -> None:
    source = table({"big": 40, "mid": 15, "small": 5})
    config = MinorityAugmentConfig(ratio=1.0, below=0.5)
    assert extra_copies(source.labels, ["big", "mid", "small"], config) == \
        {"mid": 1.0, "small": 1.0}
    combined, added = augment_minority(source, ["big", "mid", "small"], config)
    assert added == {"mid": 15, "small": 5}
    assert len(combined) == 60 + 20
    assert combined.texts[:60] == source.texts and combined.labels[:60] == source.labels
    new_labels = combined.labels[60:]
    assert sorted(set(new_labels)) == ["mid", "small"]
    for k, (text, row_id) in enumerate(zip(combined.texts[60:], combined.ids[60:],
                                           strict=True)):
        original = int(row_id.split("#aug")[0])
        assert row_id == f"{original}#aug{k}"
        assert combined.labels[60 + k] == source.labels[original]
        assert without_punctuation(text) == source.texts[original].split()
        assert text != source.texts[original]
    assert len(combined.frame) == len(combined)
    # a higher `below` makes "mid" and "small" minorities, a lower one only "small"
    _, only_small = augment_minority(source, ["big", "mid", "small"],
                                     MinorityAugmentConfig(ratio=1.0, below=0.2))
    assert only_small == {"small": 5}


def test_mapping_ratios_and_unknown_class() -> None:
    source = table({"big": 40, "mid": 15, "small": 5})
    combined, added = augment_minority(source, ["big", "mid", "small"],
                                       MinorityAugmentConfig(ratio={"small": 3, "mid": 0}))
    assert added == {"small": 15}
    assert len(combined) == 75
    with pytest.raises(RecipeError, match=r"minority_augment\.ratio"):
        augment_minority(source, ["big", "mid", "small"],
                         MinorityAugmentConfig(ratio={"tiny": 2.0}))


def test_no_minority_returns_the_table_unchanged() -> None:
    source = table({"big": 10, "mid": 9})
    combined, added = augment_minority(source, ["big", "mid"], MinorityAugmentConfig())
    assert combined is source and added == {}


@pytest.mark.parametrize("ratio", [0.3, 1.5])
def test_fractional_ratio_adds_expected_rows(ratio: float) -> None:
    source = table({"big": 2000, "small": 400})
    totals = []
    for seed in range(5):
        _, added = augment_minority(source, ["big", "small"],
                                    MinorityAugmentConfig(ratio=ratio, seed=seed))
        totals.append(added["small"])
        assert int(ratio) * 400 <= added["small"] <= (int(ratio) + 1) * 400
    # binomial(400, frac) per seed: the mean over five seeds is within ~4 sd of expected
    expected = ratio * 400
    sd = np.sqrt(400 * (ratio % 1) * (1 - ratio % 1) / 5)
    assert abs(np.mean(totals) - expected) < 4 * sd
    again = augment_minority(source, ["big", "small"],
                             MinorityAugmentConfig(ratio=ratio, seed=0))[1]
    assert again["small"] == totals[0]  # seeded


def test_multilabel_rows_take_their_largest_ratio() -> None:
    texts = ["a b c", "d e f", "g h i", "j k l"]
    labels: list[str | tuple[str, ...]] = [("x",), ("x", "y"), ("y",), ()]
    source = TextTable(source="t", frame=pd.DataFrame({"text": texts}), texts=texts,
                       labels=labels, ids=["0", "1", "2", "3"])
    combined, added = augment_minority(source, ["x", "y"],
                                       MinorityAugmentConfig(ratio={"x": 1, "y": 2}))
    # row 0: 1 copy, row 1: 2 copies (max of 1, 2), row 2: 2 copies, row 3: none
    assert len(combined) == 4 + 5
    assert added == {"x": 3, "y": 4}


def write_csv(path: Path, counts: dict[str, int], seed: int = 0) -> Path:
    rng = random.Random(seed)
    rows, seen = [], set()
    for name, n in counts.items():
        while sum(1 for r in rows if r["label"] == name) < n:
            text = " ".join(rng.sample(WORDS, 5) + rng.sample(CUES[name], 1))
            if text not in seen:
                seen.add(text)
                rows.append({"text": text, "label": name})
    rng.shuffle(rows)
    frame = pd.DataFrame([{"id": f"r{i}", **r} for i, r in enumerate(rows)])
    frame.to_csv(path, index=False)
    return path


def test_train_augments_training_rows_only(tmp_path: Path) -> None:
    train_csv = write_csv(tmp_path / "train.csv", {"big": 60, "mid": 24, "small": 12})
    recipe = {
        "data": {"train": str(train_csv), "id": "id", "split": {"valid_size": 0.25, "seed": 0}},
        "model": {"backbone": "tfidf"},
        "imbalance": {"minority_augment": {"ratio": 2, "below": 0.5, "seed": 1}},
    }
    run = fitclass.train(recipe, out=tmp_path / "run")
    checks = json.loads((run.path / "data_checks.json").read_text())
    valid_counts = checks["class_counts"]["valid"]
    train_counts = checks["class_counts"]["train"]
    # "mid" (18 train rows) and "small" (9) are below half of "big" (45): 2 copies each
    assert train_counts == {"big": 45, "mid": 18, "small": 9}
    assert checks["augmented_rows"] == {"mid": 36, "small": 18}
    n_valid = int(np.ceil(0.25 * 96))
    assert sum(valid_counts.values()) == n_valid
    assert valid_counts == {"big": 15, "mid": 6, "small": 3}
    predictions = pd.read_csv(run.path / "valid_predictions.csv")
    assert len(predictions) == n_valid == run.metrics["n"]
    assert not predictions["id"].astype(str).str.contains("#aug").any()
    assert set(predictions["id"]) <= set(pd.read_csv(train_csv)["id"])
    # the model was fitted on the augmented training rows
    assert json.loads((run.path / "labels.json").read_text())["train_counts"] == [45, 54, 27]
