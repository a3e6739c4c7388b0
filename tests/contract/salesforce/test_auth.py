"""OAuth: the JWT bearer flow, the username-password flow, and expired sessions."""

from __future__ import annotations

from datetime import timedelta

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .conftest import API, JwtKeys, Org, OrgFactory

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def _token(org: Org, assertion: str) -> httpx.Response:
    return httpx.post(
        f"{org.base_url}/services/oauth2/token",
        data={"grant_type": JWT_GRANT, "assertion": assertion},
    )


def test_jwt_bearer_flow_issues_a_working_token(org: Org, jwt_keys: JwtKeys) -> None:
    """A correctly signed assertion gets Salesforce's token response and the token works."""
    response = _token(org, org.sign_assertion(jwt_keys))
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= {"access_token", "instance_url", "id", "token_type", "scope"}
    assert body["token_type"] == "Bearer"
    assert "refresh_token" not in body
    assert body["instance_url"] == org.base_url
    api = httpx.get(
        f"{body['instance_url']}{API}/limits",
        headers={"Authorization": f"Bearer {body['access_token']}"},
    )
    assert api.status_code == 200


def test_jwt_with_the_sandbox_url_as_audience_is_accepted(org: Org, jwt_keys: JwtKeys) -> None:
    """The login URL of a My Domain (here the sandbox itself) is a valid audience."""
    assert _token(org, org.sign_assertion(jwt_keys, aud=org.base_url)).status_code == 200


def test_jwt_signed_by_another_key_is_an_invalid_grant(org: Org) -> None:
    """An assertion signed by a key the connected app does not hold is refused."""
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    claims = {
        "iss": org.config.client_id,
        "sub": org.config.username,
        "aud": "https://login.salesforce.com",
        "exp": int(org.config.clock.now().timestamp()) + 60,
    }
    response = _token(org, jwt.encode(claims, pem, algorithm="RS256"))
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_grant", "error_description": "invalid assertion"}


def test_jwt_claims_are_checked_like_salesforce(org: Org, jwt_keys: JwtKeys) -> None:
    """Wrong audience, stale or far-future exp, unknown user and unknown client are refused."""
    now = int(org.config.clock.now().timestamp())
    cases = {
        "audience is invalid": {"aud": "https://example.com"},
        "expired authorization code": {"exp": now - 600},
        "user hasn't approved this consumer": {"sub": "someone@else.example"},
    }
    for description, claims in cases.items():
        response = _token(org, org.sign_assertion(jwt_keys, **claims))
        assert response.status_code == 400
        assert response.json() == {"error": "invalid_grant", "error_description": description}
    too_far = _token(org, org.sign_assertion(jwt_keys, exp=now + 3600))
    assert too_far.json()["error_description"] == "expired authorization code"
    wrong_client = _token(org, org.sign_assertion(jwt_keys, iss="not-the-consumer-key"))
    assert wrong_client.status_code == 400
    assert wrong_client.json()["error"] == "invalid_client_id"
    garbage = _token(org, "not.a.jwt")
    assert garbage.json() == {"error": "invalid_grant", "error_description": "invalid assertion"}


def test_password_flow_rejects_wrong_secret_and_password(org: Org) -> None:
    """The username-password flow checks the client secret and the password."""
    base = {
        "grant_type": "password",
        "client_id": org.config.client_id,
        "client_secret": org.config.client_secret,
        "username": org.config.username,
        "password": org.config.password,
    }
    url = f"{org.base_url}/services/oauth2/token"
    assert httpx.post(url, data=base).status_code == 200
    bad_secret = httpx.post(url, data=base | {"client_secret": "nope"})
    assert bad_secret.json()["error"] == "invalid_client"
    bad_password = httpx.post(url, data=base | {"password": "nope"})
    assert bad_password.status_code == 400
    assert bad_password.json() == {
        "error": "invalid_grant",
        "error_description": "authentication failure",
    }


def test_tokens_expire_after_the_session_ttl(make_org: OrgFactory) -> None:
    """Past its TTL a token gets 401 INVALID_SESSION_ID, and a new token works again."""
    with make_org(session_ttl=timedelta(minutes=30)) as org:
        assert org.client.get(f"{API}/limits").status_code == 200
        org.config.clock.advance(timedelta(minutes=31))
        expired = org.client.get(f"{API}/limits")
        assert expired.status_code == 401
        assert expired.json() == [
            {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
        ]
        org.login()
        assert org.client.get(f"{API}/limits").status_code == 200


def test_missing_or_unknown_token_is_an_invalid_session(org: Org) -> None:
    """No token or a made-up token both get INVALID_SESSION_ID."""
    for headers in ({}, {"Authorization": "Bearer 00Dxx!made-up"}):
        response = httpx.get(f"{org.base_url}{API}/limits", headers=headers)
        assert response.status_code == 401
        assert response.json()[0]["errorCode"] == "INVALID_SESSION_ID"
