"""The ops API: tokens and roles, dead letters, pause/resume, trace, health and metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, update

from revbridge.store.schema import audit_log, deliveries
from tests.integration.conftest import JSON_TIMESTAMP

from .conftest import Hub, envelopes, jsonl


def _seed_dead_letter(hub: Hub) -> int:
    """Ingest events by webhook and dead-letter the first one, as a worker would."""
    assert hub.signed("/webhooks/events", jsonl(envelopes(4))).status_code == 202
    with hub.ledger.engine.begin() as conn:
        event_id = conn.execute(select(deliveries.c.event_id).limit(1)).scalar_one()
        conn.execute(
            update(deliveries)
            .where(deliveries.c.event_id == event_id)
            .values(state="dead_letter", attempts=12, last_error="ERP said: bad tax code")
        )
    return int(event_id)


def test_the_api_refuses_missing_unknown_and_revoked_tokens(hub: Hub) -> None:
    """No token or a wrong one gives 401; a revoked token stops working at once."""
    assert hub.client.get("/api/v1/status").status_code == 401
    bad = hub.client.get("/api/v1/status", headers={"Authorization": "Bearer rb_nope"})
    assert bad.status_code == 401
    assert hub.client.get("/api/v1/status", headers=hub.auth("viewer")).status_code == 200
    gone = hub.client.delete("/api/v1/tokens/viewer-1", headers=hub.auth("admin"))
    assert gone.status_code == 200
    assert hub.client.get("/api/v1/status", headers=hub.auth("viewer")).status_code == 401


def test_a_viewer_reads_but_cannot_replay_and_an_operator_replays_with_audit(hub: Hub) -> None:
    """Replay needs the operator role; it puts the event back in line and audits who and why."""
    event_id = _seed_dead_letter(hub)
    answer = hub.client.get("/api/v1/dead-letters", headers=hub.auth("viewer"))
    listed = answer.json()
    assert [r["id"] for r in listed] == [event_id]
    assert answer.headers["X-Total-Count"] == "1"
    none = hub.client.get("/api/v1/dead-letters?limit=0", headers=hub.auth("viewer"))
    assert none.status_code == 422  # at least one
    body = {"event_id": event_id, "reason": "tax code fixed in the ERP"}
    denied = hub.client.post("/api/v1/dead-letters/replay", json=body, headers=hub.auth("viewer"))
    assert denied.status_code == 403
    assert "operator" in denied.json()["why"]
    other = "gl.posted" if listed[0]["type"] != "gl.posted" else "invoice.posted"
    mismatched = hub.client.post(
        "/api/v1/dead-letters/replay",
        json={**body, "event_type": other},
        headers=hub.auth("operator"),
    )
    assert mismatched.status_code == 404
    assert f"a dead letter of type {listed[0]['type']}, not {other}" in mismatched.json()["why"]
    done = hub.client.post("/api/v1/dead-letters/replay", json=body, headers=hub.auth("operator"))
    assert done.json() == {"replayed": 1}
    trace = hub.client.get(f"/api/v1/events/{event_id}/trace", headers=hub.auth("viewer")).json()
    assert trace["delivery"]["state"] == "pending"
    assert trace["audit"][-1]["actor"] == "token:operator-1"
    assert trace["audit"][-1]["reason"] == "tax code fixed in the ERP"


def test_every_time_the_api_writes_is_utc_with_z_and_the_console_says_utc(hub: Hub) -> None:
    """One form for JSON timestamps, whichever service produced them (a datetime, or a 429's
    pause); the console shows them as people read them, with the zone (decision 0028)."""
    from revbridge.engine.targets_state import record_hold

    event_id = _seed_dead_letter(hub)
    now = datetime.now(UTC)
    record_hold(hub.ledger.engine, "erp", until=now + timedelta(minutes=5), now=now)
    viewer = hub.auth("viewer")
    held = hub.client.get("/api/v1/targets", headers=viewer).json()["erp"]["retry_after_until"]
    trace = hub.client.get(f"/api/v1/events/{event_id}/trace", headers=viewer).json()
    tokens = hub.client.get("/api/v1/tokens", headers=hub.auth("admin")).json()
    times = [
        held,
        trace["event"]["received_at"],
        trace["event"]["occurred_at"],
        trace["delivery"]["due_at"],
        *(t["created_at"] for t in tokens),
    ]
    assert all(JSON_TIMESTAMP.fullmatch(t) for t in times), times
    with httpx.Client(base_url=hub.client.base_url, timeout=30) as console:
        assert console.post("/console/login", data={"token": hub.tokens["viewer"]}).is_redirect
        page = console.get(f"/console/events/{event_id}").text
    received = datetime.fromisoformat(trace["event"]["received_at"])
    assert f"{received:%Y-%m-%d %H:%M:%S} UTC" in page


def test_bad_bodies_get_a_422_saying_where_and_why(hub: Hub) -> None:
    """A replay without a reason is refused, naming the missing field."""
    response = hub.client.post(
        "/api/v1/dead-letters/replay", json={"event_id": 1}, headers=hub.auth("operator")
    )
    assert response.status_code == 422
    assert response.json()["where"] == "body.reason"


def test_pausing_a_target_is_audited_and_shown(hub: Hub) -> None:
    """An operator pauses the ERP; the targets view shows it, the audit log has it."""
    r = hub.client.post(
        "/api/v1/targets/erp/pause", json={"reason": "ERP upgrade"}, headers=hub.auth("operator")
    )
    assert r.status_code == 200
    assert r.json()["changed"] is True
    # Pausing it again changes nothing and is not audited as a transition it never made.
    again = hub.client.post(
        "/api/v1/targets/erp/pause", json={"reason": "again"}, headers=hub.auth("operator")
    )
    assert again.json() == {"target": "erp", "state": "paused", "changed": False}
    targets = hub.client.get("/api/v1/targets", headers=hub.auth("viewer")).json()
    assert targets["erp"]["paused"] is True
    assert targets["erp"]["paused_reason"] == "ERP upgrade"
    with hub.ledger.engine.connect() as conn:
        row = conn.execute(select(audit_log).where(audit_log.c.action == "pause")).one()
    assert row.actor == "token:operator-1"
    assert (row.from_state, row.to_state) == ("running", "paused")
    unknown = hub.client.post(
        "/api/v1/targets/sap/pause", json={"reason": "x"}, headers=hub.auth("operator")
    )
    assert unknown.status_code == 404


def test_only_an_admin_creates_tokens_and_the_new_token_works(hub: Hub) -> None:
    """Token creation needs admin; the returned token authenticates with its role."""
    body = {"name": "grafana", "role": "viewer"}
    assert (
        hub.client.post("/api/v1/tokens", json=body, headers=hub.auth("operator")).status_code
        == 403
    )
    made = hub.client.post("/api/v1/tokens", json=body, headers=hub.auth("admin"))
    assert made.status_code == 201
    token = made.json()["token"]
    ok = hub.client.get("/api/v1/policy", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200
    listed = hub.client.get("/api/v1/tokens", headers=hub.auth("admin")).json()
    assert "token_hash" not in listed[0]
    assert token not in str(listed)


def test_search_finds_an_event_by_its_source_record_id(hub: Hub) -> None:
    """Searching a Salesforce record id lists the event that came from it."""
    items = envelopes(3)
    assert hub.signed("/webhooks/events", jsonl(items)).status_code == 202
    found = hub.client.get(
        "/api/v1/events", params={"q": items[0]["source_id"]}, headers=hub.auth("viewer")
    ).json()
    assert found
    assert all(r["source_id"] == items[0]["source_id"] for r in found)


def test_health_readiness_and_metrics_report_the_ledger(hub: Hub) -> None:
    """/healthz is up, /readyz checks the schema, /metrics shows backlog from the ledger."""
    assert hub.client.get("/healthz").json() == {"status": "ok"}
    ready = hub.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    _seed_dead_letter(hub)
    text = hub.client.get("/metrics").text
    assert 'revbridge_backlog_events{state="dead_letter",target="erp"} 1.0' in text
    # The customers left wait for their nightly batch: scheduled, not late. Pending is what
    # is due (here the real-time deliveries not yet made).
    assert 'revbridge_backlog_events{state="scheduled",target="erp"}' in text
    with hub.ledger.engine.connect() as conn:
        due = conn.execute(
            select(func.count()).where(
                deliveries.c.target == "erp",
                deliveries.c.state == "pending",
                deliveries.c.pattern == "realtime",
            )
        ).scalar_one()
    pending = 'revbridge_backlog_events{state="pending",target="erp"}'
    assert (f"{pending} {float(due)}" in text) if due else (pending not in text)
    assert "revbridge_http_requests_total" in text
    assert 'revbridge_webhook_events_total{endpoint="events",outcome="accepted"} 4.0' in text


def test_openapi_is_published(hub: Hub) -> None:
    """/openapi.json lists the webhook and ops routes (console pages stay out)."""
    paths = hub.client.get("/openapi.json").json()["paths"]
    assert "/webhooks/events" in paths
    assert "/api/v1/dead-letters/replay" in paths
    assert not any(p.startswith("/console") for p in paths)


def test_public_webhooks_are_rate_limited_with_retry_after(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the per-minute limit a client gets 429 with a Retry-After header."""
    from .conftest import SECRET, build_hub

    monkeypatch.setenv("REVBRIDGE_WEBHOOK_SECRET", SECRET)
    for small in build_hub(store_url, tmp_path, rate_limit_per_min=2):
        codes = [small.client.post("/webhooks/events", content=b"{}").status_code for _ in range(3)]
        assert codes[:2] == [401, 401]
        assert codes[2] == 429
        last = small.client.post("/webhooks/events", content=b"{}")
        assert int(last.headers["Retry-After"]) >= 1


