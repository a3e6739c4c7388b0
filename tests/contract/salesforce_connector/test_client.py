"""The REST client: both OAuth flows, one token renewal on 401, limits, errors translated once."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from revbridge.errors import AccessRefused, RateLimited, TerminalError, TransientError
from revbridge.salesforce.client import (
    SalesforceApiError,
    SalesforceAuthError,
    SalesforceClient,
    parse_limit_info,
)

from .conftest import Org, run


def test_jwt_bearer_flow_gets_a_session_and_reads_data(org: Org) -> None:
    """A JWT signed with the connected app's key is a session; SOQL answers through it."""
    org.create("Account", {"Name": "Acme"})

    async def go() -> tuple[list[str], str]:
        async with org.client() as client:
            records = await client.query("SELECT Name FROM Account")
            return [r["Name"] for r in records], await client.user_id()

    names, user_id = run(go())
    assert names == ["Acme"]
    assert user_id.startswith("005")
    assert len(user_id) == 18


def test_password_flow_for_local_use(org: Org) -> None:
    async def go() -> int:
        async with SalesforceClient(org.password_auth()) as client:
            return len(await client.query("SELECT Id FROM Account"))

    assert run(go()) == 0


def test_an_expired_session_is_renewed_once_and_the_call_succeeds(org: Org) -> None:
    """401 INVALID_SESSION_ID: a new assertion is signed and the call goes through."""

    async def go() -> int:
        async with org.client() as client:
            await client.query("SELECT Id FROM Account")
            session = await client.session()
            org.http.post("/services/oauth2/revoke", data={"token": session.access_token})
            await client.query("SELECT Id FROM Account")
            return client.token_requests

    assert run(go()) == 2


def test_a_wrong_user_refuses_the_integrations_access(org: Org) -> None:
    """Not a record's fault: the worker opens the circuit and dead-letters nothing (0038)."""

    async def go() -> None:
        async with SalesforceClient(org.jwt_auth(username="nobody@example.com")) as client:
            await client.query("SELECT Id FROM Account")

    with pytest.raises(SalesforceAuthError) as info:
        run(go())
    assert info.value.error_code == "invalid_grant"
    assert isinstance(info.value, AccessRefused)
    assert not isinstance(info.value, TerminalError)


def test_limit_info_is_parsed_and_exposed(org: Org) -> None:
    async def go() -> tuple[int, int] | None:
        async with org.client() as client:
            await client.query("SELECT Id FROM Account")
            usage = client.api_usage
            return (usage.used, usage.limit) if usage else None

    used_limit = run(go())
    assert used_limit is not None
    assert used_limit[1] == 100_000
    assert used_limit[0] >= 1
    assert parse_limit_info("api-usage=12/15000") is not None
    assert parse_limit_info(None) is None


def test_a_validation_error_is_terminal_with_code_and_fields(org: Org) -> None:
    async def go() -> None:
        async with org.client() as client:
            await client.send_json("POST", "/sobjects/Account", {"Industry": "x"})

    with pytest.raises(SalesforceApiError) as info:
        run(go())
    assert info.value.error_code == "REQUIRED_FIELD_MISSING"
    assert info.value.fields == ("Name",)


def test_org_limit_is_rate_limited_and_5xx_is_transient(org: Org) -> None:
    org.http.put("/sandbox/admin/faults", json={"faults": "error_rate=1"})

    async def call() -> None:
        async with org.client() as client:
            await client.query("SELECT Id FROM Account")

    with pytest.raises(TransientError) as info:
        run(call())
    assert not isinstance(info.value, RateLimited)
    org.http.put("/sandbox/admin/faults", json={"faults": ""})
    usage = org.running.sandbox.usage
    usage.daily_limit = 1  # the admin client's calls have spent the day's budget
    try:
        with pytest.raises(RateLimited) as limited:
            run(call())
    finally:
        usage.daily_limit = org.config.daily_api_limit
    assert "REQUEST_LIMIT_EXCEEDED" in str(limited.value)


def test_logs_carry_no_token_and_no_soql(org: Org, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="revbridge.salesforce")

    async def go() -> str:
        async with org.client() as client:
            await client.query("SELECT Name FROM Account WHERE Name = 'Secret Customer'")
            return (await client.session()).access_token

    token = run(go())
    text = caplog.text
    assert "Secret Customer" not in text
    assert token not in text
    assert "GET" in text


def test_a_timeout_is_transient(org: Org) -> None:
    """A call that outlives the client's timeout may be retried: nothing is known."""
    org.http.put("/sandbox/admin/faults", json={"faults": "latency=2s"})

    async def go() -> None:
        async with SalesforceClient(org.jwt_auth(), timeout=timedelta(milliseconds=300)) as client:
            await client.query("SELECT Id FROM Account")

    try:
        with pytest.raises(TransientError, match="timed out"):
            run(go())
    finally:
        org.http.put("/sandbox/admin/faults", json={"faults": ""})


def test_an_external_id_matching_several_records_is_refused(org: Org) -> None:
    """Upsert by a non-unique external id that matches twice: terminal, nothing written."""
    org.create("Account", {"Name": "Twin A", "ERP_Id__c": "E-1"})
    org.create("Account", {"Name": "Twin B", "ERP_Id__c": "E-1"})

    async def go() -> None:
        async with org.client() as client:
            await client.send_json("PATCH", "/sobjects/Account/ERP_Id__c/E-1", {"Name": "One"})

    with pytest.raises(SalesforceApiError) as info:
        run(go())
    assert info.value.error_code == "MULTIPLE_CHOICES"
    assert sorted(r["Name"] for r in org.records("SELECT Name FROM Account")) == [
        "Twin A",
        "Twin B",
    ]
