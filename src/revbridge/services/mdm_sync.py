"""The customer master on the delivery and capture paths.

``MdmErp`` and ``MdmSalesforce`` wrap the configured ports (``services/targets.py``), so the
engine stays unaware of master data:

- a customer upsert is checked for a hierarchy cycle (refused, queued for review), held when
  the Account is not linked yet but a likely ERP customer exists (``Held``: the delivery
  waits on the review item; never a second customer), stripped of changes to attributes
  Salesforce does not own (reverted or flagged), and its answer from the ERP becomes the
  crosswalk link; the nightly batch gets the same checks per record (``screen_batch``);
- a credit status change finds its Account through the crosswalk (ERP customer number ->
  Account id) and is remembered as written, so it does not come back as a change.

``filter_erp_capture`` and ``filter_salesforce_capture`` drop echoes from what a capture
read, and link the customers an ERP capture names with the hub's external id; the ERP
capture's ``master`` values (the name as the ERP holds it) are decided like Salesforce's, so
an ERP edit to an attribute Salesforce owns is reviewed and reverted too.
"""

from __future__ import annotations

import csv
import dataclasses
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from revbridge.clock import Clock, SystemClock
from revbridge.core import sfid
from revbridge.core.events import (
    Address,
    Contact,
    CreditMemoIssued,
    CustomerCreditStatusChanged,
    CustomerUpserted,
    ErpPaymentReceived,
    GlPosted,
    InvoicePosted,
    PaymentReceived,
    ReportingRefreshed,
    RevenueRecognized,
)
from revbridge.core.wording import counted
from revbridge.engine.ports import (
    BatchItem,
    Capabilities,
    ErpPort,
    ErpRecord,
    RecordKind,
    SalesforcePort,
)
from revbridge.errors import DomainError, Held, RevbridgeError, TerminalError, UsageError
from revbridge.mdm.erp_reading import ERP_MASTER_ATTRIBUTES, reads_as_synced
from revbridge.mdm.hierarchy import depth_of
from revbridge.mdm.match import Candidate, Proposal, likely_match, propose_links
from revbridge.mdm.ownership import Action, Ownership
from revbridge.services import mdm

# ---------------------------------------------------------------------- delivery


NATIVE_TTL = timedelta(minutes=5)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Prepared:
    """A customer checked by the master, ready for the ERP: what is sent (``outgoing``) and
    what Salesforce gets back once it landed (``reverts``)."""

    sf: str
    canonical: str
    customer: CustomerUpserted
    outgoing: CustomerUpserted
    reverts: dict[str, Any]


def _erp_owned(ownership: Ownership, values: Mapping[str, Any]) -> dict[str, Any]:
    """The values of the master attributes an ERP capture reports that the ERP owns (the
    tax registration), where there is one."""
    return {
        a: values[a]
        for a in ERP_MASTER_ATTRIBUTES
        if ownership.owner_of(a) == "erp" and values.get(a) is not None
    }


