"""A SOQL subset: tokenizer, recursive-descent parser and an evaluator over the org's records.

Supported::

    query      := SELECT select FROM name [WHERE cond] [ORDER BY order ("," order)*]
                  [LIMIT int] [OFFSET int]
    select     := "COUNT()" | path ("," path)*            path := name ("." name)*
    cond       := and_cond (OR and_cond)*
    and_cond   := not_cond (AND not_cond)*
    not_cond   := NOT not_cond | "(" cond ")" | predicate
    predicate  := path op value | path [NOT] IN "(" value ("," value)* ")"
                | path LIKE string | [NOT] path LIKE string
    op         := "=" | "!=" | "<>" | "<" | "<=" | ">" | ">="
    value      := string | number | TRUE | FALSE | NULL | date | datetime | date_function
    order      := path [ASC | DESC] [NULLS (FIRST | LAST)]

Date functions: TODAY, YESTERDAY, TOMORROW, THIS_WEEK, LAST_WEEK, NEXT_WEEK, THIS_MONTH,
LAST_MONTH, NEXT_MONTH, THIS_QUARTER, THIS_YEAR, LAST_YEAR, NEXT_YEAR, LAST_90_DAYS, NEXT_90_DAYS,
LAST_N_DAYS:n, NEXT_N_DAYS:n, N_DAYS_AGO:n, LAST_N_MONTHS:n, NEXT_N_MONTHS:n. The sandbox's time
zone is UTC. Values are type-checked against the field as Salesforce does: a date field takes an
unquoted date, a text field a quoted string.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from revbridge.salesforce.sandbox.errors import SalesforceError, fail
from revbridge.salesforce.sandbox.ids import to18
from revbridge.salesforce.sandbox.schema import NUMERIC_TYPES, TEXT_TYPES, FieldDef, ObjectDef
from revbridge.salesforce.sandbox.values import Record, Value, format_datetime, parse_datetime

# -- tokens --------------------------------------------------------------------------------------

TokenKind = Literal["ident", "string", "number", "date", "datetime", "op", "punct", "end"]

KEYWORDS = frozenset(
    [
        "SELECT",
        "FROM",
        "WHERE",
        "AND",
        "OR",
        "NOT",
        "IN",
        "LIKE",
        "NULL",
        "TRUE",
        "FALSE",
        "ORDER",
        "BY",
        "ASC",
        "DESC",
        "NULLS",
        "FIRST",
        "LAST",
        "LIMIT",
        "OFFSET",
    ]
)


@dataclass(frozen=True, slots=True)
class Token:
    kind: TokenKind
    text: str
    position: int


def malformed(message: str) -> SalesforceError:
    return fail(400, "MALFORMED_QUERY", message)


def _scan_digits(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isdigit():
        pos += 1
    return pos


def _scan_temporal(text: str, start: int) -> tuple[TokenKind, int] | None:
    """A ``YYYY-MM-DD`` date or ``YYYY-MM-DDThh:mm:ss[.fff](Z|±hh:mm)`` datetime at ``start``."""
    pos = start
    for width, sep in ((4, "-"), (2, "-"), (2, "")):
        end = _scan_digits(text, pos)
        if end - pos != width:
            return None
        pos = end
        if sep:
            if pos >= len(text) or text[pos] != sep:
                return None
            pos += 1
    if pos >= len(text) or text[pos] != "T":
        return "date", pos
    pos += 1
    for width, sep in ((2, ":"), (2, ":"), (2, "")):
        end = _scan_digits(text, pos)
        if end - pos != width:
            raise malformed(f"line 1:{start} bad datetime literal")
        pos = end
        if sep:
            if pos >= len(text) or text[pos] != sep:
                raise malformed(f"line 1:{start} bad datetime literal")
            pos += 1
    if pos < len(text) and text[pos] == ".":
        pos = _scan_digits(text, pos + 1)
    if pos < len(text) and text[pos] == "Z":
        return "datetime", pos + 1
    if pos < len(text) and text[pos] in "+-":
        end = _scan_digits(text, pos + 1)
        if end - pos - 1 == 2 and end < len(text) and text[end] == ":":
            end2 = _scan_digits(text, end + 1)
            if end2 - end - 1 == 2:
                return "datetime", end2
        if end - pos - 1 == 4:
            return "datetime", end
    raise malformed(f"line 1:{start} datetime literal needs a time zone (Z or +hh:mm)")


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        ch = text[pos]
        if ch.isspace():
            pos += 1
            continue
        if ch == "'":
            out: list[str] = []
            pos += 1
            while True:
                if pos >= len(text):
                    raise malformed("unterminated string literal")
                c = text[pos]
                if c == "\\":
                    if pos + 1 >= len(text):
                        raise malformed("unterminated string literal")
                    escaped = text[pos + 1]
                    out.append({"n": "\n", "t": "\t", "r": "\r"}.get(escaped, escaped))
                    pos += 2
                    continue
                if c == "'":
                    pos += 1
                    break
                out.append(c)
                pos += 1
            tokens.append(Token("string", "".join(out), pos))
            continue
        if ch.isdigit():
            temporal = _scan_temporal(text, pos)
            if temporal is not None:
                kind, end = temporal
                tokens.append(Token(kind, text[pos:end], pos))
                pos = end
                continue
        if ch.isdigit() or (ch in "-+." and pos + 1 < len(text) and text[pos + 1].isdigit()):
            end = _scan_digits(text, pos + 1)
            if end < len(text) and text[end] == ".":
                end = _scan_digits(text, end + 1)
            tokens.append(Token("number", text[pos:end], pos))
            pos = end
            continue
        if ch.isalpha() or ch == "_":
            end = pos
            while end < len(text) and (text[end].isalnum() or text[end] in "_."):
                end += 1
            tokens.append(Token("ident", text[pos:end], pos))
            pos = end
            continue
        two = text[pos : pos + 2]
        if two in ("!=", "<>", "<=", ">="):
            tokens.append(Token("op", "!=" if two == "<>" else two, pos))
            pos += 2
            continue
        if ch in "=<>":
            tokens.append(Token("op", ch, pos))
            pos += 1
            continue
        if ch in "(),:":
            tokens.append(Token("punct", ch, pos))
            pos += 1
            continue
        raise malformed(f"line 1:{pos} no viable alternative at character '{ch}'")
    tokens.append(Token("end", "", len(text)))
    return tokens


# -- syntax tree ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Path:
    parts: tuple[str, ...]

    @property
    def text(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True, slots=True)
class Literal_:
    kind: Literal["string", "number", "true", "false", "null", "date", "datetime", "function"]
    text: str
    argument: int | None = None


@dataclass(frozen=True, slots=True)
class Compare:
    path: Path
    op: str
    value: Literal_


@dataclass(frozen=True, slots=True)
class InList:
    path: Path
    values: tuple[Literal_, ...]
    negated: bool


@dataclass(frozen=True, slots=True)
class Like:
    path: Path
    pattern: str


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: Literal["AND", "OR"]
    items: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Condition


Condition = Compare | InList | Like | BoolOp | Not


@dataclass(frozen=True, slots=True)
class OrderItem:
    path: Path
    descending: bool
    nulls_last: bool


@dataclass(frozen=True, slots=True)
class Query:
    fields: tuple[Path, ...]
    count_only: bool
    sobject: str
    where: Condition | None
    order_by: tuple[OrderItem, ...]
    limit: int | None
    offset: int | None


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.pos = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.pos]

    def _unexpected(self) -> SalesforceError:
        token = self.current
        shown = "<EOF>" if token.kind == "end" else token.text
        return malformed(f"line 1:{token.position} unexpected token: '{shown}'")

    def keyword(self, word: str) -> bool:
        token = self.current
        if token.kind == "ident" and token.text.upper() == word:
            self.pos += 1
            return True
        return False

    def expect_keyword(self, word: str) -> None:
        if not self.keyword(word):
            raise self._unexpected()

    def punct(self, ch: str) -> bool:
        if self.current.kind == "punct" and self.current.text == ch:
            self.pos += 1
            return True
        return False

    def expect_punct(self, ch: str) -> None:
        if not self.punct(ch):
            raise self._unexpected()

    def path(self) -> Path:
        token = self.current
        if token.kind != "ident" or token.text.upper() in KEYWORDS:
            raise self._unexpected()
        self.pos += 1
        parts = tuple(token.text.split("."))
        if any(not p for p in parts):
            raise malformed(f"line 1:{token.position} unexpected token: '{token.text}'")
        return Path(parts)

    def integer(self) -> int:
        token = self.current
        if token.kind != "number" or not token.text.isdigit():
            raise self._unexpected()
        self.pos += 1
        return int(token.text)

    def parse(self) -> Query:
        self.expect_keyword("SELECT")
        count_only = False
        fields: list[Path] = []
        if (
            self.current.kind == "ident"
            and self.current.text.upper() == "COUNT"
            and self.tokens[self.pos + 1].text == "("
        ):
            self.pos += 2
            self.expect_punct(")")
            count_only = True
        else:
            fields.append(self.path())
            while self.punct(","):
                fields.append(self.path())
        self.expect_keyword("FROM")
        sobject = self.path()
        if len(sobject.parts) != 1:
            raise self._unexpected()
        where = None
        if self.keyword("WHERE"):
            where = self.condition()
        order: list[OrderItem] = []
        if self.keyword("ORDER"):
            self.expect_keyword("BY")
            order.append(self.order_item())
            while self.punct(","):
                order.append(self.order_item())
        limit = self.integer() if self.keyword("LIMIT") else None
        offset = self.integer() if self.keyword("OFFSET") else None
        if self.current.kind != "end":
            raise self._unexpected()
        return Query(
            fields=tuple(fields),
            count_only=count_only,
            sobject=sobject.parts[0],
            where=where,
            order_by=tuple(order),
            limit=limit,
            offset=offset,
        )

    def order_item(self) -> OrderItem:
        path = self.path()
        descending = False
        if self.keyword("DESC"):
            descending = True
        else:
            self.keyword("ASC")
        nulls_last = descending
        if self.keyword("NULLS"):
            if self.keyword("LAST"):
                nulls_last = True
            else:
                self.expect_keyword("FIRST")
                nulls_last = False
        return OrderItem(path, descending, nulls_last)

    def condition(self) -> Condition:
        items = [self.and_condition()]
        while self.keyword("OR"):
            items.append(self.and_condition())
        return items[0] if len(items) == 1 else BoolOp("OR", tuple(items))

    def and_condition(self) -> Condition:
        items = [self.not_condition()]
        while self.keyword("AND"):
            items.append(self.not_condition())
        return items[0] if len(items) == 1 else BoolOp("AND", tuple(items))

    def not_condition(self) -> Condition:
        if self.keyword("NOT"):
            return Not(self.not_condition())
        if self.punct("("):
            inner = self.condition()
            self.expect_punct(")")
            return inner
        return self.predicate()

    def predicate(self) -> Condition:
        path = self.path()
        token = self.current
        if token.kind == "op":
            self.pos += 1
            return Compare(path, token.text, self.value())
        if self.keyword("LIKE"):
            pattern = self.value()
            if pattern.kind != "string":
                raise malformed("LIKE needs a quoted string pattern")
            return Like(path, pattern.text)
        negated = self.keyword("NOT")
        if self.keyword("IN"):
            self.expect_punct("(")
            values = [self.value()]
            while self.punct(","):
                values.append(self.value())
            self.expect_punct(")")
            return InList(path, tuple(values), negated)
        raise self._unexpected()

    def value(self) -> Literal_:
        token = self.current
        self.pos += 1
        if token.kind in ("string", "number", "date", "datetime"):
            return Literal_(token.kind, token.text)
        if token.kind == "ident":
            word = token.text.upper()
            if word in ("TRUE", "FALSE", "NULL"):
                return Literal_(word.lower(), token.text)  # type: ignore[arg-type]
            if word in _FIXED_RANGES:
                return Literal_("function", word)
            if word in _N_RANGES:
                self.expect_punct(":")
                return Literal_("function", word, self.integer())
            raise malformed(f"line 1:{token.position} unexpected token: '{token.text}'")
        self.pos -= 1
        raise self._unexpected()


def parse(text: str) -> Query:
    """The syntax tree of ``text``; raise ``MALFORMED_QUERY`` if it is not in the subset."""
    return _Parser(text).parse()


# -- date functions ------------------------------------------------------------------------------


def _month_start(day: date, shift: int) -> date:
    months = day.year * 12 + day.month - 1 + shift
    return date(months // 12, months % 12 + 1, 1)


def _fixed_range(word: str, today: date) -> tuple[date, date]:
    week = today - timedelta(days=(today.weekday() + 1) % 7)  # weeks start on Sunday
    quarter = _month_start(today, -((today.month - 1) % 3))
    match word:
        case "TODAY":
            return today, today + timedelta(days=1)
        case "YESTERDAY":
            return today - timedelta(days=1), today
        case "TOMORROW":
            return today + timedelta(days=1), today + timedelta(days=2)
        case "THIS_WEEK":
            return week, week + timedelta(days=7)
        case "LAST_WEEK":
            return week - timedelta(days=7), week
        case "NEXT_WEEK":
            return week + timedelta(days=7), week + timedelta(days=14)
        case "THIS_MONTH":
            return _month_start(today, 0), _month_start(today, 1)
        case "LAST_MONTH":
            return _month_start(today, -1), _month_start(today, 0)
        case "NEXT_MONTH":
            return _month_start(today, 1), _month_start(today, 2)
        case "THIS_QUARTER":
            return quarter, _month_start(quarter, 3)
        case "THIS_YEAR":
            return date(today.year, 1, 1), date(today.year + 1, 1, 1)
        case "LAST_YEAR":
            return date(today.year - 1, 1, 1), date(today.year, 1, 1)
        case "NEXT_YEAR":
            return date(today.year + 1, 1, 1), date(today.year + 2, 1, 1)
        case "LAST_90_DAYS":
            return today - timedelta(days=90), today + timedelta(days=1)
        case "NEXT_90_DAYS":
            return today + timedelta(days=1), today + timedelta(days=91)
    raise malformed(f"unknown date literal {word}")


def _n_range(word: str, n: int, today: date) -> tuple[date, date]:
    match word:
        case "LAST_N_DAYS":
            return today - timedelta(days=n), today + timedelta(days=1)
        case "NEXT_N_DAYS":
            return today + timedelta(days=1), today + timedelta(days=n + 1)
        case "N_DAYS_AGO":
            return today - timedelta(days=n), today - timedelta(days=n - 1)
        case "LAST_N_MONTHS":
            return _month_start(today, -n), _month_start(today, 0)
        case "NEXT_N_MONTHS":
            return _month_start(today, 1), _month_start(today, n + 1)
    raise malformed(f"unknown date literal {word}")


_FIXED_RANGES = frozenset(
    [
        "TODAY",
        "YESTERDAY",
        "TOMORROW",
        "THIS_WEEK",
        "LAST_WEEK",
        "NEXT_WEEK",
        "THIS_MONTH",
        "LAST_MONTH",
        "NEXT_MONTH",
        "THIS_QUARTER",
        "THIS_YEAR",
        "LAST_YEAR",
        "NEXT_YEAR",
        "LAST_90_DAYS",
        "NEXT_90_DAYS",
    ]
)
_N_RANGES = frozenset(
    ["LAST_N_DAYS", "NEXT_N_DAYS", "N_DAYS_AGO", "LAST_N_MONTHS", "NEXT_N_MONTHS"]
)


# -- compilation and evaluation ------------------------------------------------------------------

Loader = Callable[[str], tuple[ObjectDef, Record] | None]


@dataclass(frozen=True, slots=True)
class ResolvedPath:
    """A field path checked against the model: the relationships to follow and the final field."""

    path: Path
    hops: tuple[FieldDef, ...]
    field: FieldDef
    output_parts: tuple[str, ...]


def resolve_path(obj: ObjectDef, path: Path, objects: dict[str, ObjectDef]) -> ResolvedPath:
    current = obj
    hops: list[FieldDef] = []
    names: list[str] = []
    parts = path.parts
    # SOQL allows qualifying a field with the queried object's own name: Account.Name FROM Account.
    if (
        len(parts) > 1
        and parts[0].lower() == obj.name.lower()
        and obj.relationship(parts[0]) is None
    ):
        parts = parts[1:]
    for part in parts[:-1]:
        rel = current.relationship(part)
        if rel is None:
            raise fail(
                400,
                "INVALID_FIELD",
                f"Didn't understand relationship '{part}' in field path. If you are attempting to "
                "use a custom relationship, be sure to append the '__r' after the custom "
                "relationship name. Please reference your WSDL or the describe call for the "
                "appropriate names.",
            )
        hops.append(rel)
        names.append(rel.relationship_name or part)
        current = objects[rel.reference_to[0]]
    final = current.field(parts[-1])
    if final is None:
        raise fail(
            400,
            "INVALID_FIELD",
            f"No such column '{parts[-1]}' on entity '{current.name}'. If you are attempting to "
            "use a custom field, be sure to append the '__c' after the custom field name. Please "
            "reference your WSDL or the describe call for the appropriate names.",
        )
    return ResolvedPath(path, tuple(hops), final, (*names, final.name))


def _type_error(f: FieldDef, expected: str, quoted: bool) -> SalesforceError:
    quote = "should be enclosed in quotes" if quoted else "should not be enclosed in quotes"
    return fail(
        400,
        "INVALID_FIELD",
        f"value of filter criterion for field '{f.name}' must be of type {expected} and {quote}",
    )


Bound = tuple[Any, Any]  # (start inclusive, end exclusive); equal for a point in time


def _literal_bound(f: FieldDef, lit: Literal_, today: date) -> Bound | None:
    """The comparable form of ``lit`` for field ``f``, or None for NULL; check its type."""
    if lit.kind == "null":
        return None
    kind = f.type
    if kind in NUMERIC_TYPES:
        if lit.kind != "number":
            raise _type_error(f, "double", quoted=False)
        value = Decimal(lit.text)
        return value, value
    if kind == "boolean":
        if lit.kind not in ("true", "false"):
            raise _type_error(f, "boolean", quoted=False)
        return lit.kind == "true", lit.kind == "true"
    if kind in ("date", "datetime"):
        if lit.kind == "function":
            if lit.argument is None:
                start, end = _fixed_range(lit.text, today)
            else:
                start, end = _n_range(lit.text, lit.argument, today)
            if kind == "date":
                return start.isoformat(), end.isoformat()
            return (
                format_datetime(datetime.combine(start, datetime.min.time(), UTC)),
                format_datetime(datetime.combine(end, datetime.min.time(), UTC)),
            )
        if kind == "date":
            if lit.kind != "date":
                raise _type_error(f, "date", quoted=False)
            day = date.fromisoformat(lit.text)
            return day.isoformat(), (day + timedelta(days=1)).isoformat()
        if lit.kind != "datetime":
            raise _type_error(f, "dateTime", quoted=False)
        moment = format_datetime(parse_datetime(lit.text))
        return moment, moment
    if lit.kind != "string":
        raise _type_error(f, "string", quoted=True)
    if kind in ("id", "reference"):
        try:
            key = to18(lit.text)
        except ValueError:
            raise fail(
                400, "INVALID_QUERY_FILTER_OPERATOR", f"invalid ID field: {lit.text}"
            ) from None
        return key, key
    folded = lit.text.lower()
    return folded, folded


def _comparable(f: FieldDef, value: Value) -> Any:
    if isinstance(value, str) and f.type in TEXT_TYPES:
        return value.lower()
    return value


def _compare(op: str, value: Any, bound: Bound | None) -> bool:
    if bound is None:
        if op == "=":
            return value is None
        if op == "!=":
            return value is not None
        return False
    if value is None:
        return op == "!="
    start, end = bound
    point = start == end
    match op:
        case "=":
            return bool(value == start) if point else bool(start <= value < end)
        case "!=":
            return bool(value != start) if point else not (start <= value < end)
        case "<":
            return bool(value < start)
        case "<=":
            return bool(value <= start) if point else bool(value < end)
        case ">":
            return bool(value > start) if point else bool(value >= end)
        case ">=":
            return bool(value >= start)
    raise malformed(f"unknown operator {op}")


def _like(pattern: str, value: str) -> bool:
    """SQL LIKE with ``%`` and ``_``, case-insensitive, by dynamic programming (no regex)."""
    p = pattern.lower()
    s = value.lower()
    reachable = [True] + [False] * len(s)
    for ch in p:
        if ch == "%":
            seen = False
            for i in range(len(s) + 1):
                seen = seen or reachable[i]
                reachable[i] = seen
        else:
            nxt = [False] * (len(s) + 1)
            for i in range(len(s)):
                if reachable[i] and (ch == "_" or ch == s[i]):
                    nxt[i + 1] = True
            reachable = nxt
    return reachable[len(s)]


@dataclass(slots=True)
class _Evaluator:
    obj: ObjectDef
    objects: dict[str, ObjectDef]
    load: Loader
    today: date

    def resolve(self, path: Path) -> ResolvedPath:
        return resolve_path(self.obj, path, self.objects)

    def value_of(self, record: Record, resolved: ResolvedPath) -> Value:
        current: Record | None = record
        for hop in resolved.hops:
            if current is None:
                return None
            parent_id = current.get(hop.name)
            if parent_id is None:
                return None
            found = self.load(str(parent_id))
            current = None if found is None else found[1]
        return None if current is None else current.get(resolved.field.name)

    def compile(self, cond: Condition) -> Callable[[Record], bool]:
        match cond:
            case Compare(path=path, op=op, value=lit):
                resolved = self.resolve(path)
                f = resolved.field
                if f.type == "boolean" and op not in ("=", "!="):
                    raise malformed(f"invalid operator on boolean field: {op}")
                bound = _literal_bound(f, lit, self.today)
                return lambda r: _compare(op, _comparable(f, self.value_of(r, resolved)), bound)
            case InList(path=path, values=values, negated=negated):
                resolved = self.resolve(path)
                f = resolved.field
                bounds = [_literal_bound(f, lit, self.today) for lit in values]

                keys = _id_keys(f, bounds)
                if keys is not None and not negated:
                    # Ids compare exactly once normalized to 18 characters: a set lookup
                    # answers the same as comparing with each bound in turn.
                    return lambda r: self.value_of(r, resolved) in keys

                def in_list(r: Record) -> bool:
                    value = _comparable(f, self.value_of(r, resolved))
                    if value is None:
                        hit = any(b is None for b in bounds)
                    else:
                        hit = any(_compare("=", value, b) for b in bounds if b is not None)
                    return hit != negated

                return in_list
            case Like(path=path, pattern=pattern):
                resolved = self.resolve(path)
                if resolved.field.type not in TEXT_TYPES:
                    raise fail(
                        400,
                        "INVALID_FIELD",
                        f"invalid operator on field '{resolved.field.name}': LIKE needs text",
                    )

                def like(r: Record) -> bool:
                    value = self.value_of(r, resolved)
                    return isinstance(value, str) and _like(pattern, value)

                return like
            case BoolOp(op="AND", items=items):
                parts = [self.compile(i) for i in items]
                return lambda r: all(p(r) for p in parts)
            case BoolOp(op="OR", items=items):
                parts = [self.compile(i) for i in items]
                return lambda r: any(p(r) for p in parts)
            case Not(item=item):
                inner = self.compile(item)
                return lambda r: not inner(r)
        raise malformed("unsupported condition")


@dataclass(frozen=True, slots=True)
class QueryResult:
    """What a query found: the total and the output records (already shaped for the API)."""

    total_size: int
    records: list[dict[str, Any]]


def execute(
    text: str,
    *,
    objects: dict[str, ObjectDef],
    fetch_all: Callable[[ObjectDef], list[Record]],
    load: Loader,
    today: date,
    record_url: Callable[[ObjectDef, str], str],
    wire: Callable[[FieldDef, Value], Any],
    fetch_where: Callable[[ObjectDef, FieldDef, list[str]], list[Record]] | None = None,
) -> QueryResult:
    """Run ``text`` over the org and shape the result records as REST returns them.

    ``fetch_where(obj, field, ids)`` (optional) reads only the records whose id or reference
    ``field`` is one of ``ids``, in id order; with it, a WHERE that pins an id field (``Id IN
    (...)``, ``Parent__c = '...'``, alone or ANDed with other conditions) reads those records
    instead of the whole object. The full WHERE is still applied to them.
    """
    query = parse(text)
    obj = next((o for o in objects.values() if o.name.lower() == query.sobject.lower()), None)
    if obj is None:
        raise fail(
            400,
            "INVALID_TYPE",
            f"sObject type '{query.sobject}' is not supported. If you are attempting to use a "
            "custom object, be sure to append the '__c' after the entity name. Please reference "
            "your WSDL or the describe call for the appropriate names.",
        )
    evaluator = _Evaluator(obj, objects, load, today)
    selected = [evaluator.resolve(p) for p in query.fields]
    predicate = evaluator.compile(query.where) if query.where is not None else None
    ordering = [(evaluator.resolve(o.path), o) for o in query.order_by]
    narrowed = _narrowing(evaluator, query.where) if fetch_where is not None else None
    if narrowed is not None and fetch_where is not None:
        # Only records whose id (or parent id) is named can match: read those, not the table.
        candidates = fetch_where(obj, narrowed[0], narrowed[1])
    else:
        candidates = fetch_all(obj)
    rows = [r for r in candidates if predicate is None or predicate(r)]
    for resolved, item in reversed(ordering):
        present = [r for r in rows if evaluator.value_of(r, resolved) is not None]
        missing = [r for r in rows if evaluator.value_of(r, resolved) is None]
        present.sort(key=_sort_key(evaluator, resolved), reverse=item.descending)
        rows = present + missing if item.nulls_last else missing + present
    if query.offset:
        rows = rows[query.offset :]
    if query.limit is not None:
        rows = rows[: query.limit]
    if query.count_only:
        return QueryResult(total_size=len(rows), records=[])
    return QueryResult(
        total_size=len(rows),
        records=[_shape(obj, r, selected, evaluator, record_url, wire) for r in rows],
    )


def _id_keys(f: FieldDef, bounds: list[Bound | None]) -> frozenset[Any] | None:
    """The 18-character ids an IN list on an id field names; None when it is not that."""
    if f.type not in ("id", "reference") or any(b is None for b in bounds):
        return None
    return frozenset(b[0] for b in bounds if b is not None)


def _narrowing(evaluator: _Evaluator, where: Condition | None) -> tuple[FieldDef, list[str]] | None:
    """An id field of the queried object that ``where`` pins to a list of ids, if any."""
    match where:
        case InList(path=path, values=values, negated=False):
            pinned: tuple[Path, tuple[Literal_, ...]] | None = (path, values)
        case Compare(path=path, op="=", value=value):
            pinned = (path, (value,))
        case BoolOp(op="AND", items=items):
            for item in items:
                found = _narrowing(evaluator, item)
                if found is not None:
                    return found
            return None
        case _:
            return None
    if pinned is None:
        return None
    resolved = evaluator.resolve(pinned[0])
    if resolved.hops or resolved.field.type not in ("id", "reference"):
        return None
    bounds = [_literal_bound(resolved.field, lit, evaluator.today) for lit in pinned[1]]
    keys = _id_keys(resolved.field, bounds)
    return None if keys is None else (resolved.field, sorted(keys))


def _sort_key(evaluator: _Evaluator, resolved: ResolvedPath) -> Callable[[Record], Any]:
    def key(record: Record) -> Any:
        return _comparable(resolved.field, evaluator.value_of(record, resolved))

    return key


def _shape(
    obj: ObjectDef,
    record: Record,
    selected: list[ResolvedPath],
    evaluator: _Evaluator,
    record_url: Callable[[ObjectDef, str], str],
    wire: Callable[[FieldDef, Value], Any],
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "attributes": {"type": obj.name, "url": record_url(obj, str(record["Id"]))}
    }
    for resolved in selected:
        if not resolved.hops:
            out[resolved.field.name] = wire(resolved.field, record.get(resolved.field.name))
            continue
        target: dict[str, Any] = out
        current: Record | None = record
        current_obj = obj
        for depth, hop in enumerate(resolved.hops):
            name = resolved.output_parts[depth]
            parent_id = None if current is None else current.get(hop.name)
            found = None if parent_id is None else evaluator.load(str(parent_id))
            if found is None:
                target.setdefault(name, None)
                break
            current_obj, current = found
            nested = target.get(name)
            if not isinstance(nested, dict):
                nested = {
                    "attributes": {
                        "type": current_obj.name,
                        "url": record_url(current_obj, str(current["Id"])),
                    }
                }
                target[name] = nested
            target = nested
        else:
            assert current is not None
            target[resolved.field.name] = wire(resolved.field, current.get(resolved.field.name))
    return out
