"""``revbridge mdm``: the customer master (crosswalk, go-live matching, review queue).

A thin edge: every command calls one function of ``revbridge.services.mdm`` or
``revbridge.services.mdm_sync``.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from revbridge.cli._ledger import disposing, open_engine
from revbridge.cli._options import ConfigOpt, JsonOpt
from revbridge.cli._output import check_erp_before_reading, print_entries, print_json
from revbridge.core.timestamps import json_default
from revbridge.core.wording import counted

app = typer.Typer(
    help="Customer master: ID crosswalk, go-live matching, review queue.", no_args_is_help=True
)
review_app = typer.Typer(
    help="The review queue: conflicts, proposed links, held customers, cycles.",
    no_args_is_help=True,
)
app.add_typer(review_app, name="review")

ActorOpt = Annotated[
    str | None, typer.Option("--actor", help="Who is acting (for the audit log); default $USER.")
]
out = Console()
err = Console(stderr=True)


def _actor(actor: str | None) -> str:
    return actor or os.environ.get("USER") or "operator"


def _now() -> datetime:
    return datetime.now(UTC)


@app.command("lookup")
@disposing
def lookup_cmd(
    any_id: Annotated[
        str, typer.Argument(help="Canonical id, Account id (15/18), ERP number or internal id.")
    ],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every id of one customer, in every ERP and legal entity."""
    from revbridge.services.mdm import lookup

    _, engine = open_engine(config)
    links = lookup(engine, any_id)
    if not links:
        err.print(f"[yellow]no customer has the id {any_id!r}[/]")
        raise typer.Exit(1)
    if as_json:
        print_json({"links": [link.as_dict() for link in links]})
        return
    t = Table(title=f"customer {links[0].canonical_id}")
    for col in ("Account", "ERP", "entity", "number", "internal id", "parent", "name"):
        t.add_column(col, overflow="fold")
    for link in links:
        t.add_row(
            link.sf_account_id or "",
            link.erp_system or "(not linked)",
            link.erp_entity,
            link.erp_customer_number or "",
            link.erp_internal_id or "",
            link.parent_canonical_id or "",
            link.name or "",
        )
    out.print(t)


@app.command("export")
@disposing
def export_cmd(
    out_path: Annotated[Path, typer.Option("--out", "-o", help="The CSV file to write.")],
    config: ConfigOpt = None,
) -> None:
    """The crosswalk as CSV (one row per customer and ERP link)."""
    from revbridge.services.mdm import export_links

    _, engine = open_engine(config)
    n = export_links(engine, out_path)
    out.print(f"{counted(n, 'row')} written to {out_path}")


