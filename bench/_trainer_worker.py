"""One measured Hugging Face `Trainer` run: `python bench/_trainer_worker.py SPEC.json`.

Trainer drives fitclass's own module (`get_backbone(ModelConfig(...)).build(...).module`,
this tree's fitclass: the encoder, the recipe's pooling, dropout, a linear head), so the two
sides train the same network; rows are tokenized once up front (the same `tokenize_arrays` call
fitclass makes) and batched by `DataCollatorWithPadding`, at random (Trainer's default) or
with `group_by_length` (`spec["grouped"]`).

The clock is `_probes.TrainerClock`: each epoch from on_epoch_begin to on_epoch_end, so
evaluation and checkpoint saves (which Trainer runs after on_epoch_end) are excluded, as
fitclass's own clock excludes them. With `spec["evaluate"]`, Trainer evaluates the scoring
rows every epoch and loads the best by accuracy at the end, as fitclass selects; the
selected model is then scored by fitclass's length-sorted inference, argmax.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from accelerate.utils import set_seed
from sklearn.metrics import accuracy_score, f1_score
from transformers import DataCollatorWithPadding, Trainer

import fitclass
from _probes import TokenCounter, TrainerClock, emit, set_threads, trainer_arguments, versions
from fitclass.data.tokens import tokenize_arrays
from fitclass.models.catalog import get_backbone
from fitclass.models.text import TransformerClassifier
from fitclass.recipe import ModelConfig


def read_table(path: str) -> pd.DataFrame:
    """The benchmark's TSVs: quoted only where needed, empty strings kept."""
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def encode(classifier: TransformerClassifier, frame: pd.DataFrame, text: str,
           label: str) -> list[dict[str, Any]]:
    """Token ids without padding, one dict per row, labels as class indices."""
    tokens = tokenize_arrays(classifier.tokenizer, frame[text].tolist(), classifier.max_length)
    index = {name: i for i, name in enumerate(classifier.class_names)}
    labels = [index[value] for value in frame[label]]
    return [{**{k: v.tolist() for k, v in tokens.row(i).items()}, "labels": labels[i]}
            for i in range(len(frame))]


def compute_metrics(prediction: Any) -> dict[str, float]:
    predicted = np.asarray(prediction.predictions).argmax(axis=1)
    truth = np.asarray(prediction.label_ids)
    return {"accuracy": float(accuracy_score(truth, predicted)),
            "macro_f1": float(f1_score(truth, predicted, average="macro"))}


def score(classifier: TransformerClassifier, frame: pd.DataFrame, text: str,
          label: str, batch_size: int) -> dict[str, float]:
    """fitclass's scorer: length-sorted batched inference, argmax."""
    probs = classifier.predict_proba(frame[text].tolist(), batch_size)
    names = np.asarray(classifier.class_names)
    predicted = names[probs.argmax(axis=1)]
    truth = frame[label].to_numpy()
    return {"accuracy": float(accuracy_score(truth, predicted)),
            "macro_f1": float(f1_score(truth, predicted, average="macro"))}


def selection(trainer: Trainer) -> dict[str, Any]:
    """The evaluated epochs and the one Trainer kept (the first of ties)."""
    evals = [e for e in trainer.state.log_history if "eval_accuracy" in e]
    if not evals:
        return {}
    best = max(evals, key=lambda e: e["eval_accuracy"])
    return {"best_epoch": float(best["epoch"]),
            "own_best_accuracy": float(trainer.state.best_metric or float("nan")),
            "history": [{"epoch": e["epoch"], "valid_loss": e["eval_loss"],
                         "accuracy": e["eval_accuracy"], "macro_f1": e["eval_macro_f1"]}
                        for e in evals]}


def parameters(module: torch.nn.Module) -> dict[str, int]:
    embedding = sum(p.numel() for m in module.modules() if isinstance(m, torch.nn.Embedding)
                    for p in m.parameters(recurse=False))
    return {"params": sum(p.numel() for p in module.parameters()),
            "params_embedding": embedding}


def main(spec_path: Path) -> None:
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    threads = set_threads(spec.get("threads"))
    counter = TokenCounter(spec["vocab_size"]).install()
    data, hyper, device = spec["data"], spec["hyper"], spec["device"]
    started = time.perf_counter()
    set_seed(spec["seed"])  # as fitclass does before building, so the new head follows it
    classifier = get_backbone(ModelConfig(**spec["model"])).build(spec["class_names"])
    if not isinstance(classifier, TransformerClassifier):
        sys.exit(f"model {spec['model']}: expected a transformer text backbone")
    train = read_table(data["train"])
    scoring = read_table(data["valid"])
    evaluate = bool(spec["evaluate"])
    clock = TrainerClock(device)
    trainer = Trainer(
        model=classifier.module,
        args=trainer_arguments(hyper, output_dir=spec["out"], seed=spec["seed"],
                               grouped=spec["grouped"], evaluate=evaluate, device=device,
                               precision=spec["precision"]),
        train_dataset=encode(classifier, train, data["text"], data["label"]),
        eval_dataset=encode(classifier, scoring, data["text"], data["label"]) if evaluate
        else None,
        data_collator=DataCollatorWithPadding(classifier.tokenizer),
        processing_class=classifier.tokenizer,
        compute_metrics=compute_metrics if evaluate else None, callbacks=[clock])
    trainer.train()
    total = time.perf_counter() - started
    classifier.module = trainer.model
    result: dict[str, Any] = {
        **score(classifier, scoring, data["text"], data["label"], hyper["eval_batch_size"]),
        **clock.marks.fields(), "clock": "TrainerClock: on_epoch_begin to on_epoch_end",
        "total_s": total, "steps": int(trainer.state.global_step),
        "padded_tokens": counter.tokens, "train_batches": counter.batches,
        **selection(trainer), **parameters(classifier.module),
        "fitclass_version": fitclass.__version__, "torch_threads": threads,
        "torch_threads_end": torch.get_num_threads(), **versions(),
    }
    emit(result)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
