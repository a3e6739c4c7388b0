"""The revbridge command as a user runs it, on the embedded default."""

import json
import sys
from pathlib import Path

import pytest

from revbridge.cli.main import app, main
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
    by_state = status["events"]["by_state"]
    assert by_state["pending"] + by_state["scheduled"] == 400  # batch ones wait for their run
    assert status["quarantine"] == 0
    assert isinstance(status["oldest_pending_age_s"], float)
    assert (workdir / "revbridge.db").exists()  # relative path resolved next to the config


def test_a_second_generate_run_makes_new_records_and_a_seed_repeats_one(workdir: Path) -> None:
    """Two runs of `generate` into one ledger are two data sets: all accepted, no duplicate,
    no conflict. A run with the seed the first one printed gives duplicates only."""
    first = runner.invoke(app, ["generate", "-n", "200", "--out", "a.jsonl"])
    assert first.exit_code == 0, first.output
    runner.invoke(app, ["generate", "-n", "200", "--out", "b.jsonl"])
    assert run_json(["ingest", "a.jsonl", "--json"])["accepted"] == 200
    counts = run_json(["ingest", "b.jsonl", "--json"])
    assert counts == {"accepted": 200, "duplicates": 0, "conflicts": 0, "rejected": 0}
    seed = first.stderr.split()[1]
    runner.invoke(app, ["generate", "-n", "200", "--seed", seed, "--out", "c.jsonl"])
    assert run_json(["ingest", "c.jsonl", "--json"])["duplicates"] == 200


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


def test_a_config_with_several_problems_prints_each_on_its_own_line(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every problem at once, a line each (key and reason), printed as written: a key in
    brackets is text, not console markup."""
    (workdir / "revbridge.toml").write_text(
        '[store]\nurll = "x"\n"[x]" = 1\n\n[engine]\nmax_attempts = 0\n'
    )
    monkeypatch.setattr(sys, "argv", ["revbridge", "status"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    said = capsys.readouterr().err
    assert "Traceback" not in said
    lines = [line.strip() for line in said.splitlines()]
    assert lines[0] == f"error: {workdir / 'revbridge.toml'}: 3 problems"
    assert lines[1:] == [
        "store.urll: unknown key",
        "store.[x]: unknown key",
        "engine.max_attempts: Input should be greater than or equal to 1",
    ]


def test_the_fake_orgs_changes_are_captured_and_delivered(workdir: Path) -> None:
    """generate --into-salesforce, capture salesforce, worker: the set-up tried end to end
    without an org, the way a real org's changes travel."""
    gen = runner.invoke(app, ["generate", "-n", "120", "--seed", "4", "--into-salesforce"])
    assert gen.exit_code == 0, gen.output
    posted = int(gen.stderr.split("posted ")[1].split()[0])
    first = run_json(["capture", "salesforce", "--json"])
    assert first["read"] == first["accepted"] == posted
    assert first["stream"] == "salesforce:fake-salesforce"
    again = run_json(["capture", "salesforce", "--json"])
    assert (again["read"], again["watermark"]) == (0, first["watermark"])
    assert runner.invoke(app, ["worker", "--until-idle"]).exit_code == 0
    status = run_json(["status", "--json"])
    assert status["events"]["total"] == posted
    assert status["events"]["by_state"]["delivered"] > 0
    assert status["events"]["by_state"]["dead_letter"] == 0
    stream = runner.invoke(app, ["capture", "salesforce", "--mode", "stream"])
    assert stream.exit_code == 2  # change events need a real org
    assert "reads change events from a real org" in stream.stderr
    both = runner.invoke(app, ["generate", "-n", "5", "--into-salesforce", "-o", "x.jsonl"])
    assert both.exit_code == 2
    assert not (workdir / "x.jsonl").exists()


def test_into_salesforce_needs_the_fake_org(workdir: Path) -> None:
    toml = workdir / "revbridge.toml"
    text = toml.read_text().replace(
        '[salesforce]\nkind = "fake"', '[salesforce]\nkind = "salesforce"'
    )
    toml.write_text(text)
    result = runner.invoke(app, ["generate", "-n", "5", "--into-salesforce"])
    assert result.exit_code == 2
    assert 'needs salesforce.kind = "fake"' in result.stderr


def test_an_operator_command_where_there_is_no_config_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In the wrong folder, `dr status` must not report an empty, healthy hub of its own
    making (nor create a ledger and fake state files there); `policy show` still shows the
    built-in classification."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REVBRIDGE_CONFIG", raising=False)
    for args in (["dr", "status"], ["dr", "drain", "erp"], ["status"], ["dlq", "list"]):
        result = runner.invoke(app, args)
        assert result.exit_code != 0, args
        assert "no configuration here" in str(result.exception) or "no configuration here" in (
            result.output
        )
    assert list(tmp_path.iterdir()) == []
    assert runner.invoke(app, ["policy", "show"]).exit_code == 0


def test_a_demo_too_short_for_its_outage_is_refused(tmp_path: Path) -> None:
    """The outage is on day 3: a two-day demo would pass without one."""
    result = runner.invoke(app, ["demo", "--days", "2", "--folder", str(tmp_path / "d")])
    assert result.exit_code == 2
    assert "--days" in result.output
    assert not (tmp_path / "d").exists()
