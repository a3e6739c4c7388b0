"""The ``revbridge`` command: a thin edge over the service functions."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn
from rich.table import Table

from revbridge.cli._options import ConfigOpt, JsonOpt
from revbridge.cli._output import (
    check_erp_before_work,
    print_entries,
    print_json,
    print_totals,
)
from revbridge.codec import json_schema
from revbridge.config import DEFAULT_FILE, INIT_TEMPLATE, Settings, load_settings
from revbridge.core.durations import human_duration
from revbridge.core.events import EventType
from revbridge.core.policy import policy_markdown, policy_rows
from revbridge.core.timestamps import human_timestamp
from revbridge.core.wording import counted
from revbridge.errors import DeliveryError, RevbridgeError, UsageError
from revbridge.generate import MAX_SEED

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
dlq_app = typer.Typer(help="Dead letters: list, show, replay.", no_args_is_help=True)
dr_app = typer.Typer(
    help="Extended ERP downtime: status, pause, resume, drain.", no_args_is_help=True
)
sandbox_app = typer.Typer(
    help="Protocol-faithful sandboxes of the external systems.", no_args_is_help=True
)
erp_app = typer.Typer(
    help="The configured ERP (check) and managed local ERP instances.", no_args_is_help=True
)
batch_app = typer.Typer(help="Batch classes: run one now.", no_args_is_help=True)
app.add_typer(batch_app, name="batch")
app.add_typer(dlq_app, name="dlq")
app.add_typer(dr_app, name="dr")
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(erp_app, name="erp")
from revbridge.cli.mdm import app as mdm_app  # noqa: E402  (crosswalk, match, review)

app.add_typer(mdm_app, name="mdm")
from revbridge.cli.recon import app as recon_app  # noqa: E402  (recon run, cases, signoff)

app.add_typer(recon_app, name="recon")


def _register_subsystems() -> None:
    """Mount the per-system commands; their modules import nothing heavy at import time."""
    from revbridge.netsuite.sandbox.cli import netsuite_command
    from revbridge.salesforce.sandbox.cli import salesforce_command
    from revbridge.tryton.cli import app as tryton_app

    sandbox_app.command("netsuite", help="Run the NetSuite SuiteTalk REST sandbox.")(
        netsuite_command
    )
    sandbox_app.command("salesforce", help="Run the Salesforce org sandbox.")(salesforce_command)
    erp_app.add_typer(tryton_app, name="tryton", help="The managed local Tryton instance.")
    from revbridge.cli.demo import demo

    app.command("demo")(demo)


_register_subsystems()
from revbridge.cli import serve as _serve  # noqa: E402  (serve and token commands)

app.command("serve")(_serve.serve)
from revbridge.cli.audit import audit as _audit_command  # noqa: E402  (the audit log)

app.command("audit")(_audit_command)
app.add_typer(_serve.token_app, name="token")
ActorOpt = Annotated[
    str | None, typer.Option("--actor", help="Who is acting (for the audit log); default $USER.")
]


def _actor(actor: str | None) -> str:
    return actor or os.environ.get("USER") or "operator"


def _one_or_all(
    command: str,
    item_id: int | None,
    every: bool,
    option: str,
    value: str | None,
    *,
    noun: str,
    one: str = "replays",
) -> None:
    """An id or --all, one of the two; a filter (``option``) goes with --all only: an id
    names one item whatever its kind, and a filter on it would only hide it."""
    if (item_id is None) == (not every):
        err.print(f"[red]give an {noun} id or --all[/]")
        raise typer.Exit(2)
    if item_id is not None and value is not None:
        err.print(
            f"[red]{option} goes with --all, not with an {noun} id[/]: "
            f"`revbridge {command} {item_id}` {one} that one, "
            f"`revbridge {command} --all {option} {value}` every {value}"
        )
        raise typer.Exit(2)


def _reason_given(reason: str, example: str) -> str:
    """The reason an audited command needs, stripped; none is refused with an example."""
    if not reason.strip():
        err.print(
            f'[red]--reason is required[/]: say why, for the audit log (e.g. --reason "{example}")'
        )
        raise typer.Exit(2)
    return reason.strip()


out = Console()
err = Console(stderr=True)


def _settings(config: Path | None, *, required: bool = True) -> Settings:
    """The configuration a command works on; a command run where there is none is refused
    rather than run on a new, empty ledger of its own (``required=False``: a read-only look
    at the built-in defaults, such as ``policy show``)."""
    return load_settings(config, required=required)


@app.command()
def init(
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
    erp: Annotated[
        str, typer.Option(help="fake (in-process), tryton (managed local Tryton) or netsuite.")
    ] = "fake",
) -> None:
    """Write a commented revbridge.toml for the embedded default into the current folder."""
    if erp not in ("fake", "tryton", "netsuite"):
        err.print("[red]--erp must be fake, tryton or netsuite[/]")
        raise typer.Exit(2)
    target = Path.cwd() / DEFAULT_FILE
    if target.exists() and not force:
        err.print(f"[yellow]{target} exists; use --force to overwrite[/]")
        raise typer.Exit(1)
    text = INIT_TEMPLATE.replace(
        'kind = "fake"\nstate_file = "fake-erp.json"',
        f'kind = "{erp}"\nstate_file = "fake-erp.json"',
        1,
    )
    target.write_text(text, encoding="utf-8")
    out.print(f"wrote {target}")
    if erp == "tryton":
        out.print("the worker starts the managed Tryton (.revbridge/tryton) on first use")
    elif erp == "netsuite":
        out.print("set NETSUITE_ACCOUNT_ID and the NETSUITE_* TBA variables before `worker`")


@app.command()
def generate(
    events: Annotated[int, typer.Option("--events", "-n", min=1, help="How many events.")] = 1000,
    seed: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=MAX_SEED,
            help="Random seed: same seed, same events (ids included). Default: a fresh seed "
            "per run, printed on stderr, so every run makes new records.",
        ),
    ] = None,
    days: Annotated[int, typer.Option(help="Spread the events over this many days.")] = 30,
    output: Annotated[
        Path | None, typer.Option("--out", "-o", help="File to write (default: stdout).")
    ] = None,
    into_salesforce: Annotated[
        bool,
        typer.Option(
            "--into-salesforce",
            help="Post the Salesforce-side events into the configured fake org "
            '(salesforce.kind = "fake") instead of writing them; `revbridge capture '
            "salesforce` then reads them from its change feed.",
        ),
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Write N realistic, mixed, valid events of all nine types as JSON Lines.

    Every record id and number carries the seed: each run (a fresh seed) makes new records,
    never other versions of an earlier run's. `--seed` repeats a data set exactly; ingesting
    it again gives duplicates, as the same records should."""
    from revbridge.generate import generate_events, new_seed, write_events

    if into_salesforce and output is not None:
        err.print("[red]error:[/] --into-salesforce posts to the fake org; it writes no --out file")
        raise typer.Exit(2)
    if seed is None:
        seed = new_seed()
        err.print(f"seed {seed} (--seed {seed} makes the same events again)")
    if into_salesforce:
        from revbridge.services.fake_org import post_to_fake_org

        settings = _settings(config)
        try:
            posted = post_to_fake_org(settings, generate_events(events, seed=seed, days=days))
        except UsageError as exc:
            err.print(f"[red]{exc}[/]")
            raise typer.Exit(2) from None
        err.print(
            f"posted {posted.posted} events to the fake org's change feed; "
            f"{posted.erp_side} happen in the ERP and were left out"
        )
        return
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
    workers: Annotated[
        int, typer.Option(help="Validate in this many processes (big files, idle cores).")
    ] = 0,
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
                workers=workers,
            )
    else:
        result = ingest_path(
            ledger,
            file,
            policy=settings.policy,
            batch_size=settings.ingest_batch_size,
            workers=workers,
        )
    if as_json:
        print_json(result.as_dict())
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
    """Events by type and delivery state, quarantine size, oldest undelivered age.

    States as in `dr status`: pending, parked and in flight are due or overdue (the oldest age
    counts only these); scheduled is the batch deliveries waiting for their class's run (not
    late, not in pending); held is what waits for a person's review. Final: delivered (sent),
    superseded (an older version of a customer or credit status that a newer one, already in
    the target, replaced before it was sent: no call), dead-lettered. Each accepted event has
    one delivery: accepted = delivered + superseded + dead-lettered + the rest."""
    from revbridge.clock import SystemClock
    from revbridge.services import open_ledger
    from revbridge.services.cost import cost_for
    from revbridge.services.serve import capture_states

    settings = _settings(config)
    ledger = open_ledger(settings)
    now = SystemClock().now()
    report = ledger.status(now)
    # The configured budgets and rate limits: the "real-time everywhere" warnings.
    report["api"] = cost_for(ledger.engine, settings, now)
    report["capture"] = capture_states(settings, ledger.engine, now)
    if as_json:
        print_json(report)
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
    out.print(
        "pending, parked, in flight: due or overdue; scheduled: batch deliveries waiting for "
        "their class's run (not late); held: waiting for a person's review; superseded: an "
        "older version of a record replaced by a newer one before it was sent (no call)"
    )
    st = ev["by_state"]
    final = ("delivered", "superseded", "dead_letter")
    on_their_way = sum(n for k, n in st.items() if k not in final)
    out.print(
        f"accepted {ev['total']} = delivered {st['delivered']} + superseded {st['superseded']}"
        f" + dead-lettered {st['dead_letter']} + on their way {on_their_way}"
    )
    age = report["oldest_pending_age_s"]
    api = report["api"]
    for target_name, n in api["calls_today"].items():
        budget = api["daily_budget"].get(target_name)
        out.print(f"API calls today to {target_name}: {n}" + (f" of {budget}" if budget else ""))
    for w in api["warnings"]:
        out.print(f"[yellow]warning:[/] {w}")
    out.print(f"quarantine (open): {report['quarantine']}")
    out.print(
        "oldest undelivered (due or overdue): " + ("none" if age is None else human_duration(age))
    )
    for c in report["capture"]:
        ok = c["last_ok_at"]
        last = f"last success {human_timestamp(ok)}" if ok else "no success yet"
        if c["state"] in ("ok", "paused"):
            out.print(f"capture {c['stream']}: {c['state']}, {last}", markup=False, highlight=False)
        elif c["state"] == "stale":
            out.print(f"[yellow]capture {escape(c['stream'])}: stale[/], {escape(last)}")
        else:
            out.print(
                f"[yellow]capture {escape(c['stream'])}: failing since "
                f"{human_timestamp(c['failing_since'])}[/] ({escape(last)}): "
                f"{escape(c['last_error'] or '')}",
                soft_wrap=True,
            )


