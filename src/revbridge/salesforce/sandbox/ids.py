"""Salesforce record ids: 15-character case-sensitive and 18-character case-safe forms.

The checksum rule is the documented one: the 15 characters split into three chunks of five; each
chunk becomes a 5-bit number whose bit *i* is set when character *i* is an uppercase letter; each
number indexes ``ABCDEFGHIJKLMNOPQRSTUVWXYZ012345``. Ids are stored and compared in their 18-char
form; an 18-char id given with the wrong case is repaired from its checksum, as Salesforce does.
"""

from __future__ import annotations

import string

_CHECKSUM_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_ID_CHARS = frozenset(string.ascii_letters + string.digits)


def checksum(id15: str) -> str:
    """The three checksum characters that turn a 15-char id into its 18-char form."""
    out = []
    for chunk_start in range(0, 15, 5):
        chunk = id15[chunk_start : chunk_start + 5]
        bits = sum(1 << i for i, ch in enumerate(chunk) if "A" <= ch <= "Z")
        out.append(_CHECKSUM_ALPHABET[bits])
    return "".join(out)


def to18(record_id: str) -> str:
    """The 18-char form of a 15- or 18-char id; raise ``ValueError`` for anything else.

    An 18-char id is case-insensitive: its suffix says which of the first 15 characters are upper
    case, so the case is restored from it and the checksum re-verified.
    """
    if not record_id or any(ch not in _ID_CHARS for ch in record_id):
        raise ValueError(f"malformed id: {record_id!r}")
    if len(record_id) == 15:
        return record_id + checksum(record_id)
    if len(record_id) != 18:
        raise ValueError(f"malformed id: {record_id!r}")
    suffix = record_id[15:].upper()
    restored = []
    for chunk_index, flag_char in enumerate(suffix):
        position = _CHECKSUM_ALPHABET.find(flag_char)
        if position < 0:
            raise ValueError(f"malformed id: {record_id!r}")
        chunk = record_id[chunk_index * 5 : chunk_index * 5 + 5]
        for i, ch in enumerate(chunk):
            restored.append(ch.upper() if position & (1 << i) else ch.lower())
    id15 = "".join(restored)
    if checksum(id15) != suffix:
        raise ValueError(f"malformed id: {record_id!r}")
    return id15 + suffix


def to15(record_id: str) -> str:
    """The 15-char, case-sensitive form of a 15- or 18-char id."""
    return to18(record_id)[:15]


def is_valid_id(record_id: str) -> bool:
    """True when ``record_id`` is a well-formed 15- or 18-char id."""
    try:
        to18(record_id)
    except ValueError:
        return False
    return True


def make_id(key_prefix: str, pod: str, sequence: int) -> str:
    """The 18-char id of record number ``sequence`` of the object with ``key_prefix``.

    Real ids carry an instance marker after the prefix and an opaque counter; the sandbox uses a
    two-character pod marker and a base-62 counter so ids sort in creation order per object.
    """
    if len(key_prefix) != 3 or len(pod) != 2:
        raise ValueError("key prefix must be 3 characters and pod 2")
    digits = []
    value = sequence
    for _ in range(10):
        value, rem = divmod(value, 62)
        digits.append(_BASE62[rem])
    if value:
        raise ValueError("id sequence exhausted")
    return to18(key_prefix + pod + "".join(reversed(digits)))
