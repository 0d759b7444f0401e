"""What a backbone's `fit` receives and returns (defined in `fitclass.contracts.fit`)."""

from fitclass.contracts.fit import FitContext, FitResult, NeuralTrainer, TeacherTargets

__all__ = ["FitContext", "FitResult", "NeuralTrainer", "TeacherTargets"]
