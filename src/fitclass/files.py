"""Reading a file fitclass wrote without trusting it: JSON and safetensors files read back
through these helpers fail as a `RunError` naming the file, what is wrong and what to do,
never as a traceback from deep inside. Generic: models and run records both build on it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file

from fitclass.errors import RunError

#: What to do about a damaged file fitclass wrote, appended to every such error.
DAMAGED = "the run folder is damaged: retrain it, or restore the file from a copy"


def damaged(path: Path, problem: str) -> RunError:
    return RunError(f"{path} {problem}; {DAMAGED}")


def read_json_file(path: Path) -> Any:
    """Parsed JSON of `path`, or a `RunError` saying how it is damaged."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise damaged(path, "is missing") from None
    except OSError as error:
        raise RunError(f"{path} could not be read ({error.strerror}); check that it is a "
                       f"file you may read") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise damaged(path, f"is not UTF-8 text (bad byte at {error.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise damaged(path, f"is not valid JSON ({_json_problem(text, error, len(raw))})"
                      ) from None


def _json_problem(text: str, error: json.JSONDecodeError, size: int) -> str:
    if not text.strip():
        return "it is empty"
    # a cut inside a number ("0.71" cut to "0.") fails just before the end: the end is the
    # text without its trailing partial number
    end = len(text.rstrip().rstrip("0123456789.eE+-"))
    if error.pos >= end or error.msg.startswith("Unterminated"):
        return f"truncated at byte {size}"
    return f"line {error.lineno} column {error.colno}: {error.msg}"


def read_json_object(path: Path, required: dict[str, type | tuple[type, ...]]) -> dict[str, Any]:
    """A JSON object holding `required` keys of the given types."""
    payload = read_json_file(path)
    if not isinstance(payload, dict):
        raise damaged(path, f"should hold a JSON object, not {type(payload).__name__}")
    for key, kind in required.items():
        if key not in payload:
            raise damaged(path, f"has no {key!r} key")
        if not isinstance(payload[key], kind):
            names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise damaged(path, f"has {key!r} = {str(payload[key])[:80]!r}; expected a {names}")
    return payload


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Arrays of a safetensors file, or a `RunError` saying it is missing or damaged."""
    if not path.is_file():
        raise damaged(path, "is missing")
    try:
        return load_file(str(path))
    except SafetensorError as error:
        raise damaged(path, f"is not a readable safetensors file ({error}; "
                            f"{path.stat().st_size} bytes)") from None


def check_safetensors(path: Path) -> None:
    """A safetensors file's header describes the whole file (cheap: no tensor is read)."""
    from safetensors import safe_open

    if not path.is_file():
        raise damaged(path, "is missing")
    try:
        with safe_open(str(path), "np"):
            pass
    except SafetensorError as error:
        raise damaged(path, f"is not a readable safetensors file ({error})") from None


def check_class_names(path: Path, classes: list[Any], key: str = "classes") -> list[str]:
    """`classes` as saved in `path`: distinct strings, at least one."""
    if not classes or not all(isinstance(c, str) for c in classes):
        raise damaged(path, f"has {key} = {classes!r}; expected a list of class names")
    if len(set(classes)) != len(classes):
        raise damaged(path, f"names a class twice in {key} = {classes!r}")
    return list(classes)


def check_same_classes(labels_path: Path, classes: list[str], model_path: Path,
                       model_classes: list[str]) -> None:
    """The run's class list and the model's must agree on the classes and their order: a
    reordered list would silently relabel every prediction."""
    if list(classes) != list(model_classes):
        raise RunError(f"{labels_path} lists classes {classes} but the model in "
                       f"{model_path} was trained with {model_classes}; predictions would be "
                       f"mislabelled. {DAMAGED[0].upper()}{DAMAGED[1:]}")
