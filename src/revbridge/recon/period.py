"""A period's reconciliation: the three reconciliations over ``[start, end)``, in one call.

``reconcile_period`` refreshes the read-back store (``recon.duckdb`` beside the configuration;
both sides read incrementally, see ``readback.py``), cuts the period out of it, runs the AR,
payments and revenue reconciliations on it in DuckDB, and attaches the hub's state to every
finding. A nightly run is a day, a month-end run a month; the period only chooses documents:

- AR and payments: a document belongs to the period when its date on *either* side falls in
  it, so a document dated the 31st in Salesforce and the 1st in the ERP is a date variance,
  not a missing document in both months;
- revenue: the same per entry; the control totals add up each side's own lines of the period.

The balances compared for the payments are the current ones (a balance has no date).
Re-running after a late delivery landed finds nothing for it any more: every run matches
again from the store, and nothing of a previous run is kept here (cases are the workflow's).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import duckdb
from sqlalchemy.engine import Engine

from revbridge.config import Settings
from revbridge.recon.hub_state import (
    ON_ITS_WAY,
    SCHEDULED,
    FindingWithHubState,
    HubState,
    attach_hub_state,
)
from revbridge.recon.match import (
    DEFAULT_STATUS_MAP,
    FindingKind,
    ReconResult,
    StatusMap,
    match_documents,
)
from revbridge.recon.payments import PaymentTables, reconcile_payments
from revbridge.recon.readback import ReadbackStore
from revbridge.recon.revenue import reconcile_revenue
from revbridge.recon.thresholds import (
    DEFAULT_THRESHOLDS_BY_RECONCILIATION,
    ThresholdsByReconciliation,
    parse_thresholds,
)

SCOPES = ("nightly", "monthly")
STORE_FILE = "recon.duckdb"

Refresher = Callable[[ReadbackStore, datetime], Awaitable[object]]
"""Reads both sides into the store (``services.recon_readback.refresh_from_config``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Reconciliation:
    name: str  # "ar" | "payments" | "revenue"
    result: ReconResult  # findings + matched totals (match.py types)
    findings: tuple[FindingWithHubState, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class PeriodRecon:
    scope: str  # "nightly" | "monthly"
    start: date
    end: date  # [start, end)
    reconciliations: tuple[Reconciliation, ...]
    read_at: datetime  # tz-aware

    def of(self, name: str) -> Reconciliation:
        """The reconciliation called ``name`` (``ar``, ``payments``, ``revenue``)."""
        for r in self.reconciliations:
            if r.name == name:
                return r
        raise KeyError(name)


def reconcile_period(
    settings: Settings,
    engine: Engine,
    *,
    scope: str,
    start: date,
    end: date,
    refresh: bool = True,
    refresher: Refresher | None = None,
    store: ReadbackStore | None = None,
    now: datetime | None = None,
) -> PeriodRecon:
    """Reconcile Salesforce against the ERP over ``[start, end)``.

    ``refresh`` reads what changed on both sides first (through ``refresher``, by default the
    configured ERP and Salesforce); ``store`` is the read-back store (default: ``recon.duckdb``
    in the configuration's folder). Thresholds and the status map come from the
    configuration's ``recon`` section when it has them, else the documented defaults. From
    inside an event loop, await ``reconcile_period_async`` instead.
    """
    return asyncio.run(
        reconcile_period_async(
            settings,
            engine,
            scope=scope,
            start=start,
            end=end,
            refresh=refresh,
            refresher=refresher,
            store=store,
            now=now,
        )
    )


async def reconcile_period_async(
    settings: Settings,
    engine: Engine,
    *,
    scope: str,
    start: date,
    end: date,
    refresh: bool = True,
    refresher: Refresher | None = None,
    store: ReadbackStore | None = None,
    now: datetime | None = None,
) -> PeriodRecon:
    """``reconcile_period`` for a caller already in an event loop (the scheduler, the API)."""
    if scope not in SCOPES:
        raise ValueError(f"scope {scope!r}: one of {SCOPES}")
    if not start < end:
        raise ValueError(f"an empty period: [{start}, {end})")
    now = now or datetime.now(dt.UTC)
    own = store is None
    store = store or ReadbackStore(settings.path_in_base(STORE_FILE))
    try:
        if refresh:
            if refresher is None:
                # Building the adapters is the services' business: imported only when needed.
                from revbridge.services.recon_readback import refresh_from_config

                def refresher(s: ReadbackStore, at: datetime) -> Awaitable[object]:
                    return refresh_from_config(settings, s, now=at, engine=engine)

            await refresher(store, now)
        thresholds, status_map = _configured(settings)
        results = reconcile_store(
            store.con, start=start, end=end, thresholds=thresholds, status_map=status_map
        )
        read_at = min(
            (t for t in (store.last_read("sf"), store.last_read("erp")) if t is not None),
            default=now,
        )
        reconciliations = []
        for name, result in results:
            attached = attach_hub_state(result.findings, engine, now=now)
            if name == "revenue":
                attached = in_transit_control_totals(store.con, attached, start=start, end=end)
            reconciliations.append(Reconciliation(name=name, result=result, findings=attached))
    finally:
        if own:
            store.close()
    return PeriodRecon(
        scope=scope,
        start=start,
        end=end,
        reconciliations=tuple(reconciliations),
        read_at=read_at if read_at.tzinfo is not None else read_at.replace(tzinfo=dt.UTC),
    )


def in_transit_control_totals(
    con: duckdb.DuckDBPyConnection,
    findings: tuple[FindingWithHubState, ...],
    *,
    start: date,
    end: date,
) -> tuple[FindingWithHubState, ...]:
    """The revenue findings, a control total the hub's entries in transit explain marked so.

    A revenue entry still on its way (waiting for its batch window, hub state ``scheduled``;
    or pending, in flight, parked, held) is in the Salesforce total of its period and account
    but not yet in the GL. When the period's entries in transit account for a control total's
    whole difference (their Salesforce lines less what the GL holds of them already, as for
    an entry revised after it was posted: ERP = Salesforce - in transit, per period, account
    number and currency), the total is in transit too: ``scheduled`` when every one
    of those entries waits for its batch window, else ``in transit``. Any other difference
    is a variance.
    """
    on_way = {
        i.finding.ref: i.awaits_batch
        for i in findings
        if i.on_its_way and i.finding.subject_prefixes
    }
    if not on_way:
        return findings
    # What the entries in transit will change in the GL: their Salesforce lines less what the
    # GL already holds of them (an entry revised in Salesforce after it was posted changes
    # the GL by the difference, not by its whole amount).
    window = _in("doc_date", start, end)
    rows = con.execute(
        "WITH s AS (SELECT period, split_part(account, ' ', 1) AS number, currency, "
        "sum(debit) - sum(credit) AS net, "
        "bool_and(ref IN (SELECT unnest($batch::VARCHAR[]))) AS batch "
        f"FROM sf_revenue WHERE {window} "
        "AND ref IN (SELECT unnest($refs::VARCHAR[])) GROUP BY ALL), "
        "e AS (SELECT period, split_part(account, ' ', 1) AS number, currency, "
        "sum(debit) - sum(credit) AS net "
        f"FROM erp_gl WHERE {window} "
        "AND ref IN (SELECT unnest($refs::VARCHAR[])) GROUP BY ALL) "
        "SELECT coalesce(s.period, e.period), coalesce(s.number, e.number), "
        "coalesce(s.currency, e.currency), coalesce(s.net, 0) - coalesce(e.net, 0), "
        "coalesce(s.batch, false) "
        "FROM s FULL OUTER JOIN e "
        "ON e.period = s.period AND e.number = s.number AND e.currency = s.currency",
        {"refs": sorted(on_way), "batch": sorted(r for r, batch in on_way.items() if batch)},
    ).fetchall()
    in_transit = {(p, number, cur): (net, batch) for p, number, cur, net, batch in rows}
    out = []
    for item in findings:
        f = item.finding
        if f.kind is FindingKind.CONTROL_TOTAL and f.difference is not None:
            period, rest = f.ref.split("|", 1)
            account, currency = rest.rsplit("|", 1)
            net, batch = in_transit.get((period, account.split(" ", 1)[0], currency), (None, False))
            if net is not None and f.difference + net == 0:
                state = SCHEDULED if batch else ON_ITS_WAY
                item = dataclasses.replace(item, hub=HubState(state=state))
        out.append(item)
    return tuple(out)


def _configured(settings: Settings) -> tuple[ThresholdsByReconciliation, StatusMap]:
    """The ``recon`` section's thresholds and status map, where the configuration has them.

    The section belongs to the reconciliation workflow's configuration; this reads only
    ``thresholds`` (a table per reconciliation, see ``thresholds.parse_thresholds``) and
    ``status_map`` (``{"source": {...}, "erp": {...}}``, merged over the defaults).
    """
    section: Any = getattr(settings.raw, "recon", None)
    if section is None:
        return DEFAULT_THRESHOLDS_BY_RECONCILIATION, DEFAULT_STATUS_MAP
    raw_thresholds = getattr(section, "thresholds", None) or {}
    raw_map = getattr(section, "status_map", None) or {}
    thresholds = parse_thresholds(_plain(raw_thresholds))
    status_map = DEFAULT_STATUS_MAP
    if raw_map:
        plain = _plain(raw_map)
        status_map = StatusMap(
            source=tuple({**dict(DEFAULT_STATUS_MAP.source), **plain.get("source", {})}.items()),
            erp=tuple({**dict(DEFAULT_STATUS_MAP.erp), **plain.get("erp", {})}.items()),
        )
    return thresholds, status_map


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump() if dump is not None else dict(value)


def _in(column: str, start: date, end: date) -> str:
    return f"({column} >= DATE '{start.isoformat()}' AND {column} < DATE '{end.isoformat()}')"


def reconcile_store(
    con: duckdb.DuckDBPyConnection,
    *,
    start: date,
    end: date,
    thresholds: ThresholdsByReconciliation = DEFAULT_THRESHOLDS_BY_RECONCILIATION,
    status_map: StatusMap = DEFAULT_STATUS_MAP,
) -> tuple[tuple[str, ReconResult], ...]:
    """The three reconciliations over ``[start, end)`` of a read-back store's tables."""
    d = _in("doc_date", start, end)
    views = {
        "p_ar_refs": f"SELECT ref FROM sf_ar WHERE {d} UNION SELECT ref FROM erp_ar WHERE {d}",
        "p_sf_ar": "SELECT * FROM sf_ar WHERE ref IN (SELECT ref FROM p_ar_refs)",
        "p_erp_ar": "SELECT * FROM erp_ar WHERE ref IN (SELECT ref FROM p_ar_refs)",
        # Salesforce payments written back from the ERP, under the ERP payment's id.
        "p_sf_pay_all": (
            "SELECT p.* REPLACE (coalesce(a.ref, p.ref) AS ref) FROM sf_payments p "
            "LEFT JOIN payment_aliases a ON a.alias = p.ref"
        ),
        "p_pay_refs": (
            f"SELECT ref FROM p_sf_pay_all WHERE {d} UNION SELECT ref FROM erp_payments WHERE {d}"
        ),
        "p_sf_pay": "SELECT * FROM p_sf_pay_all WHERE ref IN (SELECT ref FROM p_pay_refs)",
        "p_erp_pay": "SELECT * FROM erp_payments WHERE ref IN (SELECT ref FROM p_pay_refs)",
        "p_sf_apps": "SELECT * FROM sf_payment_apps WHERE key IN (SELECT key FROM p_sf_pay)",
        "p_erp_apps": "SELECT * FROM erp_payment_apps WHERE key IN (SELECT key FROM p_erp_pay)",
        "p_rev_refs": (
            f"SELECT ref FROM sf_revenue WHERE {d} UNION "
            f"SELECT ref FROM erp_gl WHERE {d} AND ref NOT LIKE 'erp:%'"
        ),
        "p_sf_rev": "SELECT * FROM sf_revenue WHERE ref IN (SELECT ref FROM p_rev_refs)",
        "p_erp_rev": "SELECT * FROM erp_gl WHERE ref IN (SELECT ref FROM p_rev_refs)",
        "p_sf_rev_lines": f"SELECT * FROM sf_revenue WHERE {d}",
        "p_erp_gl_lines": f"SELECT * FROM erp_gl WHERE {d}",
    }
    for name, sql in views.items():
        con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {sql}")
    try:
        ar = match_documents(
            con.sql("SELECT * FROM p_sf_ar"),
            con.sql("SELECT * FROM p_erp_ar"),
            thresholds.ar,
            connection=con,
            status_map=status_map,
        )
        payments = reconcile_payments(
            con,
            PaymentTables(payments="p_sf_pay", applications="p_sf_apps", ar="sf_ar"),
            PaymentTables(payments="p_erp_pay", applications="p_erp_apps", ar="erp_ar"),
            thresholds.payments,
        )
        revenue = reconcile_revenue(
            con,
            "p_sf_rev",
            "p_erp_rev",
            thresholds.revenue,
            control_lines=("p_sf_rev_lines", "p_erp_gl_lines"),
        )
    finally:
        for name in reversed(list(views)):
            con.execute(f"DROP VIEW IF EXISTS {name}")
    return (("ar", ar), ("payments", payments), ("revenue", revenue))
