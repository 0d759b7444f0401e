"""Models: the backbone registry and each kind of classifier (transformer, TF-IDF)."""
