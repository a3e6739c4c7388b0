"""Field values: coercion of what a client sends, storage encoding, and the JSON the API returns.

Inside the sandbox a value is ``str`` (text, ids, ``YYYY-MM-DD`` dates, normalised UTC datetimes),
``bool``, ``Decimal`` (every numeric type, so money is never a float while the org computes with
it) or ``None``. On the wire numbers become JSON numbers, as Salesforce sends them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from revbridge.salesforce.sandbox.errors import SalesforceError, fail
from revbridge.salesforce.sandbox.ids import to18
from revbridge.salesforce.sandbox.schema import NUMERIC_TYPES, FieldDef, ObjectDef

Value = str | bool | Decimal | None
Record = dict[str, Value]


def format_datetime(moment: datetime) -> str:
    """``2026-11-26T15:21:18.000+0000``: the form Salesforce returns, sortable as text."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def parse_datetime(text: str) -> datetime:
    """An ISO 8601 datetime; a missing offset means UTC, as Salesforce reads it."""
    cleaned = text.strip()
    if cleaned.endswith("Z"):
        cleaned = cleaned[:-1] + "+00:00"
    if len(cleaned) >= 5 and cleaned[-5] in "+-" and cleaned[-3] != ":" and "T" in cleaned:
        cleaned = cleaned[:-2] + ":" + cleaned[-2:]
    moment = datetime.fromisoformat(cleaned)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _deserialize_error(field: FieldDef, value: Any) -> SalesforceError:
    kind = {"date": "date", "datetime": "datetime", "boolean": "boolean"}.get(field.type, "double")
    token = "VALUE_STRING" if isinstance(value, str) else "VALUE_NUMBER"
    return fail(
        400,
        "JSON_PARSER_ERROR",
        f"Cannot deserialize instance of {kind} from {token} value {value} "
        "or request may be missing a required field",
        (field.name,),
    )


def coerce(obj: ObjectDef, field: FieldDef, value: Any) -> Value:
    """The stored form of ``value`` written to ``field``; raise the error Salesforce would."""
    if value is None:
        return False if field.type == "boolean" else None
    if field.type == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise _deserialize_error(field, value)
    if field.type in NUMERIC_TYPES:
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
            raise _deserialize_error(field, value)
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise _deserialize_error(field, value) from None
        if not number.is_finite():
            raise _deserialize_error(field, value)
        if field.type == "int" and number != number.to_integral_value():
            raise _deserialize_error(field, value)
        return number
    if field.type == "date":
        if not isinstance(value, str):
            raise _deserialize_error(field, value)
        try:
            return date.fromisoformat(value[:10]).isoformat()
        except ValueError:
            raise _deserialize_error(field, value) from None
    if field.type == "datetime":
        if not isinstance(value, str):
            raise _deserialize_error(field, value)
        try:
            return format_datetime(parse_datetime(value))
        except ValueError:
            raise _deserialize_error(field, value) from None
    if field.type in ("reference", "id"):
        if not isinstance(value, str):
            raise _malformed_id(obj, field, value)
        if value == "":
            return None
        try:
            return to18(value)
        except ValueError:
            raise _malformed_id(obj, field, value) from None
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal | float):
        raise fail(
            400,
            "JSON_PARSER_ERROR",
            f"Cannot deserialize instance of string from {type(value).__name__} value",
            (field.name,),
        )
    text = value if isinstance(value, str) else str(value)
    if text == "":
        return None
    if len(text) > field.length:
        raise fail(
            400,
            "STRING_TOO_LONG",
            f"{field.label or field.name}: data value too large: {text[:40]} "
            f"(max length={field.length})",
            (field.name,),
        )
    if field.type == "picklist" and field.restricted_picklist and text not in field.picklist:
        raise fail(
            400,
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            f"{field.label or field.name}: bad value for restricted picklist field: {text}",
            (field.name,),
        )
    return text


def _malformed_id(obj: ObjectDef, field: FieldDef, value: Any) -> SalesforceError:
    return fail(
        400,
        "MALFORMED_ID",
        f"{field.label or field.name}: id value of incorrect type: {value}",
        (field.name,),
    )


def to_wire(field: FieldDef, value: Value) -> Any:
    """The JSON value Salesforce returns for ``value``."""
    if isinstance(value, Decimal):
        if field.type == "int":
            return int(value)
        # JSON numbers are what Salesforce sends; a float repr of a 2-decimal amount is exact
        # enough that every client reads back the same decimal.
        return float(value)
    return value


def encode_record(record: Mapping[str, Value]) -> str:
    """The JSON stored in SQLite: decimals as strings so no precision is lost at rest."""
    return json.dumps(
        {k: (str(v) if isinstance(v, Decimal) else v) for k, v in record.items()},
        separators=(",", ":"),
    )


def decode_record(obj: ObjectDef, text: str) -> Record:
    raw: dict[str, Any] = json.loads(text)
    record: Record = {}
    for name, value in raw.items():
        field = obj.field(name)
        if field is not None and field.type in NUMERIC_TYPES and value is not None:
            record[name] = Decimal(str(value))
        else:
            record[name] = value
    return record


def json_default(value: Any) -> Any:
    """``json.dumps`` hook for anything the API returns outside a record (decimals in sums)."""
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
