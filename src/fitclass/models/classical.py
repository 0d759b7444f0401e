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
from typing import Any

import numpy as np
from safetensors.numpy import save_file
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

from fitclass.capabilities import TFIDF
from fitclass.contracts.fit import FitContext, FitResult
from fitclass.data.class_weights import class_weights
from fitclass.data.table import TextInput
from fitclass.errors import RunError
from fitclass.files import damaged, read_json_file, read_safetensors
from fitclass.models.base import MODEL_INFO, Backbone, Classifier
from fitclass.models.linear_heads import LinearHead, fit_head
from fitclass.models.loading import read_model_info
from fitclass.models.registry import register_backbone, register_kind
from fitclass.recipe import ModelConfig

PAIR_SEPARATOR = " [SEP] "
VECTORIZER_SETTINGS = ("analyzer", "ngram_range", "max_features", "sublinear_tf", "lowercase",
                       "min_df")
#: Longest n-gram a saved model may ask for (the recipe allows far less; this bounds a
#: hand-edited file).
MAX_NGRAM = 10
LINKS = ("softmax", "sigmoid_ovr", "sigmoid")
VOCABULARY = "vocabulary.json"
WEIGHTS = "weights.safetensors"


def flatten(texts: Sequence[TextInput]) -> list[str]:
    """Sentence pairs are joined with a separator the vectoriser sees as its own token."""
    return [t if isinstance(t, str) else PAIR_SEPARATOR.join(t) for t in texts]


class LinearTextClassifier(Classifier):
    """A fitted TF-IDF vectoriser and a linear head."""

    kind = "tfidf"
    capabilities = TFIDF

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
        (model_dir / VOCABULARY).write_text(json.dumps(vocabulary, ensure_ascii=False),
                                                   encoding="utf-8")
        arrays = {"idf": self.vectorizer.idf_, "coef": self.head.coef,
                  "intercept": self.head.intercept}
        if self.head.platt_a is not None and self.head.platt_b is not None:
            arrays |= {"platt_a": self.head.platt_a, "platt_b": self.head.platt_b}
        # safetensors writes the raw buffer: a Fortran-ordered array (sklearn's multinomial
        # coef_ is one) would load back transposed, so store C order explicitly.
        save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()},
                  str(model_dir / WEIGHTS))


@register_kind
class TfidfBackbone(Backbone):
    """TF-IDF features (`analyzer`, `ngram_range`, `max_features`) + a linear head (`C`)."""

    kind = "tfidf"
    # not seed-sensitive: the vectoriser and the convex linear heads reach the same optimum
    # whatever the seed
    capabilities = TFIDF

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
        if context.task.multilabel:  # one binary head per label, not one softmax head
            head = self._fit_per_label(features, targets, context)
        else:
            imbalance = context.recipe.imbalance
            weights = class_weights(imbalance.class_weights,
                                    context.task.class_counts(targets),
                                    context.class_names, imbalance.beta)
            head = fit_head(self.config.classifier, features, targets, self.config.C,
                            None if weights is None else dict(enumerate(weights.tolist())),
                            context.recipe.train.seed)
        classifier = LinearTextClassifier(context.class_names, vectorizer, head,
                                          self.config.classifier)
        seconds = time.perf_counter() - start
        metrics = (context.task.metrics(context.valid_targets,
                                        classifier.predict_proba(context.valid.texts))
                   if len(context.valid) else {})  # a refit has no validation rows
        measured = bool(metrics)  # a refit (no validation rows) measures nothing
        row = {"step": 1, "epoch": 1.0, "fit_seconds": seconds, "is_best": measured,
               "train_samples_per_s": len(context.train) / seconds,
               **{k: v for k, v in metrics.items() if isinstance(v, float | int) and k != "n"}}
        context.reporter.log(f"tfidf+{self.config.classifier}: {features.shape[1]} features, "
                             f"fitted in {seconds:.1f}s")
        metric = context.recipe.train.select.metric
        context.reporter.evaluated(row, metric, measured)  # trackers hear the one evaluation
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
        info_path = model_dir / MODEL_INFO
        info = read_model_info(model_dir, {"vectorizer": dict, "link": str, "classifier": str})
        if info["link"] not in LINKS:
            raise damaged(info_path, f"has link {info['link']!r}; expected one of {LINKS}")
        settings = vectorizer_settings(info["vectorizer"], info_path)
        vocabulary = read_vocabulary(model_dir / VOCABULARY)
        weights = read_safetensors(model_dir / WEIGHTS)
        head = checked_head(weights, info["link"], len(vocabulary), len(info["class_names"]),
                            model_dir / WEIGHTS)
        vectorizer = TfidfVectorizer(**settings, vocabulary=vocabulary, dtype=np.float32)
        vectorizer.idf_ = weights["idf"]
        return LinearTextClassifier(info["class_names"], vectorizer, head, info["classifier"])


