"""Revenue against the GL: each schedule entry against its journal, and control totals.

Per entry: every Salesforce revenue schedule entry (``revenue.recognized``) against the ERP
journal whose external reference is the entry id, matched as documents
(``match.match_documents``): missing, duplicate, amount (the entry's total debit), currency,
date, customer, and ``period`` (the entry and its journal in different accounting periods).
ERP journals without the hub's reference (entered by hand) are not entries: the control
totals catch them.

Control totals: per accounting period, GL account and currency, the net (debit minus credit)
of the Salesforce entries' lines against the net of the ERP's GL lines in the same account,
over the accounts the Salesforce entries use. Accounts are the same when their numbers (the
first word of the name) are: the two charts name them differently. A ``control_total``
finding's ``ref`` is ``<period>|<account>|<currency>``; it concerns no single record.

Inputs are table or view names on one DuckDB connection with the read-back store's journal
line columns (``key, ref, doc_type, customer_ref, currency, period, doc_date, line, account,
debit, credit``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import duckdb

from revbridge.recon.match import (
    Finding,
    FindingKind,
    ReconResult,
    StatusMap,
    match_documents,
    tolerance_table,
)
from revbridge.recon.thresholds import ReconThresholds

REVENUE_SUBJECTS = ("revenue",)


def reconcile_revenue(
    con: duckdb.DuckDBPyConnection,
    source_lines: str,
    erp_lines: str,
    thresholds: ReconThresholds,
    *,
    control_lines: tuple[str, str] | None = None,
) -> ReconResult:
    """Match Salesforce revenue entries (``source_lines``) against the ERP's GL
    (``erp_lines``), per entry and as control totals per period and account.

    ``control_lines`` are the (Salesforce, ERP) lines the control totals add up, when they
    differ from the entries matched (a period run matches an entry whichever side's date
    falls in the period, but totals each side's own lines of the period).
    """
    control_source, control_erp = control_lines or (source_lines, erp_lines)
    # A journal that carries no customer (Tryton keeps parties on receivable lines only)
    # takes no position on it: it gets the entry's, so that is no customer variance.
    erp_entries = (
        f"SELECT e.* REPLACE (coalesce(e.customer_ref, s.customer_ref) AS customer_ref) "
        f"FROM ({_entries_sql(erp_lines, hub_only=True)}) e "
        f"LEFT JOIN (SELECT ref, any_value(customer_ref) AS customer_ref FROM {source_lines} "
        "GROUP BY ref) s ON s.ref = e.ref"
    )
    entries = match_documents(
        con.sql(_entries_sql(source_lines, hub_only=False)),
        con.sql(erp_entries),
        thresholds,
        connection=con,
        status_map=StatusMap(),
        subject_prefixes=REVENUE_SUBJECTS,
    )
    # The period travels in the status column: its variance is a period variance.
    findings = [
        dataclasses.replace(f, kind=FindingKind.PERIOD) if f.kind is FindingKind.STATUS else f
        for f in entries.findings
    ]
    with tolerance_table(con, thresholds) as tol:
        params = {"abs": thresholds.amount.absolute, "rel": thresholds.amount.relative}
        totals = [
            _control(r)
            for r in con.execute(_control_sql(control_source, control_erp, tol), params).fetchall()
        ]
    return ReconResult(
        source_count=entries.source_count,
        erp_count=entries.erp_count,
        findings=tuple(sorted((*findings, *totals), key=lambda f: (f.ref, f.kind))),
        matched=entries.matched,
    )


def _entries_sql(lines: str, *, hub_only: bool) -> str:
    # One row per entry (ERP: per journal): its total debit, its period as the "status".
    where = "WHERE ref NOT LIKE 'erp:%'" if hub_only else ""
    return f"""
SELECT ref, 'revenue' AS doc_type, any_value(customer_ref) AS customer_ref,
  any_value(currency) AS currency, sum(debit) AS amount, min(doc_date) AS doc_date,
  any_value(period) AS status
FROM {lines} {where} GROUP BY key, ref
"""


def _control_sql(source_lines: str, erp_lines: str, tol: str) -> str:
    # Accounts compare by number (the first word): "4000 Subscription Revenue" in Salesforce
    # is "4000 Revenue - Subscriptions" in the ERP's chart; the finding shows Salesforce's name.
    return f"""
WITH s AS (
  SELECT period, split_part(account, ' ', 1) AS number, min(account) AS account, currency,
         sum(debit) - sum(credit) AS net
  FROM {source_lines} GROUP BY period, number, currency
),
e AS (
  SELECT period, split_part(account, ' ', 1) AS number, min(account) AS account, currency,
         sum(debit) - sum(credit) AS net
  FROM {erp_lines} WHERE split_part(account, ' ', 1) IN (SELECT number FROM s)
  GROUP BY period, number, currency
),
j AS (
  SELECT coalesce(s.period, e.period) AS period, coalesce(s.account, e.account) AS account,
    coalesce(s.currency, e.currency) AS currency, coalesce(s.net, 0) AS s_net,
    coalesce(e.net, 0) AS e_net
  FROM s FULL OUTER JOIN e
    ON e.period = s.period AND e.number = s.number AND e.currency = s.currency
)
SELECT period || '|' || account || '|' || j.currency, j.currency, s_net, e_net,
  e_net - s_net,
  (abs(e_net - s_net) <= coalesce(t.absolute, $abs)
   OR abs(e_net - s_net) <= coalesce(t.relative, $rel) * abs(s_net)) AS within,
  period || ' ' || account
FROM j LEFT JOIN {tol} t ON t.currency = j.currency
WHERE s_net <> e_net
ORDER BY 1
"""


def _control(row: tuple[Any, ...]) -> Finding:
    ref, currency, s_net, e_net, diff, within, what = row
    return Finding(
        kind=FindingKind.CONTROL_TOTAL,
        ref=ref,
        doc_type="control_total",
        currency=currency,
        source_amount=s_net,
        erp_amount=e_net,
        difference=diff,
        within_tolerance=bool(within),
        source_value=what,
        erp_value=what,
        subject_prefixes=(),
    )
