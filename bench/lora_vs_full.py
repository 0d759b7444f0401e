"""LoRA vs full fine-tuning of the embedded MiniLM on SST-2, on the CPU (issue 19).

    PYTHONPATH=src python bench/lora_vs_full.py --rows 2000 --seeds 3 --out /tmp/lora-bench

Each (config, seed) trains in its own process (`--worker SPEC`), the configs interleaved
within each seed so that machine drift hits both alike. A run trains on the first `--rows`
rows of `sst2/train.tsv` (a stratified fifth held out for checkpoint selection) and is scored
on `sst2/dev.tsv`. Reported per config: dev accuracy (mean and spread over seeds), trainable
parameters, the worker's peak resident memory (`ru_maxrss`: the process's high-water mark,
model, optimiser state and activations included) and training samples/s (fitclass's own clock:
optimiser steps only). Writes `results.json` and prints a markdown table for
docs/benchmarks.md. `--rows 64 --seeds 1 --epochs 1` is a smoke run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("FITCLASS_DATA", REPO.parent / "shared" / "data")) / "sst2"
RESULT_MARK = "LORA_BENCH_RESULT "

#: The two ways to fine-tune; the learning rates are each method's usual ones for MiniLM.
CONFIGS: dict[str, dict[str, Any]] = {
    "full": {"train": {"lr": 5e-5}},
    "lora": {"train": {"lr": 5e-4},
             "model": {"peft": {"method": "lora", "r": 16, "alpha": 32, "dropout": 0.05,
                                "target_modules": "auto"}}},
}


def recipe(config: str, seed: int, rows: int, epochs: int) -> dict[str, Any]:
    extra = CONFIGS[config]
    return {
        "data": {"train": str(DATA / "train.tsv"), "text": "sentence", "label": "label",
                 "limit": rows, "split": {"valid_size": 0.2, "seed": 0}},
        "model": {"backbone": "minilm", "max_length": 64, **extra.get("model", {})},
        "train": {"epochs": epochs, "batch_size": 32, "seed": seed, "precision": "fp32",
                  "cache_features": False, **extra["train"]},
    }


def worker(spec_path: Path) -> None:
    """One training run; prints `RESULT_MARK` and its measurements as JSON."""
    import torch

    import fitclass

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    run = fitclass.train(recipe(spec["config"], spec["seed"], spec["rows"], spec["epochs"]),
                         out=spec["out"], overwrite=True)
    metrics = json.loads((run.path / "metrics.json").read_text(encoding="utf-8"))
    scored = run.evaluate(str(DATA / "dev.tsv"))  # the run's columns: sentence, label
    classifier = run.classifier
    module = classifier.module  # type: ignore[attr-defined]
    fixed = classifier.fixed_parameters()  # type: ignore[attr-defined]
    unused = set(classifier.unused_parameters())  # type: ignore[attr-defined]
    trainable = sum(p.numel() for n, p in module.named_parameters()
                    if n not in fixed and n not in unused)
    total = sum(p.numel() for p in module.parameters())
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(RESULT_MARK + json.dumps({
        "config": spec["config"], "seed": spec["seed"], "dev_accuracy": scored["accuracy"],
        "valid_accuracy": metrics.get("accuracy"), "trainable_parameters": trainable,
        "total_parameters": total, "peak_rss_mib": round(peak_kib / 1024, 1),
        "train_samples_per_s": metrics.get("train_samples_per_second"),
        "train_seconds": metrics.get("train_seconds")}), flush=True)


def run_worker(spec: dict[str, Any], work: Path) -> dict[str, Any]:
    path = work / f"{spec['config']}-{spec['seed']}.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": str(REPO / "src")}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--worker", str(path)], env=env,
                          capture_output=True, text=True)
    (work / f"{spec['config']}-{spec['seed']}.log").write_text(done.stdout + done.stderr)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if done.returncode != 0 or not lines:
        sys.exit(f"{spec['config']} seed {spec['seed']} failed; see "
                 f"{work / (spec['config'] + '-' + str(spec['seed']) + '.log')}")
    return {**json.loads(lines[-1][len(RESULT_MARK):]),
            "wall_seconds": round(time.perf_counter() - start, 1)}


def summary(results: list[dict[str, Any]]) -> str:
    rows = ["| config | dev accuracy (mean ± sd) | trainable parameters | peak RSS MiB | "
            "train samples/s |", "| --- | --- | --- | --- | --- |"]
    for config in CONFIGS:
        mine = [r for r in results if r["config"] == config]
        if not mine:
            continue
        accuracy = [r["dev_accuracy"] for r in mine]
        spread = statistics.stdev(accuracy) if len(accuracy) > 1 else 0.0
        rows.append(
            f"| {config} | {statistics.mean(accuracy):.4f} ± {spread:.4f} | "
            f"{mine[0]['trainable_parameters']:,} of {mine[0]['total_parameters']:,} | "
            f"{statistics.mean(r['peak_rss_mib'] for r in mine):.0f} | "
            f"{statistics.mean(r['train_samples_per_s'] for r in mine):.1f} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("/tmp/fitclass-lora-bench"))
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.worker)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for seed in range(args.seeds):
        order = list(CONFIGS) if seed % 2 == 0 else list(reversed(CONFIGS))  # interleaved
        for config in order:
            spec = {"config": config, "seed": seed, "rows": args.rows, "epochs": args.epochs,
                    "out": str(args.out / f"{config}-seed-{seed}")}
            results.append(run_worker(spec, args.out))
            print(json.dumps(results[-1]), flush=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(summary(results))


if __name__ == "__main__":
    main()
