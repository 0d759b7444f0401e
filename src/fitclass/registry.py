"""One registry type for everything found by a recipe name: backbones, losses, samplers,
linear heads, trackers, combiners (timm's `register_model`, optuna's samplers).

A registry knows no entries of its own: the modules that define them register them with the
`register(name)` decorator, and a wrong name's error lists the valid ones. Sources that are
not single names (e.g. `timm:<name>`, a model folder) are `claim`ed by a predicate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from fitclass.errors import RecipeError

T = TypeVar("T")


class Registry(Generic[T]):
    """Names to entries of one kind; `what` and `key` word the error for a wrong name."""

    def __init__(self, what: str, key: str) -> None:
        self.what = what  # e.g. "loss"
        self.key = key  # the recipe key that names an entry, e.g. "imbalance.loss"
        self._entries: dict[str, T] = {}
        self._claims: list[tuple[Callable[[str], bool], T]] = []

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering its target under `name` (a later registration replaces)."""

        def decorate(entry: T) -> T:
            self._entries[name] = entry
            return entry

        return decorate

    def add(self, name: str, entry: T) -> None:
        """Register `entry` under `name` without decorating."""
        self._entries[name] = entry

    def claim(self, claims: Callable[[str], bool]) -> Callable[[T], T]:
        """Decorator registering an entry for the unregistered names `claims(name)` accepts,
        tried in registration order (e.g. `timm:<name>`)."""

        def decorate(entry: T) -> T:
            self._claims.append((claims, entry))
            return entry

        return decorate

    def find(self, name: str) -> T | None:
        """The entry registered as `name`, else the first claiming it, else None."""
        if name in self._entries:
            return self._entries[name]
        return next((entry for claims, entry in self._claims if claims(name)), None)

    def get(self, name: str) -> T:
        """The entry for `name`; a `RecipeError` listing the valid names if there is none."""
        entry = self.find(name)
        if entry is None:
            raise RecipeError(f"{self.key}: unknown {self.what} {name!r}; choose one of "
                              f"{self.names()}")
        return entry

    def names(self) -> list[str]:
        """The registered names, sorted (claimed sources are not names)."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> list[tuple[str, T]]:
        return [(name, self._entries[name]) for name in self.names()]
