"""Concurrency limits: never more calls in flight to a system than it allows.

Some systems govern *concurrency* (requests being processed at once) rather than, or as well
as, a rate: NetSuite's account-wide limit is the known one; a 429 follows one request over
it. An adapter declares its limit in ``Capabilities.concurrency_limit``; when it also names a
``concurrency_scope`` (the account the limit belongs to), the limit is shared by every
process of the hub that talks to that scope, not counted per process.

The port is ``Slots``: something that admits a bounded number of concurrent holders.

* ``LocalSlots``: an ``asyncio.Semaphore`` (one per event loop); the in-process limit, and
  all there is on SQLite (the embedded hub is one process by construction).
* ``revbridge.store.slots.PgAdvisorySlots``: on PostgreSQL, N session advisory locks shared
  by every process on every host (docs/decisions/0009).

``slots_for`` picks one and keeps one object per scope in a process, so the worker (which
holds a slot around each delivery) and the adapter (which holds one around each request, so
that capture and read-back calls count too) share it. A hold is *re-entrant per scope*
within a task: a request made inside a delivery that already holds the scope's slot does not
take a second one (that would count one call twice, and could deadlock at the limit).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from contextvars import ContextVar, Token
from datetime import timedelta
from typing import Protocol

from sqlalchemy import Engine

_HELD: ContextVar[frozenset[str]] = ContextVar("revbridge_slots_held", default=frozenset())


class Slots(Protocol):
    """Admits at most ``limit`` concurrent holders (across processes, for a shared one)."""

    @property
    def limit(self) -> int: ...

    def hold(self) -> AbstractAsyncContextManager[None]:
        """Wait for a slot and hold it for the block; raises ``RateLimited`` (nothing was
        sent, safe to retry) when none frees up in time."""
        ...


def holds(scope: str | None) -> bool:
    """Does the current task already hold a slot of ``scope``?"""
    return scope is not None and scope in _HELD.get()


@contextmanager
def mark_held(scope: str | None) -> Iterator[None]:
    """Mark ``scope`` as held by the current task for the block."""
    if scope is None:
        yield
        return
    token = _HELD.set(_HELD.get() | {scope})
    try:
        yield
    finally:
        _HELD.reset(token)


class LocalSlots:
    """An ``asyncio.Semaphore`` of ``limit``, re-created for each event loop it is used on."""

    def __init__(self, limit: int, *, scope: str | None = None) -> None:
        if limit < 1:
            raise ValueError("a concurrency limit is at least 1")
        self._limit = limit
        self.scope = scope
        self._loop: asyncio.AbstractEventLoop | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self.in_use = 0
        self.peak = 0

    @property
    def limit(self) -> int:
        return self._limit

    def _current(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._semaphore is None or self._loop is not loop:
            # A semaphore belongs to one loop; ``asyncio.run`` per batch gives a new loop.
            self._loop, self._semaphore = loop, asyncio.Semaphore(self._limit)
        return self._semaphore

    def hold(self) -> AbstractAsyncContextManager[None]:
        # A plain class, not a generator context manager: this is on every delivery's path,
        # and the generator machinery cost more than a zero-latency call.
        return _LocalHold(self)


class _LocalHold:
    __slots__ = ("_semaphore", "_slots", "_token")

    def __init__(self, slots: LocalSlots) -> None:
        self._slots = slots
        self._semaphore: asyncio.Semaphore | None = None
        self._token: Token[frozenset[str]] | None = None

    async def __aenter__(self) -> None:
        slots = self._slots
        if holds(slots.scope):
            return  # re-entrant: the task already holds this scope's slot
        semaphore = self._semaphore = slots._current()
        await semaphore.acquire()
        slots.in_use += 1
        slots.peak = max(slots.peak, slots.in_use)
        if slots.scope is not None:
            self._token = _HELD.set(_HELD.get() | {slots.scope})

    async def __aexit__(self, *exc: object) -> None:
        if self._semaphore is None:
            return
        if self._token is not None:
            _HELD.reset(self._token)
        self._slots.in_use -= 1
        self._semaphore.release()


_BY_SCOPE: dict[tuple[str, str, int], Slots] = {}


def slots_for(
    engine: Engine | None,
    *,
    limit: int,
    scope: str | None,
    wait: timedelta = timedelta(seconds=120),
) -> Slots:
    """The concurrency slots for a system: shared through PostgreSQL when ``scope`` is set
    and the ledger is PostgreSQL, else in this process. One object per ledger, scope and
    limit in a process, so the worker and the adapter share it (the first ``wait`` wins)."""
    if scope is None:
        return LocalSlots(limit)
    key = (str(engine.url) if engine is not None else "", scope, limit)
    found = _BY_SCOPE.get(key)
    if found is None:
        if engine is not None and engine.dialect.name == "postgresql":
            from revbridge.store.slots import PgAdvisorySlots

            found = PgAdvisorySlots(engine, scope=scope, limit=limit, wait=wait)
        else:
            found = LocalSlots(limit, scope=scope)
        _BY_SCOPE[key] = found
    return found
