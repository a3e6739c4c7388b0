"""Two reconciliation runs started at the same moment (two controllers pressing "run"): both
succeed, and each variance is one case, opened once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

from sqlalchemy import func, select

from revbridge.recon.period import PeriodRecon
from revbridge.services.recon import RunOutcome, run_recon
from revbridge.store.ledger import Ledger
from revbridge.store.schema import audit_log
from revbridge.store.tables_recon import recon_cases
from tests.integration.recon.test_workflow import OCT, T0, Sides, invoice

ROUNDS = 15
MISSING = 6  # invoices Salesforce holds and the ERP does not, per round: one case each


def _gated(sides: Sides, barrier: threading.Barrier) -> Callable[..., PeriodRecon]:
    """The reconciler, held until both runs have read their sides: then both write at once."""

    def reconcile(scope: str, start: date, end: date, refresh: bool) -> PeriodRecon:
        recon = sides.reconcile(scope, start, end, refresh)
        barrier.wait(timeout=30)
        return recon

    return reconcile


def test_two_runs_of_one_period_at_once_both_succeed_and_open_each_case_once(
    ledger: Ledger, tmp_path: Path
) -> None:
    sides = Sides(ledger, tmp_path)
    sides.erp = []
    engine = ledger.engine
    for n in range(ROUNDS):
        # New variances every round, so that each round's runs race to open their cases.
        sides.sf = [invoice(1000 * (n + 1) + k) for k in range(MISSING)]
        reconcile = _gated(sides, threading.Barrier(2))

        def run(actor: str, reconcile: Callable[..., PeriodRecon] = reconcile) -> RunOutcome:
            return run_recon(
                engine, reconcile, scope="monthly", start=OCT[0], end=OCT[1], actor=actor,
                now=T0,
            )  # fmt: skip

        with ThreadPoolExecutor(2) as pool:
            first, second = pool.map(run, ["ana", "ben"])
        assert first.opened + second.opened == MISSING, n  # opened by one, refreshed by the other
        assert first.open_cases == second.open_cases == MISSING, n
        refs = {d.ref for d in sides.sf}
        with engine.connect() as conn:
            rows = conn.execute(
                select(recon_cases.c.id, recon_cases.c.ref, recon_cases.c.state).where(
                    recon_cases.c.ref.in_(refs)
                )
            ).all()
            opened = conn.execute(
                select(func.count()).where(
                    audit_log.c.action == "recon.case.opened",
                    audit_log.c.entity_id.in_([str(r.id) for r in rows]),
                )
            ).scalar_one()
        assert sorted((r.ref, r.state) for r in rows) == sorted((r, "open") for r in refs), n
        assert opened == MISSING, n
