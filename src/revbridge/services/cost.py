"""API cost: calls today against the daily budget, and what the policy costs at the peak.

The "real-time everywhere" mistake shows up here before the ERP's governance does: for each
real-time event type, the observed peak hour (by business time, over the last week of events)
projected over a day is compared with the target's daily call budget and rate limit.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select

from revbridge.config import Settings
from revbridge.core.events import SPECS, EventType
from revbridge.core.policy import Pattern, RoutingPolicy
from revbridge.engine.worker import TARGET_OF
from revbridge.store.schema import api_calls, events


def _hour_bucket(engine: Engine) -> Any:
    if engine.dialect.name == "sqlite":
        return func.strftime("%Y-%m-%d %H", events.c.occurred_at)
    return func.date_trunc("hour", events.c.occurred_at)


def cost_report(
    engine: Engine,
    policy: RoutingPolicy,
    now: datetime,
    *,
    budgets: dict[str, int | None],
    rate_limits: dict[str, float | None],
) -> dict[str, Any]:
    day = now.date().isoformat()
    with engine.connect() as conn:
        today: dict[str, int] = {}
        by_type: dict[str, dict[str, int]] = {}
        for target, event_type, pattern, n in conn.execute(
            select(
                api_calls.c.target, api_calls.c.event_type, api_calls.c.pattern, api_calls.c.calls
            ).where(api_calls.c.day == day)
        ):
            today[target] = today.get(target, 0) + int(n)
            by_type.setdefault(target, {})[f"{event_type} ({pattern})"] = int(n)
        latest = conn.execute(select(func.max(events.c.occurred_at))).scalar()
        bucket = _hour_bucket(engine)
        peaks: dict[str, int] = {}
        if latest is not None:
            from revbridge.store.schema import UTCDateTime

            latest_dt = UTCDateTime().process_result_value(latest, engine.dialect)
            assert latest_dt is not None
            window_start = latest_dt - timedelta(days=7)
            per_hour = (
                select(events.c.type, bucket.label("h"), func.count().label("n"))
                .where(events.c.occurred_at >= window_start)
                .group_by(events.c.type, bucket)
                .subquery()
            )
            for event_type, peak in conn.execute(
                select(per_hour.c.type, func.max(per_hour.c.n)).group_by(per_hour.c.type)
            ):
                peaks[event_type] = int(peak)
    warnings: list[str] = []
    projected: dict[str, int] = {}
    over_alone: set[str] = set()  # targets where one type alone is over the rate limit
    for rule in policy.events:
        if rule.pattern is not Pattern.REALTIME or not rule.enabled:
            continue
        target = TARGET_OF[SPECS[EventType(rule.type)].direction]
        peak = peaks.get(rule.type.value, 0)
        projected[target] = projected.get(target, 0) + peak * 24
        limit = rate_limits.get(target)
        if limit and peak / 3600 > limit:
            over_alone.add(target)
            warnings.append(
                f"{rule.type.value}: the observed peak of {peak}/hour is over {target}'s rate "
                f"limit of {limit}/s; consider batch for this type"
            )
    for target, calls_per_day in projected.items():
        # The real-time types share the target's limit: each may fit while together they
        # do not (the limit is per account, not per type).
        limit = rate_limits.get(target)
        peak_hour = calls_per_day / 24
        if limit and peak_hour / 3600 > limit and target not in over_alone:
            warnings.append(
                f"{target}: at the observed peak the real-time types together need about "
                f"{peak_hour:.0f} calls/hour, over its rate limit of {limit}/s: move the "
                "high-volume types to batch"
            )
        budget = budgets.get(target)
        if budget and calls_per_day > budget:
            warnings.append(
                f"{target}: at the observed peak the real-time classes need about "
                f"{calls_per_day} calls/day, over the daily budget of {budget} "
                "(the 'real-time everywhere' mistake): move high-volume types to batch"
            )
    return {
        "day": day,
        "calls_today": today,
        "calls_today_by_type": by_type,
        "daily_budget": budgets,
        "projected_realtime_calls_per_day": projected,
        "peak_per_hour": peaks,
        "warnings": warnings,
    }


def cost_for(engine: Engine, settings: Settings, now: datetime) -> dict[str, Any]:
    """``cost_report`` with the budgets and rate limits the configuration declares."""
    raw = settings.raw
    return cost_report(
        engine,
        settings.policy,
        now,
        budgets={
            "erp": raw.erp.daily_call_budget,
            "salesforce": raw.salesforce.daily_call_budget,
        },
        rate_limits={
            "erp": raw.erp.rate_limit_per_s,
            "salesforce": raw.salesforce.rate_limit_per_s,
        },
    )
