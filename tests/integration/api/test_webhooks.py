"""Signed webhooks: what is stored, what is refused, and that a refusal stores nothing."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from .conftest import Hub, envelopes, jsonl


def test_signed_envelopes_are_stored_once_even_when_resent_with_a_new_signature(hub: Hub) -> None:
    """A sender's retry (fresh timestamp) of the same envelopes is reported as duplicates."""
    body = jsonl(envelopes(5))
    first = hub.signed("/webhooks/events", body, content_type="application/x-ndjson")
    assert first.status_code == 202, first.text
    assert first.json()["accepted"] == 5
    again = hub.signed(
        "/webhooks/events", body, t=int(time.time()) + 1, content_type="application/x-ndjson"
    )
    assert again.status_code == 202
    assert again.json() == {
        "accepted": 0,
        "duplicates": 5,
        "conflicts": 0,
        "quarantined": 0,
        "skipped": 0,
    }


def test_a_replayed_signed_request_is_refused(hub: Hub) -> None:
    """The very same signed request sent twice is refused the second time (replay)."""
    body = json.dumps(envelopes(1)[0]).encode()
    t = int(time.time())
    assert hub.signed("/webhooks/events", body, t=t).status_code == 202
    replay = hub.signed("/webhooks/events", body, t=t)
    assert replay.status_code == 401
    assert "replay" in replay.json()["why"]


def test_bad_signatures_and_stale_timestamps_are_refused_with_the_reason(hub: Hub) -> None:
    """Unsigned, wrongly signed and too-old requests get 401 naming the problem."""
    body = json.dumps(envelopes(1)[0])
    unsigned = hub.client.post("/webhooks/events", content=body)
    assert unsigned.status_code == 401
    assert "missing" in unsigned.json()["why"]
    forged = hub.client.post(
        "/webhooks/events",
        content=body,
        headers={"X-Revbridge-Signature": f"t={int(time.time())},v1={'0' * 64}"},
    )
    assert forged.status_code == 401
    assert "no v1 signature matches" in forged.json()["why"]
    stale = hub.signed("/webhooks/events", body, t=int(time.time()) - 301)
    assert stale.status_code == 401
    assert "tolerance" in stale.json()["why"]
    assert hub.ledger.status(_now())["events"]["total"] == 0


def test_one_bad_envelope_refuses_the_whole_request_and_stores_nothing(hub: Hub) -> None:
    """A 422 names the envelope and the reason, and none of the good ones are half-stored."""
    good = envelopes(3)
    bad = dict(good[1])
    bad["type"] = "no.such.type"
    response = hub.signed("/webhooks/events", json.dumps([good[0], bad, good[2]]))
    assert response.status_code == 422
    body = response.json()
    assert body["where"] == "envelope 2"
    assert "no.such.type" in body["why"] or "type" in body["why"]
    assert hub.ledger.status(_now())["events"]["total"] == 0


def test_oversized_bodies_are_refused_before_reading(hub: Hub) -> None:
    """A body over server.max_body_bytes gets 413 and nothing is stored."""
    big = b"x" * 5_000_001
    response = hub.signed("/webhooks/events", big)
    assert response.status_code == 413
    assert response.json()["where"] == "body"


def _now() -> datetime:
    from revbridge.clock import SystemClock

    return SystemClock().now()


def test_a_signed_salesforce_flow_callout_becomes_a_customer_event(hub: Hub) -> None:
    """A Flow callout carrying an Account is mapped and stored; an unmapped object is a 422."""
    body = json.dumps(
        {
            "sobject": "Account",
            "records": [
                {
                    "attributes": {"type": "Account"},
                    "Id": "001000000000001AAA",
                    "Name": "Flow Co",
                    "CurrencyIsoCode": "EUR",
                    "CreatedDate": "2026-11-20T10:00:00.000+0000",
                    "SystemModstamp": "2026-11-20T10:00:00.000+0000",
                }
            ],
        }
    )
    stored = hub.signed("/webhooks/salesforce/flow", body)
    assert stored.status_code == 202, stored.text
    assert stored.json()["accepted"] == 1
    unknown = hub.signed(
        "/webhooks/salesforce/flow", json.dumps({"sobject": "Lead", "records": []})
    )
    assert unknown.status_code == 422
    assert unknown.json()["where"] == "sobject"


def test_the_webhook_secret_can_come_from_a_file(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With security.webhook_secret_file set, requests signed with that file's secret pass."""
    from revbridge.api.app import create_app
    from revbridge.api.server import run_in_thread
    from revbridge.config import parse_config
    from revbridge.services import open_ledger
    from revbridge.services.access import sign

    monkeypatch.delenv("REVBRIDGE_WEBHOOK_SECRET", raising=False)
    (tmp_path / "secret").write_text("from-a-file\n")
    settings = parse_config(
        {"store": {"url": store_url}, "security": {"webhook_secret_file": "secret"}},
        None,
        tmp_path,
    )
    body = json.dumps(envelopes(1)[0]).encode()
    ledger = open_ledger(settings)
    with run_in_thread(create_app(settings, ledger=ledger)) as url:
        good = httpx.post(
            f"{url}/webhooks/events",
            content=body,
            headers={"X-Revbridge-Signature": sign(b"from-a-file", body, int(time.time()))},
        )
    ledger.engine.dispose()
    assert good.status_code == 202, good.text
