"""The ErpPort over real HTTP against the NetSuite sandbox: every call, idempotency, errors."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal

import pytest

from revbridge.core.events import (
    Application,
    CreditMemoIssued,
    CustomerUpserted,
    DocumentLine,
    InvoicePosted,
    JournalLine,
    PaymentReceived,
    RevenueRecognized,
)
from revbridge.engine.ports import ErpPort, RecordKind
from revbridge.errors import AccessRefused, RateLimited, TerminalError, TransientError
from revbridge.netsuite.adapter import NetSuiteErp
from revbridge.netsuite.client import NetSuiteAuthError, NetSuiteRequestError
from revbridge.netsuite.sandbox import RunningSandbox
from tests.contract.netsuite_adapter.conftest import Admin, connector_config, run, suiteql

D = Decimal


def customer(
    ref: str, name: str = "Acme Ltd", currency: str = "USD", **kw: object
) -> CustomerUpserted:
    return CustomerUpserted(customer_id=ref, name=name, currency=currency, **kw)  # type: ignore[arg-type]


def invoice(
    ref: str,
    customer_ref: str,
    net: str = "200.00",
    tax: str = "16.00",
    currency: str = "USD",
    day: date = date(2026, 10, 5),
) -> InvoicePosted:
    amount, tax_amount = D(net), D(tax)
    return InvoicePosted(
        invoice_id=ref,
        invoice_number=f"INV-{ref}",
        customer_id=customer_ref,
        currency=currency,
        invoice_date=day,
        due_date=date(2026, 11, 4),
        lines=(
            DocumentLine(
                line_id="1",
                description="Platform subscription",
                product_code="PLAT-SUB",
                quantity=D(2),
                unit_price=amount / 2,
                amount=amount,
                tax_amount=tax_amount,
            ),
        ),
        subtotal=amount,
        tax_total=tax_amount,
        total=amount + tax_amount,
    )


def revenue(
    ref: str,
    customer_ref: str | None,
    amount: str = "50.00",
    period: str = "2026-10",
    day: date = date(2026, 10, 31),
) -> RevenueRecognized:
    return RevenueRecognized(
        schedule_entry_id=ref,
        schedule_id="RS-1",
        customer_id=customer_ref,
        period=period,
        entry_date=day,
        lines=(
            JournalLine(account="2400 Deferred Revenue", debit=D(amount), currency="USD"),
            JournalLine(account="4000 Subscription Revenue", credit=D(amount), currency="USD"),
        ),
    )


def count(sandbox: RunningSandbox, table: str, eid: str, type_: str | None = None) -> int:
    where = f" AND type = '{type_}'" if type_ else ""
    return len(suiteql(sandbox, f"SELECT id FROM {table} WHERE externalid = '{eid}'{where}"))


def test_the_adapter_is_an_erp_port_with_netsuite_capabilities(erp: NetSuiteErp) -> None:
    assert isinstance(erp, ErpPort)
    caps = erp.capabilities
    assert (
        caps.concurrency_limit,
        caps.idempotency,
        caps.batch_formats,
        caps.can_close_periods,
    ) == (
        5,
        "external_id",
        ("netsuite-csv",),
        False,
    )


def test_customers_are_upserted_with_parent_subsidiary_and_currency(
    erp: NetSuiteErp, sandbox: RunningSandbox
) -> None:
    async def go() -> tuple[str, str, str]:
        parent = await erp.upsert_customer(
            "001PARENT", customer("001PARENT", "Group plc", "GBP"), None
        )
        child = await erp.upsert_customer(
            "001CHILD_1",
            customer("001CHILD_1", "Group Sub", "EUR", parent_customer_id="001PARENT"),
            parent.erp_id,
        )
        again = await erp.upsert_customer(
            "001CHILD_1",
            customer("001CHILD_1", "Group Sub Renamed", "EUR", parent_customer_id="001PARENT"),
            parent.erp_id,
        )
        await erp.close()
        assert again.erp_id == child.erp_id
        return parent.erp_id, child.erp_id, again.number or ""

    parent_id, child_id, number = run(go())
    rows = suiteql(
        sandbox,
        "SELECT c.id, c.externalid, c.companyname, c.parent, c.subsidiary, cur.symbol AS currency"
        " FROM customer c JOIN currency cur ON cur.id = c.currency ORDER BY c.id",
    )
    assert [
        (r["externalid"], r["companyname"], r.get("parent"), r["subsidiary"], r["currency"])
        for r in rows
    ] == [
        ("SF-001PARENT", "Group plc", None, "1", "GBP"),
        ("SF-001CHILD__1", "Group Sub Renamed", parent_id, "1", "EUR"),
    ]
    assert number == f"CUST{child_id}"


def test_documents_are_created_once_and_found_by_external_id(
    erp: NetSuiteErp, sandbox: RunningSandbox
) -> None:
    async def go() -> None:
        cust = await erp.upsert_customer("001A", customer("001A"), None)
        inv = await erp.create_invoice("a0X1", invoice("a0X1", "001A"), cust.erp_id)
        again = await erp.create_invoice("a0X1", invoice("a0X1", "001A"), cust.erp_id)
        assert again.erp_id == inv.erp_id
        assert inv.number == "INV-a0X1"
        found = await erp.find(RecordKind.INVOICE, "a0X1")
        assert found is not None
        assert (found.erp_id, found.number) == (inv.erp_id, "INV-a0X1")
        assert await erp.find(RecordKind.INVOICE, "a0X-missing") is None
        assert await erp.find(RecordKind.PAYMENT, "a0X1") is None  # external ids are per type
        found_customer = await erp.find(RecordKind.CUSTOMER, "001A")
        assert found_customer is not None
        assert found_customer.erp_id == cust.erp_id
        await erp.close()

    run(go())
    rows = suiteql(sandbox, "SELECT foreigntotal FROM transaction WHERE externalid = 'SF-a0X1'")
    assert rows == [{"links": [], "foreigntotal": "216"}]  # 200 net + 16 tax on the tax item


def test_payments_and_credit_memos_apply_to_the_invoices_the_engine_resolved(
    erp: NetSuiteErp, sandbox: RunningSandbox
) -> None:
    async def go() -> dict[str, str]:
        cust = await erp.upsert_customer("001A", customer("001A"), None)
        one = await erp.create_invoice("a0X1", invoice("a0X1", "001A"), cust.erp_id)
        two = await erp.create_invoice(
            "a0X2", invoice("a0X2", "001A", "100.00", "8.00"), cust.erp_id
        )
        ids = {"a0X1": one.erp_id, "a0X2": two.erp_id}
        payment = PaymentReceived(
            payment_id="a0P1",
            customer_id="001A",
            currency="USD",
            amount=D("150.00"),
            received_on=date(2026, 10, 10),
            method="card",
            reference="ch_1",
            applications=(
                Application(invoice_id="a0X1", amount=D("100.00")),
                Application(invoice_id="a0X2", amount=D("50.00")),
            ),
        )
        paid = await erp.record_payment("a0P1", payment, cust.erp_id, ids)
        memo = CreditMemoIssued(
            credit_memo_id="a0C1",
            credit_memo_number="CM-1",
            customer_id="001A",
            currency="USD",
            issued_on=date(2026, 10, 12),
            reason="Service credit",
            lines=(
                DocumentLine(
                    line_id="1",
                    description="Credit",
                    quantity=D(1),
                    unit_price=D("50.00"),
                    amount=D("50.00"),
                    tax_amount=D("4.00"),
                ),
            ),
            subtotal=D("50.00"),
            tax_total=D("4.00"),
            total=D("54.00"),
            applications=(Application(invoice_id="a0X2", amount=D("54.00")),),
        )
        credited = await erp.create_credit_memo("a0C1", memo, cust.erp_id, {"a0X2": two.erp_id})
        assert (await erp.find(RecordKind.PAYMENT, "a0P1")).erp_id == paid.erp_id  # type: ignore[union-attr]
        assert (await erp.find(RecordKind.CREDIT_MEMO, "a0C1")).erp_id == credited.erp_id  # type: ignore[union-attr]
        await erp.close()
        return ids

    ids = run(go())
    remaining = {
        r["externalid"]: r["foreignamountremaining"]
        for r in suiteql(
            sandbox,
            "SELECT externalid, foreignamountremaining FROM transaction WHERE type = 'CustInvc'",
        )
    }
    assert remaining == {"SF-a0X1": "116", "SF-a0X2": "4"}
    links = suiteql(
        sandbox,
        "SELECT l.previousdoc, l.foreignamount, n.type FROM nexttransactionlinelink l"
        " JOIN transaction n ON n.id = l.nextdoc ORDER BY n.id, l.previousdoc",
    )
    assert [(r["type"], r["previousdoc"], r["foreignamount"]) for r in links] == [
        ("CustPymt", ids["a0X1"], "100"),
        ("CustPymt", ids["a0X2"], "50"),
        ("CustCred", ids["a0X2"], "54"),
    ]


def test_revenue_posts_a_journal_through_the_gl_account_map(
    erp: NetSuiteErp, sandbox: RunningSandbox
) -> None:
    async def go() -> None:
        cust = await erp.upsert_customer("001A", customer("001A"), None)
        await erp.post_journal("a0R1", revenue("a0R1", "001A"), cust.erp_id)
        await erp.post_journal("a0R1", revenue("a0R1", "001A"), cust.erp_id)
        odd = RevenueRecognized(
            schedule_entry_id="a0R2",
            schedule_id="RS-1",
            period="2026-10",
            entry_date=date(2026, 10, 31),
            lines=(
                JournalLine(account="9999 Suspense", debit=D("1.00"), currency="USD"),
                JournalLine(account="4000 Subscription Revenue", credit=D("1.00"), currency="USD"),
            ),
        )
        with pytest.raises(TerminalError, match="no NetSuite GL account mapped"):
            await erp.post_journal("a0R2", odd, None)
        await erp.close()

    run(go())
    lines = suiteql(
        sandbox,
        "SELECT a.acctnumber, tal.debit, tal.credit FROM transactionaccountingline tal"
        " JOIN account a ON a.id = tal.account JOIN transaction t ON t.id = tal.transaction"
        " WHERE t.externalid = 'SF-a0R1' ORDER BY tal.transactionline",
    )
    assert [(r["acctnumber"], r.get("debit"), r.get("credit")) for r in lines] == [
        ("2400", "50", None),
        ("4000", None, "50"),
    ]


def test_summarized_revenue_is_one_journal_per_period_and_currency(sandbox: RunningSandbox) -> None:
    erp = NetSuiteErp(connector_config(sandbox, revenue_posting="summarized"))
    entries = [
        revenue("a0R1", None, "50.00"),
        revenue("a0R2", None, "25.50"),
        revenue("a0R3", None, "10.00"),
    ]

    async def go() -> None:
        with pytest.raises(TerminalError, match="summarized"):
            await erp.post_journal("a0R1", entries[0], None)
        first = await erp.post_revenue_summary("2026-10", entries[:2])
        again = await erp.post_revenue_summary("2026-10", entries)  # the grown, complete set
        assert [r.erp_id for r in first] == [r.erp_id for r in again]
        await erp.close()

    run(go())
    lines = suiteql(
        sandbox,
        "SELECT a.acctnumber, tal.debit, tal.credit FROM transactionaccountingline tal"
        " JOIN account a ON a.id = tal.account ORDER BY a.acctnumber",
    )
    assert [(r["acctnumber"], r.get("debit"), r.get("credit")) for r in lines] == [
        ("2400", "85.5", None),
        ("4000", None, "85.5"),
    ]


def test_a_lost_response_is_found_by_lookup_and_never_duplicated(
    erp: NetSuiteErp, sandbox: RunningSandbox, admin: Admin
) -> None:
    async def go() -> None:
        cust = await erp.upsert_customer("001A", customer("001A"), None)
        admin.faults("lost_response_rate=1")
        with pytest.raises(TransientError):
            await erp.create_invoice("a0X1", invoice("a0X1", "001A"), cust.erp_id)
        admin.faults(None)
        found = await erp.find(RecordKind.INVOICE, "a0X1")  # what the worker does next
        assert found is not None
        retried = await erp.create_invoice("a0X1", invoice("a0X1", "001A"), cust.erp_id)
        assert retried.erp_id == found.erp_id
        await erp.close()

    run(go())
    assert count(sandbox, "transaction", "SF-a0X1", "CustInvc") == 1


def test_over_the_account_limit_netsuite_says_429_and_that_is_rate_limited(
    sandbox: RunningSandbox, admin: Admin
) -> None:
    """A connector told it may use 5 slots on an account whose limit is 2 gets throttled."""
    admin("PUT", "/concurrencyLimit", {"limit": 2})
    admin.faults("latency=100ms")
    greedy = NetSuiteErp(connector_config(sandbox, concurrency_limit=5, read_retries=0))

    async def go() -> list[BaseException | object]:
        calls = [greedy.find(RecordKind.CUSTOMER, f"001{i}") for i in range(5)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        await greedy.close()
        return list(results)

    results = run(go())
    assert any(isinstance(r, RateLimited) for r in results)


def test_under_its_concurrency_limit_the_connector_is_never_throttled(
    sandbox: RunningSandbox, admin: Admin
) -> None:
    admin("PUT", "/concurrencyLimit", {"limit": 2})
    admin.faults("latency=50ms")
    polite = NetSuiteErp(connector_config(sandbox, concurrency_limit=2, read_retries=0))

    async def go() -> None:
        await asyncio.gather(*(polite.find(RecordKind.CUSTOMER, f"001{i}") for i in range(10)))
        await polite.close()

    run(go())
    assert admin("GET", "/status")["throttled"] == 0
    assert polite.http.local.peak == 2


def test_a_closed_period_is_terminal_with_netsuites_detail(erp: NetSuiteErp, admin: Admin) -> None:
    admin("POST", "/accountingPeriod/close", {"date": "2026-09-15"})

    async def go() -> NetSuiteRequestError:
        cust = await erp.upsert_customer("001A", customer("001A"), None)
        with pytest.raises(NetSuiteRequestError) as caught:
            await erp.create_invoice(
                "a0X1", invoice("a0X1", "001A", day=date(2026, 9, 20)), cust.erp_id
            )
        await erp.close()
        return caught.value

    error = run(go())
    assert isinstance(error, TerminalError)
    assert error.status == 400
    assert "closed" in error.details[0].detail.lower()


def test_a_customer_on_credit_hold_gets_no_invoice(erp: NetSuiteErp, admin: Admin) -> None:
    async def go() -> None:
        cust = await erp.upsert_customer("001A", customer("001A"), None)
        admin("PUT", f"/customer/{cust.erp_id}/credit", {"creditHoldOverride": "ON"})
        with pytest.raises(TerminalError, match="USER_ERROR"):
            await erp.create_invoice("a0X1", invoice("a0X1", "001A"), cust.erp_id)
        await erp.close()

    run(go())


def test_bad_credentials_refuse_the_integrations_access(
    sandbox: RunningSandbox, admin: Admin
) -> None:
    wrong = NetSuiteErp(connector_config(sandbox, token_secret="not-the-secret"))
    before = admin("GET", "/status")["requests"]

    async def go() -> None:
        with pytest.raises(NetSuiteAuthError) as caught:
            await wrong.find(RecordKind.CUSTOMER, "001A")
        assert caught.value.status == 401
        assert isinstance(caught.value, AccessRefused)
        # One refused login, not one per read retry (each is a failed login in its audit).
        assert admin("GET", "/status")["requests"] - before == 1
        await wrong.close()

    run(go())


def test_an_outage_is_transient(erp: NetSuiteErp, admin: Admin) -> None:
    admin.faults("outage=on")

    async def go() -> None:
        with pytest.raises(TransientError, match="503") as caught:
            await erp.upsert_customer("001A", customer("001A"), None)
        assert not isinstance(caught.value, TerminalError)
        await erp.close()

    run(go())


def test_a_missing_mapping_is_terminal_before_any_request(erp: NetSuiteErp) -> None:
    async def go() -> None:
        with pytest.raises(TerminalError, match="currency mapped for CHF"):
            await erp.upsert_customer("001A", customer("001A", currency="CHF"), None)
        await erp.close()

    run(go())
    assert erp.http.requests == 0


def test_the_connector_works_under_random_faults(sandbox: RunningSandbox, admin: Admin) -> None:
    """Under 5xx and lost responses, retrying as the engine does lands each record once."""
    admin.faults("error_rate=0.3,lost_response_rate=0.3,seed=11")
    erp = NetSuiteErp(connector_config(sandbox))

    async def deliver(ref: str) -> None:
        for _ in range(30):
            try:
                if await erp.find(RecordKind.CUSTOMER, ref) is None:
                    await erp.upsert_customer(ref, customer(ref), None)
                return
            except TransientError:
                continue
        raise AssertionError(f"{ref} never landed")

    async def go() -> None:
        for i in range(8):
            await deliver(f"001F{i}")
        await erp.close()

    run(go())
    admin.faults(None)
    assert len(suiteql(sandbox, "SELECT id FROM customer")) == 8
    assert admin("GET", "/status")["lostResponses"] > 0
