"""fitclass vs Hugging Face Trainer on CPU: one run, seeds interleaved, ratios per seed.

Five systems train the same module on the same rows with the same hyperparameters:
- `fitclass`: this working tree's `src/` (uncommitted changes included; the JSON says
  whether there were any), with any `--fitclass-set key=value` overrides (`fitclass train
  --set` syntax); padded length-grouped row batches by default;
- `fitclass_packed`: the same tree and overrides plus `train.packing=on` and
  `train.batch_tokens` = `--batch-size` x the dataset's mean real tokens per row (at least
  `--max-length` rounded up to 8; `--packed-batch-tokens` fixes it instead), so an epoch
  takes about as many optimiser steps as the row batches (same updates, same schedule) and
  only the batch layout differs; the budget is in the JSON's `inputs`;
- `fitclass_old`: `src/` of `--old-commit` (default f5a1c89, the loop before issue 14),
  extracted with `git archive` into a temporary folder, no overrides;
- `trainer`: HF Trainer as configured by default: random batches padded to their longest
  row (`DataCollatorWithPadding`), driving fitclass's module (`bench/_trainer_worker.py`);
- `trainer_grouped`: the same with Trainer's `group_by_length` sampler.
The module: the embedded MiniLM (all-MiniLM-L6-v2) encoder, mean pooling, dropout 0.1, a
linear head. Hyperparameters: max_length 64, batch 32, lr 5e-5, 3 epochs, weight decay
0.01, linear schedule with 10% warmup, clipping at 1.0, fp32; every epoch is evaluated on
the scoring rows and the best epoch by accuracy is kept.

Datasets (`--datasets`):
- `sst2`: a seeded `--rows` sample of `sst2/train.tsv`, scored on all of `sst2/dev.tsv`;
- `trec`: `trec/train.tsv` has no test file, so a stratified 20% hold-out of it (seeded by
  `--sample-seed`) is the scoring set and a stratified `--rows` sample of the rest trains;
  `--trec-label coarse_label` (6 classes, the default: accuracy moves less between seeds
  than on the 50 fine labels, where one test row moves macro-F1 by up to 2 points) or
  `fine_label`.
Every run of a dataset reads the same files; `--seeds` change only training randomness.

Each run is its own process (`bench/_fitclass_worker.py` or `bench/_trainer_worker.py`)
with PYTHONPATH set to that system's `src/`, `HF_HUB_OFFLINE=1`, the GPU hidden and the same
torch thread count (`--threads`, default torch's default here). Per seed, each dataset runs
every system, the order rotated by one per seed (seed i starts at system i), so a drift in
machine speed does not always hit the same system.

Clocks, the same span for every system: each epoch's optimiser steps (batches from the
loader, forward, backward, clipping, optimiser and scheduler steps, per-step callbacks),
from the epoch's start to its last step; evaluations and the checkpoint saves after them
are excluded. fitclass (both versions): the run's own `train_seconds`; Trainer: callbacks
on_epoch_begin to on_epoch_end (Trainer evaluates and saves after on_epoch_end).

Measured per run:
- `accuracy`, `macro_f1`: the selected epoch on the scoring rows, argmax (fitclass: the
  run's metrics.json; Trainer: fitclass's length-sorted inference on its best model);
- `samples_per_s`: training rows x epochs / `train_s`; `tokens_per_s`: real tokens (ids
  after truncation, special tokens included, no padding) x epochs / `train_s`;
- `padded_tokens_per_epoch`: ids the word embeddings received in training mode, padding
  included (counted in the worker, so it is what each system really batched: for
  `fitclass_packed` the bins x bin width of every packed batch, the padding at the end of
  each bin included; its packed-equals-padded probe runs in eval mode and is not counted),
  / epochs; `padding`: padded / real - 1; `batches_per_epoch`: training forwards / epochs;
  `batching`: how the run batched (fitclass: its `environment.json` record);
- `x_grouped`, `x_default`: samples/s over Trainer grouped's and Trainer default's, same
  dataset and seed; `acc_vs_grouped`: accuracy minus Trainer grouped's;
- `total_s`: the training call (fitclass.train; Trainer: build, tokenize, train); `wall_s`
  and `cpu_s`: the whole worker process; `load_1m`: 1-minute load average at start and end
  (above the core count: other processes competed and the wall clock is inflated).
Summaries: mean and min-max over seeds per dataset and system. Written to `--out`
(default bench/out/cpu_vs_trainer.json, rewritten after every run) and beside it (.md).

Usage (from the repo root, on an otherwise idle machine):
    .venv/bin/python bench/cpu_vs_trainer.py
    (defaults: --datasets sst2 trec --rows 2000 --seeds 13 14 15 --epochs 3 --old-commit f5a1c89)
    .venv/bin/python bench/cpu_vs_trainer.py --datasets sst2 \
        --systems fitclass fitclass_packed trainer trainer_grouped --seeds 13 14 15
Smoke test:
    .venv/bin/python bench/cpu_vs_trainer.py --rows 64 --score-rows 64 --epochs 1 \
        --seeds 13 --max-length 32 --out /tmp/cpu_vs_trainer_smoke.json
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.model_selection import train_test_split

from _cpu_report import markdown, per_seed, summary
from _holdout import holdout, scratch_dir
from _runs import (
    REPO,
    WorkerFailed,
    extract_src,
    git,
    machine,
    resolve_commit,
    rotated,
    run_worker,
    warn_unfair_overrides,
    worker_env,
    write_json,
)

SYSTEMS = ["fitclass", "fitclass_packed", "fitclass_old", "trainer", "trainer_grouped"]
WORKERS = {"fitclass": "_fitclass_worker.py", "fitclass_packed": "_fitclass_worker.py",
           "fitclass_old": "_fitclass_worker.py", "trainer": "_trainer_worker.py",
           "trainer_grouped": "_trainer_worker.py"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--datasets", nargs="+", default=["sst2", "trec"],
                        choices=["sst2", "trec"])
    parser.add_argument("--systems", nargs="+", default=SYSTEMS, choices=SYSTEMS)
    parser.add_argument("--rows", type=int, default=2000,
                        help="training rows per dataset (a seeded sample; TREC: at most the "
                             "4,361 rows outside its hold-out)")
    parser.add_argument("--score-rows", type=int, default=None,
                        help="cap on scoring rows (smoke tests; default all)")
    parser.add_argument("--trec-label", choices=["coarse_label", "fine_label"],
                        default="coarse_label")
    parser.add_argument("--sample-seed", type=int, default=13,
                        help="seed of the training samples and the TREC hold-out")
    parser.add_argument("--seeds", type=int, nargs="+", default=[13, 14, 15])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads in every worker (default: torch's default here)")
    parser.add_argument("--old-commit", default="f5a1c89",
                        help="fitclass_old's commit (default f5a1c89, before issue 14)")
    parser.add_argument("--fitclass-set", action="append", default=[], metavar="KEY=VALUE",
                        help="recipe override for this tree's fitclass only (fitclass and "
                             "fitclass_packed; repeatable; `fitclass train --set` syntax)")
    parser.add_argument("--packed-batch-tokens", type=int, default=None,
                        help="fitclass_packed's train.batch_tokens on every dataset (default: "
                             "--batch-size x the dataset's mean real tokens per row)")
    parser.add_argument("--out", default=str(REPO / "bench" / "out" / "cpu_vs_trainer.json"))
    parser.add_argument("--keep-runs", action="store_true",
                        help="keep the run folders and worker logs (printed at the end)")
    args = parser.parse_args(argv)
    args.data_dir = Path(args.data_dir).resolve()
    warn_unfair_overrides(args.fitclass_set)
    return args


# --- inputs: one set of files per dataset, read by every run --------------------------------

def read_tsv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        sys.exit(f"{path}: no such file; pass --data-dir (the folder holding sst2/ and trec/)")
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def stratified_head(frame: pd.DataFrame, size: int | None, label: str,
                    seed: int) -> pd.DataFrame:
    """`size` rows keeping the class shares (all rows if size is None or too large; a
    plain seeded sample where a class has a single row, which stratifying cannot split)."""
    if size is None or size >= len(frame):
        return frame.reset_index(drop=True)
    if frame[label].value_counts().min() < 2:
        return frame.sample(n=size, random_state=seed).reset_index(drop=True)
    part, _ = train_test_split(frame, train_size=size, random_state=seed,
                               stratify=frame[label])
    return part.reset_index(drop=True)


def sst2_frames(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame, str, str]:
    train = read_tsv(args.data_dir / "sst2" / "train.tsv")
    if args.rows > len(train):
        sys.exit(f"--rows {args.rows}: sst2/train.tsv has only {len(train)} rows")
    sample = train.sample(n=args.rows, random_state=args.sample_seed).reset_index(drop=True)
    dev = stratified_head(read_tsv(args.data_dir / "sst2" / "dev.tsv"), args.score_rows,
                          "label", args.sample_seed)
    return sample, dev, "sentence", "label"


def trec_frames(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame, str, str]:
    label = args.trec_label
    frame = read_tsv(args.data_dir / "trec" / "train.tsv")
    train, test = holdout(frame, 0.2, args.sample_seed, stratify=label)
    return (stratified_head(train, args.rows, label, args.sample_seed),
            stratified_head(test, args.score_rows, label, args.sample_seed), "text", label)


def write_inputs(args: argparse.Namespace, work: Path) -> dict[str, dict[str, Any]]:
    inputs = {}
    for name in args.datasets:
        train, valid, text, label = (sst2_frames if name == "sst2" else trec_frames)(args)
        # a class the training sample lacks cannot be predicted by any system: its scoring
        # rows would only add the same errors to every row of the table
        unseen = ~valid[label].isin(set(train[label]))
        valid = valid.loc[~unseen]
        paths = {}
        for part, frame in (("train", train), ("valid", valid)):
            paths[part] = str(work / f"{name}-{part}.tsv")
            frame[[text, label]].to_csv(paths[part], sep="\t", index=False)
        inputs[name] = {**paths, "text": text, "label": label, "train_rows": len(train),
                        "valid_rows": len(valid), "valid_rows_unseen_class": int(unseen.sum()),
                        "class_names": sorted(set(train[label]))}
    return inputs


# --- what each system is given ----------------------------------------------------------------

def hyper(args: argparse.Namespace) -> dict[str, Any]:
    return {"epochs": args.epochs, "batch_size": args.batch_size, "eval_batch_size": 64,
            "lr": args.lr, "weight_decay": 0.01, "warmup_ratio": 0.1, "grad_clip": 1.0}


def recipe(args: argparse.Namespace, name: str, data: dict[str, Any],
           seed: int) -> dict[str, Any]:
    """The fitclass recipe; every key exists in the old version too."""
    h = hyper(args)
    return {
        "name": f"{name}-vs-trainer",
        "data": {"train": data["train"], "valid": data["valid"], "text": data["text"],
                 "label": data["label"]},
        "model": {"backbone": "minilm", "max_length": args.max_length},
        "train": {"epochs": h["epochs"], "batch_size": h["batch_size"],
                  "eval_batch_size": h["eval_batch_size"], "lr": h["lr"],
                  "weight_decay": h["weight_decay"], "scheduler": "linear",
                  "warmup_ratio": h["warmup_ratio"], "grad_clip": h["grad_clip"],
                  "precision": "fp32", "seed": seed, "eval_every": 1,
                  "select": {"metric": "accuracy"}},
        "decision": {"calibration": "none"},
    }


def spec(args: argparse.Namespace, system: str, name: str, data: dict[str, Any], seed: int,
         srcs: dict[str, Path], setup: dict[str, Any], out: Path) -> dict[str, Any]:
    common = {"threads": setup["threads"], "out": str(out), "device": "cpu",
              "vocab_size": setup["datasets"][name]["vocab_size"]}
    if system.startswith("fitclass"):
        overrides = {"fitclass": args.fitclass_set, "fitclass_old": [],
                     "fitclass_packed": setup["datasets"][name].get("packed_overrides")}
        src = srcs["fitclass_old" if system == "fitclass_old" else "fitclass"]
        return {**common, "src": str(src), "recipe": recipe(args, name, data, seed),
                "overrides": overrides[system], "clock": "own"}
    return {**common, "src": str(srcs["fitclass"]), "data": data, "seed": seed,
            "class_names": data["class_names"], "hyper": hyper(args),
            "model": {"backbone": "minilm", "max_length": args.max_length},
            "grouped": system == "trainer_grouped", "evaluate": True, "precision": "fp32"}


def check_inputs(args: argparse.Namespace, inputs: dict[str, dict[str, Any]], src: Path,
                 work: Path) -> dict[str, Any]:
    """The new recipe with its overrides must load; real tokens, vocabulary, threads; the
    packed system's token budget and overrides per dataset (when it runs)."""
    recipes = {name: recipe(args, name, data, args.seeds[0]) for name, data in inputs.items()}
    request: dict[str, Any] = {"recipes": recipes, "overrides": args.fitclass_set}
    if "fitclass_packed" in args.systems:
        request["packed"] = {"batch_rows": args.batch_size,
                             "batch_tokens": args.packed_batch_tokens}
    result = run_worker("_inputs_worker.py", request, "inputs", work,
                        worker_env([src], cpu_only=True))
    result["threads"] = args.threads or result["torch_threads_default"]
    return result


