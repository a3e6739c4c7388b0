"""A real trytond server for the whole run, reset to the cached template per test module.

The first run on a machine builds the template (about 25-40 s: trytond-admin activates the
accounting modules); later runs find it in the cache (``REVBRIDGE_TRYTON_CACHE``, else
``~/.cache/revbridge/tryton``) and only start the server (about 2 s).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from revbridge.tryton.instance import InstanceInfo, TrytonInstance
from revbridge.tryton.operations import TrytonAccounting
from revbridge.tryton.rpc import TrytonClient

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one async scenario; the tests stay sync so that no async plugin is needed."""
    return asyncio.run(coro)


@pytest.fixture(scope="session")
def tryton_instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrytonInstance]:
    """One server per test run, shared with ``tests/scenarios/tryton`` (same home folder)."""
    home: Path = tmp_path_factory.getbasetemp() / "tryton-home"
    instance = TrytonInstance(home)
    instance.up()
    try:
        yield instance
    finally:
        instance.down()


@pytest.fixture(scope="module")
def tryton(tryton_instance: TrytonInstance) -> InstanceInfo:
    """The running instance, with the template's content: each module starts clean."""
    tryton_instance.reset()
    return tryton_instance.up()


def api_client(info: InstanceInfo) -> TrytonClient:
    return TrytonClient(info.url, info.database, info.api_user, info.api_password)


class Session:
    """A logged-in client and the operations on it, for one scenario."""

    def __init__(self, info: InstanceInfo) -> None:
        self.client = api_client(info)
        self.ops = TrytonAccounting(self.client)

    async def __aenter__(self) -> TrytonAccounting:
        await self.client.login()
        return self.ops

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()
