"""AR matching: Salesforce invoices and credit memos against the ERP's AR records, in DuckDB.

Both sides have the columns ``ref`` (the Salesforce record id, which the ERP carries as its
external reference), ``doc_type``, ``customer_ref``, ``currency``, ``amount`` (an exact decimal,
``DECIMAL(18,4)``; a float column is refused), ``doc_date`` and ``status``. Each side may be a
Parquet path, a DuckDB relation, or anything DuckDB scans by itself (an Arrow table, a pandas
or polars frame).

The matching is set-based SQL, never a Python loop over records: per side, window counts over
``ref`` find the duplicates (and total their copies); a full outer join on ``ref`` pairs the
sides; one pass over the pairs lists every variance of every pair, made unique per ref and kind
on those few rows. Only the findings (and
the totals of what matched) come back to Python.

A ref duplicated on a side yields its duplicate finding and nothing else: with two ERP
documents for one invoice, which of them should the amount be compared with? A currency
variance suppresses the amount comparison, as amounts in two currencies are not comparable.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeAlias

import duckdb

from revbridge.core.wording import agreeing
from revbridge.recon.thresholds import DEFAULT_THRESHOLDS, ReconThresholds

ArSide: TypeAlias = "str | Path | duckdb.DuckDBPyRelation | Any"
"""A Parquet path, a DuckDB relation, or an object DuckDB scans (Arrow table, data frame)."""

COLUMNS = ("ref", "doc_type", "customer_ref", "currency", "amount", "doc_date", "status")
_FLOAT_TYPES = frozenset({"FLOAT", "DOUBLE", "REAL"})


class FindingKind(StrEnum):
    MISSING_IN_ERP = "missing_in_erp"
    MISSING_IN_SOURCE = "missing_in_source"
    DUPLICATE_IN_ERP = "duplicate_in_erp"
    DUPLICATE_IN_SOURCE = "duplicate_in_source"
    AMOUNT = "amount"
    CURRENCY = "currency"
    DATE = "date"
    CUSTOMER = "customer"
    STATUS = "status"
    # An invoice on one side, a credit memo on the other.
    DOC_TYPE = "doc_type"
    # Payments: the invoices a payment was applied to (or the amounts) differ.
    APPLICATION = "application"
    # Payments: an invoice's open balance differs after the payments applied to it.
    BALANCE = "balance"
    # Revenue: the entry and its journal are in different accounting periods.
    PERIOD = "period"
    # Revenue: a period's total in a GL account differs (ref is ``<period>|<account>``).
    CONTROL_TOTAL = "control_total"


AR_SUBJECTS = ("invoice", "credit_memo")


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One variance between Salesforce and the ERP for one document ``ref``.

    Amounts are the side's total for ``ref`` (the sum of its copies for a duplicate); ``None``
    where the side has no document. ``difference`` is ERP minus Salesforce, ``None`` where the
    amounts are in different currencies. ``source_value`` and ``erp_value`` show the differing
    attribute for the currency, date, customer and status kinds.
    """

    kind: FindingKind
    ref: str
    doc_type: str | None
    currency: str | None
    source_amount: Decimal | None
    erp_amount: Decimal | None
    difference: Decimal | None
    within_tolerance: bool
    source_value: str | None = None
    erp_value: str | None = None
    source_copies: int = 0
    erp_copies: int = 0
    # The ledger subject prefixes this ref may have been captured under (``payment``,
    # ``erp_payment``, ``revenue``...); empty for a finding on no single record (a control
    # total).
    subject_prefixes: tuple[str, ...] = AR_SUBJECTS

    @property
    def subject_refs(self) -> tuple[str, ...]:
        """The ledger subjects this document may have been captured as."""
        return tuple(f"{p}:{self.ref}" for p in self.subject_prefixes)


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusMap:
    """Each side's status vocabulary mapped onto one canonical vocabulary.

    ``source`` and ``erp`` hold ``(status as the side says it, canonical status)`` pairs; a
    status not in the map is compared as it is (so an unknown status shows as a variance
    rather than vanishing). A key ``doc_type:status`` (``credit_memo:paid``) applies to that
    document type only and wins over the plain key. The canonical vocabulary is ``open``,
    ``paid``, ``cancelled`` (and ``draft`` for a document not posted yet).
    """

    source: tuple[tuple[str, str], ...] = ()
    erp: tuple[tuple[str, str], ...] = ()


