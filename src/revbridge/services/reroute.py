"""The policy in the configuration is the truth for what has not gone yet.

An operator moves an event type between real-time and batch in ``revbridge.toml``
(``[policy.events."gl.posted"] pattern = "realtime"``), without code. New events follow the
new policy at ingest. The deliveries already waiting for their batch (pending, parked on a
dependency, held for a person) follow a move to real time when a worker starts: due at once.
Each move is in the audit log, with how many moved.

Only that way. A real-time delivery of a batch class is either one a real-time event needed
just in time (``DeliveryQueue.expedite``: moving it back would strand what waits for it) or
one that was real-time when it came: due already, it goes as soon as it can, and sending it
to a later window would only delay it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, and_, exists, select, update

from revbridge.core.policy import Pattern, RoutingPolicy
from revbridge.store.schema import audit_log, deliveries, events

_WAITING = ("pending", "parked", "held")


@dataclass(frozen=True, slots=True)
class Moved:
    event_type: str
    to_pattern: str
    deliveries: int


def reroute_to_policy(
    engine: Engine, policy: RoutingPolicy, *, now: datetime, actor: str = "policy"
) -> list[Moved]:
    """Move every waiting batch delivery of a type ``policy`` now says is real-time."""
    moved: list[Moved] = []
    pattern = Pattern.REALTIME.value
    with engine.begin() as conn:
        for rule in policy.events:
            if rule.pattern is not Pattern.REALTIME:
                continue
            n = conn.execute(
                update(deliveries)
                .where(
                    and_(
                        deliveries.c.state.in_(_WAITING),
                        deliveries.c.pattern == Pattern.BATCH.value,
                        exists(
                            select(events.c.id).where(
                                and_(
                                    events.c.id == deliveries.c.event_id,
                                    events.c.type == rule.type.value,
                                )
                            )
                        ),
                    )
                )
                .values(pattern=pattern, due_at=now, updated_at=now)
            ).rowcount
            if n:
                moved.append(Moved(rule.type.value, pattern, n))
                conn.execute(
                    audit_log.insert().values(
                        at=now,
                        actor=actor,
                        action="reroute",
                        entity_type="event_type",
                        entity_id=rule.type.value,
                        to_state=pattern,
                        reason=f"the policy says {pattern}: {n} waiting deliveries moved",
                    )
                )
    return moved
