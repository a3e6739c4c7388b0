"""Month-end sign-off rules, pure: who may sign a period, and when a sign-off is void.

A period is signed off by a *preparer* (who reconciled it) and then a *reviewer* (a different
person). At preparation, the fingerprint of each reconciliation's balances (``cases.
fingerprint`` over the latest month-end run of the period) is kept with the sign-off; a later
run over the period whose fingerprints differ voids the sign-off: the balances it attested
are not the balances any more. A voided period is prepared again from scratch.

Neither signature is given while revenue entries of the period are still on their way to
the ERP (pending, parked, held, in flight, or scheduled for their batch window): they would
change the balances when they land, and void the sign-off. ``check_in_transit`` refuses it,
naming them, unless the signer gives a reason to sign anyway (audited with the sign-off).

::

    (none) ──preparer──► prepared ──reviewer (≠ preparer)──► signed
                             │                                  │
                             └──── balances changed ──► voided ◄┘
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from revbridge.core.timestamps import human_timestamp, json_timestamp
from revbridge.core.wording import counted
from revbridge.errors import DomainError


class SignoffState(StrEnum):
    PREPARED = "prepared"
    SIGNED = "signed"
    VOIDED = "voided"


ROLES = ("preparer", "reviewer")


def check_prepare(*, current: str | None, active_cases: int) -> None:
    """A preparer may sign a period with no live sign-off and no case left open."""
    if current is not None:
        raise DomainError(f"the period is already {current}; a voided one can be prepared again")
    if active_cases:
        raise DomainError(
            f"{counted(active_cases, 'case')} of the period "
            f"{'is' if active_cases == 1 else 'are'} still open or investigating: "
            "resolve or accept them before sign-off"
        )


# What a document of each kind to the ERP is called in a sentence (singular, plural).
KIND_NAMES = {
    "invoice.posted": ("invoice", "invoices"),
    "credit_memo.issued": ("credit memo", "credit memos"),
    "payment.received": ("payment", "payments"),
    "revenue.recognized": ("revenue entry", "revenue entries"),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class InTransit:
    """The documents of a period not yet delivered to the ERP (invoices, credit memos,
    payments, revenue entries): how many of each, their control totals per currency (a
    document's total, a payment's amount, a revenue entry's debits), and when their
    deliveries are due (earliest, latest)."""

    counts: Mapping[str, int]  # by event type
    control_totals: Mapping[str, Mapping[str, Decimal]]  # by event type, then currency
    due_from: datetime | None = None
    due_until: datetime | None = None

    @property
    def entries(self) -> int:
        return sum(self.counts.values())

    def describe(self) -> str:
        parts = []
        for kind, n in sorted(self.counts.items()):
            one, many = KIND_NAMES.get(kind, (kind, kind))
            totals = ", ".join(
                f"{c} {format(t, 'f')}" for c, t in sorted(self.control_totals[kind].items())
            )
            parts.append(f"{n} {one if n == 1 else many} (control totals {totals})")
        if self.due_from is None or self.due_until is None:
            due = "due now"
        elif self.due_from == self.due_until:
            due = f"due {human_timestamp(self.due_from)}"
        else:
            due = f"due {human_timestamp(self.due_from)} to {human_timestamp(self.due_until)}"
        return f"{', '.join(parts)}; {due}"

    def as_json(self) -> dict[str, object]:
        return {
            "entries": self.entries,
            "by_type": {
                kind: {
                    "count": n,
                    "control_totals": {
                        c: format(t, "f") for c, t in sorted(self.control_totals[kind].items())
                    },
                }
                for kind, n in sorted(self.counts.items())
            },
            "due_from": json_timestamp(self.due_from) if self.due_from else None,
            "due_until": json_timestamp(self.due_until) if self.due_until else None,
        }


def check_in_transit(in_transit: InTransit, *, override_reason: str | None) -> str | None:
    """Refuse a signature while documents of the period are in transit, unless a reason is
    given to sign anyway; returns the reason (stripped), or None when nothing is in transit."""
    if not in_transit.entries:
        return None
    reason = (override_reason or "").strip()
    if not reason:
        raise DomainError(
            f"documents of the period still in transit to the ERP: {in_transit.describe()}. "
            "They change the balances when they land and would void the sign-off. Sign off "
            "after they "
            "are delivered (`revbridge dr status`), or give a reason to sign anyway "
            "(--override-in-transit REASON; API: override_in_transit)"
        )
    return reason


def check_review(*, current: str | None, preparer: str | None, reviewer: str) -> None:
    """A reviewer signs a prepared period, and is not the person who prepared it."""
    if current != SignoffState.PREPARED:
        state = current or "not prepared"
        raise DomainError(f"the period is {state}: only a prepared period can be reviewed")
    if preparer == reviewer:
        raise DomainError(f"{reviewer} prepared this period: the reviewer must be someone else")


def changed_reconciliations(signed: Mapping[str, str], now: Mapping[str, str]) -> tuple[str, ...]:
    """The reconciliations whose balances differ from those signed (void when non-empty)."""
    return tuple(sorted(name for name in signed if now.get(name) != signed[name]))
