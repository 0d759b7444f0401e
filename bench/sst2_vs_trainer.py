"""fitclass vs Hugging Face `Trainer`: the same MiniLM fine-tune on an SST-2 sample.

Both sides train the identical module (`TransformerBackbone(...).build(...).module`: the
embedded all-MiniLM-L6-v2 encoder, mean pooling, dropout 0.1, a linear head) on the same
seeded sample of `sst2/train.tsv`, with the same seed, tokenizer, max_length, batch size,
learning rate, epochs, weight decay (none on biases and LayerNorm), linear schedule with
10% warmup, gradient clipping and precision; both evaluate on `sst2/dev.tsv` after every
epoch and keep the checkpoint with the best dev accuracy. What differs is the loop:
fitclass batches rows of similar length together (length-grouped shuffled batches);
Trainer shuffles rows at random and pads each batch to its longest row
(`DataCollatorWithPadding`), unless `--trainer-grouped` adds a third row with Trainer's
`group_by_length` sampler.

Measured per system and seed:
- `dev_accuracy`, `dev_macro_f1`: the selected model scored on dev by one shared scorer
  (fitclass's length-sorted batched inference, argmax), for both systems.
- `train_s`: wall time of the training call, evaluations and checkpoint saves included
  (fitclass: its loop from start to the end of the last evaluation, timed through the
  `Reporter` hooks, so data reading, checks, tokenizing and model loading are excluded;
  Trainer: `trainer.train()`, which likewise starts from tokenized rows and a built model).
- `samples_per_s`: training rows processed (rows x epochs) / `train_s`.
- `samples_per_cpu_s`: the same over this process's CPU time, and `load_1m`, the 1-minute
  load average at start and end: on a shared machine they show when other processes slowed
  the wall clock.
- `padded_tokens`: tokens per epoch after padding (batch size x longest row, summed) under
  each system's batching, the work the encoder actually does; `real_tokens` without padding.
- `total_s`: the whole call (fitclass: `fitclass.train`; Trainer: model build, tokenizing,
  `Trainer` set-up and `train()`), for reference.

Usage (from the repo root):
    .venv/bin/python bench/sst2_vs_trainer.py --rows 2000
    .venv/bin/python bench/sst2_vs_trainer.py --rows 20000 --device cuda --precision bf16 \
        --train <a train file with >= 20,000 rows>
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from _holdout import markdown_table, scratch_dir

COLUMNS = ["system", "seed", "dev_accuracy", "dev_macro_f1", "samples_per_s",
           "samples_per_cpu_s", "train_s", "total_s", "best_epoch", "padded_tokens",
           "load_1m"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--train", help="train TSV (default: <data-dir>/sst2/train.tsv)")
    parser.add_argument("--dev", help="dev TSV (default: <data-dir>/sst2/dev.tsv)")
    parser.add_argument("--rows", type=int, default=2000, help="seeded training sample size")
    parser.add_argument("--dev-rows", type=int, default=None, help="first N dev rows (smoke)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, nargs="+", default=[13],
                        help="one or more seeds; each runs every system")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--systems", nargs="+", default=["fitclass", "trainer"],
                        choices=["fitclass", "trainer", "trainer_grouped"])
    parser.add_argument("--trainer-grouped", action="store_true",
                        help="also run Trainer with its group_by_length sampler")
    parser.add_argument("--out", default="bench/out/sst2_vs_trainer.json")
    args = parser.parse_args()
    if args.trainer_grouped and "trainer_grouped" not in args.systems:
        args.systems.append("trainer_grouped")
    data = Path(args.data_dir) / "sst2"
    args.train = Path(args.train or data / "train.tsv")
    args.dev = Path(args.dev or data / "dev.tsv")
    return args


ARGS = parse_args()
if ARGS.device == "cpu":
    os.environ["CUDA_VISIBLE_DEVICES"] = ""  # both loops pick the GPU when one is visible
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402  (after the device choice above)
import torch  # noqa: E402
import transformers  # noqa: E402
from accelerate.utils import set_seed  # noqa: E402
from sklearn.metrics import accuracy_score, f1_score  # noqa: E402
from transformers import (  # noqa: E402
    DataCollatorWithPadding,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

import fitclass  # noqa: E402
from fitclass.data.tokens import tokenize_arrays  # noqa: E402
from fitclass.environment import git_revision  # noqa: E402
from fitclass.models.text import TransformerBackbone, embedded_minilm_path  # noqa: E402
from fitclass.recipe import ModelConfig  # noqa: E402
from fitclass.training.progress import Reporter  # noqa: E402

CLASS_NAMES = ["0", "1"]


def read_tsv(path: Path) -> pd.DataFrame:
    """SST-2 files quote a field only when needed: the csv dialect fitclass reads by default."""
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def sample_train(args: argparse.Namespace, seed: int) -> Path:
    """A seeded sample of the train file, written outside the repository."""
    frame = read_tsv(args.train)
    if args.rows > len(frame):
        sys.exit(f"--rows {args.rows}: {args.train} has only {len(frame)} rows; pass a larger "
                 f"file with --train")
    sample = frame.sample(n=args.rows, random_state=seed).reset_index(drop=True)
    path = scratch_dir("sst2") / f"train-{args.rows}-seed{seed}.tsv"
    sample.to_csv(path, sep="\t", index=False)
    return path


def dev_frame(args: argparse.Namespace) -> pd.DataFrame:
    frame = read_tsv(args.dev)
    return frame.head(args.dev_rows) if args.dev_rows else frame


def score(classifier: Any, dev: pd.DataFrame) -> dict[str, float]:
    """The one scorer for both systems: argmax of length-sorted batched inference."""
    probs = classifier.predict_proba(dev["sentence"].tolist(), batch_size=64)
    predicted = probs.argmax(axis=1)
    truth = dev["label"].astype(int).to_numpy()
    return {"dev_accuracy": float(accuracy_score(truth, predicted)),
            "dev_macro_f1": float(f1_score(truth, predicted, average="macro"))}


class Clock:
    """Wall time, this process's CPU time and the load average over one measured span."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0
        self.load: tuple[float, float] = (0.0, 0.0)
        self.steps: list[float] = []

    def start(self) -> None:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        self._load = os.getloadavg()[0]

    def step(self) -> None:
        """Mark the end of one optimiser step (for per-step times in the JSON)."""
        self.steps.append(time.perf_counter() - self._wall)

    def stop(self) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu
        self.load = (self._load, os.getloadavg()[0])

    def fields(self, samples: int) -> dict[str, Any]:
        """`load_1m`: 1-minute load average at start and end; above the core count means
        other processes competed for the CPU and wall times are inflated."""
        return {"samples_per_s": samples / self.wall, "train_s": self.wall,
                "train_cpu_s": self.cpu, "samples_per_cpu_s": samples / self.cpu,
                "load_1m": [round(x, 2) for x in self.load],
                "step_end_s": [round(x, 3) for x in self.steps]}


