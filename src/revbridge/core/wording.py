"""Counts as people read them: "1 delivery", "2 deliveries", never "1 deliveries"."""

from __future__ import annotations


def counted(n: int, singular: str, plural: str | None = None) -> str:
    """``n`` and the noun that agrees with it: ``singular`` for one, else ``plural`` (by
    default ``singular`` with an "s"): ``counted(1, "item")`` is "1 item",
    ``counted(0, "delivery", "deliveries")`` is "0 deliveries"."""
    return f"{n} {agreeing(n, singular, plural)}"


def agreeing(n: int, singular: str, plural: str | None = None) -> str:
    """The noun alone, as ``counted`` chooses it: ``agreeing(2, "key")`` is "keys", for a
    message that names the things instead of counting them ("unknown keys a, b")."""
    return singular if n == 1 else (plural or singular + "s")
