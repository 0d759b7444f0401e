"""ONNX export of a transformer run, verified against PyTorch, and the onnx predict engines."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import fitclass
import fitclass.api
from fitclass.errors import FitclassError, RunError
from fitclass.export import OnnxClassifier, export_onnx

pytestmark = pytest.mark.usefixtures("no_reports")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, train_csv: Path,
             recipe_for) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("onnx")
    recipe = recipe_for("tiny_bert", train_csv, train={"epochs": 3, "batch_size": 16})
    run = fitclass.train(recipe, out=root / "run")
    shutil.copytree(run.path, root / "plain")  # a copy that is never exported
    report = export_onnx(run.path, "int8")
    return {"run": run.path, "plain": root / "plain", "report": report}


def test_export_writes_graphs_and_report(exported: dict[str, Any]) -> None:
    folder = exported["run"] / "onnx"
    assert (folder / "model.onnx").is_file() and (folder / "model.int8.onnx").is_file()
    assert (folder / "model.int8.onnx").stat().st_size < (folder / "model.onnx").stat().st_size
    recorded = json.loads((folder / "export.json").read_text())
    assert recorded == json.loads(json.dumps(exported["report"]))
    fp32 = recorded["fp32"]
    assert fp32["path"] == str(folder / "model.onnx")
    assert fp32["rows"] == 30  # every validation row
    assert fp32["argmax_agreement"] == 1.0
    assert fp32["max_abs_prob_diff"] < 1e-4
    assert recorded["int8"]["path"] == str(folder / "model.int8.onnx")
    assert 0.0 <= recorded["int8"]["max_abs_prob_diff"] < 0.5


def test_graph_has_dynamic_axes(exported: dict[str, Any]) -> None:
    import onnx

    graph = onnx.load(str(exported["run"] / "onnx" / "model.onnx")).graph
    names = [i.name for i in graph.input]
    assert names[:2] == ["input_ids", "attention_mask"]
    dims = graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["batch", "sequence"]
    assert [o.name for o in graph.output] == ["logits"]


def test_onnx_fp32_engine_matches_torch(exported: dict[str, Any], probe_texts: list[str]) -> None:
    run = fitclass.load_run(exported["run"])
    torch_frame = run.predict(probe_texts, engine="torch")
    onnx_frame = run.predict(probe_texts, engine="onnx-fp32", batch_size=2)
    assert onnx_frame["label"].tolist() == torch_frame["label"].tolist()
    columns = [f"prob:{c}" for c in run.class_names]
    np.testing.assert_allclose(onnx_frame[columns].to_numpy(), torch_frame[columns].to_numpy(),
                               atol=1e-4)
    engine = run.engine("onnx-fp32")
    assert isinstance(engine, OnnxClassifier)
    np.testing.assert_allclose(engine.logits(probe_texts),
                               run.classifier.logits(probe_texts), atol=1e-4)


def test_onnx_engine_prefers_int8(exported: dict[str, Any], probe_texts: list[str]) -> None:
    run = fitclass.load_run(exported["run"])
    folder = exported["run"] / "onnx"
    int8 = OnnxClassifier(run.classifier, folder / "model.int8.onnx").logits(probe_texts)
    fp32 = OnnxClassifier(run.classifier, folder / "model.onnx").logits(probe_texts)
    assert not np.array_equal(int8, fp32)  # quantised weights give (slightly) other logits
    for name in ("onnx", "onnx-int8"):
        np.testing.assert_array_equal(run.engine(name).logits(probe_texts), int8)
    np.testing.assert_array_equal(run.engine("onnx-fp32").logits(probe_texts), fp32)
    frame = run.predict(probe_texts, engine="onnx")
    probs = frame[[f"prob:{c}" for c in run.class_names]].to_numpy()
    assert probs.sum(1) == pytest.approx(1.0, abs=1e-5)


def test_onnx_engine_without_export(exported: dict[str, Any], probe_texts: list[str]) -> None:
    run = fitclass.load_run(exported["plain"])
    for name in ("onnx", "onnx-fp32", "onnx-int8"):
        with pytest.raises(RunError, match="fitclass export"):
            run.predict(probe_texts, engine=name)
    with pytest.raises(RunError, match="engine"):
        run.predict(probe_texts, engine="tensorrt")


def test_fp32_only_export_has_no_int8(tmp_path: Path, exported: dict[str, Any],
                                      probe_texts: list[str]) -> None:
    copy = shutil.copytree(exported["plain"], tmp_path / "run")
    report = export_onnx(copy)
    assert set(report) == {"fp32", "seconds", "verified_on"}
    assert report["verified_on"] == str(copy / "valid_predictions.csv")
    assert not (copy / "onnx" / "model.int8.onnx").exists()
    run = fitclass.load_run(copy)
    fp32 = OnnxClassifier(run.classifier, copy / "onnx" / "model.onnx").logits(probe_texts)
    np.testing.assert_array_equal(run.engine("onnx").logits(probe_texts), fp32)
    with pytest.raises(RunError, match="int8"):
        run.engine("onnx-int8")
    (copy / "onnx" / "export.json").unlink()  # as an export that stopped midway leaves it
    with pytest.raises(RunError, match=r"no ONNX export \(the graphs there are from an "
                                       r"export that did not finish\); run `fitclass export"):
        fitclass.load_run(copy).engine("onnx")


def test_tfidf_runs_are_not_exported(tmp_path: Path, train_csv: Path, recipe_for) -> None:
    run = fitclass.train(recipe_for("tfidf", train_csv), out=tmp_path / "run")
    with pytest.raises(FitclassError, match=r"model is .tfidf., which has no ONNX export"):
        export_onnx(run.path)
    assert not (run.path / "onnx" / "model.onnx").exists()


def test_unknown_quantisation_refused(exported: dict[str, Any]) -> None:
    with pytest.raises(FitclassError, match="int8"):
        export_onnx(exported["plain"], "fp16")
    assert not (exported["plain"] / "onnx").exists()


def test_onnx_engine_never_builds_the_torch_model(exported: dict[str, Any],
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  probe_texts: list[str]) -> None:
    """The graph replaces the network: predicting with it reads the tokenizer only."""
    from fitclass.models.text import TransformerBackbone

    def refuse(cls: type, model_dir: Path) -> None:
        raise AssertionError(f"the PyTorch model in {model_dir} was loaded")

    monkeypatch.setattr(TransformerBackbone, "load", classmethod(refuse))
    run = fitclass.load_run(exported["run"])
    frame = run.predict(probe_texts, engine="onnx")
    assert frame[[f"prob:{c}" for c in run.class_names]].to_numpy().sum(1) == pytest.approx(1.0)
    with pytest.raises(AssertionError, match="PyTorch model"):  # the torch engine does load it
        run.predict(probe_texts, engine="torch")
