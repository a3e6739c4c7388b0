"""Durations as people read them: "31 s", "4 min 12 s", "2 h 5 min", "3 d 4 h"."""

from __future__ import annotations

from datetime import timedelta

_UNITS = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))


def human_duration(duration: timedelta | float) -> str:
    """``duration`` (a timedelta, or seconds) in its two largest units, rounded to the second:
    an alert title or a status line says "2 h 5 min", not "2:05:00.283892"."""
    seconds = duration.total_seconds() if isinstance(duration, timedelta) else duration
    left = max(0, round(seconds))  # an age: a clock a little behind another is "0 s"
    parts: list[str] = []
    for name, size in _UNITS:
        n, left = divmod(left, size)
        if n or parts:
            parts.append(f"{n} {name}")
        if len(parts) == 2:
            break
    if parts and parts[-1].startswith("0 "):
        parts.pop()  # "2 h", not "2 h 0 min"
    return " ".join(parts) or "0 s"
