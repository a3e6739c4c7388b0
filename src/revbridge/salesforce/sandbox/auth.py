"""OAuth 2.0 for the sandbox org: the JWT bearer flow and the username-password flow.

Tokens are opaque (``<org id>!<random>``), live in memory and expire after ``session_ttl``; an
expired or unknown token gets Salesforce's 401 ``INVALID_SESSION_ID``. Token errors use the OAuth
shape ``{"error", "error_description"}`` with HTTP 400, as the real token endpoint does.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from revbridge.salesforce.sandbox.config import SandboxConfig

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
LOGIN_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")
# Salesforce refuses assertions whose exp is more than 3 minutes ahead; a little clock skew is
# tolerated on both sides.
MAX_EXP_AHEAD = timedelta(minutes=3)
CLOCK_SKEW = timedelta(seconds=30)


class OAuthError(Exception):
    """A refused token request, rendered as ``{"error", "error_description"}``."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        self.error = error
        self.description = description
        self.status = status
        super().__init__(f"{error}: {description}")


@dataclass(frozen=True, slots=True)
class Session:
    token: str
    username: str
    expires_at: datetime


class Authenticator:
    """Issues and checks access tokens for the one integration user of the sandbox org."""

    def __init__(self, config: SandboxConfig, user_id: str) -> None:
        self._config = config
        self._user_id = user_id
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._public_key: RSAPublicKey | None = None
        if config.jwt_certificate_pem is not None:
            key = x509.load_pem_x509_certificate(config.jwt_certificate_pem).public_key()
            if not isinstance(key, RSAPublicKey):
                raise ValueError("the JWT certificate must hold an RSA public key")
            self._public_key = key

    def issue_token(self, form: Mapping[str, str], base_url: str) -> dict[str, str]:
        """The token response for a token-endpoint form, or raise :class:`OAuthError`."""
        grant_type = form.get("grant_type", "")
        if grant_type == JWT_BEARER:
            username = self._check_assertion(form.get("assertion", ""), base_url)
        elif grant_type == "password":
            username = self._check_password(form)
        elif not grant_type:
            raise OAuthError("invalid_request", "grant type not specified")
        else:
            raise OAuthError("unsupported_grant_type", "grant type not supported")
        now = self._config.clock.now()
        token = f"{self._config.org_id[:15]}!{secrets.token_urlsafe(48)}"
        with self._lock:
            self._sessions = {t: s for t, s in self._sessions.items() if s.expires_at > now}
            self._sessions[token] = Session(token, username, now + self._config.session_ttl)
        org_id = self._config.org_id
        return {
            "access_token": token,
            "scope": "api",
            "instance_url": base_url,
            "id": f"{base_url}/id/{org_id}/{self._user_id}",
            "token_type": "Bearer",
            "issued_at": str(int(now.timestamp() * 1000)),
        }

    def check_bearer(self, authorization: str | None) -> Session | None:
        """The live session an ``Authorization`` header names, or None."""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() not in ("bearer", "oauth") or not token:
            return None
        with self._lock:
            session = self._sessions.get(token.strip())
        if session is None or session.expires_at <= self._config.clock.now():
            return None
        return session

    def revoke_all(self) -> None:
        with self._lock:
            self._sessions.clear()

    def revoke(self, token: str) -> None:
        with self._lock:
            self._sessions.pop(token, None)

    def _check_password(self, form: Mapping[str, str]) -> str:
        if form.get("client_id") != self._config.client_id:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        if form.get("client_secret") != self._config.client_secret:
            raise OAuthError("invalid_client", "invalid client credentials")
        expected = {self._config.password, self._config.password + self._config.security_token}
        if (
            form.get("username", "").lower() != self._config.username.lower()
            or form.get("password") not in expected
        ):
            raise OAuthError("invalid_grant", "authentication failure")
        return self._config.username

    def _check_assertion(self, assertion: str, base_url: str) -> str:
        if self._public_key is None:
            raise OAuthError("invalid_grant", "invalid assertion")
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            raise OAuthError("invalid_grant", "invalid assertion") from None
        if header.get("alg") != "RS256":
            raise OAuthError("invalid_grant", "invalid assertion")
        try:
            claims = jwt.decode(
                assertion,
                self._public_key,
                algorithms=["RS256"],
                options={"verify_exp": False, "verify_aud": False, "require": ["exp"]},
            )
        except jwt.PyJWTError:
            raise OAuthError("invalid_grant", "invalid assertion") from None
        if claims.get("iss") != self._config.client_id:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        audiences = (*LOGIN_AUDIENCES, base_url.rstrip("/"))
        audience = claims.get("aud")
        given = audience if isinstance(audience, list) else [audience]
        if not any(isinstance(a, str) and a.rstrip("/") in audiences for a in given):
            raise OAuthError("invalid_grant", "audience is invalid")
        now = self._config.clock.now()
        try:
            exp = datetime.fromtimestamp(float(claims["exp"]), tz=now.tzinfo)
        except (TypeError, ValueError):
            raise OAuthError("invalid_grant", "invalid assertion") from None
        if exp < now - CLOCK_SKEW or exp > now + MAX_EXP_AHEAD + CLOCK_SKEW:
            raise OAuthError("invalid_grant", "expired authorization code")
        subject = claims.get("sub")
        if not isinstance(subject, str) or subject.lower() != self._config.username.lower():
            raise OAuthError("invalid_grant", "user hasn't approved this consumer")
        return subject
