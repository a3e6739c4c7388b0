"""The NetSuite check before work or a reading: a token NetSuite refuses stops `erp check`,
the worker, `recon run` and `mdm match` first, naming the token's variables; a right token
passes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from revbridge.cli.main import app
from revbridge.errors import ConfigError
from revbridge.netsuite.sandbox import RunningSandbox

runner = CliRunner()


def _configure(
    folder: Path, sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch, token_secret: str
) -> Path:
    cfg = sandbox.config
    for name, value in {
        "NETSUITE_ACCOUNT_ID": cfg.account_id,
        "NETSUITE_CONSUMER_KEY": cfg.consumer_key,
        "NETSUITE_CONSUMER_SECRET": cfg.consumer_secret,
        "NETSUITE_TOKEN_ID": cfg.token_id,
        "NETSUITE_TOKEN_SECRET": token_secret,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(folder)
    path = folder / "revbridge.toml"
    path.write_text(
        f'[store]\nurl = "sqlite:///{folder / "hub.db"}"\n\n'
        f'[erp]\nkind = "netsuite"\n\n[erp.netsuite]\nbase_url = "{sandbox.base_url}"\n',
        encoding="utf-8",
    )
    (folder / "accounts.csv").write_text("Id,name\n0015e00000AbCdEAAV,Acme Ltd\n")
    return path


def _invoke(config: Path, *args: str) -> Any:
    return runner.invoke(app, [*args, "--config", str(config)])


def test_a_right_token_passes_the_check(
    sandbox: RunningSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _configure(tmp_path, sandbox, monkeypatch, sandbox.config.token_secret)
    checked = _invoke(config, "erp", "check")
    assert checked.exit_code == 0, checked.output
    assert "the integration's token is accepted" in checked.output


@pytest.mark.parametrize(
    "command",
    [
        ("erp", "check"),
        ("worker", "--until-idle"),
        ("recon", "run", "--scope", "monthly", "--period", "2026-01"),
        ("mdm", "match", "--sf-csv", "accounts.csv", "--report", "match.csv"),
    ],
)
def test_a_refused_token_stops_what_would_call_netsuite_naming_the_variables(
    sandbox: RunningSandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: tuple[str, ...],
) -> None:
    config = _configure(tmp_path, sandbox, monkeypatch, "revoked-token-secret")
    result = _invoke(config, *command)
    assert isinstance(result.exception, ConfigError), result.output
    assert (result.exception.path, result.exception.key) == ("environment", "NETSUITE_TOKEN_ID")
    assert "refused the integration's token" in result.exception.reason
    assert "NETSUITE_TOKEN_SECRET" in result.exception.reason
    assert not (tmp_path / "match.csv").exists()


def test_a_netsuite_that_does_not_answer_stops_a_reading_and_warns_a_worker(
    sandbox: RunningSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reconciliation has nothing to wait for; a worker waits an outage out (retries,
    the circuit) and only says so."""
    config = _configure(tmp_path, sandbox, monkeypatch, sandbox.config.token_secret)
    config.write_text(config.read_text().replace(sandbox.base_url, "http://127.0.0.1:9"))
    recon = _invoke(config, "recon", "run", "--scope", "monthly", "--period", "2026-01")
    assert isinstance(recon.exception, ConfigError), recon.output
    assert recon.exception.key == "erp.netsuite.base_url"
    assert "did not answer" in recon.exception.reason
    worked = _invoke(config, "worker", "--until-idle")
    assert worked.exit_code == 0, worked.output
    assert "warning:" in worked.output
    assert "erp.netsuite.base_url" in worked.output


def test_serve_starts_with_a_refused_token_and_says_so(
    sandbox: RunningSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`serve` receives Salesforce's events: the ERP refusing the token must not refuse them.
    It warns, naming the variables, and starts (the circuit opens on the first refused
    call, decision 0038); the worker above stops instead."""
    import uvicorn

    started: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.append(app))
    config = _configure(tmp_path, sandbox, monkeypatch, "revoked-token-secret")
    served = _invoke(config, "serve")
    assert served.exit_code == 0, served.output
    assert len(started) == 1
    said = " ".join(served.output.split())
    assert "warning:" in said
    assert "refused the integration's token" in said
    assert "NETSUITE_TOKEN_SECRET" in said
