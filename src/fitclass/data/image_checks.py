"""Image data checks, each a function from scanned files (`image_io.ImageInfo`) to a `Finding`.

Bad files (missing, unreadable, truncated) are errors under `data.on_bad_image: fail` and
warnings under `skip` (the rows dropped from training; kept without a prediction when a
finished run scores them). Mode conversions and EXIF rotations are counted and listed;
extreme sizes, exact duplicates (SHA-256 of the bytes) and near duplicates (dHash Hamming
distance) inside train, and either kind across train and validation (leakage), are warnings.
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

import pandas as pd

from fitclass.data.checks import MAX_LISTED, Finding
from fitclass.data.image_io import ImageInfo
from fitclass.data.near_duplicates import near_pairs
from fitclass.data.table import Label, TextTable
from fitclass.recipe import ImagesConfig


def _listed(items: list[str]) -> str:
    shown = items[:MAX_LISTED]
    more = f" and {len(items) - len(shown)} more" if len(items) > len(shown) else ""
    return "; ".join(shown) + more


def check_bad_images(infos: list[ImageInfo], source: str, on_bad: Literal["fail", "skip"],
                     *, kept: bool = False) -> Finding | None:
    """Files that could not be read or fully decoded, with the reason for each; `kept`: the
    rows stay, without a prediction (scoring under `skip`)."""
    bad = [i for i, info in enumerate(infos) if info.error is not None]
    if not bad:
        return None
    listed = [f"{infos[i].path}: {infos[i].error}" for i in bad]
    if on_bad == "fail":
        return Finding("error", "bad_image",
                       f"{source}: {len(bad)} images cannot be used: {_listed(listed)}; replace "
                       f"or remove them, or set data.on_bad_image: skip to drop them",
                       count=len(bad), rows=bad[:100], examples=listed[:100])
    fate = "have no prediction (their error column says why)" if kept else "dropped"
    return Finding("warning", "bad_image",
                   f"{source}: {len(bad)} unreadable images {fate} (data.on_bad_image: skip): "
                   f"{_listed(listed)}", count=len(bad), rows=bad[:100], examples=listed[:100])


def check_modes(infos: list[ImageInfo], source: str) -> Finding | None:
    """Images not stored as RGB (greyscale, RGBA, palette...) are converted; counted by mode
    and listed by file (a palette GIF among photos is often a placeholder, not a photo)."""
    rows = [i for i, info in enumerate(infos) if info.error is None and info.mode != "RGB"]
    if not rows:
        return None
    modes = Counter(infos[i].mode for i in rows)
    listed = [f"{infos[i].path} ({infos[i].mode})" for i in rows]
    return Finding("info", "mode_converted",
                   f"{source}: {len(rows)} images converted to RGB (by mode: {dict(modes)}; "
                   f"transparency composited on white): {_listed(listed)}", count=len(rows),
                   examples=listed[:100])


def check_orientation(infos: list[ImageInfo], source: str) -> Finding | None:
    """Images whose EXIF orientation was applied (camera photos stored sideways)."""
    rotated = [i for i, info in enumerate(infos) if info.rotated]
    if not rotated:
        return None
    listed = [infos[i].path for i in rotated]
    return Finding("info", "exif_orientation",
                   f"{source}: {len(rotated)} images rotated upright by their EXIF "
                   f"orientation: {_listed(listed)}",
                   count=len(rotated), rows=rotated[:100], examples=listed[:100])


def check_sizes(infos: list[ImageInfo], source: str, config: ImagesConfig) -> Finding | None:
    """Tiny or huge images, and extreme aspect ratios (a resize to a square distorts them)."""
    listed, rows = [], []
    for row, info in enumerate(infos):
        if info.error is not None:
            continue
        short, long = sorted((info.width, info.height))
        if short < config.min_side or long > config.max_side:
            listed.append(f"{info.path} ({info.width}x{info.height})")
        elif long / max(short, 1) > config.max_aspect:
            listed.append(f"{info.path} ({info.width}x{info.height}, aspect "
                          f"{long / max(short, 1):.1f})")
        else:
            continue
        rows.append(row)
    if not rows:
        return None
    return Finding("warning", "extreme_size",
                   f"{source}: {len(rows)} images have extreme sizes or aspect ratios (sides "
                   f"outside {config.min_side}-{config.max_side} px or aspect above "
                   f"{config.max_aspect:g}): {_listed(listed)}; check them or adjust "
                   f"data.images.min_side / max_side / max_aspect",
                   count=len(rows), rows=rows[:100], examples=listed[:100])


def _groups(values: pd.Series) -> list[list[int]]:
    positions: dict[str, list[int]] = {}
    for row, value in enumerate(values):
        positions.setdefault(str(value), []).append(row)
    return [rows for rows in positions.values() if len(rows) > 1]


def check_image_duplicates(table: TextTable, config: ImagesConfig) -> list[Finding]:
    """Byte-identical files, duplicates with different labels, and near duplicates (dHash)."""
    findings: list[Finding] = []
    paths, labels = [str(p) for p in table.texts], table.labels
    exact = _groups(table.frame["_sha256"])
    if exact:
        extra = sum(len(rows) - 1 for rows in exact)
        listed = [" = ".join(paths[r] for r in rows[:3]) for rows in exact]
        findings.append(Finding(
            "warning", "duplicate_images",
            f"{table.source}: {extra} images repeat an earlier file byte for byte, in "
            f"{len(exact)} groups: {_listed(listed)}; duplicates weigh those images more",
            count=extra,
            rows=[table.positions[r] for rows in exact for r in rows[1:]][:100],
            examples=[" = ".join(paths[r] for r in rows) for rows in exact[:MAX_LISTED]]))
        findings.extend(_conflicts(exact, paths, labels, table.source))
    if config.near_duplicate_bits:
        hashes, digests = list(map(str, table.frame["_dhash"])), list(table.frame["_sha256"])
        pairs = [(i, j, d) for i, j, d in near_pairs(hashes, None, config.near_duplicate_bits)
                 if digests[i] != digests[j]]  # byte-identical files are reported above
        if pairs:
            listed = [f"{paths[i]} ~ {paths[j]} ({d} bits)" for i, j, d in pairs]
            findings.append(Finding(
                "warning", "near_duplicate_images",
                f"{table.source}: {len(pairs)} pairs of images look nearly the same (dHash "
                f"within {config.near_duplicate_bits} bits): {_listed(listed)}; review them "
                f"(resized or re-encoded copies), or set data.images.near_duplicate_bits: 0",
                count=len(pairs), examples=listed[:100]))
    return findings


def _conflicts(groups: list[list[int]], paths: list[str], labels: list[Label] | None,
               source: str) -> list[Finding]:
    if labels is None:
        return []
    conflicting = [rows for rows in groups if len({labels[r] for r in rows}) > 1]
    if not conflicting:
        return []
    listed = [f"{paths[rows[0]]}: {sorted({str(labels[r]) for r in rows})}"
              for rows in conflicting]
    return [Finding("warning", "conflicting_duplicate_images",
                    f"{source}: {len(conflicting)} identical images carry different labels: "
                    f"{_listed(listed)}; at most one label can be right: review them",
                    count=len(conflicting), examples=listed[:100])]


def check_image_leakage(train: TextTable, valid: TextTable,
                        config: ImagesConfig) -> Finding | None:
    """Validation images identical or nearly identical to a training image."""
    train_paths, valid_paths = [str(p) for p in train.texts], [str(p) for p in valid.texts]
    by_hash = {str(h): i for i, h in enumerate(train.frame["_sha256"])}
    hits: dict[int, str] = {}
    for j, digest in enumerate(valid.frame["_sha256"]):
        if str(digest) in by_hash:
            hits[j] = f"{valid_paths[j]} = {train_paths[by_hash[str(digest)]]}"
    if config.near_duplicate_bits:
        pairs = near_pairs([str(h) for h in valid.frame["_dhash"]],
                           [str(h) for h in train.frame["_dhash"]], config.near_duplicate_bits)
        for j, i, d in pairs:
            hits.setdefault(j, f"{valid_paths[j]} ~ {train_paths[i]} ({d} bits)")
    if not hits:
        return None
    rows = sorted(hits)
    share = len(rows) / len(valid)
    return Finding(
        "warning", "image_leakage",
        f"{valid.source}: {len(rows)} of {len(valid)} validation images ({share:.1%}) are "
        f"identical or nearly identical to training images: {_listed([hits[r] for r in rows])}"
        f"; validation scores are optimistic: remove the copies, or (for a split fitclass "
        f"makes) set data.split.dedupe: group",
        count=len(rows), rows=[valid.positions[r] for r in rows][:100],
        examples=[hits[r] for r in rows[:100]])
