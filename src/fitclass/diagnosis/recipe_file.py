"""`fitclass doctor --write-recipe FILE`: the recipe the findings imply, as commented YAML.

Each key a finding set carries a comment naming the finding; the header lists the regimes
and the findings. The file is validated by loading it back with `load_recipe` before it
replaces anything, written atomically, and never replaces a file fitclass doctor did not
write (its first line is the marker).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from fitclass.atomic import atomic_write_text
from fitclass.diagnosis.findings import Diagnosis, setter_of
from fitclass.recipe import Recipe, load_recipe
from fitclass.runs.layout import claim_file, first_line

MARKER = "# fitclass doctor recipe"


def _scalar(value: Any) -> str:
    """A value as one line of YAML (flow style for mappings and lists)."""
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10**6)
    return text.strip().removesuffix("...").strip()


def _lines(tree: dict[str, Any], setters: dict[str, str], prefix: str = "",
           indent: int = 0) -> list[str]:
    lines = []
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        pad = "  " * indent
        if dotted in setters:
            lines.append(f"{pad}{key}: {_scalar(value)}  # <- {setters[dotted]}")
        elif isinstance(value, dict) and value:
            lines.append(f"{pad}{key}:")
            lines.extend(_lines(value, setters, f"{dotted}.", indent + 1))
        else:
            lines.append(f"{pad}{key}: {_scalar(value)}")
    return lines


def recipe_text(diagnosis: Diagnosis) -> str:
    """The commented YAML of `diagnosis.recipe`."""
    setters = setter_of(diagnosis.findings)
    header = [MARKER + f" (written {datetime.now():%Y-%m-%d %H:%M}); rerun "
              f"`fitclass doctor` to rewrite it.",
              f"# data: {diagnosis.source} ({diagnosis.rows} rows, {diagnosis.task})",
              f"# regimes: {', '.join(diagnosis.regimes) or 'none'}",
              "# findings that set keys (# <- code marks each key):"]
    for finding in diagnosis.findings:
        if finding.recipe:
            header.append(f"#   {finding.code}: {finding.title}")
    advice = [f for f in diagnosis.findings if not f.recipe and f.severity != "info"]
    if advice:
        header.append("# findings whose remedy is an action, not a key:")
        header.extend(f"#   {f.code}: {f.remedy}" for f in advice)
    return "\n".join(header + _lines(diagnosis.recipe, setters)) + "\n"


def check_replaceable(path: Path) -> None:
    """Refuse a folder, or a file that is not a recipe fitclass doctor wrote (its first line
    is the marker)."""
    claim_file(path, lambda file: first_line(file).startswith(MARKER),
               f"a recipe fitclass doctor wrote (its first line is not {MARKER!r})",
               "--write-recipe", "doctor-recipe.yaml")


def write_recipe(diagnosis: Diagnosis, path: str | Path) -> Recipe:
    """Write the commented recipe to `path` (atomically) and return it as loaded back."""
    path = Path(path)
    check_replaceable(path)
    text = recipe_text(diagnosis)
    recipe = load_recipe(yaml.safe_load(text))  # the text as `fitclass train FILE` reads it
    atomic_write_text(path, text)
    return recipe