def test_readyz_says_not_ready_when_the_schema_is_behind(tmp_path: Path) -> None:
    """A ledger one migration behind answers 503 naming both revisions; /healthz stays up."""
    from revbridge.api.app import create_app
    from revbridge.api.server import run_in_thread
    from revbridge.store.db import create_store_engine, upgrade
    from revbridge.store.ledger import Ledger

    from .conftest import make_settings

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_store_engine(url)
    upgrade(engine, "0009")
    app = create_app(make_settings(url, tmp_path), ledger=Ledger(engine))
    with run_in_thread(app) as base, httpx.Client(base_url=base) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
    engine.dispose()
    assert ready.status_code == 503
    assert "schema at 0009" in ready.json()["why"]


def test_an_operator_shows_and_closes_quarantine_entries_with_audit(hub: Hub) -> None:
    """A viewer lists and shows entries; closing one needs the operator role and a reason,
    is audited with the token, and the open count in status drops."""
    from revbridge.clock import SystemClock
    from revbridge.core.policy import build_policy
    from revbridge.services.ingest import ingest_lines

    bad = [b'{"type": "invoice.posted"}', b"not json"]
    ingest_lines(hub.ledger, bad, policy=build_policy(), origin="file", clock=SystemClock())
    entries = hub.client.get("/api/v1/quarantine", headers=hub.auth("viewer")).json()
    assert len(entries) == 2
    first = entries[0]["id"]
    shown = hub.client.get(f"/api/v1/quarantine/{first}", headers=hub.auth("viewer")).json()
    assert (shown["raw"], shown["status"]) == ('{"type": "invoice.posted"}', "open")
    missing = hub.client.get("/api/v1/quarantine/999999", headers=hub.auth("viewer"))
    assert missing.status_code == 404
    body = {"entry_id": first, "reason": "fixed at source, ingested again"}
    denied = hub.client.post("/api/v1/quarantine/resolve", json=body, headers=hub.auth("viewer"))
    assert denied.status_code == 403
    no_reason = hub.client.post(
        "/api/v1/quarantine/resolve", json={"entry_id": first}, headers=hub.auth("operator")
    )
    assert no_reason.status_code == 422
    done = hub.client.post("/api/v1/quarantine/resolve", json=body, headers=hub.auth("operator"))
    assert done.json() == {"resolved": 1}
    again = hub.client.post("/api/v1/quarantine/resolve", json=body, headers=hub.auth("operator"))
    assert again.status_code == 404
    assert "not open: resolved by token:operator-1" in again.json()["why"]
    rest = hub.client.post(
        "/api/v1/quarantine/resolve",
        json={"reason": "noise", "outcome": "discarded"},
        headers=hub.auth("operator"),
    )
    assert rest.json() == {"discarded": 1}
    assert hub.client.get("/api/v1/status", headers=hub.auth("viewer")).json()["quarantine"] == 0
    every = hub.client.get("/api/v1/quarantine?state=all", headers=hub.auth("viewer")).json()
    assert [e["status"] for e in every] == ["resolved", "discarded"]
    with hub.ledger.engine.connect() as conn:
        trail = conn.execute(
            select(audit_log.c.action, audit_log.c.actor, audit_log.c.reason)
            .where(audit_log.c.entity_type == "quarantine")
            .order_by(audit_log.c.id)
        ).all()
    assert [tuple(r) for r in trail] == [
        ("resolve", "token:operator-1", "fixed at source, ingested again"),
        ("discard", "token:operator-1", "noise"),
    ]


