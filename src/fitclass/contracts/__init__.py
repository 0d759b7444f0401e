"""The contracts floor: what `models/` and `training/` agree on, so neither imports the other.

- `capabilities`: what a model kind declares it can do (data, no torch; the recipe reads it).
- `model`: `Classifier` and `Backbone` (a model kind), with their capabilities.
- `neural`: `NeuralClassifier` and `TrainingData`, what the training loop needs (torch).
- `fit`: `FitContext` and `FitResult`, what a kind's `fit` receives and returns.

This package imports nothing at import time, so `fitclass.contracts.capabilities` stays cheap.
"""
