"""Transport-neutral request and response values, so composite subrequests run through exactly
the same handlers as top-level HTTP requests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiRequest:
    """A request under ``/services/data/v{version}/``; ``path`` has no leading or trailing slash."""

    method: str
    version: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(slots=True, kw_only=True)
class ApiResponse:
    """``json`` is rendered as JSON; ``text`` is sent as is with ``content_type``."""

    status: int
    json: Any = None
    text: str | None = None
    content_type: str = "application/json;charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)
