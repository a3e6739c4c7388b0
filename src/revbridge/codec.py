"""Decoding and encoding canonical events at the edge, where untrusted JSON comes in.

Pydantic validates the JSON into the core's frozen dataclasses (the core knows nothing of
pydantic). JSON numbers are parsed as ``Decimal`` from their text (``parse_float=Decimal``),
so an amount never passes through a binary float. The stored payload is the canonical JSON
of the validated record: amounts at the currency's scale, as strings; dates in ISO 8601.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Annotated, Any, Literal, Union

import jiter
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

from revbridge.core.events import SPECS, Event, EventData, EventType
from revbridge.errors import DomainError, InvalidMoney, UnbalancedJournal


class _EnvelopeBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Annotated[str, Field(min_length=1, max_length=64)]
    source_id: Annotated[str, Field(min_length=1, max_length=255)]
    source_version: Annotated[str, Field(min_length=1, max_length=255)]
    occurred_at: datetime
    idempotency_key: Annotated[str | None, Field(min_length=1, max_length=512)] = None


def _model_name(event_type: EventType) -> str:
    return "".join(part.capitalize() for part in event_type.value.replace(".", "_").split("_"))


@cache
def envelope_models() -> dict[EventType, type[_EnvelopeBase]]:
    models: dict[EventType, type[_EnvelopeBase]] = {}
    for event_type, spec in SPECS.items():
        models[event_type] = create_model(
            f"{_model_name(event_type)}Envelope",
            __base__=_EnvelopeBase,
            __doc__=f"`{event_type.value}`: {spec.summary}",
            type=(Literal[event_type.value], ...),  # type: ignore[arg-type]
            data=(spec.payload, ...),
        )
    return models


@cache
def _envelope_adapter() -> TypeAdapter[Any]:
    union = Union[tuple(envelope_models().values())]  # type: ignore[valid-type]  # noqa: UP007
    return TypeAdapter(Annotated[union, Field(discriminator="type")])  # type: ignore[arg-type]


@cache
def _payload_adapter(event_type: EventType) -> TypeAdapter[Any]:
    return TypeAdapter(SPECS[event_type].payload)


def json_schema(event_type: EventType) -> dict[str, Any]:
    """The JSON Schema of one event type's envelope."""
    schema = envelope_models()[event_type].model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a line is not a canonical event: a machine code, a human reason, the event type."""

    code: str
    reason: str
    event_type: str | None = None


class DecodeError(DomainError):
    def __init__(self, rejection: Rejection) -> None:
        self.rejection = rejection
        super().__init__(rejection.reason)


def _code_for(exc: BaseException | None) -> str:
    if isinstance(exc, UnbalancedJournal):
        return "unbalanced_journal"
    if isinstance(exc, InvalidMoney):
        return "invalid_money"
    return "schema_violation"


_FIELD_PATH = re.compile(r"^[a-z_]+(\[\d+\])?(\.[a-z_]+(\[\d+\])?)*(/[a-z_]+)?: ")


def _describe(err: Any, tag: str | None) -> tuple[str, str]:
    loc = list(err["loc"])
    if tag is not None and loc and loc[0] == tag:
        loc = loc[1:]
    where = ""
    for part in loc:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    cause = err.get("ctx", {}).get("error")
    msg = str(cause) if isinstance(cause, BaseException) else err["msg"]
    if err["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        msg = "unknown field"
    elif err["type"] == "missing":
        msg = "required field is missing"
    if where and isinstance(cause, DomainError) and _FIELD_PATH.match(msg):
        return _code_for(cause), f"{where}.{msg}"  # the rule's message names the field
    return _code_for(cause if isinstance(cause, BaseException) else None), (
        f"{where}: {msg}" if where else msg
    )


def _check_tag(tag: str | None) -> None:
    if tag is not None and tag not in _TYPES:
        known = ", ".join(t.value for t in EventType)
        raise DecodeError(
            Rejection("schema_violation", f"type: unknown event type {tag!r}; known: {known}", tag)
        )


def _validation_error(exc: ValidationError, tag: str | None) -> DecodeError:
    errors = exc.errors()
    code, first = _describe(errors[0], tag)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return DecodeError(Rejection(code, first + more, tag))


def decode_obj(obj: Any) -> Event:
    """Validate a parsed JSON envelope into an ``Event``, or raise ``DecodeError``."""
    tag = obj.get("type") if isinstance(obj, dict) else None
    tag = tag if isinstance(tag, str) else None
    _check_tag(tag)
    try:
        env = _envelope_adapter().validate_python(obj)
    except ValidationError as exc:
        raise _validation_error(exc, tag) from exc
    return _to_event(env, tag)


def _to_event(env: Any, tag: str | None) -> Event:
    try:
        return Event(
            type=EventType(env.type),
            source=env.source,
            source_id=env.source_id,
            source_version=env.source_version,
            occurred_at=env.occurred_at,
            idempotency_key=env.idempotency_key or "",
            data=env.data,
        )
    except DomainError as exc:
        raise DecodeError(Rejection(_code_for(exc), str(exc), tag)) from exc


def decode_line(line: str | bytes) -> Event:
    """Parse one JSON Lines envelope into an ``Event``, or raise ``DecodeError``.

    jiter parses JSON numbers with a fraction or exponent straight into ``Decimal`` from their
    text, so no amount ever passes through a binary float.
    """
    try:
        obj = jiter.from_json(
            line.encode() if isinstance(line, str) else line, float_mode="decimal"
        )
    except ValueError as exc:
        raise DecodeError(Rejection("invalid_json", f"invalid JSON: {exc}")) from exc
    if not isinstance(obj, dict):
        raise DecodeError(Rejection("schema_violation", "an envelope must be a JSON object"))
    return decode_obj(obj)


_TYPES = frozenset(t.value for t in EventType)


def encode_payload(event_type: EventType, data: EventData) -> str:
    """The canonical JSON of a payload: what the ledger stores and hashes."""
    return _payload_adapter(event_type).dump_json(data).decode()


def decode_payload(event_type: EventType, payload: str | bytes) -> EventData:
    """Rebuild a payload record from the ledger's canonical JSON."""
    return _payload_adapter(event_type).validate_json(payload)  # type: ignore[no-any-return]


def payload_hash(event: Event, payload: str) -> str:
    """What "the same payload" means for idempotency: everything but the key and receipt time."""
    parts = (
        event.type.value,
        event.source,
        event.source_id,
        event.source_version,
        event.occurred_at.isoformat(),
        payload,
    )
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def envelope_head(event: Event) -> dict[str, Any]:
    """The envelope of an event without its ``data``."""
    return {
        "type": event.type.value,
        "source": event.source,
        "source_id": event.source_id,
        "source_version": event.source_version,
        "occurred_at": event.occurred_at.isoformat(),
        "idempotency_key": event.idempotency_key,
    }


def encode_envelope(event: Event) -> dict[str, Any]:
    """The JSON envelope of an event (amounts as strings), as ``ingest`` reads it."""
    return envelope_head(event) | {
        "data": _payload_adapter(event.type).dump_python(event.data, mode="json")
    }
