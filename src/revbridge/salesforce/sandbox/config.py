"""The sandbox's configuration: credentials, limits, timings and where outbound messages go."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from revbridge.salesforce.sandbox.clock import SandboxClock

DEFAULT_OUTBOUND_OBJECTS: tuple[str, ...] = (
    "blng__Invoice__c",
    "blng__Payment__c",
    "blng__CreditNote__c",
    "Invoice",
    "Payment",
    "CreditMemo",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SandboxConfig:
    """Everything that makes one sandbox org differ from another.

    ``jwt_certificate_pem`` is the X.509 certificate uploaded to the connected app: JWT bearer
    assertions must be signed by its private key. Without it only the username-password flow works.
    ``data_path`` None keeps the org in memory. ``clock`` lets a test move time forward.
    """

    client_id: str = "3MVG9revbridgeSandboxConsumerKey"
    client_secret: str = "revbridge-sandbox-secret"  # noqa: S105 - public demo credential
    username: str = "integration@revbridge.sandbox"
    password: str = "sandbox-password"  # noqa: S105 - public demo credential
    security_token: str = ""
    jwt_certificate_pem: bytes | None = None
    data_path: Path | None = None
    seed: bool = False
    faults: str | None = None
    session_ttl: timedelta = timedelta(hours=2)
    daily_api_limit: int = 100_000
    max_concurrent_long_requests: int = 25
    long_request_threshold: timedelta = timedelta(seconds=20)
    query_batch_size: int = 2000
    query_cursor_ttl: timedelta = timedelta(minutes=15)
    event_retention: timedelta = timedelta(hours=72)
    event_poll_interval: timedelta = timedelta(milliseconds=100)
    # CometD: the long-poll (socket) timeout, how long a client may stay away between two
    # requests before it is forgotten, and the most data messages one connect answer carries.
    cometd_timeout: timedelta = timedelta(seconds=110)
    cometd_reconnect: timedelta = timedelta(seconds=40)
    cometd_max_events: int = 1000
    outbound_url: str | None = None
    outbound_objects: tuple[str, ...] = DEFAULT_OUTBOUND_OBJECTS
    outbound_retry_base: timedelta = timedelta(seconds=1)
    outbound_retry_max: timedelta = timedelta(hours=2)
    outbound_give_up_after: timedelta = timedelta(hours=24)
    outbound_poll_interval: timedelta = timedelta(milliseconds=100)
    outbound_timeout: timedelta = timedelta(seconds=10)
    bulk_poll_interval: timedelta = timedelta(milliseconds=50)
    org_id: str = "00D5e000000RvBrEAK"
    clock: SandboxClock = field(default_factory=SandboxClock)
