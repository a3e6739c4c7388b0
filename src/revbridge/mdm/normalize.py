"""Normalization for matching: names without legal suffixes, web domains, tax ids, addresses.

Two spellings of one company must normalize to the same string as often as possible
(``ACME, Inc.`` and ``Acme Incorporated``; ``https://www.acme.com/about`` and
``sales@acme.com``), without making two different companies equal.
"""

from __future__ import annotations

import re
import unicodedata

# Legal-form words dropped from names: they say how a company is registered, not which one.
LEGAL_SUFFIXES = frozenset(
    [
        "inc",
        "incorporated",
        "corp",
        "corporation",
        "co",
        "company",
        "llc",
        "llp",
        "lp",
        "ltd",
        "limited",
        "plc",
        "gmbh",
        "ag",
        "kg",
        "mbh",
        "ug",
        "sa",
        "sas",
        "sarl",
        "srl",
        "spa",
        "bv",
        "nv",
        "oy",
        "ab",
        "as",
        "asa",
        "aps",
        "pty",
        "pte",
        "bhd",
        "kk",
        "sl",
        "se",
        "sro",
        "zrt",
        "the",
    ]
)
_ADDRESS_WORDS = {
    "street": "st",
    "str": "st",
    "strasse": "st",
    "avenue": "ave",
    "av": "ave",
    "road": "rd",
    "boulevard": "blvd",
    "drive": "dr",
    "suite": "ste",
    "floor": "fl",
    "north": "n",
    "south": "s",
    "east": "e",
    "west": "w",
}
_NON_ALNUM = re.compile(r"[^0-9a-z]+")
_FREE_MAIL = frozenset(
    [
        "gmail.com",
        "yahoo.com",
        "hotmail.com",
        "outlook.com",
        "aol.com",
        "icloud.com",
        "gmx.de",
        "web.de",
    ]
)


def _fold(text: str) -> str:
    """Lower case, accents removed (``Müller`` -> ``muller``), ``&`` read as ``and``."""
    decomposed = unicodedata.normalize("NFKD", text.replace("&", " and "))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def normalize_name(name: str | None) -> str:
    """A company name as words without punctuation or legal form: ``acme widgets``."""
    if not name:
        return ""
    words = _NON_ALNUM.sub(" ", _fold(name).replace(".", "")).split()
    kept = [w for w in words if w not in LEGAL_SUFFIXES]
    return " ".join(kept or words)


def normalize_domain(value: str | None) -> str:
    """The registrable host of a URL or e-mail address: ``acme.com``; free mail gives ``""``."""
    if not value:
        return ""
    text = value.strip().casefold()
    if "@" in text and "://" not in text:
        text = text.rsplit("@", 1)[1]
    text = re.sub(r"^[a-z][a-z0-9+.-]*://", "", text)
    host = re.split(r"[/:?#]", text, maxsplit=1)[0].strip(".")
    if host.startswith("www."):
        host = host[4:]
    if "." not in host or host in _FREE_MAIL:
        return ""
    return host


def normalize_tax_id(value: str | None) -> str:
    """A tax registration as upper-case letters and digits (``DE 123.456.789``: ``DE123456789``)."""
    if not value:
        return ""
    return re.sub(r"[^0-9A-Z]", "", _fold(value).upper())


def normalize_address(*parts: str | None) -> str:
    """An address as comparable words: ``12 Main Street, Suite 4`` -> ``12 main st ste 4``."""
    words = _NON_ALNUM.sub(" ", _fold(" ".join(p for p in parts if p))).split()
    return " ".join(_ADDRESS_WORDS.get(w, w) for w in words)


def normalize_postal_code(value: str | None) -> str:
    return re.sub(r"[^0-9A-Z]", "", (value or "").upper())
