"""Image inputs as a `TextTable` whose inputs are absolute image paths.

Two layouts: a folder of class folders (`<folder>/<class>/*.png`, ImageFolder style; a root
holding `train/` and `valid/` stands for both), or a table whose `data.images.column` holds
paths relative to the table file, with the recipe's label column(s) (multi-class or
multi-label). Every file is decoded once here, into the decoded-image cache
(`data/image_cache.py`; a file it holds is not decoded at all); the scan results (hashes,
size, mode) ride along in the frame so the duplicate and leakage checks survive the
train/valid split. Scoring scans at the model's stored side without caching (`cache=False`):
the model then reads the pixels that scan decoded, from the cache's scratch store.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fitclass.data import checks, image_checks
from fitclass.data.image_cache import image_store
from fitclass.data.image_io import IMAGE_SUFFIXES, ImageInfo
from fitclass.data.readers import read_data_table
from fitclass.data.table import TextTable, read_labels
from fitclass.errors import DataError
from fitclass.recipe import DataConfig, ImagesConfig

#: The path and label columns of a folder layout's frame.
FOLDER_PATH, FOLDER_LABEL = "path", "label"
#: Frame column of rows kept without a prediction: why the image could not be used.
ERROR_COLUMN = "_error"


def resolve_layout(config: DataConfig) -> DataConfig:
    """`data.train` naming a root that holds `train/` (and `valid/`) means those folders."""
    root = config.train
    if not (root.is_dir() and (root / "train").is_dir()):
        return config
    valid = config.valid
    if valid is None and (root / "valid").is_dir():
        valid = root / "valid"
    return config.model_copy(update={"train": root / "train", "valid": valid})


def _images_in(folder: Path) -> list[Path]:
    return sorted(f for f in folder.rglob("*")
                  if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)


def folder_frame(folder: Path, need_labels: bool) -> tuple[pd.DataFrame, bool]:
    """(rows `path` relative to `folder` and `label`, whether labelled): class folders give
    labels; images lying directly in `folder` are unlabelled (prediction input)."""
    classes = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    loose = sorted(f.name for f in folder.iterdir()
                   if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    if classes and loose:
        raise DataError(f"{folder}: holds both class folders and loose images "
                        f"({', '.join(loose[:5])}); move the loose images into a class folder "
                        f"or elsewhere")
    if not classes:
        if need_labels:
            raise DataError(f"{folder}: no class folders; expected {folder}/<class>/<image> "
                            f"(suffixes {', '.join(IMAGE_SUFFIXES)}), or a table with paths")
        if not loose:
            raise DataError(f"{folder}: no images found (suffixes {', '.join(IMAGE_SUFFIXES)})")
        return pd.DataFrame({FOLDER_PATH: loose}), False
    rows: list[tuple[str, str]] = []
    empty = []
    for class_dir in classes:
        files = _images_in(class_dir)
        empty.extend([] if files else [class_dir.name])
        rows.extend((f.relative_to(folder).as_posix(), class_dir.name) for f in files)
    if empty:
        raise DataError(f"{folder}: class folders {empty[:8]} hold no images (suffixes "
                        f"{', '.join(IMAGE_SUFFIXES)}); add images or remove the folders")
    return pd.DataFrame(rows, columns=[FOLDER_PATH, FOLDER_LABEL]), True


def _table_frame(path: Path, config: DataConfig, images: ImagesConfig, need_labels: bool,
                 limit: int | None, report: checks.CheckReport, keep_bad: bool
                 ) -> tuple[pd.DataFrame, bool]:
    frame = read_data_table(path, config, limit=limit)
    columns = list(frame.columns)
    labelled = all(c in columns for c in config.label_columns)
    wanted = {"data.images.column": [images.column], "data.id": [config.id] if config.id else []}
    if need_labels:
        wanted["data.label"] = config.label_columns
    for key, names in wanted.items():
        for name in names:
            if name not in columns:
                raise DataError(f"{path}: column {name!r} not found; columns are {columns}; "
                                f"set {key} to one of them")
    empty = np.flatnonzero([not _path_text(v) for v in frame[images.column]]).tolist()
    if empty and not keep_bad:  # when kept, such rows carry the reason (see _scanned)
        report.add(checks.Finding(
            "error", "empty_path", f"{path}: {checks.where(path, empty)}: column "
            f"{images.column!r} has no image path; fill or delete these rows",
            count=len(empty), rows=empty[:100]))
    if labelled and isinstance(config.label, list):
        report.add(checks.check_binary_labels(frame, path, config.label))
    elif labelled:
        report.add(checks.check_labels(frame, path, config.label_columns[0]))
    return frame, labelled


def _path_text(value: object) -> str:
    """A path cell as text; a missing cell (JSONL null, NaN) is no path."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value).strip()


def _sample(frame: pd.DataFrame, limit: int | None) -> pd.DataFrame:
    """At most `limit` rows of a folder listing, spread over all classes (seeded)."""
    if limit is None or limit >= len(frame):
        return frame
    keep = np.sort(np.random.default_rng(0).choice(len(frame), size=limit, replace=False))
    return frame.iloc[keep].reset_index(drop=True)


