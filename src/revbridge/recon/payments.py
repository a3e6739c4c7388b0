"""Payments, both directions: Salesforce against the ERP's cash receipts, in DuckDB.

Two flows carry cash between the systems:

- a payment captured in Salesforce (``payment.received``) becomes an ERP cash receipt whose
  external reference is the Salesforce payment id;
- a payment recorded in the ERP (``erp.payment.received``, a wire, a lockbox) is written back
  to Salesforce as a payment whose external id is the ERP payment id, and the invoices it
  pays get their balance and status updated there.

Both flows meet in one set of documents keyed by ``ref`` (the id of the system where the cash
was first recorded), matched like AR documents (``match.match_documents``: missing,
duplicate, amount, currency, date, customer). Two checks follow, set-based as well:

- ``application``: for a payment present once on each side in one currency, the invoices it
  was applied to and the amounts must be the same (both listings are shown);
- ``balance``: every invoice a payment of the period was applied to must have the same open
  balance on both sides (``ref`` is the invoice; ERP minus Salesforce).

Inputs are table or view names on one DuckDB connection, in the read-back store's columns
(``readback.py``): payments ``(key, ref, origin, customer_ref, currency, amount, doc_date,
status)``, applications ``(key, invoice_ref, amount)``, AR ``(ref, balance, currency, ...)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb

from revbridge.recon.match import (
    Finding,
    FindingKind,
    MatchedTotal,
    ReconResult,
    StatusMap,
    match_documents,
    tolerance_table,
)
from revbridge.recon.thresholds import ReconThresholds

PAYMENT_SUBJECTS = ("payment", "erp_payment")


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentTables:
    """Where one side's payments, their applications and its AR documents are."""

    payments: str
    applications: str
    ar: str


def reconcile_payments(
    con: duckdb.DuckDBPyConnection,
    source: PaymentTables,
    erp: PaymentTables,
    thresholds: ReconThresholds,
) -> ReconResult:
    """Match Salesforce payments (``source``) against the ERP's (``erp``), then their
    applications and the open balances of the invoices they paid."""
    documents = match_documents(
        con.sql(_documents_sql(source.payments)),
        con.sql(_documents_sql(erp.payments)),
        thresholds,
        connection=con,
        status_map=StatusMap(),
        subject_prefixes=PAYMENT_SUBJECTS,
    )
    with tolerance_table(con, thresholds) as tol:
        params = {"abs": thresholds.amount.absolute, "rel": thresholds.amount.relative}
        applications = tuple(
            _application(r) for r in con.execute(_applications_sql(source, erp)).fetchall()
        )
        balances = tuple(
            _balance(r) for r in con.execute(_balances_sql(source, erp, tol), params).fetchall()
        )
    extra = applications + balances
    # A payment matched as a document but with an application variance is not matched.
    unmatched = {f.ref for f in applications} - {f.ref for f in documents.cases}
    matched = documents.matched
    if unmatched:
        matched = _rematch(con, source, erp, unmatched, documents)
    return ReconResult(
        source_count=documents.source_count,
        erp_count=documents.erp_count,
        findings=tuple(sorted((*documents.findings, *extra), key=lambda f: (f.ref, f.kind))),
        matched=matched,
    )


def _documents_sql(payments: str) -> str:
    # Payments compare as documents: the doc type and the status are not compared (the
    # Salesforce write-back and the ERP each have their own payment states).
    return (
        "SELECT ref, 'payment' AS doc_type, customer_ref, currency, amount, doc_date, "
        f"'processed' AS status FROM {payments}"
    )


def _apps(side: PaymentTables) -> str:
    # Per payment ref (present once on the side, in one currency): its applications.
    return f"""
SELECT p.ref, a.invoice_ref, sum(a.amount) AS amount
FROM {side.payments} p JOIN {side.applications} a ON a.key = p.key
WHERE p.ref IN (SELECT ref FROM {side.payments} GROUP BY ref HAVING count(*) = 1)
GROUP BY p.ref, a.invoice_ref
"""


