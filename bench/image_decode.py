"""Image decode throughput on the CPU: the data path of a training run, without the model.

Measures, on a folder of images (hymenoptera: 245 photos up to 2592 px wide; the CIFAR
subset: 3,000 JPEGs of 32 px), what a run's data costs before the model sees a batch:

- first epoch: the data checks' scan (`read_image_table`) + the classifier's
  `training_data` + one pass over every training row (collated in batches), from a cold
  decoded-image cache where there is one;
- later epochs: one more pass over the rows;
- a simulated sweep: `--trials` trials in a row, each a new run (scan + training_data +
  `--epochs` passes; between trials the in-process caches are dropped, as if every trial
  were a new process), total seconds.

"Before" and "after" are the code of two commits, not a switch: the script uses the
`fitclass` it imports, so run it once with PYTHONPATH at the old commit's `src/` and once at
the new one's (a `git worktree` of each). Everything it calls exists in both:
`read_image_table`, `get_backbone(...).build`, `training_data` and its rows. `--old-limit-mb`
lowers the old code's in-memory limit (`models/image.py` `CACHE_BYTES`, 2 GiB) to show a data
set above it (rows then decode in every epoch); the new code has no such limit.

Usage (from the repository root; the lead runs it on an idle machine):
    git worktree add /tmp/fitclass-before <old commit>
    for side in before after; do
      src=$([ $side = before ] && echo /tmp/fitclass-before/src || echo "$PWD/src")
      PYTHONPATH=$src .venv/bin/python bench/image_decode.py --label $side \
          --data ../shared/data/hymenoptera/train --size 224
      PYTHONPATH=$src .venv/bin/python bench/image_decode.py --label $side \
          --data ../shared/data/cifar10_subset/train --size 32
    done
    # smoke: --limit 24 --trials 2 --epochs 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

import fitclass
from fitclass.data import checks
from fitclass.data.image_tables import read_image_table
from fitclass.models.catalog import get_backbone
from fitclass.recipe import DataConfig, load_recipe

try:  # the new code's cache; absent on the old commit
    from fitclass.data import image_cache
    from fitclass.data.image_io import decode_count
except ImportError:
    image_cache = None  # type: ignore[assignment]
    decode_count = None  # type: ignore[assignment]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="an image folder (<class>/<image>)")
    parser.add_argument("--size", type=int, default=224, help="the model's input side")
    parser.add_argument("--label", default="run", help="before | after, for the output name")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per sweep trial")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--limit", type=int, default=None, help="images (smoke tests)")
    parser.add_argument("--old-limit-mb", type=float, default=None,
                        help="the old code's in-memory limit (CACHE_BYTES), in MB")
    parser.add_argument("--out", default="bench/out/image_decode")
    return parser.parse_args()


def recipe(args: argparse.Namespace) -> Any:
    return load_recipe({
        "data": {"train": args.data, "images": True, "on_bad_image": "skip",
                 "limit": args.limit},
        "model": {"backbone": "resnet-tiny", "pretrained": False, "image_size": args.size},
        "train": {"batch_size": args.batch_size}})


def scan(config: DataConfig, side: int | None) -> Any:
    """The data checks' scan, filling the cache where the code has one."""
    kwargs = {"pixel_side": side} if image_cache is not None else {}
    return read_image_table(Path(config.train), config, checks.CheckReport(),
                            need_labels=True, limit=config.limit, **kwargs)


def loader(data: Any, batch_size: int) -> Any:
    """The rows as each version's training loop loads them: its own worker count (the old
    code decodes above its limit in up to 4 workers), persistent across epochs."""
    import torch

    return torch.utils.data.DataLoader(data.rows, batch_size=batch_size, shuffle=True,
                                       collate_fn=data.collate, num_workers=data.workers,
                                       persistent_workers=data.workers > 0)


def one_pass(rows: Any) -> int:
    """Every training row once, collated in batches (what the loader hands the device)."""
    seen = 0
    for batch in rows:
        seen += len(batch["pixel_values"])
    return seen


def new_process_state() -> None:
    """Drop what a new process would not have (the cache on disk stays)."""
    if image_cache is not None:
        image_cache._HASHES.clear()
        image_cache._STORES.clear()


def a_run(args: argparse.Namespace, classifier: Any, epochs: int) -> list[float]:
    """Seconds of: scan + training_data + first pass, then each later pass."""
    spec = recipe(args)
    side = classifier.stored_side if hasattr(classifier, "stored_side") else None
    start = time.perf_counter()
    table = scan(spec.data, side)
    targets = np.zeros(len(table), dtype=int)
    rows = loader(classifier.training_data(table.texts, targets, spec), args.batch_size)
    one_pass(rows)
    seconds = [time.perf_counter() - start]
    for _ in range(epochs - 1):
        start = time.perf_counter()
        one_pass(rows)
        seconds.append(time.perf_counter() - start)
    return seconds


def main() -> None:
    args = parse_args()
    if args.old_limit_mb is not None:
        import fitclass.models.image as image_module

        if not hasattr(image_module, "CACHE_BYTES"):
            raise SystemExit("--old-limit-mb: this fitclass has no in-memory limit "
                             "(CACHE_BYTES); run it against the old commit only")
        image_module.CACHE_BYTES = int(args.old_limit_mb * 1e6)  # type: ignore[attr-defined]
    cache = Path(tempfile.mkdtemp(prefix="image-decode-cache-"))
    os.environ["FITCLASS_CACHE"] = str(cache)  # cold: a cache of its own
    classifier = get_backbone(recipe(args).model).build(["a", "b"])
    images = len(scan(recipe(args).data, None))
    new_process_state()
    decodes = decode_count() if decode_count else None
    cold = a_run(args, classifier, epochs=3)
    first_decodes = decode_count() - decodes if decode_count and decodes is not None else None
    new_process_state()
    sweep_start, sweep_decodes = time.perf_counter(), decode_count() if decode_count else 0
    for _ in range(args.trials):
        a_run(args, classifier, epochs=args.epochs)
        new_process_state()
    sweep_seconds = time.perf_counter() - sweep_start
    result = {
        "label": args.label, "fitclass": str(Path(fitclass.__file__).parents[1]),
        "data": args.data, "images": images, "size": args.size,
        "old_limit_mb": args.old_limit_mb, "cpus": os.cpu_count(),
        "first_epoch_images_per_s": images / cold[0],
        "later_epoch_images_per_s": images / float(np.mean(cold[1:])),
        "first_run_decodes": first_decodes,
        "sweep_trials": args.trials, "sweep_epochs": args.epochs,
        "sweep_seconds": sweep_seconds,
        "sweep_decodes": (decode_count() - sweep_decodes) if decode_count else None,
    }
    shutil.rmtree(cache, ignore_errors=True)
    print(json.dumps(result, indent=2))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"{Path(args.data).parent.name}-{args.size}-{args.label}.json"
    (out / name).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
