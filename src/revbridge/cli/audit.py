"""``revbridge audit``: the audit log, newest first (pauses, drains, replays, sign-offs, the
post-outage reconciliation's runs). A thin edge over ``revbridge.services.audit``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from revbridge.cli._ledger import disposing, open_engine
from revbridge.cli._options import ConfigOpt, JsonOpt
from revbridge.cli._output import print_entries, print_json
from revbridge.core.timestamps import human_timestamp

out = Console()


@disposing
def audit(
    action: Annotated[
        str | None,
        typer.Option(help="Only this action (pause, resume, drain_started, drain, replay, ...)."),
    ] = None,
    entity_type: Annotated[
        str | None, typer.Option("--entity-type", help="Only this kind of entity (target, ...).")
    ] = None,
    entity: Annotated[
        str | None, typer.Option("--entity", help="Only this entity's id (erp, an event id, ...).")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            help="Only from then on: a time ago (30min, 2h, 7d) or an ISO 8601 date or time "
            "(2026-11-03, 2026-11-03T08:00+01:00; without a zone, UTC).",
        ),
    ] = None,
    limit: Annotated[
        int,
        typer.Option(
            min=1,
            help="At most this many, newest first; the title (and `total` in --json) says "
            "how many match in all.",
        ),
    ] = 50,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The audit log, newest first: who did what to which entity, when (with its zone), from
    which state to which, and why. Pauses and resumes, `drain_started` and `drain`, replays,
    sign-offs and the post-outage reconciliation's runs are all here."""
    from revbridge.clock import SystemClock
    from revbridge.services.audit import parse_since, read_audit

    _, engine = open_engine(config)
    when = parse_since(since, SystemClock().now()) if since is not None else None
    rows, total = read_audit(
        engine, action=action, entity_type=entity_type, entity_id=entity, since=when, limit=limit
    )
    if as_json:
        print_json({"audit": rows, "total": total})
        return
    shown = f"showing {len(rows)} of {total}" if len(rows) < total else str(total)
    entries = []
    for r in rows:
        change = " → ".join(s for s in (r["from_state"], r["to_state"]) if s)
        entity_ref = f"{r['entity_type']} {r['entity_id']}" if r["entity_id"] else r["entity_type"]
        said = ": ".join(s for s in (change, r["reason"]) if s)
        entries.append(((human_timestamp(r["at"]), r["actor"], r["action"], entity_ref), said))
    print_entries(
        out,
        f"audit log, newest first ({shown})",
        ("at", "actor", "action", "entity"),
        entries,
    )
    if len(rows) < total:
        out.print(f"{total - len(rows)} more: raise --limit or narrow the filters to see them")
