"""``revbridge recon``: run a reconciliation, work its cases, sign a month off.

A thin edge: every command calls one function of ``revbridge.services.recon``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from revbridge.cli._ledger import disposing, open_engine
from revbridge.cli._options import ConfigOpt, JsonOpt
from revbridge.cli._output import check_erp_before_reading, print_json
from revbridge.core.money import format_money
from revbridge.core.timestamps import human_timestamp
from revbridge.core.wording import counted

app = typer.Typer(
    help="Reconciliation: runs and reports, cases, month-end sign-off.", no_args_is_help=True
)
cases_app = typer.Typer(help="Reconciliation cases: list, show, work them.", no_args_is_help=True)
app.add_typer(cases_app, name="cases")

EXIT_TOO_MANY_OPEN_CASES = 3

ActorOpt = Annotated[
    str | None, typer.Option("--actor", help="Who is acting (for the audit log); default $USER.")
]
out = Console()
err = Console(stderr=True)


def _actor(actor: str | None) -> str:
    return actor or os.environ.get("USER") or "operator"


def _now() -> datetime:
    return datetime.now(UTC)


@app.command("run")
@disposing
def run(
    scope: Annotated[str, typer.Option(help="nightly (a day) or monthly (a month).")] = "nightly",
    period: Annotated[
        str | None,
        typer.Option(help="YYYY-MM-DD for nightly (default yesterday), YYYY-MM for monthly."),
    ] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="Report format: html, csv, xlsx or json.")
    ] = None,
    out_file: Annotated[Path | None, typer.Option("--out", help="Write the report here.")] = None,
    refresh: Annotated[
        bool, typer.Option("--refresh/--no-refresh", help="Read what changed on both sides first.")
    ] = True,
    config: ConfigOpt = None,
    actor: ActorOpt = None,
) -> None:
    """Reconcile a period; report; exit 3 when more cases are open than configured."""
    from revbridge.recon.report.model import ABSOLUTE
    from revbridge.recon.report.render import FORMATS, render
    from revbridge.services.recon import default_reconciler, period_bounds, run_recon

    known = ", ".join(FORMATS)
    if fmt is not None and fmt not in FORMATS:
        raise typer.BadParameter(
            f"{fmt!r} is not a report format; the formats are {known}", param_hint="--format"
        )
    if out_file is not None and fmt is None:
        fmt = out_file.suffix.lstrip(".").lower()
        if fmt not in FORMATS:
            raise typer.BadParameter(
                f"cannot tell the report format from {out_file.name!r}: end the file name "
                f"in {', '.join(f'.{f}' for f in FORMATS)}, or give --format ({known})",
                param_hint="--out",
            )
    if fmt == "xlsx" and out_file is None:
        raise typer.BadParameter("an Excel workbook needs --out FILE", param_hint="--out")
    settings, engine = open_engine(config)
    if refresh:  # --no-refresh reads the read-back store only, nothing from the ERP
        check_erp_before_reading(settings)
    now = _now()
    start, end = period_bounds(scope, period, today=now.date())
    outcome = run_recon(
        engine,
        default_reconciler(settings, engine),
        scope=scope,
        start=start,
        end=end,
        actor=_actor(actor),
        now=now,
        refresh=refresh,
        trend_runs=settings.raw.recon.trend_runs,
    )
    report = outcome.report
    if fmt is not None:
        data = render(report, fmt)
        if out_file is not None:
            out_file.write_bytes(data)
            err.print(f"report written to {out_file}")
        else:
            sys.stdout.write(data.decode())
    if fmt is None or out_file is not None:
        console = err if fmt is not None and out_file is None else out
        console.print(
            f"run {outcome.run_id}: {scope} {start}..{end} (excl.): "
            f"matched={report.matched_count} variances={report.variance_count} "
            f"within_tolerance={report.within_tolerance} opened={outcome.opened} "
            f"reopened={outcome.reopened} auto_resolved={outcome.auto_resolved} "
            f"open_cases={outcome.open_cases}"
        )
        # Waiting for a batch window is never a case before the window; anything else in
        # transit is one if a later run still finds it undelivered: said apart, not as one.
        batch = report.awaiting_batch_without_case
        due = max(report.in_transit_without_case - batch, 0)
        console.print(
            f"  in transit (hub still delivering): {report.timing_differences}"
            + (
                f", {report.in_transit_without_case} without a case"
                if report.in_transit_without_case
                else ""
            )
            + (f": {batch} waiting for a batch window (no case before it)" if batch else "")
            + (
                f"{',' if batch else ':'} {due} due or late (a case if a later "
                "run still finds them undelivered)"
                if due
                else ""
            )
            + "; "
            "open cases by age: " + " ".join(f"{k}d={n}" for k, n in report.aging)
        )
        for c in report.categories:
            # One amount per line, right-aligned under each other: never split at 80 columns.
            amounts = [format_money(a, cur) for cur, a in c.amounts] or [""]
            width = max(len(a) for a in amounts)
            head = f"  {c.reconciliation:<9} {c.kind:<20} {c.count:>6}  "
            for i, amount in enumerate(amounts):
                console.print(f"{head if i == 0 else ' ' * len(head)}{amount:>{width}}")
        # What each amount is: a control total's is one leg, not both legs of its journals.
        special = sorted({(c.kind, c.amount_basis) for c in report.categories} - {
            (c.kind, ABSOLUTE) for c in report.categories
        })  # fmt: skip
        if report.categories:
            console.print("  amounts: " + "; ".join([ABSOLUTE, *(f"{k}: {b}" for k, b in special)]))
        if outcome.voided_signoffs:
            ids = ", ".join(str(i) for i in outcome.voided_signoffs)
            console.print(
                f"[yellow]sign-off voided (id {ids}): the balances it signed changed; "
                "see `revbridge recon status`[/]"
            )
    limit = settings.raw.recon.max_open_cases
    if outcome.open_cases > limit:
        err.print(
            f"[red]{counted(outcome.open_cases, 'open case')}, more than the {limit} allowed[/]"
        )
        raise typer.Exit(EXIT_TOO_MANY_OPEN_CASES)


@cases_app.command("list")
@disposing
def cases_list(
    state: Annotated[
        list[str] | None,
        typer.Option(help="open, investigating, resolved, accepted (default: the first two)."),
    ] = None,
    reconciliation: Annotated[str | None, typer.Option(help="ar, payments or revenue.")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Cases, oldest first: open and under investigation unless --state says otherwise."""
    from revbridge.recon.cases import ACTIVE, CaseState
    from revbridge.services.recon import list_cases

    _, engine = open_engine(config)
    cases = list_cases(engine, now=_now(), states=state, reconciliation=reconciliation)
    if as_json:
        print_json([asdict(c) for c in cases])
        return
    if not cases:
        # A bare header read as a table that failed to fill: say what was looked for.
        states = ", ".join(state or [s.value for s in CaseState if s in ACTIVE])
        where = f" in {reconciliation}" if reconciliation else ""
        out.print(f"no cases{where} in state {states}")
        return
    out.print(_cases_table(cases))


