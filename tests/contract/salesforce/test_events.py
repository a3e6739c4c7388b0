"""Change events over the Streaming API's Bayeux/CometD long polling: handshake, subscribe with
the replay extension, connect, retention, reconnect after the session is forgotten, faults."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import httpx

from .conftest import API, Org

COMETD = "/cometd/62.0"


class Bayeux:
    """A minimal raw Bayeux session over the org's client: every message as sent and answered."""

    def __init__(self, org: Org) -> None:
        self.org = org
        self.client_id: str | None = None

    def send(self, *messages: dict[str, Any], status: int = 200) -> list[dict[str, Any]]:
        body = [
            {**m, "clientId": self.client_id} if self.client_id and "clientId" not in m else m
            for m in messages
        ]
        response = self.org.client.post(COMETD, json=body, timeout=30)
        assert response.status_code == status, response.text
        answer: list[dict[str, Any]] = response.json()
        return answer

    def handshake(self) -> dict[str, Any]:
        reply = self.send(
            {
                "channel": "/meta/handshake",
                "version": "1.0",
                "supportedConnectionTypes": ["long-polling"],
                "id": "1",
            }
        )[0]
        assert reply["successful"] is True, reply
        self.client_id = reply["clientId"]
        return reply

    def subscribe(self, channel: str = "/data/ChangeEvents", replay: Any = -2) -> dict[str, Any]:
        message: dict[str, Any] = {"channel": "/meta/subscribe", "subscription": channel}
        if replay is not None:
            message["ext"] = {"replay": {channel: replay}}
        return self.send(message)[0]

    def connect(self, timeout_ms: int = 0) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        answer = self.send(
            {
                "channel": "/meta/connect",
                "connectionType": "long-polling",
                "advice": {"timeout": timeout_ms},
            }
        )
        reply = answer[-1]
        assert reply["channel"] == "/meta/connect"
        return answer[:-1], reply

    def drain(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        while True:
            batch, reply = self.connect()
            assert reply["successful"] is True, reply
            if not batch:
                return events
            events += batch


def replay_ids(events: list[dict[str, Any]]) -> list[int]:
    return [e["data"]["event"]["replayId"] for e in events]


def make_changes(org: Org) -> tuple[str, str]:
    account = org.create("Account", {"Name": "Evented"})
    invoice = org.create("blng__Invoice__c", {"blng__Account__c": account, "blng__Subtotal__c": 5})
    org.client.patch(f"{API}/sobjects/blng__Invoice__c/{invoice}", json={"blng__Subtotal__c": 9})
    return account, invoice


def subscribed(org: Org, channel: str = "/data/ChangeEvents", replay: Any = -2) -> Bayeux:
    session = Bayeux(org)
    session.handshake()
    reply = session.subscribe(channel, replay)
    assert reply["successful"] is True, reply
    return session


def test_handshake_answers_a_session_with_the_replay_extension(org: Org) -> None:
    reply = Bayeux(org).handshake()
    assert reply["id"] == "1"
    assert reply["version"] == "1.0"
    assert reply["supportedConnectionTypes"] == ["long-polling"]
    assert reply["ext"]["replay"] is True
    assert reply["advice"] == {"reconnect": "retry", "interval": 0, "timeout": 110000}
    refused = Bayeux(org).send(
        {"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": ["websocket"]}
    )[0]
    assert refused["successful"] is False
    assert refused["advice"]["reconnect"] == "none"


def test_connect_delivers_change_events_with_headers(org: Org) -> None:
    """Every create and update of a billing object or account is a CDC data message."""
    account, invoice = make_changes(org)
    events = subscribed(org).drain()
    assert {e["channel"] for e in events} == {"/data/ChangeEvents"}
    kinds = [
        (
            e["data"]["payload"]["ChangeEventHeader"]["entityName"],
            e["data"]["payload"]["ChangeEventHeader"]["changeType"],
        )
        for e in events
    ]
    assert kinds == [
        ("Account", "CREATE"),
        ("blng__Invoice__c", "CREATE"),
        ("blng__Invoice__c", "UPDATE"),
    ]
    assert replay_ids(events) == sorted(replay_ids(events))
    update = events[2]["data"]["payload"]
    header = update["ChangeEventHeader"]
    assert header["recordIds"] == [invoice]
    assert set(header["changedFields"]) == {
        "blng__Subtotal__c",
        "blng__TotalAmount__c",
        "blng__Balance__c",
        "LastModifiedDate",
    }
    assert isinstance(header["commitTimestamp"], int)
    assert update["blng__Subtotal__c"] == 9.0
    assert "Name" not in update  # only changed fields are populated on UPDATE
    create = events[0]["data"]["payload"]
    assert create["Name"] == "Evented"
    assert create["ChangeEventHeader"]["recordIds"] == [account]
    assert events[1]["data"]["schema"]


def test_subscription_resumes_after_a_replay_id_and_filters_by_channel(org: Org) -> None:
    make_changes(org)
    everything = subscribed(org).drain()
    resumed = subscribed(org, replay=replay_ids(everything)[0]).drain()
    assert replay_ids(resumed) == replay_ids(everything)[1:]
    invoices = subscribed(org, "/data/blng__Invoice__ChangeEvent").drain()
    assert len(invoices) == 2
    assert {e["channel"] for e in invoices} == {"/data/blng__Invoice__ChangeEvent"}
    assert subscribed(org, replay=-1).drain() == []
    assert subscribed(org, replay=None).drain() == []  # no replay map: new events only


def test_connect_long_polls_until_an_event_arrives(org: Org) -> None:
    """A connect with nothing waiting is held open and answered when a change commits (the
    session's first connect is answered at once, as CometD servers do)."""
    session = subscribed(org, replay=-1)
    started = time.monotonic()
    assert session.send({"channel": "/meta/connect", "connectionType": "long-polling"})[0][
        "successful"
    ]
    assert time.monotonic() - started < 2

    def later() -> None:
        time.sleep(0.3)
        with httpx.Client(base_url=org.base_url, headers=dict(org.client.headers)) as other:
            other.post(f"{API}/sobjects/Account", json={"Name": "Arrives Later"})

    writer = threading.Thread(target=later)
    writer.start()
    started = time.monotonic()
    events, reply = session.connect(timeout_ms=10_000)
    writer.join()
    assert reply["successful"] is True
    assert 0.2 < time.monotonic() - started < 9
    assert events[0]["data"]["payload"]["Name"] == "Arrives Later"
    empty, reply = session.connect(timeout_ms=200)
    assert empty == []
    assert reply["advice"]["reconnect"] == "retry"


def test_replay_id_outside_retention_is_refused(org: Org) -> None:
    """After the 72 h window an old replay id fails the subscription; -2 starts from the rest."""
    make_changes(org)
    old = replay_ids(subscribed(org).drain())
    org.config.clock.advance(timedelta(hours=73))
    org.login()
    fresh = org.create("Account", {"Name": "Fresh"})
    session = Bayeux(org)
    session.handshake()
    refused = session.subscribe(replay=old[0])
    assert refused["successful"] is False
    assert refused["subscription"] == "/data/ChangeEvents"
    assert refused["error"] == (
        f"400::The replayId {{{old[0]}}} you provided was invalid. Please provide a valid ID, "
        "-2 to replay all events, or -1 to replay only new events."
    )
    remaining = subscribed(org).drain()
    assert [e["data"]["payload"]["ChangeEventHeader"]["recordIds"] for e in remaining] == [[fresh]]
    assert session.subscribe(replay=10_000)["successful"] is False  # never issued


def test_expire_replay_before_fault(org: Org) -> None:
    """expire_replay_before=N (set through the admin API) treats replay ids below N as expired."""
    make_changes(org)
    ids = replay_ids(subscribed(org).drain())
    admin = org.client.put("/sandbox/admin/faults", content=f"expire_replay_before={ids[2]}")
    assert admin.status_code == 200
    assert admin.json()["faults"] == f"expire_replay_before={ids[2]}"
    session = Bayeux(org)
    session.handshake()
    assert "you provided was invalid" in session.subscribe(replay=ids[0])["error"]
    assert replay_ids(subscribed(org).drain()) == [ids[2]]


def test_a_forgotten_session_must_handshake_again(org: Org) -> None:
    """A client silent past the 40 s reconnect timeout gets 403::Unknown client and handshakes;
    after disconnect the session is gone as well."""
    make_changes(org)
    session = subscribed(org)
    first, _ = session.connect()
    org.config.clock.advance(timedelta(seconds=41))
    org.login()
    _, reply = session.connect()
    assert reply["successful"] is False
    assert reply["error"] == "403::Unknown client"
    assert reply["advice"]["reconnect"] == "handshake"
    again = subscribed(org, replay=replay_ids(first)[0])
    assert len(again.drain()) == 2
    assert again.send({"channel": "/meta/disconnect"})[0]["successful"] is True
    assert again.connect()[1]["error"] == "403::Unknown client"


def test_subscription_errors(org: Org) -> None:
    session = Bayeux(org)
    session.handshake()
    unknown = session.subscribe("/data/NopeChangeEvent")
    assert unknown["successful"] is False
    assert "does not exist" in unknown["error"]
    mismatch = session.send(
        {
            "channel": "/meta/subscribe",
            "subscription": "/data/ChangeEvents",
            "ext": {"replay": {"/data/AccountChangeEvent": -1}},
        }
    )[0]
    assert "wasn't found using the provided replay ID map" in mismatch["error"]
    stranger = Bayeux(org)
    stranger.client_id = "not-a-session"
    assert stranger.subscribe()["error"] == "403::Unknown client"


def test_duplicate_and_out_of_order_faults(org: Org) -> None:
    """duplicate_events=1 delivers every event twice; out_of_order=1 swaps neighbours."""
    make_changes(org)
    org.client.put("/sandbox/admin/faults", content="duplicate_events=1,seed=3")
    doubled = replay_ids(subscribed(org).drain())
    assert len(doubled) == 6
    assert all(doubled.count(i) == 2 for i in set(doubled))
    org.client.put("/sandbox/admin/faults", content="out_of_order=1,seed=3")
    shuffled = replay_ids(subscribed(org).drain())
    assert sorted(shuffled) != shuffled
    assert len(shuffled) == 3


def test_missing_token_outage_and_unknown_version(org: Org) -> None:
    handshake = {
        "channel": "/meta/handshake",
        "version": "1.0",
        "supportedConnectionTypes": ["long-polling"],
    }
    anonymous = httpx.post(f"{org.base_url}{COMETD}", json=[handshake])
    assert anonymous.status_code == 401
    assert anonymous.json()[0]["error"] == "401::Authentication invalid"
    assert org.client.post("/cometd/12.0", json=[handshake]).status_code == 404
    assert org.client.post(COMETD, content=b"not json").status_code == 400
    org.client.put("/sandbox/admin/faults", content="outage=10s")
    assert org.client.post(COMETD, json=[handshake]).status_code == 503
