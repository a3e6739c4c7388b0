"""Token-Based Authentication as NetSuite answers it: 401 + WWW-Authenticate, 400 if malformed."""

from __future__ import annotations

import requests

from revbridge.netsuite.sandbox import RunningSandbox
from tests.contract.netsuite.conftest import NetSuiteClient, error_codes


def _assert_invalid_login(response: requests.Response, account_id: str) -> None:
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith(f'OAuth realm="{account_id}"')
    assert 'error="invalid_token"' in challenge
    assert error_codes(response) == ["INVALID_LOGIN"]


def test_a_correctly_signed_request_is_accepted(client: NetSuiteClient) -> None:
    assert client.get("/record/v1/customer").status_code == 200


def test_a_wrong_consumer_secret_is_a_bad_signature(sandbox: RunningSandbox) -> None:
    bad = NetSuiteClient(sandbox, consumer_secret="not-the-secret")
    _assert_invalid_login(bad.get("/record/v1/customer"), sandbox.config.account_id)


def test_an_unknown_token_is_refused(sandbox: RunningSandbox) -> None:
    bad = NetSuiteClient(sandbox, token_id="f" * 64)
    _assert_invalid_login(bad.get("/record/v1/customer"), sandbox.config.account_id)


def test_a_realm_other_than_the_account_is_refused(sandbox: RunningSandbox) -> None:
    bad = NetSuiteClient(sandbox, realm="999999_SB9")
    _assert_invalid_login(bad.get("/record/v1/customer"), sandbox.config.account_id)


def test_a_replayed_nonce_is_refused(client: NetSuiteClient, sandbox: RunningSandbox) -> None:
    prepared = requests.Request(
        "GET", client.rest + "/record/v1/customer", auth=client.auth
    ).prepare()
    session = requests.Session()
    assert session.send(prepared, timeout=10).status_code == 200
    replay = session.send(prepared, timeout=10)
    _assert_invalid_login(replay, sandbox.config.account_id)
    audit = client.admin("GET", "/loginAudit").json()["items"]
    assert audit[0]["reason"] == "nonce already used"


def test_a_signed_query_string_is_part_of_the_signature(client: NetSuiteClient) -> None:
    response = client.post(
        "/query/v1/suiteql", {"q": "SELECT id FROM currency"}, params={"limit": 2, "offset": 0}
    )
    assert response.status_code == 200
    assert response.json()["count"] == 2


def test_no_authorization_header_is_a_401(sandbox: RunningSandbox) -> None:
    response = requests.get(sandbox.rest_url + "/record/v1/customer", timeout=10)
    _assert_invalid_login(response, sandbox.config.account_id)


def test_a_malformed_oauth_header_is_a_400(sandbox: RunningSandbox) -> None:
    response = requests.get(
        sandbox.rest_url + "/record/v1/customer",
        headers={"Authorization": 'OAuth realm="1234567_SB1", oauth_consumer_key="abc"'},
        timeout=10,
    )
    assert response.status_code == 400
    assert 'error="invalid_request"' in response.headers["WWW-Authenticate"]


def test_hmac_sha1_is_not_accepted(sandbox: RunningSandbox) -> None:
    from requests_oauthlib import OAuth1

    cfg = sandbox.config
    sha1 = OAuth1(
        cfg.consumer_key,
        cfg.consumer_secret,
        cfg.token_id,
        cfg.token_secret,
        signature_method="HMAC-SHA1",
        realm=cfg.account_id,
    )
    response = requests.get(sandbox.rest_url + "/record/v1/customer", auth=sha1, timeout=10)
    assert response.status_code == 400
