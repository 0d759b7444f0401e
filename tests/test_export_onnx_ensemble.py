"""ONNX export of ensemble runs (`fitclass ensemble`, a `--folds` cross-validation, nested
ensembles): one graph per transformer member under OUT/onnx/members, TF-IDF members predicted
natively, the ONNX engine combining as the PyTorch ensemble does; refusals, re-exports and
exports that did not finish."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import fitclass
import fitclass.api
import fitclass.export.ensemble
from fitclass.errors import FitclassError, RunError
from fitclass.export import export_onnx
from fitclass.models.onnx_ensemble import OnnxEnsembleClassifier

pytestmark = pytest.mark.usefixtures("no_reports")


@pytest.fixture(scope="module")
def quiet() -> Iterator[None]:
    """No report.html for the module's runs (the module-scoped `no_reports`)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fitclass.api, "write_report_safely", lambda path, reporter: None)
        yield


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory, train_csv: Path,
            recipe_for: Callable[..., dict[str, Any]], quiet: None) -> dict[str, Path]:
    """Two tiny-BERT runs (seeds 0 and 1) and a TF-IDF run on one validation split."""
    root = tmp_path_factory.mktemp("members")
    found = {}
    for seed in (0, 1):
        recipe = recipe_for("tiny_bert", train_csv, train={"epochs": 2, "batch_size": 16,
                                                           "seed": seed})
        found[f"bert{seed}"] = fitclass.train(recipe, out=root / f"bert{seed}").path
    found["tfidf"] = fitclass.train(recipe_for("tfidf", train_csv), out=root / "tfidf").path
    return found


@pytest.fixture(scope="module")
def ensemble_run(tmp_path_factory: pytest.TempPathFactory, members: dict[str, Path],
                 quiet: None) -> dict[str, Any]:
    """A stacked ensemble of the three (a meta-model over every member's probabilities),
    exported with int8 graphs."""
    out = tmp_path_factory.mktemp("ensemble") / "ens"
    fitclass.ensemble([members["bert0"], members["bert1"], members["tfidf"]], out,
                      method="stacking")
    return {"path": out, "report": export_onnx(out, "int8")}


@pytest.fixture(scope="module")
def crossval(tmp_path_factory: pytest.TempPathFactory, train_csv: Path,
             recipe_for: Callable[..., dict[str, Any]], quiet: None) -> dict[str, Path]:
    """A 2-fold tiny-BERT cross-validation with its refit, the CV run exported."""
    out = tmp_path_factory.mktemp("cv") / "cv"
    recipe = recipe_for("tiny_bert", train_csv, train={"epochs": 2, "batch_size": 16})
    refit = fitclass.train(recipe, out=out, folds=2, refit=True)
    export_onnx(out)
    return {"cv": out, "refit": refit.path}


def probs_of(frame: Any, run: fitclass.Run) -> np.ndarray:
    return frame[[f"prob:{c}" for c in run.class_names]].to_numpy()


def test_ensemble_export_writes_member_graphs_and_record(ensemble_run: dict[str, Any],
                                                         members: dict[str, Path]) -> None:
    folder = ensemble_run["path"] / "onnx"
    for name in ("bert0", "bert1"):
        assert (folder / "members" / name / "model.onnx").is_file()
        assert (folder / "members" / name / "model.int8.onnx").is_file()
    assert not (folder / "members" / "tfidf").exists()  # predicted by its own model
    assert not any((path / "onnx").exists() for path in members.values())  # members untouched
    record = json.loads((folder / "export.json").read_text())
    assert record == json.loads(json.dumps(ensemble_run["report"]))
    assert record["kind"] == "ensemble" and record["combiner"] == "stacking"
    assert [(m["name"], m["engine"], m["kind"]) for m in record["members"]] == [
        ("bert0", "onnx", "transformer"), ("bert1", "onnx", "transformer"),
        ("tfidf", "native", "tfidf")]
    fp32 = record["fp32"]
    assert fp32["rows"] == 30  # the shared validation rows
    assert 0.0 < fp32["max_abs_prob_diff"] < 1e-4  # the graphs count in the combination
    assert fp32["argmax_agreement"] == 1.0 and fp32["label_agreement"] == 1.0
    assert fp32["members"]["tfidf"] == {"engine": "native", "rows": 30,
                                        "max_abs_prob_diff": 0.0, "argmax_agreement": 1.0}
    assert fp32["members"]["bert0"]["max_abs_prob_diff"] < 1e-4
    assert 0.0 <= record["int8"]["max_abs_prob_diff"] < 0.5


