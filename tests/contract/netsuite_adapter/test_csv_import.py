"""The batch route: CSV files with a manifest, imported through the RESTlet, rerun safely."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from pathlib import Path

from revbridge.netsuite.adapter import NetSuiteErp
from revbridge.netsuite.csv_import import CsvImporter, ImportResult, customers_csv, journals_csv
from revbridge.netsuite.sandbox import RunningSandbox
from tests.contract.netsuite_adapter.conftest import GL_ACCOUNTS, connector_config, run, suiteql
from tests.contract.netsuite_adapter.test_port import customer, revenue

D = Decimal


def _import(erp: NetSuiteErp, file: object) -> ImportResult:
    async def go() -> ImportResult:
        try:
            return await CsvImporter(erp).run(file)  # type: ignore[arg-type]
        finally:
            await erp.close()

    return run(go())


def test_a_customer_file_has_a_manifest_and_imports_parents_first(
    erp: NetSuiteErp, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    file = customers_csv(
        erp.config,
        [
            ("001CHILD", customer("001CHILD", "Sub Ltd", parent_customer_id="001TOP")),
            ("001TOP", customer("001TOP", "Top plc", "GBP")),
        ],
    )
    assert file.text.splitlines()[1].startswith("SF-001TOP,")
    csv_path, manifest_path = file.write(tmp_path, "customers-2026-11-02")
    manifest = json.loads(manifest_path.read_text())
    assert (manifest["rows"], manifest["records"]) == (2, 2)
    assert manifest["sha256"] == hashlib.sha256(csv_path.read_bytes()).hexdigest()
    result = _import(erp, file)
    assert {o.status for o in result.outcomes.values()} == {"success"}
    rows = suiteql(sandbox, "SELECT id, externalid, parent FROM customer ORDER BY id")
    assert [(r["externalid"], r.get("parent")) for r in rows] == [
        ("SF-001TOP", None),
        ("SF-001CHILD", rows[0]["id"]),
    ]


def test_a_bad_journal_row_fails_alone_and_a_rerun_posts_nothing_twice(
    sandbox: RunningSandbox,
) -> None:
    # "9999 Suspense" points at an account NetSuite does not have: that entry is refused.
    broken = connector_config(sandbox, gl_account_map={**GL_ACCOUNTS, "9999": "99"})
    entries = [(f"a0R{i}", revenue(f"a0R{i}", None, f"{10 * i}.00")) for i in range(1, 4)]
    bad = revenue("a0RBAD", None, "7.00")
    bad = type(bad)(
        schedule_entry_id="a0RBAD",
        schedule_id="RS-1",
        period="2026-10",
        entry_date=bad.entry_date,
        lines=(
            bad.lines[0],
            type(bad.lines[1])(account="9999 Suspense", credit=D("7.00"), currency="USD"),
        ),
    )
    file = journals_csv(broken, [*entries[:2], ("a0RBAD", bad), entries[2]])
    assert file.manifest.rows == 8
    assert file.manifest.records == 4
    assert file.manifest.control_totals == {"USD": D("67.00")}

    first = _import(NetSuiteErp(broken), file)
    statuses = {eid: o.status for eid, o in first.outcomes.items()}
    assert statuses == {
        "SF-a0R1": "success",
        "SF-a0R2": "success",
        "SF-a0RBAD": "error",
        "SF-a0R3": "success",
    }
    refused = first.outcomes["SF-a0RBAD"]
    assert refused.rows == (5, 6)
    assert refused.errors[0].code == "INVALID_VALUE"

    # The mapping is fixed; the same file is run again: only the refused entry is sent.
    fixed = connector_config(sandbox, gl_account_map={**GL_ACCOUNTS, "9999": "9"})
    rerun = _import(
        NetSuiteErp(fixed), journals_csv(fixed, [*entries[:2], ("a0RBAD", bad), entries[2]])
    )
    assert rerun.sent.records == 1
    assert rerun.sent.control_totals == {"USD": D("7.00")}
    assert rerun.outcomes["SF-a0RBAD"].status == "success"
    assert rerun.outcomes["SF-a0R1"].status == "already_present"
    assert rerun.outcomes["SF-a0R1"].erp_id == first.outcomes["SF-a0R1"].erp_id

    # A third run has nothing left to send.
    third = _import(
        NetSuiteErp(fixed), journals_csv(fixed, [*entries[:2], ("a0RBAD", bad), entries[2]])
    )
    assert third.job_id is None
    counts = suiteql(
        sandbox,
        "SELECT externalid, COUNT(*) AS n FROM transaction WHERE type = 'Journal'"
        " GROUP BY externalid ORDER BY externalid",
    )
    assert [(r["externalid"], r["n"]) for r in counts] == [
        ("SF-a0R1", "1"),
        ("SF-a0R2", "1"),
        ("SF-a0R3", "1"),
        ("SF-a0RBAD", "1"),
    ]


def test_a_resubmitted_file_after_a_lost_answer_joins_the_first_job(
    erp: NetSuiteErp, sandbox: RunningSandbox
) -> None:
    file = customers_csv(erp.config, [("001A", customer("001A")), ("001B", customer("001B"))])
    importer = CsvImporter(erp)

    async def go() -> tuple[str, str]:
        first = await importer._submit(file, "add")  # its answer "lost": the hub submits again
        second = await importer._submit(file, "add")
        await importer._wait(second)
        await erp.close()
        return first, second

    first, second = run(go())
    assert first == second
    assert len(suiteql(sandbox, "SELECT id FROM customer")) == 2
