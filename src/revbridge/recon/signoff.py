"""Month-end sign-off rules, pure: who may sign a period, and when a sign-off is void.

A period is signed off by a *preparer* (who reconciled it) and then a *reviewer* (a different
person). At preparation, the fingerprint of each reconciliation's balances (``cases.
fingerprint`` over the latest month-end run of the period) is kept with the sign-off; a later
run over the period whose fingerprints differ voids the sign-off: the balances it attested
are not the balances any more. A voided period is prepared again from scratch.

::

    (none) ──preparer──► prepared ──reviewer (≠ preparer)──► signed
                             │                                  │
                             └──── balances changed ──► voided ◄┘
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

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
            f"{active_cases} case(s) of the period are still open or investigating: "
            "resolve or accept them before sign-off"
        )


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
