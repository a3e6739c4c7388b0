"""The crosswalk, the review queue and the ownership state on real SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from revbridge.core.sfid import make_id
from revbridge.errors import DomainError, UsageError
from revbridge.mdm.ownership import Ownership
from revbridge.services import mdm
from revbridge.store.ledger import Ledger
from revbridge.store.schema import audit_log

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
ACC = make_id("001", 1)
ACC2 = make_id("001", 2)
ERPS = ("netsuite",)  # the configured ERP's name


def _link(ledger: Ledger, sf: str, number: str, internal: str | None = None) -> str:
    with ledger.engine.begin() as conn:
        return mdm.link_customer(
            conn,
            sf_account_id=sf,
            erp_system="netsuite",
            erp_customer_number=number,
            erp_internal_id=internal,
            now=NOW,
            actor="t",
            reason="test",
        )


def test_any_id_finds_the_customer_15_or_18_characters(ledger: Ledger) -> None:
    """Looking up the 15-char Account id, the ERP number or internal id gives the same link."""
    canonical = _link(ledger, ACC[:15], "CUST-1", "901")
    for key in (ACC, ACC[:15], "CUST-1", "901", canonical):
        links = mdm.lookup(ledger.engine, key)
        assert [(x.sf_account_id, x.erp_customer_number) for x in links] == [(ACC, "CUST-1")]
    assert mdm.lookup(ledger.engine, "nope") == []


def test_a_contradicting_link_is_refused_not_overwritten(ledger: Ledger) -> None:
    """An ERP customer already linked to one Account cannot silently move to another."""
    _link(ledger, ACC, "CUST-1")
    with pytest.raises(DomainError, match="already linked"):
        _link(ledger, ACC2, "CUST-1")
    with pytest.raises(DomainError, match="not CUST-9"):
        _link(ledger, ACC, "CUST-9")
    _link(ledger, ACC, "CUST-1", "901")  # completing a link with the internal id is fine
    assert mdm.lookup(ledger.engine, "901")[0].erp_internal_id == "901"


def test_one_customer_links_per_erp_and_legal_entity(ledger: Ledger) -> None:
    """The same Account has its own number in each subsidiary."""
    with ledger.engine.begin() as conn:
        for entity, number in (("US", "U-1"), ("DE", "D-1")):
            mdm.link_customer(
                conn,
                sf_account_id=ACC,
                erp_system="netsuite",
                erp_entity=entity,
                erp_customer_number=number,
                erp_internal_id=None,
                now=NOW,
                actor="t",
                reason="t",
            )
    links = mdm.lookup(ledger.engine, "D-1")
    assert sorted((x.erp_entity, x.erp_customer_number) for x in links) == [
        ("DE", "D-1"),
        ("US", "U-1"),
    ]


def test_export_then_import_round_trips(ledger: Ledger, tmp_path: Path) -> None:
    """What `mdm export` writes, `mdm import` reads back into an empty crosswalk."""
    _link(ledger, ACC, "CUST-1", "901")
    _link(ledger, ACC2, "CUST-2")
    path = tmp_path / "x.csv"
    assert mdm.export_links(ledger.engine, path) == 2
    text = path.read_text()
    assert "CUST-1" in text
    assert ACC2 in text
    fresh = tmp_path / "fresh.csv"
    fresh.write_text(
        text.replace(ACC, make_id("001", 7))
        .replace(ACC2, make_id("001", 8))
        .replace("CUST-", "NEW-")
        .replace("901", "902")
    )
    report = mdm.import_links(ledger.engine, fresh, erp_systems=ERPS, now=NOW, actor="t")
    assert report.errors == []
    assert report.linked == 2
    assert mdm.lookup(ledger.engine, "NEW-2")[0].sf_account_id == make_id("001", 8)


def test_a_file_with_bad_rows_imports_nothing_and_names_the_lines(
    ledger: Ledger, tmp_path: Path
) -> None:
    """Bad ids, missing numbers, duplicates and conflicts are listed by line; none lands."""
    _link(ledger, ACC, "CUST-1")
    path = tmp_path / "in.csv"
    path.write_text(
        "sf_account_id,erp_system,erp_customer_number\n"
        f"{make_id('001', 3)},netsuite,A-3\n"  # line 2: good
        "not-an-id,netsuite,A-4\n"  # line 3
        f"{make_id('001', 5)},netsuite,\n"  # line 4
        f"{make_id('001', 6)},netsuite,A-3\n"  # line 5: A-3 twice
    )
    report = mdm.import_links(ledger.engine, path, erp_systems=ERPS, now=NOW, actor="t")
    assert [line for line, _ in report.errors] == [3, 4, 5]
    assert report.linked == 0
    assert mdm.lookup(ledger.engine, "A-3") == []
    conflict = tmp_path / "conflict.csv"
    conflict.write_text(
        f"sf_account_id,erp_system,erp_customer_number\n{make_id('001', 3)},netsuite,A-3\n"
        f"{ACC2},netsuite,CUST-1\n"
    )
    report = mdm.import_links(ledger.engine, conflict, erp_systems=ERPS, now=NOW, actor="t")
    assert [line for line, _ in report.errors] == [3]
    assert "already linked" in report.errors[0][1]
    assert mdm.lookup(ledger.engine, "A-3") == []  # the good row was rolled back too


def test_a_row_naming_an_erp_that_is_not_configured_is_refused(
    ledger: Ledger, tmp_path: Path
) -> None:
    """A misspelt erp_system ("netsuit") is a bad row naming the allowed system; the
    file's good rows are not imported either."""
    path = tmp_path / "typo.csv"
    path.write_text(
        "sf_account_id,erp_system,erp_customer_number\n"
        f"{make_id('001', 3)},netsuite,A-3\n"
        f"{make_id('001', 4)},netsuit,A-4\n"
    )
    report = mdm.import_links(ledger.engine, path, erp_systems=ERPS, now=NOW, actor="t")
    assert report.errors == [
        (3, "erp_system 'netsuit' is not a configured ERP (allowed: netsuite)")
    ]
    assert report.linked == 0
    assert mdm.lookup(ledger.engine, "A-3") == []


