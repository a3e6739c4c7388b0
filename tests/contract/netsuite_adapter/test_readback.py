"""Incremental read-back for reconciliation: NetSuite's records, page by page, each once;
an accountant's cash receipt is the ERP's own payment; nothing unchanged is read twice."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from revbridge.engine.ports import ReadbackPort
from revbridge.netsuite.adapter import NetSuiteErp
from revbridge.recon.readback import ReadbackStore, RefreshReport
from tests.contract.netsuite_adapter.conftest import Admin, run
from tests.contract.netsuite_adapter.test_port import customer, invoice, revenue

NOW = datetime(2026, 10, 31, 6, 0, tzinfo=UTC)


def _refresh(erp: NetSuiteErp, store: ReadbackStore, page_size: int) -> RefreshReport:
    return run(store.refresh("erp", erp, now=NOW, page_size=page_size))


def test_netsuite_is_a_readback_port(erp: NetSuiteErp) -> None:
    """The NetSuite adapter offers what the reconciliation's store reads through."""
    assert isinstance(erp, ReadbackPort)


def test_pages_of_one_read_everything_once_then_only_the_changes(
    erp: NetSuiteErp, admin: Admin
) -> None:
    """Invoices, a journal and an accountant's payment, read one record per page (keyset on
    lastmodifieddate and id), land once each; the next refresh reads only the invoice the
    payment changed and the payment itself."""

    async def deliver() -> dict[str, str]:
        cust = await erp.upsert_customer("001A", customer("001A"), None)
        ids = {"customer": cust.erp_id}
        for ref in ("a0X1", "a0X2", "a0X3"):
            ids[ref] = (await erp.create_invoice(ref, invoice(ref, "001A"), cust.erp_id)).erp_id
        await erp.post_journal("a0R1", revenue("a0R1", "001A"), cust.erp_id)
        return ids

    ids = run(deliver())
    with ReadbackStore() as store:
        first = _refresh(erp, store, page_size=1)
        assert first.documents == {"ar": 3, "payments": 0, "journals": 1}
        assert store.con.execute("SELECT ref FROM erp_ar ORDER BY ref").fetchall() == [
            ("a0X1",),
            ("a0X2",),
            ("a0X3",),
        ]
        (journal,) = store.con.execute(
            "SELECT DISTINCT ref, customer_ref, period FROM erp_gl"
        ).fetchall()
        assert journal[:2] == ("a0R1", "001A")
        assert _refresh(erp, store, page_size=1).documents == {
            "ar": 0,
            "payments": 0,
            "journals": 0,
        }

        admin(
            "POST",
            "/customerPayment",
            {
                "customer": {"id": ids["customer"]},
                "payment": 100,
                "tranDate": "2026-10-20",
                "account": {"id": "2"},
                "apply": {"items": [{"doc": {"id": ids["a0X2"]}, "apply": True, "amount": 60}]},
            },
        )
        again = _refresh(erp, store, page_size=1)
        assert again.documents == {"ar": 1, "payments": 1, "journals": 0}
        (payment,) = store.con.execute(
            "SELECT key, ref, origin, customer_ref, amount FROM erp_payments"
        ).fetchall()
        assert payment[1] == payment[0]  # an accountant's payment: its NetSuite id is its ref
        assert payment[2:] == ("erp", "001A", Decimal("100.0000"))
        assert store.con.execute("SELECT invoice_ref, amount FROM erp_payment_apps").fetchall() == [
            ("a0X2", Decimal("60.0000"))
        ]
        assert store.con.execute(
            "SELECT amount - balance, status FROM erp_ar WHERE ref = 'a0X2'"
        ).fetchone() == (Decimal("60.0000"), "open")


def test_a_page_larger_than_suiteql_allows_is_read_in_pages_it_accepts(erp: NetSuiteErp) -> None:
    """The store's default page (2,000) is more than SuiteQL's 1,000-row limit: the adapter
    asks for what NetSuite accepts instead of failing the refresh."""

    async def deliver() -> None:
        cust = await erp.upsert_customer("001B", customer("001B"), None)
        await erp.create_invoice("a0Z1", invoice("a0Z1", "001B"), cust.erp_id)

    run(deliver())
    with ReadbackStore() as store:
        assert _refresh(erp, store, page_size=2_000).documents["ar"] == 1
