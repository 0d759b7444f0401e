"""Suspect ranking of `fitclass audit` on planted label flips (issue 17).

Flip 10% of the labels uniformly (to another class; seeded), hide the flips, run
`fitclass audit` and score its ranking against them: flips among its 100 most suspect rows
(precision at 100 x 100) and the recall and precision of the set it flags. Compared, on
the same out-of-fold (OOF) probabilities: cleanlab alone on each proxy's OOF probabilities
(`find_label_issues`, ranked by self-confidence), on their equal average, and a rank
average of the proxies' scores. Cases: 2,000 and 6,920 SST-2 rows (tfidf,linear_probe, the
default on the embedded MiniLM) and 20,000 NSMC rows (tfidf only: the MiniLM is English).

Usage (from the repo root):
  .venv/bin/python bench/audit_ranking.py --cases sst2-2000 --seeds 0 1 2
  .venv/bin/python bench/audit_ranking.py --cases sst2-6920 nsmc-20000 --seeds 0 1 2
  .venv/bin/python bench/audit_ranking.py --seeds 0 --proxy tfidf,linear_probe,model
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from cleanlab.filter import find_label_issues
from scipy.stats import rankdata

from _holdout import markdown_table, scratch_dir
from fitclass.noise.audit import audit

CASES = {  # name: (file, text column, rows, proxies)
    "sst2-2000": ("sst2/train.tsv", "sentence", 2000, "tfidf,linear_probe"),
    "sst2-6920": ("sst2/train.tsv", "sentence", 6920, "tfidf,linear_probe"),
    "nsmc-20000": ("nsmc/train.tsv", "document", 20000, "tfidf"),
}


def read_case(data_dir: Path, name: str) -> pd.DataFrame:
    path, text, rows, _ = CASES[name]
    frame = pd.read_csv(data_dir / path, sep="\t", dtype=str, keep_default_na=False,
                        quoting=3 if path.startswith("nsmc") else 0)
    frame = frame[frame[text].str.strip() != ""]
    if rows < len(frame):
        frame = frame.sample(rows, random_state=0)
    return frame.reset_index(drop=True).rename(columns={text: "text"})[["text", "label"]]


def plant(frame: pd.DataFrame, rate: float, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """A copy with `rate` of the labels moved to another class (uniformly), and the rows."""
    rng = np.random.default_rng(seed)
    noisy = frame.copy()
    classes = sorted(frame["label"].unique())
    chosen = np.flatnonzero(rng.random(len(frame)) < rate)
    for row in chosen:
        others = [c for c in classes if c != frame["label"].iat[row]]
        noisy.iat[row, noisy.columns.get_loc("label")] = rng.choice(others)
    return noisy, chosen


def scores(name: str, ranked: list[int], flagged: set[int], truth: set[int]) -> dict[str, Any]:
    hits = len(flagged & truth)
    return {"method": name, "top100": len(set(ranked[:100]) & truth), "flagged": len(flagged),
            "recall": round(hits / len(truth), 3),
            "precision": round(hits / max(len(flagged), 1), 3)}


def cleanlab_alone(name: str, targets: np.ndarray, probs: np.ndarray,
                   truth: set[int]) -> dict[str, Any]:
    ranked = find_label_issues(targets, probs, return_indices_ranked_by="self_confidence")
    return scores(name, [int(i) for i in ranked], {int(i) for i in ranked}, truth)


def run_case(name: str, frame: pd.DataFrame, seed: int, folds: int,
             proxy: str | None) -> list[dict[str, Any]]:
    noisy, flipped = plant(frame, 0.1, seed)
    work = Path(tempfile.mkdtemp(prefix=f"{name}-{seed}-", dir=scratch_dir("audit-ranking")))
    noisy.assign(id=[str(i) for i in range(len(noisy))]).to_csv(work / "train.csv",
                                                                 index=False)
    recipe = {"data": {"train": str(work / "train.csv"), "text": "text", "label": "label",
                       "id": "id"},
              "model": {"backbone": "minilm", "max_length": 64}}
    start = time.perf_counter()
    result = audit(recipe, work / "suspects.csv", folds=folds, proxy=proxy or CASES[name][3],
                   work_dir=work / "folds")
    seconds = round(time.perf_counter() - start, 1)
    truth = {int(i) for i in flipped}
    suspects = result.suspects
    rows = [scores("fitclass audit (combined)", [int(i) for i in suspects["id"]],
                   {int(i) for i in suspects["id"]}, truth)]
    outliers = suspects[suspects["methods"].str.contains("outlier")]
    rows[0] |= {"outliers": len(outliers),
                "outliers_flipped": len({int(i) for i in outliers["id"]} & truth),
                "weights": json.dumps(result.summary["proxy_weights"])}
    classes = sorted(frame["label"].unique())
    targets = noisy["label"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    rows.append(cleanlab_alone("cleanlab on the mixed OOF probs", targets, result.oof_probs,
                               truth))
    probs = result.proxy_probs
    for proxy, values in probs.items():
        rows.append(cleanlab_alone(f"cleanlab alone on {proxy}", targets, values, truth))
    if len(probs) > 1:
        mean = np.mean(list(probs.values()), axis=0)
        rows.append(cleanlab_alone("cleanlab on the equal average", targets, mean, truth))
        given = np.arange(len(targets)), targets
        # rank 1: the lowest probability of the given label, the most suspect
        ranks = np.mean([rankdata(p[given]) for p in probs.values()], axis=0)
        rows.append(scores("rank average of proxy scores", list(np.argsort(ranks)), set(),
                           truth) | {"flagged": "", "recall": "", "precision": ""})
    common = {"case": name, "seed": seed, "flips": len(truth), "audit_s": seconds}
    rows = [common | row for row in rows]
    for row in rows:
        print(json.dumps(row), flush=True)
    return rows


def mean_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per case and method: the mean over seeds (and the per-seed top-100 counts)."""
    frame = pd.DataFrame(rows).replace("", np.nan)
    out = []
    for (case, method), part in frame.groupby(["case", "method"], sort=False):
        row: dict[str, Any] = {"case": case, "method": method,
                               "top100 per seed": "/".join(str(v) for v in part["top100"])}
        for column in ("top100", "recall", "precision", "flagged", "audit_s"):
            values = pd.to_numeric(part[column], errors="coerce").dropna()
            row[column] = round(float(values.mean()), 3) if len(values) else ""
        out.append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=["sst2-2000"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--proxy", help="override the cases' proxies, e.g. "
                                        "tfidf,linear_probe,model")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--out", default="bench/out/audit_ranking.json")
    args = parser.parse_args()
    rows = []
    for name in args.cases:
        frame = read_case(Path(args.data_dir), name)
        for seed in args.seeds:
            rows += run_case(name, frame, seed, args.folds, args.proxy)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    print(markdown_table(mean_table(rows), ["case", "method", "top100", "top100 per seed",
                                            "recall", "precision", "flagged", "audit_s"]))


if __name__ == "__main__":
    main()
