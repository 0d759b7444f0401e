"""The training-loop rewrite (issue 14) changes no behaviour: fitclass before and after it.

Two versions of fitclass train the same recipe with the same seeds, one run at a time:
- old: `src/` of a git commit (`--old-commit`, default f5a1c89, the last commit before the
  rewrite), extracted with `git archive` into a temporary folder that is removed at the end;
- new: `src/` of the working tree this script lives in (uncommitted changes included; the
  JSON records whether there were any).

Each run is its own process, `<this python> bench/engine_before_after.py --worker <spec>`,
with `PYTHONPATH=<that version's src>` and `HF_HUB_OFFLINE=1`, so each imports its own
fitclass (the worker checks which) under the same interpreter and packages. The worker calls
only API that both versions have: `fitclass.train(recipe_dict, out=...)`, then the run's
`metrics.json` and `history.csv`.

The recipe mirrors the fitclass side of bench/cpu_vs_trainer.py: the embedded MiniLM
backbone, one seeded sample of `sst2/train.tsv` (`--rows`, written once and given to every
run), validation on `sst2/dev.tsv` (872 rows) after every epoch, max_length 64, batch 32,
lr 5e-5, weight decay 0.01, linear schedule with 10% warmup, grad clip 1.0, 3 epochs, fp32,
the best epoch by dev accuracy, no calibration, `train.seed` = the run's seed. Seeds
interleave the versions, alternating which goes first (old-new, new-old, old-new, ...), so
a drift in machine speed hits both.

Measured per run:
- `dev_accuracy`, `dev_macro_f1`: the selected model on dev, from the run's metrics.json
  (no calibration, so the argmax decision); `best_step`, `best_epoch`: the selected
  checkpoint (`select` in metrics.json, its epoch from history.csv).
- `samples_per_s`, `train_s`: `train_samples_per_second` and `train_seconds` as the run
  records them (the loop's own clock: training steps only, evaluations excluded).
- `total_s`: the `fitclass.train` call inside the worker; `wall_s`: the whole worker process
  (interpreter start, imports, data checks, model load, training, writing the run).
- `cpu_s`: the worker's CPU time (user + system), and `load_1m`: the 1-minute load average
  at start and end of the run; a load above the core count means other processes competed
  and the wall times are inflated.

Reported: all runs; per seed the new/old samples/s ratio and the dev accuracy and macro-F1
differences (new - old); the mean ratio with its min-max; dev accuracy mean and std per
version. Written to `--out` (default bench/out/engine_before_after.json, which git ignores;
rewritten after every run) and beside it as markdown (.md).

Usage (from the repo root, on an otherwise idle machine; about 15 minutes on 2 cores):
    .venv/bin/python bench/engine_before_after.py
    (the defaults: --old-commit f5a1c89 --rows 2000 --epochs 3 --seeds 13 14 15)
Smoke test (about 1.5 minutes):
    .venv/bin/python bench/engine_before_after.py --rows 64 --epochs 1 --seeds 13 \
        --max-length 32 --dev-rows 64
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from _holdout import markdown_table, scratch_dir
from _runs import (
    REPO,
    WorkerFailed,
    children_cpu,
    extract_src,
    git,
    resolve_commit,
    spread,
    write_json,
)

RESULT_MARK = "ENGINE_BENCH_RESULT "
RUN_COLUMNS = ["version", "commit", "seed", "dev_accuracy", "dev_macro_f1", "samples_per_s",
               "train_s", "total_s", "wall_s", "cpu_s", "best_step", "best_epoch", "load_1m"]
SEED_COLUMNS = ["seed", "order", "old_samples_per_s", "new_samples_per_s", "ratio_new_old",
                "old_accuracy", "new_accuracy", "accuracy_diff", "macro_f1_diff"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # one run, from its spec file
    parser.add_argument("--old-commit", default="f5a1c89",
                        help="the version before the rewrite (default f5a1c89)")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--train", help="train TSV (default: <data-dir>/sst2/train.tsv)")
    parser.add_argument("--dev", help="dev TSV (default: <data-dir>/sst2/dev.tsv)")
    parser.add_argument("--rows", type=int, default=2000, help="seeded training sample size")
    parser.add_argument("--sample-seed", type=int, default=13,
                        help="seed of the one training sample every run gets")
    parser.add_argument("--dev-rows", type=int, default=None, help="first N dev rows (smoke)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[13, 14, 15],
                        help="each seed trains both versions, alternating which goes first")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--out", default=str(REPO / "bench" / "out" / "engine_before_after.json"),
                        help="results JSON (after every run); the markdown report goes beside "
                             "it (.md)")
    parser.add_argument("--keep-runs", action="store_true",
                        help="keep the run folders and worker logs (printed at the end)")
    args = parser.parse_args(argv)
    data = Path(args.data_dir) / "sst2"
    args.train = Path(args.train or data / "train.tsv").resolve()
    args.dev = Path(args.dev or data / "dev.tsv").resolve()
    return args


# --- the worker: one training run in its own process -------------------------------------

def worker(spec_path: Path) -> None:
    """Train one recipe with the fitclass that PYTHONPATH names; print one result line."""
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    # Imported here, not at the top: the parent process must not bind any fitclass; each
    # worker imports the version its PYTHONPATH names.
    import torch

    import fitclass

    where = Path(fitclass.__file__).resolve()
    if not where.is_relative_to(Path(spec["src"]).resolve()):
        sys.exit(f"worker: imported fitclass from {where}, expected it under {spec['src']}; "
                 f"an installed fitclass shadows PYTHONPATH")
    started = time.perf_counter()
    run = fitclass.train(spec["recipe"], out=spec["out"])
    total = time.perf_counter() - started
    metrics = json.loads((Path(run.path) / "metrics.json").read_text(encoding="utf-8"))
    history = pd.read_csv(Path(run.path) / "history.csv")
    select = metrics["select"]
    best = history.loc[history["step"] == select["step"]]
    columns = [c for c in ("step", "epoch", "train_loss", "valid_loss", "accuracy",
                           "macro_f1", "train_samples_per_s", "is_best") if c in history]
    result = {
        "dev_accuracy": float(metrics["accuracy"]), "dev_macro_f1": float(metrics["macro_f1"]),
        "samples_per_s": float(metrics["train_samples_per_second"]),
        "train_s": float(metrics["train_seconds"]), "total_s": total,
        "best_step": int(select["step"]),
        "best_epoch": float(best["epoch"].iloc[0]) if len(best) else None,
        "select": select, "history": history[columns].to_dict("records"),
        "fitclass_file": str(where), "fitclass_version": fitclass.__version__,
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
    }
    print(RESULT_MARK + json.dumps(result), flush=True)


# --- the parent: inputs, the two versions, the interleaved runs ---------------------------

def read_tsv(path: Path) -> pd.DataFrame:
    """SST-2 files quote a field only when needed: the csv dialect fitclass reads by default."""
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def write_inputs(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The one training sample (and the dev file, cut with --dev-rows) every run reads."""
    for path, flag in ((args.train, "--train"), (args.dev, "--dev")):
        if not path.is_file():
            sys.exit(f"{path}: no such file; pass --data-dir (the folder holding sst2/) or "
                     f"{flag}")
    frame = read_tsv(args.train)
    if args.rows > len(frame):
        sys.exit(f"--rows {args.rows}: {args.train} has only {len(frame)} rows; pass a larger "
                 f"file with --train")
    train = work / f"train-{args.rows}-seed{args.sample_seed}.tsv"
    frame.sample(n=args.rows, random_state=args.sample_seed).to_csv(train, sep="\t",
                                                                      index=False)
    dev = args.dev
    if args.dev_rows:
        dev = work / f"dev-{args.dev_rows}.tsv"
        read_tsv(args.dev).head(args.dev_rows).to_csv(dev, sep="\t", index=False)
    digest = hashlib.sha256(train.read_bytes()).hexdigest()
    return {"train": str(train), "train_sha256": digest, "dev": str(dev),
            "dev_rows": len(read_tsv(dev))}


