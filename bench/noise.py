"""Label-noise benchmarks (issue: label noise).

`audit`: flip a known share of labels (10%, 20%; uniformly, or class-conditionally: every
row of the first half of the classes moves to its most confusable class at twice the rate,
the rest stay clean), hide the flips from the method, run `fitclass audit`, and score it
against the flipped rows: precision and recall at the number of rows it flags, precision of
its top 100, and cleanlab.find_label_issues alone on the same out-of-fold probabilities.
Datasets: sst2/train.tsv with the MiniLM linear-probe proxy, a 20,000-row nsmc sample with
the TF-IDF proxy.

`train`: MiniLM on sst2 (scored on dev.tsv) and trec coarse labels (scored on a clean 20%
hold-out) with 20% uniform flips in train: plain CE, label smoothing, bootstrapping,
co-teaching, and audit-then-drop; accuracy and macro-F1 on the clean rows.

Usage (from the repo root): .venv/bin/python bench/noise.py audit|train
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from cleanlab.filter import find_label_issues
from sklearn.metrics import confusion_matrix
from sklearn.model_selection import cross_val_predict

from _holdout import holdout, markdown_table, scratch_dir, train_or_reuse
from fitclass.noise.audit import audit


def confusable(frame: pd.DataFrame, text: str, label: str) -> dict[str, str]:
    """Each class's most confused other class, from a clean cross-validated TF-IDF model."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    classes = sorted(frame[label].unique())
    model = make_pipeline(TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), min_df=2),
                          LogisticRegression(max_iter=1000))
    predicted = cross_val_predict(model, frame[text], frame[label], cv=3)
    matrix = confusion_matrix(frame[label], predicted, labels=classes).astype(float)
    np.fill_diagonal(matrix, -1)
    return {c: classes[int(matrix[i].argmax())] for i, c in enumerate(classes)}


