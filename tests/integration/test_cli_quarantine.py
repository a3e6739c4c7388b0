"""Closing the quarantine from the command line: `quarantine show` gives an entry in full,
`quarantine resolve` closes it with a reason, audited; `status` then counts it no more
(an entry used to stay open for ever)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from revbridge.cli.main import app
from tests.integration.conftest import run_json, runner

BAD = '{"type": "invoice.posted"}\nnot json\n{"type": "nope"}\n'


def _quarantine(workdir: Path) -> list[int]:
    (workdir / "bad.jsonl").write_text(BAD)
    assert runner.invoke(app, ["ingest", "bad.jsonl"]).exit_code == 1
    return [r["id"] for r in run_json(["quarantine", "list", "--json"])["quarantine"]]


def _audit(workdir: Path) -> list[tuple[str, ...]]:
    with sqlite3.connect(workdir / "revbridge.db") as db:
        return db.execute(
            "SELECT action, actor, entity_id, from_state, to_state, reason FROM audit_log "
            "WHERE entity_type = 'quarantine' ORDER BY id"
        ).fetchall()


def test_show_gives_the_raw_input_where_it_came_from_and_why(workdir: Path) -> None:
    first, *_ = _quarantine(workdir)
    shown = run_json(["quarantine", "show", str(first), "--json"])
    assert shown["raw"] == '{"type": "invoice.posted"}'
    assert (shown["origin"], shown["line_no"], shown["status"]) == ("bad.jsonl", 1, "open")
    assert "required field is missing" in shown["reason"]
    text = runner.invoke(app, ["quarantine", "show", str(first)])
    assert text.exit_code == 0
    assert '{"type": "invoice.posted"}' in text.stdout
    assert "bad.jsonl, line 1" in text.stdout


def test_resolve_closes_an_entry_with_a_reason_audited_and_status_stops_counting_it(
    workdir: Path,
) -> None:
    first, second, third = _quarantine(workdir)
    assert run_json(["status", "--json"])["quarantine"] == 3
    no_reason = runner.invoke(app, ["quarantine", "resolve", str(first)])
    assert no_reason.exit_code == 2
    assert "--reason is required" in no_reason.output
    done = runner.invoke(
        app,
        ["quarantine", "resolve", str(first), "--reason", "fixed at source", "--actor", "kim"],
    )
    assert done.exit_code == 0, done.output
    assert "resolved 1 quarantine entry" in done.stdout
    assert run_json(["status", "--json"])["quarantine"] == 2
    again = runner.invoke(app, ["quarantine", "resolve", str(first), "--reason", "twice"])
    assert again.exit_code != 0
    assert "is not open: resolved by kim" in str(again.exception)
    discarded = runner.invoke(
        app, ["quarantine", "resolve", "--all", "--discard", "--reason", "test lines"]
    )
    assert "discarded 2 quarantine entries" in discarded.stdout
    assert run_json(["status", "--json"])["quarantine"] == 0
    assert run_json(["quarantine", "list", "--json"])["quarantine"] == []
    every = run_json(["quarantine", "list", "--state", "all", "--json"])["quarantine"]
    assert [(r["id"], r["status"]) for r in every] == [
        (first, "resolved"),
        (second, "discarded"),
        (third, "discarded"),
    ]
    shown = run_json(["quarantine", "show", str(first), "--json"])
    assert (shown["resolved_by"], shown["resolution_note"]) == ("kim", "fixed at source")
    audited = ("resolve", "kim", str(first), "open", "resolved", "fixed at source")
    assert _audit(workdir)[0] == audited
    assert [row[0] for row in _audit(workdir)] == ["resolve", "discard", "discard"]


def test_resolve_all_of_one_reason_code(workdir: Path) -> None:
    _quarantine(workdir)
    codes = {r["reason_code"] for r in run_json(["quarantine", "list", "--json"])["quarantine"]}
    code = sorted(codes)[0]
    result = runner.invoke(
        app, ["quarantine", "resolve", "--all", "--code", code, "--reason", "mapping fixed"]
    )
    assert result.exit_code == 0, result.output
    left = run_json(["quarantine", "list", "--json"])["quarantine"]
    assert code not in {r["reason_code"] for r in left}
    assert left  # the rest stays open


def test_an_id_and_all_are_one_or_the_other(workdir: Path) -> None:
    assert runner.invoke(app, ["quarantine", "resolve", "--reason", "x"]).exit_code == 2
    both = runner.invoke(app, ["quarantine", "resolve", "1", "--all", "--reason", "x"])
    assert both.exit_code == 2
    code = runner.invoke(app, ["quarantine", "resolve", "1", "--code", "x", "--reason", "x"])
    assert code.exit_code == 2
    assert "--code goes with --all" in code.output
