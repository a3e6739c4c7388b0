"""The connector's CometD subscriber against the sandbox over real HTTP: handshake, subscribe,
long-poll connect, reconnect after the server forgot the session, token renewal, and the
capture's replay id surviving a forgotten session (both stores)."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta
from typing import Any

import pytest

from revbridge.core.policy import build_policy
from revbridge.salesforce.capture import CaptureSettings, SalesforceCapture, created_record
from revbridge.salesforce.streaming import (
    CometdSubscriber,
    InvalidReplayId,
    StreamingError,
    replay_id_of,
)
from revbridge.services.capture import load_watermark
from revbridge.store.ledger import Ledger

from .conftest import Org, run
from .test_capture import event_types, posted_invoice

REPLAY = "salesforce:stream:/data/ChangeEvents"


def test_subscriber_reads_resumes_and_waits_for_new_events(org: Org) -> None:
    org.create("Account", {"Name": "One"})
    org.create("Account", {"Name": "Two"})

    async def go() -> tuple[list[Any], list[Any], list[Any], float]:
        async with org.client() as client:
            sub = CometdSubscriber(client, "/data/AccountChangeEvent")
            await sub.subscribe(-2)
            everything = await sub.receive()
            assert await sub.receive() == []
            await sub.close()
            resumed = CometdSubscriber(client, "/data/AccountChangeEvent")
            resumed.replay_id = replay_id_of(everything[0])
            after_first = await resumed.receive()
            waiting = CometdSubscriber(
                client, "/data/AccountChangeEvent", wait=timedelta(seconds=5)
            )
            await waiting.subscribe(-1)
            assert await waiting.receive() == []  # the session's first connect returns at once
            threading.Timer(0.3, org.create, ("Account", {"Name": "Three"})).start()
            started = time.monotonic()
            arrived = await waiting.receive()
            return everything, after_first, arrived, time.monotonic() - started

    everything, after_first, arrived, waited = run(go())
    assert [m["data"]["payload"]["Name"] for m in everything] == ["One", "Two"]
    assert [m["data"]["payload"]["Name"] for m in after_first] == ["Two"]
    assert [m["data"]["payload"]["Name"] for m in arrived] == ["Three"]
    assert 0.2 < waited < 4.5


def test_subscriber_handshakes_again_when_the_session_is_forgotten(org: Org) -> None:
    """Silent past the 40 s reconnect timeout, the session is gone (403::Unknown client): the
    subscriber handshakes and subscribes again from the replay id it was given."""
    org.create("Account", {"Name": "One"})

    async def go() -> tuple[list[Any], int]:
        async with org.client() as client:
            sub = CometdSubscriber(client, "/data/ChangeEvents")
            await sub.subscribe(-2)
            first = await sub.receive()
            sub.replay_id = replay_id_of(first[-1])
            org.config.clock.advance(timedelta(seconds=41))
            org.create("Account", {"Name": "Two"})
            later = await sub.receive()
            return later, sub.handshakes

    later, handshakes = run(go())
    assert [m["data"]["payload"]["Name"] for m in later] == ["Two"]
    assert handshakes == 2


def test_subscriber_renews_an_expired_token_and_keeps_its_session(org: Org) -> None:
    async def go() -> tuple[list[Any], int, int]:
        async with org.client() as client:
            sub = CometdSubscriber(client, "/data/ChangeEvents")
            await sub.subscribe(-1)
            await sub.receive()
            session = await client.session()
            org.http.post("/services/oauth2/revoke", data={"token": session.access_token})
            org.create("Account", {"Name": "After revoke"})
            got = await sub.receive()
            return got, client.token_requests, sub.handshakes

    got, token_requests, handshakes = run(go())
    assert [m["data"]["payload"]["Name"] for m in got] == ["After revoke"]
    assert token_requests == 2
    assert handshakes == 1


def test_subscriber_errors(org: Org) -> None:
    org.create("Account", {"Name": "One"})
    org.http.put("/sandbox/admin/faults", json={"faults": "expire_replay_before=5"})

    async def go() -> None:
        async with org.client() as client:
            with pytest.raises(InvalidReplayId, match=r"replayId \{1\}"):
                await CometdSubscriber(client, "/data/ChangeEvents").subscribe(1)
            with pytest.raises(StreamingError, match="does not exist"):
                await CometdSubscriber(client, "/data/NopeChangeEvent").subscribe(-1)

    run(go())


def test_capture_survives_a_forgotten_session_without_loss(org: Org, ledger: Ledger) -> None:
    """The org forgets the capture's CometD session mid-stream (a long pause between two
    connects): the capture handshakes again from the replay id it persisted; every change
    reaches the ledger once. One event per connect, so the pause falls between batches."""
    accounts = [org.create("Account", {"Name": f"Customer {i}"}) for i in range(3)]
    posted_invoice(org, accounts[0])
    org.running.sandbox.cometd.max_events = 1
    paused = threading.Event()

    def pause_once(envelopes: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
        if not paused.is_set():
            paused.set()
            org.config.clock.advance(timedelta(seconds=41))
        return envelopes, 0

    async def go() -> tuple[Any, int]:
        async with org.client() as client:
            cap = SalesforceCapture(
                client, ledger, build_policy(), CaptureSettings(), envelope_filter=pause_once
            )
            report = await cap.stream()
            return report, client.token_requests

    report, _ = run(go())
    assert paused.is_set()
    assert event_types(ledger) == {"customer.upserted": 3, "invoice.posted": 1}
    assert report.read == 6  # 3 accounts, invoice create, line create, invoice update
    assert report.duplicates == 0
    stored = load_watermark(ledger.engine, REPLAY)
    assert stored is not None
    assert run(_drained(org, int(stored))) == []


async def _drained(org: Org, replay_id: int) -> list[Any]:
    async with org.client() as client:
        sub = CometdSubscriber(client, "/data/ChangeEvents")
        await sub.subscribe(replay_id)
        return await sub.receive()


def test_stream_with_a_wait_picks_up_a_change_committed_while_it_listens(
    org: Org, ledger: Ledger
) -> None:
    org.create("Account", {"Name": "Early"})

    async def go() -> Any:
        async with org.client() as client:
            settings = CaptureSettings(stream_wait=timedelta(seconds=2))
            cap = SalesforceCapture(client, ledger, build_policy(), settings)
            loop = asyncio.get_running_loop()
            loop.call_later(
                0.5,
                lambda: threading.Thread(
                    target=org.create, args=("Account", {"Name": "Late"})
                ).start(),
            )
            return await cap.stream()

    report = run(go())
    assert report.accepted == 2
    assert event_types(ledger) == {"customer.upserted": 2}


def test_created_accounts_are_mapped_from_their_events_without_a_re_read(
    org: Org, ledger: Ledger
) -> None:
    """A CREATE event carries every field the account mapping needs: no API call is spent on
    it, and the poll later finds the very same versions (duplicates, nothing new)."""
    for i in range(3):
        org.create(
            "Account",
            {
                "Name": f"Payload {i}",
                "BillingStreet": "1 Main St",
                "BillingCity": "Lyon",
                "BillingCountryCode": "FR",
                "ERP_Customer_Number__c": f"C-{i}",
            },
        )
    used_before = org.http.get("/sandbox/admin/usage").json()["used"]
    report = capture_stream(org, ledger)
    assert report.accepted == 3
    assert org.http.get("/sandbox/admin/usage").json()["used"] == used_before
    polled = capture_poll(org, ledger)
    assert (polled.accepted, polled.duplicates) == (0, 3)


def capture_stream(org: Org, ledger: Ledger) -> Any:
    async def go() -> Any:
        async with org.client() as client:
            return await SalesforceCapture(client, ledger, build_policy()).stream()

    return run(go())


def capture_poll(org: Org, ledger: Ledger) -> Any:
    async def go() -> Any:
        async with org.client() as client:
            return await SalesforceCapture(client, ledger, build_policy()).poll()

    return run(go())


def test_created_record_flattens_cdc_compound_fields() -> None:
    """Salesforce nests compound fields in change events; the record gets the components."""
    header = {
        "entityName": "Account",
        "recordIds": ["001000000000001"],
        "changeType": "CREATE",
    }
    payload = {
        "ChangeEventHeader": header,
        "Name": "Nested Ltd",
        "BillingAddress": {"Street": "2 Quay", "City": "Cork", "CountryCode": "IE"},
        "CreatedDate": "2026-11-02T10:00:00.000Z",
    }
    record = created_record(header, payload)
    assert record == {
        "attributes": {"type": "Account"},
        "Id": "001000000000001AAA",
        "Name": "Nested Ltd",
        "BillingStreet": "2 Quay",
        "BillingCity": "Cork",
        "BillingCountryCode": "IE",
        "CreatedDate": "2026-11-02T10:00:00.000Z",
    }
    assert created_record({**header, "changeType": "UPDATE"}, payload) is None
    assert created_record({**header, "recordIds": ["001000000000001", "x"]}, payload) is None