def recipe(args: argparse.Namespace, inputs: dict[str, Any], seed: int) -> dict[str, Any]:
    """bench/cpu_vs_trainer.py's fitclass recipe (SST-2); every key exists in both versions."""
    return {
        "name": "engine-before-after",
        "data": {"train": inputs["train"], "valid": inputs["dev"], "text": "sentence",
                 "label": "label"},
        "model": {"backbone": "minilm", "max_length": args.max_length},
        "train": {"epochs": args.epochs, "batch_size": args.batch_size, "eval_batch_size": 64,
                  "lr": args.lr, "weight_decay": 0.01, "scheduler": "linear",
                  "warmup_ratio": 0.1, "grad_clip": 1.0, "precision": args.precision,
                  "seed": seed, "eval_every": 1, "select": {"metric": "accuracy"}},
        "decision": {"calibration": "none"},
    }


def worker_env(src: Path, device: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(src)  # replaced, not prepended: only this version's fitclass
    env["HF_HUB_OFFLINE"] = "1"
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # both versions pick the GPU when one is visible
    return env


def run_one(args: argparse.Namespace, version: str, commit: str, src: Path, seed: int,
            inputs: dict[str, Any], work: Path) -> dict[str, Any]:
    """One worker process; its output goes to a log, its result line comes back."""
    name = f"{version}-seed{seed}"
    spec = work / f"{name}.json"
    spec.write_text(json.dumps({"src": str(src), "out": str(work / "runs" / name),
                                "recipe": recipe(args, inputs, seed)}), encoding="utf-8")
    log = work / f"{name}.log"
    print(f"== {version} ({commit[:10]}) seed={seed}", flush=True)
    load_start, cpu_start = os.getloadavg()[0], children_cpu()
    started = time.perf_counter()
    with log.open("w", encoding="utf-8") as sink:
        done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker",
                               str(spec)], env=worker_env(src, args.device), cwd=work,
                              stdout=sink, stderr=subprocess.STDOUT, check=False)
    wall = time.perf_counter() - started
    lines = log.read_text(encoding="utf-8").splitlines()
    results = [line for line in lines if line.startswith(RESULT_MARK)]
    if done.returncode != 0 or not results:
        tail = "\n".join(lines[-30:])
        raise WorkerFailed(f"{name}: the worker failed (exit {done.returncode}); last lines "
                           f"of {log}:\n{tail}")
    row: dict[str, Any] = {"version": version, "commit": commit[:10], "seed": seed,
                           **json.loads(results[-1][len(RESULT_MARK):]), "wall_s": wall,
                           "cpu_s": children_cpu() - cpu_start,
                           "load_1m": [round(load_start, 2), round(os.getloadavg()[0], 2)]}
    print(json.dumps({k: v for k, v in row.items() if k not in ("history", "select")}),
          flush=True)
    return row


