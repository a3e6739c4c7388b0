"""Console pages without a browser: login, every page renders, CSRF and roles enforced."""

from __future__ import annotations

import re
from contextlib import closing

import httpx

from .conftest import Hub, envelopes, jsonl


def _login(hub: Hub, role: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=hub.client.base_url, timeout=30)
    r = client.post("/console/login", data={"token": hub.tokens[role]})
    assert r.status_code == 303
    assert "httponly" in r.headers["set-cookie"].lower()
    assert "samesite=strict" in r.headers["set-cookie"].lower()
    page = client.get("/console/dead-letters").text
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match is not None
    return client, match.group(1)


def test_without_a_session_every_page_sends_you_to_the_login(hub: Hub) -> None:
    """No cookie, or a wrong token at the login, never shows a page."""
    assert hub.client.get("/console/").headers["location"] == "/console/login"
    bad = hub.client.post("/console/login", data={"token": "rb_wrong"})
    assert bad.status_code == 401
    assert "unknown or revoked" in bad.text


def test_every_console_page_renders_for_a_viewer(hub: Hub) -> None:
    """Overview, events, dead letters, parked, policy, reconciliation and reviews all load."""
    client, _csrf = _login(hub, "viewer")
    with closing(client):
        for path in ("/", "/events?q=x", "/dead-letters", "/quarantine", "/parked", "/policy",
                     "/recon", "/customers"):  # fmt: skip
            r = client.get(f"/console{path}")
            assert r.status_code == 200, (path, r.text[:300])
            assert "<svg" in client.get("/console/").text


def _quarantine_two(hub: Hub) -> tuple[int, int]:
    """Two entries: an envelope missing its data (line 1) and a line that is not JSON."""
    from revbridge.services.ingest import ingest_lines

    bad = [
        b'{"type": "invoice.posted", "source": "salesforce", "source_id": "a0X7"}',
        b"not json",
    ]
    ingest_lines(hub.ledger, bad, policy=hub.settings.policy, origin="feb.jsonl")
    ids = [e["id"] for e in hub.ledger.list_quarantine()]
    assert len(ids) == 2
    return ids[0], ids[1]


def test_the_quarantine_page_lists_open_entries_first_and_shows_one_in_full(hub: Hub) -> None:
    """The list says when, from where, the type, the source record and why, open entries
    before closed ones; an entry's page shows what, where, why and the raw input."""
    first, second = _quarantine_two(hub)
    hub.client.post(
        "/api/v1/quarantine/resolve",
        json={"entry_id": first, "reason": "fixed at source"},
        headers=hub.auth("operator"),
    )
    client, _csrf = _login(hub, "viewer")
    with closing(client):
        page = client.get("/console/quarantine").text
        entry = client.get(f"/console/quarantine/{first}").text
    assert 'href="/console/quarantine" class="on">Quarantine</a>' in page
    assert "1 open entry, 1 resolved, 0 discarded." in page
    assert page.index(f'id="q-{second}"') < page.index(f'id="q-{first}"')
    row = page[page.index(f'id="q-{first}"') :].split("</tr>")[0]
    assert "feb.jsonl, line 1" in row
    assert "invoice.posted" in row
    assert "a0X7" in row
    assert "resolved" in row
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", row)  # when, zone said
    assert '<dd id="entry-what"><code>schema_violation</code></dd>' in entry
    assert "source_version: required field is missing" in entry
    assert "feb.jsonl, line 1; source record a0X7" in entry
    assert "resolved</span> by token:operator-1" in entry
    assert "{&#34;type&#34;: &#34;invoice.posted&#34;" in entry  # the raw line, escaped
    assert 'action="/console/quarantine/' not in entry  # closed, and a viewer: no forms


