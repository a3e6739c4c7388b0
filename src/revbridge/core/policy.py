"""The hybrid routing policy: which event types go real-time and which go in batches, and why.

Pure data. ``default_policy`` is the classic hybrid map; configuration overrides it per event
type. Which system handles cash decides which payment flow is on: a payment flow that does
not apply is off, and the table says so.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from cronsim import CronSim, CronSimError

from revbridge.core.events import SPECS, EventType
from revbridge.errors import DomainError


class Pattern(StrEnum):
    REALTIME = "realtime"
    BATCH = "batch"


class CashHandler(StrEnum):
    SALESFORCE = "salesforce"
    ERP = "erp"
    BOTH = "both"


NIGHTLY = "0 2 * * *"
MONTHLY_CLOSE = "0 3 1 * *"
WEEKLY = "0 4 * * 1"


@dataclass(frozen=True, slots=True, kw_only=True)
class EventPolicy:
    type: EventType
    pattern: Pattern
    schedule: str | None
    rationale: str
    enabled: bool = True

    def __post_init__(self) -> None:
        try:
            check_classification(self.pattern, self.schedule, self.rationale)
        except DomainError as exc:
            raise DomainError(f"{self.type}: {exc}") from None


def check_classification(pattern: Pattern, schedule: str | None, rationale: str) -> None:
    """Raise ``DomainError`` saying what a classification lacks: a batch class needs a cron
    schedule, a real-time one takes none, and each needs a one-line rationale."""
    if pattern is Pattern.BATCH:
        if not schedule:
            raise DomainError("a batch event type needs a cron schedule")
        check_cron(schedule)
    elif schedule:
        raise DomainError("a real-time event type takes no schedule")
    if not rationale.strip():
        raise DomainError("the classification needs a one-line rationale")


def check_cron(expression: str) -> str:
    """Validate a five-field cron expression; raise ``DomainError`` saying why it is bad."""
    try:
        CronSim(expression, datetime(2000, 1, 1))  # noqa: DTZ001 - parsing only, no clock
    except (CronSimError, ValueError, KeyError) as exc:
        raise DomainError(f"bad cron schedule {expression!r}: {exc}") from exc
    return expression


def next_run(expression: str, after: datetime) -> datetime:
    """The first time strictly after ``after`` at which ``expression`` fires (same tzinfo)."""
    return next(CronSim(expression, after))


_DEFAULTS: tuple[EventPolicy, ...] = (
    EventPolicy(
        type=EventType.INVOICE_POSTED,
        pattern=Pattern.REALTIME,
        schedule=None,
        rationale="AR and collections need the invoice the day it is posted; low volume.",
    ),
    EventPolicy(
        type=EventType.PAYMENT_RECEIVED,
        pattern=Pattern.REALTIME,
        schedule=None,
        rationale="Cash applied late shows customers as overdue and triggers wrong dunning.",
    ),
    EventPolicy(
        type=EventType.CREDIT_MEMO_ISSUED,
        pattern=Pattern.REALTIME,
        schedule=None,
        rationale="A credit reduces the open balance that collections and credit holds act on.",
    ),
    EventPolicy(
        type=EventType.ERP_PAYMENT_RECEIVED,
        pattern=Pattern.REALTIME,
        schedule=None,
        rationale="Sales and customer success must see paid invoices before they call.",
    ),
    EventPolicy(
        type=EventType.CUSTOMER_CREDIT_STATUS_CHANGED,
        pattern=Pattern.REALTIME,
        schedule=None,
        rationale="Sales must see a credit hold before quoting; rare and urgent.",
    ),
    EventPolicy(
        type=EventType.CUSTOMER_UPSERTED,
        pattern=Pattern.BATCH,
        schedule=NIGHTLY,
        rationale="Master data changes often and matters by the next day; a new customer's "
        "first invoice pulls it ahead just in time.",
    ),
    EventPolicy(
        type=EventType.REVENUE_RECOGNIZED,
        pattern=Pattern.BATCH,
        schedule=MONTHLY_CLOSE,
        rationale="Revenue is recognized per period; high volume, posted as a journal at close.",
    ),
    EventPolicy(
        type=EventType.GL_POSTED,
        pattern=Pattern.BATCH,
        schedule=NIGHTLY,
        rationale="GL postings feed the nightly reconciliation; nobody acts on them intraday.",
    ),
    EventPolicy(
        type=EventType.REPORTING_REFRESHED,
        pattern=Pattern.BATCH,
        schedule=WEEKLY,
        rationale="Balance reporting for Salesforce dashboards; weekly freshness is enough.",
    ),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingPolicy:
    """The routing decision for every event type, plus which system handles cash."""

    events: tuple[EventPolicy, ...]
    cash_handled_in: CashHandler = CashHandler.BOTH

    def __post_init__(self) -> None:
        types = [p.type for p in self.events]
        missing = set(EventType) - set(types)
        if missing or len(types) != len(set(types)):
            raise DomainError(f"policy must classify each event type once; missing {missing}")

    def for_type(self, event_type: EventType) -> EventPolicy:
        for p in self.events:
            if p.type is event_type:
                return p
        raise KeyError(event_type)  # unreachable: __post_init__ proves completeness

    def is_enabled(self, event_type: EventType) -> bool:
        return self.for_type(event_type).enabled

    def disabled_reason(self, event_type: EventType) -> str | None:
        if self.is_enabled(event_type):
            return None
        return (
            f"{event_type} is off: cash is handled in {self.cash_handled_in.value} "
            f"(policy.cash_handled_in = {self.cash_handled_in.value!r})"
        )


def build_policy(
    overrides: dict[EventType, EventPolicy] | None = None,
    cash_handled_in: CashHandler = CashHandler.BOTH,
) -> RoutingPolicy:
    """The default hybrid map with ``overrides`` applied and the cash setting enforced."""
    overrides = overrides or {}
    off: set[EventType] = set()
    if cash_handled_in is CashHandler.SALESFORCE:
        off.add(EventType.ERP_PAYMENT_RECEIVED)
    elif cash_handled_in is CashHandler.ERP:
        off.add(EventType.PAYMENT_RECEIVED)
    events = tuple(replace(overrides.get(p.type, p), enabled=p.type not in off) for p in _DEFAULTS)
    return RoutingPolicy(events=events, cash_handled_in=cash_handled_in)


def default_policy() -> RoutingPolicy:
    return build_policy()


def policy_rows(policy: RoutingPolicy) -> list[dict[str, str | bool | None]]:
    """Rows for the auditor's table, in a stable order (real-time first, then batch)."""
    ordered = sorted(
        policy.events,
        key=lambda p: (p.pattern is not Pattern.REALTIME, list(EventType).index(p.type)),
    )
    return [
        {
            "type": p.type.value,
            "direction": SPECS[p.type].direction.value,
            "pattern": p.pattern.value if p.enabled else "off",
            "schedule": p.schedule,
            "rationale": p.rationale if p.enabled else policy.disabled_reason(p.type),
        }
        for p in ordered
    ]


def policy_markdown(policy: RoutingPolicy) -> str:
    """The documented classification as a Markdown table: an auditor's artefact."""
    lines = [
        "| Event type | Direction | Pattern | Schedule | Rationale |",
        "|---|---|---|---|---|",
    ]
    for row in policy_rows(policy):
        direction = "Salesforce → ERP" if row["direction"] == "to_erp" else "ERP → Salesforce"
        lines.append(
            f"| `{row['type']}` | {direction} | {row['pattern']} | "
            f"{'`' + str(row['schedule']) + '`' if row['schedule'] else '—'} | {row['rationale']} |"
        )
    lines.append("")
    lines.append(f"Cash is handled in: **{policy.cash_handled_in.value}**.")
    return "\n".join(lines)
