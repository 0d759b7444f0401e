"""From recipe to checked, split data: read, check, split, and name the classes."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fitclass.data import checks
from fitclass.data import near_duplicate_checks as near_checks
from fitclass.data.dedupe_groups import dedupe_groups, near_clusters
from fitclass.data.folds import assign_folds
from fitclass.data.readers import read_data_table
from fitclass.data.splits import dedupe_split, split_rows
from fitclass.data.table import TextInput, TextTable, build_table, joined, sort_class_names
from fitclass.data.text_near_duplicates import NearDuplicates, find_near_duplicates
from fitclass.recipe import DataConfig
from fitclass.target_kinds import kind_for


@dataclass
class PreparedData:
    """Train and validation rows, the class names (label index order) and the check report."""

    train: TextTable
    valid: TextTable
    class_names: list[str]
    report: checks.CheckReport


def scoring_config(columns: list[str], config: DataConfig) -> DataConfig:
    """A file scored by a finished run (evaluate, predict) may lack the recipe's id column
    (its rows are then identified by 0-based row index, as when a recipe names no id) and
    its group column (groups only matter for splitting training data)."""
    missing = {key: None for key in ("id", "group")
               if getattr(config, key) and getattr(config, key) not in columns}
    return config.model_copy(update=missing) if missing else config


def _checked_table(path: Path, config: DataConfig, report: checks.CheckReport, *,
                   need_labels: bool, limit: int | None, optional_id: bool = False,
                   pixel_side: int | None = None) -> TextTable:
    if config.images is not None:
        from fitclass.data.image_tables import read_image_table

        return read_image_table(path, config, report, need_labels=need_labels, limit=limit,
                                pixel_side=pixel_side)
    frame = read_data_table(path, config, limit=limit)
    if optional_id:
        config = scoring_config(list(frame.columns), config)
    checks.check_columns(frame, path, config, need_labels=need_labels)
    report.add(checks.check_texts(frame, path, config.text_columns))
    if need_labels:
        report.add(checks.check_label_values(frame, path, config))
    report.raise_errors()  # the rest needs clean texts and labels
    return build_table(frame, path, config, with_labels=need_labels)


def read_labelled(path: str | Path, config: DataConfig, limit: int | None = None, *,
                  optional_id: bool = False) -> TextTable:
    """Read and check a labelled file (for `evaluate`), raising on broken rows.
    `optional_id`: rows of a file without the id column are identified by row index."""
    return _checked_table(Path(path), config, checks.CheckReport(), need_labels=True, limit=limit,
                          optional_id=optional_id)


def read_inputs(path: str | Path, config: DataConfig, *, optional_id: bool = False) -> TextTable:
    """Read and check a file to predict on; a label column is used when present.
    `optional_id`: rows of a file without the id column are identified by row index."""
    if config.images is not None:  # a folder or table of images; labels used when present
        report = checks.CheckReport()
        table = _checked_table(Path(path), config, report, need_labels=False, limit=None)
        for finding in report.warnings:  # skipped files must not vanish from output unsaid
            if finding.check == "bad_image":
                warnings.warn(finding.message, UserWarning, stacklevel=2)
        return table
    frame = read_data_table(path, config)
    has_labels = all(column in frame.columns for column in config.label_columns)
    return _checked_table(Path(path), config, checks.CheckReport(), need_labels=has_labels,
                          limit=None, optional_id=optional_id)


def class_names_of(train: TextTable, config: DataConfig) -> list[str]:
    """0/1 label columns keep the recipe's order; names found in the data are sorted."""
    if isinstance(config.label, list):
        return list(config.label)
    return sort_class_names(train.labels or [])


