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

`--timm` adds `timm:resnet50` (pretrained: false) twice: through `fitclass.train`, and
through timm's own loader (`timm.data.create_dataset` + `create_loader` with its CUDA
prefetcher, `--workers` workers, no augmentation: what timm's `train.py` builds at these
settings) in the same bf16 channels-last loop as the plain side. timm's `train.py` script is
not part of the timm package, so its loader stands for it. timm needs torchvision: where it
does not import (this CPU machine), the timm rows are skipped with the reason.

Usage (from the repo root):
    .venv/bin/python bench/image_speed.py --device cuda --precision bf16   # ResNet-50, 224 px
    .venv/bin/python bench/image_speed.py --device cuda --precision bf16 --timm  # + timm
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
    parser.add_argument("--timm", action="store_true",
                        help="also timm:resnet50 through fitclass and through timm's loader")
    parser.add_argument("--workers", type=int, default=8, help="timm loader workers")
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
from fitclass.data.image_cache import image_store  # noqa: E402
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


def fitclass_side(root: Path, backbone: str, system: str = "fitclass") -> dict[str, Any]:
    model: dict[str, Any] = {"backbone": backbone, "image_size": ARGS.size}
    if backbone.startswith("timm:"):
        model["pretrained"] = False
    recipe = {"data": {"train": str(root), "images": True, "on_bad_image": "fail"},
              "model": model,
              "augment": {"crop_scale": None, "flip": False},
              "train": {"epochs": ARGS.epochs, "batch_size": ARGS.batch_size, "lr": 1e-3,
                        "precision": ARGS.precision, "seed": 0, "scheduler": "constant"}}
    run = fitclass.train(recipe, out=root / f"{system}-run", overwrite=True)
    return {"system": system, "images_per_s": run.metrics["train_samples_per_second"],
            "train_s": run.metrics["train_seconds"]}


def plain_side(rows: list[tuple[str, int]], folder: Path) -> dict[str, Any]:
    device = torch.device(ARGS.device)
    backbone = ImageBackbone(str(folder), ModelConfig(backbone=str(folder),
                                                      image_size=ARGS.size))
    classifier = backbone.build([str(c) for c in range(ARGS.classes)])
    module = classifier.module.to(device)
    if device.type == "cuda":
        module = module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    # the same stored pixels fitclass trains on, held in memory as uint8 (side x side x 3);
    # the module brings them to the model's side and normalises them on the device
    stored = image_store(classifier.stored_side).rows([p for p, _ in rows])
    pixels = torch.from_numpy(stored.take(slice(None)))
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


def timm_loader_side(root: Path) -> dict[str, Any]:
    """timm's resnet50 fed by timm's own loader (ImageFolder, workers, CUDA prefetcher that
    normalises on the device), in the plain side's bf16 channels-last loop."""
    import timm
    from timm.data import create_dataset, create_loader

    device = torch.device(ARGS.device)
    module = timm.create_model("resnet50", pretrained=False, num_classes=ARGS.classes)
    module = module.to(device)
    if device.type == "cuda":
        module = module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    dataset = create_dataset("", root=str(root / "train"), is_training=True)
    loader = create_loader(dataset, input_size=(3, ARGS.size, ARGS.size),
                           batch_size=ARGS.batch_size, is_training=True, no_aug=True,
                           use_prefetcher=device.type == "cuda", num_workers=ARGS.workers,
                           pin_memory=True, persistent_workers=True, device=device)
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3, fused=True)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(ARGS.precision)
    loss_fn = torch.nn.CrossEntropyLoss()
    module.train()
    seen, start = 0, time.perf_counter()
    for _ in range(ARGS.epochs):
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=dtype or torch.float32,
                                enabled=dtype is not None):
                loss = loss_fn(module(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += len(y)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"system": "timm loader", "images_per_s": seen / seconds, "train_s": seconds}


def timm_rows(root: Path, common: dict[str, Any]) -> list[dict[str, Any]]:
    """timm:resnet50 through fitclass and through timm's loader, where timm imports."""
    try:
        import timm  # noqa: F401
    except Exception as error:  # ImportError, or torchvision's RuntimeError
        print(f"timm does not import here ({type(error).__name__}: {error}); timm rows "
              f"skipped", flush=True)
        return []
    timm_common = common | {"model": "timm:resnet50"}
    return [timm_common | fitclass_side(root, "timm:resnet50", "fitclass timm"),
            timm_common | timm_loader_side(root)]


def main() -> None:
    root = scratch_dir(f"image-speed-{ARGS.size}-{ARGS.images}")
    rows = write_images(root, ARGS.images, ARGS.classes, ARGS.size)
    folder = model_folder(root, ARGS.tiny, ARGS.size)
    common = {"model": "resnet-tiny" if ARGS.tiny else "resnet-50", "size": ARGS.size,
              "device": torch.cuda.get_device_name(0) if ARGS.device == "cuda" else "cpu",
              "precision": ARGS.precision, "batch": ARGS.batch_size, "images": ARGS.images,
              "epochs": ARGS.epochs}
    results = [common | fitclass_side(root, str(folder)), common | plain_side(rows, folder)]
    if ARGS.timm:
        results += timm_rows(root, common)
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
