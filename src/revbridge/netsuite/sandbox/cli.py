"""``revbridge sandbox netsuite``: the command function, ready for a Typer app to register.

The CLI package wires it (``app.command("netsuite")(netsuite_command)``); this module only
turns options into a ``SandboxConfig``, prints what a client needs to connect, and serves.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from revbridge.netsuite.sandbox.config import (
    DEMO_ACCOUNT_ID,
    DEMO_CONSUMER_KEY,
    DEMO_CONSUMER_SECRET,
    DEMO_TOKEN_ID,
    DEMO_TOKEN_SECRET,
    SandboxConfig,
)
from revbridge.netsuite.sandbox.faults import parse_fault_spec
from revbridge.netsuite.sandbox.server import serve


def netsuite_command(
    port: Annotated[int, typer.Option(help="TCP port to listen on.")] = 8090,
    data: Annotated[
        Path | None, typer.Option(help="SQLite file to keep the data in (default: in memory).")
    ] = None,
    faults: Annotated[
        str | None,
        typer.Option(
            help="Faults to inject, e.g. 'outage=30s,latency=50ms,error_rate=0.1,"
            "lost_response_rate=0.05,seed=7' (grammar in the sandbox README)."
        ),
    ] = None,
    account_id: Annotated[str, typer.Option(help="NetSuite account id (OAuth realm).")] = (
        DEMO_ACCOUNT_ID
    ),
    consumer_key: Annotated[str, typer.Option(help="TBA consumer key.")] = DEMO_CONSUMER_KEY,
    consumer_secret: Annotated[str, typer.Option(help="TBA consumer secret.")] = (
        DEMO_CONSUMER_SECRET
    ),
    token_id: Annotated[str, typer.Option(help="TBA token id.")] = DEMO_TOKEN_ID,
    token_secret: Annotated[str, typer.Option(help="TBA token secret.")] = DEMO_TOKEN_SECRET,
    concurrency_limit: Annotated[
        int, typer.Option(help="Account concurrency limit; requests over it get 429.")
    ] = 5,
    latency_ms: Annotated[int, typer.Option(help="Latency added to every request, in ms.")] = 0,
    host: Annotated[str, typer.Option(help="Interface to bind (keep localhost).")] = "127.0.0.1",
) -> None:
    """Run the NetSuite SuiteTalk REST sandbox."""
    try:
        spec = parse_fault_spec(faults)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--faults") from exc
    if latency_ms < 0:
        raise typer.BadParameter("must not be negative", param_hint="--latency-ms")
    if latency_ms:
        spec = replace(spec, latency=timedelta(milliseconds=latency_ms))
    if concurrency_limit < 1:
        raise typer.BadParameter("must be at least 1", param_hint="--concurrency-limit")
    config = SandboxConfig(
        account_id=account_id,
        consumer_key=consumer_key,
        consumer_secret=consumer_secret,
        token_id=token_id,
        token_secret=token_secret,
        data_path=data,
        concurrency_limit=concurrency_limit,
        faults=spec,
    )
    base = f"http://{host}:{port}"
    table = Table(title="NetSuite sandbox (TBA, OAuth 1.0a HMAC-SHA256)", show_header=False)
    for label, value in (
        ("REST base URL", f"{base}/services/rest"),
        ("Account id (realm)", account_id),
        ("Consumer key", consumer_key),
        ("Consumer secret", consumer_secret),
        ("Token id", token_id),
        ("Token secret", token_secret),
        ("Concurrency limit", str(concurrency_limit)),
        ("Faults", spec.describe() or "none"),
        ("Data", str(data) if data else "in memory"),
        ("Admin API (not NetSuite)", f"{base}/sandbox/admin"),
    ):
        table.add_row(label, value)
    Console().print(table)
    serve(config, port=port, host=host)
