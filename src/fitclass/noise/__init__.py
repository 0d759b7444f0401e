"""Label noise: the audit that ranks suspect labels, actions on its output, self-training."""
