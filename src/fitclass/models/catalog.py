"""The built-in model kinds, and lookups that need them all registered.

Importing the kind modules runs their registrations (`models/registry.py`); it is done on the
first lookup, not at import, to keep `import fitclass` small.
"""

from __future__ import annotations

from pathlib import Path

from fitclass.capabilities import Capabilities
from fitclass.contracts.model import RunAccess
from fitclass.errors import RunError
from fitclass.files import check_same_classes, read_json_object
from fitclass.models.base import MODEL_INFO, Backbone, Classifier
from fitclass.models.loading import load_failure, model_info_path, read_model_info
from fitclass.models.registry import BACKBONES, FALLBACK, KINDS, SOURCES
from fitclass.recipe import ModelConfig


def _ensure_builtins() -> None:
    from fitclass.models import classical, ensemble, image, text, timm_image  # noqa: F401


def backbone_names() -> list[str]:
    """The registered recipe names (a HF id, a model folder or `timm:<name>` also work)."""
    _ensure_builtins()
    return BACKBONES.names()


def backbone_kinds() -> list[type[Backbone]]:
    """Every registered backbone class, for contract tests and capability listings."""
    _ensure_builtins()
    return [cls for _, cls in KINDS.items()]


def get_backbone(config: ModelConfig) -> Backbone:
    """The backbone for `config.backbone`: a registered name, a claimed source, else an HF
    id or folder."""
    _ensure_builtins()
    factory = BACKBONES.find(config.backbone)
    if factory is not None:
        return factory(config)
    source_factory = SOURCES.find(config.backbone) or FALLBACK[0]
    return source_factory(config.backbone, config)


def capabilities(config: ModelConfig) -> Capabilities:
    """What the kind `config.backbone` names can do."""
    return get_backbone(config).capabilities


def saved_kind(model_dir: Path) -> tuple[str, Capabilities]:
    """The kind of the model saved in `model_dir` and what it can do, without loading it."""
    _ensure_builtins()
    path = model_info_path(model_dir)
    kind = read_json_object(path, {"kind": str})["kind"]
    if kind not in KINDS:
        raise RunError(f"{path}: unknown model kind {kind!r}; known: {KINDS.names()}")
    return kind, KINDS.get(kind).capabilities


def load_classifier(model_dir: Path, class_names: list[str] | None = None,
                    labels_path: Path | None = None,
                    runs: RunAccess | None = None) -> Classifier:
    """Load a saved classifier of any kind from its folder. With `class_names` (the run's
    `labels.json`, at `labels_path`), the model's own saved class names must match them;
    `runs` (the run layer's) is given to classifiers made of runs (ensembles)."""
    _ensure_builtins()
    model_dir = Path(model_dir)
    kind = read_json_object(model_info_path(model_dir), {"kind": str})["kind"]
    if kind not in KINDS:
        raise RunError(f"{model_dir / MODEL_INFO}: unknown model kind {kind!r}; known: "
                       f"{KINDS.names()}")
    info = read_model_info(model_dir)
    if class_names is not None:
        check_same_classes(labels_path or model_dir.parent, class_names,
                           model_dir / MODEL_INFO, info["class_names"])
    try:
        classifier = KINDS.get(kind).load(model_dir)
    except RunError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, TypeError, IndexError) as error:
        # the loaders check the files they need; this names anything they could not foresee
        raise load_failure(model_dir, kind, error) from None
    if runs is not None:
        classifier.bind_runs(runs)
    return classifier
