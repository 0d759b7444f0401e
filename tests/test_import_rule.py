"""The import rule (docs/architecture.md): no import cycle among fitclass's modules, counting
imports inside functions (only `if TYPE_CHECKING:` blocks are excepted), and the
import-linter contracts in pyproject.toml hold."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_no_import_cycle_counting_imports_inside_functions() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "import_graph.py"),
                           str(ROOT / "src" / "fitclass")], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stdout
    assert "cycles: 0" in done.stdout


@pytest.mark.skipif(importlib.util.find_spec("importlinter") is None,
                    reason="import-linter is in the dev extra")
def test_import_linter_contracts_hold() -> None:
    command = "from importlinter.cli import lint_imports_command; lint_imports_command()"
    done = subprocess.run([sys.executable, "-c", command], cwd=ROOT, capture_output=True,
                          text=True, check=False, env={"PYTHONPATH": str(ROOT / "src")})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def fitclass_imports(path: Path) -> list[tuple[str, str | None]]:
    """(module, name or None) of every fitclass import in a file, inside functions too."""
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fitclass"):
            found += [(str(node.module), alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names
                      if alias.name.startswith("fitclass")]
    return found


def test_every_fitclass_import_resolves() -> None:
    """A moved module leaves no import on its old path, not even one inside a function
    (import-linter skips modules that do not exist, so it cannot tell)."""
    files = [*(ROOT / "src").rglob("*.py"), *(ROOT / "bench").glob("*.py"),
             *(ROOT / "tests").rglob("*.py")]
    broken = []
    for path in files:
        for module, name in fitclass_imports(path):
            try:
                imported = importlib.import_module(module)
                if name is not None and not hasattr(imported, name):
                    importlib.import_module(f"{module}.{name}")
            except ImportError:
                broken.append(f"{path.relative_to(ROOT)}: {module} {name or ''}".strip())
    assert not broken, broken


def test_a_neural_fit_needs_the_trainer_passed_in() -> None:
    """models/ never imports the loop: a neural kind trains through `FitContext.trainer`."""
    from fitclass.contracts.fit import FitContext
    from fitclass.errors import FitclassError

    context = FitContext.__new__(FitContext)
    context.trainer = None
    with pytest.raises(FitclassError, match=r"trainer=fitclass\.training\.engine\.fit_neural"):
        context.train_neural(lambda: None)  # type: ignore[arg-type, return-value]
