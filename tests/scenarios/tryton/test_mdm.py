"""The customer master on the real Tryton ERP: Tryton parties have no parent, so the hierarchy
lives in the crosswalk; children still wait for their parents, a cycle is still refused, and
each party is linked (id and code) as Tryton answers."""

from __future__ import annotations

from datetime import timedelta

from revbridge.engine.ports import RecordKind
from revbridge.engine.worker import Target, Worker
from revbridge.mdm.ownership import Ownership
from revbridge.services import mdm
from revbridge.services.mdm_sync import MdmErp
from revbridge.store.ledger import Ledger
from revbridge.tryton.instance import InstanceInfo
from tests.scenarios.tryton.conftest import Hub, Ids, customer, run


def _under(envelope: dict, parent: str | None, version: str) -> dict:
    envelope["data"]["parent_customer_id"] = parent
    envelope["source_version"] = version
    return envelope


def test_a_hierarchy_is_kept_in_the_crosswalk_for_tryton(
    tryton: InstanceInfo, ledger: Ledger
) -> None:
    """Grandchild sent first: all three parties land, linked, with the hierarchy in the
    crosswalk; then closing a cycle is refused with the cycle named."""
    top, mid, leaf = Ids.make("001"), Ids.make("001"), Ids.make("001")

    async def scenario() -> None:
        hub = Hub(ledger, tryton)
        port = MdmErp(hub.erp, ledger.engine, Ownership(), clock=hub.clock)
        hub.worker = Worker(
            ledger.engine,
            {"erp": Target("erp", port), "salesforce": Target("salesforce", hub.salesforce)},  # type: ignore[arg-type]
            clock=hub.clock,
            seed=7,
        )
        try:
            hub.ingest(
                _under(customer(leaf, "Leaf Pty"), mid, "1"),
                _under(customer(mid, "Mid Pty"), top, "1"),
                customer(top, "Top Holding"),
            )
            await hub.deliver()
            for account in (top, mid, leaf):
                party = await hub.erp.find(RecordKind.CUSTOMER, account)
                assert party is not None
                assert mdm.lookup(ledger.engine, account)[0].erp_internal_id == party.erp_id
            assert mdm.hierarchy(ledger.engine)[leaf] == mid
            assert mdm.hierarchy(ledger.engine)[mid] == top
            hub.ingest(_under(customer(top, "Top Holding"), leaf, "2"))
            hub.clock.advance(timedelta(seconds=1))
            await hub.deliver()
            [reason] = hub.dead_letters().values()
            assert f"cycle rejected: {top} -> {leaf} -> {mid} -> {top}" in reason
        finally:
            await hub.erp.close()

    run(scenario())