def run_all(args: argparse.Namespace, versions: dict[str, tuple[str, Path]],
            inputs: dict[str, Any], work: Path, out: Path) -> list[dict[str, Any]]:
    """Both versions per seed, alternating which goes first; the JSON after every run."""
    rows: list[dict[str, Any]] = []
    for index, seed in enumerate(args.seeds):
        order = ("old", "new") if index % 2 == 0 else ("new", "old")
        for version in order:
            commit, src = versions[version]
            rows.append(run_one(args, version, commit, src, seed, inputs, work))
            rows[-1]["order"] = "-".join(order)
            write_json(out, report(args, versions, inputs, rows))
    return rows


# --- the report ----------------------------------------------------------------------------

def per_seed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """new/old samples/s and the dev metric differences, for each seed both versions ran."""
    pairs = []
    for seed in dict.fromkeys(row["seed"] for row in rows):
        runs = {row["version"]: row for row in rows if row["seed"] == seed}
        if len(runs) < 2:
            continue
        old, new = runs["old"], runs["new"]
        pairs.append({
            "seed": seed, "order": old["order"],
            "old_samples_per_s": old["samples_per_s"], "new_samples_per_s": new["samples_per_s"],
            "ratio_new_old": new["samples_per_s"] / old["samples_per_s"],
            "old_accuracy": old["dev_accuracy"], "new_accuracy": new["dev_accuracy"],
            "accuracy_diff": new["dev_accuracy"] - old["dev_accuracy"],
            "macro_f1_diff": new["dev_macro_f1"] - old["dev_macro_f1"],
        })
    return pairs


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    pairs = per_seed(rows)
    result: dict[str, Any] = {}
    if pairs:
        result["ratio_new_old"] = spread([p["ratio_new_old"] for p in pairs])
        result["accuracy_diff"] = spread([p["accuracy_diff"] for p in pairs])
    for version in ("old", "new"):
        mine = [row for row in rows if row["version"] == version]
        if mine:
            result[version] = {key: spread([row[key] for row in mine]) for key in
                               ("dev_accuracy", "dev_macro_f1", "samples_per_s", "wall_s")}
    return result


