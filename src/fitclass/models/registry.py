"""The backbone registry: a recipe's `model.backbone` name to the `Backbone` that fits it.

`register_backbone("name")` decorates a factory taking the `ModelConfig`. A name that is not
registered is offered to the `register_source` factories (image models, `timm:<name>`) and
otherwise treated as a Hugging Face text model id or a local model folder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fitclass.errors import RunError
from fitclass.files import check_same_classes, read_json_object
from fitclass.models.base import MODEL_INFO, Backbone, Classifier
from fitclass.models.loading import load_failure, model_info_path, read_model_info
from fitclass.recipe import ModelConfig

BackboneFactory = Callable[[ModelConfig], Backbone]

_BACKBONES: dict[str, BackboneFactory] = {}
_KINDS: dict[str, type[Backbone]] = {}
SourceFactory = Callable[[str, ModelConfig], Backbone]
#: Builds the backbone for any name that is not registered (a hub id or a model folder).
_FALLBACK: list[SourceFactory] = []
#: (claims, factory): factories for the unregistered names that `claims(name)` accepts.
_SOURCES: list[tuple[Callable[[str], bool], SourceFactory]] = []


def register_backbone(name: str) -> Callable[[BackboneFactory], BackboneFactory]:
    """Register a factory under a recipe name, e.g. `@register_backbone("tfidf")`."""

    def decorate(factory: BackboneFactory) -> BackboneFactory:
        _BACKBONES[name] = factory
        return factory

    return decorate


def register_kind(cls: type[Backbone]) -> type[Backbone]:
    """Register a backbone class by its `kind`, so saved models of that kind can be loaded."""
    _KINDS[cls.kind] = cls
    return cls


def register_fallback(
    factory: Callable[[str, ModelConfig], Backbone],
) -> Callable[[str, ModelConfig], Backbone]:
    """Register the factory for unregistered names (`name`, config) -> Backbone."""
    _FALLBACK[:] = [factory]
    return factory


def register_source(
    claims: Callable[[str], bool],
) -> Callable[[SourceFactory], SourceFactory]:
    """Register a factory for unregistered names that `claims(name)` accepts, tried in
    registration order before the fallback (e.g. HF image model folders, `timm:<name>`)."""

    def decorate(factory: SourceFactory) -> SourceFactory:
        _SOURCES.append((claims, factory))
        return factory

    return decorate


def _ensure_builtins() -> None:
    # Importing the modules runs their registrations; done lazily to keep import time small.
    from fitclass.models import classical, ensemble, image, text, timm_image  # noqa: F401


def backbone_names() -> list[str]:
    _ensure_builtins()
    return sorted(_BACKBONES)


def get_backbone(config: ModelConfig) -> Backbone:
    """The backbone for `config.backbone`: a registered name, else an HF id or folder."""
    _ensure_builtins()
    factory = _BACKBONES.get(config.backbone)
    if factory is None:
        for claims, source_factory in _SOURCES:
            if claims(config.backbone):
                return source_factory(config.backbone, config)
        return _FALLBACK[0](config.backbone, config)
    return factory(config)


def load_classifier(model_dir: Path, class_names: list[str] | None = None,
                    labels_path: Path | None = None) -> Classifier:
    """Load a saved classifier of any kind from its folder. With `class_names` (the run's
    `labels.json`, at `labels_path`), the model's own saved class names must match them."""
    _ensure_builtins()
    model_dir = Path(model_dir)
    kind = read_json_object(model_info_path(model_dir), {"kind": str})["kind"]
    if kind not in _KINDS:
        raise RunError(f"{model_dir / MODEL_INFO}: unknown model kind {kind!r}; known: "
                       f"{sorted(_KINDS)}")
    info = read_model_info(model_dir)
    if class_names is not None:
        check_same_classes(labels_path or model_dir.parent, class_names,
                           model_dir / MODEL_INFO, info["class_names"])
    try:
        return _KINDS[kind].load(model_dir)
    except RunError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, TypeError, IndexError) as error:
        # the loaders check the files they need; this names anything they could not foresee
        raise load_failure(model_dir, kind, error) from None
