"""The customer master on the real Tryton ERP: Tryton parties have no parent, so the hierarchy
lives in the crosswalk; children still wait for their parents, a cycle is still refused, and
each party is linked (id and code) as Tryton answers."""

from __future__ import annotations

import datetime as dt
from datetime import timedelta
from decimal import Decimal

from revbridge.engine.ports import RecordKind
from revbridge.services import mdm
from revbridge.services.mdm_sync import filter_erp_capture
from revbridge.store.ledger import Ledger
from revbridge.tryton.capture import capture_credit_status
from revbridge.tryton.instance import InstanceInfo
from tests.scenarios.tryton.conftest import Ids, accountant, customer, mastered_hub, run

EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
NOW = dt.datetime.now(dt.UTC)


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
        hub = mastered_hub(ledger, tryton)
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


def test_a_party_renamed_in_tryton_gets_the_salesforce_name_back(
    tryton: InstanceInfo, ledger: Ledger
) -> None:
    """The accountant renames a party in Tryton; the name is Salesforce's: the capture reads
    the new name with the party, the conflict is reviewed with both values, and the Account's
    name is written back into Tryton."""
    globex = Ids.make("001")

    async def scenario() -> None:
        hub = mastered_hub(ledger, tryton)
        client, books = accountant(tryton)
        try:
            hub.ingest(customer(globex, "Globex Corporation"))
            await hub.deliver()
            party = await hub.erp.find(RecordKind.CUSTOMER, globex)
            assert party is not None
            await client.login()
            await books.set_credit_limit(int(party.erp_id), Decimal("5000.00"))
            await client.model(
                "party.party", "write", [int(party.erp_id)], {"name": "Globex (renamed)"}
            )
            envelopes, _ = await capture_credit_status(hub.erp, EPOCH, with_master=True)
            mine = [e for e in envelopes if e["data"]["customer_id"] == globex]
            assert [e["master"]["name"] for e in mine] == ["Globex (renamed)"]
            filter_erp_capture(ledger.engine, "tryton", mine, now=hub.clock.now())
            [item] = mdm.list_reviews(ledger.engine, kind="conflict")
            assert (item["attribute"], item["sf_value"], item["erp_value"], item["winner"]) == (
                "name",
                "Globex Corporation",
                "Globex (renamed)",
                "salesforce",
            )
            hub.clock.advance(timedelta(seconds=1))
            await hub.deliver()
            (row,) = await client.model("party.party", "read", [int(party.erp_id)], ["name"])
            assert row["name"] == "Globex Corporation"
            assert hub.dead_letters() == {}
        finally:
            await client.aclose()
            await hub.erp.close()

    run(scenario())


def test_a_party_keyed_in_tryton_is_linked_not_duplicated(
    tryton: InstanceInfo, ledger: Ledger
) -> None:
    """A party the accountant keyed in Tryton before go-live holds the lookalike Account for
    review (held, not a dead letter); once approved, the Account's upsert updates that party:
    one party, now carrying the Salesforce identifier and the Account's name."""
    account = Ids.make("001")
    code = f"GL-{account[-6:]}"

    async def scenario() -> None:
        hub = mastered_hub(ledger, tryton)
        client, books = accountant(tryton)
        try:
            await client.login()
            keyed = await books.ensure_party(code, f"Vandelay Industries {code}")
            hub.ingest(customer(account, f"Vandelay Industries Inc {code}"))
            await hub.deliver()
            assert hub.states()["held"] == 1
            assert hub.dead_letters() == {}
            [item] = mdm.list_reviews(ledger.engine, kind="held")
            assert item["erp_customer_number"] == code
            mdm.decide_review(ledger.engine, item["id"], approve=True, actor="mdo", now=NOW)
            hub.clock.advance(timedelta(seconds=1))
            await hub.deliver()
            assert hub.states()["delivered"] == 1
            party = await hub.erp.find(RecordKind.CUSTOMER, account)
            assert party is not None
            assert party.erp_id == str(keyed.id)
            rows = await client.search_read(
                "party.party", [("name", "ilike", f"%{code}%")], ["code", "name"]
            )
            assert [(r["code"], r["name"]) for r in rows] == [
                (code, f"Vandelay Industries Inc {code}")
            ]
        finally:
            await client.aclose()
            await hub.erp.close()

    run(scenario())
