"""Where model kinds register: a recipe's `model.backbone` name to the `Backbone` that fits it.

`register_backbone("name")` decorates a factory taking the `ModelConfig`. A name that is not
registered is offered to the `register_source` factories (image models, `timm:<name>`) and
otherwise to the fallback (a Hugging Face text model id or a local model folder).
`register_kind` records a backbone class by the `kind` its saved models carry. This module
knows none of the kinds: `models/catalog.py` imports the built-in ones and looks them up.
"""

from __future__ import annotations

from collections.abc import Callable

from fitclass.contracts.model import Backbone
from fitclass.recipe import ModelConfig
from fitclass.registry import Registry

BackboneFactory = Callable[[ModelConfig], Backbone]
SourceFactory = Callable[[str, ModelConfig], Backbone]

#: Recipe names (`minilm`, `tfidf`, ...) to factories.
BACKBONES: Registry[BackboneFactory] = Registry("backbone", "model.backbone")
#: Unregistered names some factory claims (e.g. HF image model folders, `timm:<name>`).
SOURCES: Registry[SourceFactory] = Registry("backbone source", "model.backbone")
#: Saved-model kinds (`fitclass_model.json`'s `kind`) to the class that loads them.
KINDS: Registry[type[Backbone]] = Registry("model kind", "kind")
#: Builds the backbone for any name nothing else takes (a hub id or a model folder).
FALLBACK: list[SourceFactory] = []

register_backbone = BACKBONES.register
register_source = SOURCES.claim


def register_kind(cls: type[Backbone]) -> type[Backbone]:
    """Register a backbone class by its `kind`, so saved models of that kind can be loaded."""
    KINDS.add(cls.kind, cls)
    return cls


def register_fallback(factory: SourceFactory) -> SourceFactory:
    """Register the factory for names nothing else takes: (`name`, config) -> Backbone."""
    FALLBACK[:] = [factory]
    return factory