# Salesforce Billing's payment status and invoice status, Revenue Cloud's statuses; the fake
# ERP and NetSuite's read-back (``open`` / ``paid_in_full``), Tryton's invoice states.
DEFAULT_STATUS_MAP = StatusMap(
    source=(
        # A credit memo is "in force" on both sides however much of it has been applied:
        # Salesforce keeps a credit note Posted, an org that tracks application says Paid.
        ("credit_memo:Paid", "open"),
        ("credit_memo:Partially Paid", "open"),
        ("Unpaid", "open"),
        ("Partially Paid", "open"),
        ("Paid", "paid"),
        ("Posted", "open"),
        ("Cancelled", "cancelled"),
        ("Canceled", "cancelled"),
        ("Voided", "cancelled"),
        ("Rebilled", "cancelled"),
        ("Draft", "draft"),
    ),
    erp=(
        # Salesforce does not track on a credit note whether it has been applied (it stays
        # Posted), while the ERP marks an applied credit memo paid: both mean "in force".
        ("credit_memo:paid", "open"),
        ("credit_memo:paid_in_full", "open"),
        ("open", "open"),
        ("paid", "paid"),
        ("paid_in_full", "paid"),
        ("posted", "open"),
        ("cancelled", "cancelled"),
        ("draft", "draft"),
        ("validated", "draft"),
    ),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class MatchedTotal:
    """Documents present once on both sides with no case-level variance, in one currency."""

    currency: str
    count: int
    source_amount: Decimal
    erp_amount: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconResult:
    """What an AR reconciliation found: its findings and the totals of what matched."""

    source_count: int
    erp_count: int
    findings: tuple[Finding, ...]
    matched: tuple[MatchedTotal, ...]

    @property
    def cases(self) -> tuple[Finding, ...]:
        """The findings a person has to look at: those outside their tolerance."""
        return tuple(f for f in self.findings if not f.within_tolerance)

    @property
    def matched_count(self) -> int:
        return sum(m.count for m in self.matched)


def reconcile_ar(
    source: ArSide,
    erp: ArSide,
    thresholds: ReconThresholds = DEFAULT_THRESHOLDS,
    *,
    connection: duckdb.DuckDBPyConnection | None = None,
    status_map: StatusMap | None = None,
) -> ReconResult:
    """Match Salesforce AR documents (``source``) against the ERP's AR records (``erp``).

    ``connection`` is the DuckDB connection the DuckDB relations among the inputs belong to
    (default: DuckDB's default connection); without relations a private in-memory database
    is used. ``status_map`` maps both sides' statuses onto one vocabulary before they are
    compared (default: none, statuses compared as given).
    """
    return match_documents(source, erp, thresholds, connection=connection, status_map=status_map)


def match_documents(
    source: ArSide,
    erp: ArSide,
    thresholds: ReconThresholds = DEFAULT_THRESHOLDS,
    *,
    connection: duckdb.DuckDBPyConnection | None = None,
    status_map: StatusMap | None = None,
    subject_prefixes: tuple[str, ...] = AR_SUBJECTS,
) -> ReconResult:
    """The document matching of ``reconcile_ar``, for any documents in the AR columns.

    Payments and revenue entries are matched by it too, in the same columns; their findings
    name their own ledger subjects (``subject_prefixes``).
    """
    uses_relations = any(isinstance(x, duckdb.DuckDBPyRelation) for x in (source, erp))
    args = (source, erp, thresholds, status_map or StatusMap(), subject_prefixes)
    if uses_relations:
        con = connection if connection is not None else duckdb.default_connection()
        return _reconcile(con, *args)
    con = connection if connection is not None else duckdb.connect()
    try:
        return _reconcile(con, *args)
    finally:
        if connection is None:
            con.close()


def _reconcile(
    con: duckdb.DuckDBPyConnection,
    source: ArSide,
    erp: ArSide,
    thresholds: ReconThresholds,
    status_map: StatusMap,
    subject_prefixes: tuple[str, ...],
) -> ReconResult:
    tag = uuid.uuid4().hex[:10]
    with (
        _bound(con, f"recon_src_{tag}", source, status_map.source) as src,
        _bound(con, f"recon_erp_{tag}", erp, status_map.erp) as e,
    ):
        pairs = f"recon_pairs_{tag}"
        with tolerance_table(con, thresholds) as tol:
            con.execute(_pairs_sql(pairs, src, e, tol), _default_params(thresholds))
            try:
                findings = tuple(
                    _finding(r, subject_prefixes)
                    for r in con.execute(_findings_sql(pairs)).fetchall()
                )
                matched = tuple(
                    MatchedTotal(currency=c, count=n, source_amount=s, erp_amount=x)
                    for c, n, s, x in con.execute(_matched_sql(pairs)).fetchall()
                )
                counts = con.execute(
                    f"SELECT (SELECT count(*) FROM {src}), (SELECT count(*) FROM {e})"
                ).fetchone()
                assert counts is not None  # a scalar SELECT always returns a row
            finally:
                con.execute(f"DROP TABLE IF EXISTS {pairs}")
    return ReconResult(
        source_count=counts[0], erp_count=counts[1], findings=findings, matched=matched
    )


@contextmanager
def tolerance_table(con: duckdb.DuckDBPyConnection, thresholds: ReconThresholds) -> Iterator[str]:
    """The per-currency tolerances as a temporary table ``(currency, absolute, relative)``
    for the SQL to join; the default tolerance goes in as the parameters ``$abs``, ``$rel``."""
    tol = f"recon_tol_{uuid.uuid4().hex[:10]}"
    con.execute(
        f"CREATE TEMP TABLE {tol} (currency VARCHAR, absolute DECIMAL(38,10), "
        "relative DECIMAL(20,10))"
    )
    try:
        if thresholds.per_currency:
            con.executemany(
                f"INSERT INTO {tol} VALUES (?, ?, ?)",
                [(c, t.absolute, t.relative) for c, t in thresholds.per_currency],
            )
        yield tol
    finally:
        con.execute(f"DROP TABLE IF EXISTS {tol}")


@contextmanager
def _bound(
    con: duckdb.DuckDBPyConnection,
    name: str,
    data: ArSide,
    statuses: tuple[tuple[str, str], ...] = (),
) -> Iterator[str]:
    """``data`` as a temporary view ``name`` with the AR columns in their exact types, its
    statuses mapped through ``statuses``."""
    raw = f"{name}_raw"
    status = "CAST(status AS VARCHAR)"
    if statuses:
        # A tiny mapping, inlined as a CASE: no join over the documents. A key written
        # ``doc_type:status`` applies to that document type only, and wins over the plain one.
        typed = [(k, v) for k, v in statuses if ":" in k]
        plain = [(k, v) for k, v in statuses if ":" not in k]
        whens = " ".join(
            f"WHEN CAST(doc_type AS VARCHAR) || ':' || CAST(status AS VARCHAR) = "
            f"'{_sql_text(k)}' THEN '{_sql_text(v)}'"
            for k, v in typed
        )
        whens += " " + " ".join(
            f"WHEN CAST(status AS VARCHAR) = '{_sql_text(k)}' THEN '{_sql_text(v)}'"
            for k, v in plain
        )
        status = f"CASE {whens} ELSE CAST(status AS VARCHAR) END"
    registered = False
    if isinstance(data, (str, Path)):
        path = str(data).replace("'", "''")
        con.execute(f"CREATE TEMP VIEW {raw} AS SELECT * FROM read_parquet('{path}')")
    elif isinstance(data, duckdb.DuckDBPyRelation):
        try:
            data.create_view(raw, replace=False)
            con.execute(f"SELECT 1 FROM {raw} LIMIT 0")
        except duckdb.CatalogException as exc:
            raise ValueError(
                "a DuckDB relation must belong to the connection given to reconcile_ar"
            ) from exc
    else:
        con.register(raw, data)
        registered = True
    try:
        _check_columns(con, raw)
        con.execute(
            f"CREATE TEMP VIEW {name} AS SELECT CAST(ref AS VARCHAR) AS ref, "
            "CAST(doc_type AS VARCHAR) AS doc_type, CAST(customer_ref AS VARCHAR) AS customer_ref, "
            "CAST(currency AS VARCHAR) AS currency, CAST(amount AS DECIMAL(18,4)) AS amount, "
            f"CAST(doc_date AS DATE) AS doc_date, {status} AS status FROM {raw}"
        )
        try:
            yield name
        finally:
            con.execute(f"DROP VIEW IF EXISTS {name}")
    finally:
        if registered:
            con.unregister(raw)
        else:
            con.execute(f"DROP VIEW IF EXISTS {raw}")


def _sql_text(value: str) -> str:
    return value.replace("'", "''")


def _check_columns(con: duckdb.DuckDBPyConnection, raw: str) -> None:
    types = {str(n): str(t) for n, t, *_ in con.execute(f"DESCRIBE {raw}").fetchall()}
    missing = [c for c in COLUMNS if c not in types]
    if missing:
        columns = agreeing(len(missing), "column")
        raise ValueError(
            f"AR records lack the {columns} {', '.join(missing)}; "
            f"they have {', '.join(sorted(types))}"
        )
    if types["amount"] in _FLOAT_TYPES:
        raise TypeError(
            f"amount is {types['amount']}: money is never a float; give DECIMAL(18,4) amounts"
        )


def _default_params(thresholds: ReconThresholds) -> dict[str, Any]:
    return {
        "abs": thresholds.amount.absolute,
        "rel": thresholds.amount.relative,
        "days": thresholds.date_days,
    }


def _side(view: str) -> str:
    # The window counts that tell the duplicates, and the total of each ref's copies. A
    # duplicated ref joins once per copy; its findings are made unique afterwards, on the few
    # rows that have them, so no side is sorted for a representative row.
    return (
        f"SELECT *, count(*) OVER w AS copies, sum(amount) OVER w AS total FROM {view} "
        "WINDOW w AS (PARTITION BY ref)"
    )


def _pairs_sql(pairs: str, src: str, erp: str, tol: str) -> str:
    return f"""
CREATE TEMP TABLE {pairs} AS
WITH s AS ({_side(src)}), e AS ({_side(erp)}),
j AS (
  SELECT coalesce(s.ref, e.ref) AS ref, coalesce(s.doc_type, e.doc_type) AS doc_type,
         s.doc_type AS s_doc_type, e.doc_type AS e_doc_type,
         s.customer_ref AS s_customer, e.customer_ref AS e_customer,
         s.currency AS s_currency, e.currency AS e_currency,
         s.amount AS s_amount, e.amount AS e_amount, s.total AS s_total, e.total AS e_total,
         s.doc_date AS s_date, e.doc_date AS e_date, s.status AS s_status, e.status AS e_status,
         coalesce(s.copies, 0) AS s_copies, coalesce(e.copies, 0) AS e_copies
  FROM s FULL OUTER JOIN e ON s.ref = e.ref
)
SELECT j.*,
  (s_copies = 1 AND e_copies = 1) AS paired,
  s_currency IS NOT DISTINCT FROM e_currency AS same_currency,
  e_amount - s_amount AS diff,
  date_diff('day', s_date, e_date) AS days_apart,
  (abs(e_amount - s_amount) <= coalesce(t.absolute, $abs)
   OR abs(e_amount - s_amount) <= coalesce(t.relative, $rel) * abs(s_amount)) AS amount_ok,
  abs(date_diff('day', s_date, e_date)) <= $days AS date_ok
FROM j LEFT JOIN {tol} t ON t.currency = j.s_currency
"""


def _findings_sql(pairs: str) -> str:
    # One pass: each row lists its variance kinds, unnested to one finding per kind.
    return f"""
WITH k AS (
  SELECT *, unnest(list_filter([
    CASE WHEN s_copies = 0 THEN 'missing_in_source' END,
    CASE WHEN e_copies = 0 THEN 'missing_in_erp' END,
    CASE WHEN s_copies > 1 THEN 'duplicate_in_source' END,
    CASE WHEN e_copies > 1 THEN 'duplicate_in_erp' END,
    CASE WHEN paired AND NOT same_currency THEN 'currency' END,
    CASE WHEN paired AND same_currency AND s_amount <> e_amount THEN 'amount' END,
    CASE WHEN paired AND s_date IS DISTINCT FROM e_date THEN 'date' END,
    CASE WHEN paired AND s_customer IS DISTINCT FROM e_customer THEN 'customer' END,
    CASE WHEN paired AND s_status IS DISTINCT FROM e_status THEN 'status' END,
    CASE WHEN paired AND s_doc_type IS DISTINCT FROM e_doc_type THEN 'doc_type' END
  ], lambda x: x IS NOT NULL)) AS kind
  FROM {pairs}
  WHERE NOT paired OR NOT same_currency OR s_amount <> e_amount
     OR s_date IS DISTINCT FROM e_date OR s_customer IS DISTINCT FROM e_customer
     OR s_status IS DISTINCT FROM e_status OR s_doc_type IS DISTINCT FROM e_doc_type
)
SELECT kind, ref, doc_type,
  CASE WHEN kind = 'missing_in_source' THEN e_currency ELSE s_currency END AS currency,
  s_total, e_total,
  CASE WHEN kind = 'currency' OR (s_copies > 0 AND e_copies > 0 AND NOT same_currency) THEN NULL
       ELSE coalesce(e_total, 0) - coalesce(s_total, 0) END AS difference,
  CASE kind WHEN 'amount' THEN amount_ok WHEN 'date' THEN date_ok ELSE false END AS within,
  CASE kind WHEN 'currency' THEN s_currency WHEN 'date' THEN CAST(s_date AS VARCHAR)
            WHEN 'customer' THEN s_customer WHEN 'status' THEN s_status
            WHEN 'doc_type' THEN s_doc_type END AS source_value,
  CASE kind WHEN 'currency' THEN e_currency WHEN 'date' THEN CAST(e_date AS VARCHAR)
            WHEN 'customer' THEN e_customer WHEN 'status' THEN e_status
            WHEN 'doc_type' THEN e_doc_type END AS erp_value,
  s_copies, e_copies
FROM k
-- A duplicated ref joins once per copy: one finding per kind and ref, from the first copy by
-- date and amount, for determinism.
QUALIFY row_number() OVER (
  PARTITION BY ref, kind ORDER BY s_date, s_amount, e_date, e_amount, doc_type
) = 1
ORDER BY ref, kind
"""


def _matched_sql(pairs: str) -> str:
    return f"""
SELECT s_currency, count(*), sum(s_amount), sum(e_amount) FROM {pairs}
WHERE paired AND same_currency AND amount_ok AND date_ok
  AND s_customer IS NOT DISTINCT FROM e_customer AND s_status IS NOT DISTINCT FROM e_status
  AND s_doc_type IS NOT DISTINCT FROM e_doc_type
GROUP BY s_currency ORDER BY s_currency
"""


def _finding(row: tuple[Any, ...], subject_prefixes: tuple[str, ...] = AR_SUBJECTS) -> Finding:
    kind, ref, doc_type, currency, s_total, e_total, diff, within, s_val, e_val, sc, ec = row
    return Finding(
        kind=FindingKind(kind),
        ref=ref,
        doc_type=doc_type,
        currency=currency,
        source_amount=s_total,
        erp_amount=e_total,
        difference=diff,
        within_tolerance=bool(within),
        source_value=s_val,
        erp_value=e_val,
        source_copies=sc,
        erp_copies=ec,
        subject_prefixes=subject_prefixes,
    )
