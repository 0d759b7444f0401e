"""The demo dataset: short English support messages in 4 classes, imbalanced and noisy.

Generated, never downloaded: a seeded generator fills sentence templates with slot words, so
the texts vary while each class keeps its own vocabulary (with some shared, ambiguous words).

- classes and shares: billing 50%, delivery 25%, technical 15%, account 10% (long-tailed);
- label noise: `noise` (default 8%) of rows get a wrong label drawn uniformly from the other
  classes; the flipped rows are written to `demo_noise.csv` (id, given_label, true_label) so
  an audit can be scored against them, but training never reads that file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

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


def _fill(template: str, rng: np.random.Generator) -> str:
    values = {key: rng.choice(options) for key, options in SLOTS.items()}
    body = template.format(**values)
    return f"{rng.choice(OPENERS)}{body}.{rng.choice(CLOSERS)}".strip()


def make_demo_frame(rows: int = 1000, noise: float = 0.08,
                    seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(data with columns id, text, label; the noise truth with id, given_label, true_label)."""
    rng = np.random.default_rng(seed)
    classes = list(SHARES)
    true = rng.choice(len(classes), size=rows, p=list(SHARES.values()))
    texts = [_fill(str(rng.choice(TEMPLATES[classes[c]])), rng) for c in true]
    given = true.copy()
    flipped = rng.random(rows) < noise
    for row in np.flatnonzero(flipped):
        others = [c for c in range(len(classes)) if c != true[row]]
        given[row] = rng.choice(others)
    ids = [f"d{i:05d}" for i in range(rows)]
    data = pd.DataFrame({"id": ids, "text": texts, "label": [classes[c] for c in given]})
    truth = pd.DataFrame({"id": [ids[i] for i in np.flatnonzero(flipped)],
                          "given_label": [classes[given[i]] for i in np.flatnonzero(flipped)],
                          "true_label": [classes[true[i]] for i in np.flatnonzero(flipped)]})
    return data, truth


def write_demo_data(folder: Path, rows: int = 1000, noise: float = 0.08,
                    seed: int = 0) -> Path:
    """Write `demo_train.csv` and `demo_noise.csv` into `folder`; return the train file."""
    folder.mkdir(parents=True, exist_ok=True)
    data, truth = make_demo_frame(rows, noise, seed)
    data.to_csv(folder / "demo_train.csv", index=False)
    truth.to_csv(folder / "demo_noise.csv", index=False)
    return folder / "demo_train.csv"
