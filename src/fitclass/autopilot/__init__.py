"""`fitclass auto`: doctor's findings choose a search space, a multi-fidelity Optuna search
spends the time budget on it, and the best trials become one run.

`budget` parses `--time`, keeps the deadline (time earlier calls spent included) and predicts
a trial's cost from measured trials; `space` turns findings into searched remedies and
ranges (each naming its finding); `search` runs the study through `fitclass.sweep`'s trial
machinery while the next trial fits; `refit` cross-validates and refits the chosen trials
under `best`; `finish` ensembles them into OUT's run, in place; `folder` names OUT's own
entries; `notes` writes OUT/auto.md; `workflow.auto` ties them together, records each call,
and lets further workers on the same OUT contribute trials.

The package is named `autopilot`, not `auto`, so that `fitclass.auto` stays the function
(as `diagnosis` keeps `fitclass.doctor`).
"""

from __future__ import annotations

from fitclass.autopilot.workflow import auto

__all__ = ["auto"]
