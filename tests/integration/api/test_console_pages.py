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
        for path in ("/", "/events?q=x", "/dead-letters", "/parked", "/policy", "/recon",
                     "/customers"):  # fmt: skip
            r = client.get(f"/console{path}")
            assert r.status_code == 200, (path, r.text[:300])
            assert "<svg" in client.get("/console/").text


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