def test_an_operator_resolves_and_discards_quarantine_entries_with_a_reason(hub: Hub) -> None:
    """Closing an entry needs the operator role, the CSRF token and a reason; each close
    is audited with the console user, and a closed entry cannot be closed again."""
    first, second = _quarantine_two(hub)
    viewer, vcsrf = _login(hub, "viewer")
    with closing(viewer):
        denied = viewer.post(
            f"/console/quarantine/{first}/resolve", data={"reason": "x", "csrf": vcsrf}
        )
        assert denied.status_code == 403
    client, csrf = _login(hub, "operator")
    with closing(client):
        assert 'id="resolve"' in client.get(f"/console/quarantine/{first}").text
        forged = client.post(f"/console/quarantine/{first}/resolve", data={"reason": "x"})
        assert forged.status_code == 403
        blank = client.post(
            f"/console/quarantine/{first}/resolve", data={"reason": " ", "csrf": csrf}
        )
        assert blank.status_code == 400
        assert "To resolve an entry needs a reason for the audit log." in blank.text
        done = client.post(
            f"/console/quarantine/{first}/resolve",
            data={"reason": "currency fixed in the file", "csrf": csrf},
            follow_redirects=False,
        )
        assert done.status_code == 303
        assert f"Entry {first} is resolved." in client.get(done.headers["location"]).text
        again = client.post(
            f"/console/quarantine/{first}/discard", data={"reason": "dup", "csrf": csrf}
        )
        assert again.status_code == 404
        assert "not open: resolved by token:operator-1" in again.text
        # A console page saying why, with the console around it, not the API's JSON.
        assert again.headers["content-type"].startswith("text/html")
        assert "/console/quarantine" in again.text
        client.post(f"/console/quarantine/{second}/discard", data={"reason": "noise", "csrf": csrf})
    every = hub.client.get("/api/v1/quarantine?state=all", headers=hub.auth("viewer")).json()
    assert [(e["id"], e["status"]) for e in every] == [(first, "resolved"), (second, "discarded")]
    from sqlalchemy import select

    from revbridge.store.schema import audit_log

    with hub.ledger.engine.connect() as conn:
        trail = conn.execute(
            select(audit_log.c.action, audit_log.c.entity_id, audit_log.c.actor, audit_log.c.reason)
            .where(audit_log.c.entity_type == "quarantine")
            .order_by(audit_log.c.id)
        ).all()
    assert [tuple(r) for r in trail] == [
        ("resolve", str(first), "token:operator-1", "currency fixed in the file"),
        ("discard", str(second), "token:operator-1", "noise"),
    ]


def test_the_overview_shows_scheduled_batch_items_apart_from_the_backlog(hub: Hub) -> None:
    """Batch deliveries waiting for their run are counted as scheduled; the oldest age of
    what is due reads in seconds, minutes and hours."""
    assert hub.signed("/webhooks/events", jsonl(envelopes(120))).status_code == 202
    scheduled = hub.client.get("/api/v1/targets", headers=hub.auth("viewer")).json()["erp"][
        "scheduled"
    ]
    assert scheduled > 0
    client, _csrf = _login(hub, "viewer")
    with closing(client):
        page = client.get("/console/").text
    assert f"scheduled: {scheduled} " in page
    assert "held: 0 <small>waiting for a person's review" in page
    assert re.search(r"oldest undelivered \(due or overdue\): \d+ (s|min)", page)


def test_forms_need_the_csrf_token_and_the_role(hub: Hub) -> None:
    """A form post without the session's CSRF token is refused; a viewer cannot pause."""
    client, csrf = _login(hub, "operator")
    with closing(client):
        forged = client.post("/console/targets/erp/pause", data={"reason": "x", "csrf": "no"})
        assert forged.status_code == 403
        ok = client.post("/console/targets/erp/pause", data={"reason": "upgrade", "csrf": csrf})
        assert ok.status_code == 303
        # A second operator's pause, from a page loaded before the first: no silent no-op.
        again = client.post("/console/targets/erp/pause", data={"reason": "dup", "csrf": csrf})
        assert again.status_code == 409
        assert "erp was already paused (upgrade): nothing changed" in again.text
    viewer, vcsrf = _login(hub, "viewer")
    with closing(viewer):
        denied = viewer.post("/console/targets/erp/resume", data={"reason": "x", "csrf": vcsrf})
        assert denied.status_code == 403
        assert "operator" in denied.text
    paused = hub.client.get("/api/v1/targets", headers=hub.auth("viewer")).json()["erp"]
    assert paused["paused"] is True


def test_an_operator_replays_a_dead_letter_from_the_console_with_a_reason(hub: Hub) -> None:
    """A replay needs a reason; with one, the delivery is back in line, audited as the user."""
    from sqlalchemy import select, update

    from revbridge.store.schema import audit_log, deliveries

    assert hub.signed("/webhooks/events", jsonl(envelopes(3))).status_code == 202
    with hub.ledger.engine.begin() as conn:
        dead = conn.execute(select(deliveries.c.event_id).limit(1)).scalar_one()
        conn.execute(
            update(deliveries).where(deliveries.c.event_id == dead).values(state="dead_letter")
        )
    client, csrf = _login(hub, "operator")
    with closing(client):
        path = f"/console/dead-letters/{dead}/replay"
        blank = client.post(path, data={"reason": "", "csrf": csrf})
        assert blank.status_code == 400
        assert "A replay needs a reason for the audit log." in blank.text
        done = client.post(
            path, data={"reason": "tax code added", "csrf": csrf}, follow_redirects=True
        )
        assert f"Event {dead} is back in line." in done.text
    with hub.ledger.engine.connect() as conn:
        state = conn.execute(
            select(deliveries.c.state).where(deliveries.c.event_id == dead)
        ).scalar_one()
        trail = conn.execute(
            select(audit_log.c.actor, audit_log.c.reason).where(audit_log.c.action == "replay")
        ).one()
    assert state == "pending"
    assert tuple(trail) == ("token:operator-1", "tax code added")


