"""Operating the hub from the command line: worker, dead letters, downtime controls."""

import json
from pathlib import Path

from revbridge.cli.main import app
from tests.integration.conftest import run_json, runner


def test_init_generate_ingest_worker_delivers_every_real_time_event(workdir: Path) -> None:
    """The embedded default needs nothing else: the fakes keep their records next to the config."""
    runner.invoke(app, ["generate", "-n", "300", "--seed", "4", "--out", "ev.jsonl"])
    run_json(["ingest", "ev.jsonl", "--json"])
    stats = run_json(["worker", "--until-idle", "--json"])
    assert stats["delivered"] > 0
    assert stats["dead_lettered"] == 0
    status = run_json(["status", "--json"])
    by_pattern = status["events"]["by_pattern"]
    assert set(by_pattern["realtime"]) == {"delivered"}  # nothing real-time left behind
    erp = json.loads((workdir / "fake-erp.json").read_text())
    refs = [(d["kind"], d["external_ref"]) for d in erp["docs"]]
    assert len(refs) == len(set(refs))  # and nothing twice
    # Running the worker again finds nothing due and calls nothing.
    assert run_json(["worker", "--until-idle", "--json"])["calls"] == 0


def test_a_paused_erp_buffers_and_resume_drains(workdir: Path) -> None:
    runner.invoke(app, ["generate", "-n", "120", "--seed", "2", "--out", "ev.jsonl"])
    run_json(["ingest", "ev.jsonl", "--json"])
    assert (
        runner.invoke(
            app, ["dr", "pause", "erp", "--reason", "ERP upgrade", "--actor", "kim"]
        ).exit_code
        == 0
    )
    report = run_json(["dr", "status", "--json"])
    assert report["erp"]["paused"] is True
    assert report["erp"]["paused_reason"] == "ERP upgrade"
    run_json(["worker", "--until-idle", "--json"])
    assert run_json(["dr", "status", "--json"])["erp"]["backlog"]["pending"] > 0
    assert runner.invoke(app, ["dr", "resume", "erp", "--actor", "kim"]).exit_code == 0
    drained = run_json(["dr", "drain", "--json"])
    assert drained["delivered"] > 0
    assert (
        run_json(["dr", "status", "--json"])["erp"]["oldest_undelivered_age_s"] is not None
    )  # batch


def test_dead_letters_are_listed_shown_and_replayed_with_an_audit_trail(workdir: Path) -> None:
    runner.invoke(app, ["generate", "-n", "60", "--seed", "1", "--out", "ev.jsonl"])
    envs = [json.loads(line) for line in (workdir / "ev.jsonl").read_text().splitlines()]
    period = next(e for e in envs if e["type"] == "invoice.posted")["data"]["invoice_date"][:7]
    (workdir / "fake-erp.json").write_text(
        json.dumps({"next_id": 1, "closed_periods": [period], "credit_hold": [], "docs": []})
    )
    run_json(["ingest", "ev.jsonl", "--json"])
    run_json(["worker", "--until-idle", "--json"])
    dead = run_json(["dlq", "list", "--json"])["dead_letters"]
    assert dead
    assert all(f"period {period} is closed" in d["last_error"] for d in dead)
    shown = run_json(["dlq", "show", str(dead[0]["id"])])
    assert shown["delivery"]["state"] == "dead_letter"
    assert shown["attempts"][-1]["outcome"] == "dead_letter"
    # The accountant reopens the period; an operator replays.
    state = json.loads((workdir / "fake-erp.json").read_text())
    state["closed_periods"] = []
    (workdir / "fake-erp.json").write_text(json.dumps(state))
    result = runner.invoke(
        app, ["dlq", "replay", "--all", "--reason", "period reopened", "--actor", "ana"]
    )
    assert result.exit_code == 0
    run_json(["worker", "--until-idle", "--json"])
    assert run_json(["dlq", "list", "--json"])["dead_letters"] == []
    trail = run_json(["dlq", "show", str(dead[0]["id"])])["audit"]
    assert [a["action"] for a in trail] == ["dead_letter", "replay"]
    assert trail[1]["actor"] == "ana"
    assert trail[1]["reason"] == "period reopened"
