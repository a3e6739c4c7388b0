"""The adapter's pure mappings: GL account names, party codes, payment part references."""

from __future__ import annotations

import asyncio

import pytest

from revbridge.core.events import CustomerUpserted
from revbridge.engine.ports import ErpPort
from revbridge.errors import TerminalError
from revbridge.tryton.adapter import (
    AccountMap,
    TrytonErp,
    party_code_for,
    payment_part_reference,
    split_payment_reference,
)


def test_canonical_gl_names_map_to_the_universal_chart() -> None:
    """Names match in full, by number or by words; Tryton codes pass; unknown names refuse."""
    accounts = AccountMap()
    assert accounts.code_for("2400 Deferred Revenue") == "2.2.2"
    assert accounts.code_for("4000  subscription revenue") == "4.1.2"
    assert accounts.code_for("1200") == "1.2.1"
    assert accounts.code_for("Cash") == "1.1.1"
    assert accounts.code_for("6.1.1") == "6.1.1"
    with pytest.raises(TerminalError, match="9999 Suspense"):
        accounts.code_for("9999 Suspense")
    custom = AccountMap(gl_accounts={"4000 Subscription Revenue": "4.1.1"})
    assert custom.code_for("4000 Subscription Revenue") == "4.1.1"


def test_party_code_is_the_erp_number_or_derived_from_the_account() -> None:
    """A customer without an ERP number gets a stable code from its Salesforce id."""
    with_number = CustomerUpserted(
        customer_id="001A", name="Acme", erp_customer_number="C1", currency="USD"
    )
    without = CustomerUpserted(customer_id="001A", name="Acme", currency="USD")
    assert party_code_for(with_number) == "C1"
    assert party_code_for(without) == "SF-001A"


def test_payment_parts_round_trip() -> None:
    """A payment in two parts is numbered, and the numbering reads back."""
    assert payment_part_reference("a0P1", 1, 1) == "a0P1"
    assert payment_part_reference("a0P1", 2, 3) == "a0P1 [2/3]"
    assert split_payment_reference("a0P1 [2/3]") == ("a0P1", 2, 3)
    assert split_payment_reference("WIRE 77") == ("WIRE 77", 1, 1)


def test_the_adapter_is_an_erp_port() -> None:
    """The engine accepts it as an ERP; it declares Tryton's limits."""
    erp = TrytonErp.connect("http://127.0.0.1:1/", "db", "u", "p")
    assert isinstance(erp, ErpPort)
    caps = erp.capabilities
    assert (caps.name, caps.concurrency_limit, caps.idempotency, caps.can_close_periods) == (
        "tryton",
        1,
        "search_before_create",
        True,
    )
    asyncio.run(erp.close())
