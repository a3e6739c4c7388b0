"""`revbridge serve` on the embedded default runs the reconciliation schedule in process, as
`revbridge worker` does: the runs due at start-up happen without a separate worker."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select

from revbridge.config import parse_config
from revbridge.services.serve import InProcessRunner
from revbridge.store.ledger import Ledger
from revbridge.store.tables_recon import recon_runs


def test_the_in_process_runner_reconciles_what_is_due_and_stops(
    ledger: Ledger, tmp_path: Path
) -> None:
    """Started with the server, the runner makes up the latest nightly and month-end runs,
    and stops with it."""
    settings = parse_config({"store": {"url": str(ledger.engine.url)}}, None, tmp_path)

    async def scenario() -> list[str]:
        runner = InProcessRunner(settings, ledger)
        await runner.start()
        try:
            for _ in range(600):
                await asyncio.sleep(0.05)
                with ledger.engine.connect() as conn:
                    scopes = sorted(conn.execute(select(recon_runs.c.scope)).scalars())
                if len(scopes) == 2:
                    return scopes
            return scopes
        finally:
            await runner.close(timeout_s=20)
            assert all(t.done() for t in runner.tasks)

    assert asyncio.run(scenario()) == ["monthly", "nightly"]
