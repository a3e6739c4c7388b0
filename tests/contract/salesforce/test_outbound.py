"""Outbound Messages: SOAP notifications retried with backoff until the listener acks."""

from __future__ import annotations

import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from .conftest import API, OrgFactory, wait_for

ACK_FALSE = (
    b'<?xml version="1.0"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
    b"<soapenv:Body><notificationsResponse><Ack>false</Ack></notificationsResponse>"
    b"</soapenv:Body></soapenv:Envelope>"
)
ACK_TRUE = ACK_FALSE.replace(b"false", b"true")
NS = {
    "soap": "http://schemas.xmlsoap.org/soap/envelope/",
    "om": "http://soap.sforce.com/2005/09/outbound",
    "sf": "urn:sobject.enterprise.soap.sforce.com",
}


@dataclass
class Listener:
    url: str
    replies: list[tuple[int, bytes]]
    received: list[tuple[float, dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
def listener() -> Iterator[Listener]:
    state = Listener(url="", replies=[(500, b"boom"), (200, ACK_FALSE), (200, ACK_TRUE)])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.received.append((time.monotonic(), dict(self.headers), body))
            index = min(len(state.received), len(state.replies)) - 1
            status, reply = state.replies[index]
            self.send_response(status)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/listener"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


def test_notification_is_retried_until_acknowledged(
    make_org: OrgFactory, listener: Listener
) -> None:
    """A 500 and an <Ack>false</Ack> are failures; the message is resent with growing delays
    until <Ack>true</Ack>, then it is delivered and not sent again."""
    with make_org(
        outbound_url=listener.url, outbound_retry_base=timedelta(milliseconds=100)
    ) as org:
        account = org.create("Account", {"Name": "Outbound Co"})
        invoice = org.create(
            "blng__Invoice__c", {"blng__Account__c": account, "blng__Subtotal__c": 42}
        )

        def delivered() -> bool:
            states = org.client.get("/sandbox/admin/outbound").json()
            return bool(states) and all(s["state"] == "delivered" for s in states)

        wait_for(delivered, timeout_s=10)
        time.sleep(0.3)
        assert len(listener.received) == 3
        (t1, headers, body), (t2, _, _), (t3, _, _) = listener.received
        assert t3 - t2 > t2 - t1 > 0.08  # exponential backoff
        assert headers["SOAPAction"] == '""'
        assert headers["Content-Type"].startswith("text/xml")
        root = ET.fromstring(body)
        notes = root.findall("soap:Body/om:notifications/om:Notification", NS)
        assert len(notes) == 1
        assert notes[0].findtext("om:Id", namespaces=NS, default="").startswith("04l")
        sobject = notes[0].find("om:sObject", NS)
        assert sobject is not None
        assert sobject.findtext("sf:Id", namespaces=NS) == invoice
        assert sobject.findtext("sf:blng__Subtotal__c", namespaces=NS) == "42.0"
        assert root.findtext("soap:Body/om:notifications/om:OrganizationId", namespaces=NS) == (
            org.config.org_id
        )
        status = org.client.get("/sandbox/admin/outbound").json()
        assert [(s["recordId"], s["attempts"]) for s in status] == [(invoice, 3)]
        assert org.client.get(f"{API}/limits").status_code == 200


def test_unacknowledged_notification_is_dropped_after_the_window(
    make_org: OrgFactory, listener: Listener
) -> None:
    """A listener that never acks sees the message until the give-up window passes."""
    listener.replies = [(200, ACK_FALSE)]
    with make_org(
        outbound_url=listener.url,
        outbound_retry_base=timedelta(milliseconds=20),
        outbound_give_up_after=timedelta(milliseconds=300),
    ) as org:
        account = org.create("Account", {"Name": "Never Acked"})
        org.create("blng__Payment__c", {"blng__Account__c": account, "blng__Amount__c": 1})

        def dropped() -> bool:
            states = org.client.get("/sandbox/admin/outbound").json()
            return bool(states) and states[0]["state"] == "dropped"

        wait_for(dropped, timeout_s=10)
        attempts = len(listener.received)
        assert attempts >= 2
        time.sleep(0.3)
        assert len(listener.received) == attempts
