"""Atomic file writes that follow the umask.

A file is written under a hidden temporary name in its folder and renamed into place, so a
killed process never leaves half a file. The temporary file is created with mode 0666 and the
process umask applied by the kernel, like any other tool's files (`tempfile.mkstemp` would
make it 0600 and hide run files from teammates on a shared server).
"""

from __future__ import annotations

import os
import secrets
import shutil
import threading
from pathlib import Path

_UMASK_LOCK = threading.Lock()


def open_temporary(path: Path) -> tuple[int, Path]:
    """A new file beside `path` named `.<name>.<random>.tmp`, open for writing."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        staged = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(staged, flags, 0o666), staged
        except FileExistsError:  # a 32-bit random clash: draw again
            continue


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, staged = open_temporary(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(staged, path)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def current_umask() -> int:
    """The process umask, read without changing it where the system allows (Linux), else
    set and restored under a lock."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def follow_umask(path: Path) -> None:
    """Give `path` (a file, or every file under a folder) the mode a plain `open` would:
    0666 less the umask. Libraries that write through private temporary files (safetensors,
    hence transformers' `save_pretrained`) leave them 0600, unreadable to teammates."""
    mode = 0o666 & ~current_umask()
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for file in files:
        if not file.is_symlink():
            os.chmod(file, mode)


def replace_dir(staged: Path, target: Path) -> None:
    """Move a fully written folder into place, replacing what was there (a folder of
    fitclass's own: a model, a checkpoint, a staged backbone the caller checked)."""
    old = target.with_name(f".{target.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        target.rename(old)
    staged.rename(target)
    if old.exists():
        shutil.rmtree(old)
