"""Nothing outside `fitclass.runs` names a run file: every file name of the run record is
spelled once, in `runs/layout.py`, and reached through the package's readers and writer."""

from __future__ import annotations

import ast
from pathlib import Path

from fitclass.runs import layout

SRC = Path(layout.__file__).resolve().parents[1]
NAMES = (layout.RECIPE, layout.LABELS, layout.METRICS, layout.HISTORY,
         layout.VALID_PREDICTIONS, layout.DATA_CHECKS, layout.ENVIRONMENT, layout.STATUS,
         layout.DECISION, layout.DYNAMICS, layout.VALID_PROBS, layout.REPORT,
         layout.NOISE_CHANGES, layout.SELF_TRAINING, layout.ENSEMBLE, layout.EXPORT_INFO,
         layout.LOCK, layout.OOF, layout.OOF_PROBS, layout.CV,
         layout.REFIT_INFO)  # `tensorboard` is also the tracker's recipe name; `suspects.csv` the
#                         audit's own output: both are spelled outside runs/ for those uses


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring nodes (prose may mention files; code may not spell them)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                found.add(id(body[0].value))
    return found


def run_file_literals(path: Path) -> list[str]:
    """`line: literal` for each string literal in `path`'s code that is a run file's name or
    a path ending in one (prose in messages may mention a file; code may not open it)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    prose = _docstrings(tree)
    return [f"{path.name}:{node.lineno}: {node.value!r}" for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in prose
            and any(node.value == name or node.value.endswith(f"/{name}") for name in NAMES)]


def test_scan_finds_a_run_file_literal(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('"""Reads metrics.json."""\nPATH = "metrics.json"\n'
                      'NESTED = "run/status.json"\nTEXT = "see metrics.json"\n')
    assert [hit.split(": ", 1)[1] for hit in run_file_literals(sample)] == [
        "'metrics.json'", "'run/status.json'"]


def test_no_module_outside_runs_spells_a_run_file() -> None:
    outside = [p for p in sorted(SRC.rglob("*.py")) if "runs" not in p.relative_to(SRC).parts]
    assert len(outside) > 20
    hits = [hit for path in outside for hit in run_file_literals(path)]
    assert not hits, "route these through fitclass.runs:\n" + "\n".join(hits)