def _capture_two_streams(hub: Hub) -> None:
    """erp:netsuite failing for an hour after a success; salesforce:org fine."""
    from datetime import timedelta

    from revbridge.clock import SystemClock
    from revbridge.services.capture import record_capture

    now = SystemClock().now()
    engine = hub.ledger.engine
    record_capture(engine, "erp:netsuite", now - timedelta(hours=2))
    record_capture(engine, "erp:netsuite", now - timedelta(hours=1), error="NetSuite 401")
    record_capture(engine, "erp:netsuite", now, error="TrytonUnreachable: refused")
    record_capture(engine, "salesforce:org", now - timedelta(minutes=3))


def test_the_overview_shows_each_capture_stream_and_why_a_circuit_is_open(hub: Hub) -> None:
    """The Capture panel lists each stream with its last success (zone and age), since when
    it fails and the last error, the failing one in red; an open circuit says why."""
    from revbridge.clock import SystemClock
    from revbridge.engine.targets_state import record_circuit

    _capture_two_streams(hub)
    record_circuit(
        hub.ledger.engine,
        "erp",
        state="open",
        failures=1,
        now=SystemClock().now(),
        reason="access refused: NetSuite 401 (token)",
    )
    client, _csrf = _login(hub, "viewer")
    with closing(client):
        page = client.get("/console/").text
    card = page[page.index('id="target-erp"') :].split("</div>")[0]
    assert "why: access refused: NetSuite 401 (token)" in card
    sf_card = page[page.index('id="target-salesforce"') :].split("</div>")[0]
    assert "why:" not in sf_card  # a closed circuit has nothing to explain
    failing = page[page.index('id="capture-erp:netsuite"') :].split("</tr>")[0]
    assert 'class="warn"' in failing
    assert '<span class="badge open">failing</span>' in failing
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC <small>\(2 h", failing)
    assert "(for 1 h" in failing
    assert "TrytonUnreachable: refused" in failing
    ok = page[page.index('id="capture-salesforce:org"') :].split("</tr>")[0]
    assert 'class="warn"' not in ok
    assert '<span class="badge closed">ok</span>' in ok
    assert "(3 min ago)" in ok
    assert "<td>-</td>" in ok  # not failing: no since, no error


def test_a_paused_side_s_capture_is_shown_paused_not_failing(hub: Hub) -> None:
    """An operator paused the ERP: its capture is skipped on purpose, so not red."""
    _capture_two_streams(hub)
    hub.client.post(
        "/api/v1/targets/erp/pause", json={"reason": "upgrade"}, headers=hub.auth("operator")
    )
    client, _csrf = _login(hub, "viewer")
    with closing(client):
        page = client.get("/console/").text
    row = page[page.index('id="capture-erp:netsuite"') :].split("</tr>")[0]
    assert 'class="warn"' not in row
    assert ">paused</span>" in row


def test_an_operator_undoes_a_wrong_link_from_the_customers_page(hub: Hub) -> None:
    """The form is there for an operator only; a refusal is a page saying why; the unlink
    is audited under the operator's name and the Account is relinked."""
    from sqlalchemy import select

    from revbridge.core.sfid import make_id
    from revbridge.services import mdm
    from revbridge.store.schema import audit_log
    from tests.integration.api.test_customers import linked_by_number

    account = linked_by_number(hub, 21)
    viewer, _ = _login(hub, "viewer")
    with closing(viewer):
        assert "Undo a wrong link" not in viewer.get("/console/customers").text
    client, csrf = _login(hub, "operator")
    with closing(client):
        assert "Undo a wrong link" in client.get("/console/customers").text
        form = {"account": account, "relink": "CUST-22", "reason": "another firm", "csrf": csrf}
        done = client.post("/console/customers/unlink", data=form, follow_redirects=True)
        assert done.status_code == 200, done.text
        assert f"Account {account} unlinked." in done.text
        again = client.post("/console/customers/unlink", data=form | {"account": make_id("001", 9)})
        assert again.status_code == 404
        assert "has no link in fake-erp" in again.text
    [link] = mdm.lookup(hub.ledger.engine, account)
    assert link.erp_customer_number == "CUST-22"
    with hub.ledger.engine.connect() as conn:
        actors = conn.execute(
            select(audit_log.c.actor).where(audit_log.c.action == "mdm_unlink")
        ).all()
    assert [a for (a,) in actors] == ["token:operator-1"]
