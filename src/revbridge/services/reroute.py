"""The policy in the configuration is the truth for what has not gone yet.

An operator moves an event type between real-time and batch in ``revbridge.toml``
(``[policy.events."gl.posted"] pattern = "realtime"``), without code. New events follow the
new policy at ingest; the deliveries already waiting (pending, parked on a dependency, held
for a person) follow it when a worker starts: moved to real time, they are due at once; moved
to batch, at their class's next window. Each move is in the audit log, with how many moved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, and_, exists, select, update

from revbridge.core.policy import Pattern, RoutingPolicy, next_run
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
    """Move every waiting delivery whose pattern is not its type's in ``policy``."""
    moved: list[Moved] = []
    with engine.begin() as conn:
        for rule in policy.events:
            pattern = rule.pattern.value
            due = now if rule.pattern is Pattern.REALTIME else next_run(rule.schedule or "", now)
            n = conn.execute(
                update(deliveries)
                .where(
                    and_(
                        deliveries.c.state.in_(_WAITING),
                        deliveries.c.pattern != pattern,
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
                .values(pattern=pattern, due_at=due, updated_at=now)
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