class TimedReporter(Reporter):
    """Plain progress lines, plus a `Clock` over the loop (first step to last eval)."""

    def __init__(self) -> None:
        super().__init__(tty=False)
        self.clock = Clock()

    def start(self, total_steps: int, done: int = 0) -> None:
        self.clock.start()
        super().start(total_steps, done)

    def step(self, loss: float, samples_per_second: float) -> None:
        self.clock.step()
        super().step(loss, samples_per_second)

    def close(self) -> None:
        super().close()
        self.clock.stop()


class StepClock(TrainerCallback):
    """The `Clock.step` mark for Trainer."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.clock.step()


def run_fitclass(args: argparse.Namespace, seed: int, train_path: Path,
                 dev: pd.DataFrame, out: Path) -> dict[str, Any]:
    dev_path = args.dev
    if args.dev_rows:
        dev_path = scratch_dir("sst2") / f"dev-{args.dev_rows}.tsv"
        dev.to_csv(dev_path, sep="\t", index=False)
    recipe = {
        "name": "sst2-bench",
        "data": {"train": str(train_path.resolve()), "valid": str(Path(dev_path).resolve()),
                 "text": "sentence", "label": "label"},
        "model": {"backbone": "minilm", "max_length": args.max_length},
        "train": {"epochs": args.epochs, "batch_size": args.batch_size, "eval_batch_size": 64,
                  "lr": args.lr, "weight_decay": 0.01, "scheduler": "linear",
                  "warmup_ratio": 0.1, "grad_clip": 1.0, "precision": args.precision,
                  "seed": seed, "eval_every": 1, "select": {"metric": "accuracy"}},
        "decision": {"calibration": "none"},
    }
    reporter = TimedReporter()
    started = time.perf_counter()
    run = fitclass.train(recipe, out=out / f"fitclass-seed{seed}", overwrite=True,
                         reporter=reporter)
    total = time.perf_counter() - started
    history = pd.read_csv(run.path / "history.csv")
    best = history.loc[history["is_best"]].iloc[-1]
    row: dict[str, Any] = {
        "system": "fitclass", "seed": seed, **score(run.classifier, dev),
        **reporter.clock.fields(args.rows * args.epochs), "total_s": total,
        "best_epoch": float(best["epoch"]),
        "own_best_accuracy": float(run.metrics["select"]["value"]),
        "own_train_samples_per_s_excl_eval": float(run.metrics["train_samples_per_second"]),
        "history": history[["epoch", "train_loss", "valid_loss", "accuracy",
                            "macro_f1"]].to_dict("records"),
    }
    return row


def encode(tokenizer: Any, frame: pd.DataFrame, max_length: int) -> list[dict[str, Any]]:
    """Token ids without padding, the same call fitclass makes, one dict of lists per row."""
    tokens = tokenize_arrays(tokenizer, frame["sentence"].tolist(), max_length)
    labels = frame["label"].astype(int).tolist()
    return [{**{k: v.tolist() for k, v in tokens.row(i).items()}, "labels": labels[i]}
            for i in range(len(frame))]


def trainer_arguments(args: argparse.Namespace, seed: int, output_dir: Path,
                      grouped: bool) -> TrainingArguments:
    """The fitclass recipe's hyperparameters, spelled for this transformers version."""
    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    extra: dict[str, Any] = {}
    if "warmup_ratio" in names:  # transformers 4.x; 5.x takes a ratio as warmup_steps < 1
        extra["warmup_ratio"] = 0.1
    else:
        extra["warmup_steps"] = 0.1
    if grouped:
        if "group_by_length" in names:
            extra["group_by_length"] = True
        else:
            extra["train_sampling_strategy"] = "group_by_length"
    if "overwrite_output_dir" in names:  # removed in transformers 5
        extra["overwrite_output_dir"] = True
    return TrainingArguments(
        output_dir=str(output_dir), seed=seed,
        per_device_train_batch_size=args.batch_size, per_device_eval_batch_size=64,
        learning_rate=args.lr, num_train_epochs=args.epochs, weight_decay=0.01,
        lr_scheduler_type="linear", max_grad_norm=1.0,
        bf16=args.precision == "bf16", use_cpu=args.device == "cpu",
        eval_strategy="epoch", save_strategy="epoch", logging_strategy="epoch",
        load_best_model_at_end=True, metric_for_best_model="accuracy", greater_is_better=True,
        save_total_limit=1, report_to="none", disable_tqdm=True, dataloader_num_workers=0,
        **extra,
    )