def vectorizer_settings(saved: dict[str, Any], path: Path) -> dict[str, Any]:
    """The saved TF-IDF settings, accepting only the keys and values fitclass writes: any
    other `TfidfVectorizer` argument (say `input: filename`, which makes it open files named
    by the texts) is refused."""
    unknown = sorted(set(saved) - set(VECTORIZER_SETTINGS))
    missing = [key for key in VECTORIZER_SETTINGS if key not in saved]
    if unknown:
        raise damaged(path, f"has vectorizer keys fitclass never writes: {unknown}; "
                            f"expected exactly {list(VECTORIZER_SETTINGS)}")
    if missing:
        raise damaged(path, f"has no vectorizer keys {missing}; expected exactly "
                            f"{list(VECTORIZER_SETTINGS)}")

    def refuse(key: str, expected: str) -> RunError:
        return damaged(path, f"has vectorizer.{key} = {saved[key]!r}; expected {expected}")

    if saved["analyzer"] not in ("word", "char", "char_wb"):
        raise refuse("analyzer", "word, char or char_wb")
    low_high = saved["ngram_range"]
    if (not isinstance(low_high, list | tuple) or len(low_high) != 2
            or not all(_is_int(n) and 1 <= n <= MAX_NGRAM for n in low_high)
            or low_high[0] > low_high[1]):
        raise refuse("ngram_range", f"[low, high] with 1 <= low <= high <= {MAX_NGRAM}")
    if saved["max_features"] is not None and not (_is_int(saved["max_features"])
                                                  and saved["max_features"] >= 1):
        raise refuse("max_features", "null or a positive integer")
    for key in ("sublinear_tf", "lowercase"):
        if not isinstance(saved[key], bool):
            raise refuse(key, "true or false")
    min_df = saved["min_df"]
    if not ((_is_int(min_df) and min_df >= 1)
            or (isinstance(min_df, float) and 0.0 < min_df <= 1.0)):
        raise refuse("min_df", "an integer >= 1 or a share in (0, 1]")
    return {**saved, "ngram_range": (int(low_high[0]), int(low_high[1]))}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_vocabulary(path: Path) -> dict[str, int]:
    """term -> column, the columns 0..n-1 each used once."""
    vocabulary = read_json_file(path)
    if not isinstance(vocabulary, dict) or not vocabulary:
        raise damaged(path, "should map terms to feature columns")
    columns = sorted(vocabulary.values()) if all(_is_int(v) for v in vocabulary.values()) else []
    if columns != list(range(len(vocabulary))):
        raise damaged(path, f"should number its {len(vocabulary)} terms 0..{len(vocabulary) - 1}"
                            f", each once")
    return vocabulary


def checked_head(weights: dict[str, np.ndarray], link: str, features: int, classes: int,
                 path: Path) -> LinearHead:
    """The linear head, its arrays shaped for the vocabulary and the classes."""
    # a binary softmax / one-vs-rest head keeps one row (the second class's score)
    binary = classes == 2 and link != "sigmoid" and len(weights.get("coef", ())) == 1
    rows = 1 if binary else classes
    expected = {"idf": (features,), "coef": (rows, features), "intercept": (rows,)}
    if "platt_a" in weights or "platt_b" in weights:
        expected |= {"platt_a": (rows,), "platt_b": (rows,)}
    for name, shape in expected.items():
        if name not in weights or weights[name].shape != shape:
            seen = weights[name].shape if name in weights else "missing"
            raise damaged(path, f"has {name} of shape {seen}; expected {shape} for "
                                f"{features} terms and {classes} classes")
    return LinearHead(weights["coef"], weights["intercept"], link, weights.get("platt_a"),
                      weights.get("platt_b"))


@register_backbone("tfidf")
def tfidf(config: ModelConfig) -> Backbone:
    return TfidfBackbone(config)
