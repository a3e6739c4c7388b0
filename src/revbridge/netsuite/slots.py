"""Concurrency slots: never more NetSuite requests in flight than the account allows.

NetSuite governs an account by *concurrency* (requests being processed at once, shared by
every integration), not by a daily quota; one request over the limit is a 429. Two layers
keep the connector under its share:

* ``LocalSlots``: an ``asyncio.Semaphore`` per event loop, so the coroutines of one process
  queue up in memory instead of hammering the account.
* ``PgAdvisorySlots``: when the hub runs several worker processes on PostgreSQL, each
  request also holds one of N *session advisory locks* (``pg_try_advisory_lock(key, slot)``
  for ``slot`` in ``0..N-1``) on a dedicated connection for the length of the request.

Why advisory locks rather than a slots table with ``SELECT ... FOR UPDATE SKIP LOCKED``:
both hold a connection per in-flight request, but advisory locks need no table, no
migration and no open transaction (no idle-in-transaction sessions, no vacuum pressure);
they vanish when a crashed process's session ends, so a dead worker can never leak a slot;
and the probe is a single non-blocking call. The lock is released explicitly before the
connection returns to the pool; if that release fails the connection is invalidated, which
ends the session and with it the lock.

A process waits for a slot with short jittered sleeps, up to ``wait``; after that the
request is refused locally as ``RateLimited`` (nothing was sent, so it is safe to retry).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from typing import Protocol

from sqlalchemy import Connection, Engine, text

from revbridge.errors import RateLimited

_TRY_LOCK = text("SELECT pg_try_advisory_lock(:key, :slot)")
_UNLOCK = text("SELECT pg_advisory_unlock(:key, :slot)")


class Slots(Protocol):
    """Something that admits a bounded number of concurrent holders."""

    def hold(self) -> AbstractAsyncContextManager[None]: ...


class LocalSlots:
    """An ``asyncio.Semaphore`` of ``limit``, re-created for each event loop it is used on."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._loop: asyncio.AbstractEventLoop | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self.in_use = 0
        self.peak = 0

    def _current(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._semaphore is None or self._loop is not loop:
            # A semaphore belongs to one loop; ``asyncio.run`` per batch gives a new loop.
            self._loop, self._semaphore = loop, asyncio.Semaphore(self.limit)
        return self._semaphore

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        async with self._current():
            self.in_use += 1
            self.peak = max(self.peak, self.in_use)
            try:
                yield
            finally:
                self.in_use -= 1


def advisory_key(account_id: str) -> int:
    """A stable signed 32-bit lock class for an account (the first argument of the lock)."""
    digest = hashlib.sha256(f"revbridge:netsuite:{account_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big", signed=True)


class PgAdvisorySlots:
    """``limit`` PostgreSQL session advisory locks shared by every process of the hub."""

    def __init__(
        self,
        engine: Engine,
        *,
        account_id: str,
        limit: int,
        wait: timedelta = timedelta(seconds=120),
        poll: timedelta = timedelta(milliseconds=25),
    ) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("PgAdvisorySlots needs a PostgreSQL engine")
        self.engine = engine
        self.key = advisory_key(account_id)
        self.limit = limit
        self.wait = wait
        self.poll = poll
        self._rng = random.Random()  # noqa: S311 - jitter, not security

    def _try_acquire(self) -> tuple[Connection, int] | None:
        conn = self.engine.connect()
        try:
            start = self._rng.randrange(self.limit)
            for i in range(self.limit):
                slot = (start + i) % self.limit
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
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait.total_seconds()
        base = self.poll.total_seconds()
        while True:
            got = await asyncio.to_thread(self._try_acquire)
            if got is not None:
                break
            if loop.time() >= deadline:
                raise RateLimited(
                    f"no NetSuite concurrency slot free among {self.limit} within "
                    f"{self.wait.total_seconds():g}s (held by other hub processes)",
                    retry_after=timedelta(seconds=1),
                )
            await asyncio.sleep(base + self._rng.random() * base)
        conn, slot = got
        try:
            yield
        finally:
            await asyncio.to_thread(self._release, conn, slot)
