"""NetSuite refuses the integration's TBA token (revoked, wrong): the worker stops calling,
dead-letters nothing, says why, and delivers everything once the token is right again
(decision 0038)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from revbridge.clock import ManualClock
from revbridge.core.policy import build_policy
from revbridge.engine.alerts import AlertRules, evaluate
from revbridge.engine.circuit import CircuitBreaker
from revbridge.engine.worker import Target, Worker
from revbridge.generate import generate_events
from revbridge.netsuite.adapter import NetSuiteErp
from revbridge.netsuite.sandbox import RunningSandbox
from revbridge.services.ingest import ingest_lines
from revbridge.services.operations import dr_status
from revbridge.store.db import create_store_engine
from revbridge.store.ledger import Ledger
from revbridge.store.schema import deliveries
from revbridge.testing import FakeSalesforce
from tests.contract.netsuite_adapter.conftest import Admin, connector_config

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _erp_deliveries(engine: object) -> Counter[str]:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return Counter(
            s
            for (s,) in conn.execute(select(deliveries.c.state).where(deliveries.c.target == "erp"))
        )


def _attempts(engine: object) -> int:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return max(
            a
            for (a,) in conn.execute(
                select(deliveries.c.attempts).where(deliveries.c.target == "erp")
            )
        )


def test_a_revoked_token_dead_letters_nothing_and_delivery_resumes_once_it_is_right(
    sandbox: RunningSandbox, admin: Admin, sqlite_url: str
) -> None:
    envs = list(generate_events(120, seed=3))
    engine = create_store_engine(sqlite_url)
    clock = ManualClock(START)
    lines = [json.dumps(e).encode() for e in envs]
    ledger = Ledger(engine)
    assert ingest_lines(ledger, lines, policy=build_policy(), origin="t", clock=clock).rejected == 0

    revoked = NetSuiteErp(connector_config(sandbox, token_secret="revoked-token-secret"))
    erp = Target("erp", revoked, breaker=CircuitBreaker(cooldown=timedelta(minutes=5)))
    worker = Worker(
        engine, {"erp": erp, "salesforce": Target("salesforce", FakeSalesforce())}, clock=clock
    )

    async def drive(rounds: int, step: timedelta) -> None:
        for _ in range(rounds):
            await worker.run_until_idle()
            clock.advance(step)

    # A day with the token revoked: every probe is refused, and nothing gives up.
    asyncio.run(drive(48, timedelta(minutes=30)))
    states = _erp_deliveries(engine)
    assert states["dead_letter"] == 0
    assert states["pending"] > 0
    # The refusals were the integration's, not the events': none counts against them (a
    # probe's delivery keeps 1, so that its next call looks it up first).
    assert _attempts(engine) <= 1
    erp_calls = sum(n for (name, _, _), n in worker.api_calls.items() if name == "erp")
    assert erp_calls <= 48 + 10  # a probe a round after the first, not a call an event
    status = dr_status(engine, clock.now())["erp"]
    assert status["circuit"] in ("open", "half_open")
    assert "refused the integration's access" in status["circuit_reason"]
    assert "INVALID_LOGIN" in status["circuit_reason"]
    alert = next(
        c for c in evaluate(engine, AlertRules(), clock.now()) if c.key == "circuit_open:erp"
    )
    assert "fix the credentials" in alert.body

    # The token is put right: the next probe closes the circuit and the backlog drains.
    erp.port = NetSuiteErp(connector_config(sandbox))
    asyncio.run(drive(20, timedelta(minutes=31)))
    states = _erp_deliveries(engine)
    assert states["dead_letter"] == 0
    assert states["delivered"] > 0
    assert erp.breaker.state == "closed"
    assert dr_status(engine, clock.now())["erp"]["circuit_reason"] is None
    asyncio.run(revoked.close())
    asyncio.run(erp.port.close())
    engine.dispose()
