"""``revbridge demo``: the thin command over ``revbridge.services.demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

out = Console()
err = Console(stderr=True)


def demo(
    folder: Annotated[
        Path, typer.Option(help="Working folder for the demo's config, ledger and reports.")
    ] = Path("demo-run"),
    erp: Annotated[
        str, typer.Option(help="netsuite (the in-process sandbox) or tryton (the real ERP).")
    ] = "netsuite",
    days: Annotated[
        int,
        typer.Option(help="Business days to simulate (the outage is on day 3: 3 or more).", min=3),
    ] = 5,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same story.")] = 42,
    object_model: Annotated[
        str, typer.Option(help="billing (Salesforce Billing) or revenue_cloud.")
    ] = "billing",
    capture: Annotated[
        str, typer.Option(help="How the hub captures Salesforce: stream or poll.")
    ] = "stream",
) -> None:
    """A B2B company's business days through both sandboxes: capture, deliver, an ERP
    outage and its recovery, month-end; counts checked against both sandboxes."""
    from revbridge.services.demo import DemoFailed, DemoOptions, run_demo

    if erp not in ("netsuite", "tryton"):
        err.print("[red]--erp must be netsuite or tryton[/]")
        raise typer.Exit(2)
    if object_model not in ("billing", "revenue_cloud") or capture not in ("stream", "poll"):
        err.print("[red]--object-model billing|revenue_cloud, --capture stream|poll[/]")
        raise typer.Exit(2)
    options = DemoOptions(
        folder=folder,
        erp=erp,  # type: ignore[arg-type]  # checked above
        days=days,
        seed=seed,
        object_model=object_model,  # type: ignore[arg-type]
        capture_mode=capture,  # type: ignore[arg-type]
    )
    out.rule(f"[bold]revbridge demo[/]: Salesforce ({object_model}) ⇄ hub ⇄ {erp}")
    with out.status("starting…") as status:

        def progress(line: str) -> None:
            status.update(line.strip()[:70])
            out.print(line, highlight=False, markup=False)

        try:
            report = run_demo(options, progress)
        except DemoFailed as exc:
            err.print(f"[red]demo failed:[/] {exc}")
            raise typer.Exit(1) from None

    flows = Table(
        title="what flowed (the hub's ledger)",
        box=box.SIMPLE_HEAD,
        padding=(0, 1, 0, 0),
        caption="above the line: Salesforce → ERP; below: ERP → Salesforce",
    )
    flows.add_column("event type", no_wrap=True)
    flows.add_column("pattern")
    for col in ("captured", "delivered", "batched", "dead"):
        flows.add_column(col, justify="right")
    for i, f in enumerate(report.flows):
        if i and f.direction != report.flows[i - 1].direction:
            flows.add_section()
        flows.add_row(
            f.event_type,
            f.pattern,
            *(str(v) for v in (f.captured, f.delivered, f.batched, f.dead_letters)),
        )
    out.print(flows)
    checks = Table(title="the same counts read back from the sandboxes", box=box.SIMPLE_HEAD)
    for col in ("count", "read back from", "hub", "sandbox", ""):
        checks.add_column(col, overflow="fold")
    for c in report.checks:
        checks.add_row(
            c.what,
            c.system,
            str(c.hub),
            str(c.sandbox),
            "[green]✓[/]" if c.agrees else "[red]✗[/]",
        )
    out.print(checks)
    out.print(f"the SOQL and SuiteQL behind each count: {report.json_path}")
    o = report.outage
    if o.day:
        circuit = "opened" if o.circuit_opened else "stayed closed"
        alert = "raised and resolved" if o.alert_opened and o.alert_resolved else "NOT as expected"
        out.print(
            f"ERP outage on day {o.day}: circuit {circuit}, {o.waiting_at_peak} events waited, "
            f"alert {alert}"
            f", backlog {'drained' if o.drained else 'NOT drained'}, "
            f"{report.dead_letters} dead letters"
        )
    for path in report.recon_reports:
        out.print(f"reconciliation report: [bold]{path}[/] (open it in a browser)")
    if report.recon_note:
        out.print(f"reconciliation: {report.recon_note}")
    out.print(
        f"the console: [bold]{report.serve_command}[/], then open {report.console_url} "
        f"and log in with this operator token (shown once): {report.console_token}"
    )
    out.print(
        f"look around: revbridge status -c {report.config_path}; revbridge dr status -c "
        f"{report.config_path}; revbridge dlq list -c {report.config_path}"
    )
    if report.still_running:
        out.print(report.still_running, highlight=False, markup=False, soft_wrap=True)
    if report.problems:
        for p in report.problems:
            err.print(f"[red]✗[/] {p}")
        raise typer.Exit(1)
