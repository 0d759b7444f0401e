"""Errors fitclass raises for bad user input; each message says where, what, and how to fix."""

from __future__ import annotations


class FitclassError(Exception):
    """Base class: a problem the user can fix. The CLI prints the message without a traceback."""


class RecipeError(FitclassError):
    """A recipe key is unknown, missing or has a bad value."""


class DataError(FitclassError):
    """An input file is missing, unreadable, or fails a data check."""


class RunError(FitclassError):
    """A run directory is missing, incomplete, or would be overwritten."""


class Pruned(Exception):
    """Raised inside training to stop a sweep trial that the pruner gave up on."""
