"""The ``revbridge`` command: a thin edge over the service functions."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn
from rich.table import Table

from revbridge.codec import json_schema
from revbridge.config import DEFAULT_FILE, INIT_TEMPLATE, Settings, load_settings
from revbridge.core.events import EventType
from revbridge.core.policy import policy_markdown, policy_rows
from revbridge.errors import RevbridgeError

app = typer.Typer(
    name="revbridge",
    help="The integration hub between Salesforce Revenue Cloud and the ERP of record.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
policy_app = typer.Typer(help="The hybrid routing policy.", no_args_is_help=True)
quarantine_app = typer.Typer(help="What was rejected, and why.", no_args_is_help=True)
db_app = typer.Typer(help="The ledger database.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
app.add_typer(quarantine_app, name="quarantine")
app.add_typer(db_app, name="db")

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="revbridge.toml (else $REVBRIDGE_CONFIG, ./revbridge.toml)"
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]

out = Console()
err = Console(stderr=True)


def _settings(config: Path | None) -> Settings:
    return load_settings(config)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@app.command()
def init(
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented revbridge.toml for the embedded default into the current folder."""
    target = Path.cwd() / DEFAULT_FILE
    if target.exists() and not force:
        err.print(f"[yellow]{target} exists; use --force to overwrite[/]")
        raise typer.Exit(1)
    target.write_text(INIT_TEMPLATE, encoding="utf-8")
    out.print(f"wrote {target}")


