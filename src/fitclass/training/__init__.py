"""Training: the loop and its parts (batching, optimiser, losses, selection, checkpoints)."""
