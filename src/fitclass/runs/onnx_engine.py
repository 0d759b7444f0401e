"""`Run.engine("onnx")`: the classifier that predicts a run with its ONNX export, built from
the export's record (`runs/onnx_folder.py`): the run's graph, or, for an ensemble run, an
`OnnxEnsembleClassifier` whose members predict as the record says (their graphs, their own
model, or through their own members). Only a finished export is used, and only while every
member run is the one that was exported."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fitclass.errors import RunError
from fitclass.models.base import Classifier
from fitclass.models.catalog import saved_kind
from fitclass.models.ensemble import EnsembleClassifier
from fitclass.models.onnx import FP32, INT8, OnnxClassifier, graph_source
from fitclass.models.onnx_ensemble import NATIVE, NESTED, ONNX, MemberEngine, OnnxEnsembleClassifier
from fitclass.runs.members import member_runs
from fitclass.runs.onnx_folder import (
    MEMBERS,
    bad_record,
    check_graph,
    export_again,
    export_folder,
    graph_names,
    member_names,
    member_stamp,
    read_export,
)


def onnx_engine(run_path: Path, model_dir: Path, load_classifier: Callable[[], Classifier],
                quantized: bool | None = None) -> Classifier:
    """The run's export as a classifier: int8 graphs when exported so (unless
    `quantized=False`), fp32 otherwise; `quantized=True` requires int8. A transformer's
    network is never loaded (the graph replaces it; `graph_source` reads its tokenizer);
    an ensemble's model (`load_classifier`) is JSON only."""
    record = read_export(run_path)
    graphs = graph_names(record, run_path)
    if quantized and "int8" not in graphs:
        raise RunError(f"{run_path}: no int8 export; run `fitclass export {run_path} --onnx "
                       f"--quantize int8`")
    graph = INT8 if quantized is not False and "int8" in graphs else FP32
    folder = export_folder(run_path)
    if saved_kind(model_dir)[0] == EnsembleClassifier.kind:
        classifier = load_classifier()
        assert isinstance(classifier, EnsembleClassifier)
        entries = record.get("members")
        if not isinstance(entries, list):
            raise bad_record(run_path, "is not an ensemble's export (no members), but the "
                                       "run is an ensemble")
        return OnnxEnsembleClassifier(classifier, member_engines(
            run_path, entries, member_runs(run_path), folder, graph))
    return OnnxClassifier(graph_source(model_dir, run_path), check_graph(folder / graph, run_path))


def member_engines(run_path: Path, entries: Sequence[Any], paths: Sequence[Path],
                   folder: Path, graph: str) -> list[MemberEngine]:
    """How each member run at `paths` predicts, from the record's `entries` (one per member,
    in order; nested for a member that is an ensemble) whose graphs are under `folder`."""
    if len(entries) != len(paths):
        raise bad_record(run_path, f"lists {len(entries)} members under {folder}; the "
                                   f"ensemble has {len(paths)}")
    engines = []
    for entry, name, path in zip(entries, member_names(paths), paths, strict=True):
        if not isinstance(entry, dict) or entry.get("name") != name:
            raise bad_record(run_path, f"does not list member {path} as {name!r} under "
                                       f"{folder}")
        if entry.get("started") != member_stamp(path):
            raise RunError(f"{run_path}: member {path} was trained again after the ONNX "
                           f"export; {export_again(run_path)}")
        own = folder / MEMBERS / name
        kind = entry.get("engine")
        if kind == ONNX:
            engines.append(MemberEngine(name, ONNX, check_graph(own / graph, run_path)))
        elif kind == NESTED:
            nested = member_engines(run_path, entry.get("members") or [], member_runs(path),
                                    own, graph)
            engines.append(MemberEngine(name, NESTED, members=tuple(nested)))
        elif kind == NATIVE:
            engines.append(MemberEngine(name, NATIVE))
        else:
            raise bad_record(run_path, f"has engine {kind!r} for member {path}; expected "
                                       f"{ONNX}, {NATIVE} or {NESTED}")
    return engines
