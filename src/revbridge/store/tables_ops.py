"""The operations edge's tables (the HTTP API and console), registered on ``metadata``.

- ``api_tokens``: bearer tokens for the ops API and the console login. Only a SHA-256 hash
  of each token is kept (the token is printed once, at creation); a token has a role
  (viewer, operator, admin), a name for the audit log, and may be revoked (never deleted,
  so the audit log's actor names stay meaningful).
- ``webhook_nonces``: the signatures of accepted signed webhooks, kept until they fall out
  of the timestamp tolerance, so a captured request replayed within the window is refused.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, String, Table

from revbridge.store.schema import Id, UTCDateTime, metadata

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("created_by", String(255), nullable=False),
    Column("last_used_at", UTCDateTime()),
    Column("revoked_at", UTCDateTime()),
)

webhook_nonces = Table(
    "webhook_nonces",
    metadata,
    Column("signature", String(128), primary_key=True),
    Column("endpoint", String(64), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Index(None, "expires_at"),
)
