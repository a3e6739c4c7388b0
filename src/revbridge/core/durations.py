"""Durations as people read them ("31 s", "4 min 12 s", "2 h 5 min", "3 d 4 h") and as
they write them ("50ms", "30s", "2m", "15min", "2h", "7d", "1w")."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))
_WRITTEN = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|min|m|h|d|w)$")
_WRITTEN_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "min": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}


def parse_duration(text: str) -> timedelta:
    """A duration as written in a command or a fault spec: a number and a unit (ms, s, m or
    min, h, d, w), e.g. ``50ms``, ``2.5s``, ``15min``, ``7d``; ``ValueError`` otherwise."""
    match = _WRITTEN.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration like 50ms, 30s, 2m, 1h or 7d")
    return _WRITTEN_UNITS[match.group(2)] * float(match.group(1))


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
