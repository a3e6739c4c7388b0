"""Service functions: what the CLI and the HTTP API both call. No business rules live here."""

from __future__ import annotations

from revbridge.config import Settings
from revbridge.store.db import create_store_engine, ensure_schema
from revbridge.store.ledger import Ledger


def open_ledger(settings: Settings) -> Ledger:
    """Open (and, when allowed, migrate) the ledger the settings point at."""
    engine = create_store_engine(settings.store_url)
    ensure_schema(engine, auto_migrate=settings.auto_migrate)
    return Ledger(engine)