def test_ensemble_onnx_engine_matches_torch(ensemble_run: dict[str, Any],
                                            probe_texts: list[str]) -> None:
    run = fitclass.load_run(ensemble_run["path"])
    torch_frame = run.predict(probe_texts)
    onnx_frame = run.predict(probe_texts, engine="onnx-fp32", batch_size=2)
    assert onnx_frame["label"].tolist() == torch_frame["label"].tolist()
    np.testing.assert_allclose(probs_of(onnx_frame, run), probs_of(torch_frame, run),
                               atol=1e-4)
    engine = run.engine("onnx")  # int8 graphs, exported so
    assert isinstance(engine, OnnxEnsembleClassifier)
    assert [m.graph.name for m in engine.members if m.graph] == ["model.int8.onnx"] * 2
    int8 = probs_of(run.predict(probe_texts, engine="onnx"), run)
    assert int8.sum(1) == pytest.approx(1.0, abs=1e-5)


def test_ensemble_onnx_engine_never_builds_a_member_torch_model(
        ensemble_run: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
        probe_texts: list[str]) -> None:
    """Members with a graph predict with it and their tokenizer, never their network."""
    from fitclass.models.text import TransformerBackbone

    def refuse(cls: type, model_dir: Path) -> None:
        raise AssertionError(f"the PyTorch model in {model_dir} was loaded")

    monkeypatch.setattr(TransformerBackbone, "load", classmethod(refuse))
    run = fitclass.load_run(ensemble_run["path"])
    assert probs_of(run.predict(probe_texts, engine="onnx"), run).sum(1) == pytest.approx(1.0)
    with pytest.raises(AssertionError, match="PyTorch model"):
        run.predict(probe_texts, engine="torch")


def test_cli_exports_and_predicts_an_ensemble(ensemble_run: dict[str, Any], tmp_path: Path,
                                              cli_main: Callable[..., tuple[int, str, str]],
                                              probe_texts: list[str]) -> None:
    out = shutil.copytree(ensemble_run["path"], tmp_path / "ens")  # members by absolute path
    code, stdout, stderr = cli_main("export", out, "--onnx")
    assert code == 0, stderr
    assert stdout.strip() == str(out / "onnx")
    printed = " ".join(stderr.split())  # as wrapped by the console
    assert "labels agree 100.0% on 30 rows" in printed
    assert "bert0 (onnx): max |prob diff|" in printed and "tfidf (native)" in printed
    source = tmp_path / "new.csv"
    source.write_text("id,text\n" + "".join(f"t{i},{t}\n" for i, t in enumerate(probe_texts)))
    code, _, stderr = cli_main("predict", out, source, "--out", tmp_path / "onnx.csv",
                               "--engine", "onnx")
    assert code == 0, stderr
    code, _, stderr = cli_main("predict", out, source, "--out", tmp_path / "torch.csv")
    assert code == 0, stderr
    onnx, torch = (pd.read_csv(tmp_path / f"{n}.csv") for n in ("onnx", "torch"))
    assert onnx["label"].tolist() == torch["label"].tolist()
    columns = [c for c in torch.columns if c.startswith("prob:")]
    np.testing.assert_allclose(onnx[columns].to_numpy(), torch[columns].to_numpy(), atol=1e-4)


def test_cv_run_exports_and_predicts(crossval: dict[str, Path], probe_texts: list[str]) -> None:
    folder = crossval["cv"] / "onnx"
    record = json.loads((folder / "export.json").read_text())
    assert record["member_output"] == "raw" and record["combiner"] == "mean"
    assert [m["name"] for m in record["members"]] == ["fold-0", "fold-1"]
    assert all((folder / "members" / f"fold-{k}" / "model.onnx").is_file() for k in (0, 1))
    assert not (crossval["cv"] / "fold-0" / "onnx").exists()
    assert record["fp32"]["rows"] == 120  # every out-of-fold row
    assert record["fp32"]["max_abs_prob_diff"] < 1e-4
    assert record["fp32"]["label_agreement"] == 1.0
    run = fitclass.load_run(crossval["cv"])
    torch_frame, onnx_frame = run.predict(probe_texts), run.predict(probe_texts, engine="onnx")
    assert onnx_frame["label"].tolist() == torch_frame["label"].tolist()
    np.testing.assert_allclose(probs_of(onnx_frame, run), probs_of(torch_frame, run),
                               atol=1e-4)


def test_refit_run_exports_as_a_single_run(crossval: dict[str, Path],
                                           probe_texts: list[str]) -> None:
    report = export_onnx(crossval["refit"])  # no validation rows: its source run's are used
    assert report["verified_on"] == str(crossval["cv"] / "valid_predictions.csv")
    assert report["fp32"]["rows"] == 120 and report["fp32"]["argmax_agreement"] == 1.0
    assert "members" not in report
    run = fitclass.load_run(crossval["refit"])
    np.testing.assert_allclose(probs_of(run.predict(probe_texts, engine="onnx"), run),
                               probs_of(run.predict(probe_texts), run), atol=1e-4)


