"""The console in a real browser: log in, find an event's trace, replay a dead letter."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from revbridge.api.app import create_app
from revbridge.api.server import run_in_thread
from revbridge.clock import SystemClock
from revbridge.config import Settings, parse_config
from revbridge.generate import generate_events
from revbridge.services import open_ledger
from revbridge.services.access import Role, create_token
from revbridge.services.ingest import ingest_lines
from revbridge.store.ledger import Ledger
from revbridge.store.schema import audit_log, deliveries, events

pytestmark = pytest.mark.e2e


@dataclass
class Served:
    url: str
    ledger: Ledger
    settings: Settings
    operator: str
    viewer: str
    dead_id: int
    dead_source_id: str


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """``serve`` on a free port over a seeded SQLite ledger with one dead letter."""
    settings = parse_config(
        {
            "store": {"url": f"sqlite:///{tmp_path / 'revbridge.db'}"},
            "erp": {"state_file": str(tmp_path / "fake-erp.json")},
            "salesforce": {"state_file": str(tmp_path / "fake-salesforce.json")},
            "server": {"secure_cookies": False},
        },
        None,
        tmp_path,
    )
    ledger = open_ledger(settings)
    lines = [json.dumps(e).encode() for e in generate_events(40, seed=3)]
    ingest_lines(ledger, lines, policy=settings.policy, origin="seed")
    with ledger.engine.begin() as conn:
        dead_id, source_id = conn.execute(
            select(events.c.id, events.c.source_id)
            .join(deliveries, deliveries.c.event_id == events.c.id)
            .where(events.c.type == "invoice.posted")
            .limit(1)
        ).one()
        conn.execute(
            update(deliveries)
            .where(deliveries.c.event_id == dead_id)
            .values(state="dead_letter", attempts=12, last_error="ERP: unknown tax code VAT99")
        )
    now = SystemClock().now()
    operator = create_token(ledger.engine, name="kim", role=Role.OPERATOR, now=now, actor="t")
    viewer = create_token(ledger.engine, name="lee", role=Role.VIEWER, now=now, actor="t")
    app = create_app(settings, ledger=ledger, run_workers=False)
    with run_in_thread(app) as url:
        yield Served(url, ledger, settings, operator, viewer, int(dead_id), str(source_id))
    ledger.engine.dispose()


def _login(page: Any, url: str, token: str) -> None:
    page.goto(f"{url}/console/")
    assert page.url.endswith("/console/login")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/console/$"))


def test_an_operator_finds_a_trace_and_replays_a_dead_letter(browser: Any, served: Served) -> None:
    """Log in with a token, search the Salesforce id, read the trace, replay from the list."""
    context = browser.new_context()
    page = context.new_page()
    _login(page, served.url, served.operator)
    assert page.locator("h1").inner_text() == "Overview"
    assert page.locator("svg[role=img]").count() >= 1  # server-rendered charts
    cookie = next(c for c in context.cookies() if c["name"] == "revbridge_session")
    assert cookie["httpOnly"] is True

    page.click("text=Events")
    page.fill("#q", served.dead_source_id)
    page.click("form.search button")
    page.click(f"table.results a:text-is('{served.dead_id}')")
    assert page.locator("#source").inner_text().startswith("salesforce " + served.dead_source_id)
    assert "dead_letter" in page.locator("#delivery-state").inner_text()

    page.click("text=Dead letters")
    row = page.locator(f"#dl-{served.dead_id}")
    assert "unknown tax code" in row.inner_text()
    row.locator("input[name=reason]").fill("tax code added in the ERP")
    row.locator("button").click()
    page.wait_for_url(re.compile(r".*/console/dead-letters\?done=\d+"))
    assert "back in line" in page.locator("[role=status]").inner_text()
    assert page.locator(f"#dl-{served.dead_id}").count() == 0

    with served.ledger.engine.connect() as conn:
        state = conn.execute(
            select(deliveries.c.state).where(deliveries.c.event_id == served.dead_id)
        ).scalar_one()
        actor, reason = conn.execute(
            select(audit_log.c.actor, audit_log.c.reason).where(audit_log.c.action == "replay")
        ).one()
    assert state == "pending"
    assert (actor, reason) == ("token:kim", "tax code added in the ERP")
    context.close()


def test_a_viewer_sees_dead_letters_without_a_replay_button_and_forged_posts_fail(
    browser: Any, served: Served
) -> None:
    """A viewer gets no replay form; a POST without the session's CSRF token changes nothing."""
    context = browser.new_context()
    page = context.new_page()
    _login(page, served.url, served.viewer)
    page.goto(f"{served.url}/console/dead-letters")
    assert page.locator(f"#dl-{served.dead_id} button").count() == 0
    forged = context.request.post(
        f"{served.url}/console/dead-letters/{served.dead_id}/replay",
        form={"reason": "forged", "csrf": "wrong"},
        max_redirects=0,
    )
    assert forged.status in (303, 401, 403)
    with served.ledger.engine.connect() as conn:
        state = conn.execute(
            select(deliveries.c.state).where(deliveries.c.event_id == served.dead_id)
        ).scalar_one()
    assert state == "dead_letter"
    context.close()


