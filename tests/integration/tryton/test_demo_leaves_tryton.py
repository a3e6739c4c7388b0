"""`revbridge demo --erp tryton` leaves Tryton running for the newcomer to look at: it says
so, where, and how to stop it (it said nothing, and a server stayed up unknown)."""

from __future__ import annotations

import shlex
from pathlib import Path

from typer.testing import CliRunner

from revbridge.services.demo import TrytonSide
from revbridge.tryton.cli import app
from revbridge.tryton.instance import InstanceInfo, TrytonInstance


def test_the_demo_says_tryton_keeps_running_and_how_to_stop_it(
    tryton: InstanceInfo, tryton_instance: TrytonInstance
) -> None:
    said = TrytonSide(tryton_instance).left_running(tryton_instance.home)
    assert f"Tryton keeps running at {tryton.url}" in said
    assert f"log in as {tryton.user}" in said
    assert tryton.password not in said  # a line people paste into tickets
    commands = [part for part in said.split("`") if part.startswith("revbridge erp tryton")]
    assert len(commands) == 2, said
    up, down = (shlex.split(command)[3:] for command in commands)
    assert (up[0], down[0]) == ("up", "down")
    assert Path(up[2]) == Path(down[2]) == tryton_instance.home  # --home, as printed
    shown = CliRunner().invoke(app, up)  # `down` is the session fixture's to run
    assert shown.exit_code == 0, shown.output
    assert tryton.password in shown.output