def read_image_table(path: str | Path, config: DataConfig, report: checks.CheckReport, *,
                     need_labels: bool, limit: int | None = None,
                     keep_bad: bool = False, pixel_side: int | None = None,
                     cache: bool = True) -> TextTable:
    """Read a folder or table of images, decode every file once (into the decoded-image
    cache at `pixel_side`, or with `cache` False its scratch store; checks only without a
    side), record the image checks in `report` and raise on errors; bad files are dropped
    under `on_bad_image: skip`, or, with `keep_bad` (scoring), kept with their reason in
    column `ERROR_COLUMN`."""
    path, images = Path(path), config.images or ImagesConfig()
    if not path.exists():
        raise DataError(f"{path}: not found; data.train / data.valid must name an image "
                        f"folder or a table of image paths")
    if path.is_dir():
        if isinstance(config.label, list) or config.label_sep is not None:
            raise DataError(f"{path}: a folder layout gives one class per image; for "
                            f"multi-label images use a table with data.label columns")
        frame, labelled = folder_frame(path, need_labels)
        frame, column, base = _sample(frame, limit), FOLDER_PATH, path
    else:
        frame, labelled = _table_frame(path, config, images, need_labels, limit, report,
                                       keep_bad)
        column, base = images.column, path.parent
    report.raise_errors()
    table = _scanned(frame, column, base, str(path), config, report, keep_bad, pixel_side,
                     cache)
    if labelled:
        table.labels = (list(map(str, table.frame[FOLDER_LABEL])) if path.is_dir()
                        else read_labels(table.frame, config))
    if config.id is not None and not path.is_dir():
        table.ids, table.id_column = [str(v) for v in table.frame[config.id]], config.id
    return table


def image_list_table(paths: list[str], config: DataConfig, report: checks.CheckReport,
                     pixel_side: int | None = None) -> TextTable:
    """Image paths given as a list (Python API, standard input), scanned so that unreadable
    ones are kept with their reason (`on_bad_image: skip` at scoring); rows are identified by
    their 0-based position. `pixel_side`: the scoring model's stored side (its pixels are
    decoded by this scan, not cached)."""
    frame = pd.DataFrame({FOLDER_PATH: paths})
    table = _scanned(frame, FOLDER_PATH, Path.cwd(), "inputs", config, report, keep_bad=True,
                     pixel_side=pixel_side, cache=False)
    table.ids, table.id_column = [str(i) for i in range(len(paths))], "row"
    return table


def _scanned(frame: pd.DataFrame, column: str, base: Path, source: str, config: DataConfig,
             report: checks.CheckReport, keep_bad: bool,
             pixel_side: int | None = None, cache: bool = True) -> TextTable:
    """Decode every file of `frame[column]` once, or find it in the decoded-image cache,
    and keep the readable rows (or, with `keep_bad`, every row, the unreadable ones with
    their reason in `ERROR_COLUMN`)."""
    images = config.images or ImagesConfig()
    cells = [_path_text(v) for v in frame[column]]
    files = [str(p if p.is_absolute() else (base / p).resolve()) if cell else ""
             for cell, p in ((c, Path(c)) for c in cells)]
    # checks-only records are always kept (small); pixels only when `cache` says so
    scanned = iter(image_store(pixel_side).scan([f for f in files if f], images.threads,
                                                write=cache or pixel_side is None))
    infos = [next(scanned) if f else ImageInfo("", error=f"no image path in column {column!r}")
             for f in files]
    report.ran("bad_image", "extreme_size")
    report.add(image_checks.check_bad_images(infos, source, config.on_bad_image, kept=keep_bad))
    report.raise_errors()
    keep = [i for i, info in enumerate(infos) if info.error is None]
    if not keep and not keep_bad:
        raise DataError(f"{source}: none of the {len(infos)} images could be read")
    good = [infos[i] for i in keep]
    for finding in (image_checks.check_modes(good, source),
                    image_checks.check_orientation(good, source),
                    image_checks.check_sizes(good, source, images)):
        report.add(finding)
    rows = list(range(len(infos))) if keep_bad else keep
    frame = _with_scan(frame.iloc[rows].reset_index(drop=True), [infos[i] for i in rows])
    if keep_bad:
        frame[ERROR_COLUMN] = [infos[i].error or "" for i in rows]
    return TextTable(
        source=source, frame=frame, texts=[files[i] for i in rows], labels=None,
        ids=[str(v) for v in frame[column]],
        groups=(frame[config.group].astype(str).to_numpy()
                if config.group and config.group in frame.columns else None),
        id_column=column, positions=rows)


def _with_scan(frame: pd.DataFrame, infos: list[ImageInfo]) -> pd.DataFrame:
    frame = frame.copy()
    frame["_sha256"] = [i.sha256 for i in infos]
    frame["_dhash"] = [i.dhash for i in infos]
    frame["_width"] = [i.width for i in infos]
    frame["_height"] = [i.height for i in infos]
    frame["_mode"] = [i.mode for i in infos]
    return frame
