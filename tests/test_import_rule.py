"""The import rule (docs/architecture.md): no import cycle among fitclass's modules, counting
imports inside functions (only `if TYPE_CHECKING:` blocks are excepted), and the
import-linter contracts in pyproject.toml hold."""

from __future__ import annotations

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


def test_a_neural_fit_needs_the_trainer_passed_in() -> None:
    """models/ never imports the loop: a neural kind trains through `FitContext.trainer`."""
    from fitclass.contracts.fit import FitContext
    from fitclass.errors import FitclassError

    context = FitContext.__new__(FitContext)
    context.trainer = None
    with pytest.raises(FitclassError, match=r"trainer=fitclass\.training\.engine\.fit_neural"):
        context.train_neural(lambda: None)  # type: ignore[arg-type, return-value]
