"""Change events: the CometD-shaped SSE stream, resume by replay id, retention and faults."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from typing import Any

import httpx

from .conftest import API, Org


def read_stream(org: Org, **params: Any) -> list[dict[str, Any]]:
    """The events an SSE subscription delivers, each as {"id", "event", "data"}."""
    params.setdefault("follow", "false")
    events: list[dict[str, Any]] = []
    with org.client.stream("GET", "/sandbox/events", params=params) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        block: dict[str, Any] = {}
        for line in response.iter_lines():
            if not line:
                if "data" in block:
                    events.append(block)
                block = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(": ")
                block[key] = json.loads(value) if key == "data" else value
    return events


def make_changes(org: Org) -> tuple[str, str]:
    account = org.create("Account", {"Name": "Evented"})
    invoice = org.create("blng__Invoice__c", {"blng__Account__c": account, "blng__Subtotal__c": 5})
    org.client.patch(f"{API}/sobjects/blng__Invoice__c/{invoice}", json={"blng__Subtotal__c": 9})
    return account, invoice


def test_stream_carries_change_events_with_headers(org: Org) -> None:
    """Every create and update of a billing object or account is an event with its header."""
    account, invoice = make_changes(org)
    events = read_stream(org, replayId=-2)
    kinds = [
        (e["event"], e["data"]["data"]["payload"]["ChangeEventHeader"]["changeType"])
        for e in events
    ]
    assert kinds == [
        ("/data/AccountChangeEvent", "CREATE"),
        ("/data/blng__Invoice__ChangeEvent", "CREATE"),
        ("/data/blng__Invoice__ChangeEvent", "UPDATE"),
    ]
    replay_ids = [int(e["id"]) for e in events]
    assert replay_ids == sorted(replay_ids)
    assert [e["data"]["data"]["event"]["replayId"] for e in events] == replay_ids
    update = events[2]["data"]["data"]["payload"]
    header = update["ChangeEventHeader"]
    assert header["recordIds"] == [invoice]
    assert header["entityName"] == "blng__Invoice__c"
    assert set(header["changedFields"]) == {
        "blng__Subtotal__c",
        "blng__TotalAmount__c",
        "blng__Balance__c",
        "LastModifiedDate",
    }
    assert update["blng__Subtotal__c"] == 9.0
    assert "Name" not in update  # only changed fields are populated on UPDATE
    create = events[0]["data"]["data"]["payload"]
    assert create["Name"] == "Evented"
    assert create["ChangeEventHeader"]["recordIds"] == [account]


def test_subscriber_resumes_after_its_last_replay_id(org: Org) -> None:
    """Resuming from a replay id delivers exactly the later events, by query or Last-Event-ID."""
    make_changes(org)
    everything = read_stream(org, replayId=-2)
    resume_from = everything[0]["id"]
    resumed = read_stream(org, replayId=resume_from)
    assert [e["id"] for e in resumed] == [e["id"] for e in everything[1:]]
    with org.client.stream(
        "GET",
        "/sandbox/events",
        params={"follow": "false"},
        headers={"Last-Event-ID": everything[1]["id"]},
    ) as response:
        text = response.read().decode()
    assert f"id: {everything[2]['id']}" in text
    assert f"id: {everything[1]['id']}\n" not in text
    only_invoices = read_stream(org, replayId=-2, channel="/data/blng__Invoice__ChangeEvent")
    assert len(only_invoices) == 2
    assert read_stream(org, replayId=-1) == []


def test_follow_mode_pushes_new_events(org: Org) -> None:
    """A following subscriber receives an event committed after it connected."""

    def later() -> None:
        time.sleep(0.3)
        with httpx.Client(base_url=org.base_url, headers=dict(org.client.headers)) as other:
            other.post(f"{API}/sobjects/Account", json={"Name": "Arrives Later"})

    writer = threading.Thread(target=later)
    writer.start()
    events = read_stream(org, replayId=-1, follow="true", limit=1)
    writer.join()
    assert events[0]["data"]["data"]["payload"]["Name"] == "Arrives Later"


def test_replay_id_outside_retention_is_refused(org: Org) -> None:
    """After the 72 h window an old replay id is refused; -2 then starts from what is left."""
    make_changes(org)
    old = read_stream(org, replayId=-2)
    org.config.clock.advance(timedelta(hours=73))
    org.login()
    fresh = org.create("Account", {"Name": "Fresh"})
    response = org.client.get("/sandbox/events", params={"replayId": old[0]["id"]})
    assert response.status_code == 400
    body = response.json()
    assert body[0]["errorCode"] == "INVALID_REPLAY_ID"
    assert f"The replayId {old[0]['id']} you provided was invalid" in body[0]["message"]
    remaining = read_stream(org, replayId=-2)
    assert [e["data"]["data"]["payload"]["ChangeEventHeader"]["recordIds"] for e in remaining] == [
        [fresh]
    ]
    never_issued = org.client.get("/sandbox/events", params={"replayId": 10_000})
    assert never_issued.status_code == 400


def test_expire_replay_before_fault(org: Org) -> None:
    """expire_replay_before=N (set through the admin API) treats replay ids below N as expired."""
    make_changes(org)
    ids = [int(e["id"]) for e in read_stream(org, replayId=-2)]
    admin = org.client.put("/sandbox/admin/faults", content=f"expire_replay_before={ids[2]}")
    assert admin.status_code == 200
    assert admin.json()["faults"] == f"expire_replay_before={ids[2]}"
    refused = org.client.get("/sandbox/events", params={"replayId": ids[0]})
    assert refused.json()[0]["errorCode"] == "INVALID_REPLAY_ID"
    assert [int(e["id"]) for e in read_stream(org, replayId=-2)] == [ids[2]]


def test_duplicate_and_out_of_order_faults(org: Org) -> None:
    """duplicate_events=1 delivers every event twice; out_of_order=1 swaps neighbours."""
    make_changes(org)
    org.client.put("/sandbox/admin/faults", content="duplicate_events=1,seed=3")
    doubled = [e["id"] for e in read_stream(org, replayId=-2)]
    assert len(doubled) == 6
    assert sorted(set(doubled)) == sorted(set(doubled), key=int)
    assert all(doubled.count(i) == 2 for i in set(doubled))
    org.client.put("/sandbox/admin/faults", content="out_of_order=1,seed=3")
    shuffled = [int(e["id"]) for e in read_stream(org, replayId=-2)]
    assert sorted(shuffled) != shuffled
    assert len(shuffled) == 3


def test_unknown_channel_and_missing_token(org: Org) -> None:
    """The stream needs a known channel and a valid session."""
    assert org.client.get("/sandbox/events", params={"channel": "/data/Nope"}).status_code == 404
    anonymous = httpx.get(f"{org.base_url}/sandbox/events")
    assert anonymous.status_code == 401
