"""The accounting operations the Tryton adapter needs, over JSON-RPC, one method each.

Raw JSON-RPC runs none of the client-side ``on_change`` logic that Tryton's UI (or proteus)
would, so every create here sends what the UI would have filled in: company, currency,
receivable account, journal, invoice address, line type. The lookups behind those values
(accounts by code, journals by code, currencies by ISO code) are cached per instance of
``TrytonAccounting``; they only change when someone edits the chart or the journals.

Idempotency: Tryton enforces uniqueness only on ``party.code``. Everything else (invoice
reference, payment description, journal entry description) is free text, so each ``create``
or ``record`` method searches by its external reference first and returns what it finds.
That is enough for a single writer per reference (the hub's delivery ledger guarantees it);
two concurrent writers could still both create, which is why the finders return the oldest
match and say how many there were.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from revbridge.errors import TerminalError, UnbalancedJournal
from revbridge.tryton.rpc import TrytonClient, TrytonUserError, TrytonUserWarning

__all__ = [
    "CONFIRMED_INVOICE_WARNINGS",
    "Invoice",
    "InvoiceLine",
    "InvoiceTax",
    "JournalEntry",
    "JournalLine",
    "MoveLine",
    "Party",
    "PartyBalance",
    "Payment",
    "Period",
    "TrytonAccounting",
]

InvoiceState = Literal["draft", "validated", "posted", "paid", "cancelled"]

# Tryton warnings an invoice post confirms by default: "the due date is in the past".
CONFIRMED_INVOICE_WARNINGS: tuple[str, ...] = ("invoice_payment_term",)


@dataclass(frozen=True, slots=True, kw_only=True)
class Party:
    id: int
    code: str
    name: str
    identifiers: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class PartyBalance:
    """A party's receivable position in the company currency.

    ``receivable`` is the balance of all its receivable lines (open invoices minus unapplied
    payments and credits); ``credit_amount`` is what ``account_credit_limit`` compares with
    ``credit_limit`` (None when no limit is set).
    """

    party_id: int
    code: str
    receivable: Decimal
    credit_amount: Decimal
    credit_limit: Decimal | None

    @property
    def over_limit(self) -> bool:
        return self.credit_limit is not None and self.credit_amount > self.credit_limit


@dataclass(frozen=True, slots=True, kw_only=True)
class InvoiceLine:
    """One line to invoice. ``account_code`` defaults to the company's revenue account."""

    description: str
    quantity: Decimal
    unit_price: Decimal
    account_code: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class InvoiceTax:
    """A tax amount to post as given: a *manual* Tryton invoice tax line.

    ``base`` is the net amount the tax is on and ``amount`` the tax itself, both positive as
    printed on the document (a credit note negates them). Tryton keeps manual tax lines as
    they are (it recomputes only the taxes it derives from the lines' own taxes), so the
    receivable is exactly the source's total. ``tax_name`` names the ``account.tax`` the line
    is reported under; when Tryton has no tax of that name the line carries none.
    """

    description: str
    base: Decimal
    amount: Decimal
    account_code: str
    tax_name: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Invoice:
    """A customer invoice or credit note (a credit note is an invoice with a negative total).

    ``reconciled`` is None until every line to pay is reconciled; then it is the date Tryton
    gives the reconciliation, which is its latest line's date or due date, not the day the
    last payment arrived.
    """

    id: int
    number: str | None
    reference: str | None
    party_id: int
    state: InvoiceState
    invoice_date: dt.date | None
    currency: str
    total_amount: Decimal
    amount_to_pay: Decimal
    reconciled: dt.date | None

    @property
    def is_credit_note(self) -> bool:
        return self.total_amount < 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Payment:
    """A payment recorded against an invoice: a cash-journal move whose origin is the invoice.

    ``amount`` is in the company currency and positive for money received. ``changed_at``
    is the move's last write (or creation) time, the watermark of ``payments_since``.
    """

    move_id: int
    number: str | None
    reference: str
    invoice_id: int | None
    party_id: int | None
    date: dt.date
    amount: Decimal
    state: str
    changed_at: dt.datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalLine:
    """One line of a journal entry. ``debit``/``credit`` are in ``currency`` when it is set
    (and differs from the company's): the line then carries that amount as its second
    currency, and its company-currency amount is converted at Tryton's rate of the day."""

    account_code: str
    debit: Decimal = Decimal(0)
    credit: Decimal = Decimal(0)
    party_code: str | None = None
    description: str | None = None
    currency: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalEntry:
    id: int
    number: str | None
    reference: str
    journal: str
    date: dt.date
    period_id: int
    state: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MoveLine:
    id: int
    move_id: int
    move_number: str | None
    move_reference: str | None
    date: dt.date
    account_code: str
    party_code: str | None
    debit: Decimal
    credit: Decimal
    description: str | None
    reconciled: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Period:
    id: int
    name: str
    start_date: dt.date
    end_date: dt.date
    state: str


_INVOICE_FIELDS = [
    "number",
    "reference",
    "party",
    "state",
    "invoice_date",
    "currency.code",
    "total_amount",
    "amount_to_pay",
    "reconciled",
]
_PERIOD_FIELDS = ["name", "start_date", "end_date", "state"]
_MOVE_LINE_FIELDS = [
    "move",
    "move.number",
    "move.description",
    "date",
    "account.code",
    "party.code",
    "debit",
    "credit",
    "description",
    "reconciliation",
]


