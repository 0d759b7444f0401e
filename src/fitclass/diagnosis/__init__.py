"""`fitclass doctor`: read a labelled table and say what its data needs, as data.

Each concern is one module (`classes`: rows per class, imbalance, multi-label cardinality,
very few rows; `lengths`: text length against `model.max_length`; `script`: writing system
against the backbone; `duplicates`: exact and near copies and leakage into validation/test
files; `label_noise`: a fast proxy audit's noise estimate; `shift`: validation's label mix).
Each returns `Finding`s (`findings.py`) carrying what was measured, the remedy, why (the
benchmark that measured it) and the recipe keys it implies; `examine.doctor` gathers them
into a `Diagnosis` whose recipe is validated, and `recipe_file` writes it as commented YAML.
`fitclass auto` is meant to read the same findings to choose its search space.

The package is named `diagnosis`, not `doctor`, so that `fitclass.doctor` stays the function.
"""

from __future__ import annotations

from fitclass.diagnosis.examine import doctor
from fitclass.diagnosis.findings import Diagnosis, Finding
from fitclass.diagnosis.recipe_file import recipe_text, write_recipe

__all__ = ["Diagnosis", "Finding", "doctor", "recipe_text", "write_recipe"]
