"""Fault injection: the ``--faults`` grammar and the runtime state it drives.

Grammar: comma-separated ``key=value`` pairs, keys in any order, each at most once::

    faults    := pair ("," pair)*
    pair      := "latency=" duration | "error_rate=" rate | "outage=" duration
               | "duplicate_events=" rate | "out_of_order=" rate
               | "expire_replay_before=" integer | "seed=" integer
    duration  := number ("ms" | "s" | "m" | "h")
    rate      := number in [0, 1] | number "%"

An empty string means no faults. ``outage`` starts when the faults are applied (at start or through
the admin API) and lasts the given duration.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from revbridge.core.durations import parse_duration


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultSpec:
    """The faults to inject; all zero means a well-behaved org."""

    latency: timedelta = timedelta(0)
    error_rate: float = 0.0
    outage: timedelta = timedelta(0)
    duplicate_events: float = 0.0
    out_of_order: float = 0.0
    expire_replay_before: int | None = None
    seed: int | None = None


class FaultSyntaxError(ValueError):
    """The fault string does not follow the grammar; the message names the offending pair."""


def _parse_duration(key: str, text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise FaultSyntaxError(
            f"{key}: expected a duration such as 50ms, 10s, 2m or 1h: {exc}"
        ) from None


def _parse_rate(key: str, text: str) -> float:
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise FaultSyntaxError(f"{key}: expected a rate such as 0.1 or 10%, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise FaultSyntaxError(f"{key}: rate must be between 0 and 1, got {text!r}")
    return value


def _parse_int(key: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise FaultSyntaxError(f"{key}: expected an integer, got {text!r}") from None


def parse_faults(text: str | None) -> FaultSpec:
    """The :class:`FaultSpec` ``text`` describes; raise :class:`FaultSyntaxError` if invalid."""
    spec = FaultSpec()
    if text is None or not text.strip():
        return spec
    seen: set[str] = set()
    for raw_pair in text.split(","):
        pair = raw_pair.strip()
        key, sep, value = pair.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not value:
            raise FaultSyntaxError(f"expected key=value, got {pair!r}")
        if key in seen:
            raise FaultSyntaxError(f"{key}: given twice")
        seen.add(key)
        match key:
            case "latency":
                spec = replace(spec, latency=_parse_duration(key, value))
            case "outage":
                spec = replace(spec, outage=_parse_duration(key, value))
            case "error_rate":
                spec = replace(spec, error_rate=_parse_rate(key, value))
            case "duplicate_events":
                spec = replace(spec, duplicate_events=_parse_rate(key, value))
            case "out_of_order":
                spec = replace(spec, out_of_order=_parse_rate(key, value))
            case "expire_replay_before":
                spec = replace(spec, expire_replay_before=_parse_int(key, value))
            case "seed":
                spec = replace(spec, seed=_parse_int(key, value))
            case _:
                raise FaultSyntaxError(f"unknown fault {key!r}")
    return spec


def format_faults(spec: FaultSpec) -> str:
    """The grammar form of ``spec``; ``parse_faults(format_faults(s)) == s``."""
    parts: list[str] = []
    if spec.latency:
        parts.append(f"latency={spec.latency.total_seconds() * 1000:g}ms")
    if spec.error_rate:
        parts.append(f"error_rate={spec.error_rate:g}")
    if spec.outage:
        parts.append(f"outage={spec.outage.total_seconds():g}s")
    if spec.duplicate_events:
        parts.append(f"duplicate_events={spec.duplicate_events:g}")
    if spec.out_of_order:
        parts.append(f"out_of_order={spec.out_of_order:g}")
    if spec.expire_replay_before is not None:
        parts.append(f"expire_replay_before={spec.expire_replay_before}")
    if spec.seed is not None:
        parts.append(f"seed={spec.seed}")
    return ",".join(parts)


class FaultState:
    """The faults in force, with the random source that decides each injected failure.

    A fixed ``seed`` makes a run reproducible: the same requests see the same failures.
    """

    def __init__(self, spec: FaultSpec, now: datetime) -> None:
        self._lock = threading.Lock()
        self.spec = spec
        self._rng = random.Random(spec.seed)  # noqa: S311 - fault dice, not security
        self.outage_until = now + spec.outage

    def apply(self, spec: FaultSpec, now: datetime) -> None:
        """Replace the faults in force; an outage in ``spec`` starts now."""
        with self._lock:
            self.spec = spec
            self._rng = random.Random(spec.seed)  # noqa: S311 - fault dice, not security
            self.outage_until = now + spec.outage

    def in_outage(self, now: datetime) -> bool:
        return now < self.outage_until

    def roll(self, rate: float) -> bool:
        """True with probability ``rate``."""
        if rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < rate
