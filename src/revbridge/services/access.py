"""Access to the ops edge: API tokens with roles, and signed webhook verification.

Tokens are random (``rb_`` + 32 url-safe bytes), shown once at creation, stored as a SHA-256
hash (a token is high-entropy, so a slow hash adds nothing). Roles are ordered: ``viewer``
reads, ``operator`` also replays dead letters, resolves cases and pauses a target, ``admin``
also changes configuration and mappings.

Signed webhooks carry ``X-Revbridge-Signature: t=<unix seconds>,v1=<hex>`` where the hex is
HMAC-SHA256 over ``"<t>.<raw body>"`` with the shared secret. A request is refused when the
timestamp is outside the tolerance, the signature does not match (compared in constant
time), or the same signature was already accepted (it is remembered until it expires).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum
from typing import Any

from sqlalchemy import Engine, delete, select, update
from sqlalchemy.exc import IntegrityError

from revbridge.config import Settings
from revbridge.core.timestamps import human_timestamp
from revbridge.errors import ConfigError, RevbridgeError
from revbridge.store.schema import audit_log
from revbridge.store.tables_ops import api_tokens, webhook_nonces

TOKEN_PREFIX = "rb_"  # noqa: S105 - a marker, not a secret
SIGNATURE_HEADER = "X-Revbridge-Signature"


class Role(IntEnum):
    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3

    @classmethod
    def parse(cls, name: str) -> Role:
        try:
            return cls[name.upper()]
        except KeyError:
            known = ", ".join(r.name.lower() for r in cls)
            raise RevbridgeError(f"unknown role {name!r}; known: {known}") from None

    @property
    def label(self) -> str:
        return self.name.lower()


class AccessDenied(RevbridgeError):
    """The token is missing, unknown, revoked, or its role is too low."""


class BadSignature(RevbridgeError):
    """A signed webhook whose signature, timestamp or nonce does not check out."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """Who is calling: the token's name (the audit log's actor) and its role."""

    name: str
    role: Role

    @property
    def actor(self) -> str:
        return f"token:{self.name}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(engine: Engine, *, name: str, role: Role, now: datetime, actor: str) -> str:
    """Make a token, store its hash, audit it; return the token (shown once, never stored)."""
    if not name.strip():
        raise RevbridgeError("a token needs a name (it is the actor in the audit log)")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        with engine.begin() as conn:
            conn.execute(
                api_tokens.insert().values(
                    name=name,
                    role=role.label,
                    token_hash=hash_token(token),
                    prefix=token[:10],
                    created_at=now,
                    created_by=actor,
                )
            )
            conn.execute(
                audit_log.insert().values(
                    at=now,
                    actor=actor,
                    action="token_create",
                    entity_type="api_token",
                    entity_id=name,
                    to_state=role.label,
                )
            )
    except IntegrityError as exc:
        with engine.connect() as conn:
            revoked = conn.execute(
                select(api_tokens.c.revoked_at).where(api_tokens.c.name == name)
            ).scalar()
        if revoked is None:
            raise RevbridgeError(f"a token named {name!r} already exists") from exc
        when = human_timestamp(revoked)
        raise RevbridgeError(
            f"a token named {name!r} was revoked on {when}; a name is never reused (it is "
            "the actor in the audit log, and that log must name one token): choose another "
            f"name, e.g. {name}-2"
        ) from exc
    return token


def list_tokens(engine: Engine) -> list[dict[str, Any]]:
    """Tokens without their secret: name, role, prefix, created, last used, revoked."""
    cols = [c for c in api_tokens.c if c.name != "token_hash"]
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(*cols).order_by(api_tokens.c.id))]


def revoke_token(engine: Engine, *, name: str, now: datetime, actor: str) -> None:
    with engine.begin() as conn:
        done = conn.execute(
            update(api_tokens)
            .where(api_tokens.c.name == name, api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=now)
        ).rowcount
        if not done:
            raise RevbridgeError(f"no active token named {name!r}")
        conn.execute(
            audit_log.insert().values(
                at=now,
                actor=actor,
                action="token_revoke",
                entity_type="api_token",
                entity_id=name,
                to_state="revoked",
            )
        )


def authenticate(engine: Engine, token: str, *, now: datetime) -> Principal:
    """The principal for a bearer token, or ``AccessDenied``."""
    if not token.startswith(TOKEN_PREFIX):
        raise AccessDenied("not a revbridge token")
    with engine.begin() as conn:
        row = conn.execute(
            select(api_tokens.c.id, api_tokens.c.name, api_tokens.c.role).where(
                api_tokens.c.token_hash == hash_token(token), api_tokens.c.revoked_at.is_(None)
            )
        ).first()
        if row is None:
            raise AccessDenied("unknown or revoked token")
        conn.execute(update(api_tokens).where(api_tokens.c.id == row.id).values(last_used_at=now))
    return Principal(name=row.name, role=Role.parse(row.role))


def require(principal: Principal, role: Role) -> None:
    if principal.role < role:
        raise AccessDenied(
            f"this needs the {role.label} role; {principal.name} is a {principal.role.label}"
        )


# --------------------------------------------------------------------------- webhooks


def webhook_secret(settings: Settings) -> bytes | None:
    """The shared secret, from ``security.webhook_secret_file`` or the environment variable."""
    sec = settings.raw.security
    if sec.webhook_secret_file:
        path = settings.path_in_base(sec.webhook_secret_file)
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(str(path), "security.webhook_secret_file", str(exc)) from exc
        return value.encode() or None
    value = os.environ.get(sec.webhook_secret_env, "")
    return value.encode() or None


def sign(secret: bytes, body: bytes, t: int) -> str:
    """The header value a sender puts on ``body`` at unix time ``t``."""
    mac = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify_signature(
    engine: Engine,
    *,
    secret: bytes,
    header: str | None,
    body: bytes,
    now: datetime,
    tolerance: timedelta,
    endpoint: str,
) -> None:
    """Check the signature and remember it; raise ``BadSignature`` saying what is wrong."""
    if not header:
        raise BadSignature(f"missing {SIGNATURE_HEADER} header")
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        t = int(parts["t"][0])
    except (KeyError, ValueError):
        raise BadSignature(f"{SIGNATURE_HEADER}: no t=<unix seconds>") from None
    if abs(now.timestamp() - t) > tolerance.total_seconds():
        raise BadSignature(
            f"{SIGNATURE_HEADER}: timestamp {t} is outside the {int(tolerance.total_seconds())} s"
            " tolerance (check the sender's clock)"
        )
    expected = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    given = parts.get("v1", [])
    match = next((v for v in given if hmac.compare_digest(v, expected)), None)
    if match is None:
        raise BadSignature(f"{SIGNATURE_HEADER}: no v1 signature matches the body")
    with engine.begin() as conn:
        conn.execute(delete(webhook_nonces).where(webhook_nonces.c.expires_at < now))
        try:
            with conn.begin_nested():
                conn.execute(
                    webhook_nonces.insert().values(
                        signature=match,
                        endpoint=endpoint,
                        expires_at=now + 2 * tolerance,
                    )
                )
        except IntegrityError:
            raise BadSignature("this signed request was already accepted (replay)") from None
