"""The revbridge command as a user runs it, on the embedded default."""

import json
from pathlib import Path

from revbridge.cli.main import app
from revbridge.core.events import EventType
from tests.integration.conftest import run_json, runner


def test_init_generate_ingest_status_on_the_embedded_default(workdir: Path) -> None:
    assert (workdir / "revbridge.toml").exists()
    gen = runner.invoke(app, ["generate", "--events", "400", "--seed", "3", "--out", "ev.jsonl"])
    assert gen.exit_code == 0
    counts = run_json(["ingest", "ev.jsonl", "--json"])
    assert counts == {"accepted": 400, "duplicates": 0, "conflicts": 0, "rejected": 0}
    assert run_json(["ingest", "ev.jsonl", "--json"])["duplicates"] == 400
    status = run_json(["status", "--json"])
    assert status["events"]["total"] == 400
    assert status["events"]["by_state"]["pending"] == 400
    assert status["quarantine"] == 0
    assert isinstance(status["oldest_pending_age_s"], float)
    assert (workdir / "revbridge.db").exists()  # relative path resolved next to the config


def test_ingest_exits_non_zero_when_anything_was_rejected(workdir: Path) -> None:
    (workdir / "bad.jsonl").write_text('{"type": "invoice.posted"}\nnot json\n')
    result = runner.invoke(app, ["ingest", "bad.jsonl", "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["rejected"] == 2
    listing = run_json(["quarantine", "list", "--json"])["quarantine"]
    assert [r["line_no"] for r in listing] == [1, 2]
    assert "required field is missing" in listing[0]["reason"]


def test_ingest_reads_stdin(workdir: Path) -> None:
    gen = runner.invoke(app, ["generate", "--events", "5"])
    result = runner.invoke(app, ["ingest", "-", "--json"], input=gen.stdout)
    assert json.loads(result.stdout)["accepted"] == 5


def test_schema_prints_a_json_schema_per_type() -> None:
    all_schemas = run_json(["schema"])
    assert set(all_schemas) == {t.value for t in EventType}
    inv = run_json(["schema", "invoice.posted"])
    assert inv["properties"]["type"]["const"] == "invoice.posted"
    assert "data" in inv["required"]
    assert runner.invoke(app, ["schema", "invoice.paid"]).exit_code == 2


def test_policy_show_as_markdown_andrun_json(workdir: Path) -> None:
    md = runner.invoke(app, ["policy", "show"]).stdout
    assert md.startswith("| Event type | Direction | Pattern | Schedule | Rationale |")
    doc = run_json(["policy", "show", "--format", "json"])
    assert {e["type"] for e in doc["events"]} == {t.value for t in EventType}
    assert set(doc["events"][0]) == {"type", "pattern", "schedule", "rationale"}


def test_a_bad_config_is_one_clear_line_not_a_traceback(workdir: Path) -> None:
    (workdir / "revbridge.toml").write_text("[store]\nurll = 'x'\n")
    result = runner.invoke(app, ["status"])
    assert result.exit_code != 0
    assert isinstance(result.exception, Exception)
    assert "store.urll: unknown key" in str(result.exception)
