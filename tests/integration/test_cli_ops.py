"""Operating the hub from the command line: worker, dead letters, downtime controls."""

import json
import re
import sys
from pathlib import Path

import pytest

from revbridge.cli.main import app, main
from revbridge.engine.worker import WorkerStats
from tests.integration.conftest import JSON_TIMESTAMP, run_json, runner


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
    # A second pause changes nothing and says so: the first reason stands, one audit row.
    again = runner.invoke(app, ["dr", "pause", "erp", "--reason", "oops", "--actor", "lee"])
    assert again.exit_code == 0
    assert "already paused (reason: ERP upgrade)" in again.stdout
    report = run_json(["dr", "status", "--json"])
    assert report["erp"]["paused"] is True
    assert report["erp"]["paused_reason"] == "ERP upgrade"
    run_json(["worker", "--until-idle", "--json"])
    assert run_json(["dr", "status", "--json"])["erp"]["backlog"]["pending"] > 0
    assert runner.invoke(app, ["dr", "resume", "erp", "--actor", "kim"]).exit_code == 0
    assert "not paused" in runner.invoke(app, ["dr", "resume", "erp"]).stdout
    trail = _ledger_rows(
        workdir,
        "SELECT action, actor, from_state, to_state FROM audit_log "
        "WHERE entity_type = 'target' ORDER BY id",
    )
    assert trail == [("pause", "kim", "running", "paused"), ("resume", "kim", "paused", "running")]
    drained = run_json(["dr", "drain", "--json"])
    assert drained["delivered"] > 0
    # What is left waits for its batch run: scheduled, not backlog, and it does not age it.
    erp = run_json(["dr", "status", "--json"])["erp"]
    assert erp["backlog"] == {"pending": 0, "parked": 0, "in_flight": 0}
    assert erp["scheduled"] > 0
    assert erp["oldest_undelivered_age_s"] is None
    # `status` counts them as `dr status` does (over the targets): scheduled, not pending.
    status = run_json(["status", "--json"])
    by_state = status["events"]["by_state"]
    scheduled = sum(t["scheduled"] for t in run_json(["dr", "status", "--json"]).values())
    assert by_state["pending"] == 0
    assert by_state["scheduled"] == status["events"]["scheduled"] == scheduled > 0
    assert status["oldest_pending_age_s"] is None
    table = runner.invoke(app, ["dr", "status"]).stdout
    assert "scheduled" in table
    shown = runner.invoke(app, ["status"]).stdout
    assert re.search(rf"scheduled\s+│\s+{scheduled}\s", shown), shown
    assert re.search(r"pending\s+│\s+0\s", shown), shown
    # Every accepted event accounted for, superseded apart from delivered.
    found = re.search(
        r"accepted (\d+) = delivered (\d+) \+ superseded (\d+) \+ dead-lettered (\d+) "
        r"\+ on their way (\d+)",
        shown,
    )
    assert found, shown
    accepted, *parts = (int(n) for n in found.groups())
    assert accepted == status["events"]["total"] == sum(parts)
    assert parts[-1] == scheduled