def test_the_audit_log_is_read_newest_first_with_filters(hub: Hub) -> None:
    """GET /audit: what `revbridge audit` shows, to a viewer, not without a token."""
    operator = hub.auth("operator")
    for path in ("pause", "resume", "pause"):
        hub.client.post(f"/api/v1/targets/erp/{path}", json={"reason": path}, headers=operator)
    assert hub.client.get("/api/v1/audit").status_code == 401
    r = hub.client.get(
        "/api/v1/audit",
        params={"entity_type": "target", "entity": "erp", "since": "1h", "limit": 2},
        headers=hub.auth("viewer"),
    )
    assert r.status_code == 200
    assert r.headers["X-Total-Count"] == "3"
    assert [(a["action"], a["reason"]) for a in r.json()] == [
        ("pause", "pause"),
        ("resume", "resume"),
    ]
    assert datetime.fromisoformat(r.json()[0]["at"]).tzinfo is not None  # with its zone
    only = hub.client.get(
        "/api/v1/audit", params={"action": "resume"}, headers=hub.auth("viewer")
    ).json()
    assert [a["action"] for a in only] == ["resume"]
    bad = hub.client.get("/api/v1/audit", params={"since": "soon"}, headers=hub.auth("viewer"))
    assert bad.status_code == 400
    assert "--since 'soon'" in bad.text or "'soon'" in bad.text


