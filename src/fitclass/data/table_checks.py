"""The warning-level data checks of labelled rows already read (no split, nothing raised):
what `fitclass audit` reports beside its suspects.

A training run checks its data in `prepare.prepare_data`, which also splits and stops on
errors; the audit has read and checked `data.train` for errors already (`read_labelled`) and
needs only the rest: exact and near duplicates and conflicting labels inside train, leakage
into `data.valid` when the recipe names one, and the class counts.
"""

from __future__ import annotations

import numpy as np

from fitclass.data import checks
from fitclass.data import near_duplicate_checks as near_checks
from fitclass.data.table import TextTable
from fitclass.data.text_near_duplicates import find_near_duplicates
from fitclass.recipe import DataConfig


def labelled_table_checks(train: TextTable, config: DataConfig,
                          valid: TextTable | None = None) -> checks.CheckReport:
    """Duplicates, conflicting duplicates and near duplicates of `train`, leakage into `valid`
    (exact and near), and both tables' class counts; every check that ran is recorded."""
    report = checks.CheckReport()
    if config.images is not None:
        _image_checks(train, config, valid, report)
    else:
        _text_checks(train, config, valid, report)
    report.class_counts = {"train": checks.class_distribution(train.labels or [])}
    if valid is not None and valid.labels is not None:
        report.class_counts["valid"] = checks.class_distribution(valid.labels)
    return report


def _text_checks(train: TextTable, config: DataConfig, valid: TextTable | None,
                 report: checks.CheckReport) -> None:
    report.ran("duplicates", "conflicting_duplicates")
    for finding in checks.check_duplicates(train.texts, train.labels or [""] * len(train),
                                           train.source):
        report.add(finding)
    if valid is not None and len(valid):
        report.ran("leakage")
        report.add(checks.check_leakage(train.texts, valid.texts, valid.source,
                                        valid.positions))
    if config.near_duplicate_threshold is None:
        return
    texts = train.texts + (valid.texts if valid is not None else [])
    found = find_near_duplicates(texts, config.near_duplicate_threshold)
    is_train = np.arange(len(texts)) < len(train)
    report.ran("near_duplicates")
    report.add(near_checks.check_near_duplicates(found.restrict(is_train), train.texts,
                                                 train.source, train.positions))
    if valid is not None and len(valid):
        report.ran("near_duplicate_leakage")
        report.add(near_checks.check_near_leakage(
            found, texts, is_train, ~is_train, valid.source, train.positions + valid.positions,
            separate_valid=True, dedupe=config.split.dedupe == "group"))


def _image_checks(train: TextTable, config: DataConfig, valid: TextTable | None,
                  report: checks.CheckReport) -> None:
    from fitclass.data import image_checks

    assert config.images is not None
    report.ran("duplicate_images", "conflicting_duplicate_images",
               *["near_duplicate_images"] * bool(config.images.near_duplicate_bits))
    for finding in image_checks.check_image_duplicates(train, config.images):
        report.add(finding)
    if valid is not None and len(valid):
        report.ran("image_leakage")
        report.add(image_checks.check_image_leakage(train, valid, config.images))
