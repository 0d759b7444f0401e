"""Text augmentation for minority classes: AEDA (Karimi et al. 2021), random punctuation
inserted between words. Applied to training rows only, after the validation split."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from fitclass.data.table import Label, TextInput, TextTable, label_names
from fitclass.errors import RecipeError
from fitclass.recipe import MinorityAugmentConfig

PUNCTUATION = (".", ";", "?", ":", "!", ",")


def aeda(text: str, rng: np.random.Generator) -> str:
    """Insert between 1 and a third of the word count punctuation marks at random gaps."""
    words = text.split()
    if not words:
        return text
    count = int(rng.integers(1, max(2, len(words) // 3 + 1)))
    for _ in range(count):
        words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(PUNCTUATION)))
    return " ".join(words)


def _augment_input(text: TextInput, rng: np.random.Generator) -> TextInput:
    return aeda(text, rng) if isinstance(text, str) else (aeda(text[0], rng), text[1])


def extra_copies(labels: list[Label], class_names: list[str],
                 config: MinorityAugmentConfig) -> dict[str, float]:
    """Extra copies per row for each minority class."""
    counts = Counter(label_names(labels))
    if isinstance(config.ratio, dict):
        unknown = sorted(set(config.ratio) - set(class_names))
        if unknown:
            raise RecipeError(f"imbalance.minority_augment.ratio: {unknown} are not classes; "
                              f"classes are {class_names}")
        return {name: float(r) for name, r in config.ratio.items()}
    largest = max(counts.values())
    return {name: float(config.ratio) for name in class_names
            if counts.get(name, 0) < config.below * largest}


def augment_minority(table: TextTable, class_names: list[str],
                     config: MinorityAugmentConfig) -> tuple[TextTable, dict[str, int]]:
    """The table plus augmented copies of minority-class rows; and rows added per class.

    A ratio of 1.5 adds one copy of every row and a second copy of half of them (random).
    Multi-label rows take the largest ratio among their labels.
    """
    assert table.labels is not None
    ratios = extra_copies(table.labels, class_names, config)
    rng = np.random.default_rng(config.seed)
    sources: list[int] = []
    for row, label in enumerate(table.labels):
        ratio = max((ratios.get(n, 0.0) for n in label_names([label])), default=0.0)
        copies = int(ratio) + int(rng.random() < ratio - int(ratio))
        sources.extend([row] * copies)
    added = Counter(name for row in sources for name in label_names([table.labels[row]]))
    if not sources:
        return table, {}
    extra = table.subset(np.asarray(sources))
    extra.texts = [_augment_input(text, rng) for text in extra.texts]
    extra.ids = [f"{i}#aug{k}" for k, i in enumerate(extra.ids)]
    combined = TextTable(
        source=table.source, frame=pd.concat([table.frame, extra.frame], ignore_index=True),
        texts=table.texts + extra.texts,
        labels=table.labels + (extra.labels or []), ids=table.ids + extra.ids,
        groups=None, id_column=table.id_column, positions=table.positions + extra.positions)
    return combined, dict(added)
