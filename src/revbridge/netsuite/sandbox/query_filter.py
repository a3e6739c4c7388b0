"""The ``q`` filter of record collection GETs, e.g. ``q=companyName START_WITH "Ac"``.

Grammar (a subset of NetSuite's): ``condition ((AND | OR) condition)*`` with AND binding
tighter than OR; ``condition = field OPERATOR [value]``. Values are "double-quoted" strings,
numbers, ``true``/``false``, or comma-separated ids for ``ANY_OF``. Reference fields compare
on their internal id. Operators:

    IS IS_NOT START_WITH END_WITH CONTAIN DOES_NOT_CONTAIN       text and booleans
    EQUAL NOT_EQUAL GREATER GREATER_OR_EQUAL LESS LESS_OR_EQUAL  numbers
    ON BEFORE AFTER ON_OR_BEFORE ON_OR_AFTER                     dates (YYYY-MM-DD or M/D/YYYY)
    ANY_OF NONE_OF                                               reference ids
    EMPTY EMPTY_NOT                                              no value
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from revbridge.netsuite.sandbox.errors import bad_request

Predicate = Callable[[dict[str, Any]], bool]
_TOKEN = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|([^\s"]+))')
_NO_VALUE = {"EMPTY", "EMPTY_NOT"}
_US_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")


def _fail(why: str) -> Exception:
    return bad_request("INVALID_PARAMETER", f"Invalid query filter: {why}.", query_param="q")


def _tokens(text: str) -> list[tuple[str, bool]]:
    out: list[tuple[str, bool]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None:
            raise _fail(f"cannot read {text[pos:]!r}")
        quoted, bare = match.group(1), match.group(2)
        out.append((quoted.replace('\\"', '"'), True) if quoted is not None else (bare, False))
        pos = match.end()
    return out


def _scalar(value: Any) -> Any:
    if isinstance(value, dict):
        return value.get("id")
    return value


def _date(text: str) -> date:
    match = _US_DATE.match(text)
    try:
        if match:
            return date(int(match.group(3)), int(match.group(1)), int(match.group(2)))
        return date.fromisoformat(text[:10])
    except ValueError:
        raise _fail(f"{text!r} is not a date") from None


def _number(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise _fail(f"{value!r} is not a number") from None


def _condition(field: str, op: str, raw: str | None) -> Predicate:
    def get(record: dict[str, Any]) -> Any:
        return _scalar(record.get(field))

    value = raw or ""
    text_ops: dict[str, Callable[[str, str], bool]] = {
        "IS": lambda a, b: a == b,
        "IS_NOT": lambda a, b: a != b,
        "START_WITH": lambda a, b: a.lower().startswith(b.lower()),
        "END_WITH": lambda a, b: a.lower().endswith(b.lower()),
        "CONTAIN": lambda a, b: b.lower() in a.lower(),
        "DOES_NOT_CONTAIN": lambda a, b: b.lower() not in a.lower(),
    }
    if op in text_ops:
        compare = text_ops[op]

        def text_test(record: dict[str, Any]) -> bool:
            current = get(record)
            as_text = (
                str(current).lower()
                if isinstance(current, bool)
                else ("" if current is None else str(current))
            )
            return compare(as_text, value.lower() if value.lower() in ("true", "false") else value)

        return text_test
    number_ops: dict[str, Callable[[Decimal, Decimal], bool]] = {
        "EQUAL": lambda a, b: a == b,
        "NOT_EQUAL": lambda a, b: a != b,
        "GREATER": lambda a, b: a > b,
        "GREATER_OR_EQUAL": lambda a, b: a >= b,
        "LESS": lambda a, b: a < b,
        "LESS_OR_EQUAL": lambda a, b: a <= b,
    }
    if op in number_ops:
        compare_n, bound = number_ops[op], _number(value)
        return lambda r: get(r) is not None and compare_n(_number(get(r)), bound)
    date_ops: dict[str, Callable[[date, date], bool]] = {
        "ON": lambda a, b: a == b,
        "BEFORE": lambda a, b: a < b,
        "AFTER": lambda a, b: a > b,
        "ON_OR_BEFORE": lambda a, b: a <= b,
        "ON_OR_AFTER": lambda a, b: a >= b,
    }
    if op in date_ops:
        compare_d, day = date_ops[op], _date(value)
        return lambda r: get(r) is not None and compare_d(_date(str(get(r))), day)
    if op in ("ANY_OF", "NONE_OF"):
        ids = {v.strip() for v in value.split(",") if v.strip()}
        if op == "ANY_OF":
            return lambda r: str(get(r)) in ids
        return lambda r: str(get(r)) not in ids
    if op == "EMPTY":
        return lambda r: get(r) in (None, "")
    if op == "EMPTY_NOT":
        return lambda r: get(r) not in (None, "")
    raise _fail(f"unknown operator {op}")


def compile_filter(text: str) -> Predicate:
    """A predicate over a rendered record, or a 400 naming what could not be read."""
    tokens = _tokens(text)
    groups: list[list[Predicate]] = [[]]
    i = 0
    while i < len(tokens):
        if len(tokens) - i < 2:
            raise _fail("a condition needs a field and an operator")
        (field, _), (op_text, _) = tokens[i], tokens[i + 1]
        op = op_text.upper()
        i += 2
        raw: str | None = None
        if op not in _NO_VALUE:
            if i >= len(tokens):
                raise _fail(f"{op} needs a value")
            raw = tokens[i][0]
            i += 1
        groups[-1].append(_condition(field, op, raw))
        if i < len(tokens):
            joiner = tokens[i][0].upper()
            if joiner == "OR":
                groups.append([])
            elif joiner != "AND":
                raise _fail(f"expected AND or OR, found {tokens[i][0]!r}")
            i += 1
            if i >= len(tokens):
                raise _fail(f"nothing after {joiner}")
    if not groups[0]:
        raise _fail("empty filter")
    return lambda record: any(all(p(record) for p in group) for group in groups)
