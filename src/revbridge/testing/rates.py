"""Checking a rate limit from the times calls were made."""

from __future__ import annotations

from collections.abc import Sequence


def most_calls_in_one_second(stamps: Sequence[float]) -> int:
    """The most calls in any one-second window, from their times (seconds, in order)."""
    worst, j = 0, 0
    for i, t in enumerate(stamps):
        while stamps[j] <= t - 1.0:
            j += 1
        worst = max(worst, i - j + 1)
    return worst
