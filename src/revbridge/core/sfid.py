"""Salesforce record ids: 15-character (case-sensitive) and 18-character (checksummed) forms.

The 3-character suffix encodes, for each 5-character chunk, which characters are upper case;
it lets case-insensitive systems (spreadsheets, most ERPs) hold ids safely.
"""

from __future__ import annotations

from functools import lru_cache

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def _suffix(id15: str) -> str:
    out = []
    for chunk in range(3):
        bits = 0
        for i, ch in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= ch <= "Z":
                bits |= 1 << i
        out.append(_ALPHABET[bits])
    return "".join(out)


@lru_cache(maxsize=1 << 16)
def to_18(sf_id: str) -> str:
    """The 18-character form of a 15- or 18-character id; raise ``ValueError`` if malformed.

    Cached: capture and mapping normalize the same ids many times over (a record, its lines,
    their parent references); a malformed id raises every time (exceptions are not cached).
    """
    if len(sf_id) not in (15, 18) or not set(sf_id) <= _ID_CHARS:
        raise ValueError(f"{sf_id!r} is not a Salesforce id (15 or 18 alphanumerics)")
    id15 = sf_id[:15]
    expected = _suffix(id15)
    if len(sf_id) == 18 and sf_id[15:].upper() != expected:
        raise ValueError(f"{sf_id!r}: checksum suffix {sf_id[15:]!r} should be {expected!r}")
    return id15 + expected


def is_valid(sf_id: str) -> bool:
    try:
        to_18(sf_id)
    except ValueError:
        return False
    return True


def make_id(prefix: str, number: int) -> str:
    """A well-formed 18-character id with a 3-character key prefix, e.g. ``001`` for Account."""
    if len(prefix) != 3:
        raise ValueError("key prefix must have 3 characters")
    body = _base62(number).rjust(12, "0")
    return to_18(prefix + body)


def _base62(n: int) -> str:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 62)
        out = digits[r] + out
        if n == 0:
            return out