@app.command()
def schema(
    event_type: Annotated[
        str | None, typer.Argument(help="An event type; all nine when omitted.")
    ] = None,
) -> None:
    """Print the JSON Schema of each event type's envelope."""
    if event_type is None:
        print_json({t.value: json_schema(t) for t in EventType})
        return
    try:
        chosen = EventType(event_type)
    except ValueError:
        known = ", ".join(t.value for t in EventType)
        err.print(f"[red]unknown event type {event_type!r}[/]; known: {known}")
        raise typer.Exit(2) from None
    print_json(json_schema(chosen))


@policy_app.command("show")
def policy_show(
    config: ConfigOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="markdown or json")] = "markdown",
) -> None:
    """The documented real-time / batch classification, an auditor's artefact."""
    settings = _settings(config, required=False)  # without one: the built-in defaults
    if fmt == "json":
        rows = policy_rows(settings.policy)
        print_json(
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


@app.command()
def waiting(
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    limit: Annotated[int, typer.Option(min=1, help="At most this many entries.")] = 200,
) -> None:
    """Deliveries waiting, not failing: parked until a record they need reaches the target
    (`invoice:...`, `customer:...`), or held for a person's decision (`review:N`, see
    `revbridge mdm review list`). Oldest event first."""
    from revbridge.clock import SystemClock
    from revbridge.core.durations import human_duration
    from revbridge.services import open_ledger
    from revbridge.services.serve import parked

    rows = parked(open_ledger(_settings(config)).engine, limit=limit)
    if as_json:
        print_json({"waiting": rows})
        return
    now = SystemClock().now()
    # What each waits for under its line: two record references and a type in one table
    # row folded every column into pieces at 80 columns.
    print_entries(
        out,
        f"waiting ({len(rows)} shown)",
        ("event", "type", "subject", "target", "state", "since"),
        [
            (
                (
                    str(r["id"]),
                    r["type"],
                    r["subject_ref"],
                    r["target"],
                    r["state"],
                    human_duration(now - r["updated_at"]),
                ),
                f"waits for {r['parked_on']}" if r["parked_on"] else "",
            )
            for r in rows
        ],
    )


@quarantine_app.command("list")
def quarantine_list(
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    limit: Annotated[int, typer.Option(help="At most this many entries.")] = 100,
    state: Annotated[
        str,
        typer.Option("--state", help="open (waiting for a person), resolved, discarded, or all."),
    ] = "open",
) -> None:
    """What was rejected and why, oldest first: the open entries, unless --state says."""
    from revbridge.services import open_ledger
    from revbridge.services.quarantine import STATES

    if state not in (*STATES, "all"):
        err.print(f"[red]--state {state}[/]: one of {', '.join(STATES)}, all")
        raise typer.Exit(2)
    rows = open_ledger(_settings(config)).list_quarantine(
        limit=limit, status=None if state == "all" else state
    )
    if as_json:
        print_json({"quarantine": rows})
        return
    t = Table(title=f"quarantine ({len(rows)} {state} shown)")
    for col in ("id", "origin:line", "code", "reason"):
        t.add_column(col, overflow="fold")
    if state != "open":
        t.add_column("state")
    for r in rows:
        where = f"{r['origin'] or ''}:{r['line_no'] or ''}"
        cells = [str(r["id"]), where, r["reason_code"], r["reason"]]
        t.add_row(*cells, *([r["status"]] if state != "open" else []))
    out.print(t)
    if rows and state == "open":
        out.print("`revbridge quarantine show ID` for the raw input; `resolve` when dealt with")


@quarantine_app.command("show")
def quarantine_show(
    entry_id: Annotated[int, typer.Argument(help="The entry's id (`quarantine list`).")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One entry in full: the raw input as it came, where from (origin, line), why it was
    set aside, and its state (who closed it, when, why)."""
    from revbridge.services import open_ledger
    from revbridge.services.quarantine import entry

    row = entry(open_ledger(_settings(config)).engine, entry_id)
    if as_json:
        print_json(row)
        return
    fields = [
        ("entry", str(row["id"])),
        ("state", row["status"]),
        ("received", f"{row['created_at']:%Y-%m-%d %H:%M:%S} UTC"),
        ("from", f"{row['origin'] or '-'}, line {row['line_no'] or '-'}"),
        ("type", row["event_type"] or "-"),
        ("code", row["reason_code"]),
        ("why", row["reason"]),
    ]
    if row["idempotency_key"]:
        fields.append(("key", row["idempotency_key"]))
    if row["original_event_id"] is not None:
        fields.append(("kept", f"event {row['original_event_id']} (`dlq show` traces it)"))
    if row["status"] != "open":
        when = f"{row['resolved_at']:%Y-%m-%d %H:%M:%S} UTC"
        fields.append(("closed", f"{row['status']} by {row['resolved_by']} at {when}"))
        fields.append(("note", row["resolution_note"] or ""))
    for name, value in fields:
        out.print(f"[bold]{name:>9}[/] {escape(value)}")
    out.print("[bold]      raw[/]")
    out.print(row["raw"], markup=False, highlight=False, soft_wrap=True)


@quarantine_app.command("resolve")
def quarantine_resolve(
    entry_id: Annotated[int | None, typer.Argument(help="One entry's id.")] = None,
    resolve_all: Annotated[bool, typer.Option("--all", help="Every open entry.")] = False,
    code: Annotated[
        str | None,
        typer.Option("--code", help="With --all only: the open entries of one reason code."),
    ] = None,
    discard: Annotated[
        bool,
        typer.Option(
            "--discard", help="Nothing to do (a test line, noise): discarded, not resolved."
        ),
    ] = False,
    reason: Annotated[
        str, typer.Option(help="Why (goes to the audit log); required, as in the API.")
    ] = "",
    actor: ActorOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Close open entries once dealt with; each is audited with who, when and why.

    A line the mapping got wrong is fixed at its source and ingested (or captured) again as
    usual; then resolve its entry here. An idempotency conflict is resolved once the kept
    original is confirmed right (`quarantine show ID` names it). --discard closes an entry
    that needs nothing. Closing changes no event and delivers nothing; the raw input stays."""
    from revbridge.clock import SystemClock
    from revbridge.services import open_ledger
    from revbridge.services.quarantine import Outcome, close_entries

    _one_or_all(
        "quarantine resolve", entry_id, resolve_all, "--code", code, noun="entry", one="closes"
    )
    why = _reason_given(reason, "fixed the currency in the source file and ingested it again")
    outcome: Outcome = "discarded" if discard else "resolved"
    n = close_entries(
        open_ledger(_settings(config)).engine,
        now=SystemClock().now(),
        actor=_actor(actor),
        reason=why,
        outcome=outcome,
        entry_id=entry_id,
        reason_code=code,
    )
    out.print(f"{outcome} {n} quarantine entr{'y' if n == 1 else 'ies'}")


_SHORT_HOLD = timedelta(seconds=10)  # a 429's pause `worker --until-idle` waits out
_SHORT_HOLD_ROUNDS = 6


@erp_app.command("check")
def erp_check(config: ConfigOpt = None) -> None:
    """Reach the configured ERP once and check its settings. For Tryton: the URL, the
    database, the login (its password from the environment) and every account code of
    [erp.tryton]; for NetSuite: one read with the NETSUITE_* token. A wrong one exits 2,
    naming the setting; nothing is written."""
    import asyncio

    from revbridge.services.targets import check_erp

    settings = _settings(config)
    found = asyncio.run(check_erp(settings))
    out.print(found or f"erp.kind is {settings.raw.erp.kind!r}: nothing to check")


@app.command()
def worker(
    config: ConfigOpt = None,
    until_idle: Annotated[
        bool, typer.Option("--until-idle", help="Deliver everything due now, then exit.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Deliver due events to the ERP and to Salesforce (real-time classes)."""
    import asyncio
    import signal

    from revbridge.services import open_ledger
    from revbridge.services.targets import build_worker

    settings = _settings(config)
    ledger = open_ledger(settings)
    check_erp_before_work(settings, err)
    w = build_worker(settings, ledger.engine)

    async def run() -> dict[str, int]:
        try:
            if until_idle:
                from revbridge.services.drain import left_waiting

                stats = await w.run_until_idle()
                # A short 429 pause (a Retry-After of seconds) is waited out: "until idle"
                # is until nothing is left that may go now or in a moment.
                for _ in range(_SHORT_HOLD_ROUNDS):
                    holds = [h for _, _, _, h in left_waiting(w) if h is not None]
                    if not holds or max(holds) > _SHORT_HOLD:
                        break
                    await asyncio.sleep(max(holds).total_seconds())
                    stats = await w.run_until_idle()
                for name, due, why, _ in left_waiting(w):
                    err.print(
                        f"[yellow]left:[/] {due} due for {name} not delivered: "
                        f"{why or 'see `revbridge dr status`'}"
                    )
            else:
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, stop.set)
                err.print(f"worker {w.worker_id} running; Ctrl-C to stop")
                capturing = asyncio.create_task(_capture_loop(settings, ledger, w, stop))
                from revbridge.services.recon import recon_schedule_loop

                recon = asyncio.create_task(recon_schedule_loop(settings, ledger.engine, stop))
                stats = await w.run_forever(stop)
                capturing.cancel()
                recon.cancel()
        finally:
            for t in w.targets.values():
                await t.port.close()
        return stats.as_dict()

    stats = asyncio.run(run())
    if as_json:
        print_json(stats)
    else:
        print_totals(out, stats)


capture_app = typer.Typer(
    help="Capture changes made in the ERP or in Salesforce.", no_args_is_help=True
)
app.add_typer(capture_app, name="capture")


@capture_app.command("erp")
def capture_erp(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Read what changed in the ERP since the last watermark into the ledger (one round: the
    worker's capture loop reads on every erp.capture_interval_s)."""
    from revbridge.services import open_ledger
    from revbridge.services.capture import source_for
    from revbridge.services.targets import build_erp

    settings = _settings(config)
    ledger = open_ledger(settings)
    check_erp_before_work(settings, err)
    erp = build_erp(settings)
    source = source_for(erp)
    if source is None:
        err.print(f"[yellow]the {settings.raw.erp.kind} ERP has no change capture[/]")
        raise typer.Exit(1)
    _capture(settings, ledger, source, erp.close, as_json, rounds=1)


@capture_app.command("salesforce")
def capture_salesforce(
    config: ConfigOpt = None,
    mode: Annotated[
        str, typer.Option(help="poll (SystemModstamp) or stream (change events)")
    ] = "poll",
    as_json: JsonOpt = False,
) -> None:
    """Capture Salesforce billing changes into the ledger (watermark or replay id persisted).

    With salesforce.kind = "fake", reads the fake org's change feed (what
    `revbridge generate --into-salesforce` posted) until it is current."""
    import asyncio
    from dataclasses import asdict

    from revbridge.clock import SystemClock
    from revbridge.engine.queue import DeliveryQueue
    from revbridge.salesforce.capture import CaptureSettings, SalesforceCapture
    from revbridge.services import open_ledger
    from revbridge.services.capture import ORG_STREAM, record_capture, record_capture_failure
    from revbridge.services.mdm_sync import salesforce_echo_filter
    from revbridge.services.targets import capture_profile, echo_fields, salesforce_client

    settings = _settings(config)
    sf = settings.raw.salesforce
    if mode not in ("poll", "stream"):
        err.print(f"[red]error:[/] --mode {mode!r}: poll or stream")
        raise typer.Exit(2)
    if sf.kind == "fake" and mode == "stream":
        err.print(
            "[red]error:[/] --mode stream reads change events from a real org; with "
            'salesforce.kind = "fake" the capture polls the fake org\'s change feed '
            "(--mode poll)"
        )
        raise typer.Exit(2)
    ledger = open_ledger(settings)
    if sf.kind == "fake":
        _capture_fake_org(settings, ledger, as_json)
        return
    profile = capture_profile(settings)

    async def run() -> dict[str, Any]:
        client = salesforce_client(settings)
        try:
            capture = SalesforceCapture(
                client,
                ledger,
                settings.policy,
                CaptureSettings(
                    profile=profile,
                    integration_user_id=sf.integration_user_id,
                    echo_fields=echo_fields(settings),
                ),
                envelope_filter=salesforce_echo_filter(settings, ledger.engine),
            )
            try:
                report = await (capture.poll() if mode == "poll" else capture.stream())
            except Exception as exc:
                record_capture_failure(ledger.engine, ORG_STREAM, SystemClock().now(), exc)
                raise
            record_capture(ledger.engine, ORG_STREAM, SystemClock().now())
            return asdict(report)
        finally:
            await client.aclose()
            # Against the org's daily API limit, beside the deliveries' write-backs.
            DeliveryQueue(ledger.engine).add_api_calls(
                SystemClock().now(), {("salesforce", "capture", mode): client.requests}
            )

    result = asyncio.run(run())
    if as_json:
        print_json(result)
    else:
        print_totals(out, {k: v for k, v in result.items() if k != "watermarks"})


def _capture_fake_org(settings: Settings, ledger: Any, as_json: bool) -> None:
    from revbridge.services.targets import fake_salesforce

    org = fake_salesforce(settings)
    _capture(settings, ledger, org, org.close, as_json, rounds=10_000)


def _capture(
    settings: Settings,
    ledger: Any,
    source: Any,
    close: Callable[[], Awaitable[None]],
    as_json: bool,
    *,
    rounds: int,
) -> None:
    """Capture from ``source``, at most ``rounds`` rounds (fewer once it is current: each
    round is a call); print their totals. A system that does not answer is one line, exit
    2; a paused one is skipped, exit 1."""
    import asyncio

    from revbridge.services.capture import capture_until_current
    from revbridge.services.mdm_sync import ownership_from

    async def run() -> list[Any]:
        try:
            return await capture_until_current(
                source,
                ledger,
                settings.policy,
                ownership=ownership_from(settings),
                max_rounds=rounds,
            )
        finally:
            await close()

    try:
        done = asyncio.run(run())
    except DeliveryError as exc:  # it did not answer: nothing stored, watermark unchanged
        why = f"capture from {source.name} failed, nothing read: {exc}"
        err.print(f"[red]error:[/] {escape(why)}", soft_wrap=True)
        raise typer.Exit(2) from None
    except Exception as exc:
        # What it sent could not be read or stored (a watermark that is not one, a record
        # the ledger refused): as the worker's capture loop does, say which system, not a
        # bare message or a traceback. REVBRIDGE_DEBUG shows the traceback.
        if os.environ.get("REVBRIDGE_DEBUG"):
            raise
        said = str(exc) if isinstance(exc, RevbridgeError) else f"{type(exc).__name__}: {exc}"
        why = f"capture from {source.name} failed: {said}"
        err.print(f"[red]error:[/] {escape(why)}", soft_wrap=True)
        raise typer.Exit(2) from None
    last = done[-1]
    total = {
        "stream": last.stream,
        "rounds": len(done),
        "read": sum(r.read for r in done),
        "echoes": sum(r.echoes for r in done),
        "accepted": sum(r.ingest.accepted for r in done),
        "duplicates": sum(r.ingest.duplicates for r in done),
        "conflicts": sum(r.ingest.conflicts for r in done),
        "rejected": sum(r.ingest.rejected for r in done),
        "watermark": last.watermark,
        **({"skipped": last.skipped} if last.skipped else {}),
    }
    if as_json:
        print_json(total)
    else:
        print_totals(out, total)
    if last.skipped:
        raise typer.Exit(1)


@batch_app.command("run")
def batch_run(
    config: ConfigOpt = None,
    event_class: Annotated[
        str | None, typer.Option("--class", help="One batch class (event type); default all.")
    ] = None,
    reason: Annotated[str, typer.Option(help="Why, for the audit log.")] = "run now",
    actor: Annotated[str | None, typer.Option(help="Who (default $USER).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run batch classes now, ahead of their schedule: file, manifest, submit, outcomes.

    A class whose target is paused, down (circuit open) or throttled is skipped, with why.
    Exits 1 when a class was skipped or an item failed or must be retried (a failed
    submission retries all of its items), so that a scheduler sees it.
    """
    import asyncio

    from revbridge.clock import SystemClock
    from revbridge.core.policy import Pattern
    from revbridge.services import open_ledger
    from revbridge.services.operations import run_batches_now

    settings = _settings(config)
    classes = [
        p.type.value for p in settings.policy.events if p.pattern is Pattern.BATCH and p.enabled
    ]
    if event_class is not None:
        if event_class not in {t.value for t in EventType}:
            err.print(
                f"[red]error:[/] --class {event_class!r}: not an event type; the batch "
                f"classes of this policy: {', '.join(classes) or 'none'}"
            )
            raise typer.Exit(2)
        classes = [event_class]
    reports = asyncio.run(
        run_batches_now(
            settings,
            open_ledger(settings).engine,
            classes,
            now=SystemClock().now(),
            actor=_actor(actor),
            reason=reason,
        )
    )
    if as_json:
        print_json({"batches": [r.as_dict() for r in reports]})
    else:
        from revbridge.engine.batch import BATCH_COUNTS as counts

        # The file's path (or why the class was skipped) under its class's line: a path
        # folded into a table column at 80 columns could not be copied.
        print_entries(
            out,
            "batch run",
            ("class", *counts),
            [
                (
                    (r.event_type, *(str(getattr(r, k)) for k in counts)),
                    r.detail(),
                )
                for r in reports
            ],
        )
        for r in reports:
            if r.failed or r.retried:
                why = (
                    r.error or "each item's last error: `revbridge dlq list`, `revbridge dr status`"
                )
                err.print(
                    f"[yellow]{r.event_type}:[/] {r.failed} failed, {r.retried} to retry: {why}"
                )
    if any(r.skipped or r.failed or r.retried for r in reports):
        raise typer.Exit(1)


async def _capture_loop(settings: Settings, ledger: Any, w: Any, stop: Any) -> None:
    """Capture ERP-side changes every ``erp.capture_interval_s`` and wake the worker."""
    import asyncio

    from revbridge.services.capture import capture_failure, capture_once, source_for
    from revbridge.services.mdm_sync import ownership_from

    erp = w.targets["erp"].port
    source = source_for(erp)
    if source is None:
        return
    while not stop.is_set():
        try:
            result = await capture_once(
                source, ledger, settings.policy, ownership=ownership_from(settings)
            )
            if result.ingest.accepted:
                w.wakeup.set()
        except Exception as exc:  # the ERP is down or slow: the worker's breaker handles calls
            err.print(f"[yellow]{escape(capture_failure(source, exc))}[/]", soft_wrap=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=settings.raw.erp.capture_interval_s)


@dlq_app.command("list")
def dlq_list(
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    event_type: Annotated[str | None, typer.Option("--type", help="Only this event type.")] = None,
    limit: Annotated[
        int,
        typer.Option(
            min=1,
            help="At most this many, oldest event first; the title (and `total` in --json) "
            "says how many there are in all.",
        ),
    ] = 200,
) -> None:
    """Dead-lettered deliveries with their last error, how many deliveries are parked
    behind each (waiting for it: replaying it releases them), and, for a customer or credit
    status, the newer version delivered since that supersedes it (replaying closes it
    without a call)."""
    from revbridge.cli._trace import parked_note
    from revbridge.services import open_ledger
    from revbridge.services.operations import count_dead_letters, list_dead_letters

    engine = open_ledger(_settings(config)).engine
    rows = list_dead_letters(engine, event_type=event_type, limit=limit)
    total = count_dead_letters(engine, event_type=event_type)
    if as_json:
        print_json({"dead_letters": rows, "total": total})
        return
    shown = f"showing {len(rows)} of {total}" if len(rows) < total else str(total)
    print_entries(
        out,
        f"dead letters ({shown})",
        ("event", "type", "source id", "target", "attempts", "parked"),
        [
            (
                (
                    str(r["id"]),
                    r["type"],
                    r["source_id"],
                    r["target"],
                    str(r["attempts"]),
                    str(r["parked_behind"] or ""),
                ),
                _dead_letter_note(r),
            )
            for r in rows
        ],
    )
    if len(rows) < total:
        out.print(f"{total - len(rows)} more: raise --limit to see them")
    if stale := sum(1 for r in rows if r["superseded_by"]):
        out.print(
            f"{counted(stale, 'dead letter')} superseded: a newer version of the record is "
            "in the target already; `revbridge dlq replay ID` closes one as superseded, "
            "without calling the target"
        )
    if behind := sum(r["parked_behind"] for r in rows):
        out.print(parked_note(behind, behind="these dead letters (column parked)"))


def _dead_letter_note(row: dict[str, Any]) -> str:
    """A dead letter's last error, and the newer version that superseded it since, if any."""
    error = row["last_error"] or ""
    if row["superseded_by"]:
        return f"{error} (superseded since by event {row['superseded_by']}, delivered)"
    return error


@dlq_app.command("show")
def dlq_show(event_id: int, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """The full trace of one event: the event, its delivery, every attempt (number, when,
    outcome, error), what is parked behind it, the audit trail and the payload."""
    from revbridge.cli._trace import render_trace, trace_json
    from revbridge.services import open_ledger
    from revbridge.services.operations import trace

    found = trace(open_ledger(_settings(config)).engine, event_id)
    if as_json:
        print_json(trace_json(found))
    else:
        render_trace(out, found)


@dlq_app.command("replay")
def dlq_replay(
    event_id: Annotated[int | None, typer.Argument(help="One dead letter's event id.")] = None,
    replay_all: Annotated[bool, typer.Option("--all", help="Every dead letter.")] = False,
    event_type: Annotated[
        str | None,
        typer.Option("--type", help="With --all only: the dead letters of one type."),
    ] = None,
    reason: Annotated[
        str, typer.Option(help="Why (goes to the audit log); required, as in the API.")
    ] = "",
    actor: ActorOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Put dead letters back in line (attempts reset); every replay is audited with who and
    why."""
    from revbridge.clock import SystemClock
    from revbridge.services import open_ledger
    from revbridge.services.operations import replay

    _one_or_all("dlq replay", event_id, replay_all, "--type", event_type, noun="event")
    why = _reason_given(reason, "GL account 4000 mapped")
    n = replay(
        open_ledger(_settings(config)).engine,
        now=SystemClock().now(),
        actor=_actor(actor),
        reason=why,
        event_id=event_id,
        event_type=event_type,
    )
    said = counted(n, "dead letter")
    out.print(f"replayed {said}; run `revbridge worker --until-idle` to deliver")


@dr_app.command("status")
def dr_status_cmd(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Per target: paused, circuit, backlog, scheduled, held, oldest undelivered age.

    The backlog is what is due or overdue (pending, parked, in flight); scheduled is the batch
    deliveries waiting for their class's run (not late); held is what waits for a person's
    review; the oldest age counts only the backlog."""
    from revbridge.clock import SystemClock
    from revbridge.services import open_ledger
    from revbridge.services.operations import dr_status

    report = dr_status(open_ledger(_settings(config)).engine, SystemClock().now())
    if as_json:
        print_json(report)
        return
    # Compact: the columns the runbook reads must fit an 80-column terminal.
    t = Table(title="targets", box=box.SIMPLE_HEAD, show_edge=False, padding=0)
    for col in (
        "target",
        "paused",
        "circuit",
        "pending",
        "parked",
        "in flight",
        "scheduled",
        "held",
        "oldest age",
    ):
        t.add_column(col, no_wrap=True)
    holds: list[str] = []
    for name, r in report.items():
        age = r["oldest_undelivered_age_s"]
        circuit = r["circuit"]
        if r["retry_after_until"]:
            # The system itself asked for a pause (429 with a Retry-After): until when is
            # said under the table, which must fit 80 columns (the JSON has it whole).
            circuit += " (429)"
            holds.append(f"{name}: 429, no calls until {human_timestamp(r['retry_after_until'])}")
        if r["circuit_reason"]:
            holds.append(f"{name}: circuit {r['circuit']}: {r['circuit_reason']}")
        t.add_row(
            name,
            "yes" if r["paused"] else "no",
            circuit,
            *(str(r["backlog"][k]) for k in ("pending", "parked", "in_flight")),
            str(r["scheduled"]),
            str(r["held"]),
            "-" if age is None else human_duration(age),
        )
    out.print(t)
    for line in holds:
        out.print(line)
    out.print(
        "pending, parked, in flight: due or overdue (the oldest age counts only these); "
        "scheduled: batch deliveries waiting for their class's run; "
        "held: waiting for a person's review (`revbridge mdm review list`)"
    )


def _pause(target: str, paused: bool, reason: str, actor: str | None, config: Path | None) -> None:
    from revbridge.clock import SystemClock
    from revbridge.services import open_ledger
    from revbridge.services.operations import set_paused

    change = set_paused(
        open_ledger(_settings(config)).engine,
        target,
        paused=paused,
        now=SystemClock().now(),
        actor=_actor(actor),
        reason=reason,
    )
    if change.changed:
        out.print(f"{target} {'paused' if paused else 'resumed'}")
    elif paused:
        out.print(
            f"{target} is already paused (reason: {change.paused_reason or 'none given'}): "
            "nothing changed, nothing audited"
        )
    else:
        out.print(f"{target} is not paused: nothing changed, nothing audited")


@dr_app.command("pause")
def dr_pause(
    target: Annotated[str, typer.Argument(help="erp or salesforce")],
    reason: Annotated[str, typer.Option(help="Why (goes to the audit log).")] = "maintenance",
    actor: ActorOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Stop calling a target; events keep being accepted and buffered.

    Audited with who, why and the state it was in. Pausing a paused target changes nothing:
    the first pause's reason stands, nothing is audited, and the command says so (exit 0)."""
    _pause(target, True, reason, actor, config)


@dr_app.command("resume")
def dr_resume(
    target: Annotated[str, typer.Argument(help="erp or salesforce")],
    reason: Annotated[str, typer.Option(help="Why (goes to the audit log).")] = "recovered",
    actor: ActorOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Call a paused target again; the backlog drains oldest first.

    Audited like a pause. Resuming a target that is not paused changes nothing, is not
    audited, and the command says so (exit 0)."""
    _pause(target, False, reason, actor, config)


@dr_app.command("drain")
def dr_drain(
    target: Annotated[
        str | None, typer.Argument(help="erp or salesforce (default: every target, in turn)")
    ] = None,
    config: ConfigOpt = None,
    rate: Annotated[
        float | None,
        typer.Option(
            help="At most this many calls per second per target (> 0), within the target's "
            "own rate limit (shared by every worker on PostgreSQL).",
        ),
    ] = None,
    reason: Annotated[str, typer.Option(help="Why (goes to the audit log).")] = "drain",
    actor: ActorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Deliver the backlog now, oldest first, optionally at a capped rate; audited.

    Real-time deliveries waiting out a retry backoff are made due now (batch classes keep
    their window). An open circuit is probed at once with one delivery: if the target
    answers, the circuit closes and the backlog follows; if not, the drain prints "circuit
    open, next probe in N s" and exits 1. A paused target is not drained (exit 1): resume
    it first. Each target drained is in the audit log: "drain_started" before anything
    changes, then "drain" with what it did.

    While it runs, how far it is goes to stderr: a progress bar on a terminal (delivered,
    left, rate, time left), else a plain line every 10 s; the summary is printed on stdout.
    """
    import asyncio

    from revbridge.cli._progress import drain_progress
    from revbridge.clock import SystemClock
    from revbridge.services import open_ledger
    from revbridge.services.drain import TargetDrain, drain
    from revbridge.services.targets import build_worker, check_rate

    if rate is not None:
        check_rate(rate)  # before anything is built (a managed ERP may be started)
    settings = _settings(config)
    w = build_worker(settings, open_ledger(settings).engine, clock=SystemClock())

    async def run() -> list[TargetDrain]:
        try:
            with drain_progress(err) as on_progress:  # stderr: stdout keeps the summary
                return await drain(
                    w,
                    [target] if target else None,
                    rate=rate,
                    actor=_actor(actor),
                    reason=reason,
                    on_progress=on_progress,
                )
        finally:
            for t in w.targets.values():
                await t.port.close()

    drained = asyncio.run(run())
    waiting = [d.waiting for d in drained if d.waiting]
    if as_json:
        print_json({**w.stats.as_dict(), "targets": {d.target: asdict(d) for d in drained}})
    else:
        print_totals(out, w.stats.as_dict())
        for d in drained:  # what still waits: once, on stderr, below
            out.print(f"{d.target}: {d.summary(waiting=False)}", soft_wrap=True)
    for why in waiting:
        err.print(f"[yellow]{escape(why)}[/]", soft_wrap=True)
    if waiting:
        raise typer.Exit(1)


@db_app.command("upgrade")
def db_upgrade(config: ConfigOpt = None) -> None:
    """Bring the ledger schema to the latest migration."""
    from revbridge.store.db import create_store_engine, current_revision, upgrade

    settings = _settings(config)
    engine = create_store_engine(settings.store_url)
    try:
        before = current_revision(engine)
        upgrade(engine)
        after = current_revision(engine)
    finally:
        engine.dispose()
    if before == after:
        out.print(f"ledger at {settings.store_url} is up to date (migration {after})")
    else:
        # Said apart: "up to date" on a ledger just created or migrated hid what happened.
        out.print(
            f"ledger at {settings.store_url} migrated from {before or 'an empty database'} "
            f"to {after}"
        )


def main() -> None:
    """Entry point: domain errors become one clear line and exit code 2, never a traceback."""
    from revbridge.logs import configure

    configure(
        os.environ.get("REVBRIDGE_LOG_LEVEL", "WARNING"),
        json_logs=os.environ.get("REVBRIDGE_LOG_JSON") == "1",
    )
    try:
        app()
    except RevbridgeError as exc:
        # Text, not markup (a key in brackets is printed as is), and not cut at the console's
        # width: a problem per line, each path whole.
        err.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
        if os.environ.get("REVBRIDGE_DEBUG"):
            raise
        sys.exit(2)
