"""`revbridge mdm` as a master-data owner runs it, on the embedded default (SQLite)."""

from __future__ import annotations

import csv
from pathlib import Path

from revbridge.cli.main import app
from revbridge.core.sfid import make_id
from tests.integration.conftest import run_json, runner

A1, A2, A3 = make_id("001", 11), make_id("001", 12), make_id("001", 13)


def test_import_lookup_export_and_a_refused_file(workdir: Path) -> None:
    """Links imported from CSV are found by any id and exported; a bad file changes nothing."""
    (workdir / "links.csv").write_text(
        "sf_account_id,erp_system,erp_customer_number,erp_internal_id,name\n"
        f"{A1[:15]},netsuite,C-11,811,Acme\n{A2},netsuite,C-12,,Globex\n"
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
        f"sf_account_id,erp_system,erp_customer_number\n{A3},netsuite,C-13\nbogus,netsuite,C-14\n"
    )
    result = runner.invoke(app, ["mdm", "import", "bad.csv"])
    assert result.exit_code == 1
    assert "line 3" in result.output
    assert runner.invoke(app, ["mdm", "lookup", "C-13"]).exit_code == 1


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