class TrytonAccounting:
    """Accounting operations for one company, through a logged-in ``TrytonClient``."""

    def __init__(self, client: TrytonClient) -> None:
        self.client = client
        self._accounts: dict[str, int] = {}
        self._journals: dict[str, int] = {}
        self._currencies: dict[str, int] = {}
        self._taxes: dict[str, int | None] = {}
        self._company: dict[str, Any] | None = None
        self._fiscal_years: list[tuple[dt.date, dt.date]] | None = None
        self._payment_method: int | None = None
        # The latest invoice date this instance saw numbered, per (sequence kind, fiscal
        # year end): lets a post skip the "numbered later?" search (see _prepare_post).
        self._numbered: dict[tuple[str, dt.date], dt.date] = {}
        self._rates: dict[tuple[str, dt.date], Decimal] = {}
        self._configuration: dict[str, Any] | None = None

    # Parties -----------------------------------------------------------------------------

    async def find_party(self, code: str) -> Party | None:
        """The party whose code is ``code`` (unique in Tryton), or None."""
        rows = await self.client.search_read(
            "party.party", [("code", "=", code)], ["code", "name", "identifiers"], limit=1
        )
        return await self._party(rows[0]) if rows else None

    async def find_party_by_identifier(self, identifier: str) -> Party | None:
        """The oldest party carrying ``identifier`` (identifiers are not unique), or None."""
        rows = await self.client.search_read(
            "party.party",
            [("identifiers.code", "=", identifier)],
            ["code", "name", "identifiers"],
            order=[("id", "ASC")],
            limit=1,
        )
        return await self._party(rows[0]) if rows else None

    async def ensure_party(self, code: str, name: str, *, identifier: str | None = None) -> Party:
        """Find the party by code or create it (with an address, which invoices require).

        An existing party keeps its name; a missing ``identifier`` is added to it. When two
        writers race, the database's unique code makes one create fail, and that one returns
        the winner's party.
        """
        existing = await self.find_party(code)
        if existing is None:
            values: dict[str, Any] = {"code": code, "name": name, "addresses": [["create", [{}]]]}
            if identifier is not None:
                values["identifiers"] = [["create", [{"type": None, "code": identifier}]]]
            try:
                await self.client.model("party.party", "create", [values])
            except TrytonUserError:
                if await self.find_party(code) is None:
                    raise
            found = await self.find_party(code)
            assert found is not None  # created or found just above
            return found
        if identifier is not None and identifier not in existing.identifiers:
            await self.client.model(
                "party.party",
                "write",
                [existing.id],
                {"identifiers": [["create", [{"type": None, "code": identifier}]]]},
            )
            found = await self.find_party(code)
            assert found is not None
            return found
        return existing

    async def set_credit_limit(self, party_id: int, amount: Decimal | None) -> None:
        """Set (or with None, remove) the party's credit limit for the current company.

        Tryton only stores it: nothing in accounting blocks an invoice over the limit (only
        ``sale_credit_limit`` does, on sale confirmation). ``parties_over_credit_limit``
        reports the breaches instead.
        """
        await self.client.model("party.party", "write", [party_id], {"credit_limit_amount": amount})

    async def party_balance(self, party_id: int) -> PartyBalance:
        (row,) = await self.client.model(
            "party.party",
            "read",
            [party_id],
            ["code", "receivable", "credit_amount", "credit_limit_amount"],
        )
        return _party_balance(row)

    async def parties_over_credit_limit(self) -> list[PartyBalance]:
        """Parties whose credit amount exceeds their limit, largest excess first.

        ``credit_amount`` has no SQL searcher in Tryton, so this searches the parties that
        have a limit at all and compares on this side.
        """
        rows = await self.client.search_read(
            "party.party",
            [
                ("credit_limit_amounts.company", "=", self.client.company_id),
                ("credit_limit_amounts.credit_limit_amount", "!=", None),
            ],
            ["code", "receivable", "credit_amount", "credit_limit_amount"],
        )
        balances = [_party_balance(row) for row in rows]
        over = [b for b in balances if b.over_limit]
        return sorted(over, key=lambda b: b.credit_amount - (b.credit_limit or 0), reverse=True)

    # Invoices ----------------------------------------------------------------------------

    async def find_invoices(self, reference: str) -> list[Invoice]:
        """Every non-cancelled customer invoice or credit note with ``reference``, oldest first."""
        # Search ids first: reading the computed amounts is the costly part, and most
        # look-ups (every first delivery) find nothing.
        ids: list[int] = await self.client.model(
            "account.invoice",
            "search",
            [
                ("type", "=", "out"),
                ("reference", "=", reference),
                ("company", "=", self.client.company_id),
                ("state", "!=", "cancelled"),
            ],
            0,
            None,
            [["id", "ASC"]],
        )
        if not ids:
            return []
        rows = await self.client.model("account.invoice", "read", ids, _INVOICE_FIELDS)
        return sorted((_invoice(row) for row in rows), key=lambda invoice: invoice.id)

    async def find_invoice(self, reference: str) -> Invoice | None:
        """The oldest non-cancelled customer document with ``reference`` (not unique in Tryton)."""
        found = await self.find_invoices(reference)
        return found[0] if found else None

    async def get_invoice(self, invoice_id: int) -> Invoice:
        (row,) = await self.client.model("account.invoice", "read", [invoice_id], _INVOICE_FIELDS)
        return _invoice(row)

    async def create_invoice(
        self,
        party_id: int,
        reference: str,
        lines: Sequence[InvoiceLine],
        *,
        invoice_date: dt.date,
        currency: str = "USD",
        description: str | None = None,
        post: bool = True,
        due_date: dt.date | None = None,
        taxes: Sequence[InvoiceTax] = (),
        comment: str | None = None,
        known_new: bool = False,
    ) -> Invoice:
        """Create (and by default post) a customer invoice; idempotent on ``reference``.

        When a document with this reference exists it is returned as is (posted first if it
        is still a draft and ``post`` is set): a retried delivery never invoices twice.

        ``due_date``, when given, is the single due date of the whole amount (the source
        system's own terms) instead of the company's default payment term. Posting an invoice
        whose due date has already passed makes Tryton ask for confirmation; the source
        already issued it, so that warning is confirmed (see ``post_invoice``).

        ``taxes`` become manual tax lines: the tax is posted at the amounts given, never
        recomputed by Tryton. ``comment`` is the invoice's free-text comment. ``known_new``
        skips the search by reference: the caller has just searched and found nothing, and
        keeps other writers of that reference out (the adapter's lock per reference).
        """
        return await self._create_document(
            party_id,
            reference,
            lines,
            sign=1,
            invoice_date=invoice_date,
            currency=currency,
            description=description,
            post=post,
            due_date=due_date,
            taxes=taxes,
            comment=comment,
            known_new=known_new,
        )

    async def create_credit_note(
        self,
        party_id: int,
        reference: str,
        lines: Sequence[InvoiceLine],
        *,
        invoice_date: dt.date,
        currency: str = "USD",
        description: str | None = None,
        post: bool = True,
        due_date: dt.date | None = None,
        taxes: Sequence[InvoiceTax] = (),
        comment: str | None = None,
        known_new: bool = False,
    ) -> Invoice:
        """Create (and post) a credit note; idempotent on ``reference`` like invoices.

        ``lines`` carry positive quantities and prices, as printed on the credit note; Tryton
        has no credit-note type, so the quantities are negated and the total is negative
        (and so are the taxes' bases and amounts).
        """
        return await self._create_document(
            party_id,
            reference,
            lines,
            sign=-1,
            invoice_date=invoice_date,
            currency=currency,
            description=description,
            post=post,
            due_date=due_date,
            taxes=taxes,
            comment=comment,
            known_new=known_new,
        )

    async def post_invoice(
        self, invoice_id: int, *, confirm: Sequence[str] = CONFIRMED_INVOICE_WARNINGS
    ) -> Invoice:
        """Post a draft or validated invoice (numbers it and creates its move).

        Tryton asks for confirmation (a ``UserWarning``) in some cases; a warning whose name
        is in ``confirm`` is confirmed the way Tryton's own client does it
        (``res.user.warning.skip``, once), and the post is repeated once. By default only
        "the due date is already past" is confirmed: an invoice the source system issued
        weeks ago is still that invoice. Any other warning stays a ``TrytonUserWarning``.

        Tryton numbers customer invoices in date order: it refuses to number an invoice
        dated before one already numbered in the same sequence. Documents from another
        system arrive out of order, so such an invoice keeps its date as its *accounting*
        date (its period, its GL date, its currency rate and tax date) and takes, as its
        invoice date, the latest date already numbered (see ``_keep_numbering_in_order``).
        A concurrent post can still number a later invoice in between; the post is then
        tried again, twice at most.
        """
        return await self._post_draft(invoice_id, confirm, None)

    async def _post_draft(
        self, invoice_id: int, confirm: Sequence[str], known: _Draft | None
    ) -> Invoice:
        for attempt in range(3):
            await self._prepare_post(invoice_id, confirm, known if attempt == 0 else None)
            try:
                await self._post(invoice_id, confirm)
            except TrytonUserError as exc:
                if attempt < 2 and "invoice date after" in exc.message:
                    continue
                raise
            break
        posted = await self.get_invoice(invoice_id)
        await self._remember_numbered(posted)
        return posted

    async def _fiscal_year_end(self, date: dt.date) -> dt.date | None:
        """The last day of the fiscal year holding ``date``; the years are read once."""
        for refresh in (False, True):
            if self._fiscal_years is None or refresh:
                rows = await self.client.search_read(
                    "account.fiscalyear",
                    [("company", "=", self.client.company_id)],
                    ["start_date", "end_date"],
                )
                self._fiscal_years = [(r["start_date"], r["end_date"]) for r in rows]
            for start, end in self._fiscal_years:
                if start <= date <= end:
                    return end
        return None

    async def _post(self, invoice_id: int, confirm: Sequence[str]) -> None:
        try:
            await self.client.model("account.invoice", "post", [invoice_id])
        except TrytonUserWarning as warning:
            if warning.name.rsplit(".", 1)[-1] not in confirm:
                raise
            # ``skip`` is what Tryton's own client calls: it needs no access to the
            # warnings table, which the hub's user (no administration group) lacks.
            await self.client.model("res.user.warning", "skip", warning.name, False)
            await self.client.model("account.invoice", "post", [invoice_id])

    async def _prepare_post(
        self, invoice_id: int, confirm: Sequence[str], known: _Draft | None
    ) -> None:
        """Keep numbering in date order, and confirm a past due date before posting.

        A draft dated before the latest invoice numbered in its sequence takes that date as
        its invoice date, and keeps its own as its accounting date, which is what Tryton
        uses for the move, the period, the currency rate and the taxes.

        The past-due warning is confirmed ahead (under the key Tryton's ``Warning.format``
        gives it) rather than after a refused post, which costs a whole post; if the key
        ever differs, ``post_invoice`` still confirms the warning Tryton raises.
        """
        if known is not None:  # a draft created just now: nothing to read back
            row: dict[str, Any] = {
                "state": "draft",
                "number": None,
                "invoice_date": known.invoice_date,
                "accounting_date": None,
                "payment_term_date": known.due_date,
                "total_amount": Decimal(-1 if known.credit_note else 1),
            }
        else:
            (row,) = await self.client.model(
                "account.invoice",
                "read",
                [invoice_id],
                [
                    "state",
                    "number",
                    "invoice_date",
                    "accounting_date",
                    "payment_term_date",
                    "total_amount",
                ],
            )
        date: dt.date | None = row["invoice_date"]
        if row["number"] or row["state"] not in ("draft", "validated") or date is None:
            return
        due: dt.date | None = row["payment_term_date"]
        if "invoice_payment_term" in confirm and due is not None and due < _today():
            key = hashlib.md5(f"account.invoice,{invoice_id}".encode(), usedforsecurity=False)
            await self.client.model(
                "res.user.warning", "skip", f"{key.hexdigest()}.invoice_payment_term", False
            )
        year_end = await self._fiscal_year_end(date)
        if year_end is None:
            return  # Tryton's own post says there is no fiscal year
        slot = ("credit_note" if row["total_amount"] < 0 else "invoice", year_end)
        latest = self._numbered.get(slot)
        if known is not None and latest is not None:
            # This instance knows the latest date it numbered in that sequence: no search.
            # Someone else numbering a later one meanwhile makes the post fail, and the
            # retry (``known`` is then None) searches.
            if latest > date:
                await self._redate(invoice_id, latest, row["accounting_date"] or date)
            return
        later = await self.client.search_read(
            "account.invoice",
            [
                ("type", "=", "out"),
                ("company", "=", self.client.company_id),
                ("number", "!=", None),
                ("sequence_type_cache", "=", slot[0]),
                ("invoice_date", ">", date),
                ("invoice_date", "<=", year_end),
            ],
            ["invoice_date"],
            order=[("invoice_date", "DESC")],
            limit=1,
        )
        if later:
            found: dt.date = later[0]["invoice_date"]
            self._numbered[slot] = max(found, latest or found)
            await self._redate(invoice_id, found, row["accounting_date"] or date)

    async def _redate(self, invoice_id: int, invoice_date: dt.date, accounting: dt.date) -> None:
        await self.client.model(
            "account.invoice",
            "write",
            [invoice_id],
            {"invoice_date": invoice_date, "accounting_date": accounting},
        )

    async def _remember_numbered(self, invoice: Invoice) -> None:
        if invoice.invoice_date is None or invoice.number is None:
            return
        year_end = await self._fiscal_year_end(invoice.invoice_date)
        if year_end is None:
            return
        slot = ("credit_note" if invoice.total_amount < 0 else "invoice", year_end)
        latest = self._numbered.get(slot)
        self._numbered[slot] = max(invoice.invoice_date, latest or invoice.invoice_date)

    async def apply_credit_note(
        self, credit_note_id: int, invoice_id: int, amount: Decimal | None = None
    ) -> Invoice:
        """Apply a posted credit note to one invoice: all of its open credit, or ``amount``.

        See ``apply_credit_note_parts``, of which this is the one-invoice case.
        """
        (invoice,) = await self.apply_credit_note_parts(credit_note_id, [(invoice_id, amount)])
        return invoice

    async def apply_credit_note_parts(
        self,
        credit_note_id: int,
        parts: Sequence[tuple[int, Decimal | None]],
        *,
        date: dt.date | None = None,
        description: str | None = None,
    ) -> list[Invoice]:
        """Apply a posted credit note to invoices of the same party and currency.

        ``parts`` are ``(invoice id, amount)`` in the documents' currency; an amount of None
        takes all the credit still open (only one part may do so). Each invoice's
        ``amount_to_pay`` drops by exactly its amount; credit not applied stays open on the
        customer's account, on the credit note.

        Tryton pays an invoice with whole move lines (``payment_lines``), so when the credit
        note's open receivable line does not already have the amounts needed, it is first
        split the way Tryton's *reschedule* does (see ``_split_credit``): a move in the
        credit note's journal, attached to the credit note (``additional_moves``), reconciles
        the open line and replaces it with one line per application plus one for the rest.
        Nothing is written off. The move is dated ``date`` (default: today, UTC).

        An application that settles what is left on its invoice reconciles that invoice (a
        foreign-currency rounding cent goes to the currency exchange account, as Tryton's own
        reconciliation does); a smaller one waits for the payment that settles the rest.
        Applying more than an invoice still owes, or more than the credit still open, is
        refused before anything changes. Re-applying is a no-op: an invoice already paid by a
        line of this credit note counts as done.
        """
        (note,) = await self.client.model(
            "account.invoice",
            "read",
            [credit_note_id],
            ["state", "total_amount", "party", "currency", "number"],
        )
        if note["total_amount"] >= 0:
            raise TerminalError(f"invoice {credit_note_id} is not a credit note")
        if len({invoice_id for invoice_id, _ in parts}) != len(parts):
            raise TerminalError(f"credit note {credit_note_id}: an invoice appears twice")
        invoice_ids = [invoice_id for invoice_id, _ in parts]
        rows = await self.client.model(
            "account.invoice",
            "read",
            invoice_ids,
            ["state", "amount_to_pay", "lines_to_pay", "payment_lines", "party", "currency"],
        )
        invoices = {row["id"]: row for row in rows}
        for invoice_id in invoice_ids:
            invoice = invoices[invoice_id]
            if note["party"] != invoice["party"] or note["currency"] != invoice["currency"]:
                raise TerminalError(
                    f"credit note {credit_note_id} and invoice {invoice_id} differ in party "
                    "or currency"
                )
        used = await self.credit_note_applications(credit_note_id)
        free = [line for line in await self._credit_lines(credit_note_id) if line.id not in used]
        pending = [(i, amount) for i, amount in parts if i not in used.values()]
        if not pending:
            return [await self.get_invoice(i) for i in invoice_ids]
        open_credit = sum((line.amount for line in free), Decimal(0))
        if sum(1 for _, amount in pending if amount is None) > 1:
            raise TerminalError(
                f"credit note {credit_note_id}: only one application may take the rest"
            )
        rest = open_credit - sum((a for _, a in pending if a is not None), Decimal(0))
        wanted = [(i, rest if amount is None else amount) for i, amount in pending]
        for invoice_id, amount in wanted:
            invoice = invoices[invoice_id]
            if note["state"] != "posted" or invoice["state"] != "posted":
                raise TerminalError(
                    f"both documents must be posted to apply a credit note (credit note "
                    f"{credit_note_id} is {note['state']}, invoice {invoice_id} is "
                    f"{invoice['state']})"
                )
            if amount <= 0:
                raise TerminalError(
                    f"credit note {credit_note_id}: {amount} applied to invoice {invoice_id} "
                    "is not a positive amount"
                )
            if amount > invoice["amount_to_pay"]:
                raise TerminalError(
                    f"credit note {credit_note_id} ({amount}) exceeds what is left to pay on "
                    f"invoice {invoice_id} ({invoice['amount_to_pay']})"
                )
        applied = sum((amount for _, amount in wanted), Decimal(0))
        if applied > open_credit:
            raise TerminalError(
                f"credit note {credit_note_id}: {applied} to apply is more than the "
                f"{open_credit} of credit still open on it"
            )
        matched = _match_lines(wanted, free)
        if matched is None:
            await self._split_credit(
                credit_note_id,
                [line.id for line in free],
                [amount for _, amount in wanted],
                open_credit,
                date=date,
                description=description or f"Applications of credit note {note['number']}",
            )
            used = await self.credit_note_applications(credit_note_id)
            lines = await self._credit_lines(credit_note_id)
            free = [line for line in lines if line.id not in used]
            matched = _match_lines(wanted, free)
            if matched is None:
                raise TerminalError(
                    f"credit note {credit_note_id}: its lines do not have the amounts to apply "
                    "after splitting them"
                )
        for invoice_id, amount, line_id in matched:
            invoice = invoices[invoice_id]
            await self.client.model(
                "account.invoice", "write", [invoice_id], {"payment_lines": [["add", [line_id]]]}
            )
            if amount == invoice["amount_to_pay"]:
                open_lines = await self.client.search_read(
                    "account.move.line",
                    [
                        ("id", "in", invoice["lines_to_pay"] + invoice["payment_lines"]),
                        ("reconciliation", "=", None),
                    ],
                    ["id"],
                )
                await self._reconcile([r["id"] for r in open_lines] + [line_id])
        return [await self.get_invoice(i) for i in invoice_ids]

    async def open_credit(self, credit_note_id: int) -> Decimal:
        """The credit still free on a credit note, positive, in its currency.

        Tryton's ``amount_to_pay`` of a credit note still counts a line that pays an invoice
        not yet settled (the line is reconciled only when that invoice is); this does not.
        """
        used = await self.credit_note_applications(credit_note_id)
        lines = await self._credit_lines(credit_note_id)
        return sum((line.amount for line in lines if line.id not in used), Decimal(0))

    async def credit_note_applications(self, credit_note_id: int) -> dict[int, int]:
        """Lines of the credit note that pay an invoice: line id to the invoice id."""
        (note,) = await self.client.model(
            "account.invoice", "read", [credit_note_id], ["lines_to_pay"]
        )
        lines: list[int] = note["lines_to_pay"]
        if not lines:
            return {}
        paying = await self.client.search_read(
            "account.invoice",
            [("type", "=", "out"), ("payment_lines", "in", lines), ("id", "!=", credit_note_id)],
            ["payment_lines"],
        )
        return {line: row["id"] for row in paying for line in row["payment_lines"] if line in lines}

    async def _credit_lines(self, credit_note_id: int) -> list[_OpenLine]:
        """The credit note's unreconciled receivable lines, amounts positive, in its currency."""
        (note,) = await self.client.model(
            "account.invoice", "read", [credit_note_id], ["lines_to_pay"]
        )
        rows = await self.client.search_read(
            "account.move.line",
            [("id", "in", note["lines_to_pay"]), ("reconciliation", "=", None)],
            ["debit", "credit", "amount_second_currency", "second_currency"],
            order=[("id", "ASC")],
        )
        return [
            _OpenLine(
                id=row["id"],
                amount=(
                    -row["amount_second_currency"]
                    if row["second_currency"] is not None
                    else row["credit"] - row["debit"]
                ),
            )
            for row in rows
        ]

    async def _split_credit(
        self,
        credit_note_id: int,
        line_ids: Sequence[int],
        amounts: Sequence[Decimal],
        open_credit: Decimal,
        *,
        date: dt.date | None,
        description: str,
    ) -> None:
        """Split the credit note's open lines into one line per amount, plus one for the rest.

        This is the move Tryton's *reschedule* makes (``account.move.line.reschedule``): in
        the credit note's journal, one line cancelling the open lines (reconciled with them),
        one new receivable line per amount, attached to the credit note (``additional_moves``)
        so the new lines are among its lines to pay. It is built here rather than through
        the wizard because trytond 8.2's wizard puts the rounding cent of a foreign-currency
        credit on the wrong side (``credit += remaining`` where the remainder is a debit
        amount), which leaves the move unbalanced whenever the company-currency shares do
        not round to the total; here the last line takes exactly what is left.
        """
        terms = list(amounts)
        if open_credit > sum(terms, Decimal(0)):
            terms.append(open_credit - sum(terms, Decimal(0)))
        rows = await self.client.model(
            "account.move.line",
            "read",
            list(line_ids),
            ["account", "party", "debit", "credit", "second_currency", "move.journal"],
        )
        credit = sum((r["credit"] - r["debit"] for r in rows), Decimal(0))  # company currency
        second = rows[0]["second_currency"]
        company = await self._company_currency()
        when = date or _today()
        shares: list[Decimal] = []
        for term in terms[:-1]:
            share = credit if second is None else credit * term / open_credit
            shares.append(term if second is None else share.quantize(company["rounding"]))
        shares.append(credit - sum(shares, Decimal(0)))

        def line(debit: Decimal, credit: Decimal, amount: Decimal) -> dict[str, Any]:
            values: dict[str, Any] = {
                "account": rows[0]["account"],
                "party": rows[0]["party"],
                "debit": debit,
                "credit": credit,
                "maturity_date": when,
            }
            if second is not None:
                values["second_currency"] = second
                values["amount_second_currency"] = amount
            return values

        period = await self.find_period(when)
        (move_id,) = await self.client.model(
            "account.move",
            "create",
            [
                {
                    "company": self.client.company_id,
                    "journal": rows[0]["move."]["journal"],
                    "period": period.id,
                    "date": when,
                    "origin": f"account.invoice,{credit_note_id}",
                    "description": description,
                    "lines": [
                        [
                            "create",
                            [line(credit, Decimal(0), open_credit)]
                            + [
                                line(Decimal(0), share, -term)
                                for share, term in zip(shares, terms, strict=True)
                            ],
                        ]
                    ],
                }
            ],
        )
        await self.client.model("account.move", "post", [move_id])
        balancing = await self.client.search_read(
            "account.move.line", [("move", "=", move_id), ("debit", ">", 0)], ["id"], limit=1
        )
        # Attach first: reconciling the old lines while they are the credit note's only lines
        # to pay would mark it paid.
        await self.client.model(
            "account.invoice",
            "write",
            [credit_note_id],
            {"additional_moves": [["add", [move_id]]]},
        )
        await self._reconcile([*line_ids, balancing[0]["id"]])

    async def record_payment(
        self,
        invoice_id: int,
        amount: Decimal,
        *,
        reference: str,
        date: dt.date,
        payment_method_id: int | None = None,
        currency: str | None = None,
    ) -> Payment:
        """Record money received against an invoice; partial payments are allowed.

        Uses Tryton's own pay wizard, so the payment is a posted cash-journal move whose
        description is ``reference`` and whose origin is the invoice, and a payment that
        settles the invoice reconciles it (state ``paid``). Idempotent: a payment with the
        same reference on the same invoice is returned instead of being recorded again.
        Paying more than ``amount_to_pay`` is refused, and so is a payment whose
        ``currency`` (when given) is not the invoice's: ``amount`` is in the invoice's.
        """
        existing = await self.find_payment(reference, invoice_id=invoice_id)
        if existing is not None:
            return existing
        invoice = await self.get_invoice(invoice_id)
        if currency is not None and currency != invoice.currency:
            raise TerminalError(
                f"payment {reference} is in {currency}; invoice {invoice.number or invoice_id} "
                f"is in {invoice.currency}"
            )
        if amount <= 0:
            raise TerminalError(f"payment {reference}: amount must be positive, got {amount}")
        if amount > invoice.amount_to_pay:
            raise TerminalError(
                f"payment {reference} of {amount} exceeds what is left to pay on invoice "
                f"{invoice.number or invoice_id} ({invoice.amount_to_pay})"
            )
        method = payment_method_id or await self._default_payment_method()
        async with self.client.wizard(
            "account.invoice.pay", model="account.invoice", ids=[invoice_id]
        ) as wizard:
            opened = await wizard.execute("start")
            start = {
                **_form(opened["view"]["defaults"]),
                "amount": amount,
                "payment_method": method,
                "date": date,
                "description": reference,
            }
            choice = await wizard.execute("choice", {"start": start})
            if "view" in choice:
                # Less than what is left to pay: Tryton asks what to do with the rest.
                ask = {**_form(choice["view"]["defaults"]), "type": "partial"}
                await wizard.execute("pay", {"start": start, "ask": ask})
        found = await self.find_payment(reference, invoice_id=invoice_id)
        if found is None:
            raise TerminalError(f"payment {reference} was not found after the pay wizard ran")
        return found

    async def find_payment(
        self, reference: str, *, invoice_id: int | None = None
    ) -> Payment | None:
        """The oldest payment whose description is ``reference`` (on ``invoice_id`` if given)."""
        origin = ("origin", "=", f"account.invoice,{invoice_id}") if invoice_id else None
        domain: list[Any] = [
            ("description", "=", reference),
            ("company", "=", self.client.company_id),
            origin or ("origin", "like", "account.invoice,%"),
        ]
        payments = await self._payments(domain, limit=1)
        return payments[0] if payments else None

    async def payments_since(self, since: dt.datetime) -> list[Payment]:
        """Payments created or changed at or after ``since`` (aware), oldest change first.

        The bound is inclusive, so a caller that stores ``max(p.changed_at)`` as its next
        watermark sees the boundary records again and must dedupe on ``move_id``; an
        exclusive bound could lose a payment committed in the same microsecond.
        """
        domain: list[Any] = [
            ("company", "=", self.client.company_id),
            ("journal.type", "=", "cash"),
            ("origin", "like", "account.invoice,%"),
            ["OR", ("write_date", ">=", since), ("create_date", ">=", since)],
        ]
        payments = await self._payments(domain, limit=None)
        return sorted(payments, key=lambda p: (p.changed_at, p.move_id))

    # Journal entries ---------------------------------------------------------------------

    async def post_journal_entry(
        self,
        reference: str,
        date: dt.date,
        lines: Sequence[JournalLine],
        *,
        journal_code: str = "MISC",
    ) -> JournalEntry:
        """Create and post a balanced move; idempotent on ``reference`` within the journal.

        Raises ``UnbalancedJournal`` before calling Tryton when debits and credits differ,
        and ``TrytonUserError`` when Tryton refuses (a closed period, an account that needs
        a party, ...).
        """
        totals: dict[str | None, Decimal] = {}
        for line in lines:
            totals[line.currency] = totals.get(line.currency, Decimal(0)) + line.debit - line.credit
        unbalanced = {c: t for c, t in totals.items() if t != 0}
        if unbalanced or not lines:
            detail = ", ".join(
                f"{c or 'company currency'} off by {t}" for c, t in unbalanced.items()
            )
            raise UnbalancedJournal(f"journal entry {reference}: debits != credits ({detail})")
        existing = await self.find_journal_entry(reference, journal_code=journal_code)
        if existing is not None:
            if existing.state != "posted":
                await self.client.model("account.move", "post", [existing.id])
                return await self._journal_entry(existing.id)
            return existing
        journal = await self._journal(journal_code)
        period = await self.find_period(date)
        amounts = await self._company_amounts(lines, date)
        move_lines = []
        for line, (debit, credit) in zip(lines, amounts, strict=True):
            values: dict[str, Any] = {
                "account": await self._account(line.account_code),
                "debit": debit,
                "credit": credit,
            }
            if line.currency is not None and (debit, credit) != (line.debit, line.credit):
                values["second_currency"] = await self._currency(line.currency)
                values["amount_second_currency"] = line.debit - line.credit
            if line.party_code is not None:
                party = await self.find_party(line.party_code)
                if party is None:
                    raise TerminalError(f"journal entry {reference}: no party {line.party_code}")
                values["party"] = party.id
            if line.description is not None:
                values["description"] = line.description
            move_lines.append(values)
        (move_id,) = await self.client.model(
            "account.move",
            "create",
            [
                {
                    "company": self.client.company_id,
                    "journal": journal,
                    "period": period.id,
                    "date": date,
                    "description": reference,
                    "lines": [["create", move_lines]],
                }
            ],
        )
        await self.client.model("account.move", "post", [move_id])
        return await self._journal_entry(move_id)

    async def _company_amounts(
        self, lines: Sequence[JournalLine], date: dt.date
    ) -> list[tuple[Decimal, Decimal]]:
        """Each line's (debit, credit) in the company currency, balanced.

        Lines in another currency are converted at Tryton's rate of ``date`` (the rate table
        is per currency against a common base, as ``currency.currency.compute`` uses it) and
        rounded to the company currency; the rounding cents that conversion leaves are put on
        the largest line of the lighter side, so the entry still balances.
        """
        company = await self._company_currency()
        converted: list[tuple[Decimal, Decimal]] = []
        for line in lines:
            if line.currency is None or line.currency == company["code"]:
                converted.append((line.debit, line.credit))
                continue
            factor = company["rate"] / await self._rate(line.currency, date)
            converted.append(
                (
                    (line.debit * factor).quantize(company["rounding"]),
                    (line.credit * factor).quantize(company["rounding"]),
                )
            )
        gap = sum((d - c for d, c in converted), Decimal(0))
        if gap:
            side = 1 if gap > 0 else 0  # debits heavier: raise a credit, and vice versa
            index = max(range(len(converted)), key=lambda i: converted[i][side])
            debit, credit = converted[index]
            converted[index] = (debit, credit + gap) if side else (debit - gap, credit)
        return converted

    async def _company_currency(self) -> dict[str, Any]:
        if self._company is None:
            (row,) = await self.client.model(
                "company.company", "read", [self.client.company_id], ["currency"]
            )
            (currency,) = await self.client.model(
                "currency.currency", "read", [row["currency"]], ["code", "rounding", "rate"]
            )
            self._company = {
                "code": currency["code"],
                "rounding": currency["rounding"],
                "rate": currency["rate"] or Decimal(1),
            }
        return self._company

    async def _rate(self, code: str, date: dt.date) -> Decimal:
        # Rates are dated; one read per currency and day (a rate entered later for a past
        # day is not seen by this instance, which lives for one worker run).
        if (code, date) in self._rates:
            return self._rates[code, date]
        (row,) = await self.client.model(
            "currency.currency",
            "read",
            [await self._currency(code)],
            ["rate"],
            context={"date": date},
        )
        if not row["rate"]:
            raise TerminalError(f"Tryton has no {code} rate on {date.isoformat()}")
        rate: Decimal = row["rate"]
        self._rates[code, date] = rate
        return rate

    async def find_journal_entry(
        self, reference: str, *, journal_code: str = "MISC"
    ) -> JournalEntry | None:
        rows = await self.client.search_read(
            "account.move",
            [
                ("description", "=", reference),
                ("journal.code", "=", journal_code),
                ("company", "=", self.client.company_id),
            ],
            ["id"],
            order=[("id", "ASC")],
            limit=1,
        )
        return await self._journal_entry(rows[0]["id"]) if rows else None

    # Periods and ledgers -----------------------------------------------------------------

    async def find_period(self, date: dt.date) -> Period:
        """The standard (monthly) period containing ``date``; TerminalError when there is none."""
        rows = await self.client.search_read(
            "account.period",
            [
                ("company", "=", self.client.company_id),
                ("type", "=", "standard"),
                ("start_date", "<=", date),
                ("end_date", ">=", date),
            ],
            _PERIOD_FIELDS,
            limit=1,
        )
        if not rows:
            raise TerminalError(f"Tryton has no accounting period for {date.isoformat()}")
        return _period(rows[0])

    async def close_period(self, period_id: int) -> Period:
        """Close a period: Tryton then refuses any move dated in it. Draft moves block it."""
        await self.client.model("account.period", "close", [period_id])
        (row,) = await self.client.model("account.period", "read", [period_id], _PERIOD_FIELDS)
        return _period(row)

    async def move_lines(self, period_id: int) -> list[MoveLine]:
        """The posted move lines of a period, in move order."""
        rows = await self.client.search_read(
            "account.move.line",
            [("period", "=", period_id), ("move.state", "=", "posted")],
            _MOVE_LINE_FIELDS,
            order=[("move", "ASC"), ("id", "ASC")],
        )
        return [
            MoveLine(
                id=row["id"],
                move_id=row["move"],
                move_number=row["move."]["number"],
                move_reference=row["move."]["description"],
                date=row["date"],
                account_code=row["account."]["code"],
                party_code=(row.get("party.") or {}).get("code"),
                debit=row["debit"],
                credit=row["credit"],
                description=row["description"],
                reconciled=row["reconciliation"] is not None,
            )
            for row in rows
        ]

    # Internals ---------------------------------------------------------------------------

    async def _create_document(
        self,
        party_id: int,
        reference: str,
        lines: Sequence[InvoiceLine],
        *,
        sign: int,
        invoice_date: dt.date,
        currency: str,
        description: str | None,
        post: bool,
        due_date: dt.date | None = None,
        taxes: Sequence[InvoiceTax] = (),
        comment: str | None = None,
        known_new: bool = False,
    ) -> Invoice:
        existing = None if known_new else await self.find_invoice(reference)
        if existing is not None:
            if post and existing.state in ("draft", "validated"):
                return await self.post_invoice(existing.id)
            return existing
        if not lines:
            raise TerminalError(f"invoice {reference} has no lines")
        (party,) = await self.client.model(
            "party.party", "read", [party_id], ["addresses", "account_receivable"]
        )
        if not party["addresses"]:
            # An invoice needs an address; parties created outside the hub may lack one.
            await self.client.model(
                "party.party", "write", [party_id], {"addresses": [["create", [{}]]]}
            )
            (party,) = await self.client.model(
                "party.party", "read", [party_id], ["addresses", "account_receivable"]
            )
        configuration = await self._config()
        company = self.client.company_id
        currency_id = await self._currency(currency)
        invoice_lines = [
            {
                "type": "line",
                "company": company,
                "currency": currency_id,
                "account": (
                    await self._account(line.account_code)
                    if line.account_code
                    else configuration["default_category_account_revenue"]
                ),
                "quantity": float(line.quantity * sign),
                "unit_price": line.unit_price,
                "description": line.description,
            }
            for line in lines
        ]
        values: dict[str, Any] = {
            "type": "out",
            "company": company,
            "currency": currency_id,
            "party": party_id,
            "invoice_address": party["addresses"][0],
            "account": party["account_receivable"] or configuration["default_account_receivable"],
            "journal": await self._journal("REV"),
            "payment_term": (
                configuration["default_customer_payment_term"] if due_date is None else None
            ),
            "invoice_date": invoice_date,
            "reference": reference,
            "lines": [["create", invoice_lines]],
        }
        tax_lines = [await self._tax_line(tax, sign) for tax in taxes if tax.amount != 0]
        if tax_lines:
            values["taxes"] = [["create", tax_lines]]
        if comment is not None:
            values["comment"] = comment
        if due_date is not None:
            # Without a payment term, Tryton makes one line due on payment_term_date.
            values["payment_term_date"] = due_date
        if description is not None:
            values["description"] = description
        (invoice_id,) = await self.client.model("account.invoice", "create", [values])
        if post:
            draft = _Draft(invoice_date=invoice_date, due_date=due_date, credit_note=sign < 0)
            return await self._post_draft(invoice_id, CONFIRMED_INVOICE_WARNINGS, draft)
        return await self.get_invoice(invoice_id)

    async def _tax_line(self, tax: InvoiceTax, sign: int) -> dict[str, Any]:
        values: dict[str, Any] = {
            "description": tax.description,
            "manual": True,
            "account": await self._account(tax.account_code),
            "base": tax.base * sign,
            "amount": tax.amount * sign,
        }
        if tax.tax_name is not None:
            tax_id = await self._tax(tax.tax_name)
            if tax_id is not None:
                values["tax"] = tax_id
        return values

    async def _tax(self, name: str) -> int | None:
        if name not in self._taxes:
            rows = await self.client.search_read(
                "account.tax",
                [("name", "=", name), ("company", "=", self.client.company_id)],
                ["id"],
                limit=1,
            )
            self._taxes[name] = rows[0]["id"] if rows else None
        return self._taxes[name]

    async def _reconcile(self, line_ids: Sequence[int]) -> None:
        async with self.client.wizard(
            "account.move.reconcile_lines", model="account.move.line", ids=list(line_ids)
        ) as wizard:
            result = await wizard.execute("start")
            if "view" in result:
                raise TerminalError(
                    f"move lines {sorted(line_ids)} do not balance; Tryton asks for a write-off"
                )

    async def _payments(self, domain: list[Any], *, limit: int | None) -> list[Payment]:
        moves = await self.client.search_read(
            "account.move",
            domain,
            ["number", "description", "origin", "date", "state", "create_date", "write_date"],
            order=[("id", "ASC")],
            limit=limit,
        )
        if not moves:
            return []
        lines = await self.client.search_read(
            "account.move.line",
            [("move", "in", [m["id"] for m in moves]), ("account.type.receivable", "=", True)],
            ["move", "debit", "credit", "party"],
        )
        amounts: dict[int, Decimal] = {}
        parties: dict[int, int | None] = {}
        for line in lines:
            amounts[line["move"]] = amounts.get(line["move"], Decimal(0)) + (
                line["credit"] - line["debit"]
            )
            parties.setdefault(line["move"], line["party"])
        return [
            Payment(
                move_id=move["id"],
                number=move["number"],
                reference=move["description"] or "",
                invoice_id=_origin_id(move["origin"], "account.invoice"),
                party_id=parties.get(move["id"]),
                date=move["date"],
                amount=amounts.get(move["id"], Decimal(0)),
                state=move["state"],
                changed_at=move["write_date"] or move["create_date"],
            )
            for move in moves
        ]

    async def _journal_entry(self, move_id: int) -> JournalEntry:
        (row,) = await self.client.model(
            "account.move",
            "read",
            [move_id],
            ["number", "description", "journal.code", "date", "period", "state"],
        )
        return JournalEntry(
            id=row["id"],
            number=row["number"],
            reference=row["description"] or "",
            journal=row["journal."]["code"],
            date=row["date"],
            period_id=row["period"],
            state=row["state"],
        )

    async def _config(self) -> dict[str, Any]:
        if self._configuration is None:
            (self._configuration,) = await self.client.model(
                "account.configuration",
                "read",
                [1],
                [
                    "default_account_receivable",
                    "default_customer_payment_term",
                    "default_category_account_revenue",
                ],
            )
        return self._configuration

    async def _default_payment_method(self) -> int:
        if self._payment_method is not None:
            return self._payment_method
        rows = await self.client.search_read(
            "account.invoice.payment.method",
            [("company", "=", self.client.company_id), ("journal.type", "=", "cash")],
            ["id"],
            order=[("id", "ASC")],
            limit=1,
        )
        if not rows:
            raise TerminalError("Tryton has no cash payment method for the company")
        self._payment_method = int(rows[0]["id"])
        return self._payment_method

    async def existing_account_codes(self, codes: Sequence[str]) -> set[str]:
        """Which of ``codes`` the company's chart has (``account.account`` by code)."""
        rows = await self.client.search_read(
            "account.account",
            [("code", "in", list(codes)), ("company", "=", self.client.company_id)],
            ["code"],
        )
        return {str(row["code"]) for row in rows}

    async def _account(self, code: str) -> int:
        if code not in self._accounts:
            rows = await self.client.search_read(
                "account.account",
                [("code", "=", code), ("company", "=", self.client.company_id)],
                ["id"],
                limit=1,
            )
            if not rows:
                raise TerminalError(f"Tryton has no account with code {code!r}")
            self._accounts[code] = rows[0]["id"]
        return self._accounts[code]

    async def _journal(self, code: str) -> int:
        if code not in self._journals:
            rows = await self.client.search_read(
                "account.journal", [("code", "=", code)], ["id"], limit=1
            )
            if not rows:
                raise TerminalError(f"Tryton has no journal with code {code!r}")
            self._journals[code] = rows[0]["id"]
        return self._journals[code]

    async def _currency(self, code: str) -> int:
        if code not in self._currencies:
            rows = await self.client.search_read(
                "currency.currency", [("code", "=", code)], ["id"], limit=1
            )
            if not rows:
                raise TerminalError(f"Tryton has no currency {code!r}")
            self._currencies[code] = rows[0]["id"]
        return self._currencies[code]

    async def _party(self, row: dict[str, Any]) -> Party:
        identifiers: list[str] = []
        if row["identifiers"]:
            found = await self.client.model(
                "party.identifier", "read", row["identifiers"], ["code"]
            )
            identifiers = [r["code"] for r in found]
        return Party(
            id=row["id"], code=row["code"], name=row["name"], identifiers=tuple(identifiers)
        )


