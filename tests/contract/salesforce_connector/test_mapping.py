"""Mapping contract: recorded SOQL payloads of both object models become canonical envelopes."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from revbridge.codec import decode_line
from revbridge.salesforce.mapping import (
    BILLING,
    REVENUE_CLOUD,
    Mapped,
    Mapper,
    Profile,
    select_fields,
)

FIXTURES = Path(__file__).parent / "fixtures"


def recorded(model: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / f"{model}.json").read_text(), parse_float=Decimal)
    return doc


def map_all(profile: Profile, doc: dict[str, Any]) -> Mapped:
    mapper = Mapper(profile)
    out = Mapped()
    for sobject, entry in doc.items():
        children: dict[str, list[dict[str, Any]]] = {}
        for child in entry.get("children", []):
            children.setdefault(child[entry["parent_field"]], []).append(child)
        out.extend(mapper.map_records(sobject, entry["records"], children))
    return out


def by_type(mapped: Mapped) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for env in mapped.envelopes:
        out.setdefault(env["type"], []).append(env)
    return out


def test_billing_package_records_become_the_five_flows() -> None:
    """Accounts, the posted invoice with its lines, the payment, the credit note, revenue."""
    mapped = map_all(BILLING, recorded("billing"))
    assert mapped.rejections == []
    events = by_type(mapped)
    assert [e["data"]["name"] for e in events["customer.upserted"]] == [
        "Globex Holding",
        "Globex France",
    ]
    france = events["customer.upserted"][1]["data"]
    assert france["parent_customer_id"] == events["customer.upserted"][0]["source_id"]
    assert france["billing_address"]["country"] == "FR"
    assert france["erp_customer_number"] == "C-1001"
    (invoice,) = events["invoice.posted"]
    data = invoice["data"]
    assert (data["currency"], data["subtotal"], data["tax_total"], data["total"]) == (
        "EUR",
        "1000.00",
        "200.00",
        "1200.00",
    )
    assert sorted(line["amount"] for line in data["lines"]) == ["400.00", "600.00"]
    assert sorted(str(line["product_code"]) for line in data["lines"]) == ["None", "PLAT-1"]
    assert data["invoice_number"].startswith("INV-")
    (payment,) = events["payment.received"]
    assert payment["data"]["method"] == "credit_card"
    assert payment["data"]["applications"] == [
        {"invoice_id": data["invoice_id"], "erp_invoice_id": None, "amount": "500.00"}
    ]
    (credit,) = events["credit_memo.issued"]
    assert credit["data"]["applications"][0]["invoice_id"] == data["invoice_id"]
    assert credit["data"]["total"] == "120.00"
    (revenue,) = events["revenue.recognized"]
    assert revenue["data"]["period"] == "2026-11"
    lines = revenue["data"]["lines"]
    assert (lines[0]["account"], lines[0]["debit"]) == ("2400 Deferred Revenue", "50.00")
    assert (lines[1]["account"], lines[1]["credit"]) == ("4000 Revenue", "50.00")
    for env in mapped.envelopes:  # every envelope is a valid canonical event
        decode_line(json.dumps(env))


def test_revenue_cloud_standard_objects_map_the_same_way() -> None:
    mapped = map_all(REVENUE_CLOUD, recorded("revenue_cloud"))
    assert mapped.rejections == []
    events = by_type(mapped)
    (invoice,) = events["invoice.posted"]
    assert (invoice["data"]["subtotal"], invoice["data"]["total"]) == ("250.00", "300.00")
    assert invoice["data"]["lines"][0]["description"] == "Support plan"
    assert invoice["data"]["lines"][0]["product_code"] == "PLAT-1"
    (payment,) = events["payment.received"]
    assert payment["data"]["applications"][0]["amount"] == "300.00"
    assert payment["data"]["received_on"] == "2026-11-15"
    (credit,) = events["credit_memo.issued"]
    assert (credit["data"]["subtotal"], credit["data"]["tax_total"]) == ("50.00", "10.00")
    assert credit["data"]["applications"][0]["invoice_id"] == invoice["data"]["invoice_id"]
    assert "revenue.recognized" not in events
    for env in mapped.envelopes:
        decode_line(json.dumps(env))


def test_mapping_is_deterministic_so_a_reread_is_a_duplicate() -> None:
    """Same record, same content: same source_version (an echo or overlap adds nothing)."""
    first = map_all(BILLING, recorded("billing")).envelopes
    second = map_all(BILLING, recorded("billing")).envelopes
    assert first == second
    doc = recorded("billing")
    doc["Account"]["records"][0]["Name"] = "Globex Group"
    changed = map_all(BILLING, doc).envelopes
    assert changed[0]["source_version"] != first[0]["source_version"]


def test_a_cancelled_posted_invoice_is_reversed_in_full() -> None:
    doc = recorded("billing")
    invoice = doc["blng__Invoice__c"]["records"][0]
    invoice["blng__InvoiceStatus__c"] = "Cancelled"
    events = by_type(map_all(BILLING, doc))
    assert "invoice.posted" not in events
    reversal = next(
        e for e in events["credit_memo.issued"] if e["source_id"].startswith("reversal-")
    )
    assert reversal["data"]["total"] == "1200.00"
    assert reversal["data"]["applications"] == [
        {"invoice_id": invoice["Id"], "erp_invoice_id": None, "amount": "1200.00"}
    ]
    assert "Cancelled in Salesforce after posting" in reversal["data"]["reason"]


def test_drafts_and_erp_written_payments_are_skipped_not_rejected() -> None:
    doc = recorded("billing")
    doc["blng__Invoice__c"]["records"][0]["blng__InvoiceStatus__c"] = "Draft"
    doc["blng__Invoice__c"]["records"][0]["blng__InvoicePostedDate__c"] = None
    doc["blng__Payment__c"]["records"][0]["ERP_Receipt_Number__c"] = "rb-123"
    mapped = map_all(BILLING, doc)
    assert mapped.rejections == []
    assert mapped.skipped == 2
    assert "invoice.posted" not in by_type(mapped)
    assert "payment.received" not in by_type(mapped)


@pytest.mark.parametrize(
    ("change", "code", "words"),
    [
        (lambda inv, line: inv.pop("blng__DueDate__c"), "missing_field", "blng__DueDate__c"),
        (
            lambda inv, line: inv.__setitem__("blng__Account__c", "001-not-an-id"),
            "malformed_id",
            "blng__Account__c",
        ),
        (
            lambda inv, line: line.__setitem__("CurrencyIsoCode", "USD"),
            "currency_mismatch",
            "USD",
        ),
        (
            lambda inv, line: inv.__setitem__("blng__Subtotal__c", Decimal(999)),
            "schema_violation",
            "subtotal",
        ),
    ],
)
def test_bad_records_are_rejected_with_a_reason(change: Any, code: str, words: str) -> None:
    """Never dropped: the rejection names the record, the code and what is wrong."""
    doc = recorded("billing")
    entry = doc["blng__Invoice__c"]
    change(entry["records"][0], entry["children"][0])
    mapped = map_all(BILLING, doc)
    (rejection,) = mapped.rejections
    assert rejection.code == code
    assert words in rejection.reason
    assert rejection.record_id == entry["records"][0]["Id"]
    assert rejection.event_type == "invoice.posted"
    assert json.loads(rejection.raw)["Id"] == entry["records"][0]["Id"]


def test_an_unknown_record_type_is_rejected() -> None:
    record = copy.deepcopy(recorded("billing")["Account"]["records"][0])
    record["attributes"]["type"] = "Opportunity"
    mapped = Mapper(BILLING).map_records("Account", [record])
    assert [r.code for r in mapped.rejections] == ["unknown_record_type"]
    assert "Opportunity" in mapped.rejections[0].reason


@pytest.mark.parametrize("profile", [BILLING, REVENUE_CLOUD], ids=lambda p: p.name)
def test_an_accounts_website_and_shipping_address_are_mapped(profile: Profile) -> None:
    """Salesforce owns both: the capture reads them (by the state and country codes, as the
    billing address) and the event carries them; a shipping address without its city is
    none, as a billing address."""
    fields = select_fields(profile, "account")
    for name in ("Website", "ShippingStreet", "ShippingCity", "ShippingStateCode"):
        assert name in fields
    assert {"ShippingPostalCode", "ShippingCountryCode"} <= set(fields)
    record = copy.deepcopy(recorded("billing")["Account"]["records"][1])
    record |= {
        "Website": "https://globex.example",
        "ShippingStreet": "Zone Industrielle\nQuai 3",
        "ShippingCity": "Lyon",
        "ShippingStateCode": "ARA",
        "ShippingPostalCode": "69007",
        "ShippingCountryCode": "FR",
    }
    (env,) = Mapper(profile).map_records("Account", [record]).envelopes
    data = env["data"]
    assert data["website"] == "https://globex.example"
    assert data["shipping_address"] == {
        "line1": "Zone Industrielle",
        "line2": "Quai 3",
        "city": "Lyon",
        "region": "ARA",
        "postal_code": "69007",
        "country": "FR",
    }
    assert data["billing_address"]["city"] == "Paris"
    record["ShippingCity"] = None
    (env,) = Mapper(profile).map_records("Account", [record]).envelopes
    assert env["data"]["shipping_address"] is None


def test_a_web_site_field_left_blank_in_the_config_is_not_read(tmp_path: Path) -> None:
    """``[salesforce] website_field = ""``: an integration user that cannot read
    ``Account.Website`` would fail every Account query with INVALID_FIELD; the capture
    leaves it out of the query and the event carries no web site."""
    from revbridge.config import parse_config
    from revbridge.services.targets import capture_profile

    default = capture_profile(parse_config({}, None, tmp_path))
    assert "Website" in select_fields(default, "account")
    blank = capture_profile(parse_config({"salesforce": {"website_field": ""}}, None, tmp_path))
    assert "Website" not in select_fields(blank, "account")
    model = parse_config({"salesforce": {"object_model": "revenue_cloud"}}, None, tmp_path)
    assert capture_profile(model).name == REVENUE_CLOUD.name
    record = copy.deepcopy(recorded("billing")["Account"]["records"][1])
    record["Website"] = "https://globex.example"
    (env,) = Mapper(blank).map_records("Account", [record]).envelopes
    assert env["data"]["website"] is None
