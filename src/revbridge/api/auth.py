"""Who is calling: bearer tokens for the API, a signed session cookie for the console.

The console login takes a token once and sets an HttpOnly, SameSite=Strict session cookie
(Secure unless ``server.secure_cookies = false``) holding the token's name, role, expiry and
a CSRF token, signed with HMAC-SHA256 under the process's session key. Every request
re-checks that the token was not revoked since. Console forms carry the CSRF token in a
hidden field; a POST without the matching value is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from sqlalchemy import select

from revbridge.services.access import AccessDenied, Principal, Role, authenticate, require
from revbridge.store.tables_ops import api_tokens

SESSION_COOKIE = "revbridge_session"


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    principal: Principal
    csrf: str
    expires: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_session(key: bytes, principal: Principal, ttl_s: int) -> tuple[str, str]:
    """The cookie value and its CSRF token."""
    csrf = secrets.token_urlsafe(24)
    body = json.dumps(
        {"n": principal.name, "r": principal.role.label, "c": csrf, "e": int(time.time()) + ttl_s}
    ).encode()
    mac = hmac.new(key, body, hashlib.sha256).digest()
    return f"{_b64(body)}.{_b64(mac)}", csrf


def decode_session(key: bytes, value: str) -> Session | None:
    try:
        body_text, mac_text = value.split(".", 1)
        body, mac = _unb64(body_text), _unb64(mac_text)
    except ValueError:
        return None
    if not hmac.compare_digest(mac, hmac.new(key, body, hashlib.sha256).digest()):
        return None
    data: dict[str, Any] = json.loads(body)
    if int(data["e"]) < time.time():
        return None
    return Session(
        principal=Principal(name=str(data["n"]), role=Role.parse(str(data["r"]))),
        csrf=str(data["c"]),
        expires=int(data["e"]),
    )


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AccessDenied("missing Authorization: Bearer <token>")
    return token.strip()


def api_principal(role: Role) -> Callable[[Request], Principal]:
    """A FastAPI dependency: the bearer token's principal, at least ``role``."""

    def dependency(request: Request) -> Principal:
        state = request.app.state
        principal = authenticate(state.ledger.engine, _bearer(request), now=state.clock.now())
        require(principal, role)
        return principal

    return dependency


def console_session(request: Request) -> Session | None:
    """The console session, if the cookie is valid and its token still active."""
    value = request.cookies.get(SESSION_COOKIE)
    if not value:
        return None
    session = decode_session(request.app.state.session_key, value)
    if session is None:
        return None
    with request.app.state.ledger.engine.connect() as conn:
        active = conn.execute(
            select(api_tokens.c.id).where(
                api_tokens.c.name == session.principal.name, api_tokens.c.revoked_at.is_(None)
            )
        ).first()
    return session if active else None
