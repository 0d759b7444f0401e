"""The demo generator: the same rows for a seed as before it was made fast enough for a
million rows (recipes, docs and benchmarks rely on the demo data staying put)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd

from fitclass.data.demo import _pick, make_demo_frame, make_multilabel_frame


def digest(*frames: pd.DataFrame) -> str:
    values = [frame.astype(str).to_dict(orient="list") for frame in frames]
    return hashlib.sha256(json.dumps(values).encode()).hexdigest()[:16]


def test_pick_draws_what_generator_choice_draws() -> None:
    for options in (["a", "b", "c"], [0, 2, 3], ["only"], list("abcdefgh")):
        chosen, picked = np.random.default_rng(7), np.random.default_rng(7)
        assert [chosen.choice(options).item() for _ in range(200)] == \
            [_pick(options, picked) for _ in range(200)]


def test_demo_rows_for_a_seed_are_unchanged() -> None:
    """Digests of the rows the generator wrote before `_pick` (commit dced920)."""
    data, truth = make_demo_frame(300, 0.08, 0)
    assert data["id"].iloc[-1] == "d00299" and len(truth) > 0
    assert digest(data, truth) == "a4b89b7f2dbd49ed"
    assert digest(make_multilabel_frame(300, 0.08, 3)) == "ef59d146b2f3cc87"
