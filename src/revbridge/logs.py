"""Logging set-up for the edges (CLI, server): structured, JSON when asked, quiet by default."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

# Keys whose values are personal data or secrets: never written to a log.
REDACTED_KEYS = frozenset(
    {
        "name",
        "email",
        "phone",
        "address",
        "billing_address",
        "shipping_address",
        "line1",
        "line2",
        "postal_code",
        "contacts",
        "tax_id",
        "token",
        "password",
        "secret",
        "authorization",
        "cookie",
    }
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: "[redacted]" if k.lower() in REDACTED_KEYS else _scrub(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    if isinstance(value, str):
        return _EMAIL.sub("[email]", value)
    return value


def redact_personal_data(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: personal data and secrets out, event ids and codes kept."""
    for key in list(event_dict):
        if key.lower() in REDACTED_KEYS:
            event_dict[key] = "[redacted]"
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


def _stderr_logger(*_args: object) -> structlog.PrintLogger:
    """A logger on the ``sys.stderr`` of the moment it logs, not of the moment logging was
    configured: a stream swapped in for a while (a test's capture, a redirect) and closed
    since must not make every later log line fail."""
    return structlog.PrintLogger(file=sys.stderr)


def configure(level: str = "WARNING", *, json_logs: bool = False) -> None:
    """Configure structlog once; the core and the engine only ever get loggers."""
    processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_personal_data,
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json_logs
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
