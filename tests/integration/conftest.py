"""Fixtures for running the revbridge command in-process, as a user would in a fresh folder."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from revbridge.cli.main import app

runner = CliRunner()
# A timestamp in JSON, from the CLI and the API alike: ISO 8601, UTC, with Z (decision 0028).
JSON_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh folder with the config `revbridge init` writes, as the current directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REVBRIDGE_CONFIG", raising=False)
    assert runner.invoke(app, ["init"]).exit_code == 0
    return tmp_path


def run_json(args: list[str]) -> Any:
    """Run a command that must succeed and print JSON; return the parsed output."""
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)