def test_an_operator_resolves_a_reconciliation_case_in_the_console(
    browser: Any, served: Served
) -> None:
    """The open case is listed on the reconciliation page; resolving it with a code and a
    note closes it, and the history shows who did it."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.integration.api.test_finance import open_one_case

    # Playwright's sync API owns this thread's event loop; the run uses asyncio.run.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(open_one_case, served.ledger, served.settings).result()
    context = browser.new_context()
    page = context.new_page()
    _login(page, served.url, served.operator)
    page.click("text=Reconciliation")
    assert page.locator("svg[role=img]").count() >= 1  # variance trend chart
    row = page.locator("table.cases tbody tr").first
    assert "a0X00002" in row.inner_text()
    row.locator("a").click()
    form = page.locator("#resolve")
    form.locator("select[name=code]").select_option("corrected_in_erp")
    form.locator("input[name=note]").fill("credit note posted in the ERP")
    form.locator("button").click()
    page.wait_for_load_state()
    assert "resolved" in page.locator("#case-state").inner_text()
    assert "token:kim" in page.locator("table").last.inner_text()
    context.close()


def test_an_operator_reads_a_quarantined_line_and_resolves_it_in_the_console(
    browser: Any, served: Served
) -> None:
    """A line refused at ingest is listed with its reason; its page shows the raw input as
    received; resolving it with a reason closes it, audited under the operator's name."""
    from revbridge.store.schema import quarantine

    bad = next(iter(generate_events(1, seed=11)))
    bad["data"]["currency"] = "XXY"
    result = ingest_lines(
        served.ledger, [json.dumps(bad).encode()], policy=served.settings.policy, origin="bad.jsonl"
    )
    assert result.rejected == 1
    with served.ledger.engine.connect() as conn:
        entry = conn.execute(select(quarantine.c.id)).scalar_one()
    context = browser.new_context()
    page = context.new_page()
    _login(page, served.url, served.operator)
    page.click("text=Quarantine")
    row = page.locator(f"#q-{entry}")
    assert "XXY" in row.inner_text()
    assert "bad.jsonl" in row.inner_text()
    row.locator("a").first.click()
    assert '"XXY"' in page.locator("#entry-raw").inner_text()
    form = page.locator("#resolve")
    form.locator("input[name=reason]").fill("currency fixed at the source, sent again")
    form.locator("button").click()
    page.wait_for_load_state()
    assert "resolved" in page.locator("body").inner_text()
    with served.ledger.engine.connect() as conn:
        status = conn.execute(select(quarantine.c.status)).scalar_one()
        actor, reason = conn.execute(
            select(audit_log.c.actor, audit_log.c.reason).where(
                audit_log.c.entity_type == "quarantine"
            )
        ).one()
    assert status == "resolved"
    assert (actor, reason) == ("token:kim", "currency fixed at the source, sent again")
    context.close()
