"""Image training throughput: fitclass vs a plain PyTorch loop on the same model and images.

Both train the same architecture (a ResNet from `ResNetConfig`: ResNet-50 by default, random
weights, since the GPU machine has no network), built the same way fitclass builds it
(`ImageBackbone.build`: the HF ResNet encoder, pooled, dropout, linear head), on the same
synthetic JPEG folder, at the same side, batch size, learning rate and precision, without
augmentation on either side (equal work). fitclass goes through `fitclass.train` (data
checks, decode-once cache, accelerate, AMP, channels-last on GPU); the plain loop is the
textbook one: uint8 tensors already in memory, `torch.autocast`, channels-last, fused
AdamW. Reported: training images/s (fitclass: its loop's own count, evaluation excluded;
plain: the timed epochs, first step included on both sides).

Usage (from the repo root):
    .venv/bin/python bench/image_speed.py --device cuda --precision bf16   # ResNet-50, 224 px
    .venv/bin/python bench/image_speed.py --device cpu --tiny --size 32 --images 256  # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from _holdout import markdown_table, scratch_dir


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda")
    parser.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="bf16")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--images", type=int, default=2048, help="training images")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--tiny", action="store_true", help="resnet-tiny instead of ResNet-50")
    parser.add_argument("--out", default="bench/out/image_speed")
    return parser.parse_args()


ARGS = parse_args()
if ARGS.device == "cpu":
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from PIL import Image  # noqa: E402
from transformers import ResNetConfig, ResNetForImageClassification  # noqa: E402

import fitclass  # noqa: E402
from fitclass.data.image_io import decode_many  # noqa: E402
from fitclass.models.image import RESNET_TINY, ImageBackbone  # noqa: E402
from fitclass.recipe import ModelConfig  # noqa: E402


def write_images(root: Path, count: int, classes: int, size: int) -> list[tuple[str, int]]:
    """Random-noise JPEGs in class folders (the content does not matter for throughput)."""
    rng = np.random.default_rng(0)
    rows = []
    for index in range(count):
        label = index % classes
        path = root / "train" / f"c{label}" / f"{index}.jpg"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(path, quality=90)
        rows.append((str(path), label))
    for label in range(classes):  # a small validation folder: fitclass evaluates each epoch
        path = root / "valid" / f"c{label}" / "0.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((size, size, 3), label * 20, np.uint8)).save(path)
    return rows


def model_folder(root: Path, tiny: bool, size: int) -> Path:
    """An HF ResNet folder with random weights and a preprocessor config at `size`."""
    folder = root / ("resnet-tiny" if tiny else "resnet-50")
    config = ResNetConfig(**RESNET_TINY) if tiny else ResNetConfig()  # default = ResNet-50
    ResNetForImageClassification(config).save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225],
         "size": {"shortest_edge": size}, "crop_pct": 1.0}))
    return folder


def fitclass_side(root: Path, folder: Path) -> dict[str, Any]:
    recipe = {"data": {"train": str(root), "images": True, "on_bad_image": "fail"},
              "model": {"backbone": str(folder), "image_size": ARGS.size},
              "augment": {"crop_scale": None, "flip": False},
              "train": {"epochs": ARGS.epochs, "batch_size": ARGS.batch_size, "lr": 1e-3,
                        "precision": ARGS.precision, "seed": 0, "scheduler": "constant"}}
    run = fitclass.train(recipe, out=root / "fitclass-run", overwrite=True)
    return {"system": "fitclass", "images_per_s": run.metrics["train_samples_per_second"],
            "train_s": run.metrics["train_seconds"]}


def plain_side(rows: list[tuple[str, int]], folder: Path) -> dict[str, Any]:
    device = torch.device(ARGS.device)
    backbone = ImageBackbone(str(folder), ModelConfig(backbone=str(folder),
                                                      image_size=ARGS.size))
    classifier = backbone.build([str(c) for c in range(ARGS.classes)])
    module = classifier.module.to(device)
    if device.type == "cuda":
        module = module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    pixels = torch.from_numpy(decode_many([p for p, _ in rows], classifier.preprocess))
    labels = torch.tensor([label for _, label in rows])
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3, fused=True)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(ARGS.precision)
    scaler = torch.amp.GradScaler(enabled=ARGS.precision == "fp16")
    module.train()
    seen, start = 0, time.perf_counter()
    for _ in range(ARGS.epochs):
        order = torch.randperm(len(rows))
        for first in range(0, len(rows), ARGS.batch_size):
            batch = order[first:first + ARGS.batch_size]
            x = pixels[batch].to(device, non_blocking=True)
            if device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            y = labels[batch].to(device)
            with torch.autocast(device.type, dtype=dtype or torch.float32,
                                enabled=dtype is not None):
                loss = module(pixel_values=x, labels=y)["loss"]
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            seen += len(batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"system": "plain pytorch", "images_per_s": seen / seconds, "train_s": seconds}


def main() -> None:
    root = scratch_dir(f"image-speed-{ARGS.size}-{ARGS.images}")
    rows = write_images(root, ARGS.images, ARGS.classes, ARGS.size)
    folder = model_folder(root, ARGS.tiny, ARGS.size)
    common = {"model": "resnet-tiny" if ARGS.tiny else "resnet-50", "size": ARGS.size,
              "device": torch.cuda.get_device_name(0) if ARGS.device == "cuda" else "cpu",
              "precision": ARGS.precision, "batch": ARGS.batch_size, "images": ARGS.images,
              "epochs": ARGS.epochs}
    results = [common | fitclass_side(root, folder), common | plain_side(rows, folder)]
    for row in results:
        print(json.dumps(row), flush=True)
    out = Path(ARGS.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "image_speed.json").write_text(json.dumps(results, indent=2))
    table = markdown_table(results, list(results[0]))
    (out / "image_speed.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
