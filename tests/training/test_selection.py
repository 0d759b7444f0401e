"""Checkpoint selection: the metric first, validation loss breaking ties; early stopping
counts only real improvements; resume state from before the tie-break still loads."""

from __future__ import annotations

import pytest

from fitclass.training.selection import Selector


def feed(selector: Selector, evaluations: list[tuple[float | None, float]]) -> list[bool]:
    return [selector.update(value, step, loss)
            for step, (value, loss) in enumerate(evaluations, start=1)]


def test_a_better_metric_wins_whatever_the_loss() -> None:
    selector = Selector("macro_f1", "max")
    assert feed(selector, [(0.5, 0.4), (0.6, 0.9)]) == [True, True]
    assert (selector.best_step, selector.best_value, selector.best_loss) == (2, 0.6, 0.9)


def test_an_exact_tie_goes_to_the_lower_loss() -> None:
    selector = Selector("macro_f1", "max")
    assert feed(selector, [(0.5, 0.9), (0.5, 0.7), (0.5, 0.8), (0.4, 0.1)]) == [
        True, True, False, False]
    assert (selector.best_step, selector.best_loss) == (2, 0.7)
    # a tie is not an improvement: early stopping keeps counting
    assert selector.evals_without_improvement == 3


def test_a_tie_in_min_mode() -> None:
    selector = Selector("log_loss", "min")
    assert feed(selector, [(0.3, 0.9), (0.3, 0.5), (0.31, 0.1)]) == [True, True, False]
    assert selector.best_step == 2


def test_min_delta_makes_small_gains_ties_but_never_moves_the_metric_down() -> None:
    selector = Selector("accuracy", "max", min_delta=0.05)
    # +0.02 is within min_delta: a tie, won on the lower loss; -0.01 is worse: never taken,
    # however low its loss; +0.1 is an improvement even with a higher loss
    assert feed(selector, [(0.70, 0.8), (0.72, 0.6), (0.71, 0.1), (0.73, 0.7),
                           (0.82, 0.9)]) == [True, True, False, False, True]
    assert (selector.best_step, selector.best_value) == (5, 0.82)
    assert selector.evals_without_improvement == 0


def test_without_a_loss_the_earlier_checkpoint_keeps_a_tie() -> None:
    selector = Selector("accuracy", "max")
    assert feed(selector, [(0.5, None), (0.5, 0.2)]) == [True, False]  # type: ignore[list-item]
    assert selector.update(None, 3) is False
    assert selector.best_step == 1 and selector.evals_without_improvement == 2


def test_state_round_trip_and_old_state_without_best_loss() -> None:
    selector = Selector("macro_f1", "max")
    feed(selector, [(0.5, 0.9), (0.5, 0.7)])
    restored = Selector("macro_f1", "max")
    restored.restore(selector.state())
    assert restored.state() == selector.state()
    assert restored.update(0.5, 3, 0.6) is True

    # a training state saved before the tie-break existed (no best_loss): it resumes, and
    # ties are broken again once a new best checkpoint records its loss
    old = Selector("macro_f1", "max")
    old.restore({"best_value": 0.5, "best_step": 2, "evals_without_improvement": 1})
    assert old.best_loss is None
    assert old.update(0.5, 3, 0.1) is False
    assert old.update(0.6, 4, 0.5) is True and old.best_loss == pytest.approx(0.5)
    assert old.update(0.6, 5, 0.4) is True and old.best_step == 5