def flip(frame: pd.DataFrame, label: str, rate: float, kind: str, partner: dict[str, str],
         seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Flipped copy and the positions flipped (kept secret from the method)."""
    rng = np.random.default_rng(seed)
    noisy = frame.copy()
    classes = sorted(frame[label].unique())
    if kind == "uniform":
        chosen = np.flatnonzero(rng.random(len(frame)) < rate)
        for row in chosen:
            others = [c for c in classes if c != frame[label].iat[row]]
            noisy.iloc[row, noisy.columns.get_loc(label)] = rng.choice(others)
    else:
        noisy_classes = set(classes[: max(1, len(classes) // 2)])
        eligible = frame[label].isin(noisy_classes).to_numpy()
        chosen = np.flatnonzero(eligible & (rng.random(len(frame)) < 2 * rate))
        for row in chosen:
            noisy.iloc[row, noisy.columns.get_loc(label)] = partner[frame[label].iat[row]]
    return noisy, chosen


def score_flags(flagged_ids: list[str], ranked_ids: list[str],
                truth: set[str]) -> dict[str, Any]:
    hits = sum(1 for i in flagged_ids if i in truth)
    return {"flagged": len(flagged_ids),
            "precision": hits / max(len(flagged_ids), 1), "recall": hits / max(len(truth), 1),
            "precision@100": sum(1 for i in ranked_ids[:100] if i in truth) / 100}


def audit_case(name: str, frame: pd.DataFrame, text: str, label: str, proxy: str,
               rate: float, kind: str, partner: dict[str, str], args: argparse.Namespace
               ) -> list[dict[str, Any]]:
    noisy, flipped = flip(frame, label, rate, kind, partner, args.seed)
    work = scratch_dir(f"noise-{name}-{kind}-{rate}")
    noisy.assign(id=[str(i) for i in range(len(noisy))]).to_csv(work / "train.csv",
                                                                 index=False)
    recipe = {"data": {"train": str(work / "train.csv"), "text": text, "label": label,
                       "id": "id"},
              "model": {"backbone": "minilm", "max_length": 64}}
    start = time.perf_counter()
    result = audit(recipe, work / "suspects.csv", proxy=proxy, folds=5,
                   work_dir=work / "folds")
    seconds = time.perf_counter() - start
    truth = {str(i) for i in flipped}
    ids = result.suspects["id"].astype(str).tolist()
    common = {"data": name, "noise": f"{kind} {rate:.0%}", "proxy": proxy,
              "flipped": len(truth), "audit_s": round(seconds, 1)}
    rows = [common | {"method": "fitclass audit"} | score_flags(ids, ids, truth)]
    classes = sorted(frame[label].unique())
    targets = noisy[label].map({c: i for i, c in enumerate(classes)}).to_numpy()
    ranked = find_label_issues(targets, result.oof_probs,
                               return_indices_ranked_by="self_confidence")
    cl_ids = [str(i) for i in ranked]
    rows.append(common | {"method": "cleanlab.find_label_issues alone"}
                | score_flags(cl_ids, cl_ids, truth))
    for row in rows:
        print(json.dumps(row, ensure_ascii=False), flush=True)
    return rows


def audit_benchmark(args: argparse.Namespace) -> list[dict[str, Any]]:
    data = Path(args.data_dir)
    sst2 = pd.read_csv(data / "sst2/train.tsv", sep="\t", dtype=str, keep_default_na=False)
    nsmc = pd.read_csv(data / "nsmc/train.tsv", sep="\t", dtype=str, keep_default_na=False,
                       quoting=3)
    nsmc = nsmc[nsmc["document"].str.strip() != ""].sample(20_000, random_state=args.seed)
    nsmc = nsmc.reset_index(drop=True)
    rows = []
    for name, frame, text, label, proxy in (("sst2", sst2, "sentence", "label",
                                             "linear_probe"),
                                            ("nsmc-20k", nsmc, "document", "label", "tfidf")):
        partner = confusable(frame, text, label)
        for kind in ("uniform", "class-conditional"):
            for rate in (0.1, 0.2):
                rows += audit_case(name, frame, text, label, proxy, rate, kind, partner, args)
    return rows


def train_case(name: str, train: pd.DataFrame, test: Path, text: str, label: str,
               args: argparse.Namespace) -> list[dict[str, Any]]:
    noisy, flipped = flip(train, label, 0.2, "uniform", {}, args.seed)
    work = scratch_dir(f"noise-train-{name}")
    noisy.assign(id=[str(i) for i in range(len(noisy))]).to_csv(work / "train.csv",
                                                                 index=False)
    base = {"data": {"train": str(work / "train.csv"), "text": text, "label": label,
                     "id": "id"},
            "model": {"backbone": "minilm", "max_length": 64},
            "train": {"epochs": args.epochs, "lr": 1e-4, "batch_size": 32, "seed": args.seed}}
    audit(base, work / "suspects.csv", proxy="linear_probe", work_dir=work / "folds")
    configs = {
        "plain CE": {},
        "label smoothing 0.1": {"noise": {"label_smoothing": 0.1}},
        "bootstrap soft 0.2": {"noise": {"bootstrap": {"mode": "soft", "beta": 0.2}}},
        "co-teaching 0.2": {"noise": {"coteaching": {"forget_rate": 0.2}}},
        "audit (linear probe) then drop": {"noise": {"action": "drop", "min_score": 0.5,
                                                     "suspects": str(work / "suspects.csv")}},
    }
    rows = []
    for config, extra in configs.items():
        start = time.perf_counter()
        run = train_or_reuse(base | extra, Path(args.out) / name / config.replace(" ", "-"))
        metrics = run.evaluate(test, batch_size=128)
        row = {"data": name, "method": config, "accuracy": metrics["accuracy"],
               "macro_f1": metrics["macro_f1"], "train_s": round(time.perf_counter() - start, 1),
               "flipped_train_rows": len(flipped)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def train_benchmark(args: argparse.Namespace) -> list[dict[str, Any]]:
    data = Path(args.data_dir).resolve()
    sst2 = pd.read_csv(data / "sst2/train.tsv", sep="\t", dtype=str, keep_default_na=False)
    sst2 = sst2.sample(min(args.rows, len(sst2)), random_state=args.seed)
    trec = pd.read_csv(data / "trec/train.tsv", sep="\t", dtype=str, keep_default_na=False)
    trec_train, trec_test = holdout(trec, 0.2, args.seed, stratify="coarse_label")
    trec_train = trec_train.sample(min(args.rows, len(trec_train)), random_state=args.seed)
    test_csv = scratch_dir("noise-trec-test") / "test.csv"
    trec_test.to_csv(test_csv, index=False)
    return (train_case("sst2", sst2.reset_index(drop=True), data / "sst2/dev.tsv", "sentence",
                       "label", args)
            + train_case("trec-coarse", trec_train.reset_index(drop=True), test_csv, "text",
                         "coarse_label", args))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("benchmark", choices=["audit", "train"])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--out", default="bench/out/noise")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rows", type=int, default=3000, help="train rows (train benchmark)")
    args = parser.parse_args()
    if args.benchmark == "audit":
        rows = audit_benchmark(args)
        columns = ["data", "noise", "proxy", "method", "flagged", "precision", "recall",
                   "precision@100", "flipped", "audit_s"]
    else:
        rows = train_benchmark(args)
        columns = ["data", "method", "accuracy", "macro_f1", "train_s", "flipped_train_rows"]
    table = markdown_table(rows, columns)
    print(table)
    out = Path(args.out) / f"{args.benchmark}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
