"""The model contracts as `models/` names them (they live in `fitclass.contracts.model`)."""

from __future__ import annotations

from fitclass.contracts.model import Backbone, Classifier

#: File in every saved model folder naming its kind, so `load_classifier` finds the loader.
MODEL_INFO = "fitclass_model.json"

__all__ = ["MODEL_INFO", "Backbone", "Classifier"]