def _cases_table(cases: list[Any]) -> Table:
    """The cases as a table in which an amount is never cut: the amount columns are as wide
    as their longest amount and do not wrap; the text columns fold instead."""
    rows = [
        (
            str(c.id),
            c.reconciliation,
            c.kind,
            c.number or c.ref,
            c.state,
            c.currency or "",
            format_money(c.source_amount, c.currency, code=False),
            format_money(c.erp_amount, c.erp_currency, code=c.erp_currency != c.currency),
            c.hub_state or "",
            str(c.days_open),
        )
        for c in cases
    ]
    # Compact (as `dr status`): one space between columns, so that the table fits 80 columns.
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, padding=0)

    def fixed(i: int, header: str, **kw: Any) -> None:
        # As wide as its widest cell, never wrapped or cut: ids, states, amounts, ages.
        width = max([len(header), *(len(r[i]) for r in rows)])
        t.add_column(header, no_wrap=True, min_width=width, **kw)

    fixed(0, "id", justify="right")
    fixed(1, "recon")
    fixed(2, "kind")
    # The document number people know (INV-00042) where the case has one, else the ref.
    t.add_column("doc", overflow="fold", ratio=2)
    fixed(4, "state")
    fixed(5, "cur")
    fixed(6, "Salesforce", justify="right")
    fixed(7, "ERP", justify="right")
    t.add_column("hub", overflow="fold")
    fixed(9, "days", justify="right")
    for row in rows:
        t.add_row(*row)
    return t


