"""``TrytonErp``: the engine's ``ErpPort`` over Tryton's JSON-RPC, plus the read-backs.

Data flow: the worker calls one port method per event; each method maps the canonical
payload to Tryton records through ``TrytonAccounting`` (``operations.py``), which speaks
JSON-RPC through ``TrytonClient`` (``rpc.py``). Nothing here imports trytond.

Invariants:

* The external reference is the source record's id (the Salesforce invoice id, say). It is
  the invoice's ``reference``, the payment move's ``description``, the journal entry's
  ``description``, and a party identifier ``salesforce:<Account id>``.
* Tryton has no unique constraint on those references, so every create searches first,
  and creates of one reference are serialised inside the adapter (an ``asyncio`` lock per
  reference): two deliveries of the same record never both create it.
* ``find`` answers the engine's question "did that delivery land completely?". A document
  half-way through (an invoice still in draft, a credit note not applied yet, a payment
  applied to one of its two invoices) is reported as not found, so the engine calls the
  create again, which finishes the work instead of starting it over.
* Postings into a period that is not open are refused before anything is created in Tryton
  (``ClosedPeriod``, a ``TerminalError``): the delivery is dead-lettered for an accountant.
* Errors leave as ``TransientError`` (with ``RateLimited`` for HTTP 429) or ``TerminalError``.
  ``rpc.py`` translates Tryton's; the business-rule errors of the operations layer
  (``DomainError``) become ``TerminalError`` here, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from revbridge.core.events import (
    Address,
    CreditMemoIssued,
    CustomerUpserted,
    DocumentLine,
    InvoicePosted,
    PaymentReceived,
    RevenueRecognized,
)
from revbridge.core.money import minor_unit
from revbridge.core.wording import counted
from revbridge.engine.ports import Capabilities, ErpRecord, ReadbackKind, ReadPage, RecordKind
from revbridge.errors import DomainError, TerminalError
from revbridge.mdm.normalize import normalize_tax_id
from revbridge.tryton.operations import (
    Invoice,
    InvoiceLine,
    InvoiceTax,
    JournalLine,
    MoveLine,
    Party,
    PartyBalance,
    Payment,
    TrytonAccounting,
)
from revbridge.tryton.rpc import TrytonClient, TrytonUserError

__all__ = [
    "DEFAULT_GL_ACCOUNTS",
    "IDENTIFIER_PREFIX",
    "AccountMap",
    "ClosedPeriod",
    "InvoiceBalance",
    "TrytonErp",
    "party_code_for",
    "payment_part_reference",
    "split_payment_reference",
]

# The ERP system the crosswalk records this adapter's links under (``Capabilities.name``).
SYSTEM_NAME = "tryton"

IDENTIFIER_PREFIX = "salesforce:"
"""Party identifiers holding a Salesforce Account id read ``salesforce:<id>``."""

DEFAULT_GL_ACCOUNTS: Mapping[str, str] = {
    "1000 Cash": "1.1.1",
    "1200 Accounts Receivable": "1.2.1",
    "2400 Deferred Revenue": "2.2.2",
    "4000 Subscription Revenue": "4.1.2",
    "4100 Services Revenue": "4.1.2",
}
"""Canonical GL account names to Universal Chart of Accounts codes (the template's chart)."""

SALES_TAX_NAME = "Sales tax (Salesforce)"
"""The ``account.tax`` (type none) the template creates; manual tax lines are reported under it."""

_TRYTON_CODE = re.compile(r"^\d+(\.\d+)+$")
# Written into a credit note's comment at creation, so that ``find`` can tell a credit note
# applied to some of its invoices from one applied to all of them.
_APPLIED_TO = re.compile(r"revbridge: applied to (\d+) invoice")
_PART = re.compile(r"^(?P<ref>.+) \[(?P<i>\d+)/(?P<n>\d+)\]$")
_POSTED = ("posted", "paid")


class ClosedPeriod(TerminalError):
    """The accounting period of the posting date is closed: an accountant has to act."""

    def __init__(self, what: str, period: str, state: str = "closed") -> None:
        self.what = what
        self.period = period
        super().__init__(
            f"{what}: Tryton's accounting period {period} is {state}, so nothing was posted. "
            "An accountant must reopen the period (or the source must re-date the document); "
            "the delivery is parked until then."
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountMap:
    """How canonical GL account names become Tryton account codes.

    ``gl_accounts`` maps names such as ``"2400 Deferred Revenue"`` to codes such as
    ``"2.2.2"``. A name is matched in full, then by its leading number (``"2400"``), then by
    its words (``"deferred revenue"``), all case-insensitively; a name that already is a
    Tryton code (``"4.1.2"``) is used as is. ``revenue`` is the account of invoice lines that
    name none; ``cash`` and ``receivable`` carry unapplied payments.
    """

    gl_accounts: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_GL_ACCOUNTS))
    revenue: str = "4.1.2"
    receivable: str = "1.2.1"
    cash: str = "1.1.1"
    tax: str = "2.2.3"
    tax_name: str | None = SALES_TAX_NAME

    def code_for(self, name: str) -> str:
        """The Tryton account code for ``name``; ``TerminalError`` when nothing maps it."""
        wanted = _normalise(name)
        if _TRYTON_CODE.match(name.strip()):
            return name.strip()
        for key, code in self.gl_accounts.items():
            if _normalise(key) == wanted:
                return code
        for key, code in self.gl_accounts.items():
            number, words = _split_account_name(key)
            if wanted in {number, words} - {""}:
                return code
        raise TerminalError(
            f"GL account {name!r} has no Tryton account in the account map "
            f"(known: {', '.join(sorted(self.gl_accounts))}); add it to the map"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class InvoiceBalance:
    """What is still open on one customer invoice or credit note, read back from Tryton.

    ``external_ref`` is the source record id (the invoice's Tryton ``reference``).
    Amounts are in ``currency``; a credit note has a negative ``total`` and ``open_amount``,
    and its ``open_amount`` leaves out the credit already applied to invoices.
    """

    external_ref: str
    erp_id: str
    number: str | None
    party_code: str
    currency: str
    total: Decimal
    open_amount: Decimal
    state: str

    @property
    def is_credit_note(self) -> bool:
        return self.total < 0


class _KeyedLocks:
    """One ``asyncio.Lock`` per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: tuple[str, str]) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


def party_code_for(customer: CustomerUpserted) -> str:
    """The party code: the ERP customer number when Salesforce has one, else ``SF-<id>``."""
    return customer.erp_customer_number or f"SF-{customer.customer_id}"


def payment_part_reference(reference: str, part: int, parts: int) -> str:
    """The move description of one part of a payment: the reference, then ``[i/n]`` if n > 1.

    A payment applied to two invoices is two moves in Tryton (one pay wizard per invoice);
    numbering them lets ``find`` tell a complete payment from one cut off half-way.
    """
    return reference if parts == 1 else f"{reference} [{part}/{parts}]"


def split_payment_reference(description: str) -> tuple[str, int, int]:
    """The inverse of ``payment_part_reference``: ``(reference, part, parts)``."""
    match = _PART.match(description)
    if match is None:
        return description, 1, 1
    return match["ref"], int(match["i"]), int(match["n"])


class TrytonErp:
    """The ERP port over one Tryton company. Use ``connect`` or pass a ``TrytonClient``.

    ``concurrency_limit`` is 1 by default: trytond on SQLite has one writer at a time, and
    a second call waits on the database lock by polling (SQLite's busy handler sleeps up to
    100 ms at a time) inside the same server process. Measured on the generated month of
    ``tests/scenarios/tryton``: 73 s with one call at a time, 80-90 s with two. On
    PostgreSQL raise it.
    """

    def __init__(
        self,
        client: TrytonClient,
        *,
        accounts: AccountMap | None = None,
        concurrency_limit: int = 1,
    ) -> None:
        self.client = client
        self.ops = TrytonAccounting(client)
        self.accounts = accounts or AccountMap()
        self._capabilities = Capabilities(
            name=SYSTEM_NAME,
            batch_size=50,
            concurrency_limit=concurrency_limit,
            idempotency="search_before_create",
            can_close_periods=True,
            request_timeout_s=client.timeout.total_seconds(),
        )
        self._locks = _KeyedLocks()
        self._company_currency: str | None = None
        self._party_required: dict[str, bool] = {}
        self._countries: dict[str, int | None] = {}

    @classmethod
    def connect(
        cls,
        url: str,
        database: str,
        login: str,
        password: str,
        *,
        accounts: AccountMap | None = None,
        concurrency_limit: int = 1,
        timeout: dt.timedelta = dt.timedelta(seconds=60),
    ) -> TrytonErp:
        """An adapter with its own client; it logs in on the first call."""
        client = TrytonClient(url, database, login, password, timeout=timeout)
        return cls(client, accounts=accounts, concurrency_limit=concurrency_limit)

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    async def close(self) -> None:
        await self.client.aclose()

    async def capture_changes(
        self, watermark: str | None, *, with_master: bool = False
    ) -> tuple[list[dict[str, Any]], str]:
        """Payments and credit positions changed since ``watermark`` (an ISO time, one for
        both streams; ``None``: from the beginning) as canonical envelopes, and the new mark
        (``capture.py``). ``with_master`` adds the party's master attributes beside each
        credit status, for the customer master."""
        from revbridge.tryton.capture import capture_credit_status, capture_erp_payments

        since = (
            dt.datetime.fromisoformat(watermark)
            if watermark
            else dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        )
        payments, mark_p = await capture_erp_payments(self, since)
        credit, mark_c = await capture_credit_status(self, since, with_master=with_master)
        return [*payments, *credit], min(mark_p, mark_c).isoformat()

    # Port: customers ---------------------------------------------------------------------

    async def upsert_customer(
        self, external_ref: str, customer: CustomerUpserted, parent_erp_id: str | None
    ) -> ErpRecord:
        """Create or update the party: code, name, Salesforce identifier, invoice address.

        The party is found by the ERP customer number (its code) when the event has one,
        else by its Salesforce identifier. A new party's code is that number, or
        ``SF-<Account id>``; an existing party keeps its code (Tryton will not change it).

        ``parent_erp_id`` is accepted and not stored: Tryton's party has no parent (the
        account hierarchy stays in Salesforce; see the README's gaps).
        """
        async with (
            self._boundary("customer", external_ref),
            self._locks.hold(("customer", external_ref)),
        ):
            party = await self._upsert_party(external_ref, customer)
            address = customer.billing_address or customer.shipping_address
            if address is not None:
                await self._write_address(party.id, address)
            if customer.tax_id:
                await self._write_tax_id(party.id, customer.tax_id)
            return ErpRecord(
                kind=RecordKind.CUSTOMER,
                external_ref=external_ref,
                erp_id=str(party.id),
                number=party.code,
            )

    async def _upsert_party(self, external_ref: str, customer: CustomerUpserted) -> Party:
        code = party_code_for(customer)
        identifier = IDENTIFIER_PREFIX + external_ref
        party = None
        if customer.erp_customer_number:
            party = await self.ops.find_party(code)
        if party is None:
            party = await self.ops.find_party_by_identifier(identifier)
        if party is None:
            return await self.ops.ensure_party(code, customer.name, identifier=identifier)
        values: dict[str, Any] = {}
        if party.name != customer.name:
            values["name"] = customer.name
        # The code is not rewritten when an ERP number arrives after a derived code was
        # used: Tryton makes a party's code read-only once set (the party sequence is on),
        # and the code *is* the ERP's customer number, which ErpRecord.number reports back.
        if identifier not in party.identifiers:
            values["identifiers"] = [["create", [{"type": None, "code": identifier}]]]
        if values:
            await self.client.model("party.party", "write", [party.id], values)
            found = await self.ops.find_party(party.code)
            if found is None:
                raise TerminalError(f"party {party.id} vanished while it was updated")
            return found
        return party

    async def native_customers(self) -> list[dict[str, Any]]:
        """Parties keyed in Tryton, not by the hub (no Salesforce identifier), for the
        customer master: ``mdm match`` and the check that holds a likely duplicate instead
        of creating a second party. Rows: erp_id, number (the code), name, tax_id (a typed
        identifier such as a VAT number), city, postal_code."""
        async with self._boundary("customer list", "*"):
            parties = await self.client.search_read(
                "party.party", [], ["code", "name", "identifiers", "addresses"]
            )
            ident_ids = [i for p in parties for i in p["identifiers"]]
            idents = (
                await self.client.model(
                    "party.identifier", "read", ident_ids, ["code", "type", "party"]
                )
                if ident_ids
                else []
            )
            first_address = [p["addresses"][0] for p in parties if p["addresses"]]
            addresses = {
                a["id"]: a
                for a in (
                    await self.client.model(
                        "party.address", "read", first_address, ["city", "postal_code"]
                    )
                    if first_address
                    else []
                )
            }
        hub_parties = {i["party"] for i in idents if str(i["code"]).startswith(IDENTIFIER_PREFIX)}
        tax_ids = {i["party"]: i["code"] for i in idents if i["type"]}
        out = []
        for p in parties:
            if p["id"] in hub_parties:
                continue
            address = addresses.get(p["addresses"][0]) if p["addresses"] else None
            out.append(
                {
                    "erp_id": str(p["id"]),
                    "number": p["code"],
                    "name": p["name"],
                    "tax_id": tax_ids.get(p["id"]),
                    "city": (address or {}).get("city"),
                    "postal_code": (address or {}).get("postal_code"),
                }
            )
        return out

    async def adopt_customer(self, external_ref: str, erp_id: str) -> None:
        """Give a party keyed in Tryton the hub's Salesforce identifier (a go-live link), so
        the customer's upsert finds and updates it instead of creating a second party."""
        async with self._boundary("customer", external_ref):
            await self.client.model(
                "party.party",
                "write",
                [int(erp_id)],
                {
                    "identifiers": [
                        ["create", [{"type": None, "code": IDENTIFIER_PREFIX + external_ref}]]
                    ]
                },
            )

    async def _write_address(self, party_id: int, address: Address) -> None:
        (row,) = await self.client.model("party.party", "read", [party_id], ["addresses"])
        street = "\n".join(x for x in (address.line1, address.line2) if x)
        values: dict[str, Any] = {
            "street_unstructured": street,
            "city": address.city,
            "postal_code": address.postal_code or "",
        }
        country = await self._country(address.country)
        if country is not None:
            values["country"] = country
        if row["addresses"]:
            await self.client.model("party.address", "write", [row["addresses"][0]], values)
        else:
            await self.client.model("party.address", "create", [{"party": party_id, **values}])

    async def _write_tax_id(self, party_id: int, tax_id: str) -> None:
        """The tax id on the party's tax identifier (Tryton's ``tax_identifier``: its first
        identifier of a tax type) when it has one holding another number. A party without
        one gets none: the identifier's type (a country's scheme such as ``eu_vat`` or
        ``us_ein``) decides how Tryton validates the code, and the text does not say which."""
        (row,) = await self.client.model(
            "party.party", "read", [party_id], ["tax_identifier", "tax_identifier.code"]
        )
        identifier = row.get("tax_identifier")
        current = (row.get("tax_identifier.") or {}).get("code")
        if identifier is None or normalize_tax_id(current) == normalize_tax_id(tax_id):
            return
        await self.client.model("party.identifier", "write", [identifier], {"code": tax_id})

    # Port: invoices and credit notes -----------------------------------------------------

    async def create_invoice(
        self, external_ref: str, invoice: InvoicePosted, customer_erp_id: str
    ) -> ErpRecord:
        """Create and post the customer invoice; its reference is ``external_ref``.

        The whole amount is due on the source's ``due_date`` (no Tryton payment term), and
        lines go to the mapped revenue account (``AccountMap.revenue`` by default). The tax is
        Salesforce's, to the cent: manual tax lines on the tax liability account
        (``AccountMap.tax``), one per tax rate, so the receivable is Salesforce's total.
        """
        async with (
            self._boundary("invoice", external_ref),
            self._locks.hold(("invoice", external_ref)),
        ):
            existing = await self.ops.find_invoice(external_ref)
            if existing is not None and existing.state in _POSTED:
                return self._document(RecordKind.INVOICE, external_ref, existing)
            await self._require_open_period(invoice.invoice_date, f"invoice {external_ref}")
            posted = await self.ops.create_invoice(
                _erp_id(customer_erp_id, "customer"),
                external_ref,
                [self._invoice_line(line) for line in invoice.lines],
                invoice_date=invoice.invoice_date,
                currency=invoice.currency,
                description=f"Salesforce invoice {invoice.invoice_number}",
                due_date=invoice.due_date,
                taxes=self._invoice_taxes(invoice.lines),
                known_new=existing is None,
            )
            _same_total(posted, invoice.total, f"invoice {external_ref}")
            return self._document(RecordKind.INVOICE, external_ref, posted)

    async def create_credit_memo(
        self,
        external_ref: str,
        memo: CreditMemoIssued,
        customer_erp_id: str,
        invoice_erp_ids: Mapping[str, str],
    ) -> ErpRecord:
        """Create and post the credit note, then apply it to the invoices it names.

        Each application lowers its invoice's amount to pay by exactly its amount; a credit
        applied in part, or split over several invoices, first has its receivable line split
        the way Tryton's reschedule does it (see ``TrytonAccounting.apply_credit_note_parts``),
        and what is not applied stays open on the customer's account, on the credit note.
        Tax is posted as on invoices. The credit note's comment records how many invoices it
        pays, which ``find`` checks: a delivery cut off between two applications is retried.
        """
        async with (
            self._boundary("credit memo", external_ref),
            self._locks.hold(("credit_memo", external_ref)),
        ):
            parts = []
            for application in memo.applications:
                erp_id = invoice_erp_ids.get(application.invoice_id)
                if erp_id is None:
                    raise TerminalError(
                        f"credit memo {memo.credit_memo_number}: invoice "
                        f"{application.invoice_id} has no Tryton id"
                    )
                parts.append((_erp_id(erp_id, "invoice"), application.amount))
            existing = await self.ops.find_invoice(external_ref)
            if existing is None or existing.state not in _POSTED:
                await self._require_open_period(memo.issued_on, f"credit memo {external_ref}")
            reason = f": {memo.reason}" if memo.reason else ""
            note = await self.ops.create_credit_note(
                _erp_id(customer_erp_id, "customer"),
                external_ref,
                [self._invoice_line(line) for line in memo.lines],
                invoice_date=memo.issued_on,
                currency=memo.currency,
                description=f"Salesforce credit memo {memo.credit_memo_number}{reason}",
                due_date=memo.issued_on,
                taxes=self._invoice_taxes(memo.lines),
                known_new=existing is None,
                comment=(
                    f"revbridge: applied to {counted(len(parts), 'invoice')}: "
                    + ", ".join(f"{a.amount} to {a.invoice_id}" for a in memo.applications)
                ),
            )
            _same_total(note, -memo.total, f"credit memo {external_ref}")
            if parts:
                await self.ops.apply_credit_note_parts(
                    note.id,
                    parts,
                    date=memo.issued_on,
                    description=f"{external_ref} applications",
                )
            return self._document(RecordKind.CREDIT_MEMO, external_ref, note)

    # Port: payments ----------------------------------------------------------------------

    async def record_payment(
        self,
        external_ref: str,
        payment: PaymentReceived,
        customer_erp_id: str,
        invoice_erp_ids: Mapping[str, str],
    ) -> ErpRecord:
        """Record the cash receipt, applied to the invoices it names; partial is fine.

        Each application is Tryton's pay wizard on that invoice (a posted CASH move whose
        origin is the invoice). Cash not applied to any invoice is a CASH journal entry,
        debit cash, credit the customer's receivable. With more than one part, the moves'
        descriptions read ``<reference> [i/n]``.
        """
        async with (
            self._boundary("payment", external_ref),
            self._locks.hold(("payment", external_ref)),
        ):
            found = await self._find_payment(external_ref)
            if found is not None:
                return found
            party_id = _erp_id(customer_erp_id, "customer")
            applied = sum((a.amount for a in payment.applications), Decimal(0))
            unapplied = payment.amount - applied
            parts = len(payment.applications) + (1 if unapplied > 0 else 0)
            await self._require_open_period(payment.received_on, f"payment {external_ref}")
            for part, application in enumerate(payment.applications, start=1):
                invoice_id = _erp_id(invoice_erp_ids[application.invoice_id], "invoice")
                await self.ops.record_payment(
                    invoice_id,
                    application.amount,
                    reference=payment_part_reference(external_ref, part, parts),
                    date=payment.received_on,
                    currency=payment.currency,
                )
            if unapplied > 0:
                (party,) = await self.client.model("party.party", "read", [party_id], ["code"])
                await self.ops.post_journal_entry(
                    payment_part_reference(external_ref, parts, parts),
                    payment.received_on,
                    [
                        JournalLine(
                            account_code=self.accounts.cash,
                            debit=unapplied,
                            currency=payment.currency,
                        ),
                        JournalLine(
                            account_code=self.accounts.receivable,
                            credit=unapplied,
                            party_code=party["code"],
                            description=f"Unapplied {payment.method} payment",
                            currency=payment.currency,
                        ),
                    ],
                    journal_code="CASH",
                )
            recorded = await self._find_payment(external_ref)
            if recorded is None:
                raise TerminalError(f"payment {external_ref} is incomplete after recording it")
            return recorded

    # Port: journal entries ---------------------------------------------------------------

    async def post_journal(
        self, external_ref: str, entry: RevenueRecognized, customer_erp_id: str | None
    ) -> ErpRecord:
        """Post the revenue-recognition entry in the MISC journal on its entry date.

        Accounts go through the account map; the customer is set on the lines whose Tryton
        account requires a party (receivables), and only there, as Tryton insists.
        """
        async with (
            self._boundary("journal entry", external_ref),
            self._locks.hold(("journal", external_ref)),
        ):
            existing = await self.ops.find_journal_entry(external_ref)
            if existing is not None and existing.state == "posted":
                return _journal_record(external_ref, existing.id, existing.number)
            party_code: str | None = None
            lines: list[JournalLine] = []
            for line in entry.lines:
                code = self.accounts.code_for(line.account)
                party: str | None = None
                if await self._needs_party(code):
                    if customer_erp_id is None:
                        raise TerminalError(
                            f"journal entry {external_ref}: account {code} needs a customer"
                        )
                    if party_code is None:
                        (row,) = await self.client.model(
                            "party.party",
                            "read",
                            [_erp_id(customer_erp_id, "customer")],
                            ["code"],
                        )
                        party_code = str(row["code"])
                    party = party_code
                lines.append(
                    JournalLine(
                        account_code=code,
                        debit=line.debit,
                        credit=line.credit,
                        party_code=party,
                        description=line.memo or entry.memo,
                        currency=line.currency,
                    )
                )
            await self._require_open_period(entry.entry_date, f"journal entry {external_ref}")
            posted = await self.ops.post_journal_entry(external_ref, entry.entry_date, lines)
            return _journal_record(external_ref, posted.id, posted.number)

    # Port: look-up -----------------------------------------------------------------------

    async def find(self, kind: RecordKind, external_ref: str) -> ErpRecord | None:
        """The record delivered under ``external_ref``, if that delivery is complete."""
        async with self._boundary(f"find {kind}", external_ref):
            match kind:
                case RecordKind.CUSTOMER:
                    party = await self.ops.find_party_by_identifier(
                        IDENTIFIER_PREFIX + external_ref
                    )
                    if party is None:
                        return None
                    return ErpRecord(
                        kind=kind,
                        external_ref=external_ref,
                        erp_id=str(party.id),
                        number=party.code,
                    )
                case RecordKind.INVOICE:
                    invoice = await self.ops.find_invoice(external_ref)
                    if invoice is None or invoice.state not in _POSTED:
                        return None
                    return self._document(kind, external_ref, invoice)
                case RecordKind.CREDIT_MEMO:
                    note = await self.ops.find_invoice(external_ref)
                    if note is None or note.state not in _POSTED:
                        return None
                    if not await self._credit_note_applied(note):
                        return None
                    return self._document(kind, external_ref, note)
                case RecordKind.PAYMENT:
                    return await self._find_payment(external_ref)
                case RecordKind.JOURNAL:
                    entry = await self.ops.find_journal_entry(external_ref)
                    if entry is None or entry.state != "posted":
                        return None
                    return _journal_record(external_ref, entry.id, entry.number)
        raise TerminalError(f"unknown record kind {kind!r}")

    # Read-backs for reconciliation -------------------------------------------------------

    async def invoice_balance(self, external_ref: str) -> InvoiceBalance | None:
        """What is open on the invoice (or credit note) delivered under ``external_ref``."""
        async with self._boundary("invoice balance", external_ref):
            rows = await self.client.search_read(
                "account.invoice",
                [
                    ("type", "=", "out"),
                    ("reference", "=", external_ref),
                    ("company", "=", self.client.company_id),
                    ("state", "!=", "cancelled"),
                ],
                _BALANCE_FIELDS,
                order=[("id", "ASC")],
                limit=1,
            )
            return await self._balance(rows[0]) if rows else None

    async def open_invoices(self) -> list[InvoiceBalance]:
        """AR per document: every posted customer invoice or credit note with money open."""
        async with self._boundary("open invoices", "*"):
            rows = await self.client.search_read(
                "account.invoice",
                [
                    ("type", "=", "out"),
                    ("company", "=", self.client.company_id),
                    ("state", "=", "posted"),
                ],
                _BALANCE_FIELDS,
                order=[("id", "ASC")],
            )
            balances = [await self._balance(row) for row in rows]
            return [b for b in balances if b.open_amount != 0]

    async def customer_balance(self, customer_ref: str) -> PartyBalance | None:
        """AR of the party carrying the Salesforce Account id ``customer_ref``."""
        async with self._boundary("customer balance", customer_ref):
            party = await self.ops.find_party_by_identifier(IDENTIFIER_PREFIX + customer_ref)
            return None if party is None else await self.ops.party_balance(party.id)

    async def customer_balances(self) -> list[PartyBalance]:
        """AR per party: every party whose receivable is not zero, by code."""
        async with self._boundary("customer balances", "*"):
            rows = await self.client.search_read(
                "party.party",
                [("receivable", "!=", 0)],
                ["code", "receivable", "credit_amount", "credit_limit_amount"],
                order=[("code", "ASC")],
            )
            return [
                PartyBalance(
                    party_id=row["id"],
                    code=row["code"],
                    receivable=row["receivable"] or Decimal(0),
                    credit_amount=row["credit_amount"] or Decimal(0),
                    credit_limit=row["credit_limit_amount"],
                )
                for row in rows
            ]

    async def payments_since(self, since: dt.datetime) -> list[Payment]:
        """Invoice payments created or changed at or after ``since`` (inclusive)."""
        async with self._boundary("payments since", since.isoformat()):
            return await self.ops.payments_since(since)

    async def gl_lines(self, period: str) -> list[MoveLine]:
        """The posted move lines of the accounting period ``YYYY-MM``."""
        async with self._boundary("GL lines", period):
            year, month = (int(x) for x in period.split("-"))
            found = await self.ops.find_period(dt.date(year, month, 1))
            return await self.ops.move_lines(found.id)

    async def parties_over_credit_limit(self) -> list[PartyBalance]:
        """Parties whose receivable exceeds their credit limit, largest excess first."""
        async with self._boundary("credit limits", "*"):
            return await self.ops.parties_over_credit_limit()

    async def read(self, kind: ReadbackKind, after: str | None, limit: int) -> ReadPage:
        """``ReadbackPort``: what changed after ``after``, for reconciliation (readback.py)."""
        from revbridge.tryton.readback import TrytonReadback

        async with self._boundary(f"read back {kind}", after or "*"):
            return await TrytonReadback(self).read(kind, after, limit)

    async def company_name_and_currency(self) -> tuple[str, str]:
        """The name of the user's current company and its currency's ISO code."""
        (row,) = await self.client.model(
            "company.company", "read", [self.client.company_id], ["party.name", "currency.code"]
        )
        return str(row["party."]["name"]), str(row["currency."]["code"])

    async def company_currency(self) -> str:
        """The ISO code of the company currency (every move's debit and credit are in it)."""
        async with self._boundary("company currency", "*"):
            return await self._currency()

    # Internals ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _boundary(self, what: str, reference: str) -> AsyncIterator[None]:
        """Translate, once, what the operations layer raises into the delivery error tree."""
        try:
            # Domains below name the company, which the client knows once it is logged in.
            await self.client.ensure_login()
            yield
        except TrytonUserError as exc:
            if "reopen the period" in exc.message:
                period = re.search(r'period "([^"]+)"', exc.message)
                raise ClosedPeriod(f"{what} {reference}", period[1] if period else "?") from exc
            raise
        except DomainError as exc:
            raise TerminalError(f"{what} {reference}: {exc}") from exc

    async def _require_open_period(self, date: dt.date, what: str) -> None:
        period = await self.ops.find_period(date)
        if period.state != "open":
            raise ClosedPeriod(what, period.name, period.state)

    def _invoice_line(self, line: DocumentLine) -> InvoiceLine:
        account = (
            self.accounts.code_for(line.revenue_account)
            if line.revenue_account
            else self.accounts.revenue
        )
        # Tryton computes each line as quantity x unit price (prices keep 4 decimals). When
        # that product is not exactly Salesforce's amount (a discount, a rounding), the line
        # goes over as one unit at the amount, so the totals always match the source.
        exact = line.quantity * line.unit_price == line.amount
        if exact and line.unit_price.as_tuple().exponent >= -4:  # type: ignore[operator]
            return InvoiceLine(
                description=line.description,
                quantity=line.quantity,
                unit_price=line.unit_price,
                account_code=account,
            )
        return InvoiceLine(
            description=f"{line.description} ({line.quantity} x {line.unit_price})",
            quantity=Decimal(1),
            unit_price=line.amount,
            account_code=account,
        )

    def _invoice_taxes(self, lines: Sequence[DocumentLine]) -> list[InvoiceTax]:
        """Salesforce's line taxes as Tryton manual tax lines, one per rate.

        Lines are grouped by their effective rate (tax / amount, to 0.01 %), so an invoice
        shows "Sales tax 8.00 %" once with its base, as a tax summary does; the amounts are
        the sums of Salesforce's own (already rounded) line taxes.
        """
        groups: dict[Decimal | None, tuple[Decimal, Decimal]] = {}
        for line in lines:
            if line.tax_amount == 0:
                continue
            rate = (
                (line.tax_amount * 100 / line.amount).quantize(Decimal("0.01"))
                if line.amount
                else None
            )
            base, tax = groups.get(rate, (Decimal(0), Decimal(0)))
            groups[rate] = (base + line.amount, tax + line.tax_amount)
        return [
            InvoiceTax(
                description=(
                    f"Sales tax {rate} % (Salesforce)" if rate is not None else SALES_TAX_NAME
                ),
                base=base,
                amount=tax,
                account_code=self.accounts.tax,
                tax_name=self.accounts.tax_name,
            )
            for rate, (base, tax) in groups.items()
        ]

    def _document(self, kind: RecordKind, external_ref: str, invoice: Invoice) -> ErpRecord:
        return ErpRecord(
            kind=kind, external_ref=external_ref, erp_id=str(invoice.id), number=invoice.number
        )

    async def _balance(self, row: dict[str, Any]) -> InvoiceBalance:
        balance = _invoice_balance(row)
        if balance.is_credit_note and balance.state == "posted":
            # Credit already paying an invoice is not open, even before that invoice settles.
            open_credit = await self.ops.open_credit(int(balance.erp_id))
            return dataclasses.replace(balance, open_amount=-open_credit)
        return balance

    async def _credit_note_applied(self, note: Invoice) -> bool:
        """Does the credit note pay every invoice it was created to pay?

        The number of invoices is in the comment written at creation; a credit note without
        it (made before the hub wrote one) counts as applied once it pays one invoice.
        """
        if note.state == "paid":
            return True
        (row,) = await self.client.model("account.invoice", "read", [note.id], ["comment"])
        mark = _APPLIED_TO.search(row["comment"] or "")
        expected = int(mark[1]) if mark else 1
        if expected == 0:
            return True
        paid = set((await self.ops.credit_note_applications(note.id)).values())
        return len(paid) >= expected

    async def _find_payment(self, external_ref: str) -> ErpRecord | None:
        """The payment if every one of its parts is posted in Tryton, else None."""
        rows = await self.client.search_read(
            "account.move",
            [
                ("company", "=", self.client.company_id),
                ("journal.type", "=", "cash"),
                [
                    "OR",
                    ("description", "=", external_ref),
                    ("description", "like", f"{external_ref} [%]"),
                ],
            ],
            ["number", "description", "state"],
            order=[("id", "ASC")],
        )
        parts: dict[int, dict[str, Any]] = {}
        expected = 0
        for row in rows:
            reference, part, total = split_payment_reference(row["description"] or "")
            if reference != external_ref or row["state"] != "posted":
                continue
            parts.setdefault(part, row)
            expected = total
        if not parts or set(parts) != set(range(1, expected + 1)):
            return None
        first = parts[min(parts)]
        return ErpRecord(
            kind=RecordKind.PAYMENT,
            external_ref=external_ref,
            erp_id=str(first["id"]),
            number=first["number"],
        )

    async def _currency(self) -> str:
        if self._company_currency is None:
            (row,) = await self.client.model(
                "company.company", "read", [self.client.company_id], ["currency.code"]
            )
            self._company_currency = str(row["currency."]["code"])
        return self._company_currency

    async def _needs_party(self, code: str) -> bool:
        if code not in self._party_required:
            rows = await self.client.search_read(
                "account.account",
                [("code", "=", code), ("company", "=", self.client.company_id)],
                ["party_required"],
                limit=1,
            )
            if not rows:
                raise TerminalError(f"Tryton has no account with code {code!r}")
            self._party_required[code] = bool(rows[0]["party_required"])
        return self._party_required[code]

    async def _country(self, iso_code: str) -> int | None:
        # Tryton ships no countries until someone imports them (trytond_import_countries);
        # without one the address keeps its street, postal code and city.
        if iso_code not in self._countries:
            rows = await self.client.search_read(
                "country.country", [("code", "=", iso_code)], ["id"], limit=1
            )
            self._countries[iso_code] = rows[0]["id"] if rows else None
        return self._countries[iso_code]


_BALANCE_FIELDS = [
    "number",
    "reference",
    "party.code",
    "currency.code",
    "state",
    "total_amount",
    "amount_to_pay",
]


def _invoice_balance(row: dict[str, Any]) -> InvoiceBalance:
    total: Decimal = row["total_amount"]
    to_pay: Decimal = row["amount_to_pay"] or Decimal(0)
    if row["state"] == "paid":
        to_pay = Decimal(0)
    return InvoiceBalance(
        external_ref=row["reference"] or "",
        erp_id=str(row["id"]),
        number=row["number"],
        party_code=row["party."]["code"],
        currency=row["currency."]["code"],
        total=total,
        # amount_to_pay is what the customer still owes, so a credit note's is negative.
        open_amount=to_pay if total >= 0 else -abs(to_pay),
        state=row["state"],
    )


def _journal_record(external_ref: str, move_id: int, number: str | None) -> ErpRecord:
    return ErpRecord(
        kind=RecordKind.JOURNAL, external_ref=external_ref, erp_id=str(move_id), number=number
    )


def _erp_id(value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError as exc:
        raise TerminalError(f"{value!r} is not a Tryton {what} id") from exc


def _same_total(document: Invoice, expected: Decimal, what: str) -> None:
    digits = Decimal(1).scaleb(-minor_unit(document.currency))
    if document.total_amount.quantize(digits) != expected.quantize(digits):
        raise TerminalError(
            f"{what}: Tryton's total {document.total_amount} differs from the source's {expected}"
        )


def _normalise(name: str) -> str:
    return " ".join(name.casefold().split())


def _split_account_name(name: str) -> tuple[str, str]:
    number, _, words = _normalise(name).partition(" ")
    return (number, words) if number.isdigit() else ("", _normalise(name))