@app.command()
def generate(
    events: Annotated[int, typer.Option("--events", "-n", help="How many events.")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same events.")] = 0,
    days: Annotated[int, typer.Option(help="Spread the events over this many days.")] = 30,
    output: Annotated[
        Path | None, typer.Option("--out", "-o", help="File to write (default: stdout).")
    ] = None,
) -> None:
    """Write N realistic, mixed, valid events of all nine types as JSON Lines."""
    from revbridge.generate import write_events

    if output is None:
        write_events(sys.stdout, events, seed=seed, days=days)
        return
    with output.open("w", encoding="utf-8") as fh:
        n = write_events(fh, events, seed=seed, days=days)
    err.print(f"wrote {n} events to {output}")


@app.command()
def ingest(
    file: Annotated[str, typer.Argument(help="JSON Lines envelopes; '-' for stdin.")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write events to the ledger: accepted, duplicate, conflict and rejected counts."""
    from revbridge.services import open_ledger
    from revbridge.services.ingest import ingest_path

    settings = _settings(config)
    ledger = open_ledger(settings)
    show_progress = file != "-" and sys.stderr.isatty() and not as_json
    if show_progress:
        size = Path(file).stat().st_size
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=err,
        ) as progress:
            task = progress.add_task("ingesting", total=size)
            result = ingest_path(
                ledger,
                file,
                policy=settings.policy,
                batch_size=settings.ingest_batch_size,
                on_progress=lambda done: progress.update(task, completed=done),
            )
    else:
        result = ingest_path(
            ledger, file, policy=settings.policy, batch_size=settings.ingest_batch_size
        )
    if as_json:
        _print_json(result.as_dict())
    else:
        table = Table(title=f"ingest {file}")
        for name in ("accepted", "duplicates", "conflicts", "rejected"):
            table.add_column(name, justify="right")
        d = result.as_dict()
        table.add_row(*(str(d[k]) for k in ("accepted", "duplicates", "conflicts", "rejected")))
        out.print(table)
        if result.rejected or result.conflicts:
            out.print("see [bold]revbridge quarantine list[/] for what was set aside and why")
    if not result.ok:
        raise typer.Exit(1)


@app.command()
def status(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Events by type and delivery state, quarantine size, oldest undelivered age."""
    from revbridge.clock import SystemClock
    from revbridge.services import open_ledger

    settings = _settings(config)
    report = open_ledger(settings).status(SystemClock().now())
    if as_json:
        _print_json(report)
        return
    ev = report["events"]
    out.print(f"[bold]{ev['total']}[/] events in the ledger ({settings.store_url})")
    t = Table(title="by type")
    t.add_column("type")
    t.add_column("events", justify="right")
    for k, v in ev["by_type"].items():
        t.add_row(k, str(v))
    out.print(t)
    s = Table(title="by delivery state")
    s.add_column("state")
    s.add_column("deliveries", justify="right")
    for k, v in ev["by_state"].items():
        s.add_row(k, str(v))
    out.print(s)
    age = report["oldest_pending_age_s"]
    out.print(f"quarantine (open): {report['quarantine']}")
    out.print(f"oldest undelivered: {'none' if age is None else f'{age:.0f} s'}")


@app.command()
def schema(
    event_type: Annotated[
        str | None, typer.Argument(help="An event type; all nine when omitted.")
    ] = None,
) -> None:
    """Print the JSON Schema of each event type's envelope."""
    if event_type is None:
        _print_json({t.value: json_schema(t) for t in EventType})
        return
    try:
        chosen = EventType(event_type)
    except ValueError:
        known = ", ".join(t.value for t in EventType)
        err.print(f"[red]unknown event type {event_type!r}[/]; known: {known}")
        raise typer.Exit(2) from None
    _print_json(json_schema(chosen))


@policy_app.command("show")
def policy_show(
    config: ConfigOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="markdown or json")] = "markdown",
) -> None:
    """The documented real-time / batch classification, an auditor's artefact."""
    settings = _settings(config)
    if fmt == "json":
        rows = policy_rows(settings.policy)
        _print_json(
            {
                "events": [
                    {k: r[k] for k in ("type", "pattern", "schedule", "rationale")} for r in rows
                ],
                "cash_handled_in": settings.policy.cash_handled_in.value,
            }
        )
    elif fmt == "markdown":
        sys.stdout.write(policy_markdown(settings.policy) + "\n")
    else:
        err.print("[red]--format must be markdown or json[/]")
        raise typer.Exit(2)


@quarantine_app.command("list")
def quarantine_list(
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    limit: Annotated[int, typer.Option(help="At most this many entries.")] = 100,
) -> None:
    """What was rejected and why, oldest first."""
    from revbridge.services import open_ledger

    rows = open_ledger(_settings(config)).list_quarantine(limit=limit)
    if as_json:
        _print_json({"quarantine": rows})
        return
    t = Table(title=f"quarantine ({len(rows)} open shown)")
    for col in ("id", "origin:line", "code", "reason"):
        t.add_column(col, overflow="fold")
    for r in rows:
        where = f"{r['origin'] or ''}:{r['line_no'] or ''}"
        t.add_row(str(r["id"]), where, r["reason_code"], r["reason"])
    out.print(t)


@app.command()
def demo(
    folder: Annotated[
        Path, typer.Option(help="Working folder for the demo's config and SQLite ledger.")
    ] = Path("demo-run"),
    events: Annotated[int, typer.Option("--events", "-n", help="Events to generate.")] = 5000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
) -> None:
    """The newcomer's first run on the embedded default: generate, ingest, policy, status."""
    from revbridge.clock import SystemClock
    from revbridge.generate import write_events_file
    from revbridge.services import open_ledger
    from revbridge.services.ingest import ingest_path

    folder.mkdir(parents=True, exist_ok=True)
    config = folder / DEFAULT_FILE
    if not config.exists():
        config.write_text(INIT_TEMPLATE, encoding="utf-8")
    settings = load_settings(config)
    out.rule("[bold]revbridge demo[/]: the embedded default (SQLite)")
    out.print(f"config: {config}\nledger: {settings.store_url}")
    source = folder / "events.jsonl"
    n = write_events_file(source, events, seed=seed, days=30)
    out.print(f"1. generated {n} Salesforce and ERP events of all nine types -> {source}")
    ledger = open_ledger(settings)
    with Progress(
        "[progress.description]{task.description}", BarColumn(), DownloadColumn(), console=out
    ) as progress:
        task = progress.add_task("2. ingesting", total=source.stat().st_size)
        result = ingest_path(
            ledger,
            source,
            policy=settings.policy,
            on_progress=lambda done: progress.update(task, completed=done),
        )
    out.print(f"   {result.as_dict()}")
    again = ingest_path(ledger, source, policy=settings.policy)
    out.print(
        f"3. the same file again (a retry): {again.accepted} accepted, "
        f"{again.duplicates} duplicates - nothing is stored twice"
    )
    out.print("4. the routing policy (revbridge policy show):")
    out.print(policy_markdown(settings.policy), markup=False)
    report = ledger.status(SystemClock().now())
    out.print("5. the ledger (revbridge status):")
    t = Table()
    t.add_column("state")
    t.add_column("deliveries", justify="right")
    for k, v in report["events"]["by_state"].items():
        t.add_row(k, str(v))
    out.print(t)
    out.print(
        f"next: cd {folder} && revbridge status; revbridge quarantine list; "
        "revbridge schema invoice.posted"
    )


@db_app.command("upgrade")
def db_upgrade(config: ConfigOpt = None) -> None:
    """Bring the ledger schema to the latest migration."""
    from revbridge.store.db import create_store_engine, upgrade

    settings = _settings(config)
    upgrade(create_store_engine(settings.store_url))
    out.print(f"ledger at {settings.store_url} is up to date")


def main() -> None:
    """Entry point: domain errors become one clear line and exit code 2, never a traceback."""
    try:
        app()
    except RevbridgeError as exc:
        err.print(f"[red]error:[/] {exc}")
        if os.environ.get("REVBRIDGE_DEBUG"):
            raise
        sys.exit(2)