class MdmErp:
    """An ERP port with the customer master in front of ``upsert_customer``."""

    def __init__(
        self,
        inner: ErpPort,
        engine: Engine,
        ownership: Ownership,
        *,
        erp_entity: str = "",
        clock: Clock | None = None,
        salesforce: SalesforcePort | None = None,
        review_at: float = 0.7,
    ) -> None:
        self.inner = inner
        self.review_at = review_at
        self._native: tuple[datetime, list[Any]] | None = None
        self.engine = engine
        self.ownership = ownership
        self.erp_entity = erp_entity
        self.clock = clock or SystemClock()
        self.salesforce = salesforce
        # Batch items checked by ``screen_batch``, by reference, until the ERP answers.
        self._batch_prepared: dict[str, _Prepared] = {}

    def __getattr__(self, name: str) -> Any:  # capture, read-back, batches: the adapter's own
        attr = getattr(self.inner, name)
        if name == "submit_batch":
            # Only when the adapter takes batch files at all (the engine asks ``hasattr``).
            return self._submit_batch_linking(attr)
        if name == "render_batch":
            return self._render_parents_first(attr)
        return attr

    def _submit_batch_linking(self, submit: Any) -> Any:
        """The nightly customer batch also links what the ERP answered (by external id)."""

        async def submit_batch(
            kind: RecordKind, content: bytes, manifest: Mapping[str, object]
        ) -> Sequence[Any]:
            outcomes: Sequence[Any] = await submit(kind, content, manifest)
            if kind is RecordKind.CUSTOMER:
                await self._link_batch(outcomes)
            return outcomes

        return submit_batch

    def _render_parents_first(self, render: Any) -> Any:
        """A parent in the same customer batch is written before its children, so the ERP's
        import finds it (rows are applied in file order)."""

        def render_batch(kind: RecordKind, items: Sequence[BatchItem]) -> bytes:
            if kind is not RecordKind.CUSTOMER:
                return bytes(render(kind, items))
            parents = {
                i.data.customer_id: i.data.parent_customer_id
                for i in items
                if isinstance(i.data, CustomerUpserted)
            }

            def depth(n: int) -> int:
                data = items[n].data
                return (
                    depth_of(parents, data.customer_id) if isinstance(data, CustomerUpserted) else 0
                )

            ordered = [items[n] for n in sorted(range(len(items)), key=lambda n: (depth(n), n))]
            return bytes(render(kind, ordered))

        return render_batch

    async def _link_batch(self, outcomes: Sequence[Any]) -> None:
        for outcome in outcomes:
            ref = str(outcome.external_ref)
            prepared = self._batch_prepared.pop(ref, None)
            if not outcome.erp_id:
                continue
            if prepared is not None:
                await self._landed(prepared, str(outcome.erp_id), None)
                continue
            if not sfid.is_valid(ref):
                continue
            now = self.clock.now()
            with self.engine.begin() as conn:
                try:
                    with conn.begin_nested():
                        mdm.link_customer(
                            conn,
                            sf_account_id=ref,
                            erp_system=self.erp_system,
                            erp_entity=self.erp_entity,
                            erp_customer_number=None,
                            erp_internal_id=str(outcome.erp_id),
                            now=now,
                            actor="mdm",
                            reason="the ERP answered the customer batch",
                        )
                except DomainError:
                    continue  # a contradiction waits for the crosswalk's owner

    @property
    def erp_system(self) -> str:
        return self.inner.capabilities.name

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    async def upsert_customer(
        self, external_ref: str, customer: CustomerUpserted, parent_erp_id: str | None
    ) -> ErpRecord:
        if not sfid.is_valid(customer.customer_id):
            # Not a Salesforce Account (a feed with its own keys): outside the master.
            return await self.inner.upsert_customer(external_ref, customer, parent_erp_id)
        prepared = await self._prepare(external_ref, customer)
        record = await self.inner.upsert_customer(external_ref, prepared.outgoing, parent_erp_id)
        await self._landed(prepared, record.erp_id, record.number)
        return record

    async def _prepare(self, external_ref: str, customer: CustomerUpserted) -> _Prepared:
        """The master's checks before a customer goes to the ERP, on every route (real time,
        expedited, the nightly batch): a hierarchy cycle is refused (``DomainError``), an
        unlinked Account with a likely ERP customer is held for review (``Held``), changes
        to attributes Salesforce does not own are not sent (the synced value goes instead)."""
        now = self.clock.now()
        sf = mdm.sf18(customer.customer_id)
        reverts: dict[str, Any] = {}
        with self.engine.begin() as conn:
            link = mdm.find_link(
                conn, erp_system=self.erp_system, erp_entity=self.erp_entity, sf_account_id=sf
            )
            canonical = mdm.canonical_for_sf(conn, sf, now=now, name=customer.name)
            parent = (
                mdm.canonical_for_sf(conn, customer.parent_customer_id, now=now)
                if customer.parent_customer_id and sfid.is_valid(customer.parent_customer_id)
                else None
            )
            cycle = mdm.check_parent(conn, canonical, parent)
            if cycle is not None:
                message = mdm.reject_cycle(
                    conn, canonical_id=canonical, sf_account_id=sf, cycle=cycle, now=now
                )
        if cycle is not None:
            raise DomainError(message)
        if link is None:
            await self._hold_if_likely_match(sf, customer)
        else:
            link = await self._complete_link(link, sf)
        with self.engine.begin() as conn:
            decisions = mdm.apply_reported(
                conn,
                self.ownership,
                canonical_id=canonical,
                side="salesforce",
                values=mdm.customer_attributes(customer),
                now=now,
                actor="mdm",
                sf_account_id=sf,
                erp_customer_number=link.erp_customer_number if link else None,
            )
            synced = mdm.synced_values(conn, canonical)
            outgoing = customer
            for attribute, value in synced.items():
                if self.ownership.owner_of(attribute) != "salesforce":
                    # The ERP owns it: what goes to the ERP is the synced (owner's) value.
                    outgoing = _with_value(outgoing, attribute, value)
            for d in decisions:
                if d.action is Action.REVERT:
                    reverts[d.attribute] = synced[d.attribute]
            reparented = mdm.set_parent(conn, canonical, parent, now)
            if reparented and link is not None:
                mdm._audit(
                    conn,
                    now=now,
                    actor="mdm",
                    action="mdm_reparent",
                    entity_id=canonical,
                    reason=f"parent now {customer.parent_customer_id or 'none'}",
                )
        if link is not None and link.erp_internal_id:
            await self._adopt(external_ref, link.erp_internal_id)
        return _Prepared(
            sf=sf, canonical=canonical, customer=customer, outgoing=outgoing, reverts=reverts
        )

    async def _landed(self, p: _Prepared, erp_id: str, number: str | None) -> None:
        """The ERP took the customer: link it, remember what was written (no echo), and
        write the owner's values back over the non-owner's edits."""
        now = self.clock.now()
        with self.engine.begin() as conn:
            try:
                with conn.begin_nested():
                    mdm.link_customer(
                        conn,
                        sf_account_id=p.sf,
                        erp_system=self.erp_system,
                        erp_entity=self.erp_entity,
                        erp_customer_number=number or p.customer.erp_customer_number,
                        erp_internal_id=erp_id,
                        now=now,
                        actor="mdm",
                        reason="the ERP answered the customer upsert",
                    )
            except DomainError as exc:
                # The record landed, but not where the crosswalk says: kept as it is for its
                # owner to decide, and said (it was silent: the ERP's news for the customer
                # it answered with would then never find this Account).
                mdm._audit(
                    conn,
                    now=now,
                    actor="mdm",
                    action="mdm_link_contradicted",
                    entity_id=p.canonical,
                    reason=f"the ERP answered the upsert of {p.sf} with customer {erp_id}"
                    f"{f' ({number})' if number else ''}: {exc}; the crosswalk is unchanged",
                )
            written = mdm.customer_attributes(p.outgoing)
            mdm.remember_written(conn, self.erp_system, erp_id, written, now)
            mdm.seed_synced(
                conn,
                self.ownership,
                canonical_id=p.canonical,
                values={k: v for k, v in written.items() if self.ownership.owner_of(k) == "erp"},
                now=now,
                set_by="erp",
            )
            # The ERP-owned values the Account already holds (sent from it, or written back
            # below) need no write with the next credit status (``MdmSalesforce``).
            sent = mdm.customer_attributes(p.customer)
            owned = _erp_owned(self.ownership, written)
            if owned and all(sent.get(a) == v or a in p.reverts for a, v in owned.items()):
                mdm.remember_written(conn, "salesforce", f"master:{p.sf}", owned, now)
        if p.reverts and self.salesforce is not None:
            revert = getattr(self.salesforce, "revert_account_fields", None)
            if revert is not None:
                await revert(p.sf, p.reverts)
                # The whole Account as the capture reads it after the revert: only then does
                # its change event match (the reverted values alone never did).
                after = mdm.account_after_revert(p.customer, p.reverts)
                with self.engine.begin() as conn:
                    mdm.remember_written(conn, "salesforce", p.sf, after, now)

    async def screen_batch(
        self, kind: RecordKind, items: Sequence[BatchItem]
    ) -> list[BatchItem | Exception]:
        """The nightly batch gets the real-time checks, per record (``BatchScreen``): each
        item comes back as the record to send (owner's values in place) or as the reason it
        is not sent (a cycle: ``DomainError``; a likely duplicate: ``Held``). Parents are
        kept ahead of their children in the file."""
        inner: Any = getattr(self.inner, "screen_batch", None)  # the adapter's own checks
        if kind is not RecordKind.CUSTOMER:
            return list(await inner(kind, items)) if inner is not None else list(items)
        out: list[BatchItem | Exception] = []
        for item in items:
            data = item.data
            if not isinstance(data, CustomerUpserted) or not sfid.is_valid(data.customer_id):
                out.append(item)
                continue
            try:
                prepared = await self._prepare(item.external_ref, data)
            except Exception as exc:  # per record: held, dead letter, or (unknown) retried
                out.append(exc)
                continue
            self._batch_prepared[item.external_ref] = prepared
            out.append(dataclasses.replace(item, data=prepared.outgoing))
        if inner is None:
            return out
        kept = [n for n, o in enumerate(out) if isinstance(o, BatchItem)]
        screened = await inner(kind, [out[n] for n in kept])
        for n, result in zip(kept, screened, strict=True):
            if isinstance(result, Exception):
                self._batch_prepared.pop(items[n].external_ref, None)
            out[n] = result
        return out

    async def _adopt(self, external_ref: str, erp_internal_id: str) -> None:
        """A customer linked at go-live gets the hub's reference before its first upsert, so
        the upsert updates it instead of creating a second one."""
        adopt = getattr(self.inner, "adopt_customer", None)
        if adopt is None:
            return
        found = await self.inner.find(RecordKind.CUSTOMER, external_ref)
        if found is None:
            await adopt(external_ref, erp_internal_id)

    async def _hold_if_likely_match(self, sf: str, customer: CustomerUpserted) -> None:
        """An unlinked Account with a likely ERP customer waits for a person's decision: a
        proposal from ``mdm match``, or one found now among the ERP's own customers (those
        the hub did not create)."""
        with self.engine.begin() as conn:
            if mdm.rejected_match(conn, sf):
                return
            held = mdm.held_review_for(conn, sf)
            if held is not None:
                mdm.mark_held(conn, held["id"])
        if held is None:
            found = await self._likely_native(sf, customer)
            if found is None:
                return
            proposal, internal = found
            with self.engine.begin() as conn:
                review = mdm.open_review(
                    conn,
                    kind="held",
                    sf_account_id=sf,
                    erp_customer_number=proposal.erp_id,
                    sf_value={"name": customer.name},
                    erp_value={
                        "erp_system": self.erp_system,
                        "erp_entity": self.erp_entity,
                        "erp_internal_id": internal,
                    },
                    score=round(proposal.score, 4),
                    message=f"likely the existing ERP customer {proposal.erp_id}: "
                    f"score {proposal.score:.3f} ({proposal.evidence})",
                    now=self.clock.now(),
                ).id
            held = {"id": review, "erp_customer_number": proposal.erp_id}
        raise Held(
            f"customer {sf} ({customer.name}) held for review {held['id']}: likely the "
            f"existing ERP customer {held['erp_customer_number']}; approve to link, reject "
            "to create a new customer (`revbridge mdm review`)",
            waits_for=f"review:{held['id']}",
        )

    async def _native_customers(self) -> list[Any] | None:
        """The customers the ERP holds that the hub did not create (None: the adapter cannot
        list them)."""
        lister = getattr(self.inner, "native_customers", None)
        customers = getattr(self.inner, "customers", None)
        if lister is not None:
            # Read at most every few minutes: every new Account asks, the list changes slowly.
            now = self.clock.now()
            if self._native is None or now - self._native[0] > NATIVE_TTL:
                self._native = (now, await lister())
            return list(self._native[1])
        if customers is not None:  # the in-process fake: customers it holds for no hub ref
            return [r for r in customers() if str(r["external_ref"]).startswith("erp-native:")]
        return None

    async def _complete_link(self, link: mdm.Link, sf: str) -> mdm.Link:
        """A link made by number only (``mdm match --erp-csv``, ``mdm import`` without an
        internal id) gets the internal id of the ERP's own customer of that number, so the
        first upsert adopts it (``_adopt``) instead of creating a second customer."""
        if link.erp_internal_id or not link.erp_customer_number:
            return link
        rows = await self._native_customers()
        if rows is None:
            return link  # the adapter cannot list its customers: nothing to check against
        _, ids = _candidates(rows)
        internal = ids.get(link.erp_customer_number)
        if internal is None:
            self._native = None  # the list may be minutes old: read it again once
            _, ids = _candidates(await self._native_customers() or [])
            internal = ids.get(link.erp_customer_number)
        if internal is None:
            if await self.inner.find(RecordKind.CUSTOMER, sf) is not None:
                return link  # the ERP already holds this Account's customer: it is updated
            # Creating a customer now would make a second one beside the linked number, and
            # the crosswalk would name two ERP customers for one Account.
            raise DomainError(
                f"customer {sf} is linked to {self.erp_system} customer "
                f"{link.erp_customer_number} (a link by number, from `mdm match` or `mdm "
                f"import`), but the ERP has no customer {link.erp_customer_number} free to "
                "take it: not created, so as not to make a second customer. Check the number "
                "in the ERP (a typo, another subsidiary, a merged customer), then "
                "`revbridge dlq replay`"
            )
        with self.engine.begin() as conn:
            try:
                with conn.begin_nested():
                    mdm.link_customer(
                        conn,
                        sf_account_id=sf,
                        erp_system=self.erp_system,
                        erp_entity=self.erp_entity,
                        erp_customer_number=link.erp_customer_number,
                        erp_internal_id=internal,
                        now=self.clock.now(),
                        actor="mdm",
                        reason=f"the ERP's customer {link.erp_customer_number} found by its "
                        "number, before the first upsert",
                    )
            except DomainError:
                return link  # a contradiction waits for the crosswalk's owner
        return dataclasses.replace(link, erp_internal_id=internal)

    async def _likely_native(
        self, sf: str, customer: CustomerUpserted
    ) -> tuple[Proposal, str | None] | None:
        rows = await self._native_customers()
        if not rows:
            return None
        candidates, ids = _candidates(rows)
        address = customer.billing_address
        account = Candidate.of(
            sf,
            customer.name,
            tax_id=customer.tax_id,
            website=customer.website,
            email=next((c.email for c in customer.contacts if c.email), None),
            street=address.line1 if address else None,
            city=address.city if address else None,
            postal_code=address.postal_code if address else None,
            country=address.country if address else None,
        )
        best = likely_match(account, candidates, review_at=self.review_at)
        return None if best is None else (best, ids.get(best.erp_id))

    async def create_invoice(
        self, external_ref: str, invoice: InvoicePosted, customer_erp_id: str
    ) -> ErpRecord:
        return await self.inner.create_invoice(external_ref, invoice, customer_erp_id)

    async def record_payment(
        self,
        external_ref: str,
        payment: PaymentReceived,
        customer_erp_id: str,
        invoice_erp_ids: Mapping[str, str],
    ) -> ErpRecord:
        return await self.inner.record_payment(
            external_ref, payment, customer_erp_id, invoice_erp_ids
        )

    async def create_credit_memo(
        self,
        external_ref: str,
        memo: CreditMemoIssued,
        customer_erp_id: str,
        invoice_erp_ids: Mapping[str, str],
    ) -> ErpRecord:
        return await self.inner.create_credit_memo(
            external_ref, memo, customer_erp_id, invoice_erp_ids
        )

    async def post_journal(
        self, external_ref: str, entry: RevenueRecognized, customer_erp_id: str | None
    ) -> ErpRecord:
        return await self.inner.post_journal(external_ref, entry, customer_erp_id)

    async def find(self, kind: RecordKind, external_ref: str) -> ErpRecord | None:
        return await self.inner.find(kind, external_ref)

    async def close(self) -> None:
        await self.inner.close()