def _party_balance(row: dict[str, Any]) -> PartyBalance:
    return PartyBalance(
        party_id=row["id"],
        code=row["code"],
        receivable=row["receivable"] or Decimal(0),
        credit_amount=row["credit_amount"] or Decimal(0),
        credit_limit=row["credit_limit_amount"],
    )


def _invoice(row: dict[str, Any]) -> Invoice:
    return Invoice(
        id=row["id"],
        number=row["number"],
        reference=row["reference"],
        party_id=row["party"],
        state=row["state"],
        invoice_date=row["invoice_date"],
        currency=row["currency."]["code"],
        total_amount=row["total_amount"],
        amount_to_pay=row["amount_to_pay"],
        reconciled=row["reconciled"],
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Draft:
    """What ``_create_document`` knows of the draft it just created."""

    invoice_date: dt.date
    due_date: dt.date | None
    credit_note: bool


@dataclass(frozen=True, slots=True)
class _OpenLine:
    id: int
    amount: Decimal


def _today() -> dt.date:
    # The template's company runs on UTC; Tryton's "today" for a company is in its timezone.
    return dt.datetime.now(dt.UTC).date()


def _match_lines(
    wanted: Sequence[tuple[int, Decimal]], lines: Sequence[_OpenLine]
) -> list[tuple[int, Decimal, int]] | None:
    """Give each (invoice, amount) an open line of exactly that amount, or None if one lacks."""
    free = list(lines)
    matched = []
    for invoice_id, amount in wanted:
        line = next((line for line in free if line.amount == amount), None)
        if line is None:
            return None
        free.remove(line)
        matched.append((invoice_id, amount, line.id))
    return matched


def _period(row: dict[str, Any]) -> Period:
    return Period(
        id=row["id"],
        name=row["name"],
        start_date=row["start_date"],
        end_date=row["end_date"],
        state=row["state"],
    )


def _form(defaults: dict[str, Any]) -> dict[str, Any]:
    # A view's defaults carry display values for relations ("company.": {"rec_name": ...});
    # they are not fields, and sending them back fails the wizard.
    return {k: v for k, v in defaults.items() if not k.endswith(".")}


def _origin_id(origin: str | None, model: str) -> int | None:
    if not origin or not origin.startswith(model + ","):
        return None
    return int(origin.split(",", 1)[1])