_RUN_COLUMNS = (
    ("id", "run"),
    ("scope", "scope"),
    ("period", "period"),
    ("matched", "matched"),
    ("variances", "variances"),
    ("opened", "opened"),
    ("auto_resolved", "auto-resolved"),
    ("open_cases", "open"),
)
# The narrowest a reason column is worth showing at; else the reasons are in --json.
_MIN_REASON = 16


def _runs_table(runs: Sequence[dict[str, Any]], *, width: int) -> Table:
    """The last runs: the period is never cut (a nightly and a month-end run differ by it),
    the headers fold instead; each run's reason when there is room for it."""
    rows = [tuple(str(r[k]) for k, _ in _RUN_COLUMNS) for r in runs]
    # Compact (as the cases table): one space between columns.
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, padding=0)
    used = 0
    for i, (_, header) in enumerate(_RUN_COLUMNS):
        cells = [len(r[i]) for r in rows]
        # A long header folds onto two lines above its numbers ("auto-" / "resolved").
        title = header.replace("-", "-\n")
        widest = max([*cells, *(len(w) for w in title.split("\n"))])
        if header == "period":  # never cut nor folded: it tells the runs apart
            t.add_column(title, no_wrap=True, min_width=widest)
        else:
            t.add_column(title, overflow="fold", justify="left" if i == 1 else "right")
        used += widest + 1
    room = width - used
    show_reason = room >= _MIN_REASON and any(r.get("reason") for r in runs)
    if show_reason:
        t.add_column("reason", overflow="fold", ratio=1)
    for r, row in zip(runs, rows, strict=True):
        t.add_row(*row, *((r.get("reason") or "",) if show_reason else ()))
    return t


