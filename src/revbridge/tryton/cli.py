"""``revbridge erp tryton ...``: manage the local Tryton instance from a shell.

A Typer sub-application; the main CLI mounts ``app``. Every command takes ``--home`` (default
``$REVBRIDGE_TRYTON_HOME`` or ``./.revbridge/tryton``) and ``--json`` for scripts.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from revbridge.tryton.instance import DEFAULT_DATABASE, TrytonInstance
from revbridge.tryton.template import TrytonSetupError

app = typer.Typer(help="A local Tryton ERP (SQLite) for development, demos and tests.")

HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        help="Folder holding the instance's database, config, pid file and log.",
        show_default="$REVBRIDGE_TRYTON_HOME or ./.revbridge/tryton",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
DatabaseOption = Annotated[
    str, typer.Option("--database", help="Name of the SQLite database (its file name).")
]


def _instance(home: Path | None, database: str) -> TrytonInstance:
    chosen = home or Path(os.environ.get("REVBRIDGE_TRYTON_HOME") or ".revbridge/tryton")
    return TrytonInstance(chosen, database=database)


def _emit(data: dict[str, Any], as_json: bool, lines: list[str]) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        for line in lines:
            typer.echo(line)


def _fail(exc: TrytonSetupError) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(code=1)


@app.command()
def up(
    home: HomeOption = None,
    as_json: JsonOption = False,
    database: DatabaseOption = DEFAULT_DATABASE,
) -> None:
    """Start the instance (building the cached template on first use) and print how to log in."""
    started = time.monotonic()
    try:
        info = _instance(home, database).up()
    except TrytonSetupError as exc:
        raise _fail(exc) from exc
    data = {**info.as_dict(), "seconds": round(time.monotonic() - started, 3)}
    _emit(
        data,
        as_json,
        [
            f"Tryton is up at {info.url} (pid {info.pid}, home {info.home})",
            f"  database: {info.database}   JSON-RPC: {info.rpc_url}",
            f"  admin:    {info.user} / {info.password}",
            f"  hub user: {info.api_user} / {info.api_password}",
        ],
    )


@app.command()
def down(
    home: HomeOption = None,
    as_json: JsonOption = False,
    database: DatabaseOption = DEFAULT_DATABASE,
) -> None:
    """Stop the server (SIGTERM, then SIGKILL). The database stays."""
    try:
        stopped = _instance(home, database).down()
    except TrytonSetupError as exc:
        raise _fail(exc) from exc
    _emit(
        {"stopped": stopped},
        as_json,
        ["Tryton stopped." if stopped else "Tryton was not running."],
    )


@app.command()
def reset(
    home: HomeOption = None,
    as_json: JsonOption = False,
    database: DatabaseOption = DEFAULT_DATABASE,
) -> None:
    """Put the database back to the template's content; a running server stays up."""
    started = time.monotonic()
    try:
        _instance(home, database).reset()
    except TrytonSetupError as exc:
        raise _fail(exc) from exc
    seconds = round(time.monotonic() - started, 3)
    _emit({"reset": True, "seconds": seconds}, as_json, [f"Database reset in {seconds} s."])


@app.command()
def status(
    home: HomeOption = None,
    as_json: JsonOption = False,
    database: DatabaseOption = DEFAULT_DATABASE,
) -> None:
    """Say whether the server runs and answers. Exit code 0 when it answers, 3 when not."""
    found = _instance(home, database).status()
    if found.answering:
        line = f"Tryton is up at {found.url} (pid {found.pid}, home {found.home})"
    elif found.running:
        line = f"Tryton runs (pid {found.pid}) but does not answer on {found.url}"
    else:
        state = "initialised" if found.initialized else "not initialised"
        line = f"Tryton is not running (database {state}, home {found.home})"
    _emit(found.as_dict(), as_json, [line])
    if not found.answering:
        raise typer.Exit(code=3)
