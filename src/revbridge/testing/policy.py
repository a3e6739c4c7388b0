"""Routing policies for tests and for users trying a set-up: the default hybrid map with some
event types moved to real time (as an operator would in ``revbridge.toml``)."""

from __future__ import annotations

from revbridge.core.events import EventType
from revbridge.core.policy import EventPolicy, Pattern, RoutingPolicy, build_policy


def realtime_policy(*types: EventType) -> RoutingPolicy:
    """The default policy with ``types`` delivered in real time (no schedule)."""
    return build_policy(
        {
            t: EventPolicy(
                type=t, pattern=Pattern.REALTIME, schedule=None, rationale="test: in real time"
            )
            for t in types
        }
    )