def markdown(rows: list[dict[str, Any]]) -> str:
    shown = [{**row, "load_1m": "→".join(map(str, row["load_1m"]))} for row in rows]
    parts = ["## Runs", "", markdown_table(shown, RUN_COLUMNS), "", "## Per seed (new vs old)",
             "", markdown_table(per_seed(rows), SEED_COLUMNS), ""]
    stats = summary(rows)
    if "ratio_new_old" in stats:
        ratio, diff = stats["ratio_new_old"], stats["accuracy_diff"]
        parts.append(f"- samples/s new/old: mean {ratio['mean']:.3f} "
                     f"(min {ratio['min']:.3f}, max {ratio['max']:.3f})")
        parts.append(f"- dev accuracy new - old: mean {diff['mean']:+.4f} "
                     f"(min {diff['min']:+.4f}, max {diff['max']:+.4f})")
    for version in ("old", "new"):
        if version in stats:
            accuracy = stats[version]["dev_accuracy"]
            parts.append(f"- {version} dev accuracy: mean {accuracy['mean']:.4f}, "
                         f"std {accuracy['std']:.4f} over "
                         f"{sum(row['version'] == version for row in rows)} seeds")
    return "\n".join(parts)


def report(args: argparse.Namespace, versions: dict[str, tuple[str, Path]],
           inputs: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                if k != "worker"}
    first = rows[0] if rows else {}
    return {
        "benchmark": "engine_before_after",
        "settings": settings,
        "inputs": {k: v for k, v in inputs.items() if k not in ("train", "dev")},
        "versions": {"old": versions["old"][0], "new": versions["new"][0],
                     "new_src_uncommitted_changes": bool(git("status", "--porcelain", "--",
                                                             "src"))},
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "python": platform.python_version(), "executable": sys.executable,
                    "torch": first.get("torch"), "torch_threads": first.get("torch_threads")},
        "results": rows,
        "per_seed": per_seed(rows),
        "summary": summary(rows),
    }


def main(args: argparse.Namespace) -> None:
    out = Path(args.out).resolve()
    old_commit, new_commit = resolve_commit(args.old_commit), git("rev-parse", "HEAD")
    # Everything the benchmark writes besides --out lives in this one folder it creates
    # (the old src, the sample, run folders, logs), and only this folder is removed: kept
    # with --keep-runs, or when a run failed, for its log.
    work = Path(tempfile.mkdtemp(prefix="run-", dir=scratch_dir("engine_before_after")))
    keep = args.keep_runs
    try:
        versions = {"old": (old_commit, extract_src(old_commit, work)),
                    "new": (new_commit, REPO / "src")}
        inputs = write_inputs(args, work)
        started = time.perf_counter()
        rows = run_all(args, versions, inputs, work, out)
        text = markdown(rows)
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
    ARGS = parse_args()
    if ARGS.worker:
        worker(Path(ARGS.worker))
    else:
        main(ARGS)
