"""Ownership per attribute: which system's change wins, and what happens to the other's.

Each attribute of a customer is owned by one side (``salesforce`` or ``erp``). The hub keeps
the last value it synced per (customer, attribute); a side that reports a value different
from it *changed* the attribute. Then:

- the owner changed it: the change propagates to the other side (the new synced value);
- the non-owner changed it: it does not propagate; with ``on_conflict = "revert"`` the
  owner's value is written back over it, with ``"flag"`` it is only flagged; either way a
  review item records both values and which side won (always the owner).

The decision is a pure function (``decide``); ``SyncModel`` runs it over two in-memory
systems so a property test can show that any interleaving of edits converges.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

Side = Literal["salesforce", "erp"]
SALESFORCE: Side = "salesforce"
ERP: Side = "erp"
OnConflict = Literal["revert", "flag"]

DEFAULT_OWNERS: Mapping[str, Side] = {
    "name": SALESFORCE,
    "contacts": SALESFORCE,
    "billing_address": SALESFORCE,
    "shipping_address": SALESFORCE,
    "industry": SALESFORCE,
    "owner": SALESFORCE,
    "segment": SALESFORCE,
    "website": SALESFORCE,
    "parent": SALESFORCE,
    "credit_limit": ERP,
    "payment_terms": ERP,
    "tax_id": ERP,
    "credit_hold": ERP,
}
# The config names groups the way a master-data owner says them; they expand to attributes.
ATTRIBUTE_GROUPS: Mapping[str, tuple[str, ...]] = {
    "addresses": ("billing_address", "shipping_address"),
    "account_owner": ("owner",),
    "tax_registration": ("tax_id",),
}


def other(side: Side) -> Side:
    return ERP if side == SALESFORCE else SALESFORCE


def value_hash(value: Any) -> str:
    """A stable hash of an attribute value (JSON with sorted keys; Decimals as strings)."""
    blob = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class Ownership:
    """Who owns what, and what a change by the non-owner leads to."""

    owners: Mapping[str, Side] = field(default_factory=lambda: dict(DEFAULT_OWNERS))
    on_conflict: OnConflict = "revert"

    @classmethod
    def from_config(cls, owners: Mapping[str, str], on_conflict: str = "revert") -> Ownership:
        """Defaults overridden by ``{attribute or group: side}``; unknown names are refused."""
        merged: dict[str, Side] = dict(DEFAULT_OWNERS)
        for name, side in owners.items():
            if side not in (SALESFORCE, ERP):
                raise ValueError(f"mdm.owners.{name}: {side!r} is not 'salesforce' or 'erp'")
            targets = ATTRIBUTE_GROUPS.get(name, (name,))
            for attr in targets:
                if attr not in DEFAULT_OWNERS:
                    raise ValueError(
                        f"mdm.owners.{name}: unknown attribute; known: "
                        + ", ".join(sorted((*DEFAULT_OWNERS, *ATTRIBUTE_GROUPS)))
                    )
                merged[attr] = side
        if on_conflict not in ("revert", "flag"):
            raise ValueError(f"mdm.on_conflict: {on_conflict!r} is not 'revert' or 'flag'")
        return cls(owners=merged, on_conflict=on_conflict)  # type: ignore[arg-type]

    def owner_of(self, attribute: str) -> Side:
        return self.owners.get(attribute, SALESFORCE)


class Action(StrEnum):
    UNCHANGED = "unchanged"  # what the side reports is what was last synced
    FIRST = "first"  # nothing synced yet: the reported value becomes the synced one
    PROPAGATE = "propagate"  # the owner changed it: write it to the other side
    REVERT = "revert"  # the non-owner changed it: write the owner's value back over it
    FLAG = "flag"  # the non-owner changed it: keep it there, do not propagate, review


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    attribute: str
    action: Action
    reported_by: Side
    owner: Side
    reported_hash: str
    synced_hash: str | None

    @property
    def is_conflict(self) -> bool:
        return self.action in (Action.REVERT, Action.FLAG)


def decide(
    ownership: Ownership,
    attribute: str,
    reported_by: Side,
    reported_hash: str,
    synced_hash: str | None,
) -> Decision:
    """What to do with a value of ``attribute`` that ``reported_by`` says it now holds."""
    owner = ownership.owner_of(attribute)
    if synced_hash is None:
        # The first sighting: the owner's value is the truth; the non-owner's is only kept
        # until the owner reports (it is not propagated over the owner's).
        action = Action.FIRST if reported_by == owner else Action.UNCHANGED
    elif reported_hash == synced_hash:
        action = Action.UNCHANGED
    elif reported_by == owner:
        action = Action.PROPAGATE
    else:
        action = Action.REVERT if ownership.on_conflict == "revert" else Action.FLAG
    return Decision(
        attribute=attribute,
        action=action,
        reported_by=reported_by,
        owner=owner,
        reported_hash=reported_hash,
        synced_hash=synced_hash,
    )


@dataclass(slots=True)
class SyncModel:
    """Two systems' copies of one customer and the hub's synced values, in memory.

    ``edit`` is a user typing in one system; ``sync`` is the hub reading that system's
    current values and acting on each decision. Used by the property test and the docs.
    """

    ownership: Ownership
    values: dict[Side, dict[str, Any]] = field(default_factory=lambda: {SALESFORCE: {}, ERP: {}})
    synced: dict[str, Any] = field(default_factory=dict)
    conflicts: list[Decision] = field(default_factory=list)

    def edit(self, side: Side, attribute: str, value: Any) -> None:
        self.values[side][attribute] = value

    def sync(self, side: Side) -> list[Decision]:
        decisions = []
        for attribute, value in sorted(self.values[side].items()):
            synced = self.synced.get(attribute, _MISSING)
            d = decide(
                self.ownership,
                attribute,
                side,
                value_hash(value),
                None if synced is _MISSING else value_hash(synced),
            )
            decisions.append(d)
            if d.action in (Action.FIRST, Action.PROPAGATE):
                self.synced[attribute] = value
                self.values[other(side)][attribute] = value
            elif d.action is Action.REVERT:
                self.values[side][attribute] = self.synced[attribute]
                self.conflicts.append(d)
            elif d.action is Action.FLAG:
                self.conflicts.append(d)
        return decisions


_MISSING: Any = object()
