"""Capture over real HTTP: poll with paging and a watermark, the stream with replay ids,
recovery from an expired replay id, the quarantine, and no echo of the hub's own writes."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from sqlalchemy import select

from revbridge.core.policy import build_policy
from revbridge.salesforce.capture import CaptureReport, CaptureSettings, SalesforceCapture
from revbridge.salesforce.mapping import REVENUE_CLOUD
from revbridge.services.capture import load_watermark
from revbridge.store.ledger import Ledger
from revbridge.store.schema import events, quarantine

from .conftest import API, Org, run


def event_types(ledger: Ledger) -> Counter[str]:
    with ledger.engine.connect() as conn:
        return Counter(t for (t,) in conn.execute(select(events.c.type)))


def quarantined(ledger: Ledger) -> list[tuple[str, str]]:
    with ledger.engine.connect() as conn:
        return [
            tuple(r) for r in conn.execute(select(quarantine.c.reason_code, quarantine.c.reason))
        ]  # type: ignore[misc]


def capture(org: Org, ledger: Ledger, how: str, **settings: Any) -> CaptureReport:
    async def go() -> CaptureReport:
        async with org.client() as client:
            cap = SalesforceCapture(client, ledger, build_policy(), CaptureSettings(**settings))
            return await (cap.poll() if how == "poll" else cap.stream())

    return run(go())


def posted_invoice(org: Org, account: str, subtotal: int = 100) -> str:
    invoice = org.create(
        "blng__Invoice__c",
        {
            "blng__Account__c": account,
            "blng__InvoiceDate__c": "2026-11-01",
            "blng__DueDate__c": "2026-12-01",
            "blng__Subtotal__c": subtotal,
            "blng__TaxAmount__c": 0,
        },
    )
    org.create(
        "blng__InvoiceLine__c",
        {
            "blng__Invoice__c": invoice,
            "blng__Quantity__c": 1,
            "blng__UnitPrice__c": subtotal,
            "blng__Subtotal__c": subtotal,
            "blng__TaxAmount__c": 0,
        },
    )
    org.update(
        "blng__Invoice__c",
        invoice,
        {"blng__InvoiceStatus__c": "Posted", "blng__InvoicePostedDate__c": "2026-11-01"},
    )
    return invoice


def bulk_accounts(org: Org, n: int) -> None:
    for start in range(0, n, 200):
        records = [
            {"attributes": {"type": "Account"}, "Name": f"Customer {i:04d}"}
            for i in range(start, min(n, start + 200))
        ]
        response = org.http.post(
            f"{API}/composite/sobjects", json={"allOrNone": True, "records": records}
        )
        assert response.status_code == 200, response.text


def test_poll_pages_through_results_and_persists_the_watermark(org: Org, sf_ledger: Ledger) -> None:
    """450 accounts in pages of 200: all captured once; a second poll adds nothing."""
    bulk_accounts(org, 450)
    account = org.records("SELECT Id FROM Account LIMIT 1")[0]["Id"]
    posted_invoice(org, account)
    first = capture(org, sf_ledger, "poll", batch_size=200)
    assert first.read == 451
    assert event_types(sf_ledger) == {"customer.upserted": 450, "invoice.posted": 1}
    mark = load_watermark(sf_ledger.engine, "salesforce:poll:Account")
    assert mark is not None
    again = capture(org, sf_ledger, "poll", batch_size=200)
    assert again.accepted == 0
    # Only the overlap window is re-read, and it is a duplicate, not a new event.
    assert again.duplicates == again.read - again.skipped
    org.update("Account", account, {"Name": "Renamed Ltd"})
    third = capture(org, sf_ledger, "poll")
    assert third.accepted == 1
    assert event_types(sf_ledger)["customer.upserted"] == 451


def test_poll_reads_the_revenue_cloud_model(org: Org, sf_ledger: Ledger) -> None:
    account = org.create("Account", {"Name": "Initech"})
    invoice = org.create(
        "Invoice",
        {
            "BillingAccountId": account,
            "InvoiceDate": "2026-11-03",
            "DueDate": "2026-12-03",
            "TotalAmount": 80,
            "TotalTaxAmount": 0,
            "Status": "Posted",
            "PostedDate": "2026-11-03T10:00:00Z",
        },
    )
    org.create(
        "InvoiceLine",
        {
            "InvoiceId": invoice,
            "ChargeAmount": 80,
            "TaxAmount": 0,
            "Quantity": 1,
            "UnitPrice": 80,
            "InvoiceLineStartDate": "2026-11-01",
            "InvoiceLineEndDate": "2026-11-30",
        },
    )
    capture(org, sf_ledger, "poll", profile=REVENUE_CLOUD)
    assert event_types(sf_ledger) == {"customer.upserted": 1, "invoice.posted": 1}


def test_stream_resumes_from_the_persisted_replay_id(org: Org, ledger: Ledger) -> None:
    """Over CometD, on both stores: a second stream reads only what came after the replay id
    the first one persisted."""
    sf_ledger = ledger
    account = org.create("Account", {"Name": "Streamed"})
    posted_invoice(org, account)
    first = capture(org, sf_ledger, "stream")
    assert event_types(sf_ledger) == {"customer.upserted": 1, "invoice.posted": 1}
    replay = load_watermark(sf_ledger.engine, "salesforce:stream:/data/ChangeEvents")
    assert replay is not None
    assert first.accepted == 2
    org.update("Account", account, {"Name": "Streamed and Renamed"})
    second = capture(org, sf_ledger, "stream")
    assert second.read == 1  # only the event after the stored replay id
    assert second.accepted == 1
    assert int(load_watermark(sf_ledger.engine, "salesforce:stream:/data/ChangeEvents") or 0) > int(
        replay
    )


def test_an_expired_replay_id_is_backfilled_by_a_poll(
    org: Org, ledger: Ledger, caplog: Any
) -> None:
    """The subscription is refused (400::The replayId {N} ... was invalid): ALERT, a poll fills
    the gap, the stream restarts at -2; on both stores."""
    sf_ledger = ledger
    account = org.create("Account", {"Name": "Before the gap"})
    capture(org, sf_ledger, "stream")
    posted_invoice(org, account)  # happens while the hub is away...
    org.create("Account", {"Name": "During the gap"})
    replay = int(load_watermark(sf_ledger.engine, "salesforce:stream:/data/ChangeEvents") or 0)
    # ...and the retention window has moved past the stored replay id.
    org.http.put("/sandbox/admin/faults", json={"faults": f"expire_replay_before={replay + 100}"})
    report = capture(org, sf_ledger, "stream")
    assert report.backfilled
    assert "outside retention" in caplog.text
    assert event_types(sf_ledger) == {"customer.upserted": 2, "invoice.posted": 1}


def test_bad_records_land_in_the_quarantine_once(org: Org, sf_ledger: Ledger) -> None:
    account = org.create("Account", {"Name": "Careless"})
    invoice = org.create(
        "blng__Invoice__c",
        {
            "blng__Account__c": account,
            "blng__InvoiceDate__c": "2026-11-01",
            "blng__Subtotal__c": 10,
            "blng__InvoiceStatus__c": "Posted",
            "blng__InvoicePostedDate__c": "2026-11-01",
        },
    )
    org.create(
        "blng__InvoiceLine__c",
        {"blng__Invoice__c": invoice, "blng__Subtotal__c": 10, "CurrencyIsoCode": "EUR"},
    )
    capture(org, sf_ledger, "poll")
    capture(org, sf_ledger, "poll")  # re-read in the overlap window: not quarantined twice
    rows = quarantined(sf_ledger)
    assert len(rows) == 1
    code, reason = rows[0]
    assert code == "currency_mismatch"
    assert "currency EUR differs from the document's USD" in reason
    assert invoice in reason
    assert event_types(sf_ledger) == {"customer.upserted": 1}


def test_the_hubs_own_writes_do_not_come_back(org: Org, sf_ledger: Ledger) -> None:
    """Credit status, AR position, GL references and ERP ids written by the integration:
    echoes, not new events."""
    account = org.create("Account", {"Name": "Echo Inc"})
    invoice = posted_invoice(org, account)
    capture(org, sf_ledger, "stream")
    before = event_types(sf_ledger)
    org.update(
        "Account", account, {"Credit_Hold__c": True, "Credit_Limit__c": 5000, "ERP_Id__c": "E-77"}
    )
    org.update("blng__Invoice__c", invoice, {"ERP_Document_Number__c": "AR-77"})
    org.update(
        "Account",
        account,
        {
            "AR_Open_Balance__c": 120.5,
            "AR_Overdue_Balance__c": 20,
            "AR_Days_Overdue__c": 3,
            "AR_Last_Payment_Date__c": "2026-11-20",
            "AR_Last_Payment_Amount__c": 80,
        },
    )
    org.update("blng__Invoice__c", invoice, {"ERP_GL_Reference__c": "JE-77"})
    streamed = capture(org, sf_ledger, "stream")
    assert streamed.echoes == 4
    polled = capture(org, sf_ledger, "poll")
    assert polled.accepted == 0
    assert event_types(sf_ledger) == before


def test_a_changed_line_reaches_the_stream_through_its_invoice(org: Org, sf_ledger: Ledger) -> None:
    """A line edit is a change event of the line: the invoice is re-read and re-mapped."""
    account = org.create("Account", {"Name": "Lines Ltd"})
    invoice = posted_invoice(org, account)
    capture(org, sf_ledger, "stream")
    (line,) = org.records("SELECT Id FROM blng__InvoiceLine__c")
    org.update(
        "blng__InvoiceLine__c", line["Id"], {"blng__Quantity__c": 2, "blng__UnitPrice__c": 50}
    )
    report = capture(org, sf_ledger, "stream")
    assert report.accepted == 1
    with sf_ledger.engine.connect() as conn:
        payloads = [
            p
            for (p,) in conn.execute(
                select(events.c.payload).where(events.c.subject_ref == f"invoice:{invoice}")
            )
        ]
    assert len(payloads) == 2
    assert '"quantity":"2"' in payloads[1].replace(" ", "")


def test_events_committed_by_the_integration_user_are_echoes(org: Org, sf_ledger: Ledger) -> None:
    """When the hub has its own user, nothing that user commits comes back."""
    account = org.create("Account", {"Name": "Written by the hub"})
    (row,) = org.records(f"SELECT LastModifiedById FROM Account WHERE Id = '{account}'")
    report = capture(org, sf_ledger, "stream", integration_user_id=row["LastModifiedById"])
    assert report.echoes == 1
    assert report.accepted == 0


def test_changes_already_in_the_ledger_are_not_read_again(org: Org, sf_ledger: Ledger) -> None:
    """An invoice created, given a line and posted is read once by a stream that catches up:
    the later change events are older than the version already stored; a newer change is
    read again."""
    account = org.create("Account", {"Name": "Catch-up GmbH"})
    invoice = posted_invoice(org, account)

    async def twice() -> tuple[CaptureReport, CaptureReport]:
        async with org.client() as client:
            # One change event a connect: nothing is merged within a batch.
            org.running.sandbox.cometd.max_events = 1
            cap = SalesforceCapture(client, sf_ledger, build_policy(), CaptureSettings())
            first = await cap.stream()
            org.update("blng__Invoice__c", invoice, {"blng__DueDate__c": "2026-12-15"})
            return first, await cap.stream()

    first, second = run(twice())
    assert (first.read, first.accepted, first.duplicates, first.already_current) == (4, 2, 0, 2)
    assert (second.read, second.accepted, second.already_current) == (1, 1, 0)


def customer_payloads(ledger: Ledger, account: str) -> list[dict[str, Any]]:
    with ledger.engine.connect() as conn:
        rows = conn.execute(
            select(events.c.payload)
            .where(events.c.subject_ref == f"customer:{account}")
            .order_by(events.c.id)
        )
        return [json.loads(p) for (p,) in rows]


def test_the_accounts_website_and_shipping_address_are_captured(
    org: Org, sf_ledger: Ledger
) -> None:
    """Salesforce owns the web site and the shipping address: a user's edit of either is a
    new ``customer.upserted`` carrying it, by the stream (the CREATE event, then the
    re-read of an UPDATE) as by the poll."""
    account = org.create(
        "Account",
        {
            "Name": "Shipping Co",
            "Website": "www.shipping.example",
            "ShippingStreet": "1 Dock Road\nUnit 4",
            "ShippingCity": "Cork",
            "ShippingCountryCode": "IE",
        },
    )
    capture(org, sf_ledger, "stream")
    (created,) = customer_payloads(sf_ledger, account)
    assert created["website"] == "www.shipping.example"
    assert created["shipping_address"] == {
        "line1": "1 Dock Road",
        "line2": "Unit 4",
        "city": "Cork",
        "region": None,
        "postal_code": None,
        "country": "IE",
    }
    org.update(
        "Account",
        account,
        {
            "Website": "https://shipping.example/eu",
            "ShippingStreet": "9 Harbour Way",
            "ShippingCity": "Rotterdam",
            "ShippingStateCode": "ZH",
            "ShippingPostalCode": "3011 AA",
            "ShippingCountryCode": "NL",
        },
    )
    assert capture(org, sf_ledger, "stream").accepted == 1
    edited = customer_payloads(sf_ledger, account)[-1]
    assert edited["website"] == "https://shipping.example/eu"
    assert edited["shipping_address"] == {
        "line1": "9 Harbour Way",
        "line2": None,
        "city": "Rotterdam",
        "region": "ZH",
        "postal_code": "3011 AA",
        "country": "NL",
    }
    assert edited["billing_address"] is None
    org.update("Account", account, {"Website": "shipping.example"})
    assert capture(org, sf_ledger, "poll").accepted == 1
    assert customer_payloads(sf_ledger, account)[-1]["website"] == "shipping.example"
