"""`revbridge mdm` as a master-data owner runs it, on the embedded default (SQLite)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from typer.testing import Result

from revbridge.cli.main import app
from revbridge.core.sfid import make_id
from revbridge.errors import UsageError
from revbridge.services.mdm import NotFound
from tests.integration.conftest import run_json, runner

A1, A2, A3 = make_id("001", 11), make_id("001", 12), make_id("001", 13)


def test_import_lookup_export_and_a_refused_file(workdir: Path) -> None:
    """Links imported from CSV (under the configured fake ERP's name) are found by any id and
    exported; a bad file changes nothing."""
    (workdir / "links.csv").write_text(
        "sf_account_id,erp_system,erp_customer_number,erp_internal_id,name\n"
        f"{A1[:15]},fake-erp,C-11,811,Acme\n{A2},fake-erp,C-12,,Globex\n"
    )
    assert run_json(["mdm", "import", "links.csv", "--json"])["linked"] == 2
    found = run_json(["mdm", "lookup", A1[:15], "--json"])["links"]
    assert [(x["sf_account_id"], x["erp_internal_id"]) for x in found] == [(A1, "811")]
    assert runner.invoke(app, ["mdm", "lookup", "C-99"]).exit_code == 1
    assert runner.invoke(app, ["mdm", "export", "--out", "out.csv"]).exit_code == 0
    with (workdir / "out.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["erp_customer_number"] for r in rows) == ["C-11", "C-12"]
    (workdir / "bad.csv").write_text(
        f"sf_account_id,erp_system,erp_customer_number\n{A3},fake-erp,C-13\nbogus,fake-erp,C-14\n"
    )
    result = runner.invoke(app, ["mdm", "import", "bad.csv"])
    assert result.exit_code == 1
    assert "line 3" in result.output
    assert runner.invoke(app, ["mdm", "lookup", "C-13"]).exit_code == 1


def test_an_exported_file_imports_again_with_its_customers_not_linked_yet(workdir: Path) -> None:
    """`mdm export` lists a customer the hub knows but has not linked (held for review, say)
    with empty ERP columns. Importing the export back (edited or not) refused the whole file
    for that row; the row is now left as it is, and said so."""
    (workdir / "links.csv").write_text(
        "canonical_id,sf_account_id,erp_system,erp_entity,erp_customer_number,erp_internal_id,"
        f"parent_canonical_id,name\nC1,{A1},fake-erp,,C-11,811,,Acme\nC2,{A2},,,,,,Globex\n"
    )
    result = runner.invoke(app, ["mdm", "import", "links.csv"])
    assert result.exit_code == 0, result.output
    assert "1 link imported" in result.stdout
    assert "1 row without an ERP id left as they are" in " ".join(result.stdout.split())
    assert run_json(["mdm", "lookup", "C-11", "--json"])["links"][0]["sf_account_id"] == A1
    assert runner.invoke(app, ["mdm", "lookup", A2]).exit_code == 1
    # The same file again: nothing new, and said so ("1 link imported" before).
    again = runner.invoke(app, ["mdm", "import", "links.csv"])
    assert again.exit_code == 0, again.output
    assert "0 links imported from links.csv; 1 already in the crosswalk as they are" in (
        " ".join(again.stdout.split())
    )


def test_a_file_that_is_not_utf8_is_refused_by_line_not_with_a_traceback(workdir: Path) -> None:
    """A spreadsheet's plain CSV (Windows-1252: Société) made `mdm import` and `mdm match`
    end in a UnicodeDecodeError traceback."""
    (workdir / "links.csv").write_bytes(
        f"sf_account_id,erp_system,erp_customer_number,name\n{A1},fake-erp,C-11,Soci\xe9t\xe9\n".encode(
            "cp1252"
        )
    )
    result = runner.invoke(app, ["mdm", "import", "links.csv"])
    # A UsageError: `revbridge` prints it as one line, exit 2 (`cli.main.main`).
    assert isinstance(result.exception, UsageError)
    assert "links.csv line 2: byte 0xe9 is not UTF-8 text" in str(result.exception)
    assert runner.invoke(app, ["mdm", "lookup", "C-11"]).exit_code == 1
    (workdir / "sf.csv").write_bytes(f"Id,name\n{A1},Soci\xe9t\xe9\n".encode("cp1252"))
    (workdir / "erp.csv").write_text("number,name\nC-1,Acme\n")
    result = _match()
    assert isinstance(result.exception, UsageError)
    assert "sf.csv line 2: byte 0xe9 is not UTF-8 text" in str(result.exception)


def test_import_refuses_a_row_naming_an_erp_that_is_not_configured(workdir: Path) -> None:
    """With the fake ERP configured, a row naming netsuite is refused by line, with the name
    the rows may use; nothing is imported."""
    (workdir / "other.csv").write_text(
        f"sf_account_id,erp_system,erp_customer_number\n{A1},fake-erp,C-11\n{A2},netsuite,C-12\n"
    )
    result = runner.invoke(app, ["mdm", "import", "other.csv"])
    assert result.exit_code == 1
    assert "line 3: erp_system 'netsuite' is not a configured ERP (allowed: fake-erp)" in (
        " ".join(result.output.split())
    )
    assert runner.invoke(app, ["mdm", "lookup", "C-11"]).exit_code == 1


def test_match_queues_the_uncertain_and_a_person_approves(workdir: Path) -> None:
    """A sure pair is linked, a name-only pair waits for review, approving it links it."""
    (workdir / "sf.csv").write_text(
        "Id,name,tax_id,website\n"
        f"{A1},Acme Inc,US-1,https://acme.example.com\n{A2},Globex Corp,,\n{A3},Zeta Works,,\n"
    )
    (workdir / "erp.csv").write_text(
        "number,name,tax_id,email\nC-1,ACME Incorporated,US 1,ap@acme.example.com\n"
        "C-2,Globex Corporation,,\nC-3,Omega Foods,,\n"
    )
    counts = run_json(
        [
            "mdm",
            "match",
            "--sf-csv",
            "sf.csv",
            "--erp-csv",
            "erp.csv",
            "--report",
            "r.csv",
            "--json",
        ]
    )
    assert (counts["accepted"], counts["review"], counts["linked"]) == (1, 1, 1)
    with (workdir / "r.csv").open() as fh:
        report = {r["sf_account_id"]: r["status"] for r in csv.DictReader(fh)}
    assert report == {A1: "accepted", A2: "review"}
    [item] = run_json(["mdm", "review", "list", "--json"])["reviews"]
    assert (item["kind"], item["erp_customer_number"]) == ("match", "C-2")
    approved = runner.invoke(
        app, ["mdm", "review", "approve", str(item["id"]), "--note", "same VAT on paper"]
    )
    assert approved.exit_code == 0, approved.output
    assert run_json(["mdm", "lookup", "C-2", "--json"])["links"][0]["sf_account_id"] == A2
    shown = run_json(["mdm", "review", "show", str(item["id"])])
    assert shown["state"] == "approved"
    assert shown["audit"][0]["reason"] == "same VAT on paper"
    assert run_json(["mdm", "review", "list", "--json"])["reviews"] == []


def _match(*extra: str) -> Result:
    return runner.invoke(
        app,
        ["mdm", "match", "--sf-csv", "sf.csv", "--erp-csv", "erp.csv", "--report", "r.csv", *extra],
    )


def test_match_names_each_bad_row_counts_it_and_fails(workdir: Path) -> None:
    """An Account Id with a bad checksum, an empty one and a repeated one are each named with
    file and line and counted as invalid; the good rows are matched; every Account read is
    counted once; exit 1."""
    bad = A3[:15] + "ZZZ"
    (workdir / "sf.csv").write_text(
        f"Id,name,tax_id\n{A1},Acme Inc,US-1\n{bad},Globex Corp,\n,Nameless,\n"
        f"{A2},Initech,\n{A2[:15]},Initech again,\n"
    )
    (workdir / "erp.csv").write_text("number,name,tax_id\nC-1,ACME Incorporated,US 1\n,Blank,\n")
    result = _match("--json")
    assert result.exit_code == 1, result.output
    counts = json.loads(result.stdout)
    assert (counts["sf_records"], counts["accepted"], counts["invalid"]) == (5, 1, 4)
    assert counts["sf_records"] == sum(
        counts[k]
        for k in ("accepted", "review", "rejected", "unmatched", "already_linked", "invalid")
    )
    assert (counts["erp_records"], counts["erp_invalid"]) == (2, 1)
    assert [(b["file"], b["line"]) for b in counts["bad_rows"]] == [
        ("sf.csv", 3),
        ("sf.csv", 4),
        ("sf.csv", 5),
        ("sf.csv", 6),
        ("erp.csv", 3),
    ]
    assert counts["bad_rows"][0]["message"].startswith(f"Id {bad!r} is not a Salesforce id")
    assert "checksum" in counts["bad_rows"][0]["message"]
    assert counts["bad_rows"][1]["message"] == "Id is empty"
    assert counts["bad_rows"][3]["message"] == (
        f"Id {A2[:15]!r} is listed twice (also line 5); none of them is matched"
    )
    assert counts["bad_rows"][4]["message"] == "number is empty"
    assert run_json(["mdm", "lookup", "C-1", "--json"])["links"][0]["sf_account_id"] == A1


def test_match_links_neither_row_of_an_id_listed_twice(workdir: Path) -> None:
    """Two rows for one Account (or one ERP number) that say different things: which is right
    is not for the hub to guess. The first row was linked and the second reported, so a stale
    row early in the file made the link. Now both are named and neither is linked."""
    (workdir / "sf.csv").write_text(
        f"Id,name,tax_id\n{A1},Acme Inc,US-1\n{A2},Globex Corp,US-2\n{A1[:15]},Zeta Works,US-3\n"
    )
    (workdir / "erp.csv").write_text(
        "number,name,tax_id\nC-1,ACME Incorporated,US 1\nC-3,Zeta Works,US 3\n"
        "C-2,Globex Corporation,US 2\nC-2,Initech,US 9\nC-2,Hooli,US 8\n"
    )
    result = _match("--json")
    assert result.exit_code == 1, result.output
    counts = json.loads(result.stdout)
    assert (counts["accepted"], counts["invalid"], counts["erp_invalid"]) == (0, 2, 3)
    assert [(b["file"], b["line"], b["message"]) for b in counts["bad_rows"]] == [
        ("sf.csv", 2, f"Id {A1!r} is listed twice (also line 4); none of them is matched"),
        ("sf.csv", 4, f"Id {A1[:15]!r} is listed twice (also line 2); none of them is matched"),
        ("erp.csv", 4, "number 'C-2' is listed 3 times (also lines 5, 6); none of them is matched"),
        ("erp.csv", 5, "number 'C-2' is listed 3 times (also lines 4, 6); none of them is matched"),
        ("erp.csv", 6, "number 'C-2' is listed 3 times (also lines 4, 5); none of them is matched"),
    ]
    assert runner.invoke(app, ["mdm", "lookup", A1]).exit_code == 1
    assert runner.invoke(app, ["mdm", "lookup", A2]).exit_code == 1


def test_match_with_every_id_malformed_links_nothing_and_fails(workdir: Path) -> None:
    (workdir / "sf.csv").write_text("Id,name\n001000000000BBBZZZ,Acme Inc\nnotanid,Globex\n")
    (workdir / "erp.csv").write_text("number,name\nC-1,Acme Inc\nC-2,Globex\n")
    result = _match()
    assert result.exit_code == 1
    assert "sf.csv line 2: Id '001000000000BBBZZZ' is not a Salesforce id" in result.stderr
    assert "sf.csv line 3: Id 'notanid' is not a Salesforce id" in result.stderr
    assert "2 Accounts read: 0 accepted (0 linked)" in result.stdout
    assert "2 invalid" in result.stdout


def test_match_prints_a_readable_summary(workdir: Path) -> None:
    (workdir / "sf.csv").write_text(f"Id,name,tax_id\n{A1},Acme Inc,US-1\n{A2},Zeta Works,\n")
    (workdir / "erp.csv").write_text("number,name,tax_id\nC-1,ACME Incorporated,US 1\n")
    result = _match()
    assert result.exit_code == 0, result.output
    assert "{" not in result.stdout
    assert (
        "2 Accounts read: 1 accepted (1 linked), 0 for review (0 queued), 0 rejected, "
        "1 unmatched, 0 already linked, 0 invalid; 1 ERP customer read"
    ) in " ".join(result.stdout.split())


def test_batch_run_shows_the_customer_it_held_for_review(workdir: Path) -> None:
    """A likely duplicate in the nightly customer batch is held for review. `batch run`
    printed items 2, delivered 1, failed 0, retried 0, parked 0: one item unaccounted for."""
    (workdir / "sf.csv").write_text(f"Id,name\n{A2},Globex Corp\n")
    (workdir / "erp.csv").write_text("number,name\nC-2,Globex Corporation\n")
    assert (
        run_json(["mdm", "match", "--sf-csv", "sf.csv", "--erp-csv", "erp.csv", "--json"])["queued"]
        == 1
    )
    events = [
        {
            "type": "customer.upserted",
            "source": "salesforce",
            "source_id": account,
            "source_version": "v1",
            "occurred_at": "2026-11-02T09:00:00+00:00",
            "data": {"customer_id": account, "name": name, "currency": "USD"},
        }
        for account, name in ((A2, "Globex Corp"), (A3, "Zeta Works"))
    ]
    (workdir / "c.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    assert run_json(["ingest", "c.jsonl", "--json"])["accepted"] == 2
    shown = runner.invoke(
        app, ["batch", "run", "--class", "customer.upserted"], env={"COLUMNS": "80"}
    )
    header, row = shown.output.splitlines()[1:3]
    counts = dict(zip(header.split()[1:], row.split()[1:], strict=True))
    assert counts == {
        "items": "2",
        "delivered": "1",
        "failed": "0",
        "retried": "0",
        "parked": "0",
        "held": "1",
        "superseded": "0",
    }
    [audited] = run_json(["audit", "--action", "batch_run", "--json"])["audit"]
    assert "parked 0, held 1, superseded 0" in audited["reason"]
    [item] = run_json(["mdm", "review", "list", "--json"])["reviews"]
    approved = runner.invoke(app, ["mdm", "review", "approve", str(item["id"])])
    assert approved.exit_code == 0, approved.output
    assert approved.stdout.strip() == f"review {item['id']} approved; 1 held delivery back in line"


def test_review_list_keeps_ids_and_values_whole_at_80_columns(workdir: Path) -> None:
    """The list was a table: at 80 columns the Account id was cut into three pieces and each
    side's value was the JSON of the item, folded. Now an item is a line of short fields with
    the why and both values beneath."""
    (workdir / "sf.csv").write_text(f"Id,name\n{A2},Globex Corp\n")
    (workdir / "erp.csv").write_text("number,name\nC-2,Globex Corporation\n")
    run_json(["mdm", "match", "--sf-csv", "sf.csv", "--erp-csv", "erp.csv", "--json"])
    shown = runner.invoke(app, ["mdm", "review", "list"], env={"COLUMNS": "80"})
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert lines[1].split() == ["id", "kind", "state", "Account", "ERP", "attribute"]
    assert lines[2].split()[1:] == ["match", "open", A2, "C-2", "-"]
    detail = " ".join(" ".join(lines[3:]).split())
    assert detail.endswith("Salesforce: Globex Corp; ERP: Globex Corporation")
    assert "{" not in shown.stdout


def test_unlink_and_relink_from_the_command_line(workdir: Path) -> None:
    """`mdm unlink` says what it undid and what happens next; the Account is then linked to
    the number --relink names; a second unlink without a link, or without --reason, fails."""
    (workdir / "links.csv").write_text(
        f"sf_account_id,erp_system,erp_customer_number,erp_internal_id,name\n"
        f"{A1},fake-erp,C-11,811,Acme\n"
    )
    assert runner.invoke(app, ["mdm", "import", "links.csv"]).exit_code == 0
    moved = runner.invoke(
        app, ["mdm", "unlink", A1[:15], "--reason", "another Acme", "--relink", "C-21"]
    )
    assert moved.exit_code == 0, moved.output
    said = " ".join(moved.stdout.split())
    assert f"Account {A1} unlinked from fake-erp customer C-11" in said
    assert "linked to fake-erp customer C-21 instead" in said
    [link] = run_json(["mdm", "lookup", A1, "--json"])["links"]
    assert (link["erp_customer_number"], link["erp_internal_id"]) == ("C-21", None)
    plain = run_json(["mdm", "unlink", A1, "--reason", "not C-21 either", "--json"])
    assert plain["relinked_to"] is None
    again = runner.invoke(app, ["mdm", "unlink", A1, "--reason", "x"])
    assert isinstance(again.exception, NotFound)  # the entry point prints it, exit 2
    assert "has no link in fake-erp" in str(again.exception)
    assert runner.invoke(app, ["mdm", "unlink", A1]).exit_code == 2  # --reason is required
    rejected = run_json(["mdm", "review", "list", "--state", "rejected", "--json"])["reviews"]
    assert sorted(r["erp_customer_number"] for r in rejected) == ["C-11", "C-21"]
