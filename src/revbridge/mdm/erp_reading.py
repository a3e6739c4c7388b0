"""What an ERP capture reads of a customer's master attributes, compared with the synced value.

An ERP holds a customer's attributes in its own form: names in capitals, a street in one
text field, no region, a web site with its scheme, a tax id with or without spaces. Read back
after the hub wrote them, they must count as the synced value, not as an edit in the ERP:
otherwise every write-back would be read as a new conflict and written back again, forever.
A real edit still differs in a component the ERP holds, and is decided as one.

A reading only holds what the ERP record carries (a capture leaves out what is empty there):
an attribute or address component it does not report says nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from revbridge.mdm.normalize import normalize_domain, normalize_postal_code, normalize_tax_id

# The master attributes an ERP capture may report beside a customer's credit status.
ERP_MASTER_ATTRIBUTES: tuple[str, ...] = (
    "name",
    "billing_address",
    "website",
    "industry",
    "tax_id",
)


def _text(value: Any) -> str:
    return " ".join(str(value).split()).casefold() if value is not None else ""


def _address_component(key: str, value: Any) -> str:
    if key == "postal_code":
        return normalize_postal_code(None if value is None else str(value))
    return _text(value)


def reads_as_synced(attribute: str, reported: Any, synced: Any) -> bool:
    """Whether the ERP's ``reported`` value of ``attribute`` is the ``synced`` one as the ERP
    keeps it (case, spacing, URL form, tax id punctuation; an address compared on the
    components the ERP reported)."""
    if reported is None or synced is None:
        return reported is None and synced is None
    if attribute == "billing_address" or attribute == "shipping_address":
        if not isinstance(reported, Mapping) or not isinstance(synced, Mapping) or not reported:
            return False
        return all(
            _address_component(k, v) == _address_component(k, synced.get(k))
            for k, v in reported.items()
        )
    if attribute == "website":
        domain = normalize_domain(str(reported))
        return bool(domain) and domain == normalize_domain(str(synced))
    if attribute == "tax_id":
        return normalize_tax_id(str(reported)) == normalize_tax_id(str(synced))
    if isinstance(reported, str) and isinstance(synced, str):
        return _text(reported) == _text(synced)
    return bool(reported == synced)


def reading_of_address(
    street: str | None,
    city: str | None,
    postal_code: str | None,
    country: str | None,
    region: str | None = None,
) -> dict[str, str] | None:
    """An ERP's address as the canonical ``Address`` components it holds: the street's first
    line is ``line1``, the rest ``line2``; empty components are left out (not reported)."""
    lines = [x.strip() for x in (street or "").splitlines() if x.strip()]
    parts = {
        "line1": lines[0] if lines else None,
        "line2": " ".join(lines[1:]) or None,
        "city": city,
        "region": region,
        "postal_code": postal_code,
        "country": country.upper() if country else None,
    }
    out = {k: v for k, v in parts.items() if v}
    return out or None
