"""``revbridge dlq show``: one event's trace for a person (a header, the delivery, every
attempt as a table, the payload pretty-printed, the audit trail) or for a machine (JSON, the
payload an object, not an escaped string)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from rich.console import Console, Group
from rich.json import JSON
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from revbridge.core.timestamps import human_timestamp


def _at(value: Any) -> str:
    if isinstance(value, datetime):
        return human_timestamp(value)  # with its zone (decision 0028)
    return "" if value is None else str(value)


def trace_json(trace: dict[str, Any]) -> dict[str, Any]:
    """The trace with the event's payload as a JSON object (it is stored as text)."""
    event = dict(trace["event"])
    if isinstance(event.get("payload"), str):
        event["payload"] = json.loads(event["payload"])
    return {**trace, "event": event}


def parked_note(n: int, *, behind: str = "it") -> str:
    """What waits for a dead letter (``behind``): replaying it releases them."""
    if not n:
        return ""
    which = "1 delivery is" if n == 1 else f"{n} deliveries are"
    return f"{which} parked behind {behind}: replaying releases them (see `revbridge waiting`)"


def render_trace(out: Console, trace: dict[str, Any]) -> None:
    ev, dl = trace["event"], trace["delivery"]
    head = [
        f"[bold]event {ev['id']}[/] {escape(ev['type'])} from {escape(ev['source'])} "
        f"{escape(ev['source_id'])} (version {escape(str(ev['source_version']))})",
        f"subject {escape(ev['subject_ref'] or '-')}, customer {escape(ev['customer_ref'] or '-')}",
        f"occurred {_at(ev['occurred_at'])}, received {_at(ev['received_at'])}",
    ]
    if dl is None:
        head.append("no delivery")
    else:
        n = dl["attempts"]
        head.append(
            f"[bold]delivery[/] to {escape(dl['target'])} ({escape(dl['pattern'])}): "
            f"[bold]{escape(dl['state'])}[/] after {n} attempt{'' if n == 1 else 's'}, "
            f"updated {_at(dl['updated_at'])}"
        )
        if dl["last_error"]:
            head.append(f"last error: {escape(dl['last_error'])}")
        if dl["parked_on"]:
            head.append(f"waits for: {escape(dl['parked_on'])}")
    if trace["target_record"]:
        head.append(f"record in the target: {escape(str(trace['target_record']))}")
    if note := parked_note(trace.get("parked_behind", 0)):
        head.append(f"[yellow]{escape(note)}[/]")
    out.print(Panel(Group(*head), title=f"dlq show {ev['id']}", title_align="left"))

    tries = Table(title="attempts", title_justify="left")
    tries.add_column("#", justify="right")
    tries.add_column("when", no_wrap=True)  # it ended (else began)
    for col in ("worker", "outcome", "error"):
        tries.add_column(col, overflow="fold")
    for a in trace["attempts"]:
        tries.add_row(
            str(a["attempt_no"]),
            _at(a["finished_at"] or a["started_at"]),
            a["worker_id"] or "",
            a["outcome"] or "",
            a["error"] or "",
        )
    if not trace["attempts"]:
        tries.add_row("", "", "", "no attempt yet", "")
    out.print(tries)

    if trace["audit"]:
        trail = Table(title="audit", title_justify="left")
        trail.add_column("at", no_wrap=True)
        for col in ("actor", "action", "reason"):
            trail.add_column(col, overflow="fold")
        for r in trace["audit"]:
            trail.add_row(_at(r["at"]), r["actor"], r["action"], r["reason"] or "")
        out.print(trail)

    payload = ev["payload"]
    text = payload if isinstance(payload, str) else json.dumps(payload)
    out.print("[bold]payload[/]")
    out.print(JSON(text, indent=2))
