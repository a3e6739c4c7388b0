"""The JSON-RPC boundary: Tryton's value encoding and its errors, translated once."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import httpx
import pytest

from revbridge.errors import AccessRefused, RateLimited, TerminalError, TransientError
from revbridge.tryton.instance import InstanceInfo
from revbridge.tryton.rpc import (
    TrytonAuthError,
    TrytonClient,
    TrytonUserError,
    decode,
    encode,
)

from .conftest import api_client, run


def test_values_round_trip_through_tryton_encoding() -> None:
    """Decimal, date and aware datetime survive encoding; datetimes come back in UTC."""
    paris = dt.timezone(dt.timedelta(hours=1))
    value = {
        "amount": Decimal("1000.10"),
        "day": dt.date(2026, 1, 31),
        "at": dt.datetime(2026, 1, 31, 10, 30, tzinfo=paris),
        "lines": [Decimal("-0.01")],
    }
    wire = encode(value)
    assert wire["amount"] == {"__class__": "Decimal", "decimal": "1000.10"}
    assert wire["at"]["hour"] == 9  # Tryton stores UTC
    back = decode(wire)
    assert back["amount"] == Decimal("1000.10")
    assert back["day"] == dt.date(2026, 1, 31)
    assert back["at"] == value["at"]
    assert back["at"].tzinfo == dt.UTC
    with pytest.raises(ValueError, match="naive datetime"):
        encode(dt.datetime(2026, 1, 1))


def test_decimal_comes_back_from_the_server(tryton: InstanceInfo) -> None:
    """Amounts read over the wire are Decimals, never floats."""

    async def scenario() -> None:
        async with api_client(tryton) as client:
            (rate,) = await client.search_read(
                "currency.currency", [("code", "=", "EUR")], ["rate", "rounding"]
            )
            assert rate["rounding"] == Decimal("0.01")
            assert isinstance(rate["rate"], Decimal)

    run(scenario())


def test_wrong_password_refuses_the_integrations_access(tryton: InstanceInfo) -> None:
    """Refused credentials are the integration's, not a record's: the worker stops calling
    and dead-letters nothing until they are fixed (decision 0038)."""

    async def scenario() -> None:
        client = TrytonClient(tryton.url, tryton.database, tryton.api_user, "wrong-password")
        with pytest.raises(TrytonAuthError, match="refused the login") as refused:
            await client.login()
        assert isinstance(refused.value, AccessRefused)
        assert not isinstance(refused.value, TerminalError)
        await client.aclose()

    run(scenario())


def test_validation_and_access_errors_are_terminal_with_tryton_message(
    tryton: InstanceInfo,
) -> None:
    """A duplicate party code and a forbidden create both name the problem in plain words."""

    async def scenario() -> None:
        async with api_client(tryton) as client:
            values = {"name": "Twin", "code": "TWIN-1"}
            await client.model("party.party", "create", [values])
            with pytest.raises(TrytonUserError, match="must be unique") as duplicate:
                await client.model("party.party", "create", [values])
            assert duplicate.value.method == "model.party.party.create"
            with pytest.raises(TrytonUserError, match="not allowed"):
                await client.model("res.user", "create", [{"name": "x", "login": "x"}])

    run(scenario())


def test_http_failures_map_to_transient_or_terminal() -> None:
    """5xx and 429 are worth retrying (429 is RateLimited and keeps its Retry-After); a 404
    (no such database) refuses the integration itself: the circuit opens (decision 0038)."""

    def answer(request: httpx.Request) -> httpx.Response:
        status = {"/down/rpc/": 503, "/busy/rpc/": 429, "/gone/rpc/": 404}[request.url.path]
        return httpx.Response(status, headers={"Retry-After": "7"}, text="nope")

    async def scenario() -> None:
        transport = httpx.MockTransport(answer)
        for database, expected in [
            ("down", TransientError),
            ("busy", TransientError),
            ("gone", AccessRefused),
        ]:
            client = TrytonClient("http://tryton.invalid/", database, "u", "p", transport=transport)
            with pytest.raises(expected) as caught:
                await client.login()
            if database == "busy":
                assert isinstance(caught.value, RateLimited)
                assert caught.value.retry_after == dt.timedelta(seconds=7)
            await client.aclose()

    run(scenario())
