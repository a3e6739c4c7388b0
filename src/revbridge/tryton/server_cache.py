"""trytond's cache, taught to forget everything when revbridge resets the database under it.

This module runs **inside the trytond server process** (``[cache] class`` in the generated
configuration points here); the hub never imports it, since it imports trytond.

Why: ``TrytonInstance.reset`` swaps the database's content under a running server, to keep a
reset at milliseconds instead of a 2 s restart. trytond's in-memory caches (rules, access,
periods, preferences, ...) would then describe the old content. trytond's own answer is to
re-read ``ir_cache`` every ``[cache] clean_timeout`` seconds, but on SQLite that check runs
on the transaction's own connection with ``autocommit=True``, which commits the transaction's
earlier statements and leaves it in autocommit mode: a later error can no longer be rolled
back (seen with trytond 8.2.1: a failed post stayed half-applied). So the timeout stays at its
default, and this class instead compares a stamp file that ``reset`` rewrites, at the start
of every transaction (one small file read), and drops every cache when it changed.
"""

from __future__ import annotations

import os
from typing import Any

from trytond.cache import MemoryCache
from trytond.config import config

STAMP_SUFFIX = ".reset-stamp"


def stamp_path(db_dir: str, database: str) -> str:
    """Where ``reset`` writes the stamp of ``database`` (shared with the hub side)."""
    return os.path.join(db_dir, database + STAMP_SUFFIX)


class ResettableCache(MemoryCache):  # type: ignore[misc]  # trytond ships no type hints
    """A ``MemoryCache`` that is cleared for a database whenever its reset stamp changes."""

    _stamps: dict[str, str] = {}  # noqa: RUF012 - per-process state, shared on purpose

    @classmethod
    def sync(cls, transaction: Any) -> None:
        dbname = transaction.database.name
        try:
            with open(stamp_path(config.get("database", "path"), dbname), encoding="utf-8") as f:
                stamp = f.read()
        except OSError:
            stamp = ""
        seen = cls._stamps.get(dbname)
        if seen != stamp:
            cls._stamps[dbname] = stamp
            if seen is not None:
                cls._clear_all(dbname)
        super().sync(transaction)