# --- the interleaved runs ---------------------------------------------------------------------

def derived(row: dict[str, Any], data: dict[str, Any], measured: dict[str, Any],
            epochs: int) -> dict[str, Any]:
    real = measured["real_tokens_per_epoch"]
    padded = row["padded_tokens"] / epochs
    return {"samples_per_s": data["train_rows"] * epochs / row["train_s"],
            "tokens_per_s": real * epochs / row["train_s"],
            "real_tokens_per_epoch": real, "padded_tokens_per_epoch": padded,
            "padding": padded / real - 1, "batches_per_epoch": row["train_batches"] / epochs,
            "batching": batching(row)}


def batching(row: dict[str, Any]) -> str:
    """How a run batched, in a few words: fitclass's `environment.json` record (absent in
    old versions), or Trainer's sampler."""
    if row["system"].startswith("trainer"):
        return "grouped" if row["system"] == "trainer_grouped" else "random"
    record = row.get("environment", {}).get("batching")
    if not record:
        return "grouped (not recorded)"
    size = (f"{record['batch_tokens']} tokens" if record.get("batch_tokens")
            else f"{record.get('batch_size')} rows")
    return f"{record['mode']}, {size}"


def run_all(args: argparse.Namespace, inputs: dict[str, dict[str, Any]],
            srcs: dict[str, Path], setup: dict[str, Any], work: Path,
            meta: dict[str, Any], out: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    total = len(args.seeds) * len(inputs) * len(args.systems)
    for index, seed in enumerate(args.seeds):
        order = rotated(args.systems, index)
        for name, data in inputs.items():
            for position, system in enumerate(order, start=1):
                label = f"{name}-{system}-seed{seed}"
                print(f"== [{len(rows) + 1}/{total}] {label}", flush=True)
                path = (srcs["fitclass"] if system != "fitclass_old" else srcs[system])
                env = worker_env([path], cpu_only=True, threads=setup["threads"])
                result = run_worker(WORKERS[system], spec(args, system, name, data, seed,
                                                          srcs, setup, work / "runs" / label),
                                    label, work, env)
                row = {"dataset": name, "system": system, "seed": seed,
                       "order": " > ".join(order), "position": position, **result}
                row.update(derived(row, data, setup["datasets"][name], args.epochs))
                rows.append(row)
                print({k: row[k] for k in ("accuracy", "samples_per_s", "padding", "batching",
                                           "train_s", "load_1m")}, flush=True)
                write_json(out, report(args, meta, setup, rows))
    return rows


def report(args: argparse.Namespace, meta: dict[str, Any], setup: dict[str, Any],
           rows: list[dict[str, Any]]) -> dict[str, Any]:
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    return {"benchmark": "cpu_vs_trainer", "settings": settings, **meta,
            "inputs": setup["datasets"], "torch_threads": setup["threads"],
            "results": per_seed(rows), "summary": summary(rows)}


def main(args: argparse.Namespace) -> None:
    out = Path(args.out).resolve()
    work = Path(tempfile.mkdtemp(prefix="run-", dir=scratch_dir("cpu_vs_trainer")))
    keep = args.keep_runs
    try:
        srcs = {"fitclass": REPO / "src"}
        meta: dict[str, Any] = {"versions": {"fitclass": git("rev-parse", "HEAD"),
                                             "fitclass_uncommitted_src_changes": bool(
                                                 git("status", "--porcelain", "--", "src"))},
                                "machine": machine()}
        if "fitclass_old" in args.systems:
            old = resolve_commit(args.old_commit)
            srcs["fitclass_old"] = extract_src(old, work)
            meta["versions"]["fitclass_old"] = old
        inputs = write_inputs(args, work)
        setup = check_inputs(args, inputs, srcs["fitclass"], work)
        print(f"inputs: { {k: v['real_tokens_per_epoch'] for k, v in setup['datasets'].items()} }"
              f" real tokens per epoch; {setup['threads']} torch threads", flush=True)
        budgets = {k: v["packed_batch_tokens"] for k, v in setup["datasets"].items()
                   if "packed_batch_tokens" in v}
        if budgets:
            print(f"fitclass_packed: train.batch_tokens {budgets}", flush=True)
        started = time.perf_counter()
        rows = run_all(args, inputs, srcs, setup, work, meta, out)
        text = markdown(per_seed(rows), summary(rows))
        print(text)
        print(f"\n{len(rows)} runs in {time.perf_counter() - started:.0f} s; results: {out}")
        out.with_suffix(".md").write_text(text + "\n", encoding="utf-8")
    except WorkerFailed as failed:
        keep = True
        sys.exit(str(failed))
    finally:
        if keep:
            print(f"run folders and worker logs kept in {work}")
        else:
            shutil.rmtree(work)


if __name__ == "__main__":
    main(parse_args())
