"""`fitclass auto`: doctor's findings choose a search space, a multi-fidelity Optuna search
spends the time budget on it, and the best trials become one run.

`budget` parses `--time`, keeps the deadline (time earlier calls spent included) and predicts
a trial's cost from measured trials; `space` turns findings into searched remedies and
ranges (each naming its finding); `search` runs the study through `fitclass.sweep`'s trial
machinery while the next trial fits; `finish` ensembles the best trials into OUT's run;
`notes` writes OUT/auto.md; `workflow.auto` ties them together and records each call.

The package is named `autopilot`, not `auto`, so that `fitclass.auto` stays the function
(as `diagnosis` keeps `fitclass.doctor`).
"""

from __future__ import annotations

from fitclass.autopilot.workflow import auto

__all__ = ["auto"]