def test_nested_ensemble_exports_through_its_members(ensemble_run: dict[str, Any],
                                                     members: dict[str, Path],
                                                     tmp_path: Path,
                                                     probe_texts: list[str]) -> None:
    out = tmp_path / "outer"
    fitclass.ensemble([ensemble_run["path"], members["bert0"]], out, method="mean")
    report = export_onnx(out)
    nested = report["members"][0]
    assert nested["engine"] == "ensemble" and len(nested["members"]) == 3
    assert (out / "onnx" / "members" / "ens" / "members" / "bert1" / "model.onnx").is_file()
    assert report["fp32"]["max_abs_prob_diff"] < 1e-4
    run = fitclass.load_run(out)
    np.testing.assert_allclose(probs_of(run.predict(probe_texts, engine="onnx"), run),
                               probs_of(run.predict(probe_texts), run), atol=1e-4)


def test_member_without_graph_or_native_model_is_refused(members: dict[str, Path],
                                                         tmp_path: Path) -> None:
    image = shutil.copytree(members["tfidf"], tmp_path / "image-member")
    out = tmp_path / "ens"
    fitclass.ensemble([members["bert0"], image], out, method="mean")
    info = image / "model" / "fitclass_model.json"  # as an image network's run would say
    info.write_text(json.dumps({**json.loads(info.read_text()), "kind": "image"}))
    with pytest.raises(FitclassError, match=rf"member {image} is a 'image' model.*"
                                            rf"--engine torch.*fitclass ensemble"):
        export_onnx(out)
    assert not (out / "onnx").exists()  # refused before anything was written


def test_ensemble_of_tfidf_runs_has_nothing_to_export(members: dict[str, Path],
                                                      tmp_path: Path) -> None:
    other = shutil.copytree(members["tfidf"], tmp_path / "tfidf-copy")
    out = tmp_path / "ens"
    fitclass.ensemble([members["tfidf"], other], out, method="mean")
    with pytest.raises(FitclassError, match="none of this ensemble's members is a "
                                            "transformer run"):
        export_onnx(out)


def test_reexport_replaces_only_its_own_files(ensemble_run: dict[str, Any],
                                              tmp_path: Path) -> None:
    out = shutil.copytree(ensemble_run["path"], tmp_path / "ens")
    member = out / "onnx" / "members" / "bert0"
    (member / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match=r"bert0.*notes.txt.*move those files out"):
        export_onnx(out)
    assert (member / "notes.txt").read_text() == "mine"
    assert (out / "onnx" / "export.json").is_file()  # refused before deleting anything
    (member / "notes.txt").unlink()
    report = export_onnx(out)  # fp32 only: the int8 graphs of the last export go
    assert "int8" not in report
    assert sorted(p.name for p in member.iterdir()) == [".fitclass.json", "model.onnx"]
    run = fitclass.load_run(out)
    with pytest.raises(RunError, match="no int8 export"):
        run.engine("onnx-int8")


def test_unfinished_export_is_not_taken_as_valid(ensemble_run: dict[str, Any],
                                                 tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 probe_texts: list[str]) -> None:
    out = shutil.copytree(ensemble_run["path"], tmp_path / "ens")

    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(fitclass.export.ensemble, "verify_ensemble", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export_onnx(out)
    assert (out / "onnx" / "members" / "bert0" / "model.onnx").is_file()
    assert not (out / "onnx" / "export.json").exists()
    with pytest.raises(RunError, match=r"no ONNX export .*did not finish.*fitclass export"):
        fitclass.load_run(out).predict(probe_texts, engine="onnx")


def test_member_trained_again_makes_the_export_stale(members: dict[str, Path],
                                                     tmp_path: Path,
                                                     probe_texts: list[str]) -> None:
    copies = [shutil.copytree(members[name], tmp_path / name) for name in ("bert0", "tfidf")]
    out = tmp_path / "ens"
    fitclass.ensemble(copies, out, method="mean")
    export_onnx(out)
    assert len(fitclass.load_run(out).predict(probe_texts, engine="onnx")) == len(probe_texts)
    status = copies[0] / "status.json"  # as `fitclass train --out bert0 --overwrite` leaves it
    status.write_text(json.dumps({**json.loads(status.read_text()),
                                  "started": "2031-01-01T00:00:00+00:00"}))
    with pytest.raises(RunError, match=r"member .*bert0 was trained again after the ONNX "
                                       r"export; run `fitclass export .* --onnx` again"):
        fitclass.load_run(out).predict(probe_texts, engine="onnx")
