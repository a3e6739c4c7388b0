"""Fault injection: outages, latency, random 5xx and 429, and responses lost after commit.

A fault spec is a comma-separated list of ``key=value`` pairs (the same text the CLI's
``--faults`` option and the admin API accept)::

    outage=30s            every NetSuite request answers 503 for 30 s from when the spec is
                          applied; ``outage=on`` lasts until the spec is replaced
    latency=50ms          added to every NetSuite request while it holds a concurrency slot
    error_rate=0.1        probability that a request answers a random 500 or 503 before it
                          runs (nothing is committed)
    throttle_rate=0.05    probability of a spurious 429, as if other integrations held the slots
    lost_response_rate=0.05
                          probability that a successful write commits and then loses its
                          response
    lost_response=drop    how the response is lost: ``drop`` starts the response and closes the
                          connection mid-body, ``error`` answers 500 instead of the result
    seed=7                seeds the random draws so a run can be repeated

Durations take ``ms``, ``s`` or ``m``. Rates are probabilities in [0, 1]. Unknown keys and
bad values raise ``ValueError`` naming the key, so a typo never silently disables a fault.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Literal

from revbridge.core import durations

LostResponseMode = Literal["drop", "error"]
FOREVER = timedelta.max


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultSpec:
    """The faults to inject; the default injects none. ``outage`` None means no outage."""

    outage: timedelta | None = None
    latency: timedelta = timedelta(0)
    error_rate: float = 0.0
    throttle_rate: float = 0.0
    lost_response_rate: float = 0.0
    lost_response: LostResponseMode = "drop"
    seed: int | None = None

    def describe(self) -> str:
        """The spec in the grammar ``parse_fault_spec`` reads back."""
        parts: list[str] = []
        if self.outage is not None:
            parts.append("outage=on" if self.outage == FOREVER else f"outage={_fmt(self.outage)}")
        if self.latency:
            parts.append(f"latency={_fmt(self.latency)}")
        for key, rate in (
            ("error_rate", self.error_rate),
            ("throttle_rate", self.throttle_rate),
            ("lost_response_rate", self.lost_response_rate),
        ):
            if rate:
                parts.append(f"{key}={rate:g}")
        if self.lost_response != "drop":
            parts.append(f"lost_response={self.lost_response}")
        if self.seed is not None:
            parts.append(f"seed={self.seed}")
        return ",".join(parts)


def _fmt(duration: timedelta) -> str:
    ms = duration / timedelta(milliseconds=1)
    return f"{ms:g}ms" if ms < 1000 or ms % 1000 else f"{ms / 1000:g}s"


def parse_duration(text: str, *, key: str) -> timedelta:
    try:
        return durations.parse_duration(text)
    except ValueError as exc:
        raise ValueError(f"fault {key}: {exc}") from None


def _parse_rate(text: str, *, key: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        raise ValueError(f"fault {key}: {text!r} is not a number") from None
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"fault {key}: {rate} is not a probability in [0, 1]")
    return rate


def parse_fault_spec(text: str | None, *, base: FaultSpec | None = None) -> FaultSpec:
    """Read a fault spec (grammar in the module docstring) on top of ``base``."""
    spec = base or FaultSpec()
    if not text or not text.strip():
        return spec
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not value:
            raise ValueError(f"fault {item!r}: expected key=value")
        if key == "outage":
            outage = FOREVER if value in ("on", "true") else None
            if value in ("off", "false"):
                spec = replace(spec, outage=None)
                continue
            spec = replace(spec, outage=outage or parse_duration(value, key=key))
        elif key == "latency":
            spec = replace(spec, latency=parse_duration(value, key=key))
        elif key == "error_rate":
            spec = replace(spec, error_rate=_parse_rate(value, key=key))
        elif key == "throttle_rate":
            spec = replace(spec, throttle_rate=_parse_rate(value, key=key))
        elif key == "lost_response_rate":
            spec = replace(spec, lost_response_rate=_parse_rate(value, key=key))
        elif key == "lost_response":
            if value not in ("drop", "error"):
                raise ValueError(f"fault lost_response: {value!r} is not drop or error")
            spec = replace(spec, lost_response="drop" if value == "drop" else "error")
        elif key == "seed":
            try:
                spec = replace(spec, seed=int(value))
            except ValueError:
                raise ValueError(f"fault seed: {value!r} is not an integer") from None
        else:
            raise ValueError(
                f"unknown fault {key!r}: expected outage, latency, error_rate, throttle_rate, "
                "lost_response_rate, lost_response or seed"
            )
    return spec


Fault = Literal["outage", "error", "throttle"]


class FaultState:
    """The faults in force now. Mutated only on the server's event loop, so it needs no lock."""

    def __init__(self, spec: FaultSpec) -> None:
        self.apply(spec)

    def apply(self, spec: FaultSpec) -> None:
        self.spec = spec
        self._rng = random.Random(spec.seed)  # noqa: S311 - fault draws, not security
        self._outage_until = (
            None
            if spec.outage is None
            else float("inf")
            if spec.outage == FOREVER
            else time.monotonic() + spec.outage.total_seconds()
        )

    def outage_remaining_s(self) -> float | None:
        if self._outage_until is None:
            return None
        remaining = self._outage_until - time.monotonic()
        return remaining if remaining > 0 else None

    def before_request(self) -> tuple[Fault, int] | None:
        """The fault, if any, that answers this request before it runs, with its status."""
        if self.outage_remaining_s() is not None:
            return ("outage", 503)
        if self.spec.error_rate and self._rng.random() < self.spec.error_rate:
            return ("error", self._rng.choice((500, 503)))
        if self.spec.throttle_rate and self._rng.random() < self.spec.throttle_rate:
            return ("throttle", 429)
        return None

    def lose_response(self) -> bool:
        rate = self.spec.lost_response_rate
        return bool(rate) and self._rng.random() < rate
