"""The hub's Outbound Message listener, driven by the Salesforce sandbox's real SOAP pusher."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from revbridge.salesforce.sandbox import SandboxClock, SandboxConfig, run_in_thread
from revbridge.store.schema import events, quarantine

from .conftest import Hub, build_hub

API = "/services/data/v62.0"


def _wait(predicate: Callable[[], bool], timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


@contextmanager
def sandbox_pushing_to(url: str) -> Iterator[httpx.Client]:
    """A sandbox org whose Account and invoice changes are pushed to ``url``; a logged-in client."""
    config = SandboxConfig(
        clock=SandboxClock(),
        outbound_url=url,
        outbound_objects=("Account", "blng__Invoice__c"),
        outbound_retry_base=timedelta(milliseconds=50),
        outbound_poll_interval=timedelta(milliseconds=20),
    )
    with (
        run_in_thread(config) as running,
        httpx.Client(base_url=running.base_url, timeout=10) as client,
    ):
        token = client.post(
            "/services/oauth2/token",
            data={
                "grant_type": "password",
                "client_id": config.client_id,
                "client_secret": config.client_secret,
                "username": config.username,
                "password": config.password,
            },
        ).json()["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


def _outbound(org: httpx.Client) -> list[dict[str, Any]]:
    states: list[dict[str, Any]] = org.get("/sandbox/admin/outbound").json()
    return states


@pytest.fixture
def hub_for_org(store_url: str, tmp_path: Path) -> Iterator[Hub]:
    yield from build_hub(store_url, tmp_path)


def test_an_account_change_pushed_by_salesforce_is_in_the_ledger_when_acked(
    hub_for_org: Hub,
) -> None:
    """Salesforce's Outbound Message is acknowledged, and the Account is a customer event."""
    url = f"{str(hub_for_org.client.base_url).rstrip('/')}/webhooks/salesforce/outbound"
    with sandbox_pushing_to(url) as org:
        created = org.post(
            f"{API}/sobjects/Account", json={"Name": "Outbound Co", "CurrencyIsoCode": "EUR"}
        )
        assert created.status_code == 201, created.text
        account_id = created.json()["id"]
        invoice = org.post(
            f"{API}/sobjects/blng__Invoice__c",
            json={"blng__Account__c": account_id, "blng__Subtotal__c": 42},
        )
        assert invoice.status_code == 201, invoice.text
        # Both notifications are acknowledged: an invoice without its lines is skipped or
        # quarantined with a reason, never a listener error that Salesforce would resend.
        _wait(lambda: [s["state"] for s in _outbound(org)] == ["delivered", "delivered"])
    with hub_for_org.ledger.engine.connect() as conn:
        rows = conn.execute(select(events.c.type, events.c.source_id)).all()
        held = conn.execute(select(quarantine.c.reason_code, quarantine.c.reason)).all()
    assert ("customer.upserted", account_id) in [tuple(r) for r in rows], held


def test_an_org_not_on_the_allow_list_is_refused_and_nothing_is_stored(
    store_url: str, tmp_path: Path
) -> None:
    """An unknown OrganizationId gets a SOAP fault (no Ack): Salesforce keeps retrying."""
    for hub in build_hub(store_url, tmp_path):
        hub.client  # noqa: B018 - the server is running
        body = (
            b'<?xml version="1.0"?><soapenv:Envelope'
            b' xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
            b'<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
            b"<OrganizationId>00D000000000001AAA</OrganizationId>"
            b"</notifications></soapenv:Body></soapenv:Envelope>"
        )
        response = hub.client.post(
            "/webhooks/salesforce/outbound", content=body, headers={"Content-Type": "text/xml"}
        )
        assert response.status_code == 403
        assert b"<Ack>true</Ack>" not in response.content
        assert b"not in security.salesforce_org_ids" in response.content
        assert hub.ledger.status(_now())["events"]["total"] == 0


def test_an_xml_bomb_is_refused_without_expanding_it(store_url: str, tmp_path: Path) -> None:
    """Entity declarations are refused (defusedxml) with a 400 SOAP fault."""
    for hub in build_hub(store_url, tmp_path):
        bomb = (
            b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><l>&b;</l>'
        )
        response = hub.client.post("/webhooks/salesforce/outbound", content=bomb)
        assert response.status_code == 400
        assert b"Fault" in response.content


def _now() -> datetime:
    from revbridge.clock import SystemClock

    return SystemClock().now()
