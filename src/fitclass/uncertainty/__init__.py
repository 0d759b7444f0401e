"""How sure a number is: intervals for a metric and tests of a difference between runs.

`intervals.py` holds the shared `Interval` and the interval across independent runs (seeds,
folds); `scored.py` the rows a model scored (`Scored`); `weighted.py` the headline metrics
under many row weightings at once; `bootstrap.py` the percentile bootstrap over rows;
`paired.py` A-vs-B comparisons on the same rows and across runs, and their verdicts.
Numpy and scipy only: the run layer (`runs/scored_rows.py`) feeds it.
"""
