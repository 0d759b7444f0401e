"""The TF-IDF backbone: a classical linear classifier through the same recipe and run folder.

It is the fast CPU baseline and a full ensemble member. Saved without pickle: the vocabulary
and settings as JSON, the idf vector and the linear weights as safetensors.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from fitclass.data.table import TextInput
from fitclass.models.base import MODEL_INFO, Backbone, Classifier
from fitclass.models.registry import register_backbone, register_kind
from fitclass.recipe import ImbalanceConfig, ModelConfig
from fitclass.train.class_weights import class_counts, class_weights
from fitclass.train.context import FitContext, FitResult

PAIR_SEPARATOR = " [SEP] "


def flatten(texts: Sequence[TextInput]) -> list[str]:
    """Sentence pairs are joined with a separator the vectoriser sees as its own token."""
    return [t if isinstance(t, str) else PAIR_SEPARATOR.join(t) for t in texts]


class LinearTextClassifier(Classifier):
    """A fitted TF-IDF vectoriser and linear weights; probabilities by softmax (or sigmoid)."""

    kind = "tfidf"

    def __init__(self, class_names: Sequence[str], vectorizer: TfidfVectorizer,
                 coef: np.ndarray, intercept: np.ndarray, multilabel: bool = False) -> None:
        super().__init__(class_names)
        self.vectorizer = vectorizer
        self.coef = coef
        self.intercept = intercept
        self.multilabel = multilabel

    def decision_scores(self, texts: Sequence[TextInput]) -> np.ndarray:
        features: sparse.csr_matrix = self.vectorizer.transform(flatten(texts))
        return np.asarray(features @ self.coef.T) + self.intercept

    def predict_proba(self, texts: Sequence[TextInput], batch_size: int = 64) -> np.ndarray:
        scores = self.decision_scores(texts)
        if self.multilabel:  # one binary logistic regression per label
            return 1.0 / (1.0 + np.exp(-scores))
        if scores.shape[1] == 1:  # binary logistic regression keeps one weight row
            positive = 1.0 / (1.0 + np.exp(-scores[:, 0]))
            return np.stack([1.0 - positive, positive], axis=1)
        return torch.softmax(torch.from_numpy(scores), dim=1).numpy()

    def save(self, model_dir: Path) -> None:
        model_dir.mkdir(parents=True, exist_ok=True)
        params = self.vectorizer.get_params()
        settings = {k: params[k] for k in ("analyzer", "ngram_range", "max_features",
                                            "sublinear_tf", "lowercase", "min_df")}
        vocabulary = {term: int(index) for term, index in self.vectorizer.vocabulary_.items()}
        info = {"kind": self.kind, "class_names": self.class_names, "vectorizer": settings,
                "multilabel": self.multilabel}
        (model_dir / MODEL_INFO).write_text(json.dumps(info, indent=2), encoding="utf-8")
        (model_dir / "vocabulary.json").write_text(json.dumps(vocabulary, ensure_ascii=False),
                                                   encoding="utf-8")
        # safetensors writes the raw buffer: a Fortran-ordered array (sklearn's multinomial
        # coef_ is one) would load back transposed, so store C order explicitly.
        arrays = {"idf": self.vectorizer.idf_, "coef": self.coef, "intercept": self.intercept}
        save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()},
                  str(model_dir / "weights.safetensors"))


@register_kind
class TfidfBackbone(Backbone):
    """TF-IDF features (`analyzer`, `ngram_range`, `max_features`) + logistic regression (`C`)."""

    kind = "tfidf"

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
        imbalance = context.recipe.imbalance
        if targets.ndim == 2:
            coef, intercept = self._fit_per_label(features, targets, imbalance, context)
        else:
            counts = class_counts(targets, len(context.class_names))
            weights = class_weights(imbalance.class_weights, counts, context.class_names,
                                    imbalance.beta)
            model = self._logistic(context, weights)
            model.fit(features, targets)
            coef, intercept = model.coef_, model.intercept_
        classifier = LinearTextClassifier(context.class_names, vectorizer,
                                          coef.astype(np.float32), intercept.astype(np.float32),
                                          multilabel=targets.ndim == 2)
        seconds = time.perf_counter() - start
        metrics = context.task.metrics(context.valid_targets,
                                       classifier.predict_proba(context.valid.texts))
        row = {"step": 1, "epoch": 1.0, "fit_seconds": seconds, "is_best": True,
               "train_samples_per_s": len(context.train) / seconds,
               **{k: v for k, v in metrics.items() if isinstance(v, float | int) and k != "n"}}
        context.reporter.log(f"tfidf: {features.shape[1]} features, fitted in {seconds:.1f}s")
        metric = context.recipe.train.select.metric
        return FitResult(classifier=classifier, history=[row],
                         best={"metric": metric, "value": metrics.get(metric), "step": 1},
                         train_seconds=seconds,
                         train_samples_per_second=len(context.train) / seconds)

    def _logistic(self, context: FitContext, weights: np.ndarray | None) -> LogisticRegression:
        return LogisticRegression(
            C=self.config.C, max_iter=2000, random_state=context.recipe.train.seed,
            class_weight=None if weights is None else dict(enumerate(weights.tolist())))

    def _fit_per_label(self, features: sparse.csr_matrix, targets: np.ndarray,
                       imbalance: ImbalanceConfig,
                       context: FitContext) -> tuple[np.ndarray, np.ndarray]:
        """One-vs-rest: a binary logistic regression per label; class weights apply to each
        label's negatives and positives."""
        coef = np.zeros((targets.shape[1], features.shape[1]))
        intercept = np.zeros(targets.shape[1])
        for label in range(targets.shape[1]):
            y = targets[:, label].astype(int)
            rate = y.mean()
            if rate in (0.0, 1.0):  # a label always on or off: a constant is all there is
                intercept[label] = 20.0 if rate == 1.0 else -20.0
                continue
            scheme = imbalance.class_weights
            weights = class_weights(scheme if isinstance(scheme, str) else "none",
                                    np.bincount(y, minlength=2).astype(float), ["0", "1"],
                                    imbalance.beta)
            model = self._logistic(context, weights).fit(features, y)
            coef[label], intercept[label] = model.coef_[0], model.intercept_[0]
        return coef, intercept

    @classmethod
    def load(cls, model_dir: Path) -> LinearTextClassifier:
        info = json.loads((model_dir / MODEL_INFO).read_text(encoding="utf-8"))
        settings = dict(info["vectorizer"])
        settings["ngram_range"] = tuple(settings["ngram_range"])
        vocabulary = json.loads((model_dir / "vocabulary.json").read_text(encoding="utf-8"))
        weights = load_file(str(model_dir / "weights.safetensors"))
        vectorizer = TfidfVectorizer(**settings, vocabulary=vocabulary, dtype=np.float32)
        vectorizer.idf_ = weights["idf"]
        return LinearTextClassifier(info["class_names"], vectorizer, weights["coef"],
                                    weights["intercept"], info.get("multilabel", False))


@register_backbone("tfidf")
def tfidf(config: ModelConfig) -> Backbone:
    return TfidfBackbone(config)
