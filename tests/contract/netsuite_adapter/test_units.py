"""Pure parts of the connector: external ids, error translation, JSON money, watermarks."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from revbridge.errors import (
    AccessRefused,
    ConfigError,
    RateLimited,
    TerminalError,
    TransientError,
)
from revbridge.netsuite.capture import dump_watermark, parse_watermark
from revbridge.netsuite.client import NetSuiteRequestError, dumps, loads, raise_for_response
from revbridge.netsuite.config import NetSuiteConfig, rest_host
from revbridge.netsuite.mapping import external_id, is_external_id, source_ref


@given(st.text(min_size=1, max_size=80))
def test_every_source_id_becomes_a_valid_external_id_and_back(ref: str) -> None:
    eid = external_id("SF-", ref)
    assert is_external_id(eid)
    escaped = sum(
        1 if c.isascii() and (c.isalnum() or c == "-") else 2 if c == "_" else 3 * len(c.encode())
        for c in ref
    )
    # Ids too long for NetSuite are shortened with a digest and are then no longer read back.
    assert source_ref("SF-", eid) == (ref if 3 + escaped <= 255 else None)


@given(st.text(min_size=1, max_size=30), st.text(min_size=1, max_size=30))
def test_different_source_ids_never_share_an_external_id(a: str, b: str) -> None:
    if a != b:
        assert external_id("SF-", a) != external_id("SF-", b)


def test_salesforce_ids_read_as_themselves() -> None:
    assert external_id("SF-", "001Ax000001") == "SF-001Ax000001"
    assert external_id("SF-", "a_b c") == "SF-a__b_20c"
    assert source_ref("SF-", "PAY-1") is None  # not the hub's
    assert len(external_id("SF-", "x" * 400)) == 255


def _response(status: int, body: str = "", **headers: str) -> httpx.Response:
    return httpx.Response(status, content=body.encode(), headers=headers)


def test_errors_are_translated_once_by_status() -> None:
    with pytest.raises(RateLimited) as limited:
        raise_for_response(_response(429, "{}", **{"Retry-After": "7"}), "GET /x")
    assert limited.value.retry_after == timedelta(seconds=7)
    with pytest.raises(RateLimited):  # a RESTlet's way of saying the same
        raise_for_response(
            _response(
                400,
                '{"o:errorDetails":[{"o:errorCode":"SSS_REQUEST_LIMIT_EXCEEDED","detail":"x"}]}',
            ),
            "POST /restlet",
        )
    with pytest.raises(TransientError) as outage:
        raise_for_response(_response(503, "not json"), "GET /x")
    assert not isinstance(outage.value, TerminalError)
    body = (
        '{"o:errorDetails":[{"detail":"Period is closed.",'
        '"o:errorCode":"USER_ERROR","o:errorPath":"tranDate"}]}'
    )
    with pytest.raises(NetSuiteRequestError) as refused:
        raise_for_response(_response(400, body), "POST /record/v1/invoice")
    assert refused.value.codes == ("USER_ERROR",)
    assert "Period is closed. (at tranDate)" in str(refused.value)
    # 401: the integration's token, on every call alike (the circuit opens, nothing is
    # dead-lettered); 403: the role lacks a permission for this record (that record only).
    with pytest.raises(AccessRefused) as unauthorized:
        raise_for_response(_response(401, "", **{"WWW-Authenticate": "OAuth"}), "GET /x")
    assert not isinstance(unauthorized.value, TerminalError)
    assert "INVALID_LOGIN" in str(unauthorized.value)
    forbidden_body = (
        '{"o:errorDetails":[{"detail":"Permission Violation","o:errorCode":"USER_ERROR"}]}'
    )
    with pytest.raises(NetSuiteRequestError) as forbidden:
        raise_for_response(_response(403, forbidden_body), "POST /record/v1/creditMemo")
    assert forbidden.value.status == 403
    assert not isinstance(forbidden.value, AccessRefused)


def test_money_travels_as_exact_json_numbers() -> None:
    text = dumps({"amount": Decimal("12345678901234.57"), "items": [Decimal("0.10"), None, True]})
    assert text == '{"amount":12345678901234.57,"items":[0.10,null,true]}'
    assert loads(text)["amount"] == Decimal("12345678901234.57")


def test_the_watermark_round_trips_and_refuses_garbage() -> None:
    marks = parse_watermark(
        dump_watermark({"payments": "2026-11-26 10:00:00.000001", "customers": None, "gl": None})
    )
    assert marks["payments"] == "2026-11-26 10:00:00.000001"
    with pytest.raises(ValueError, match="mark"):
        parse_watermark('{"payments": "1\' OR 1=1 --"}')


def test_configuration_reads_tba_from_the_environment() -> None:
    env = {
        "NETSUITE_ACCOUNT_ID": "123456_SB1",
        "NETSUITE_CONSUMER_KEY": "ck",
        "NETSUITE_CONSUMER_SECRET": "cs",
        "NETSUITE_TOKEN_ID": "ti",
        "NETSUITE_TOKEN_SECRET": "ts",
    }
    config = NetSuiteConfig.from_env(env, concurrency_limit=3)
    assert config.rest_url == "https://123456-sb1.suitetalk.api.netsuite.com/services/rest"
    assert rest_host("123456_SB1") == "https://123456-sb1.suitetalk.api.netsuite.com"
    with pytest.raises(ConfigError, match="NETSUITE_TOKEN_SECRET"):
        NetSuiteConfig.from_env({k: v for k, v in env.items() if k != "NETSUITE_TOKEN_SECRET"})
    with pytest.raises(ConfigError, match="external_id_prefix"):
        NetSuiteConfig.from_env(env, external_id_prefix="SF_")
