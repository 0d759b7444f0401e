"""fitclass: fine-tune pretrained models into classifiers that hold up on real data.

The public surface is small: `train`, `train_seeds`, `ensemble`, `distil`, `compare`, `audit`,
`doctor`, `auto`, `load_run`, `Run`, `Recipe`, `load_recipe` and the error types. Everything
else is an implementation detail that may change. Names load on first use, so `fitclass --help`
does not import torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from fitclass._version import __version__
from fitclass.errors import DataError, FitclassError, RecipeError, RunError

if TYPE_CHECKING:
    from fitclass.autopilot import auto
    from fitclass.comparing import compare
    from fitclass.crossval.workflow import train
    from fitclass.diagnosis import doctor
    from fitclass.distilling.workflow import distil
    from fitclass.ensembling import ensemble, train_seeds
    from fitclass.noise.audit import audit
    from fitclass.recipe import Recipe, load_recipe
    from fitclass.runs.run import Run, load_run

_LAZY = {"auto": "fitclass.autopilot", "train": "fitclass.crossval.workflow",
         "ensemble": "fitclass.ensembling", "compare": "fitclass.comparing",
         "audit": "fitclass.noise.audit", "doctor": "fitclass.diagnosis",
         "distil": "fitclass.distilling.workflow",
         "train_seeds": "fitclass.ensembling", "Recipe": "fitclass.recipe",
         "load_recipe": "fitclass.recipe", "Run": "fitclass.runs.run",
         "load_run": "fitclass.runs.run"}

__all__ = [
    "DataError",
    "FitclassError",
    "Recipe",
    "RecipeError",
    "Run",
    "RunError",
    "__version__",
    "audit",
    "auto",
    "compare",
    "distil",
    "doctor",
    "ensemble",
    "load_recipe",
    "load_run",
    "train",
    "train_seeds",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fitclass' has no attribute {name!r}")
