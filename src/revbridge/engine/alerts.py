"""Alerts: one per incident, with a resolve message when it clears.

Conditions are read from the ledger (so any process can evaluate them and they agree):
failure rate over a window, new dead letters, backlog age of real-time deliveries, an open
circuit, a failed or partial batch, a capture stream failing (or, when asked, not run) for
too long. Incidents are rows in ``alerts``: an open row means the
alert was sent; it is resolved (and the resolve message sent) when the condition clears.
Notifications go through apprise (email, Slack, Teams, webhooks) as configured; the log sink
is always on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog
from sqlalchemy import Engine, and_, case, func, select, text, update

from revbridge.core.durations import human_duration
from revbridge.core.timestamps import human_timestamp
from revbridge.core.wording import counted
from revbridge.store.schema import (
    UTCDateTime,
    alerts,
    attempts,
    batches,
    capture_streams,
    deliveries,
    events,
    targets,
)

log = structlog.get_logger("revbridge.alerts")


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertRules:
    backlog_age: timedelta = timedelta(hours=1)
    failure_rate: float = 0.5
    failure_window: timedelta = timedelta(minutes=15)
    min_attempts: int = 10
    dead_letter_window: timedelta = timedelta(minutes=15)
    # A capture stream whose every round has failed this long: changes made in that system
    # are not reaching the hub (no backlog ages for them: only this says it).
    capture_failing: timedelta = timedelta(minutes=15)
    # A capture stream with no successful round this long (the scheduled capture stopped
    # running); None: not watched.
    capture_stale: timedelta | None = None


@dataclass(frozen=True, slots=True)
class Condition:
    key: str
    severity: str
    title: str
    body: str


class Notifier(Protocol):
    def notify(self, title: str, body: str, severity: str) -> bool: ...


class LogNotifier:
    def notify(self, title: str, body: str, severity: str) -> bool:
        log.warning("alert", title=title, body=body, severity=severity)
        return True


class AppriseNotifier:
    """Sends through apprise to every configured URL (mailto://, slack://, json://, ...)."""

    def __init__(self, urls: Sequence[str]) -> None:
        import apprise

        self._apprise = apprise.Apprise()
        for url in urls:
            if not self._apprise.add(url):
                raise ValueError(f"apprise cannot use the notification URL {url.split(':')[0]}://…")

    def notify(self, title: str, body: str, severity: str) -> bool:
        import apprise

        kind = {
            "critical": apprise.NotifyType.FAILURE,
            "warning": apprise.NotifyType.WARNING,
            "resolved": apprise.NotifyType.SUCCESS,
        }.get(severity, apprise.NotifyType.INFO)
        return bool(self._apprise.notify(title=title, body=body, notify_type=kind))


def _as_dt(value: object, engine: Engine) -> datetime | None:
    return UTCDateTime().process_result_value(value, engine.dialect)


def evaluate(engine: Engine, rules: AlertRules, now: datetime) -> list[Condition]:
    """The alert conditions that hold now."""
    found: list[Condition] = []
    with engine.connect() as conn:
        # Half-open is still open: one process is probing. Counting only "open" resolved the
        # incident while a probe ran and opened a new one when it failed, a page per cooldown.
        for circuit in conn.execute(
            select(targets.c.name, targets.c.circuit_reason).where(
                targets.c.circuit.in_(("open", "half_open"))
            )
        ):
            reason = (circuit.circuit_reason or "").rstrip(". ")
            why = f" Why: {reason}." if reason else ""
            found.append(
                Condition(
                    f"circuit_open:{circuit.name}",
                    "critical",
                    f"revbridge: circuit open to {circuit.name}",
                    f"Calls to {circuit.name} keep failing; the circuit is open and events are "
                    f"buffering in the ledger.{why} See `revbridge dr status`.",
                )
            )
        for target_name, oldest in conn.execute(
            select(deliveries.c.target, func.min(events.c.received_at))
            .join(events, events.c.id == deliveries.c.event_id)
            .where(
                and_(
                    deliveries.c.pattern == "realtime",
                    deliveries.c.state.in_(("pending", "parked", "in_flight")),
                )
            )
            .group_by(deliveries.c.target)
        ):
            oldest_dt = _as_dt(oldest, engine)
            if oldest_dt is not None and now - oldest_dt > rules.backlog_age:
                age = human_duration(now - oldest_dt)
                found.append(
                    Condition(
                        f"backlog_age:{target_name}",
                        "warning",
                        f"revbridge: real-time backlog to {target_name} is {age} old",
                        f"The oldest undelivered real-time event to {target_name} was received "
                        f"{age} ago (threshold {human_duration(rules.backlog_age)}). "
                        "See `revbridge dr status`.",
                    )
                )
        since = now - rules.failure_window
        for target_name, total, failed in conn.execute(
            select(
                deliveries.c.target,
                func.count(),
                func.sum(case((attempts.c.outcome != "delivered", 1), else_=0)),
            )
            .join(deliveries, deliveries.c.event_id == attempts.c.event_id)
            .where(and_(attempts.c.finished_at >= since, attempts.c.outcome.is_not(None)))
            .group_by(deliveries.c.target)
        ):
            rate = (failed or 0) / total if total else 0.0
            if total >= rules.min_attempts and rate > rules.failure_rate:
                found.append(
                    Condition(
                        f"failure_rate:{target_name}",
                        "critical",
                        f"revbridge: {rate:.0%} of calls to {target_name} fail",
                        f"{failed} of {counted(total, 'delivery attempt')} to {target_name} "
                        f"failed in the last {human_duration(rules.failure_window)} (threshold "
                        f"{rules.failure_rate:.0%}).",
                    )
                )
        new_dead = conn.execute(
            select(func.count())
            .select_from(deliveries)
            .where(
                and_(
                    deliveries.c.state == "dead_letter",
                    deliveries.c.updated_at >= now - rules.dead_letter_window,
                )
            )
        ).scalar_one()
        if new_dead:
            found.append(
                Condition(
                    "dead_letters",
                    "critical",
                    f"revbridge: {counted(new_dead, 'new dead letter')}",
                    f"{counted(new_dead, 'delivery', 'deliveries')} gave up in the last "
                    f"{human_duration(rules.dead_letter_window)}. See `revbridge dlq list`.",
                )
            )
        found += _capture_conditions(conn, rules, now)
        latest: dict[str, Any] = {}
        for row in conn.execute(
            select(batches.c.id, batches.c.event_type, batches.c.state, batches.c.summary).order_by(
                batches.c.id
            )
        ):
            latest[row.event_type] = row
        for event_type, row in latest.items():
            if row.state in ("failed", "partial"):
                found.append(
                    Condition(
                        f"batch_failed:{event_type}",
                        "critical",
                        f"revbridge: the {event_type} batch {row.state}",
                        _batch_failed_body(event_type, row.id, row.state, row.summary),
                    )
                )
    return found


def _capture_conditions(conn: Any, rules: AlertRules, now: datetime) -> list[Condition]:
    """A capture stream failing (every round since ``failing_since``) or, when watched, not
    run; not for a side an operator paused (its capture is skipped on purpose)."""
    paused = {
        r.name for r in conn.execute(select(targets.c.name).where(targets.c.paused.is_(True)))
    }
    found: list[Condition] = []
    for s in conn.execute(select(capture_streams).order_by(capture_streams.c.name)):
        if s.name.split(":", 1)[0] in paused:
            continue
        last_ok = _as_dt(s.last_ok_at, conn.engine)
        since = _as_dt(s.failing_since, conn.engine)
        ok_text = human_timestamp(last_ok) if last_ok else "never"
        if since is not None and now - since >= rules.capture_failing:
            found.append(
                Condition(
                    f"capture_failing:{s.name}",
                    "critical",
                    f"revbridge: capture from {s.name} failing for {human_duration(now - since)}",
                    f"Every capture round from {s.name} has failed since "
                    f"{human_timestamp(since)} (last success: {ok_text}); the last error: "
                    f"{s.last_error}. Changes made there are not reaching the hub. Nothing "
                    "is lost: the watermark stays where it was, and the first round that "
                    "succeeds reads them. See `revbridge status`.",
                )
            )
        elif (
            rules.capture_stale is not None
            and since is None
            and last_ok is not None
            and now - last_ok >= rules.capture_stale
        ):
            found.append(
                Condition(
                    f"capture_stale:{s.name}",
                    "warning",
                    f"revbridge: no capture from {s.name} for {human_duration(now - last_ok)}",
                    f"No capture round from {s.name} has run since {ok_text} (threshold "
                    f"{human_duration(rules.capture_stale)}). Is the worker, `revbridge "
                    "serve` or the scheduled `revbridge capture` still running?",
                )
            )
    return found


def _batch_failed_body(event_type: str, batch_id: int, state: str, summary: str | None) -> str:
    """What went wrong with a batch run and what helps: a failed submission leaves its items
    pending (they retry), not dead-lettered, so the dead-letter list is no help for it."""
    try:
        told: dict[str, Any] = json.loads(summary) if summary else {}
    except ValueError:
        told = {}
    retry_now = f"`revbridge batch run --class {event_type}`"
    if state == "failed":
        error = str(told.get("error") or "no error recorded")
        if len(error) > 300:
            error = error[:299] + "…"
        dead = int(told.get("dead_lettered") or 0)
        if dead:  # the system refused the file: it would again
            return (
                f"The latest {event_type} batch run (batch {batch_id}) was refused as a whole: "
                f"{error}. {counted(dead, 'item')} {'was' if dead == 1 else 'were'} "
                f"dead-lettered (`revbridge dlq list --type {event_type}`). Once the cause is "
                f"fixed, `revbridge dlq replay --all --type {event_type} --reason ...` sends "
                f"{'it' if dead == 1 else 'them'} again."
            )
        return (
            f"The latest {event_type} batch run (batch {batch_id}) failed: {error}. Its items "
            f"are not dead letters: they stay pending and retry on their own. Once the cause is "
            f"fixed, {retry_now} retries them now; `revbridge status` shows what waits."
        )
    failed, retried = told.get("failed", 0), told.get("retried", 0)
    their, them = ("its", "it") if retried == 1 else ("their", "them")
    return (
        f"The latest {event_type} batch run (batch {batch_id}) ended partial: "
        f"{counted(failed, 'item')} failed and {'was' if failed == 1 else 'were'} "
        f"dead-lettered (`revbridge dlq list --type {event_type}`), {retried} will retry on "
        f"{their} own ({retry_now} retries {them} now). `revbridge status` shows what waits."
    )


# A transaction-scoped advisory lock of our own (any stable 64-bit number): released at commit.
_ALERTS_LOCK = text("SELECT pg_advisory_xact_lock(7262504311800432641)")


class Alerter:
    def __init__(self, engine: Engine, rules: AlertRules, notifiers: Sequence[Notifier]) -> None:
        self.engine = engine
        self.rules = rules
        self.notifiers = list(notifiers)

    def _send(self, title: str, body: str, severity: str) -> None:
        for n in self.notifiers:
            try:
                n.notify(title, body, severity)
            except Exception as exc:  # a broken channel must not stop the others
                log.error("alert_channel_failed", error=str(exc))

    def check(self, now: datetime) -> tuple[list[str], list[str]]:
        """Open new incidents and resolve cleared ones; returns (opened, resolved) keys."""
        active = {c.key: c for c in evaluate(self.engine, self.rules, now)}
        opened: list[str] = []
        resolved: list[str] = []
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # One process at a time compares and writes the incidents (SQLite's write
                # transaction already is one at a time): two workers that found the same new
                # condition together would otherwise each open it and each page for it.
                conn.execute(_ALERTS_LOCK)
            open_rows = {
                r.key: r for r in conn.execute(select(alerts).where(alerts.c.resolved_at.is_(None)))
            }
            for key, cond in active.items():
                if key in open_rows:
                    continue
                conn.execute(
                    alerts.insert().values(
                        key=key,
                        opened_at=now,
                        severity=cond.severity,
                        title=cond.title,
                        body=cond.body,
                    )
                )
                opened.append(key)
            for key, row in open_rows.items():
                if key not in active:
                    conn.execute(
                        update(alerts).where(alerts.c.id == row.id).values(resolved_at=now)
                    )
                    resolved.append(key)
        for key in opened:
            c = active[key]
            self._send(c.title, c.body, c.severity)
        for key in resolved:
            row = open_rows[key]
            # What cleared, not the failing-now body ("Calls to erp keep failing") again.
            self._send(
                f"RESOLVED: {row.title}",
                f"Cleared at {human_timestamp(now)}: {row.title} "
                f"(open {human_duration(now - row.opened_at)}, since "
                f"{human_timestamp(row.opened_at)}).",
                "resolved",
            )
        return opened, resolved
