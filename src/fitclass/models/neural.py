"""What the training loop needs from a neural classifier (defined in
`fitclass.contracts.neural`, re-exported for the model kinds)."""

from fitclass.contracts.neural import (
    Batch,
    Batching,
    BatchTransform,
    FeatureEncoder,
    NeuralClassifier,
    TrainingData,
    probabilities,
)

__all__ = ["Batch", "BatchTransform", "Batching", "FeatureEncoder", "NeuralClassifier",
           "TrainingData", "probabilities"]