@app.command("import")
@disposing
def import_cmd(
    path: Annotated[Path, typer.Argument(help="A CSV with the export's columns.")],
    actor: ActorOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Load links from CSV: all rows or none; bad rows are listed with their line number.
    A row's erp_system is the configured ERP's name, as `mdm export` writes it."""
    from revbridge.services.mdm import import_links
    from revbridge.services.targets import erp_system_name

    settings, engine = open_engine(config)
    report = import_links(
        engine, path, erp_systems=(erp_system_name(settings),), now=_now(), actor=_actor(actor)
    )
    if as_json:
        print_json(report.as_dict())
    elif report.errors:
        for line, message in report.errors:
            err.print(f"[red]line {line}:[/] {message}")
        err.print(f"nothing imported: {counted(len(report.errors), 'bad row')} of {report.rows}")
    else:
        out.print(
            f"{counted(report.linked, 'link')} imported from {path}"
            + (
                f"; {report.unchanged} already in the crosswalk as they are"
                if report.unchanged
                else ""
            )
        )
        if report.not_linked:
            n = len(report.not_linked)
            lines = ", ".join(str(line) for line in report.not_linked)
            out.print(
                f"{counted(n, 'row')} without an ERP id left as they are "
                f"(customers not linked yet; {'line' if n == 1 else 'lines'} {lines})"
            )
    if report.errors:
        raise typer.Exit(1)


@app.command("unlink")
@disposing
def unlink_cmd(
    account: Annotated[str, typer.Argument(help="The Salesforce Account id (15 or 18).")],
    reason: Annotated[str, typer.Option(help="Why the link is wrong (audit log).")],
    relink: Annotated[
        str | None,
        typer.Option(help="Link the Account to this ERP customer number instead."),
    ] = None,
    entity: Annotated[str, typer.Option(help="The ERP legal entity, if links have one.")] = "",
    actor: ActorOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Undo a wrong link before the ERP has used it: the pair is recorded as rejected (not
    proposed again), the next upsert creates a new customer, or with --relink links another.
    A link the ERP has used (a document delivered through it) is refused, with what to do."""
    from revbridge.services.mdm import unlink_customer
    from revbridge.services.targets import erp_system_name

    settings, engine = open_engine(config)
    done = unlink_customer(
        engine,
        sf_account_id=account,
        erp_system=erp_system_name(settings),
        erp_entity=entity,
        actor=_actor(actor),
        reason=reason,
        now=_now(),
        relink_to=relink,
    )
    if as_json:
        print_json(done)
        return
    old = done["unlinked_from"]
    was = old["erp_customer_number"] or old["erp_internal_id"]
    out.print(
        f"Account {done['sf_account_id']} unlinked from {done['erp_system']} customer {was} "
        f"(recorded as not the same customer: review {done['review_id']})"
    )
    if done["relinked_to"]:
        out.print(
            f"linked to {done['erp_system']} customer {done['relinked_to']} instead; its "
            "internal id is read from the ERP at the Account's next upsert"
        )
    else:
        out.print(
            "the Account's next upsert creates a new customer in the ERP; its invoices wait "
            "for it (`revbridge waiting`)"
        )


@app.command("match")
@disposing
def match_cmd(
    sf_csv: Annotated[
        Path | None, typer.Option("--sf-csv", help="Accounts: Id,name,tax_id,website,...")
    ] = None,
    erp_csv: Annotated[
        Path | None, typer.Option("--erp-csv", help="ERP customers: number,name,tax_id,...")
    ] = None,
    report: Annotated[Path, typer.Option("--report", help="The CSV report to write.")] = Path(
        "mdm-match.csv"
    ),
    accept_at: Annotated[float | None, typer.Option(help="Link automatically from here.")] = None,
    review_at: Annotated[float | None, typer.Option(help="Queue for review from here.")] = None,
    actor: ActorOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Propose links between existing Accounts and ERP customers (go-live): link the sure
    ones, queue the likely ones for review, write a report. Rows that cannot be matched (a bad
    or repeated id) are listed with file and line; the rest are matched; exit 1."""
    import asyncio

    from revbridge.services import mdm_sync

    settings, engine = open_engine(config)
    if erp_csv is None:  # the ERP's customers are read from it: check it can be first
        check_erp_before_reading(settings)
    m = settings.raw.mdm
    sf_bad: list[mdm_sync.BadRow] = []
    erp_bad: list[mdm_sync.BadRow] = []
    if sf_csv is not None:
        sf, sf_bad = mdm_sync.read_candidates(sf_csv, id_column="Id", salesforce_ids=True)
    elif settings.raw.salesforce.kind == "salesforce":
        from revbridge.services.targets import salesforce_client

        async def accounts() -> list[Any]:
            client = salesforce_client(settings)
            try:
                return await mdm_sync.salesforce_candidates(client)
            finally:
                await client.aclose()

        sf = asyncio.run(accounts())
    else:
        err.print('[red]give --sf-csv, or configure salesforce.kind = "salesforce"[/]')
        raise typer.Exit(2)
    internal: dict[str, str] = {}
    if erp_csv is not None:
        from revbridge.services.targets import erp_system_name

        erp, erp_bad = mdm_sync.read_candidates(erp_csv, id_column="number")
        system = erp_system_name(settings)  # what delivery finds the links under
    else:
        from revbridge.services.targets import build_erp

        port = build_erp(settings, engine)
        erp, internal = asyncio.run(mdm_sync.erp_candidates(port))
        system = port.capabilities.name
    result = mdm_sync.run_match(
        engine,
        sf,
        erp,
        erp_system=system,
        erp_entity=m.erp_entity,
        accept_at=accept_at or m.accept_at,
        review_at=review_at or m.review_at,
        report_path=report,
        erp_internal_ids=internal,
        now=_now(),
        actor=_actor(actor),
        sf_bad_rows=sf_bad,
        erp_bad_rows=erp_bad,
    )
    if as_json:
        print_json(result.as_dict() | {"report": str(report)})
    else:
        t = Table(title=f"proposed links ({len(result.proposals)}), report in {report}")
        for col in ("status", "score", "Account", "ERP customer", "evidence"):
            t.add_column(col, overflow="fold")
        for p, status in result.proposals[:50]:
            t.add_row(status, f"{p.score:.3f}", p.sf_id, p.erp_id, p.evidence)
        out.print(t)
        out.print(result.summary(), highlight=False)
        for bad in result.bad_rows:
            err.print(f"[red]{escape(str(bad))}[/]", highlight=False)
        if result.bad_rows:
            err.print(
                f"{counted(len(result.bad_rows), 'row')} not matched: fix them and run again "
                "(the Accounts linked now are left out)",
                highlight=False,
            )
    if result.bad_rows:
        raise typer.Exit(1)


@review_app.command("list")
@disposing
def review_list(
    state: Annotated[str, typer.Option(help="open, approved, rejected, or all.")] = "open",
    kind: Annotated[str | None, typer.Option(help="conflict, match, held or cycle.")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Review items, oldest first."""
    from revbridge.services.mdm import list_reviews

    _, engine = open_engine(config)
    rows = list_reviews(engine, state=None if state == "all" else state, kind=kind)
    if as_json:
        print_json({"reviews": rows})
        return
    # One line per item, the why and both values whole beneath it: JSON folded into table
    # cells at 80 columns could not be read.
    header = ("id", "kind", "state", "Account", "ERP", "attribute")
    print_entries(out, f"review items ({len(rows)})", header, [_review_entry(r) for r in rows])


def _review_entry(r: dict[str, Any]) -> tuple[tuple[str, ...], str]:
    """An item's line of short fields and, under it, why and each side's value (a
    proposal's: the names)."""
    keys = ("sf_account_id", "erp_customer_number", "attribute")
    fields = (str(r["id"]), r["kind"], r["state"], *(r[k] or "-" for k in keys))
    sides = [
        f"{side}: {_shown(r[key])}"
        for side, key in (("Salesforce", "sf_value"), ("ERP", "erp_value"))
        if r[key] is not None
    ]
    if r["kind"] == "cycle" or not sides:
        return fields, str(r["message"])  # the cycle, named in full
    winner = f" ({r['winner']} wins)" if r.get("winner") else ""
    return fields, f"{r['message']}. {'; '.join(sides)}{winner}"


def _shown(value: Any) -> str:
    if isinstance(value, dict) and "name" in value:
        return str(value["name"])  # a proposal: the ERP's ids are in `review show`
    if isinstance(value, str):
        return value
    return json.dumps(value, default=json_default)


@review_app.command("show")
@disposing
def review_show(review_id: int, config: ConfigOpt = None) -> None:
    """One item with both values and its audit trail."""
    from revbridge.services.mdm import show_review

    _, engine = open_engine(config)
    print_json(show_review(engine, review_id))


def _decide(
    review_id: int, approve: bool, note: str, actor: str | None, config: Path | None
) -> None:
    from revbridge.services.mdm import decide_review

    _, engine = open_engine(config)
    result = decide_review(
        engine,
        review_id,
        approve=approve,
        actor=_actor(actor),
        now=_now(),
        note=note,
    )
    released = result["released"]
    back = counted(released, "held delivery", "held deliveries")
    out.print(
        f"review {review_id} {result['state']}" + (f"; {back} back in line" if released else "")
    )


@review_app.command("approve")
@disposing
def review_approve(
    review_id: int,
    note: Annotated[str, typer.Option(help="Why (goes to the audit log).")] = "",
    actor: ActorOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Approve: link a proposed match, accept a flagged conflict's outcome."""
    _decide(review_id, True, note, actor, config)


@review_app.command("reject")
@disposing
def review_reject(
    review_id: int,
    note: Annotated[str, typer.Option(help="Why (goes to the audit log).")] = "",
    actor: ActorOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Reject: not the same customer (a held one is then created anew), or dismiss."""
    _decide(review_id, False, note, actor, config)
