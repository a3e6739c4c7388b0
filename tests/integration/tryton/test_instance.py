"""The managed instance: one server per home, reset in milliseconds, stoppable from anywhere."""

from __future__ import annotations

import time

import pytest

from revbridge.errors import TransientError
from revbridge.tryton.instance import InstanceInfo, TrytonInstance
from revbridge.tryton.template import default_cache_dir, trytond_versions

from .conftest import Session, api_client, run


def test_up_is_idempotent_and_status_is_visible_from_another_object(
    tryton: InstanceInfo, tryton_instance: TrytonInstance
) -> None:
    """A second handle on the same home sees the running server and gets the same details."""
    other = TrytonInstance(tryton_instance.home)
    status = other.status()
    assert status.running
    assert status.answering
    assert status.pid == tryton.pid
    assert status.url == tryton.url
    assert other.up() == tryton
    assert tryton.rpc_url == f"{tryton.url}{tryton.database}/rpc/"


def test_template_is_cached_per_trytond_version(tryton: InstanceInfo) -> None:
    """The template sits in the cache folder, keyed by the trytond version it was built with."""
    assert tryton.template_key.startswith(f"trytond-{trytond_versions()['trytond']}-")
    assert (default_cache_dir() / f"{tryton.template_key}.sqlite").is_file()


def test_reset_restores_the_template_in_under_a_second(
    tryton: InstanceInfo, tryton_instance: TrytonInstance
) -> None:
    """After a reset the server is still up, earlier data is gone and old clients log in again."""

    async def scenario() -> None:
        client = api_client(tryton)
        async with Session(tryton) as ops:
            await client.login()
            party = await ops.ensure_party("RESET-ME", "Short-lived Ltd")
            assert (await ops.find_party("RESET-ME")) is not None

            started = time.monotonic()
            tryton_instance.reset()
            elapsed = time.monotonic() - started
            assert elapsed < 1.0, f"reset took {elapsed:.3f} s"

            # Sessions were in the database: both clients must silently log in again.
            assert await ops.find_party("RESET-ME") is None
            rows = await client.search_read("party.party", [("code", "=", "RESET-ME")], ["id"])
            assert rows == []
            again = await ops.ensure_party("RESET-ME", "Short-lived Ltd")
            assert again.id == party.id  # the template's id sequence starts over, too
        await client.aclose()

    run(scenario())
    assert tryton_instance.status().pid == tryton.pid


def test_stopped_server_gives_transient_error(
    tryton: InstanceInfo, tryton_instance: TrytonInstance
) -> None:
    """While the server is down, calls fail as retryable; after up() they work again."""

    async def call_after_stop() -> None:
        client = api_client(tryton)
        await client.login()
        assert TrytonInstance(tryton_instance.home).down() is True
        with pytest.raises(TransientError, match="unreachable"):
            await client.search_read("party.party", [], ["id"], limit=1)
        await client.aclose()

    run(call_after_stop())
    assert not tryton_instance.status().running
    assert tryton_instance.down() is False

    restarted = tryton_instance.up()
    assert restarted.database == tryton.database

    async def call_after_up() -> None:
        async with Session(restarted) as ops:
            assert await ops.find_party("nobody") is None

    run(call_after_up())
