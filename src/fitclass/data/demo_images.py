"""The image demo: scikit-learn's bundled digits (8x8 greyscale, 10 classes) as PNG folders.

Written from `sklearn.datasets.load_digits` (shipped inside scikit-learn, no download), each
image upscaled to 32x32, into `<folder>/digits/{train,valid}/<digit>/<n>.png`:

- imbalance: digits 5-9 keep only `keep_tail` (default 40%) of their images, before the split;
- split: a stratified `valid_share` (default 20%) of the rest is the validation folder;
- label noise: `noise` (default 8%) of the *training* images are filed under a wrong digit
  drawn uniformly from the others; validation labels stay clean, so validation accuracy
  measures the true accuracy. The moved files are listed in `digits_noise.csv` (path,
  given_label, true_label); training never reads that file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from fitclass.atomic import atomic_write_text
from fitclass.errors import DataError

#: Side of the written PNGs (the 8x8 digits upscaled 4x).
SIDE = 32
TAIL = ("5", "6", "7", "8", "9")


def write_digits_demo(folder: Path, noise: float = 0.08, keep_tail: float = 0.4,
                      valid_share: float = 0.2, seed: int = 0) -> Path:
    """Write the digits folders and `digits_noise.csv` under `folder`; return the root
    (`<folder>/digits`, holding `train/` and `valid/`)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    root = folder / "digits"
    if root.exists() and not (folder / "digits_noise.csv").is_file():
        raise DataError(f"{root} exists and is not the digits demo (no digits_noise.csv "
                        f"beside it): fitclass does not write into it. Write the demo data "
                        f"into another folder")
    digits = load_digits()
    rng = np.random.default_rng(seed)
    labels = np.array([str(int(t)) for t in digits.target])
    keep = np.array([label not in TAIL or rng.random() < keep_tail for label in labels])
    images, labels = digits.images[keep], labels[keep]
    train_rows, valid_rows = train_test_split(np.arange(len(labels)), test_size=valid_share,
                                              stratify=labels, random_state=seed)
    classes = sorted(set(labels.tolist()))
    noisy: list[dict[str, str]] = []
    for split, rows in (("train", train_rows), ("valid", valid_rows)):
        for row in rows:
            given = str(labels[row])
            if split == "train" and rng.random() < noise:
                given = str(rng.choice([c for c in classes if c != labels[row]]))
            target = root / split / given / f"{row:05d}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            pixels = (images[row] * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
            Image.fromarray(pixels, mode="L").resize((SIDE, SIDE), Image.Resampling.BILINEAR
                                                     ).save(target)
            if given != labels[row]:
                noisy.append({"path": target.relative_to(root).as_posix(),
                              "given_label": given, "true_label": str(labels[row])})
    atomic_write_text(folder / "digits_noise.csv", pd.DataFrame(
        noisy, columns=["path", "given_label", "true_label"]).to_csv(index=False))
    return root


def digits_recipe(root: Path, epochs: int) -> dict[str, object]:
    """The demo recipe: the small ResNet from config, light crops (no flips: digits are not
    mirror-symmetric), AdamW with a cosine schedule."""
    return {
        "name": "demo-digits",
        # 8x8 digits carry too little detail for a 64-bit dHash: thousands of distinct
        # images collide, so the near-duplicate check is off (exact duplicates still run).
        "data": {"train": str(root.resolve()), "images": {"near_duplicate_bits": 0}},
        "model": {"backbone": "resnet-tiny", "pretrained": False, "image_size": SIDE,
                  "dropout": 0.1},
        "augment": {"crop_scale": [0.75, 1.0], "crop_ratio": [0.9, 1.1], "flip": False},
        "train": {"epochs": epochs, "batch_size": 64, "lr": 3e-3, "weight_decay": 1e-4,
                  "scheduler": "cosine", "warmup_ratio": 0.05, "precision": "fp32",
                  "select": {"metric": "accuracy"}},
    }
