"""Concurrency slots shared by every hub process through PostgreSQL advisory locks.

Each holder takes one of N *session advisory locks* (``pg_try_advisory_lock(key, slot)`` for
``slot`` in ``0..N-1``, ``key`` derived from the scope) on a dedicated connection for as long
as it holds the slot. In front of that, an in-process semaphore of N makes the coroutines of
one process queue in memory instead of polling the database.

Why advisory locks rather than a slots table with ``SELECT ... FOR UPDATE SKIP LOCKED``: both
hold a connection per holder, but advisory locks need no table and no open transaction (no
idle-in-transaction sessions, no vacuum pressure); they vanish when a crashed process's
session ends, so a dead worker can never leak a slot; and the probe is one non-blocking
call. The lock is released explicitly before the connection returns to the pool; if that
release fails the connection is invalidated, which ends the session and with it the lock.

A process waits for a slot with short jittered sleeps, up to ``wait``; after that the hold
is refused as ``RateLimited`` (nothing was sent, so it is safe to retry).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from sqlalchemy import Connection, Engine, text

from revbridge.engine.concurrency import LocalSlots, holds, mark_held
from revbridge.errors import RateLimited

_TRY_LOCK = text("SELECT pg_try_advisory_lock(:key, :slot)")
_UNLOCK = text("SELECT pg_advisory_unlock(:key, :slot)")


def advisory_key(scope: str) -> int:
    """A stable signed 32-bit lock class for a scope (the first argument of the lock)."""
    digest = hashlib.sha256(f"revbridge:slots:{scope}".encode()).digest()
    return int.from_bytes(digest[:4], "big", signed=True)


class PgAdvisorySlots:
    """``limit`` PostgreSQL session advisory locks shared by every process of the hub."""

    def __init__(
        self,
        engine: Engine,
        *,
        scope: str,
        limit: int,
        wait: timedelta = timedelta(seconds=120),
        poll: timedelta = timedelta(milliseconds=25),
    ) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("PgAdvisorySlots needs a PostgreSQL engine")
        self.engine = engine
        self.scope = scope
        self.key = advisory_key(scope)
        self._limit = limit
        self.local = LocalSlots(limit)
        self.wait = wait
        self.poll = poll
        self._rng = random.Random()  # noqa: S311 - jitter, not security

    @property
    def limit(self) -> int:
        return self._limit

    def _try_acquire(self) -> tuple[Connection, int] | None:
        conn = self.engine.connect()
        try:
            start = self._rng.randrange(self._limit)
            for i in range(self._limit):
                slot = (start + i) % self._limit
                if conn.execute(_TRY_LOCK, {"key": self.key, "slot": slot}).scalar_one():
                    conn.commit()  # end the implicit transaction; the session lock stays
                    return conn, slot
            conn.rollback()
        except BaseException:
            conn.invalidate()
            conn.close()
            raise
        conn.close()
        return None

    def _release(self, conn: Connection, slot: int) -> None:
        try:
            conn.execute(_UNLOCK, {"key": self.key, "slot": slot})
            conn.commit()
        except Exception:
            conn.invalidate()  # closing the session releases the lock for certain
        finally:
            conn.close()

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        if holds(self.scope):
            yield
            return
        async with self.local.hold():
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.wait.total_seconds()
            base = self.poll.total_seconds()
            while True:
                got = await asyncio.to_thread(self._try_acquire)
                if got is not None:
                    break
                if loop.time() >= deadline:
                    raise RateLimited(
                        f"no concurrency slot of {self.scope} free among {self._limit} within "
                        f"{self.wait.total_seconds():g}s (held by other hub processes)",
                        retry_after=timedelta(seconds=1),
                    )
                await asyncio.sleep(base + self._rng.random() * base)
            conn, slot = got
            try:
                with mark_held(self.scope):
                    yield
            finally:
                await asyncio.to_thread(self._release, conn, slot)