def prepare_data(config: DataConfig, pixel_side: int | None = None) -> PreparedData:
    """Read train (and valid), run every check, split when needed; raise on any error.
    `pixel_side`: the side the decoded-image cache stores for the backbone, so the image
    checks' scan fills it (`Backbone.pixel_side`)."""
    report = checks.CheckReport()
    if config.images is not None:
        from fitclass.data import image_checks
        from fitclass.data.image_tables import resolve_layout

        config = resolve_layout(config)
    train = _checked_table(config.train, config, report, need_labels=True, limit=config.limit,
                           pixel_side=pixel_side)
    assert train.labels is not None  # need_labels=True guarantees them
    report.add(checks.check_label_positives(train.labels, config.train, config)
               if config.multilabel else
               checks.check_two_classes(train.labels, config.train, config.limit))
    # Duplicates are looked for in the whole training file, so row numbers are the file's.
    if config.images is None:
        duplicates = checks.check_duplicates(train.texts, train.labels, train.source)
        report.ran("duplicates", "conflicting_duplicates")
    else:
        duplicates = image_checks.check_image_duplicates(train, config.images)
        report.ran("duplicate_images", "conflicting_duplicate_images",
                   *["near_duplicate_images"] * bool(config.images.near_duplicate_bits))
    for finding in duplicates:
        report.add(finding)
    if config.split.all_labelled:
        return _prepare_all_labelled(config, train, report, pixel_side)
    if config.valid is None:
        if not config.multilabel:  # iterative stratification copes with rare labels
            report.add(checks.check_min_class_rows(train.labels, config.train))
        report.raise_errors()
        class_names = class_names_of(train, config)
        near = _near_duplicates(train, None, config, report)
        whole = train
        train_rows, valid_rows = _split(train, class_names, near, config, report)
        train, valid = whole.subset(train_rows), whole.subset(valid_rows)
        valid.source = f"{config.train} (validation split)"
        near_leakage = _near_leakage(near, whole.texts, whole.positions,
                                     _mask(valid_rows, len(whole)), valid.source, config)
    else:
        valid = _checked_table(config.valid, config, report, need_labels=True, limit=None,
                               pixel_side=pixel_side)
        class_names = class_names_of(train, config)
        near = _near_duplicates(train, valid, config, report)
        near_leakage = _near_leakage(near, train.texts + valid.texts,
                                     train.positions + valid.positions,
                                     np.arange(len(train) + len(valid)) >= len(train),
                                     valid.source, config)
    assert train.labels is not None and valid.labels is not None
    report.add(checks.check_unseen_labels(train.labels, valid.labels, valid.source))
    report.raise_errors()
    return _finish(config, train, valid, class_names, report, near_leakage)


def _finish(config: DataConfig, train: TextTable, valid: TextTable, class_names: list[str],
            report: checks.CheckReport, near_leakage: checks.Finding | None = None
            ) -> PreparedData:
    """The leakage checks (exact; near copies found before the split: `near_leakage`) and
    class counts of the split, then the prepared data."""
    assert train.labels is not None and valid.labels is not None
    if len(valid):
        if config.images is None:
            report.ran("leakage")
            report.add(checks.check_leakage(train.texts, valid.texts, valid.source,
                                            valid.positions))
        else:
            from fitclass.data import image_checks

            report.ran("image_leakage")
            report.add(image_checks.check_image_leakage(train, valid, config.images))
    report.add(near_leakage)
    report.class_counts = {
        "train": checks.class_distribution(train.labels),
        "valid": checks.class_distribution(valid.labels),
    }
    return PreparedData(train=train, valid=valid, class_names=class_names, report=report)


def all_labelled_rows(config: DataConfig, train: TextTable, report: checks.CheckReport,
                      pixel_side: int | None = None) -> tuple[TextTable, list[str]]:
    """Every labelled row, the training file's then the validation file's, and the class
    names: what cross-validation folds and a refit train on."""
    if config.valid is not None:
        valid = _checked_table(config.valid, config, report, need_labels=True, limit=None,
                               pixel_side=pixel_side)
        train = joined(train, valid)
    report.raise_errors()
    return train, class_names_of(train, config)


def _prepare_all_labelled(config: DataConfig, train: TextTable, report: checks.CheckReport,
                          pixel_side: int | None) -> PreparedData:
    """A fold run (validation = fold `split.fold` of every labelled row) or a refit (every
    labelled row trains, none validates)."""
    rows, class_names = all_labelled_rows(config, train, report, pixel_side)
    split = config.split
    if split.refit:
        none = rows.subset(np.array([], dtype=int))
        none.source = f"{rows.source} (refit: no validation rows)"
        return _finish(config, rows, none, class_names, report)
    assert split.folds is not None and split.fold is not None  # all_labelled: a fold run
    folds = assign_folds(rows.targets(class_names), kind_for(config.multilabel),
                         dedupe_groups(rows, config), split, split.folds, class_names,
                         rows.source)
    train, valid = rows.subset(np.flatnonzero(folds != split.fold)), rows.subset(
        np.flatnonzero(folds == split.fold))
    valid.source = f"{rows.source} (fold {split.fold} of {split.folds})"
    return _finish(config, train, valid, class_names, report)


