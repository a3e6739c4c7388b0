"""The newcomer's first run: `revbridge demo` through both sandboxes, end to end.

A B2B company's business days happen in the Salesforce org sandbox and the NetSuite sandbox;
the hub captures, delivers, rides out an ERP outage on day 3 and reconciles. What the demo
prints must agree with what each sandbox holds (SOQL COUNT() and SuiteQL), nothing may be
dead-lettered, and the outage must open the circuit, raise an alert, drain and resolve.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select
from typer.testing import CliRunner

from revbridge.cli.main import app
from revbridge.services.access import Role, authenticate
from revbridge.services.demo import DemoOptions, run_demo
from revbridge.store.db import create_store_engine
from revbridge.store.schema import alerts, deliveries, events

SF_TO_ERP = ("customer.upserted", "invoice.posted", "payment.received", "credit_memo.issued")


def printed_row(output: str, event_type: str) -> list[int]:
    """The numbers of one event type's row in the printed "what flowed" table."""
    for line in output.splitlines():
        cells = line.split()
        if cells and cells[0] == event_type and len(cells) == 6:
            return [int(c) for c in cells[2:]]
    raise AssertionError(f"no row for {event_type} in the output")


def test_the_demo_prints_counts_that_both_sandboxes_confirm(tmp_path: Path) -> None:
    """`revbridge demo --days 3` exits 0, and every count it prints agrees with the sandboxes."""
    folder = tmp_path / "demo-run"
    result = CliRunner().invoke(app, ["demo", "--folder", str(folder), "--days", "3"])
    assert result.exit_code == 0, result.output
    report = json.loads((folder / "demo-report.json").read_text())

    checks = {(c["what"], c["system"]): c for c in report["checks"]}
    for event_type in SF_TO_ERP:
        captured = checks[(f"{event_type} captured", "Salesforce")]
        delivered = checks[(f"{event_type} delivered", "NetSuite")]
        assert captured["hub"] == captured["sandbox"] > 0, captured
        assert delivered["hub"] == delivered["sandbox"] == captured["sandbox"], delivered
    wire = checks[("erp.payment.received captured", "NetSuite")]
    written_back = checks[("erp.payment.received delivered", "Salesforce")]
    assert wire["sandbox"] == written_back["sandbox"] == written_back["hub"] >= 1
    hold = checks[("customers on credit hold", "NetSuite vs Salesforce")]
    assert hold["hub"] == hold["sandbox"] == 1
    assert all(c["agrees"] for c in report["checks"])
    assert report["problems"] == []

    # The printed table is the ledger's: recount the SQLite file the demo leaves behind.
    engine = create_store_engine(f"sqlite:///{folder / 'revbridge.db'}")
    with engine.connect() as conn:
        delivered_invoices = conn.execute(
            select(func.count())
            .select_from(events.join(deliveries, deliveries.c.event_id == events.c.id))
            .where(events.c.type == "invoice.posted", deliveries.c.state == "delivered")
        ).scalar_one()
        dead = conn.execute(
            select(func.count()).select_from(deliveries).where(deliveries.c.state == "dead_letter")
        ).scalar_one()
        incidents = {r.key: r.resolved_at for r in conn.execute(select(alerts))}
    engine.dispose()
    flows = {f["event_type"]: f for f in report["flows"]}
    assert flows["invoice.posted"]["delivered"] == delivered_invoices
    for event_type in SF_TO_ERP:
        f = flows[event_type]
        printed = printed_row(result.output, event_type)
        assert printed == [f["captured"], f["delivered"], f["batched"], f["dead_letters"]]
        assert printed[1] == checks[(f"{event_type} delivered", "NetSuite")]["sandbox"]
    assert dead == 0

    outage = report["outage"]
    assert outage["day"] == 3
    assert outage["circuit_opened"]
    assert outage["drained"]
    assert outage["alert_resolved"]
    assert outage["waiting_at_peak"] > 0
    assert incidents["circuit_open:erp"] is not None  # raised, then resolved
    assert (
        f"revbridge serve --config {folder / 'revbridge.toml'} --api-only"
        in result.output.replace("\n", "")
    )


def test_the_revenue_cloud_org_polled_tells_the_same_story(tmp_path: Path) -> None:
    """With the Revenue Cloud object model and poll capture, the counts still agree."""
    lines: list[str] = []
    report = run_demo(
        DemoOptions(
            folder=tmp_path / "rc",
            days=3,
            seed=7,
            object_model="revenue_cloud",
            capture_mode="poll",
        ),
        lines.append,
    )
    assert report.problems == []
    assert {c.what for c in report.checks} >= {f"{t} delivered" for t in SF_TO_ERP}
    assert all(c.agrees for c in report.checks)
    assert report.dead_letters == 0
    assert report.outage.circuit_opened
    assert report.outage.drained
    # The token it prints opens the console on the demo's ledger, as an operator.
    engine = create_store_engine(report.store_url)
    principal = authenticate(engine, report.console_token, now=datetime.now(UTC))
    engine.dispose()
    assert principal.role is Role.parse("operator")
    assert report.console_token not in (tmp_path / "rc" / "demo-report.json").read_text()
    assert any("NetSuite becomes unavailable" in line for line in lines)
    said = "\n".join(lines)
    assert "alert (critical): revbridge: circuit open to erp" in said
    assert "alert (resolved): RESOLVED: revbridge: circuit open to erp" in said
    assert any(line.startswith("[day 3]") for line in lines)