@pytest.mark.parametrize(
    ("header", "error"),
    [
        ("sf_account_id,erp_customer_number", "missing column: erp_system"),
        ("erp_customer_number", "missing columns: erp_system, sf_account_id"),
    ],
)
def test_a_file_without_a_required_column_names_it_in_its_number(
    ledger: Ledger, tmp_path: Path, header: str, error: str
) -> None:
    path = tmp_path / "cols.csv"
    path.write_text(f"{header}\nA-1\n")
    with pytest.raises(UsageError) as refused:
        mdm.import_links(ledger.engine, path, erp_systems=ERPS, now=NOW, actor="t")
    assert f"{path}: {error} (header: {header.replace(',', ', ')})" in str(refused.value)


def test_a_non_owner_change_is_queued_with_both_values_and_audited(ledger: Ledger) -> None:
    """Salesforce editing the ERP-owned credit limit opens a review saying the ERP won."""
    canonical = _link(ledger, ACC, "CUST-1")
    ownership = Ownership()
    with ledger.engine.begin() as conn:
        mdm.apply_reported(
            conn,
            ownership,
            canonical_id=canonical,
            side="erp",
            values={"credit_limit": "1000"},
            now=NOW,
            actor="t",
        )
        decisions = mdm.apply_reported(
            conn,
            ownership,
            canonical_id=canonical,
            side="salesforce",
            values={"credit_limit": "5000"},
            now=NOW,
            actor="t",
            sf_account_id=ACC,
        )
    assert [d.action.value for d in decisions] == ["revert"]
    [item] = mdm.list_reviews(ledger.engine)
    assert (item["kind"], item["attribute"], item["winner"]) == ("conflict", "credit_limit", "erp")
    assert (item["sf_value"], item["erp_value"]) == ("5000", "1000")
    with ledger.engine.connect() as conn:
        reasons = list(
            conn.execute(
                select(audit_log.c.reason).where(audit_log.c.action == "mdm_conflict_revert")
            ).scalars()
        )
    assert reasons == ["credit_limit: erp owns it and wins over salesforce"]


def test_review_decisions_are_audited_and_final(ledger: Ledger) -> None:
    """Approving a proposed match links it; deciding twice is refused; both are in the log."""
    with ledger.engine.begin() as conn:
        review = mdm.open_review(
            conn,
            kind="match",
            sf_account_id=ACC,
            erp_customer_number="CUST-7",
            erp_value={"erp_system": "netsuite", "erp_internal_id": "907"},
            message="likely",
            now=NOW,
        ).id
    shown = mdm.decide_review(ledger.engine, review, approve=True, actor="ana", now=NOW, note="ok")
    assert shown["state"] == "approved"
    assert shown["decided_by"] == "ana"
    assert [a["action"] for a in shown["audit"]] == ["mdm_review_approved"]
    assert mdm.lookup(ledger.engine, "CUST-7")[0].erp_internal_id == "907"
    with pytest.raises(DomainError, match="already approved"):
        mdm.decide_review(ledger.engine, review, approve=False, actor="bo", now=NOW)
