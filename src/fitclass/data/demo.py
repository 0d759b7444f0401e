"""The demo dataset: short English support messages in 4 classes, imbalanced and noisy.

Generated, never downloaded: a seeded generator fills sentence templates with slot words, so
the texts vary while each class keeps its own vocabulary (with some shared, ambiguous words).

- classes and shares: billing 50%, delivery 25%, technical 15%, account 10% (long-tailed);
- label noise: `noise` (default 8%) of rows get a wrong label drawn uniformly from the other
  classes; the flipped rows are written to `demo_noise.csv` (id, given_label, true_label) so
  an audit can be scored against them, but training never reads that file;
- groups: `customer` names who wrote each message (about 5 messages each), for group-aware
  splits.

`write_demo_data` writes what the recipes in `examples/` read (`fitclass demo --data-only`):
`train.csv` (noisy), `valid.csv` and `test.csv` (clean labels, fresh messages), and
`multilabel.csv`, where a message raises one or two topics, one 0/1 column per class (and
`noise` of rows are tagged wrong: a topic missed, or one added).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd

from fitclass.atomic import atomic_write_text
from fitclass.errors import DataError

T = TypeVar("T")

SHARES = {"billing": 0.50, "delivery": 0.25, "technical": 0.15, "account": 0.10}

OPENERS = ["", "Hi, ", "Hello, ", "Please help: ", "Urgent: ", "Quick question, ", "Hey team, "]
CLOSERS = ["", " Thanks.", " Please fix this.", " Any update?", " This is frustrating.",
           " Thank you in advance!", " Let me know."]

TEMPLATES: dict[str, list[str]] = {
    "billing": [
        "I was charged {n} times for my {plan} subscription",
        "my invoice for {month} shows the wrong amount",
        "can I get a refund for the {plan} plan",
        "the payment with my {card} failed but money left my account",
        "why did my bill go up in {month}",
        "please cancel the extra charge of {amount} dollars",
        "I need a receipt for my {plan} payment",
    ],
    "delivery": [
        "my package has not arrived after {n} days",
        "the courier left my order at the wrong {place}",
        "tracking says delivered but nothing is at my {place}",
        "can you change the shipping address for order {order}",
        "the box arrived damaged and the {item} is broken",
        "when will my {item} be shipped",
    ],
    "technical": [
        "the app crashes when I open the {screen} screen",
        "I get error {code} when I try to sync",
        "the {item} does not connect to wifi anymore",
        "after the update the {screen} page is blank",
        "the website is very slow on my {device}",
    ],
    "account": [
        "I cannot log in to my account on my {device}",
        "how do I reset my password",
        "please delete my account and my data",
        "I want to change the email on my account",
        "my account was locked after {n} attempts",
    ],
}

SLOTS = {
    "n": ["two", "three", "5", "10", "several"],
    "plan": ["premium", "family", "basic", "annual", "monthly"],
    "month": ["January", "March", "June", "September", "December"],
    "card": ["credit card", "debit card", "PayPal account", "bank card"],
    "amount": ["9.99", "20", "45", "120"],
    "place": ["door", "neighbour", "address", "office", "mailbox"],
    "order": ["#1234", "#98121", "A-553", "77310"],
    "item": ["headphones", "router", "speaker", "charger", "camera"],
    "screen": ["settings", "home", "payment", "profile", "login"],
    "code": ["500", "E42", "403", "timeout", "0x80070005"],
    "device": ["phone", "laptop", "tablet", "iPhone", "Android phone"],
}


def _pick(options: Sequence[T], rng: np.random.Generator) -> T:
    """`rng.choice(options)`: the same draw from the generator (so the same demo data for a
    seed), without converting `options` to an array on every call (6x faster: a million
    rows are generated in seconds, not minutes)."""
    return options[int(rng.integers(len(options)))]


def _fill(template: str, rng: np.random.Generator) -> str:
    values = {key: _pick(options, rng) for key, options in SLOTS.items()}
    body = template.format(**values)
    return f"{_pick(OPENERS, rng)}{body}.{_pick(CLOSERS, rng)}".strip()


def make_demo_frame(rows: int = 1000, noise: float = 0.08, seed: int = 0,
                    prefix: str = "d") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(data with columns id, text, label, customer; the noise truth with id, given_label,
    true_label)."""
    rng = np.random.default_rng(seed)
    classes = list(SHARES)
    true = rng.choice(len(classes), size=rows, p=list(SHARES.values()))
    texts = [_fill(_pick(TEMPLATES[classes[c]], rng), rng) for c in true]
    given = true.copy()
    flipped = rng.random(rows) < noise
    for row in np.flatnonzero(flipped):
        others = [c for c in range(len(classes)) if c != true[row]]
        given[row] = _pick(others, rng)
    ids = [f"{prefix}{i:05d}" for i in range(rows)]
    customers = [f"c{c:04d}" for c in rng.integers(0, max(1, rows // 5), size=rows)]
    data = pd.DataFrame({"id": ids, "text": texts, "label": [classes[c] for c in given],
                         "customer": customers})
    truth = pd.DataFrame({"id": [ids[i] for i in np.flatnonzero(flipped)],
                          "given_label": [classes[given[i]] for i in np.flatnonzero(flipped)],
                          "true_label": [classes[true[i]] for i in np.flatnonzero(flipped)]})
    return data, truth


def make_multilabel_frame(rows: int = 1000, noise: float = 0.08, seed: int = 0,
                          second_topic: float = 0.3) -> pd.DataFrame:
    """Messages raising one topic, or two (a `second_topic` share): id, text and one 0/1
    column per class. In a `noise` share of rows the tags are wrong as annotators get them
    wrong: of two topics one is not tagged, one topic gets a second tag it does not raise."""
    rng = np.random.default_rng(seed)
    classes = list(SHARES)
    table: dict[str, list[object]] = {"id": [], "text": [], **{c: [] for c in classes}}
    for row in range(rows):
        first = int(rng.choice(len(classes), p=list(SHARES.values())))
        topics = [first]
        if rng.random() < second_topic:
            topics.append(_pick([c for c in range(len(classes)) if c != first], rng))
        parts = [_fill(_pick(TEMPLATES[classes[t]], rng), rng) for t in topics]
        tags = list(topics)
        if rng.random() < noise:
            wrong = _pick([c for c in range(len(classes)) if c != first], rng)
            tags = tags[:1] if len(tags) == 2 else [first, wrong]
        table["id"].append(f"m{row:05d}")
        table["text"].append(" Also, ".join(parts))
        for index, name in enumerate(classes):
            table[name].append(int(index in tags))
    return pd.DataFrame(table)


def write_demo_data(folder: Path, rows: int = 1000, noise: float = 0.08,
                    seed: int = 0) -> dict[str, Path]:
    """Write the demo files into `folder`: `train.csv` (`noise` of labels flipped, listed in
    `demo_noise.csv`), `valid.csv` and `test.csv` (a quarter as many rows each, clean
    labels, other messages) and `multilabel.csv`. Returns them by name."""
    folder.mkdir(parents=True, exist_ok=True)
    train, truth = make_demo_frame(rows, noise, seed)
    held_out = max(rows // 4, 40)
    tables = {"train": train,
              "valid": make_demo_frame(held_out, 0.0, seed + 1, prefix="v")[0],
              "test": make_demo_frame(held_out, 0.0, seed + 2, prefix="t")[0],
              "multilabel": make_multilabel_frame(rows, noise, seed + 3),
              "demo_noise": truth}
    texts = {folder / f"{name}.csv": table.to_csv(index=False) for name, table in tables.items()}
    refuse_foreign_files(texts)
    for path, text in texts.items():
        atomic_write_text(path, text)
    return {path.stem: path for path in texts}


def refuse_foreign_files(texts: dict[Path, str]) -> None:
    """Demo files are rewritten only where they hold demo data of the same settings: a file
    of the same name with other content may be the user's, and is never replaced."""
    for path, text in texts.items():
        if path.exists() and (not path.is_file() or path.read_text(encoding="utf-8",
                                                                    errors="replace"
                                                                    ).splitlines()
                              != text.splitlines()):
            raise DataError(f"{path} exists and is not this demo data: fitclass does not "
                            f"overwrite it. Write the demo data into another folder (or "
                            f"delete the file if it is demo data of other settings)")
