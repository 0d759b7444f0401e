"""The TF-IDF backbone: a classical linear classifier through the same recipe and run folder.

It is the fast CPU baseline and a full ensemble member. `model.classifier` picks the linear
head (`linear_heads.py`). Saved without pickle: vocabulary and settings as JSON, idf, weights
and Platt parameters as safetensors.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

from fitclass.data.table import TextInput
from fitclass.models.base import MODEL_INFO, Backbone, Classifier
from fitclass.models.linear_heads import LinearHead, fit_head
from fitclass.models.registry import register_backbone, register_kind
from fitclass.recipe import ModelConfig
from fitclass.training.class_weights import class_counts, class_weights
from fitclass.training.context import FitContext, FitResult

PAIR_SEPARATOR = " [SEP] "
VECTORIZER_SETTINGS = ("analyzer", "ngram_range", "max_features", "sublinear_tf", "lowercase",
                       "min_df")


def flatten(texts: Sequence[TextInput]) -> list[str]:
    """Sentence pairs are joined with a separator the vectoriser sees as its own token."""
    return [t if isinstance(t, str) else PAIR_SEPARATOR.join(t) for t in texts]


class LinearTextClassifier(Classifier):
    """A fitted TF-IDF vectoriser and a linear head."""

    kind = "tfidf"

    def __init__(self, class_names: Sequence[str], vectorizer: TfidfVectorizer,
                 head: LinearHead, classifier: str = "logreg") -> None:
        super().__init__(class_names)
        self.vectorizer = vectorizer
        self.head = head
        self.classifier = classifier

    def decision_scores(self, texts: Sequence[TextInput]) -> np.ndarray:
        features: sparse.csr_matrix = self.vectorizer.transform(flatten(texts))
        return np.asarray(features @ self.head.coef.T) + self.head.intercept

    def predict_proba(self, texts: Sequence[TextInput], batch_size: int = 64) -> np.ndarray:
        return self.head.probabilities(self.decision_scores(texts))

    def save(self, model_dir: Path) -> None:
        model_dir.mkdir(parents=True, exist_ok=True)
        params = self.vectorizer.get_params()
        info = {"kind": self.kind, "class_names": self.class_names,
                "classifier": self.classifier, "link": self.head.link,
                "vectorizer": {k: params[k] for k in VECTORIZER_SETTINGS}}
        (model_dir / MODEL_INFO).write_text(json.dumps(info, indent=2), encoding="utf-8")
        vocabulary = {term: int(index) for term, index in self.vectorizer.vocabulary_.items()}
        (model_dir / "vocabulary.json").write_text(json.dumps(vocabulary, ensure_ascii=False),
                                                   encoding="utf-8")
        arrays = {"idf": self.vectorizer.idf_, "coef": self.head.coef,
                  "intercept": self.head.intercept}
        if self.head.platt_a is not None and self.head.platt_b is not None:
            arrays |= {"platt_a": self.head.platt_a, "platt_b": self.head.platt_b}
        # safetensors writes the raw buffer: a Fortran-ordered array (sklearn's multinomial
        # coef_ is one) would load back transposed, so store C order explicitly.
        save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()},
                  str(model_dir / "weights.safetensors"))


@register_kind
class TfidfBackbone(Backbone):
    """TF-IDF features (`analyzer`, `ngram_range`, `max_features`) + a linear head (`C`)."""

    kind = "tfidf"
    # the vectoriser and the convex linear heads reach the same optimum whatever the seed
    seed_sensitive = False

    def __init__(self, config: ModelConfig) -> None:
        self.config = config

    def vectorizer(self) -> TfidfVectorizer:
        return TfidfVectorizer(analyzer=self.config.analyzer,
                               ngram_range=tuple(self.config.ngram_range),
                               max_features=self.config.max_features, sublinear_tf=True,
                               lowercase=True, min_df=2 if self.config.analyzer != "word" else 1,
                               dtype=np.float32)

    def fit(self, context: FitContext) -> FitResult:
        start = time.perf_counter()
        vectorizer = self.vectorizer()
        features = vectorizer.fit_transform(flatten(context.train.texts))
        targets = context.train_targets
        if targets.ndim == 2:
            head = self._fit_per_label(features, targets, context)
        else:
            imbalance = context.recipe.imbalance
            weights = class_weights(imbalance.class_weights,
                                    class_counts(targets, len(context.class_names)),
                                    context.class_names, imbalance.beta)
            head = fit_head(self.config.classifier, features, targets, self.config.C,
                            None if weights is None else dict(enumerate(weights.tolist())),
                            context.recipe.train.seed)
        classifier = LinearTextClassifier(context.class_names, vectorizer, head,
                                          self.config.classifier)
        seconds = time.perf_counter() - start
        metrics = context.task.metrics(context.valid_targets,
                                       classifier.predict_proba(context.valid.texts))
        row = {"step": 1, "epoch": 1.0, "fit_seconds": seconds, "is_best": True,
               "train_samples_per_s": len(context.train) / seconds,
               **{k: v for k, v in metrics.items() if isinstance(v, float | int) and k != "n"}}
        context.reporter.log(f"tfidf+{self.config.classifier}: {features.shape[1]} features, "
                             f"fitted in {seconds:.1f}s")
        metric = context.recipe.train.select.metric
        context.reporter.evaluated(row, metric, True)  # trackers hear the one evaluation
        return FitResult(classifier=classifier, history=[row],
                         best={"metric": metric, "value": metrics.get(metric), "step": 1},
                         train_seconds=seconds,
                         train_samples_per_second=len(context.train) / seconds)

    def _fit_per_label(self, features: sparse.csr_matrix, targets: np.ndarray,
                       context: FitContext) -> LinearHead:
        """One binary head per label; class weights apply to each label's negatives and
        positives. Stacked into one head with independent sigmoids."""
        imbalance = context.recipe.imbalance
        scheme = imbalance.class_weights if isinstance(imbalance.class_weights, str) else "none"
        rows = []
        for label in range(targets.shape[1]):
            y = targets[:, label].astype(int)
            if y.min() == y.max():  # a label always on or off: a constant is all there is
                rows.append(LinearHead(np.zeros((1, features.shape[1])),
                                       np.array([20.0 if y[0] else -20.0]), "sigmoid"))
                continue
            weights = class_weights(scheme, np.bincount(y, minlength=2).astype(float),
                                    ["0", "1"], imbalance.beta)
            rows.append(fit_head(self.config.classifier, features, y, self.config.C,
                                 None if weights is None else dict(enumerate(weights.tolist())),
                                 context.recipe.train.seed))
        return LinearHead(
            np.vstack([h.coef for h in rows]), np.concatenate([h.intercept for h in rows]),
            "sigmoid",
            np.concatenate([h.platt_a if h.platt_a is not None else [1.0] for h in rows]),
            np.concatenate([h.platt_b if h.platt_b is not None else [0.0] for h in rows]))

    @classmethod
    def load(cls, model_dir: Path) -> LinearTextClassifier:
        info = json.loads((model_dir / MODEL_INFO).read_text(encoding="utf-8"))
        settings = dict(info["vectorizer"])
        settings["ngram_range"] = tuple(settings["ngram_range"])
        vocabulary = json.loads((model_dir / "vocabulary.json").read_text(encoding="utf-8"))
        weights = load_file(str(model_dir / "weights.safetensors"))
        vectorizer = TfidfVectorizer(**settings, vocabulary=vocabulary, dtype=np.float32)
        vectorizer.idf_ = weights["idf"]
        head = LinearHead(weights["coef"], weights["intercept"], info["link"],
                          weights.get("platt_a"), weights.get("platt_b"))
        return LinearTextClassifier(info["class_names"], vectorizer, head, info["classifier"])


@register_backbone("tfidf")
def tfidf(config: ModelConfig) -> Backbone:
    return TfidfBackbone(config)
