"""fitclass: fine-tune pretrained models into classifiers that hold up on real data.

The public surface is small: `train`, `train_seeds`, `ensemble`, `load_run`, `Run`,
`Recipe`, `load_recipe` and the error types. Everything else is an implementation detail
that may change.
"""

from fitclass._version import __version__
from fitclass.api import train
from fitclass.ensemble import ensemble, train_seeds
from fitclass.errors import DataError, FitclassError, RecipeError, RunError
from fitclass.recipe import Recipe, load_recipe
from fitclass.run import Run, load_run

__all__ = [
    "DataError",
    "FitclassError",
    "Recipe",
    "RecipeError",
    "Run",
    "RunError",
    "__version__",
    "ensemble",
    "load_recipe",
    "load_run",
    "train",
    "train_seeds",
]
