"""Text length against the backbone's `model.max_length`: in the backbone's own tokens when
it is a transformer whose tokenizer loads here, else in words (TF-IDF reads every word)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np

from fitclass.data.table import TextInput
from fitclass.diagnosis.findings import Finding
from fitclass.errors import FitclassError
from fitclass.recipe import ModelConfig

#: Texts tokenised for the length statistics (percentiles settle long before).
SAMPLE = 5000
#: Truncated share above which the check warns (as `fitclass train`'s truncation check).
TRUNCATED = 0.05
#: The longest `model.max_length` the remedy proposes (BERT-style position tables).
LONGEST = 512


def _tokenizer(model: ModelConfig) -> tuple[Any | None, str]:
    """The backbone's tokenizer, or None and why not (TF-IDF, or none loads offline)."""
    from fitclass.models.catalog import capabilities, get_backbone

    try:
        caps = capabilities(model)
    except FitclassError as error:  # an unusable id: measured in words, said so
        return None, f"no tokenizer ({error})"
    if not caps.neural or caps.modality != "text":
        return None, f"backbone {model.backbone!r} reads words, not subword tokens"
    source = getattr(get_backbone(model), "source", None)
    if source is None:
        return None, f"backbone {model.backbone!r} has no tokenizer"
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source), "tokens"
    except (OSError, ValueError) as error:
        return None, f"the tokenizer of {model.backbone!r} did not load ({error})"


def sample(texts: Sequence[TextInput], size: int = SAMPLE, seed: int = 0) -> list[TextInput]:
    return list(texts) if len(texts) <= size else random.Random(seed).sample(list(texts), size)


def word_counts(texts: Sequence[TextInput]) -> np.ndarray:
    return np.array([len((t if isinstance(t, str) else " ".join(t)).split()) for t in texts])


def _power_of_two_at_least(value: float, low: int = 16) -> int:
    return int(min(LONGEST, max(low, 2 ** int(np.ceil(np.log2(max(value, 1)))))))


def check_lengths(texts: Sequence[TextInput], model: ModelConfig) -> Finding:
    """Length percentiles; a warning with a longer `model.max_length` when more than 5% of
    rows would be cut, an info with a shorter one when nearly every row is far shorter."""
    picked = sample(texts)
    tokenizer, unit = _tokenizer(model)
    if tokenizer is not None:
        from fitclass.data.tokens import measure_lengths

        lengths = measure_lengths(tokenizer, picked)
    else:
        lengths = word_counts(picked)
    p50, p95, p99 = (float(np.percentile(lengths, q)) for q in (50, 95, 99))
    measured: dict[str, Any] = {"unit": "tokens" if tokenizer is not None else "words",
                                "sampled_rows": len(picked), "median": p50, "p95": p95,
                                "p99": p99, "max": int(lengths.max())}
    if tokenizer is None:
        return Finding("text_length", "info",
                       f"text length: median {p50:g} words, 95th percentile {p95:g}, "
                       f"longest {measured['max']}", {**measured, "note": unit},
                       "nothing to change", "TF-IDF reads every word of every text")
    max_length = model.max_length
    cut = float(np.mean(lengths > max_length))
    measured |= {"max_length": max_length, "truncated_share": round(cut, 4)}
    title = (f"text length: median {p50:g} tokens, 95th percentile {p95:g}, "
             f"{cut:.1%} of rows over model.max_length={max_length}")
    if cut > TRUNCATED and max_length < LONGEST:
        longer = _power_of_two_at_least(p95)
        return Finding(
            "truncation", "warning", title, measured,
            f"raise model.max_length to {longer} (covers the 95th percentile), or accept "
            f"that {cut:.0%} of texts lose their ends",
            "tokens past model.max_length are cut before the model sees them; `fitclass "
            "train` warns above 5% of rows for the same reason",
            {"model.max_length": longer})
    shorter = _power_of_two_at_least(p99)
    if shorter * 2 <= max_length:
        return Finding(
            "short_texts", "info", title, measured,
            f"model.max_length {shorter} covers 99% of rows and makes each batch cheaper",
            "the benchmarks run short-text data at the width their texts need (TREC "
            "questions at max_length 32, UnSmile at 64: docs/benchmarks.md, issue 3); a "
            "longer width only adds padding work where batches are not length-grouped",
            {"model.max_length": shorter})
    return Finding("text_length", "info", title, measured, "nothing to change",
                   f"model.max_length={max_length} fits the texts")
