"""Predicting with an exported ONNX graph in onnxruntime (`Run.engine("onnx")`, built by
`runs/onnx_engine.py` from the export's record).

Kept apart from `fitclass/export/` (which writes the export and loads runs) so the run
layer can open an export without importing the exporter, and the exporter the run layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from fitclass.data.table import TextInput
from fitclass.errors import FitclassError, RunError
from fitclass.models.base import Classifier
from fitclass.models.catalog import saved_kind
from fitclass.models.loading import load_failure, read_model_info
from fitclass.models.text import TransformerClassifier, over_batches, probabilities

#: The exported graphs inside a run's ONNX folder.
FP32, INT8 = "model.onnx", "model.int8.onnx"


def require_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise FitclassError("ONNX export and inference need onnx and onnxruntime: "
                            "pip install 'fitclass[onnx]'") from None
    return onnxruntime


class TokenSource(Protocol):
    """What a graph predicts with besides itself: a loaded `TransformerClassifier`, or a
    `SavedTokenizer` read without the network."""

    @property
    def class_names(self) -> list[str]: ...
    @property
    def tokenizer(self) -> PreTrainedTokenizerBase: ...
    @property
    def max_length(self) -> int: ...
    @property
    def multilabel(self) -> bool: ...


@dataclass(frozen=True)
class SavedTokenizer:
    """A saved transformer's tokenizer and the settings it is called with, read without
    building its network (the graph replaces it)."""

    class_names: list[str]
    tokenizer: PreTrainedTokenizerBase
    max_length: int
    multilabel: bool


def graph_source(model_dir: Path, run_path: Path) -> SavedTokenizer:
    """The tokenizer side of the model saved in `model_dir` (run `run_path`): its
    `fitclass_model.json` and tokenizer files only, never the weights."""
    kind, capabilities = saved_kind(model_dir)
    if not capabilities.onnx_export:
        raise no_onnx_export(run_path, kind)
    info = read_model_info(model_dir, {"max_length": int})
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
    except (OSError, ValueError) as error:
        raise load_failure(model_dir, kind, error) from None
    return SavedTokenizer(info["class_names"], tokenizer, info["max_length"],
                          bool(info.get("multilabel", False)))


class OnnxClassifier(Classifier):
    """Predicts with an exported graph in onnxruntime; same probabilities as the run."""

    kind = "onnx"

    def __init__(self, source: TokenSource, model_path: Path,
                 threads: int | None = None) -> None:
        super().__init__(source.class_names)
        ort = require_onnxruntime()
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(model_path), options,
                                            providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.tokenizer, self.max_length = source.tokenizer, source.max_length
        self.multilabel = source.multilabel

    def logits(self, texts: Sequence[TextInput], batch_size: int = 64) -> np.ndarray:
        def run(batch: dict[str, torch.Tensor]) -> np.ndarray:
            feed = {name: batch[name].numpy().astype(np.int64) for name in self.inputs}
            return np.asarray(self.session.run(None, feed)[0])

        return over_batches(self.tokenizer, texts, self.max_length, batch_size,
                            len(self.class_names), run)

    def predict_proba(self, texts: Sequence[TextInput], batch_size: int = 64) -> np.ndarray:
        return probabilities(self.logits(texts, batch_size), self.multilabel)

    def save(self, model_dir: Path) -> None:
        raise RunError("an ONNX classifier is saved by `fitclass export`, not by a run")


def transformer_of(classifier: Classifier, run_path: Path) -> TransformerClassifier:
    """The run's classifier as a token classifier (tokenizer, module, max_length): the kinds
    that declare `onnx_export` are those; other kinds have no ONNX export."""
    if not classifier.capabilities.onnx_export:
        raise no_onnx_export(run_path, classifier.kind)
    return cast(TransformerClassifier, classifier)


def no_onnx_export(run_path: Path, kind: str) -> FitclassError:
    return FitclassError(f"{run_path}: ONNX export is for transformer text runs and "
                         f"ensembles of them (`fitclass ensemble`, `--seeds`, `--folds`); "
                         f"this run's model is {kind!r}, which has no ONNX export. Predict "
                         f"it with `--engine torch`")