def compute_metrics(prediction: Any) -> dict[str, float]:
    predicted = np.asarray(prediction.predictions).argmax(axis=1)
    truth = np.asarray(prediction.label_ids)
    return {"accuracy": float(accuracy_score(truth, predicted)),
            "macro_f1": float(f1_score(truth, predicted, average="macro"))}


def run_trainer(args: argparse.Namespace, seed: int, train_path: Path, dev: pd.DataFrame,
                out: Path, grouped: bool) -> dict[str, Any]:
    name = "trainer_grouped" if grouped else "trainer"
    started = time.perf_counter()
    set_seed(seed)  # as fitclass does before building, so the new head follows the seed
    backbone = TransformerBackbone(embedded_minilm_path(),
                                   ModelConfig(backbone="minilm", max_length=args.max_length))
    classifier = backbone.build(CLASS_NAMES)
    tokenizer = classifier.tokenizer
    train_rows = encode(tokenizer, read_tsv(train_path), args.max_length)
    dev_rows = encode(tokenizer, dev, args.max_length)
    clock = Clock()
    trainer = Trainer(model=classifier.module,
                      args=trainer_arguments(args, seed, out / f"{name}-seed{seed}", grouped),
                      train_dataset=train_rows, eval_dataset=dev_rows,
                      data_collator=DataCollatorWithPadding(tokenizer),
                      processing_class=tokenizer, compute_metrics=compute_metrics,
                      callbacks=[StepClock(clock)])
    clock.start()
    trainer.train()
    clock.stop()
    total = time.perf_counter() - started
    classifier.module = trainer.model
    evals = [e for e in trainer.state.log_history if "eval_accuracy" in e]
    losses = {e["epoch"]: e["loss"] for e in trainer.state.log_history if "loss" in e}
    best = max(evals, key=lambda e: e["eval_accuracy"])  # first of ties, as Trainer keeps
    return {
        "system": name, "seed": seed, **score(classifier, dev),
        **clock.fields(args.rows * args.epochs), "total_s": total,
        "best_epoch": float(best["epoch"]),
        "own_best_accuracy": float(trainer.state.best_metric or float("nan")),
        "history": [{"epoch": e["epoch"], "train_loss": losses.get(e["epoch"]),
                     "valid_loss": e["eval_loss"], "accuracy": e["eval_accuracy"],
                     "macro_f1": e["eval_macro_f1"]} for e in evals],
    }


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and spread over seeds, per system (only with more than one seed)."""
    means = []
    for system in dict.fromkeys(row["system"] for row in rows):
        mine = [row for row in rows if row["system"] == system]
        if len(mine) < 2:
            continue
        entry: dict[str, Any] = {"system": system, "seed": f"mean of {len(mine)}"}
        for key in ("dev_accuracy", "dev_macro_f1", "samples_per_s", "samples_per_cpu_s",
                    "train_s", "total_s"):
            values = np.array([row[key] for row in mine], dtype=float)
            entry[key] = float(values.mean())
            entry[f"{key}_std"] = float(values.std(ddof=1))
        means.append(entry)
    return means


def padded_tokens(lengths: np.ndarray, batches: list[list[int]]) -> int:
    return int(sum(len(batch) * lengths[batch].max() for batch in batches))


def cut(order: Any, size: int) -> list[list[int]]:
    return [list(order[i:i + size]) for i in range(0, len(order), size)]


def padding_stats(args: argparse.Namespace, train_path: Path, seed: int) -> dict[str, Any]:
    """Tokens per epoch (epoch 0) after padding, under each system's batch sampler."""
    from transformers import AutoTokenizer
    from transformers.trainer_pt_utils import get_length_grouped_indices

    from fitclass.data.batching import LengthGroupedBatchSampler

    tokenizer = AutoTokenizer.from_pretrained(embedded_minilm_path())
    frame = read_tsv(train_path)
    lengths = tokenize_arrays(tokenizer, frame["sentence"].tolist(), args.max_length).lengths
    size = args.batch_size
    generator = torch.Generator().manual_seed(seed)
    return {
        "real_tokens": int(lengths.sum()),
        "fitclass": padded_tokens(lengths, list(LengthGroupedBatchSampler(
            list(lengths), size, seed))),
        "trainer": padded_tokens(lengths, cut(torch.randperm(
            len(lengths), generator=generator).numpy(), size)),
        "trainer_grouped": padded_tokens(lengths, cut(np.array(get_length_grouped_indices(
            lengths.tolist(), size, generator=generator)), size)),
    }


