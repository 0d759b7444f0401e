"""The `fitclass` command line: thin wrappers over the Python API.

`base.py` holds the typer app and the printers every command shares; the commands register
on it from `making.py` (train, ensemble, audit, sweep, pretrain, demo), `using.py`
(evaluate, predict, export, report, runs), `doctoring.py` (doctor), `distilling.py`
(distil) and `automating.py` (auto); `data_options.py` declares the data options doctor and
auto share.
"""

from __future__ import annotations

import sys

from fitclass.cli import automating, distilling, doctoring, making, using
from fitclass.cli.base import app, print_summary

__all__ = ["app", "automating", "distilling", "doctoring", "main", "making", "print_summary",
           "using"]


def main() -> None:
    try:
        app()
    except SystemExit as exit_:
        sys.exit(exit_.code)
