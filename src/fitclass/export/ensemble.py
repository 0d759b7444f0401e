"""`fitclass export OUT --onnx` for an ensemble run (`fitclass ensemble`, `--seeds`, a
`--folds` cross-validation): every transformer member's graph under
`OUT/onnx/members/<member>/`, nothing written into the member runs.

How each member predicts under the ONNX engine is decided before anything is written:
- a transformer member: its graph (and int8 graph with `--quantize int8`);
- a member whose kind has no torch network (TF-IDF: scikit-learn, already CPU inference): its
  own model, in the same ensemble (`native` in the record);
- a member that is itself an ensemble: through its own members, by the same rules;
- any other member (an image network): refused, naming the member and the fix, since the
  "ONNX" engine would quietly run a torch network.
The export is then checked against the PyTorch ensemble on the run's validation rows (a
cross-validation run's out-of-fold rows): each member, the combined probabilities, and the
labels after the ensemble's decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fitclass.errors import FitclassError
from fitclass.export.graph import agreement, verification_texts, write_graphs
from fitclass.models.catalog import saved_kind
from fitclass.models.ensemble import EnsembleClassifier
from fitclass.models.members import ENSEMBLE_KIND
from fitclass.models.onnx import transformer_of
from fitclass.models.onnx_ensemble import NATIVE, NESTED, ONNX, OnnxEnsembleClassifier
from fitclass.runs.layout import MODEL, claim_folder
from fitclass.runs.members import member_runs
from fitclass.runs.onnx_engine import member_engines
from fitclass.runs.onnx_folder import (
    GRAPHS,
    MEMBER_FOLDER,
    MEMBERS,
    fix_for,
    member_names,
    member_stamp,
)
from fitclass.runs.run import Run, load_run


def plan_members(run_path: Path, paths: Sequence[Path]) -> list[dict[str, Any]]:
    """The export record's member entries (name, run, kind, start stamp, engine; nested
    members for an ensemble member), read without loading any model; refuses a member that
    the ONNX engine could only run in PyTorch."""
    entries = []
    for name, path in zip(member_names(paths), paths, strict=True):
        kind, capabilities = saved_kind(path / MODEL)
        entry: dict[str, Any] = {"name": name, "run": str(path), "kind": kind,
                                 "started": member_stamp(path)}
        if capabilities.onnx_export:
            entry["engine"] = ONNX
        elif kind == ENSEMBLE_KIND:
            entry["engine"] = NESTED
            entry["members"] = plan_members(run_path, member_runs(path))
        elif not capabilities.neural:
            entry["engine"] = NATIVE
        else:
            raise FitclassError(
                f"{run_path}: member {path} is a {kind!r} model, a torch network with no ONNX "
                f"export, so this ensemble cannot predict through ONNX. Predict the ensemble "
                f"with `--engine torch`, or build one without that member (`fitclass "
                f"ensemble RUN_A RUN_B ... --out DIR`) and export that")
        entries.append(entry)
    return entries


def graph_count(entries: Sequence[dict[str, Any]]) -> int:
    """How many members (nested ones included) export a graph."""
    return sum(1 if entry["engine"] == ONNX else graph_count(entry.get("members", []))
               for entry in entries)


def checked_plan(run_path: Path) -> list[dict[str, Any]]:
    """The member entries of the ensemble run at `run_path`, which must export a graph."""
    entries = plan_members(run_path, member_runs(run_path))
    if graph_count(entries) == 0:
        kinds = sorted({entry["kind"] for entry in entries})
        raise FitclassError(f"{run_path}: none of this ensemble's members is a transformer "
                            f"run (kinds: {', '.join(kinds)}), so there is no graph to "
                            f"export; its members already predict on the CPU with `--engine "
                            f"torch`")
    return entries


def write_member_graphs(entries: Sequence[dict[str, Any]], paths: Sequence[Path],
                        folder: Path, quantize: str | None) -> None:
    """Each graph member's graphs into `folder/members/<member>` (nested members likewise),
    loading one member at a time."""
    for entry, path in zip(entries, paths, strict=True):
        if entry["engine"] == NATIVE:
            continue
        own = claim_folder(folder / MEMBERS / entry["name"], MEMBER_FOLDER,
                           fix=fix_for(folder / MEMBERS / entry["name"]))
        if entry["engine"] == NESTED:
            write_member_graphs(entry["members"], member_runs(path), own, quantize)
            continue
        member = load_run(path, device="cpu", precision="fp32")  # the graph's reference
        write_graphs(transformer_of(member.classifier, member.path), own, quantize)
        del member


def verify_ensemble(run: Run, ensemble: EnsembleClassifier, entries: Sequence[dict[str, Any]],
                    folder: Path, graphs: Sequence[str], texts: Sequence[str]
                    ) -> dict[str, dict[str, Any]]:
    """Per graph kind (fp32, int8): the ONNX ensemble against the PyTorch one on `texts`
    (the run's validation rows): combined probabilities, labels after the run's decision,
    and each member."""
    reference = ensemble.member_probabilities(texts, 64)
    combined = ensemble.combiner.combine(reference)
    labels = _labels(run, combined)
    report = {}
    for graph in graphs:
        engines = member_engines(run.path, entries, member_runs(run.path), folder,
                                 GRAPHS[graph])
        members = OnnxEnsembleClassifier(ensemble, engines).member_probabilities(texts, 64)
        onnx_combined = ensemble.combiner.combine(members)
        report[graph] = {
            "path": str(folder), **agreement(combined, onnx_combined),
            "label_agreement": float((_labels(run, onnx_combined) == labels).all(1).mean()),
            "members": {entry["name"]: {"engine": entry["engine"], **agreement(t, o)}
                        for entry, t, o in zip(entries, reference, members, strict=True)}}
    return report


def _labels(run: Run, probs: np.ndarray) -> np.ndarray:
    """The run's decisions on combined probabilities, one row per text."""
    predicted = run.decision.predict(run.decision.calibrate(probs))
    return np.asarray(predicted).reshape(len(probs), -1)


def export_ensemble(run: Run, ensemble: EnsembleClassifier, entries: Sequence[dict[str, Any]],
                    folder: Path, quantize: str | None) -> dict[str, Any]:
    """Write the members' graphs into the claimed, cleared `folder`; the verification and
    the record's member entries (the caller writes the record)."""
    write_member_graphs(entries, member_runs(run.path), folder, quantize)
    graphs = ["fp32", "int8"] if quantize == "int8" else ["fp32"]
    texts, source = verification_texts(run)
    return {"kind": ENSEMBLE_KIND, "member_output": ensemble.member_output,
            "combiner": ensemble.combiner.method, "members": list(entries),
            **verify_ensemble(run, ensemble, entries, folder, graphs, texts),
            "verified_on": str(source)}
