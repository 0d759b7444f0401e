"""Cross-validation and refits (`fitclass train --folds K`, `--refit`): runs made of runs.

`members.py` trains, resumes or keeps the fold runs (one normal run per fold and seed under
OUT); `scores.py` gathers their out-of-fold probabilities and scores them over folds;
`record.py` writes OUT as a run (the mean of its folds); `refit.py` retrains one model on
every labelled row with the schedule and decision they chose; `workflow.py` is
`fitclass.train`, which adds these to the single run of `fitclass.api.train`.
"""