def _applications_sql(source: PaymentTables, erp: PaymentTables) -> str:
    return f"""
WITH paired AS (
  SELECT s.ref, s.currency, s.amount AS s_amount, e.amount AS e_amount
  FROM {source.payments} s JOIN {erp.payments} e ON e.ref = s.ref AND e.currency = s.currency
  WHERE s.ref IN (SELECT ref FROM {source.payments} GROUP BY ref HAVING count(*) = 1)
    AND e.ref IN (SELECT ref FROM {erp.payments} GROUP BY ref HAVING count(*) = 1)
),
sa AS ({_apps(source)}), ea AS ({_apps(erp)}),
j AS (
  SELECT coalesce(sa.ref, ea.ref) AS ref, coalesce(sa.invoice_ref, ea.invoice_ref) AS invoice,
         sa.amount AS s_amount, ea.amount AS e_amount
  FROM sa FULL OUTER JOIN ea ON ea.ref = sa.ref AND ea.invoice_ref = sa.invoice_ref
),
differing AS (
  SELECT DISTINCT ref FROM j WHERE s_amount IS DISTINCT FROM e_amount
)
SELECT p.ref, p.currency, p.s_amount, p.e_amount,
  (SELECT string_agg(invoice || '=' || CAST(s_amount AS VARCHAR), ';' ORDER BY invoice)
     FROM j WHERE j.ref = p.ref AND s_amount IS NOT NULL),
  (SELECT string_agg(invoice || '=' || CAST(e_amount AS VARCHAR), ';' ORDER BY invoice)
     FROM j WHERE j.ref = p.ref AND e_amount IS NOT NULL)
FROM paired p JOIN differing d ON d.ref = p.ref
ORDER BY p.ref
"""


def _balances_sql(source: PaymentTables, erp: PaymentTables, tol: str) -> str:
    # The invoices the period's payments (either side) were applied to, once each.
    return f"""
WITH invoices AS (
  SELECT invoice_ref AS ref FROM {source.applications}
  WHERE key IN (SELECT key FROM {source.payments})
  UNION
  SELECT invoice_ref FROM {erp.applications} WHERE key IN (SELECT key FROM {erp.payments})
),
s AS (
  SELECT ref, any_value(doc_type) AS doc_type, any_value(currency) AS currency,
         sum(balance) AS balance, count(*) AS n
  FROM {source.ar} WHERE ref IN (SELECT ref FROM invoices) GROUP BY ref
),
e AS (
  SELECT ref, any_value(currency) AS currency, sum(balance) AS balance, count(*) AS n
  FROM {erp.ar} WHERE ref IN (SELECT ref FROM invoices) GROUP BY ref
)
SELECT s.ref, s.doc_type, s.currency, s.balance, e.balance, e.balance - s.balance,
  (abs(e.balance - s.balance) <= coalesce(t.absolute, $abs)
   OR abs(e.balance - s.balance) <= coalesce(t.relative, $rel) * abs(s.balance)) AS within
FROM s JOIN e ON e.ref = s.ref
LEFT JOIN {tol} t ON t.currency = s.currency
WHERE s.n = 1 AND e.n = 1 AND s.currency = e.currency
  AND s.balance IS NOT NULL AND e.balance IS NOT NULL AND s.balance <> e.balance
ORDER BY s.ref
"""


def _application(row: tuple[Any, ...]) -> Finding:
    ref, currency, s_amount, e_amount, s_apps, e_apps = row
    return Finding(
        kind=FindingKind.APPLICATION,
        ref=ref,
        doc_type="payment",
        currency=currency,
        source_amount=s_amount,
        erp_amount=e_amount,
        difference=e_amount - s_amount,
        within_tolerance=False,
        source_value=s_apps,
        erp_value=e_apps,
        source_copies=1,
        erp_copies=1,
        subject_prefixes=PAYMENT_SUBJECTS,
    )


def _balance(row: tuple[Any, ...]) -> Finding:
    ref, doc_type, currency, s_balance, e_balance, diff, within = row
    return Finding(
        kind=FindingKind.BALANCE,
        ref=ref,
        doc_type=doc_type,
        currency=currency,
        source_amount=s_balance,
        erp_amount=e_balance,
        difference=diff,
        within_tolerance=bool(within),
        source_copies=1,
        erp_copies=1,
        subject_prefixes=("invoice",),
    )


def _rematch(
    con: duckdb.DuckDBPyConnection,
    source: PaymentTables,
    erp: PaymentTables,
    unmatched: set[str],
    documents: ReconResult,
) -> tuple[MatchedTotal, ...]:
    """The matched totals less the payments whose applications differ."""
    rows = con.execute(
        f"SELECT s.currency, count(*), sum(s.amount), sum(e.amount) FROM {source.payments} s "
        f"JOIN {erp.payments} e ON e.ref = s.ref WHERE s.ref IN (SELECT unnest($refs)) "
        "GROUP BY s.currency",
        {"refs": sorted(unmatched)},
    ).fetchall()
    less = {c: (n, s, e) for c, n, s, e in rows}
    out = []
    for m in documents.matched:
        n, s, e = less.get(m.currency, (0, 0, 0))
        if m.count - n > 0:
            out.append(
                MatchedTotal(
                    currency=m.currency,
                    count=m.count - n,
                    source_amount=m.source_amount - s,
                    erp_amount=m.erp_amount - e,
                )
            )
    return tuple(out)
