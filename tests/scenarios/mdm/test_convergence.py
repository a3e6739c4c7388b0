"""The convergence property through the real hub, both ways: whatever Salesforce and the ERP
edit and in whatever order the hub syncs them (Salesforce capture and delivery, ERP capture
and write-back), each attribute ends as its owner last set it.

Salesforce owns the name and reports a tax id it does not own; the ERP owns the credit limit
and reports a name it does not own (its capture reads it beside the credit status). The pure
model of the same property is in tests/unit/mdm/test_rules.py; this one runs the ledger, the
worker, the customer master and the fakes.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from revbridge.mdm.ownership import Ownership
from revbridge.services import mdm
from revbridge.services.ingest import ingest_lines
from revbridge.services.mdm_sync import filter_erp_capture, filter_salesforce_capture
from revbridge.store.ledger import Ledger
from tests.scenarios.mdm.story import Hub, acc, credit, customer

_accounts = itertools.count(1000)

steps_strategy = st.lists(
    st.one_of(
        st.tuples(
            st.just("edit"),
            st.sampled_from(
                [
                    ("salesforce", "name"),
                    ("salesforce", "tax_id"),
                    ("erp", "name"),
                    ("erp", "limit"),
                ]
            ),
            st.integers(0, 3),
        ),
        st.tuples(st.just("sync"), st.sampled_from([("salesforce", ""), ("erp", "")]), st.just(0)),
    ),
    max_size=12,
)


class Story:
    """One customer, edited on both sides; ``sync`` is one capture round and its delivery."""

    def __init__(self, ledger: Ledger, mode: str) -> None:
        self.ownership = Ownership(on_conflict=mode)  # type: ignore[arg-type]
        self.n = next(_accounts)
        # One ERP per example (a fresh fake numbers its customers from 1 again).
        self.hub = Hub(ledger, self.ownership, erp_name=f"fake-erp-{self.n}")
        self.account = acc(self.n)
        self.number = f"N-{self.n}"
        self.versions = itertools.count(1)
        # The org's Account as a user sees it; the hub's write-backs land in the same dict.
        self.org = self.hub.sf.accounts.setdefault(self.account, {})
        self.org.update(name="Start Co", tax_id="T-0")
        self.erp_limit = "1000.00"

    def erp_doc(self) -> dict[str, Any]:
        [doc] = [d for d in self.hub.erp.docs if d.external_ref == self.account]
        return doc.data

    def sync_salesforce(self) -> None:
        env = customer(
            self.n,
            self.org["name"],
            version=next(self.versions),
            tax_id=self.org["tax_id"],
            erp_customer_number=self.number,
        )
        kept, _ = filter_salesforce_capture(self.hub.ledger.engine, [env], self.ownership)
        self._ingest_and_run(kept)

    def sync_erp(self) -> None:
        env = credit(
            self.number, hold=False, limit=self.erp_limit, version=f"e{next(self.versions)}"
        )
        env["source_id"] = f"CS-{self.number}"
        env["master"] = {"name": self.erp_doc()["name"]}
        kept, _ = filter_erp_capture(
            self.hub.ledger.engine,
            self.hub.erp_system,
            [env],
            now=self.hub.clock.now(),
            ownership=self.ownership,
        )
        self._ingest_and_run(kept)

    def _ingest_and_run(self, envelopes: list[dict[str, Any]]) -> None:
        if envelopes:
            lines = [json.dumps(e).encode() for e in envelopes]
            result = ingest_lines(
                self.hub.ledger, lines, policy=self.hub.policy, origin="t", clock=self.hub.clock
            )
            assert result.rejected == 0
        for _ in range(2):  # the delivery, then a write-back it released
            self.hub.run_once()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=steps_strategy, mode=st.sampled_from(["revert", "flag"]))
def test_any_interleaving_of_edits_on_both_sides_converges_through_the_hub(
    ledger: Ledger, steps: list[tuple[str, tuple[str, str], int]], mode: str
) -> None:
    """Names end as Salesforce last set them and credit limits as the ERP last set them, in
    both systems when reverting; the tax id Salesforce does not own is never sent to the ERP."""
    story = Story(ledger, mode)
    story.sync_salesforce()
    story.sync_erp()
    sf_name = "Start Co"
    for op, (side, attr), value in steps:
        if op == "sync":
            story.sync_salesforce() if side == "salesforce" else story.sync_erp()
        elif (side, attr) == ("salesforce", "name"):
            story.org["name"] = sf_name = f"SF name {value}"
        elif (side, attr) == ("salesforce", "tax_id"):
            story.org["tax_id"] = f"T-{value}"
        elif (side, attr) == ("erp", "name"):
            story.erp_doc()["name"] = f"ERP name {value}"
        else:
            story.erp_limit = f"{value + 1}000.00"
    story.sync_erp()
    story.sync_salesforce()
    story.sync_erp()

    [link] = mdm.lookup(ledger.engine, story.account)
    with ledger.engine.connect() as conn:
        synced = mdm.synced_values(conn, link.canonical_id)
    assert story.org["name"] == sf_name  # the owner's own value is never overwritten
    assert synced["name"] == sf_name
    assert story.org["credit_limit"] == story.erp_limit  # the ERP's limit reached the Account
    assert story.erp_doc()["tax_id"] == "T-0"  # Salesforce's later tax ids never sent
    if mode == "revert":
        assert story.erp_doc()["name"] == sf_name
        assert story.org["tax_id"] == "T-0"