def labelled_folds(config: DataConfig) -> tuple[TextTable, list[str], np.ndarray]:
    """Every labelled row, the class names and each row's fold, as the fold runs of
    `config.split.folds` folds see them (read and checked like training data)."""
    report = checks.CheckReport()
    if config.images is not None:
        from fitclass.data.image_tables import resolve_layout

        config = resolve_layout(config)
    train = _checked_table(config.train, config, report, need_labels=True, limit=config.limit)
    rows, class_names = all_labelled_rows(config, train, report)
    assert config.split.folds is not None
    folds = assign_folds(rows.targets(class_names), kind_for(config.multilabel),
                         dedupe_groups(rows, config), config.split, config.split.folds,
                         class_names, rows.source)
    return rows, class_names, folds


def _near_duplicates(train: TextTable, valid: TextTable | None, config: DataConfig,
                     report: checks.CheckReport) -> NearDuplicates | None:
    """Near-duplicate texts of the training file (and the validation file when given, its
    rows after train's); reports those inside train. None when the check is off."""
    if config.images is not None or config.near_duplicate_threshold is None:
        return None
    texts = train.texts if valid is None else train.texts + valid.texts
    found = find_near_duplicates(texts, config.near_duplicate_threshold)
    report.ran("near_duplicates", "near_duplicate_leakage")
    inside = found if valid is None else found.restrict(np.arange(len(texts)) < len(train))
    report.add(near_checks.check_near_duplicates(inside, train.texts, train.source,
                                                 train.positions))
    return found


def _near_leakage(near: NearDuplicates | None, texts: list[TextInput], positions: list[int],
                  valid: np.ndarray, source: str, config: DataConfig) -> checks.Finding | None:
    """Validation rows (`valid`, a mask; every other row trains) with a near copy in train."""
    if near is None:
        return None
    return near_checks.check_near_leakage(near, texts, ~valid, valid, source, positions,
                                          separate_valid=config.valid is not None,
                                          dedupe=config.split.dedupe == "group")


def _mask(rows: np.ndarray, size: int) -> np.ndarray:
    mask = np.zeros(size, dtype=bool)
    mask[rows] = True
    return mask


def _split(train: TextTable, class_names: list[str], near: NearDuplicates | None,
           config: DataConfig, report: checks.CheckReport) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation rows of the training file; under `data.split.dedupe: group`
    near-duplicate clusters (texts: `near`; images: their hashes) stay whole, and the report
    compares leakage with the plain split."""
    targets, kind = train.targets(class_names), kind_for(config.multilabel)
    plain = split_rows(targets, kind, train.groups, config.split)
    if config.split.dedupe != "group":
        return plain
    clusters = near.clusters() if near is not None else near_clusters(train, config)
    if clusters is None:  # the recipe refuses dedupe without the text check; be safe
        return plain
    deduped = dedupe_split(targets, kind, train.groups, clusters, config.split)
    counts = [_leaked_count(train, near, config, rows) for rows in (plain, deduped)]
    report.ran("dedupe")
    report.add(near_checks.dedupe_report(
        counts[0], len(plain[1]), counts[1], len(deduped[1]),
        int(np.count_nonzero(np.bincount(clusters) > 1)), str(config.train)))
    return deduped


def _leaked_count(whole: TextTable, near: NearDuplicates | None, config: DataConfig,
                  rows: tuple[np.ndarray, np.ndarray]) -> int:
    """Validation rows (`rows[1]`) with an exact or near copy among the training rows."""
    train_rows, valid_rows = rows
    if near is not None:
        return int(near_checks.leaked(near, _mask(train_rows, len(whole)),
                                      _mask(valid_rows, len(whole))).sum())
    from fitclass.data import image_checks

    assert config.images is not None  # text rows always have `near` under dedupe
    found = image_checks.check_image_leakage(whole.subset(train_rows),
                                             whole.subset(valid_rows), config.images)
    return 0 if found is None else found.count
