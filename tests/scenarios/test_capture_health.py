"""A capture that fails, or stops, sends no events: no backlog ages and no delivery fails, so
the capture streams' own health says it (an alert, `revbridge status`)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from revbridge.clock import ManualClock
from revbridge.core.policy import build_policy
from revbridge.engine.alerts import Alerter, AlertRules, evaluate
from revbridge.services.capture import capture_health, capture_once, source_for
from revbridge.services.operations import set_paused
from revbridge.store.ledger import Ledger
from revbridge.testing import FakeErp, Faults

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


class _Sent:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    def notify(self, title: str, body: str, severity: str) -> bool:
        self.sent.append((title, body, severity))
        return True


def _round(erp: FakeErp, ledger: Ledger, clock: ManualClock) -> None:
    source = source_for(erp)
    assert source is not None
    asyncio.run(capture_once(source, ledger, build_policy(), clock=clock))


def test_a_capture_failing_for_fifteen_minutes_alerts_once_and_resolves(ledger: Ledger) -> None:
    clock = ManualClock(START)
    erp = FakeErp()
    _round(erp, ledger, clock)
    (health,) = capture_health(ledger.engine)
    assert (health["stream"], health["failing_since"]) == ("erp:fake-erp", None)
    assert health["last_ok_at"] == START

    erp.faults = Faults(refuse_access=True)
    notes = _Sent()
    alerter = Alerter(ledger.engine, AlertRules(), [notes])
    for _ in range(20):
        clock.advance(timedelta(minutes=1))
        with pytest.raises(Exception, match="credentials were refused"):
            _round(erp, ledger, clock)
        alerter.check(clock.now())
    (health,) = capture_health(ledger.engine)
    assert health["failing_since"] == START + timedelta(minutes=1)  # the first failure
    assert "credentials were refused" in health["last_error"]
    assert health["last_ok_at"] == START
    (title, body, severity) = notes.sent[0]
    assert len(notes.sent) == 1  # one alert for the incident, not one a round
    assert (title, severity) == (
        "revbridge: capture from erp:fake-erp failing for 15 min",
        "critical",
    )
    assert "AccessRefused: 401 Unauthorized" in body
    assert "Nothing is lost" in body

    erp.faults = Faults()
    clock.advance(timedelta(minutes=1))
    _round(erp, ledger, clock)
    alerter.check(clock.now())
    assert notes.sent[-1][0] == f"RESOLVED: {title}"
    (health,) = capture_health(ledger.engine)
    assert (health["failing_since"], health["last_error"]) == (None, None)


def test_a_paused_side_and_a_short_failure_do_not_alert(ledger: Ledger) -> None:
    clock = ManualClock(START)
    erp = FakeErp(faults=Faults(down=True))
    with pytest.raises(Exception, match="down"):
        _round(erp, ledger, clock)
    rules = AlertRules()
    assert evaluate(ledger.engine, rules, START + timedelta(minutes=14)) == []
    assert [c.key for c in evaluate(ledger.engine, rules, START + timedelta(minutes=15))] == [
        "capture_failing:erp:fake-erp"
    ]
    set_paused(ledger.engine, "erp", paused=True, reason="ERP upgrade", actor="ops", now=START)
    later = START + timedelta(hours=3)
    assert [c.key for c in evaluate(ledger.engine, rules, later)] == []


def test_a_capture_that_stopped_running_alerts_when_watched(ledger: Ledger) -> None:
    clock = ManualClock(START)
    _round(FakeErp(), ledger, clock)
    later = START + timedelta(hours=3)
    assert evaluate(ledger.engine, AlertRules(), later) == []  # not watched by default
    (stale,) = evaluate(ledger.engine, AlertRules(capture_stale=timedelta(hours=2)), later)
    assert stale.key == "capture_stale:erp:fake-erp"
    assert stale.title == "revbridge: no capture from erp:fake-erp for 3 h"