@cases_app.command("show")
@disposing
def cases_show(case_id: int, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """One case, both sides, the hub's trace and its history."""
    from revbridge.services.recon import show_case

    _, engine = open_engine(config)
    detail = show_case(engine, case_id, now=_now())
    if as_json:
        print_json(asdict(detail))
        return
    case = detail.case
    for key, value in asdict(case).items():
        if key in _AMOUNT_FIELDS:
            value = format_money(value, case.erp_currency if key == "erp_amount" else case.currency)
        elif isinstance(value, datetime):
            value = human_timestamp(value)
        out.print(f"{key:>16}: {value if value is not None else ''}", overflow="fold")
    out.print("history:")
    for h in detail.history:
        out.print(f"  {human_timestamp(h.at)} {h.actor} {_history_line(h)}", overflow="fold")


_AMOUNT_FIELDS = frozenset({"source_amount", "erp_amount", "difference"})


def _history_line(h: Any) -> str:
    """``opened found by run 1 (...)``, ``investigating open->investigating``: the action
    without its ``recon.case.`` prefix, the state change when there was one, the reason."""
    change = (
        f" {h.from_state}->{h.to_state}"
        if h.from_state and h.to_state and h.from_state != h.to_state
        else ""
    )
    return f"{h.action.removeprefix('recon.case.')}{change}{' ' + h.reason if h.reason else ''}"


@cases_app.command("investigate")
@disposing
def cases_investigate(
    case_id: int,
    note: Annotated[str | None, typer.Option(help="What is being looked at.")] = None,
    config: ConfigOpt = None,
    actor: ActorOpt = None,
) -> None:
    """Take a case: it becomes yours, under investigation."""
    from revbridge.services.recon import investigate_case

    _, engine = open_engine(config)
    c = investigate_case(engine, case_id, actor=_actor(actor), note=note, now=_now())
    out.print(f"case {c.id}: {c.state} ({c.assignee})")


@cases_app.command("resolve")
@disposing
def cases_resolve(
    case_id: int,
    code: Annotated[str, typer.Option(help="corrected_in_erp, corrected_in_salesforce, ...")],
    note: Annotated[str, typer.Option(help="What was done.")],
    config: ConfigOpt = None,
    actor: ActorOpt = None,
) -> None:
    """Close a case as fixed, with a resolution code and a note."""
    from revbridge.services.recon import resolve_case

    _, engine = open_engine(config)
    c = resolve_case(engine, case_id, actor=_actor(actor), code=code, note=note, now=_now())
    out.print(f"case {c.id}: {c.state} ({c.resolution_code})")


@cases_app.command("accept")
@disposing
def cases_accept(
    case_id: int,
    note: Annotated[str, typer.Option(help="Why the difference is accepted.")],
    config: ConfigOpt = None,
    actor: ActorOpt = None,
) -> None:
    """Close a case as a known, explained difference."""
    from revbridge.services.recon import accept_case

    _, engine = open_engine(config)
    c = accept_case(engine, case_id, actor=_actor(actor), note=note, now=_now())
    out.print(f"case {c.id}: {c.state}")


@app.command("signoff")
@disposing
def signoff(
    period: Annotated[str, typer.Option(help="The month, YYYY-MM.")],
    role: Annotated[str, typer.Option("--as", help="preparer, then reviewer (someone else).")],
    override_in_transit: Annotated[
        str | None,
        typer.Option(
            metavar="REASON",
            help="Sign although documents of the month (invoices, credit memos, payments, "
            "revenue entries) are still in transit to the ERP (refused otherwise); the reason "
            "goes to the audit log.",
        ),
    ] = None,
    config: ConfigOpt = None,
    actor: ActorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Sign a month off: first its preparer, then a different reviewer.

    Refused while documents of the month (invoices, credit memos, payments, revenue
    entries) are still on their way to the ERP: how many of each kind, their control totals
    per currency and when they are due are named.
    """
    from revbridge.services.recon import sign_off

    _, engine = open_engine(config)
    s = sign_off(
        engine,
        period=period,
        role=role,
        actor=_actor(actor),
        now=_now(),
        override_in_transit=override_in_transit,
    )
    if as_json:
        print_json(asdict(s))
    else:
        out.print(f"{period}: {s.describe()}")


@app.command("status")
@disposing
def status(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Cases by state and age, the last runs and why they ran, the sign-offs.

    A run's period is never cut; its reason shows where the terminal has room, and always in
    --json.
    """
    from revbridge.services.recon import recon_status

    _, engine = open_engine(config)
    st = recon_status(engine, now=_now())
    if as_json:
        print_json(asdict(st))
        return
    out.print("cases: " + " ".join(f"{k}={v}" for k, v in st.cases_by_state.items()))
    out.print("open by age (days): " + " ".join(f"{k}={v}" for k, v in st.aging.items()))
    out.print(
        "open by reconciliation: "
        + (" ".join(f"{k}={v}" for k, v in st.open_by_reconciliation.items()) or "none")
    )
    out.print(_runs_table(st.recent_runs, width=out.width))
    for s in st.signoffs:
        out.print(f"sign-off {s.period_start:%Y-%m}: {s.describe()}")
