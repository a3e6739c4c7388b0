"""Token-Based Authentication: OAuth 1.0a HMAC-SHA256 checked by oauthlib's server side.

The signature itself is verified by ``oauthlib``'s ``SignatureOnlyEndpoint`` (the standard
implementation, so the sandbox cannot agree with a client on a private mistake); this module
supplies the ``RequestValidator`` that knows the one consumer and token pair, the realm, the
timestamp window and the nonce cache, and it maps the outcome onto NetSuite's answers:

* no or non-OAuth ``Authorization`` header, unknown consumer or token, bad signature, wrong
  realm, stale timestamp, replayed nonce → 401 with
  ``WWW-Authenticate: OAuth realm="<account>", error="invalid_token", ...``;
* a header that cannot be parsed or lacks mandatory OAuth parameters → 400 with
  ``error="invalid_request"``.

As in NetSuite, the client is not told which check failed; the reason goes to the login audit
trail (``/sandbox/admin/loginAudit``), NetSuite's "View Login Audit Trail".
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from oauthlib.oauth1 import (  # type: ignore[import-untyped]  # oauthlib ships no type hints
    RequestValidator,
    SignatureOnlyEndpoint,
)
from oauthlib.oauth1.rfc5849.utils import (  # type: ignore[import-untyped]  # as above
    parse_authorization_header,
)

from revbridge.netsuite.sandbox.config import SandboxConfig

_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
_DUMMY = "sandbox-dummy"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthFailure:
    """Why a request was not authenticated, and how to answer it."""

    status: int
    error: str
    description: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LoginAttempt:
    """One line of the login audit trail."""

    at: datetime
    method: str
    url: str
    consumer_key: str | None
    token: str | None
    success: bool
    reason: str


class _NonceCache:
    """Nonces seen within the timestamp window; a nonce older than the window cannot replay
    because its timestamp is refused anyway, so it is dropped."""

    def __init__(self, window_s: float) -> None:
        self._window_s = window_s
        self._seen: dict[tuple[str, str, str], float] = {}
        self._order: deque[tuple[float, tuple[str, str, str]]] = deque()
        self._lock = threading.Lock()

    def add(self, key: tuple[str, str, str], now: float) -> bool:
        """Record ``key``; False when it was already seen (a replay)."""
        with self._lock:
            while self._order and self._order[0][0] < now - 2 * self._window_s:
                _, old = self._order.popleft()
                self._seen.pop(old, None)
            if key in self._seen:
                return False
            self._seen[key] = now
            self._order.append((now, key))
            return True


class _Validator(RequestValidator):  # type: ignore[misc]  # base class is untyped (oauthlib)
    def __init__(self, config: SandboxConfig, nonces: _NonceCache) -> None:
        super().__init__()
        self._config = config
        self._nonces = nonces
        self._window_s = config.nonce_window.total_seconds()

    # NetSuite keys are 64 hex characters and clients make nonces of varying length; the
    # defaults (20 to 30 characters) would refuse well-formed requests.
    @property
    def safe_characters(self) -> frozenset[str]:
        return _SAFE

    @property
    def client_key_length(self) -> tuple[int, int]:
        return 1, 256

    @property
    def access_token_length(self) -> tuple[int, int]:
        return 1, 256

    @property
    def nonce_length(self) -> tuple[int, int]:
        return 1, 256

    @property
    def allowed_signature_methods(self) -> tuple[str, ...]:
        return ("HMAC-SHA256",)

    @property
    def enforce_ssl(self) -> bool:
        # The sandbox listens on plain HTTP on localhost; real NetSuite is HTTPS only.
        return False

    @property
    def timestamp_lifetime(self) -> int:
        # The window is checked in validate_timestamp_and_nonce, where a stale timestamp can
        # be told apart from a malformed request (401, not 400).
        return 10**10

    @property
    def dummy_client(self) -> str:
        return _DUMMY

    @property
    def dummy_access_token(self) -> str:
        return _DUMMY

    def validate_client_key(self, client_key: str, request: Any) -> bool:
        ok = client_key == self._config.consumer_key
        if not ok:
            request.validator_log["reason"] = "unknown consumer key"
        return ok

    def get_client_secret(self, client_key: str, request: Any) -> str:
        if client_key == self._config.consumer_key:
            return self._config.consumer_secret
        return _DUMMY

    def get_access_token_secret(self, client_key: str, token: str, request: Any) -> str:
        if client_key == self._config.consumer_key and token == self._config.token_id:
            return self._config.token_secret
        request.validator_log.setdefault("reason", "unknown token")
        return _DUMMY

    def validate_timestamp_and_nonce(
        self,
        client_key: str,
        timestamp: str,
        nonce: str,
        request: Any,
        request_token: str | None = None,
        access_token: str | None = None,
    ) -> bool:
        request.validator_log["nonce_checked"] = True
        now = time.time()
        if abs(now - int(timestamp)) > self._window_s:
            request.validator_log["reason"] = "timestamp outside the allowed window"
            return False
        token = request.resource_owner_key or ""
        if not self._nonces.add((client_key, token, nonce), now):
            request.validator_log["reason"] = "nonce already used"
            return False
        return True


class TokenAuthenticator:
    """Checks the TBA header of each request and keeps the login audit trail."""

    def __init__(self, config: SandboxConfig) -> None:
        self._config = config
        self._endpoint = SignatureOnlyEndpoint(
            _Validator(config, _NonceCache(config.nonce_window.total_seconds()))
        )
        self.audit: deque[LoginAttempt] = deque(maxlen=500)

    def www_authenticate(self, failure: AuthFailure) -> str:
        return (
            f'OAuth realm="{self._config.account_id}", error="{failure.error}", '
            f'error_description="{failure.description}"'
        )

    def check(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> AuthFailure | None:
        """None when the request is authenticated, else why not."""
        header = headers.get("authorization")
        failure = self._check(method, url, header, headers, body)
        consumer = token = None
        if header and header[:6].lower() == "oauth ":
            try:
                params = dict(parse_authorization_header(header))
                consumer, token = params.get("oauth_consumer_key"), params.get("oauth_token")
            except ValueError:
                pass
        self.audit.append(
            LoginAttempt(
                at=self._config.clock(),
                method=method,
                url=url,
                consumer_key=consumer,
                token=token,
                success=failure is None,
                reason="" if failure is None else failure.reason,
            )
        )
        return failure

    def _check(
        self, method: str, url: str, header: str | None, headers: Mapping[str, str], body: bytes
    ) -> AuthFailure | None:
        if not header:
            return _unauthorized("no Authorization header")
        if header[:6].lower() != "oauth ":
            return _unauthorized("Authorization is not an OAuth 1.0a (TBA) header")
        try:
            params = dict(parse_authorization_header(header))
        except ValueError:
            return _malformed("the OAuth header cannot be parsed")
        content_type = headers.get("content-type", "")
        form_body = (
            body.decode("utf-8", "replace")
            if "application/x-www-form-urlencoded" in content_type
            else None
        )
        valid, request = self._endpoint.validate_request(
            url, http_method=method, body=form_body, headers=dict(headers)
        )
        if request is None or "nonce_checked" not in request.validator_log:
            return _malformed(
                "missing or invalid OAuth parameters (signature method, version, timestamp)"
            )
        if not valid:
            return _unauthorized(request.validator_log.get("reason", "signature does not match"))
        if params.get("realm") != self._config.account_id:
            return _unauthorized(f"realm {params.get('realm')!r} is not the account id")
        return None


def _unauthorized(reason: str) -> AuthFailure:
    return AuthFailure(
        status=401, error="invalid_token", description="Invalid login attempt.", reason=reason
    )


def _malformed(reason: str) -> AuthFailure:
    return AuthFailure(
        status=400,
        error="invalid_request",
        description="Invalid authorization header.",
        reason=reason,
    )