def test_metrics_show_each_capture_stream_s_last_success_and_whether_it_fails(
    hub: Hub,
) -> None:
    """Prometheus can alert on a failing or silent capture without apprise: the last
    success as a Unix time per stream, failing 0/1, and since when it fails."""
    from revbridge.services.capture import record_capture

    ok_at = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    record_capture(hub.ledger.engine, "erp:netsuite", ok_at)
    record_capture(hub.ledger.engine, "erp:netsuite", ok_at + timedelta(hours=1), error="401")
    record_capture(hub.ledger.engine, "salesforce:org", ok_at)
    from prometheus_client.parser import text_string_to_metric_families

    text = hub.client.get("/metrics").text
    samples = {
        (s.name, s.labels.get("stream")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("revbridge_capture_")
    }
    since = ok_at + timedelta(hours=1)
    assert samples == {
        ("revbridge_capture_last_success_timestamp_seconds", "erp:netsuite"): ok_at.timestamp(),
        ("revbridge_capture_last_success_timestamp_seconds", "salesforce:org"): ok_at.timestamp(),
        ("revbridge_capture_failing", "erp:netsuite"): 1.0,
        ("revbridge_capture_failing", "salesforce:org"): 0.0,
        ("revbridge_capture_failing_since_timestamp_seconds", "erp:netsuite"): since.timestamp(),
    }
