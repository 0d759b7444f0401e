"""Text near-duplicate check (issue 17): recall and precision on planted near copies, its
cost on all 150,000 NSMC rows, and the validation score before/after `dedupe: group`.

Parts (`--parts`, all by default):

- `recall`: SST-2 (`sst2/train.tsv`, 6,920 English sentences) and NSMC (`nsmc/train.tsv`,
  150,000 Korean reviews, read with quoting=3): rows shuffled (seed 0), 10% become
  validation; `--planted` training rows get an edited copy added to validation, one edit
  kind each, in turn: `punctuation` (every punctuation mark dropped, "!!" appended),
  `spacing` (one space removed between two words, one word split by a space), `swap` (two
  neighbouring words exchanged), `case` (upper-cased; Hangul has no case, so most NSMC
  copies are exact), `replace` (one word replaced by a word of another row: the hardest).
  The check (what `prepare_data` runs: `find_near_duplicates` over train + validation, then
  `best_match`) flags validation rows with an exact or near copy in train. Recall: planted
  copies flagged. The data also hold natural copies (real repeats in the datasets):
  `natural exact` (same text once case and whitespace are ignored) are true duplicates;
  `natural near` are the check's other finds, counted against it in `precision` =
  planted flagged / (planted flagged + natural near), a lower bound: `same key` of them
  differ only in case, punctuation and spacing (copies beyond doubt; `precision same key
  right` counts them as right finds), and the script prints a sample of the others to
  judge by eye.
- `cost`: `find_near_duplicates` + `clusters()` on all NSMC rows at the default threshold:
  wall time (best of 2) and peak traced memory (tracemalloc, numpy's arrays included, in a
  third run), plus the process's peak RSS.
- `prepare`: `prepare_data` on all non-empty NSMC rows (a copy in the system temp folder),
  10% split, with the check off, on, and with `dedupe: group`: seconds (best of 2) and the
  findings' counts.
- `datasketch`: the same rows through datasketch (`MinHash.bulk` + `MinHashLSH`, 128
  permutations, the same keys and shingles, no verification), the alternative the module
  chose against.
- `dedupe`: SST-2 train plus an edited copy (same label, random kind) of 30% of its rows
  (planted clusters, as scraped data has), TF-IDF runs with a 20% validation split, plain
  stratified vs `data.split.dedupe: group`, 3 seeds: validation accuracy against accuracy
  on `sst2/dev.tsv` (never planted). The gap is the optimism leakage adds.

Usage (from the repo root; a few minutes on 2 cores):
    .venv/bin/python bench/text_near_duplicates.py
    .venv/bin/python bench/text_near_duplicates.py --parts recall --nsmc-rows 20000   # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from _holdout import markdown_table, scratch_dir
from fitclass.data.checks import normalise
from fitclass.data.text_near_duplicates import find_near_duplicates, near_key, shingle_size
from fitclass.environment import git_revision

KINDS = ("punctuation", "spacing", "swap", "case", "replace")
_PUNCTUATION = re.compile(r"[^\w\s]")


def load(data: Path, name: str, rows: int | None = None) -> list[str]:
    if name == "sst2":
        frame = pd.read_csv(data / "sst2" / "train.tsv", sep="\t", keep_default_na=False)
        texts = frame["sentence"].astype(str).tolist()
    else:
        frame = pd.read_csv(data / "nsmc" / "train.tsv", sep="\t", quoting=3,
                            keep_default_na=False)
        texts = frame["document"].astype(str).tolist()
    texts = [t for t in texts if t.strip()]
    return texts[:rows] if rows else texts


def edit(text: str, kind: str, rng: random.Random, donor: str) -> str:
    """One planted edit of `text` (`donor`: another row, the source of a replacing word)."""
    words = text.split()
    if kind == "punctuation":
        return " ".join(_PUNCTUATION.sub("", text).split()) + "!!"
    if kind == "spacing":
        k = rng.randrange(len(words) - 1)
        words[k:k + 2] = [words[k] + words[k + 1]]
        long = max(range(len(words)), key=lambda i: len(words[i]))
        cut = max(1, len(words[long]) // 2)
        words[long] = words[long][:cut] + " " + words[long][cut:]
        return " ".join(words)
    if kind == "swap":
        k = rng.randrange(len(words) - 1)
        words[k], words[k + 1] = words[k + 1], words[k]
        return " ".join(words)
    if kind == "case":
        return text.upper()
    words[rng.randrange(len(words))] = rng.choice(donor.split())
    return " ".join(words)


def plant(texts: list[str], n_planted: int, seed: int) -> dict[str, Any]:
    """Train/validation texts with edited copies of training rows added to validation."""
    rng = random.Random(seed)
    order = list(range(len(texts)))
    rng.shuffle(order)
    n_valid = len(texts) // 10
    valid = [texts[i] for i in order[:n_valid]]
    train = [texts[i] for i in order[n_valid:]]
    sources = [i for i in rng.sample(range(len(train)), min(len(train), 3 * n_planted))
               if len(train[i].split()) >= 2][:n_planted]
    kinds = [KINDS[k % len(KINDS)] for k in range(len(sources))]
    copies = [edit(train[i], kind, rng, train[rng.randrange(len(train))])
              for i, kind in zip(sources, kinds, strict=True)]
    return {"train": train, "valid": valid + copies, "natural": len(valid), "kinds": kinds,
            "sources": sources}


def recall_rows(name: str, texts: list[str], n_planted: int, thresholds: list[float],
                seed: int = 0) -> tuple[list[dict[str, Any]], list[str]]:
    data = plant(texts, n_planted, seed)
    train, valid = data["train"], data["valid"]
    everything = train + valid
    is_valid = np.arange(len(everything)) >= len(train)
    train_exact = {normalise(t) for t in train}
    rows, samples = [], []
    for threshold in thresholds:
        start = time.perf_counter()
        found = find_near_duplicates(everything, threshold)
        match, _ = found.best_match(is_valid, ~is_valid)
        seconds = time.perf_counter() - start
        flagged = match >= 0
        natural, planted = flagged[:data["natural"]], flagged[data["natural"]:]
        exact = np.array([normalise(t) in train_exact for t in valid[:data["natural"]]])
        near = np.flatnonzero(natural & ~exact)
        same_key = [k for k in near if near_key(valid[k]) == near_key(everything[match[k]])]
        others = [k for k in near if k not in set(same_key)]
        row: dict[str, Any] = {
            "data": name, "threshold": threshold, "train": len(train), "valid": len(valid),
            "planted": len(planted), "recall": float(planted.mean())}
        for kind in KINDS:
            mask = np.array(data["kinds"]) == kind
            row[kind] = float(planted[mask].mean())
        row.update({"natural exact": int((natural & exact).sum()), "natural near": len(near),
                    "same key": len(same_key),
                    "precision": float(planted.sum() / max(1, planted.sum() + len(near))),
                    "precision same key right": float((planted.sum() + len(same_key))
                                                      / max(1, planted.sum() + len(near))),
                    "seconds": round(seconds, 2)})
        rows.append(row)
        samples += [f"{name} @ {threshold}: {valid[k][:70]!r} ~ {everything[match[k]][:70]!r}"
                    for k in others[:8]]
    return rows, samples


def cost(texts: list[str], threshold: float) -> dict[str, Any]:
    times = []
    for _ in range(2):
        start = time.perf_counter()
        found = find_near_duplicates(texts, threshold)
        clusters = found.clusters()
        times.append(time.perf_counter() - start)
    tracemalloc.start()
    find_near_duplicates(texts, threshold).clusters()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"rows": len(texts), "threshold": threshold, "seconds": round(min(times), 2),
            "seconds_runs": [round(t, 2) for t in times],
            "peak_traced_mb": round(peak / 2**20, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "verified_pairs": len(found.pairs),
            "clusters_with_copies": int(np.count_nonzero(np.bincount(clusters) > 1)),
            "load_1m": round(os.getloadavg()[0], 2)}


def datasketch_cost(texts: list[str], threshold: float) -> dict[str, Any]:
    from datasketch import MinHash, MinHashLSH

    start = time.perf_counter()
    keys = list(dict.fromkeys(near_key(t) for t in texts))
    n = shingle_size(keys)  # the same shingles as fitclass's check
    shingles = [{k[i:i + n].encode() for i in range(max(1, len(k) - n + 1))} for k in keys]
    hashes = MinHash.bulk(shingles, num_perm=128)
    lsh = MinHashLSH(threshold=threshold, num_perm=128)
    for i, minhash in enumerate(hashes):
        lsh.insert(i, minhash)
    candidates = sum(len(lsh.query(m)) - 1 for m in hashes) // 2
    seconds = time.perf_counter() - start
    return {"rows": len(texts), "keys": len(keys), "shingle": n, "seconds": round(seconds, 2),
            "candidate_pairs": candidates, "load_1m": round(os.getloadavg()[0], 2)}


def prepare_cost(data: Path) -> list[dict[str, Any]]:
    from fitclass.data.prepare import prepare_data
    from fitclass.recipe import DataConfig

    frame = pd.read_csv(data / "nsmc" / "train.tsv", sep="\t", quoting=3, keep_default_na=False)
    frame = frame[frame["document"].astype(str).str.strip() != ""]
    path = scratch_dir("text_near_duplicates") / "nsmc_nonempty.tsv"
    frame.to_csv(path, sep="\t", index=False, quoting=3)
    rows = []
    for threshold, dedupe in ((None, "none"), (0.8, "none"), (0.8, "group")):
        times = []
        for _ in range(2):
            start = time.perf_counter()
            prepared = prepare_data(DataConfig(
                train=path, text="document", quoting="none",
                near_duplicate_threshold=threshold, split={"dedupe": dedupe}))
            times.append(time.perf_counter() - start)
        rows.append({"threshold": threshold, "dedupe": dedupe, "seconds": round(min(times), 2),
                     "findings": {f.check: f.count for f in prepared.report.findings}})
    return rows


def dedupe_rows(data: Path, seeds: list[int]) -> list[dict[str, Any]]:
    import fitclass

    frame = pd.read_csv(data / "sst2" / "train.tsv", sep="\t", keep_default_na=False)
    rng = random.Random(0)
    sentences = frame["sentence"].tolist()
    picked = [i for i in rng.sample(range(len(frame)), int(0.3 * len(frame)))
              if len(sentences[i].split()) >= 2]
    copies = pd.DataFrame({
        "sentence": [edit(sentences[i], rng.choice(KINDS), rng, rng.choice(sentences))
                     for i in picked],
        "label": frame["label"].iloc[picked].to_numpy()})
    planted = pd.concat([frame, copies], ignore_index=True).sample(frac=1.0, random_state=0)
    folder = scratch_dir("text_near_duplicates")
    train_path = folder / "sst2_planted.tsv"
    planted.to_csv(train_path, sep="\t", index=False)
    rows = []
    for dedupe in ("none", "group"):
        for seed in seeds:
            recipe = {"data": {"train": str(train_path), "text": "sentence",
                               "split": {"valid_size": 0.2, "seed": seed, "dedupe": dedupe}},
                      "model": {"backbone": "tfidf"}, "train": {"seed": seed}}
            run = fitclass.train(recipe, out=folder / f"run-{dedupe}-{seed}", overwrite=True)
            valid = json.loads((run.path / "metrics.json").read_text())["accuracy"]
            dev = run.evaluate(data / "sst2" / "dev.tsv", text_column="sentence")["accuracy"]
            checks = json.loads((run.path / "data_checks.json").read_text())
            leak = {f["check"]: f["count"] for f in checks["warnings"] + checks["info"]}
            rows.append({"dedupe": dedupe, "seed": seed,
                         "valid_rows": sum(checks["class_counts"]["valid"].values()),
                         "valid_accuracy": float(valid),
                         "dev_accuracy": float(dev), "gap": float(valid - dev),
                         "leakage": leak.get("leakage", 0),
                         "near_leakage": leak.get("near_duplicate_leakage", 0),
                         "removed": leak.get("dedupe", 0)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", nargs="+", default=["recall", "cost", "dedupe"],
                        choices=["recall", "cost", "prepare", "datasketch", "dedupe"])
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.7, 0.8, 0.9])
    parser.add_argument("--threshold", type=float, default=0.8, help="for cost")
    parser.add_argument("--planted", type=int, default=500, help="copies per dataset")
    parser.add_argument("--nsmc-rows", type=int, default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--out", default="bench/out/text_near_duplicates.json")
    args = parser.parse_args()
    data = Path(args.data_dir)
    result: dict[str, Any] = {"revision": git_revision(), "load_1m_start": os.getloadavg()[0]}
    if "recall" in args.parts:
        rows, samples = [], []
        for name, texts in (("sst2", load(data, "sst2")),
                            ("nsmc", load(data, "nsmc", args.nsmc_rows))):
            found, seen = recall_rows(name, texts, args.planted, args.thresholds)
            rows += found
            samples += seen
        result["recall"], result["natural_near_samples"] = rows, samples
        print(markdown_table(rows, ["data", "threshold", "train", "valid", "planted", "recall",
                                    *KINDS, "natural exact", "natural near", "same key",
                                    "precision", "precision same key right", "seconds"]))
        print("\n".join(samples))
    if "cost" in args.parts:
        result["cost"] = cost(load(data, "nsmc", args.nsmc_rows), args.threshold)
        print(json.dumps(result["cost"]))
    if "prepare" in args.parts:
        result["prepare"] = prepare_cost(data)
        print(json.dumps(result["prepare"]))
    if "datasketch" in args.parts:
        result["datasketch"] = datasketch_cost(load(data, "nsmc", args.nsmc_rows), args.threshold)
        print(json.dumps(result["datasketch"]))
    if "dedupe" in args.parts:
        result["dedupe"] = dedupe_rows(data, args.seeds)
        print(markdown_table(result["dedupe"], ["dedupe", "seed", "valid_rows", "valid_accuracy",
                                                "dev_accuracy", "gap", "leakage",
                                                "near_leakage", "removed"]))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(out)


if __name__ == "__main__":
    main()
