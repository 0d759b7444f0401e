"""What a run was trained and validated on, as one hash: two runs with the same fingerprint
can be compared number for number (the report's baseline run must share it).

It covers the training file's bytes (an image folder: its files' paths and sizes), the row
limit, the validation rows actually scored (ids, inputs, labels: this covers a validation
file, the split settings and any relabelling) and the class names in label order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from fitclass.data.table import TextInput, TextTable
from fitclass.recipe import DataConfig

CHUNK = 1 << 20


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes; of a folder, of its files' relative paths and sizes (an
    image folder may hold gigabytes; renaming, adding or resizing a file still shows)."""
    digest = hashlib.sha256()
    if path.is_dir():
        for item in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(f"{item.relative_to(path).as_posix()}\0{item.stat().st_size}\n"
                          .encode())
        return digest.hexdigest()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def texts_digest(texts: Sequence[TextInput]) -> str:
    """sha256 of texts in order (single texts and pairs alike): the text part of cache keys."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(json.dumps(text, ensure_ascii=False).encode())
        digest.update(b"\x00")
    return digest.hexdigest()


def data_fingerprint(config: DataConfig, valid: TextTable, class_names: list[str]) -> str:
    """`sha256:<hex>` over the training data, the validation rows and the class names."""
    labels = valid.labels if valid.labels is not None else [""] * len(valid)
    rows = [[row_id, text if isinstance(text, str) else list(text),
             label if isinstance(label, str) else list(label)]
            for row_id, text, label in zip(valid.ids, valid.texts, labels, strict=True)]
    payload = {"train": file_digest(Path(config.train)), "limit": config.limit,
               "valid_rows": rows, "classes": list(class_names)}
    encoded = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode("utf-8")
    return "sha256:" + hashlib.sha256(encoded).hexdigest()
