"""The customer master's attributes edited in the real Tryton ERP.

An address an accountant edits in Tryton is Salesforce's and goes back, once; a tax
identifier keyed in Tryton (which owns it) reaches the Account; and with Salesforce owning
the tax id, its number is written on the party's tax identifier.
"""

from __future__ import annotations

import datetime as dt
from datetime import timedelta
from typing import Any

from revbridge.engine.ports import ErpRecord, RecordKind
from revbridge.mdm.ownership import Ownership
from revbridge.services import mdm
from revbridge.services.mdm_sync import filter_erp_capture
from revbridge.store.ledger import Ledger
from revbridge.tryton.capture import capture_credit_status
from revbridge.tryton.instance import InstanceInfo
from revbridge.tryton.rpc import TrytonClient
from tests.scenarios.tryton.conftest import Hub, Ids, accountant, customer, mastered_hub, run

EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
EIN = "04-2103594"  # a well-formed US employer id (Tryton checks it for the us_ein type)


async def _capture(
    hub: Hub, ledger: Ledger, account: str, ownership: Ownership, since: dt.datetime = EPOCH
) -> tuple[list[dict[str, Any]], dt.datetime]:
    """One capture round for ``account``'s party: filtered by the master, then ingested."""
    envelopes, mark = await capture_credit_status(hub.erp, since, with_master=True)
    mine = [e for e in envelopes if e["data"]["customer_id"] == account]
    kept, _ = filter_erp_capture(
        ledger.engine, "tryton", mine, now=hub.clock.now(), ownership=ownership
    )
    if kept:
        hub.ingest(*kept)
    hub.clock.advance(timedelta(seconds=1))
    await hub.deliver()
    return mine, mark


async def _party_with_ein(
    hub: Hub, client: TrytonClient, account: str, name: str, ein: str
) -> ErpRecord:
    """The Account's party, created by the hub; then the accountant adds its EIN in Tryton."""
    hub.ingest(customer(account, name))
    await hub.deliver()
    party = await hub.erp.find(RecordKind.CUSTOMER, account)
    assert party is not None
    await client.login()
    await client.model(
        "party.party",
        "write",
        [int(party.erp_id)],
        {"identifiers": [["create", [{"type": "us_ein", "code": ein}]]]},
    )
    return party


def _conflicts(ledger: Ledger) -> list[tuple[str, Any, Any, str]]:
    return [
        (i["attribute"], i["sf_value"], i["erp_value"], i["winner"])
        for i in mdm.list_reviews(ledger.engine, kind="conflict")
    ]


def test_an_address_edited_in_tryton_goes_back_once(tryton: InstanceInfo, ledger: Ledger) -> None:
    """The accountant's new street (an address edit does not write the party) is read,
    reviewed with both values, and Salesforce's goes back into Tryton; so does a rename; read
    again, nothing new is decided and nothing more is written."""
    wayne = Ids.make("001")
    own = Ownership()

    async def scenario() -> None:
        hub = mastered_hub(ledger, tryton, own)
        client, _books = accountant(tryton)
        try:
            hub.ingest(customer(wayne, "Wayne Enterprises", street="1007 Mountain Drive"))
            await hub.deliver()
            party = await hub.erp.find(RecordKind.CUSTOMER, wayne)
            assert party is not None
            pid = int(party.erp_id)
            mine, mark = await _capture(hub, ledger, wayne, own)  # as the hub wrote it
            assert [e["master"] for e in mine] == [
                {
                    "name": "Wayne Enterprises",
                    "billing_address": {
                        "line1": "1007 Mountain Drive",
                        "city": "Austin",
                        "postal_code": "78701",
                    },  # no country: this Tryton has none loaded, so none was written
                }
            ]
            assert _conflicts(ledger) == []
            # Another party changes later: the watermark moves past this one's own write.
            hub.clock.advance(timedelta(seconds=1))
            hub.ingest(customer(Ids.make("001"), "Wayne Foundation"))
            await hub.deliver()
            _, mark = await _capture(hub, ledger, wayne, own, mark)
            await client.login()
            (row,) = await client.model("party.party", "read", [pid], ["addresses"])
            await client.model(
                "party.address",
                "write",
                [row["addresses"][0]],
                {"street_unstructured": "Wayne Tower\n1 Gotham Plaza"},
            )
            hub.clock.advance(timedelta(seconds=1))
            _, mark = await _capture(hub, ledger, wayne, own, mark)
            [(attribute, sf_value, erp_value, winner)] = _conflicts(ledger)
            assert (attribute, winner) == ("billing_address", "salesforce")
            assert sf_value["line1"] == "1007 Mountain Drive"
            assert (erp_value["line1"], erp_value["line2"]) == ("Wayne Tower", "1 Gotham Plaza")
            (back,) = await client.model(
                "party.address", "read", [row["addresses"][0]], ["street_unstructured"]
            )
            assert back["street_unstructured"] == "1007 Mountain Drive"
            await client.model("party.party", "write", [pid], {"name": "Wayne Corp"})
            _, mark = await _capture(hub, ledger, wayne, own, mark)
            assert sorted(c[0] for c in _conflicts(ledger)) == ["billing_address", "name"]
            (named,) = await client.model("party.party", "read", [pid], ["name"])
            assert named["name"] == "Wayne Enterprises"
            for _ in range(2):  # the write-back, read again: no new conflict, no new write
                _, mark = await _capture(hub, ledger, wayne, own, mark)
            assert len(_conflicts(ledger)) == 2
            assert hub.dead_letters() == {}
        finally:
            await client.aclose()
            await hub.erp.close()

    run(scenario())


def test_a_tax_identifier_keyed_in_tryton_reaches_the_account(
    tryton: InstanceInfo, ledger: Ledger
) -> None:
    """Tryton owns the tax registration: the EIN the accountant adds to the party is written
    on the Account with the customer's credit status, with no review."""
    acme = Ids.make("001")
    own = Ownership()

    async def scenario() -> None:
        hub = mastered_hub(ledger, tryton, own)
        client, _books = accountant(tryton)
        try:
            await _party_with_ein(hub, client, acme, "Acme Anvils", EIN)
            mine, _ = await _capture(hub, ledger, acme, own)
            assert [e["master"].get("tax_id") for e in mine] == [EIN]
            assert hub.salesforce.accounts[acme]["tax_id"] == EIN
            assert _conflicts(ledger) == []
            assert hub.dead_letters() == {}
        finally:
            await client.aclose()
            await hub.erp.close()

    run(scenario())


def test_a_tax_id_salesforce_owns_is_written_on_the_partys_tax_identifier(
    tryton: InstanceInfo, ledger: Ledger
) -> None:
    """Configured as Salesforce's, the tax id the Account sends replaces the number on the
    party's tax identifier (the type Tryton checks it by stays)."""
    stark = Ids.make("001")
    own = Ownership.from_config({"tax_registration": "salesforce"})

    async def scenario() -> None:
        hub = mastered_hub(ledger, tryton, own)
        client, _books = accountant(tryton)
        try:
            party = await _party_with_ein(hub, client, stark, "Stark Tools", "04-0000001")
            sent = customer(stark, "Stark Tools", version="2")
            sent["data"]["tax_id"] = EIN
            hub.ingest(sent)
            hub.clock.advance(timedelta(seconds=1))
            await hub.deliver()
            (row,) = await client.model(
                "party.party", "read", [int(party.erp_id)], ["tax_identifier.code"]
            )
            assert row["tax_identifier."]["code"].replace("-", "") == EIN.replace("-", "")
            assert hub.dead_letters() == {}
        finally:
            await client.aclose()
            await hub.erp.close()

    run(scenario())
