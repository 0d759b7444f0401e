"""The contracts floor: what `models/` and `training/` agree on, so neither imports the other.

- `fitclass.capabilities` (one floor lower, so the recipe can read it): what a kind declares.
- `model`: `Classifier` and `Backbone` (a model kind), with their capabilities.
- `neural`: `NeuralClassifier` and `TrainingData`, what the training loop needs (torch).
- `fit`: `FitContext` and `FitResult`, what a kind's `fit` receives and returns.

This package imports nothing at import time; import the submodule you need.
"""
