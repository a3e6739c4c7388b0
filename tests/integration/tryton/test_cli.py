"""The ``erp tryton`` commands, run against the session's instance."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from revbridge.tryton.cli import app
from revbridge.tryton.instance import InstanceInfo, TrytonInstance


def test_up_status_reset_print_what_a_user_needs(
    tryton: InstanceInfo, tryton_instance: TrytonInstance
) -> None:
    """``up --json`` gives URL, database and credentials; status and reset report plainly."""
    runner = CliRunner()
    home = str(tryton_instance.home)

    shown = runner.invoke(app, ["up", "--home", home, "--json"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.output)
    assert data["url"] == tryton.url
    assert data["database"] == tryton.database
    assert (data["user"], data["password"]) == (tryton.user, tryton.password)
    assert data["pid"] == tryton.pid

    status = runner.invoke(app, ["status", "--home", home])
    assert status.exit_code == 0
    assert f"Tryton is up at {tryton.url}" in status.output

    reset = runner.invoke(app, ["reset", "--home", home, "--json"])
    assert reset.exit_code == 0
    assert json.loads(reset.output)["seconds"] < 1.0

    plain = runner.invoke(app, ["up", "--home", home])
    assert tryton.password in plain.output