def main(args: argparse.Namespace) -> None:
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device is visible")
    out_json = Path(args.out)
    work = out_json.parent / "sst2_runs"
    dev = dev_frame(args)
    rows: list[dict[str, Any]] = []
    for seed in args.seed:
        train_path = sample_train(args, seed)
        padding = padding_stats(args, train_path, seed)
        print(f"tokens per epoch after padding: {padding}", flush=True)
        for system in args.systems:
            print(f"== {system} seed={seed}", flush=True)
            if system == "fitclass":
                row = run_fitclass(args, seed, train_path, dev, work)
            else:
                row = run_trainer(args, seed, train_path, dev, work, system == "trainer_grouped")
            row["padded_tokens"], row["real_tokens"] = padding[system], padding["real_tokens"]
            row["torch_threads"] = torch.get_num_threads()
            print(json.dumps({k: v for k, v in row.items()
                              if k not in ("history", "step_end_s")}), flush=True)
            rows.append(row)
            out_json.parent.mkdir(parents=True, exist_ok=True)
            out_json.write_text(json.dumps(report(args, rows), indent=2), encoding="utf-8")
    table = markdown_table(rows + summary(rows), COLUMNS)
    print(table)
    out_json.with_suffix(".md").write_text(table + "\n", encoding="utf-8")


def report(args: argparse.Namespace, rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "benchmark": "sst2_vs_trainer",
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(),
                    "device": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu",
                    "python": platform.python_version(), "torch": torch.__version__,
                    "transformers": transformers.__version__,
                    "fitclass": fitclass.__version__, "git_revision": git_revision()},
        "results": rows,
        "summary": summary(rows),
    }


if __name__ == "__main__":
    main(ARGS)