def _address(value: Any) -> Address | None:
    return None if value is None else Address(**value)


def _with_value(customer: CustomerUpserted, attribute: str, value: Any) -> CustomerUpserted:
    """``customer`` carrying the synced (owner's) ``value`` of ``attribute`` instead of its own."""
    if attribute in ("name", "tax_id", "website", "industry", "segment", "owner"):
        return dataclasses.replace(customer, **{attribute: value})
    if attribute == "billing_address":
        return dataclasses.replace(customer, billing_address=_address(value))
    if attribute == "shipping_address":
        return dataclasses.replace(customer, shipping_address=_address(value))
    if attribute == "contacts":
        return dataclasses.replace(customer, contacts=tuple(Contact(**c) for c in value))
    return customer  # the parent travels as the ERP id the engine resolved


class MdmSalesforce:
    """A Salesforce port whose credit status write-back goes through the crosswalk."""

    def __init__(
        self,
        inner: SalesforcePort,
        engine: Engine,
        ownership: Ownership,
        *,
        erp_system: str,
        erp_entity: str = "",
        clock: Clock | None = None,
    ) -> None:
        self.inner = inner
        self.engine = engine
        self.ownership = ownership
        self.erp_system = erp_system
        self.erp_entity = erp_entity
        self.clock = clock or SystemClock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    async def update_credit_status(
        self, external_ref: str, status: CustomerCreditStatusChanged
    ) -> str:
        now = self.clock.now()
        with self.engine.begin() as conn:
            link = mdm.find_link(
                conn,
                erp_system=self.erp_system,
                erp_entity=self.erp_entity,
                erp_customer_number=status.erp_customer_number,
            )
            if link is not None and link.sf_account_id:
                status = dataclasses.replace(status, customer_id=link.sf_account_id)
                decisions = mdm.apply_reported(
                    conn,
                    self.ownership,
                    canonical_id=link.canonical_id,
                    side="erp",
                    values=mdm.credit_attributes(status),
                    now=now,
                    actor="mdm",
                    sf_account_id=link.sf_account_id,
                    erp_customer_number=status.erp_customer_number,
                )
                synced = mdm.synced_values(conn, link.canonical_id)
                for d in decisions:
                    if not d.is_conflict:
                        continue
                    # Salesforce owns it (by configuration): the ERP's change is not sent.
                    if d.attribute == "payment_terms":
                        status = dataclasses.replace(status, payment_terms=synced[d.attribute])
                    elif d.attribute == "credit_limit":
                        value = synced[d.attribute]
                        status = dataclasses.replace(
                            status, credit_limit=None if value is None else Decimal(value)
                        )
        account = await self.inner.update_credit_status(external_ref, status)
        with self.engine.begin() as conn:
            mdm.remember_written(
                conn,
                "salesforce",
                f"credit:{status.customer_id or status.erp_customer_number}",
                mdm.credit_attributes(status),
                now,
            )
            owned = (
                self._erp_owned_master(conn, link.canonical_id)
                if link is not None and link.sf_account_id
                else {}
            )
        if owned and link is not None and link.sf_account_id:
            await self._write_erp_owned(link.sf_account_id, owned, now)
        return account

    def _erp_owned_master(self, conn: Any, canonical_id: str) -> dict[str, Any]:
        """The synced values of the master attributes the ERP owns (the tax registration)."""
        return _erp_owned(self.ownership, mdm.synced_values(conn, canonical_id))

    async def _write_erp_owned(self, sf: str, owned: dict[str, Any], now: datetime) -> None:
        """The ERP's values of the attributes it owns, on the Account, when they are not
        there yet (remembered per Account: written once per change, never echoed)."""
        key = f"master:{sf}"
        with self.engine.connect() as conn:
            if mdm.is_echo(conn, "salesforce", key, owned, None):
                return
        write = getattr(self.inner, "revert_account_fields", None)
        if write is None:
            return
        await write(sf, owned)
        with self.engine.begin() as conn:
            mdm.remember_written(conn, "salesforce", key, owned, now)

    async def apply_erp_payment(self, external_ref: str, payment: ErpPaymentReceived) -> str:
        return await self.inner.apply_erp_payment(external_ref, payment)

    async def record_gl_posting(self, external_ref: str, journal: GlPosted) -> str:
        return await self.inner.record_gl_posting(external_ref, journal)

    async def refresh_reporting(self, external_ref: str, report: ReportingRefreshed) -> str:
        return await self.inner.refresh_reporting(external_ref, report)

    async def find(self, external_ref: str) -> str | None:
        return await self.inner.find(external_ref)

    async def close(self) -> None:
        await self.inner.close()


