"""How sure a number is: intervals for a metric and tests of a difference between runs.

`intervals.py` holds the shared `Interval` and the interval across independent runs (seeds,
folds); the bootstrap over rows and the paired comparisons build on it.
"""
