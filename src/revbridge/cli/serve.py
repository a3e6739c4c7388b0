"""``revbridge serve`` and ``revbridge token``: the HTTP edge and its access tokens."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from revbridge.cli._options import ConfigOpt
from revbridge.cli._output import check_erp_before_work

token_app = typer.Typer(help="API and console tokens: create, list, revoke.", no_args_is_help=True)
err = Console(stderr=True)
out = Console()


def _actor() -> str:
    return f"cli:{os.environ.get('USER') or 'operator'}"


def serve(
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option(help="Listen address (server.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (server.port).")] = None,
    api_only: Annotated[
        bool,
        typer.Option(
            "--api-only",
            help="No in-process worker: run `revbridge worker` processes (PostgreSQL).",
        ),
    ] = False,
) -> None:
    """Webhooks, the ops API, the console and /metrics; the worker too unless --api-only."""
    import uvicorn

    from revbridge.api.app import create_app
    from revbridge.config import load_settings

    settings = load_settings(config, required=True)
    server = settings.raw.server
    run_workers = server.run_workers and not api_only
    if run_workers:
        # As `revbridge worker`: a wrong ERP setting stops it before it delivers. A refused
        # login or token only warns: the webhooks go on accepting Salesforce's events (the
        # ERP's refusal must not refuse them), and the circuit opens on the first refused
        # call, with its alert, until the credentials are mended (decision 0038).
        check_erp_before_work(settings, err, refused_is_warning=True)
    app = create_app(settings, run_workers=run_workers)
    err.print(
        f"revbridge serving on http://{host or server.host}:{port or server.port}"
        f" (console /console/, API docs /docs){'' if run_workers else ', API only'}"
    )
    uvicorn.run(
        app,
        host=host or server.host,
        port=port or server.port,
        log_level="warning",
        proxy_headers=True,
        timeout_graceful_shutdown=30,
    )


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option("--name", help="Who or what uses it (audit log actor).")],
    role: Annotated[str, typer.Option("--role", help="viewer, operator or admin.")] = "viewer",
    config: ConfigOpt = None,
) -> None:
    """Create a token; it is printed once and only its hash is stored."""
    from revbridge.clock import SystemClock
    from revbridge.config import load_settings
    from revbridge.services import open_ledger
    from revbridge.services.access import Role, create_token

    ledger = open_ledger(load_settings(config, required=True))
    token = create_token(
        ledger.engine, name=name, role=Role.parse(role), now=SystemClock().now(), actor=_actor()
    )
    err.print(f"token {name!r} ({role}); shown once, store it now:")
    print(token)


@token_app.command("list")
def token_list(config: ConfigOpt = None) -> None:
    """Tokens with role, prefix and use (never the secret)."""
    from revbridge.config import load_settings
    from revbridge.core.timestamps import human_timestamp
    from revbridge.services import open_ledger
    from revbridge.services.access import list_tokens

    t = Table(title="tokens")
    for col in ("name", "role", "prefix", "created", "last used", "revoked"):
        t.add_column(col)
    for r in list_tokens(open_ledger(load_settings(config, required=True)).engine):
        t.add_row(
            r["name"],
            r["role"],
            r["prefix"] + "…",
            *(
                "-" if r[k] is None else human_timestamp(r[k])
                for k in ("created_at", "last_used_at", "revoked_at")
            ),
        )
    out.print(t)


@token_app.command("revoke")
def token_revoke(
    name: Annotated[str, typer.Argument(help="The token's name.")], config: ConfigOpt = None
) -> None:
    """Revoke a token: the API and console refuse it from now on."""
    from revbridge.clock import SystemClock
    from revbridge.config import load_settings
    from revbridge.services import open_ledger
    from revbridge.services.access import revoke_token

    ledger = open_ledger(load_settings(config, required=True))
    revoke_token(ledger.engine, name=name, now=SystemClock().now(), actor=_actor())
    out.print(f"token {name!r} revoked")