def test_a_drain_rate_that_is_not_positive_is_a_clear_error_not_a_traceback(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for rate in ("0", "-2"):
        monkeypatch.setattr(sys, "argv", ["revbridge", "dr", "drain", "--rate", rate])
        with pytest.raises(SystemExit) as exited:
            main()
        assert exited.value.code == 2
        said = capsys.readouterr()
        assert "--rate must be a positive number of calls a second" in said.err
        assert "Traceback" not in said.err + said.out


def test_a_drain_while_the_erp_is_down_probes_once_says_so_exits_1_and_is_audited(
    workdir: Path,
) -> None:
    """Right after `dr resume`, the circuit still open: the drain probes at once; with the
    ERP still down it says when the next probe is and exits 1; once the ERP answers, the
    next drain delivers. Each is in the audit log with who and why."""
    runner.invoke(app, ["generate", "-n", "120", "--seed", "2", "--out", "ev.jsonl"])
    run_json(["ingest", "ev.jsonl", "--json"])
    config = workdir / "revbridge.toml"
    healthy = config.read_text()
    _set(workdir, "erp", 'faults = "down=1"')
    run_json(["worker", "--until-idle", "--json"])
    assert run_json(["dr", "status", "--json"])["erp"]["circuit"] == "open"
    args = ["dr", "drain", "erp", "--rate", "5", "--actor", "kim", "--reason", "upgrade over"]
    down = runner.invoke(app, args)
    assert down.exit_code == 1
    assert "erp: circuit open, next probe in 30 s" in down.stderr
    said = down.stdout + down.stderr
    assert said.count("circuit open, next probe in") == 1  # once, on one stream
    config.write_text(healthy)
    up = runner.invoke(app, [*args, "--json"])
    assert up.exit_code == 0, up.output
    assert json.loads(up.stdout)["targets"]["erp"]["probed"] is True
    assert json.loads(up.stdout)["delivered"] > 0
    assert run_json(["dr", "status", "--json"])["erp"]["circuit"] == "closed"
    rows = _ledger_rows(
        workdir,
        "SELECT actor, entity_type, entity_id, reason FROM audit_log WHERE action = 'drain'",
    )
    assert [r[:3] for r in rows] == [("kim", "target", "erp")] * 2
    assert all("upgrade over (at most 5 calls/s" in r[3] for r in rows)
    assert "still waiting: erp: circuit open" in rows[0][3]
    assert "delivered" in rows[1][3]


def test_dead_letters_are_listed_shown_and_replayed_with_an_audit_trail(workdir: Path) -> None:
    period = _ingest_with_a_closed_period(workdir)
    run_json(["worker", "--until-idle", "--json"])
    listed = run_json(["dlq", "list", "--json"])
    dead = listed["dead_letters"]
    assert len(dead) == listed["total"] > 2
    assert all(f"period {period} is closed" in d["last_error"] for d in dead)
    # A short list says it is short: in the title, and as the total in --json.
    first = run_json(["dlq", "list", "--limit", "2", "--json"])
    assert [d["id"] for d in first["dead_letters"]] == [d["id"] for d in dead[:2]]
    assert first["total"] == len(dead)
    assert f"showing 2 of {len(dead)}" in runner.invoke(app, ["dlq", "list", "--limit", "2"]).stdout
    # An id names one dead letter: --type with it is a usage error, not "not in the queue".
    mixed = runner.invoke(app, ["dlq", "replay", str(dead[0]["id"]), "--type", "gl.posted"])
    assert mixed.exit_code == 2
    assert "--type goes with --all" in mixed.stderr
    shown = run_json(["dlq", "show", str(dead[0]["id"]), "--json"])
    assert shown["delivery"]["state"] == "dead_letter"
    assert shown["attempts"][-1]["outcome"] == "dead_letter"
    # Its times as the API writes them: ISO 8601 in UTC with Z (decision 0028).
    times = [
        shown["event"]["received_at"],
        shown["event"]["occurred_at"],
        shown["delivery"]["updated_at"],
        shown["attempts"][-1]["started_at"],
        shown["attempts"][-1]["finished_at"],
        shown["audit"][-1]["at"],
    ]
    assert all(JSON_TIMESTAMP.fullmatch(t) for t in times), times
    # A replay says why, as the API requires.
    unexplained = runner.invoke(app, ["dlq", "replay", "--all"])
    assert unexplained.exit_code == 2
    assert "--reason is required" in unexplained.stderr
    # The accountant reopens the period; an operator replays.
    state = json.loads((workdir / "fake-erp.json").read_text())
    state["closed_periods"] = []
    (workdir / "fake-erp.json").write_text(json.dumps(state))
    result = runner.invoke(
        app, ["dlq", "replay", "--all", "--reason", "period reopened", "--actor", "ana"]
    )
    assert result.exit_code == 0
    assert result.stdout.startswith(f"replayed {len(dead)} dead letters; run ")
    run_json(["worker", "--until-idle", "--json"])
    assert run_json(["dlq", "list", "--json"])["dead_letters"] == []
    trail = run_json(["dlq", "show", str(dead[0]["id"]), "--json"])["audit"]
    assert [a["action"] for a in trail] == ["dead_letter", "replay"]
    assert trail[1]["actor"] == "ana"
    assert trail[1]["reason"] == "period reopened"


def test_token_list_shows_when_with_the_zone(workdir: Path) -> None:
    """Created and last used as people read them, in UTC and saying so (decision 0028)."""
    made = runner.invoke(app, ["token", "create", "--name", "ops"])
    assert made.exit_code == 0
    listed = runner.invoke(app, ["token", "list"], env={"COLUMNS": "120"}).stdout
    (row,) = [line for line in listed.splitlines() if "ops" in line]
    assert re.search(r"│ \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC │ - ", row), listed


def test_a_revoked_tokens_name_is_refused_with_why_and_what_to_do(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A revoked name stays taken (the audit log names one token): the refusal says so, and
    what to do, rather than that the token "already exists" when the list shows it revoked."""

    def create(name: str) -> int:
        monkeypatch.setattr(sys, "argv", ["revbridge", "token", "create", "--name", name])
        with pytest.raises(SystemExit) as exited:
            main()
        return int(exited.value.code or 0)

    assert create("kim") == 0
    assert create("kim") == 2
    assert "a token named 'kim' already exists" in capsys.readouterr().err
    assert runner.invoke(app, ["token", "revoke", "kim"]).exit_code == 0
    assert create("kim") == 2
    said = capsys.readouterr().err
    assert re.search(r"'kim' was revoked on \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", said), said
    assert "choose another name, e.g. kim-2" in said
    assert create("kim-2") == 0


def _ingest_with_a_closed_period(workdir: Path) -> str:
    """Ingest 60 events into a fake ERP whose first invoice's period is closed: those
    invoices are dead letters once a worker runs. Returns the period."""
    runner.invoke(app, ["generate", "-n", "60", "--seed", "1", "--out", "ev.jsonl"])
    envs = [json.loads(line) for line in (workdir / "ev.jsonl").read_text().splitlines()]
    period = next(e for e in envs if e["type"] == "invoice.posted")["data"]["invoice_date"][:7]
    (workdir / "fake-erp.json").write_text(
        json.dumps({"next_id": 1, "closed_periods": [period], "credit_hold": [], "docs": []})
    )
    run_json(["ingest", "ev.jsonl", "--json"])
    return period


def _set(workdir: Path, section: str, line: str) -> None:
    """Add ``line`` to a section of the config `init` wrote."""
    config = workdir / "revbridge.toml"
    config.write_text(config.read_text().replace(f"[{section}]\n", f"[{section}]\n{line}\n", 1))


def _ledger_rows(workdir: Path, sql: str) -> list[tuple]:  # type: ignore[type-arg]
    import sqlite3

    with sqlite3.connect(workdir / "revbridge.db") as db:
        return db.execute(sql).fetchall()


def test_a_batch_run_to_salesforce_writes_what_became_of_each_item(workdir: Path) -> None:
    """A class without an import file (GL postings to Salesforce) is delivered record by
    record: with Salesforce down the command says so, exits 1 and leaves nothing in flight;
    then its outcomes are written and its calls counted before the command ends."""
    runner.invoke(app, ["generate", "-n", "300", "--seed", "4", "--out", "ev.jsonl"])
    run_json(["ingest", "ev.jsonl", "--json"])
    config = workdir / "revbridge.toml"
    # Every item is attempted (no circuit opening midway), so each is called twice below.
    config.write_text(config.read_text().replace("threshold = 5", "threshold = 999"))
    healthy = config.read_text()
    _set(workdir, "salesforce", 'faults = "down=1"')
    down = runner.invoke(app, ["batch", "run", "--class", "gl.posted", "--json"])
    assert down.exit_code == 1
    (report,) = json.loads(down.stdout)["batches"]
    assert report["retried"] == report["items"] > 0
    in_flight = "SELECT count(*) FROM deliveries WHERE state = 'in_flight'"
    assert _ledger_rows(workdir, in_flight) == [(0,)]

    config.write_text(healthy)
    (gl,) = run_json(["batch", "run", "--class", "gl.posted", "--json"])["batches"]
    assert gl["delivered"] == gl["items"] == report["items"]
    states = _ledger_rows(
        workdir,
        "SELECT d.state, count(*) FROM deliveries d JOIN events e ON e.id = d.event_id "
        "WHERE e.type = 'gl.posted' GROUP BY d.state",
    )
    assert states == [("delivered", gl["items"])]
    calls = _ledger_rows(workdir, "SELECT sum(calls) FROM api_calls WHERE event_type = 'gl.posted'")
    assert calls == [(2 * gl["items"],)]  # each item called twice: down, then delivered
    runner.invoke(app, ["generate", "-n", "300", "--seed", "5", "--out", "more.jsonl"])
    run_json(["ingest", "more.jsonl", "--json"])
    shown = runner.invoke(
        app, ["batch", "run", "--class", "customer.upserted"], env={"COLUMNS": "80"}
    )
    (path,) = (workdir / "batches").rglob("*customer.upserted/records.jsonl")
    assert str(path) in shown.output  # the path whole, on one line, to copy
    sent = runner.invoke(app, ["batch", "run", "--class", "gl.posted"], env={"COLUMNS": "80"})
    assert "sent record by record to salesforce (no file)" in sent.output
    again = runner.invoke(app, ["batch", "run", "--class", "gl.posted"], env={"COLUMNS": "80"})
    assert "nothing due" in again.output


def test_a_batch_run_respects_a_pause_and_a_failed_one_exits_1_and_alerts(
    workdir: Path,
) -> None:
    runner.invoke(app, ["generate", "-n", "200", "--seed", "2", "--out", "ev.jsonl"])
    run_json(["ingest", "ev.jsonl", "--json"])
    run_json(["worker", "--until-idle", "--json"])  # real time, and the customers it needs
    runner.invoke(app, ["dr", "pause", "erp", "--reason", "upgrade", "--actor", "kim"])
    paused = runner.invoke(
        app, ["batch", "run", "--class", "customer.upserted", "--actor", "lee", "--json"]
    )
    assert paused.exit_code == 1
    (report,) = json.loads(paused.stdout)["batches"]
    assert "paused" in report["skipped"]
    assert report["items"] == 0
    assert not (workdir / "batches").exists() or not any((workdir / "batches").rglob("*.jsonl"))
    audit = _ledger_rows(
        workdir, "SELECT actor, to_state FROM audit_log WHERE action = 'batch_run'"
    )
    assert audit == [("lee", "skipped")]
    shown = runner.invoke(
        app, ["batch", "run", "--class", "customer.upserted"], env={"COLUMNS": "80"}
    )
    assert "skipped: " in shown.output
    assert "erp is paused" in " ".join(shown.output.split())  # why, whole, under the class

    runner.invoke(app, ["dr", "resume", "erp", "--actor", "kim"])
    _set(workdir, "erp", 'faults = "down=1"')
    failed = runner.invoke(app, ["batch", "run", "--class", "revenue.recognized", "--json"])
    assert failed.exit_code == 1  # a scheduler sees it
    (report,) = json.loads(failed.stdout)["batches"]
    assert report["retried"] == report["items"] > 0
    alerts = _ledger_rows(workdir, "SELECT key FROM alerts WHERE resolved_at IS NULL")
    assert ("batch_failed:revenue.recognized",) in alerts
    # The alert points to what helps: the items retry (they are not dead letters), the
    # command that retries them now, and the submission's own error.
    ((body,),) = _ledger_rows(
        workdir, "SELECT body FROM alerts WHERE key = 'batch_failed:revenue.recognized'"
    )
    ((summary,),) = _ledger_rows(workdir, "SELECT summary FROM batches ORDER BY id DESC LIMIT 1")
    assert "`revbridge batch run --class revenue.recognized`" in body
    assert "dlq list" not in body
    assert json.loads(summary)["error"] in body
    # Run again (the incident's alert is already open): the operator still reads why.
    again = runner.invoke(app, ["batch", "run", "--class", "revenue.recognized"])
    assert again.exit_code == 1
    assert f"{report['items']} to retry: " in again.stderr
    assert "down" in again.stderr.split("to retry: ", 1)[1]
    third = runner.invoke(app, ["batch", "run", "--class", "revenue.recognized", "--json"])
    (report,) = json.loads(third.stdout)["batches"]
    assert "down" in report["error"]


def test_the_first_session_captures_from_the_fake_erp(workdir: Path) -> None:
    """`capture erp` on the config `init` writes: the fake ERP says what changed (credit
    positions of the customers it holds), once, and the worker writes it back."""
    runner.invoke(app, ["generate", "-n", "300", "--seed", "4", "--out", "ev.jsonl"])
    run_json(["ingest", "ev.jsonl", "--json"])
    run_json(["worker", "--until-idle", "--json"])
    first = runner.invoke(app, ["capture", "erp"])
    assert first.exit_code == 0, first.output
    assert "accepted=0" not in first.output
    again = runner.invoke(app, ["capture", "erp"])
    assert again.exit_code == 0
    assert "read=0" in again.output  # from the watermark on
    stats = run_json(["worker", "--until-idle", "--json"])
    assert stats["delivered"] > 0
    assert stats["dead_lettered"] == 0
    # Every call counts against the systems' budgets: the captures, and the read-backs of a
    # reconciliation, beside the deliveries.
    runner.invoke(app, ["recon", "run", "--scope", "nightly", "--period", "2026-10-15"])
    calls = dict(
        _ledger_rows(
            workdir,
            "SELECT target || ' ' || event_type || ' ' || pattern, calls FROM api_calls "
            "WHERE event_type IN ('capture', 'reconciliation')",
        )
    )
    assert calls["erp capture poll"] == 2
    assert calls["erp reconciliation read-back"] > 0
    assert calls["salesforce reconciliation read-back"] > 0


def test_capture_erp_by_hand_names_the_system_when_it_fails(workdir: Path) -> None:
    """A failure that is not a refused call (here a watermark that is not one) was a
    traceback that named no system; it is one line naming it, as the worker's loop says."""
    assert runner.invoke(app, ["capture", "erp"]).exit_code == 0  # the watermark, written
    _ledger_write(workdir, "UPDATE watermarks SET value = ? WHERE name = ?", ("x", "erp:fake-erp"))
    failed = runner.invoke(app, ["capture", "erp"])
    assert failed.exit_code == 2
    (said,) = failed.stderr.splitlines()
    assert said.startswith("error: capture from fake-erp failed: ValueError: ")
    assert said.endswith("'x'")


def test_an_event_type_moved_to_real_time_in_the_config_takes_its_waiting_deliveries(
    workdir: Path,
) -> None:
    """GL postings are nightly by default; the operator makes them real-time in the config:
    those already waiting for the night go at the next worker run, and the move is audited."""
    runner.invoke(app, ["generate", "-n", "300", "--seed", "4", "--out", "ev.jsonl"])
    run_json(["ingest", "ev.jsonl", "--json"])
    run_json(["worker", "--until-idle", "--json"])
    waiting = (
        "SELECT d.state, d.pattern, count(*) FROM deliveries d "
        "JOIN events e ON e.id = d.event_id WHERE e.type = 'gl.posted' GROUP BY 1, 2"
    )
    (before,) = _ledger_rows(workdir, waiting)
    assert before[:2] == ("pending", "batch")
    config = workdir / "revbridge.toml"
    config.write_text(
        config.read_text()
        + '\n[policy.events."gl.posted"]\npattern = "realtime"\n'
        + 'rationale = "finance reconciles GL postings during the day"\n'
    )
    stats = run_json(["worker", "--until-idle", "--json"])
    assert stats["delivered"] >= before[2]
    assert _ledger_rows(workdir, waiting) == [("delivered", "realtime", before[2])]
    audit = _ledger_rows(
        workdir, "SELECT entity_id, to_state, reason FROM audit_log WHERE action = 'reroute'"
    )
    assert [(a[0], a[1]) for a in audit] == [("gl.posted", "realtime")]
    assert f"{before[2]} waiting deliveries moved" in audit[0][2]


def test_waiting_lists_what_each_parked_delivery_waits_for(workdir: Path) -> None:
    """A payment whose customer and invoice have not come yet waits for them, visibly."""
    runner.invoke(app, ["generate", "-n", "300", "--seed", "4", "--out", "ev.jsonl"])
    envs = [json.loads(line) for line in (workdir / "ev.jsonl").read_text().splitlines()]
    pay = next(e for e in envs if e["type"] == "payment.received")
    customer = f"customer:{pay['data']['customer_id']}"
    (workdir / "pay.jsonl").write_text(json.dumps(pay) + "\n")
    run_json(["ingest", "pay.jsonl", "--json"])
    run_json(["worker", "--until-idle", "--json"])
    waiting = run_json(["waiting", "--json"])["waiting"]
    assert [(w["type"], w["state"], w["parked_on"]) for w in waiting] == [
        ("payment.received", "parked", customer)
    ]
    table = runner.invoke(app, ["waiting"], env={"COLUMNS": "80"})
    assert "waiting (1 shown)" in table.output
    # At 80 columns, each reference whole on its line (a table folded them into pieces).
    assert f"payment:{pay['data']['payment_id']}" in table.output
    assert f"waits for {customer}" in table.output


def test_worker_until_idle_waits_out_a_short_429_and_says_what_is_left(workdir: Path) -> None:
    """A 429 with a one-second Retry-After is waited out: the run delivers everything due.
    With the ERP down, the run ends with the circuit open and says so, on stderr, with the
    count of what is left."""
    runner.invoke(app, ["generate", "-n", "200", "--seed", "2", "--out", "ev.jsonl"])
    run_json(["ingest", "ev.jsonl", "--json"])
    _set(workdir, "erp", 'faults = "throttle_next=3"')
    throttled = runner.invoke(app, ["worker", "--until-idle"])
    assert throttled.exit_code == 0, throttled.output
    assert "left:" not in throttled.stderr
    due = _ledger_rows(
        workdir,
        "SELECT count(*) FROM deliveries WHERE state = 'pending' AND pattern = 'realtime'"
        " AND target = 'erp'",
    )
    assert due == [(0,)]

    runner.invoke(app, ["generate", "-n", "200", "--seed", "3", "--out", "more.jsonl"])
    runner.invoke(app, ["ingest", "more.jsonl"])  # (a few ids of the first file: conflicts)
    config = workdir / "revbridge.toml"
    config.write_text(config.read_text().replace('"throttle_next=3"', '"down=1"'))
    down = runner.invoke(app, ["worker", "--until-idle"])
    assert down.exit_code == 0
    assert "due for erp not delivered: erp: circuit open, next probe in" in down.stderr


def test_dr_status_shows_a_429_pause_in_a_few_columns(workdir: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from revbridge.engine.targets_state import record_hold
    from revbridge.store.db import create_store_engine

    assert runner.invoke(app, ["dr", "status"]).exit_code == 0  # the ledger, created
    engine = create_store_engine(f"sqlite:///{workdir / 'revbridge.db'}")
    now = datetime.now(UTC)
    until = now + timedelta(minutes=5)
    record_hold(engine, "erp", until=until, now=now)
    engine.dispose()
    shown = runner.invoke(app, ["dr", "status"], env={"COLUMNS": "80"})
    assert shown.exit_code == 0
    (row,) = [line for line in shown.stdout.splitlines() if line.startswith("erp ")]
    assert "closed (429)" in row
    assert len(row) <= 80
    assert f"erp: 429, no calls until {until:%Y-%m-%d %H:%M:%S} UTC" in shown.stdout
    # In JSON, as the API writes it (decision 0028).
    held = run_json(["dr", "status", "--json"])["erp"]["retry_after_until"]
    assert JSON_TIMESTAMP.fullmatch(held), held
    assert datetime.fromisoformat(held) == until


def test_a_drain_says_how_far_it_is_on_stderr_and_keeps_its_summary_on_stdout(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """stderr not a terminal (a log, a pipe): a plain line every so often; the summary on
    stdout is unchanged."""
    from revbridge.cli import _progress

    monkeypatch.setattr(_progress, "PLAIN_EVERY", 0.0)  # every report, not every 10 s
    runner.invoke(app, ["generate", "-n", "120", "--seed", "2", "--out", "ev.jsonl"])
    run_json(["ingest", "ev.jsonl", "--json"])
    drained = runner.invoke(app, ["dr", "drain", "erp", "--rate", "50"])
    assert drained.exit_code == 0, drained.output
    assert drained.stdout.startswith("delivered=")
    # Its totals on one line, piped as here: not folded at 80 columns.
    totals = drained.stdout.splitlines()[0]
    assert len(totals) > 80
    assert [kv.split("=")[0] for kv in totals.split()] == list(WorkerStats.__slots__)
    assert "erp: made due now" in drained.stdout
    assert "left" not in drained.stdout
    lines = drained.stderr.splitlines()
    assert lines
    assert all(line.startswith("erp: delivered ") for line in lines)
    assert ", left " in lines[0]
    assert "/s, ETA " in lines[0]


def test_a_drain_on_a_terminal_shows_a_progress_bar() -> None:
    import io

    from rich.console import Console

    from revbridge.cli._progress import drain_progress
    from revbridge.services.drain import DrainProgress

    shown = io.StringIO()
    tty = Console(file=shown, force_terminal=True, width=120)
    with drain_progress(tty) as on_progress:
        on_progress(DrainProgress(target="erp", delivered=0, handled=0, left=10_000, elapsed_s=0))
        on_progress(DrainProgress(target="erp", delivered=50, handled=50, left=9950, elapsed_s=10))
    text = shown.getvalue()
    assert "erp" in text
    assert "━" in text
    assert "delivered 50, left 9950, 5.0/s, ETA 33 min 10 s" in text


def test_a_drain_of_a_paused_target_says_why_once_on_one_line(workdir: Path) -> None:
    """Not "still waiting:" at the end of a line with the reason on the next, then the
    reason again on stderr: the summary says what it did, stderr says once why it stops."""
    runner.invoke(app, ["generate", "-n", "40", "--seed", "2", "--out", "ev.jsonl"])
    run_json(["ingest", "ev.jsonl", "--json"])
    assert runner.invoke(app, ["dr", "pause", "erp"]).exit_code == 0
    drained = runner.invoke(app, ["dr", "drain", "erp"])
    assert drained.exit_code == 1
    assert "still waiting" not in drained.stdout
    assert "erp: made due now: 0 waiting out a backoff; nothing delivered\n" in drained.stdout
    why = "erp is paused: resume it first (`revbridge dr resume erp`)"
    assert drained.stderr == why + "\n"


def test_the_audit_log_is_read_from_the_command_line(workdir: Path) -> None:
    """The runbook's "it is in the audit log": `revbridge audit`, newest first, filtered,
    timestamps with their zone."""
    runner.invoke(app, ["dr", "pause", "erp", "--reason", "ERP upgrade", "--actor", "kim"])
    runner.invoke(app, ["dr", "resume", "erp", "--reason", "upgrade over", "--actor", "kim"])
    runner.invoke(app, ["dr", "drain", "erp", "--reason", "after the upgrade", "--actor", "lee"])
    trail = run_json(["audit", "--entity-type", "target", "--entity", "erp", "--json"])
    actions = [a["action"] for a in trail["audit"]]
    assert actions == ["drain", "drain_started", "resume", "pause"]
    assert trail["total"] == 4
    assert trail["audit"][-1]["at"].endswith("Z")  # decision 0028
    drains = run_json(["audit", "--action", "drain", "--since", "10min", "--json"])
    assert [(a["actor"], a["entity_id"]) for a in drains["audit"]] == [("lee", "erp")]
    assert run_json(["audit", "--since", "2999-01-01", "--json"]) == {"audit": [], "total": 0}
    table = runner.invoke(app, ["audit", "--limit", "2"])
    assert table.exit_code == 0, table.output
    assert "audit log, newest first (showing 2 of 4)" in table.stdout
    assert "drain_started" in table.stdout
    assert " UTC" in table.stdout
    assert "resume" not in table.stdout
    assert "2 more: raise --limit" in table.stdout
    bad = runner.invoke(app, ["audit", "--since", "yesterday"])
    assert bad.exit_code != 0


def test_dlq_show_lists_every_attempt_reads_well_and_says_what_is_parked_behind(
    workdir: Path,
) -> None:
    """`dlq show` said "attempts": 2 and listed one: an attempt whose worker lost its lease
    writes no outcome, only the audit's lease_expired. Every attempt is listed, the payload
    is an object in --json, the default output is for people, and a dead letter says how
    many deliveries are parked behind it (replaying it releases them)."""
    period = _ingest_with_a_closed_period(workdir)
    # What a worker killed mid-call leaves once its lease is recovered: the attempt counted,
    # no outcome, a lease_expired row in the audit log.
    (first,) = _ledger_rows(
        workdir,
        "SELECT d.event_id FROM deliveries d JOIN events e ON e.id = d.event_id "
        f"WHERE e.type = 'invoice.posted' AND e.payload LIKE '%\"invoice_date\":\"{period}%' "
        "ORDER BY d.event_id LIMIT 1",
    )
    _ledger_write(
        workdir,
        "UPDATE deliveries SET attempts = 1 WHERE event_id = ?",
        first,
    )
    _ledger_write(
        workdir,
        "INSERT INTO audit_log (at, actor, action, entity_type, entity_id, from_state, "
        "to_state, reason) VALUES ('2026-11-02 09:00:00.000000', 'engine', 'lease_expired', "
        "'event', ?, 'in_flight', 'pending', 'lease expired; next attempt looks it up first')",
        (str(first[0]),),
    )
    run_json(["worker", "--until-idle", "--json"])
    shown = run_json(["dlq", "show", str(first[0]), "--json"])
    assert shown["delivery"]["attempts"] == 2
    assert [(a["attempt_no"], a["outcome"]) for a in shown["attempts"]] == [
        (1, "lease_expired"),
        (2, "dead_letter"),
    ]
    assert shown["attempts"][0]["error"] == "lease expired; next attempt looks it up first"
    assert isinstance(shown["event"]["payload"], dict)  # an object, not an escaped string
    assert shown["event"]["payload"]["invoice_date"].startswith(period)
    text = runner.invoke(app, ["dlq", "show", str(first[0])])
    assert text.exit_code == 0, text.output
    assert f"dlq show {first[0]}" in text.stdout
    assert "dead_letter after 2 attempts" in text.stdout
    assert "lease_expired" in text.stdout
    assert "2026-11-02 09:00:00 UTC" in text.stdout  # when, with its zone
    assert '"invoice_date": "' in text.stdout  # the payload, pretty-printed
    assert '\\"' not in text.stdout  # no escaped JSON
    # Deliveries parked behind a dead letter: counted in the list and in show.
    listed = run_json(["dlq", "list", "--json"])["dead_letters"]
    parked = {d["id"]: d["parked_behind"] for d in listed if d["parked_behind"]}
    waiting = run_json(["waiting", "--json"])["waiting"]
    assert sum(parked.values()) == len(waiting) > 0
    some = next(iter(parked))
    assert run_json(["dlq", "show", str(some), "--json"])["parked_behind"] == parked[some]
    note = "parked behind it: replaying releases them (see `revbridge waiting`)"
    said = runner.invoke(app, ["dlq", "show", str(some)]).stdout.replace("│", " ")
    assert f"{parked[some]} deliver" in " ".join(said.split())
    assert note in " ".join(said.split())
    assert "parked behind these dead letters" in runner.invoke(app, ["dlq", "list"]).stdout


def _ledger_write(workdir: Path, sql: str, params: tuple) -> None:  # type: ignore[type-arg]
    import sqlite3

    with sqlite3.connect(workdir / "revbridge.db") as db:
        db.execute(sql, params)


def test_the_workers_capture_loop_names_the_system_and_stream_it_failed_on(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`capture failed: connection refused: the system is down` left the reader to guess
    which system: the line names it and its capture stream."""
    import asyncio
    from types import SimpleNamespace

    from revbridge.cli.main import _capture_loop
    from revbridge.config import load_settings
    from revbridge.services import open_ledger
    from revbridge.testing import FakeErp, Faults

    settings = load_settings(workdir / "revbridge.toml")
    ledger = open_ledger(settings)
    erp = FakeErp(faults=Faults(down=True))
    w = SimpleNamespace(targets={"erp": SimpleNamespace(port=erp)}, wakeup=asyncio.Event())

    async def one_round() -> None:
        stop = asyncio.Event()
        loop = asyncio.create_task(_capture_loop(settings, ledger, w, stop))
        await asyncio.sleep(0.2)
        stop.set()
        await loop

    asyncio.run(one_round())
    ledger.engine.dispose()
    said = capsys.readouterr().err
    assert (
        "capture failed from fake-erp (stream erp:fake-erp): "
        "connection refused: the system is down" in said
    )


def test_dlq_list_and_audit_read_at_80_columns(workdir: Path) -> None:
    """At 80 columns a table folded `invoice.posted`, the source id and the error into
    pieces of a few letters each: each entry's ids and names keep one line, its error or
    reason is wrapped whole beneath it."""
    _ingest_with_a_closed_period(workdir)
    run_json(["worker", "--until-idle", "--json"])
    first = run_json(["dlq", "list", "--json"])["dead_letters"][0]
    listed = runner.invoke(app, ["dlq", "list", "--limit", "3"], env={"COLUMNS": "80"})
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), listed.stdout
    (row,) = [line for line in lines if line.startswith(f"{first['id']}  ")]
    assert row.split() == [
        str(first["id"]),
        "invoice.posted",
        first["source_id"],
        "erp",
        "1",
        *([str(first["parked_behind"])] if first["parked_behind"] else []),
    ]
    below = lines[lines.index(row) + 1]
    assert below.strip() == first["last_error"]  # whole, on one line when it fits
    runner.invoke(app, ["dr", "pause", "erp", "--reason", "ERP upgrade", "--actor", "kim"])
    trail = runner.invoke(app, ["audit", "--limit", "5"], env={"COLUMNS": "80"})
    assert trail.exit_code == 0, trail.output
    lines = trail.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), trail.stdout
    (row,) = [line for line in lines if " kim " in line]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC +kim +pause +target erp", row)
    assert lines[lines.index(row) + 1] == "    running → paused: ERP upgrade"
    dead = [line for line in lines if " dead_letter " in line]
    assert dead
    said = lines[lines.index(dead[0]) + 1].strip()
    assert said.startswith("in_flight → dead_letter: terminal: period ")


def test_status_says_a_paused_sides_capture_is_paused_not_failing(workdir: Path) -> None:
    """The alerts and the console leave a paused side's capture alone (it is skipped on
    purpose); `status` said it was failing, in yellow. All three now agree."""
    from datetime import UTC, datetime, timedelta

    from revbridge.config import load_settings
    from revbridge.services import open_ledger
    from revbridge.services.capture import record_capture

    engine = open_ledger(load_settings(workdir / "revbridge.toml")).engine
    now = datetime.now(UTC)
    record_capture(engine, "erp:fake-erp", now - timedelta(hours=1))
    record_capture(engine, "erp:fake-erp", now, error="ConnectionError: down")
    record_capture(engine, "salesforce:org", now)
    engine.dispose()
    said = runner.invoke(app, ["status"]).stdout
    assert "capture erp:fake-erp: failing since" in said
    assert "ConnectionError: down" in said
    assert "capture salesforce:org: ok, last success" in said
    assert runner.invoke(app, ["dr", "pause", "erp", "--reason", "upgrade"]).exit_code == 0
    said = runner.invoke(app, ["status"]).stdout
    assert "capture erp:fake-erp: paused, last success" in said
    assert "failing" not in said
    streams = {c["stream"]: c["state"] for c in run_json(["status", "--json"])["capture"]}
    assert streams == {"erp:fake-erp": "paused", "salesforce:org": "ok"}


def test_db_upgrade_says_whether_it_migrated(workdir: Path) -> None:
    """On a new ledger it says from what to which migration; run again, that it is at the
    latest (it said "up to date" both times)."""
    from revbridge.store.db import head_revision

    first = runner.invoke(app, ["db", "upgrade"])
    assert first.exit_code == 0, first.output
    said = " ".join(first.stdout.split())
    assert f"migrated from an empty database to {head_revision()}" in said
    again = " ".join(runner.invoke(app, ["db", "upgrade"]).stdout.split())
    assert f"is up to date (migration {head_revision()})" in again