# ---------------------------------------------------------------------- capture


def filter_erp_capture(
    engine: Engine,
    erp_system: str,
    envelopes: Sequence[dict[str, Any]],
    *,
    now: datetime,
    erp_entity: str = "",
    ownership: Ownership | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Link the customers the ERP names with the hub's id; decide the master attributes the
    capture read from the customer (``master``: name, billing address, web site, industry,
    tax id, as far as the ERP record holds them); drop credit changes that only repeat what
    is synced. Returns the envelopes kept and how many echoes were dropped.

    An ERP edit to an attribute Salesforce owns (the name or address changed in the ERP) is
    not propagated: it opens a conflict review with both values and an audit entry naming the
    winner, and with ``on_conflict = "revert"`` the Account's last version is sent to the ERP
    again (Salesforce's values written back over the edit). An ERP edit to one the ERP owns
    (the tax registration) becomes the synced value, and its credit status envelope is kept
    even when the credit values are unchanged: its delivery writes it on the Account."""
    own = ownership or Ownership()
    kept: list[dict[str, Any]] = []
    echoes = 0
    with engine.begin() as conn:
        for env in envelopes:
            if env.get("type") != "customer.credit_status_changed":
                kept.append(env)
                continue
            master = env.get("master") or {}
            env = {k: v for k, v in env.items() if k != "master"}  # not part of the event
            data = env.get("data") or {}
            number = data.get("erp_customer_number")
            sf = data.get("customer_id")
            if sf and number and sfid.is_valid(str(sf)):
                try:
                    with conn.begin_nested():
                        mdm.link_customer(
                            conn,
                            sf_account_id=str(sf),
                            erp_system=erp_system,
                            erp_entity=erp_entity,
                            erp_customer_number=str(number),
                            erp_internal_id=str(env.get("source_id") or "") or None,
                            now=now,
                            actor="capture",
                            reason="the ERP capture saw the customer with the hub's id",
                        )
                except DomainError:
                    pass  # a contradiction is left to the person who owns the crosswalk
            link = mdm.find_link(
                conn, erp_system=erp_system, erp_entity=erp_entity, erp_customer_number=number
            )
            propagated: list[str] = []
            if link is not None and link.sf_account_id and master:
                propagated = _decide_erp_master(
                    conn, own, link, dict(master), str(number), erp_system, now
                )
            values = {
                "credit_hold": data.get("credit_hold"),
                "credit_limit": data.get("credit_limit"),
                "payment_terms": data.get("payment_terms"),
            }
            # A credit status that repeats what is synced still carries an ERP-owned master
            # change (a new tax registration) to the Account: kept.
            if (
                not propagated
                and link is not None
                and mdm.is_echo(
                    conn,
                    "salesforce",
                    f"credit:{link.sf_account_id}",
                    values,
                    link.canonical_id,
                )
            ):
                echoes += 1
                continue
            kept.append(env)
    return kept, echoes


def _decide_erp_master(
    conn: Any,
    ownership: Ownership,
    link: mdm.Link,
    values: dict[str, Any],
    number: str,
    erp_system: str,
    now: datetime,
) -> list[str]:
    """The master attributes an ERP capture read, decided like Salesforce's: a change to one
    Salesforce owns is reviewed, and reverted by sending the Account's last version again; a
    change to one the ERP owns (its tax registration) becomes the synced value, and the
    attributes so propagated are returned (``MdmSalesforce`` writes them on the Account).

    A value the ERP keeps in its own form (a name in capitals, a street in one field, a web
    site with its scheme) is the synced value, not an edit (``erp_reading.reads_as_synced``):
    otherwise every write-back would be read as a new conflict and written back again."""
    assert link.sf_account_id is not None
    synced = mdm.synced_values(conn, link.canonical_id)
    values = {
        k: synced[k] if k in synced and reads_as_synced(k, v, synced[k]) else v
        for k, v in values.items()
        if k in ERP_MASTER_ATTRIBUTES and v is not None
    }
    decisions = mdm.apply_reported(
        conn,
        ownership,
        canonical_id=link.canonical_id,
        side="erp",
        values=values,
        now=now,
        actor="capture",
        sf_account_id=link.sf_account_id,
        erp_customer_number=number,
    )
    reverted = sorted(d.attribute for d in decisions if d.action is Action.REVERT)
    if reverted:
        mdm.resend_customer(
            conn,
            link.sf_account_id,
            now=now,
            reason=f"{', '.join(reverted)} changed in {erp_system}, which does not own it: "
            "Salesforce's values written back",
        )
    return sorted(
        d.attribute
        for d in decisions
        if d.owner == "erp" and d.action in (Action.FIRST, Action.PROPAGATE)
    )


def filter_salesforce_capture(
    engine: Engine, envelopes: Sequence[dict[str, Any]], ownership: Ownership | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Drop captured Account versions whose master attributes are all as last synced (the
    hub's own write-back, or a change to fields the master does not hold)."""
    from revbridge.codec import decode_obj

    own = ownership or Ownership()
    not_owned = frozenset(a for a, side in own.owners.items() if side != "salesforce")
    kept: list[dict[str, Any]] = []
    echoes = 0
    with engine.connect() as conn:
        for env in envelopes:
            if env.get("type") != "customer.upserted":
                kept.append(env)
                continue
            try:
                data = decode_obj(env).data
            except RevbridgeError:  # invalid payloads go on to ingest, which quarantines them
                kept.append(env)
                continue
            assert isinstance(data, CustomerUpserted)
            sf = mdm.sf18(data.customer_id)
            canonical = mdm.canonical_of_sf(conn, sf)
            values = mdm.customer_attributes(data)
            if canonical is not None and mdm.is_echo(
                conn, "salesforce", sf, values, canonical, not_owned
            ):
                echoes += 1
                continue
            kept.append(env)
    return kept, echoes


# ---------------------------------------------------------------------- go-live matching


@dataclass(frozen=True, slots=True)
class BadRow:
    """A record ``mdm match`` could not use: which file and line (0: not from a file), why."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        where = f"{self.file} line {self.line}" if self.line else self.file
        return f"{where}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "message": self.message}


@dataclass(slots=True)
class MatchReport:
    """What ``mdm match`` did. Every Account read is counted once: ``invalid`` (a bad row,
    not matched), ``already_linked`` (left out), ``accepted``, ``review`` or ``rejected`` (its
    best proposal's status), or ``unmatched`` (no ERP customer scored high enough)."""

    proposals: list[tuple[Proposal, str]] = field(default_factory=list)
    linked: int = 0
    queued: int = 0
    sf_records: int = 0
    erp_records: int = 0
    already_linked: int = 0
    unmatched: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)
    sf_invalid: int = 0
    csv_path: Path | None = None

    def counts(self) -> dict[str, int]:
        by = {"accepted": 0, "review": 0, "rejected": 0}
        for _, status in self.proposals:
            by[status] = by.get(status, 0) + 1
        return by | {
            "unmatched": self.unmatched,
            "already_linked": self.already_linked,
            "invalid": self.sf_invalid,
            "sf_records": self.sf_records,
            "erp_records": self.erp_records,
            "erp_invalid": len(self.bad_rows) - self.sf_invalid,
            "linked": self.linked,
            "queued": self.queued,
        }

    def as_dict(self) -> dict[str, Any]:
        return self.counts() | {"bad_rows": [b.as_dict() for b in self.bad_rows]}

    def summary(self) -> str:
        """One line for a person: every Account read, where it went."""
        c = self.counts()
        line = (
            f"{counted(c['sf_records'], 'Account')} read: {c['accepted']} accepted ({c['linked']} "
            f"linked), {c['review']} for review ({c['queued']} queued), {c['rejected']} "
            f"rejected, {c['unmatched']} unmatched, {c['already_linked']} already linked, "
            f"{c['invalid']} invalid; {counted(c['erp_records'], 'ERP customer')} read"
        )
        return line + (f", {c['erp_invalid']} invalid" if c["erp_invalid"] else "")


def read_candidates(
    path: Path, *, id_column: str, salesforce_ids: bool = False
) -> tuple[list[Candidate], list[BadRow]]:
    """Records from a CSV export: ``id_column`` plus name, tax_id, website, email, street,
    city, postal_code, country (missing columns are empty), and the rows that cannot be
    matched, each with its line number and why: an empty id, an id listed twice, and with
    ``salesforce_ids`` an id that is not a Salesforce id (15 or 18 characters, checksum).
    A file without ``id_column`` is refused (``UsageError``)."""
    rows: list[tuple[int, str, str | None, dict[str, str]]] = []
    lines_of: dict[str, list[int]] = {}
    reader = csv.DictReader(mdm.read_csv_text(path))
    if id_column not in (reader.fieldnames or ()):
        raise UsageError(
            f"{path}: no {id_column!r} column (header: {', '.join(reader.fieldnames or ())}"
            f"); the file needs {id_column} and may have name, tax_id, website, email, "
            "street, city, postal_code, country"
        )
    for row in reader:
        line = reader.line_num
        record_id = str(row.get(id_column) or "").strip()
        problem = _bad_id(record_id, id_column, salesforce_ids)
        if problem is None:
            key = sfid.to_18(record_id) if salesforce_ids else record_id
            lines_of.setdefault(key, []).append(line)
        rows.append((line, record_id, problem, row))
    out: list[Candidate] = []
    bad: list[BadRow] = []
    for line, record_id, problem, row in rows:
        if problem is None:
            key = sfid.to_18(record_id) if salesforce_ids else record_id
            others = [n for n in lines_of[key] if n != line]
            if others:
                # Which of the rows is right is not for the hub to guess: none is matched.
                times = "twice" if len(others) == 1 else f"{len(others) + 1} times"
                also = ", ".join(str(n) for n in others)
                problem = (
                    f"{id_column} {record_id!r} is listed {times} (also "
                    f"{'line' if len(others) == 1 else 'lines'} {also}); none of them is matched"
                )
        if problem is not None:
            bad.append(BadRow(path.name, line, problem))
            continue
        out.append(_row_candidate(record_id, row))
    return out, bad


def _bad_id(record_id: str, column: str, salesforce: bool) -> str | None:
    if not record_id:
        return f"{column} is empty"
    if not salesforce:
        return None
    try:
        sfid.to_18(record_id)
    except ValueError as exc:
        why = str(exc).removeprefix(repr(record_id)).lstrip(": ")
        if why.startswith("is not"):
            return f"{column} {record_id!r} {why}"
        return f"{column} {record_id!r} is not a Salesforce id: {why}"
    return None


def run_match(
    engine: Engine,
    sf: Sequence[Candidate],
    erp: Sequence[Candidate],
    *,
    erp_system: str,
    erp_entity: str = "",
    accept_at: float = 0.9,
    review_at: float = 0.7,
    report_path: Path | None = None,
    erp_internal_ids: Mapping[str, str] | None = None,
    now: datetime,
    actor: str,
    sf_bad_rows: Sequence[BadRow] = (),
    erp_bad_rows: Sequence[BadRow] = (),
) -> MatchReport:
    """Propose links; make those at or above ``accept_at``; queue those down to ``review_at``;
    write the report. Accounts already linked are left out. The rows ``read_candidates``
    could not use (``sf_bad_rows``, ``erp_bad_rows``) are counted as read and invalid; an
    Account id that is not a Salesforce id is too."""
    linked_sf = {link.sf_account_id for link in mdm.all_links(engine, erp_system)}
    valid = [c for c in sf if sfid.is_valid(c.record_id)]
    invalid = [
        BadRow("salesforce", 0, f"Account Id {c.record_id!r} is not a Salesforce id")
        for c in sf
        if not sfid.is_valid(c.record_id)
    ]
    todo = [c for c in valid if sfid.to_18(c.record_id) not in linked_sf]
    report = MatchReport(
        sf_records=len(sf) + len(sf_bad_rows),
        erp_records=len(erp) + len(erp_bad_rows),
        already_linked=len(valid) - len(todo),
        bad_rows=[*sf_bad_rows, *invalid, *erp_bad_rows],
        sf_invalid=len(sf_bad_rows) + len(invalid),
    )
    with engine.connect() as conn:
        refused = mdm.rejected_pairs(conn)  # a person said no (review, unlink): not again
    numbers_refused: dict[str, list[str]] = defaultdict(list)
    for sf18, number in refused:
        numbers_refused[sf18].append(number)
    exclude = {
        (c.record_id, number)
        for c in todo
        for number in numbers_refused.get(sfid.to_18(c.record_id), ())
    }
    proposals = propose_links(todo, erp, review_at=min(review_at, 0.5), exclude=exclude)
    report.unmatched = len(todo) - len(proposals)
    names = {c.record_id: c.name for c in (*todo, *erp)}
    with engine.begin() as conn:
        for p in proposals:
            status = p.status(accept_at, review_at)
            if status == "accepted":
                try:
                    with conn.begin_nested():
                        mdm.link_customer(
                            conn,
                            sf_account_id=p.sf_id,
                            erp_system=erp_system,
                            erp_entity=erp_entity,
                            erp_customer_number=p.erp_id,
                            erp_internal_id=(erp_internal_ids or {}).get(p.erp_id),
                            name=names.get(p.sf_id),
                            now=now,
                            actor=actor,
                            reason=f"mdm match: score {p.score:.3f} ({p.evidence})",
                        )
                        internal = (erp_internal_ids or {}).get(p.erp_id)
                        if internal:
                            mdm.adopt_ref(conn, mdm.sf18(p.sf_id), internal, now)
                    report.linked += 1
                except DomainError:
                    status = "review"
            if status == "review":
                mdm.open_review(
                    conn,
                    kind="match",
                    sf_account_id=mdm.sf18(p.sf_id),
                    erp_customer_number=p.erp_id,
                    sf_value={"name": names.get(p.sf_id)},
                    erp_value={
                        "name": names.get(p.erp_id),
                        "erp_system": erp_system,
                        "erp_entity": erp_entity,
                        "erp_internal_id": (erp_internal_ids or {}).get(p.erp_id),
                    },
                    score=round(p.score, 4),
                    message=f"likely the same customer: score {p.score:.3f} ({p.evidence})",
                    now=now,
                )
                report.queued += 1
            report.proposals.append((p, status))
    if report_path is not None:
        with report_path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(
                ["status", "score", "sf_account_id", "sf_name", "erp_id", "erp_name", "evidence"]
            )
            for p, status in report.proposals:
                writer.writerow(
                    [
                        status,
                        f"{p.score:.4f}",
                        p.sf_id,
                        names.get(p.sf_id),
                        p.erp_id,
                        names.get(p.erp_id),
                        p.evidence,
                    ]
                )
        report.csv_path = report_path
    return report


def ownership_from(settings: Any) -> Ownership:
    m = settings.raw.mdm
    return Ownership.from_config(m.owners, m.on_conflict)


def salesforce_echo_filter(
    settings: Any, engine: Engine
) -> Callable[[list[dict[str, Any]]], tuple[list[dict[str, Any]], int]]:
    """The org capture's echo check (``SalesforceCapture(envelope_filter=...)``) with the
    configured owners: an attribute the ERP owns that the Account leaves empty is no edit.
    With the default owners instead, the Account version the hub's own write-back makes
    (a reverted name) read as a change and went to the ERP again."""
    return partial(filter_salesforce_capture, engine, ownership=ownership_from(settings))


def with_customer_master(
    settings: Any,
    engine: Engine,
    erp: ErpPort,
    salesforce: SalesforcePort,
    clock: Clock | None = None,
) -> tuple[MdmErp, MdmSalesforce]:
    """The delivery ports with the customer master in front (``services/targets.py``)."""
    ownership = ownership_from(settings)
    entity = settings.raw.mdm.erp_entity
    sf = MdmSalesforce(
        salesforce,
        engine,
        ownership,
        erp_system=erp.capabilities.name,
        erp_entity=entity,
        clock=clock,
    )
    return (
        MdmErp(
            erp,
            engine,
            ownership,
            erp_entity=entity,
            clock=clock,
            salesforce=salesforce,
            review_at=settings.raw.mdm.review_at,
        ),
        sf,
    )


def _row_candidate(record_id: str, row: Mapping[str, Any]) -> Candidate:
    """One record (a CSV row, an ERP customer) as a match candidate."""
    return Candidate.of(
        record_id,
        str(row.get("name") or ""),
        tax_id=row.get("tax_id"),
        website=row.get("website"),
        email=row.get("email"),
        street=row.get("street"),
        city=row.get("city"),
        postal_code=row.get("postal_code"),
        country=row.get("country"),
    )


def _candidates(rows: Sequence[Mapping[str, Any]]) -> tuple[list[Candidate], dict[str, str]]:
    """ERP customer rows (number, name, tax_id, website, email, address) as candidates, and
    number -> internal id."""
    candidates = [_row_candidate(str(c.get("number") or c["erp_id"]), c) for c in rows]
    ids = {str(c.get("number") or c["erp_id"]): str(c["erp_id"]) for c in rows}
    return candidates, ids


async def erp_candidates(erp: Any) -> tuple[list[Candidate], dict[str, str]]:
    """The configured ERP's customers for ``mdm match``, and number -> internal id."""
    inner = getattr(erp, "inner", erp)
    if hasattr(inner, "customers"):
        rows = inner.customers()
    elif hasattr(inner, "native_customers"):
        rows = await inner.native_customers()
    else:
        raise DomainError(
            f"{erp.capabilities.name}: listing customers is not supported; use --erp-csv"
        )
    return _candidates(rows)


ACCOUNT_SOQL = (
    "SELECT Id, Name, Website, BillingStreet, BillingCity, BillingPostalCode, "
    "BillingCountryCode FROM Account"
)


async def salesforce_candidates(client: Any, soql: str = ACCOUNT_SOQL) -> list[Candidate]:
    """The org's Accounts for ``mdm match`` (a REST client: ``services.targets``)."""
    fields = {
        "name": "Name",
        "website": "Website",
        "street": "BillingStreet",
        "city": "BillingCity",
        "postal_code": "BillingPostalCode",
        "country": "BillingCountryCode",
    }
    return [
        _row_candidate(str(r["Id"]), {ours: r.get(theirs) for ours, theirs in fields.items()})
        for r in await _accounts(client, soql)
    ]


async def _accounts(client: Any, soql: str) -> list[Any]:
    try:
        return list(await client.query(soql))
    except TerminalError:
        if "Website" not in soql:
            raise
        # An org without the standard Website field readable (a restricted profile).
        return list(await client.query(soql.replace(" Website,", "")))
