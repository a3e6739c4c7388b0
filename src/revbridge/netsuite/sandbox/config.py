"""The sandbox's configuration: account, demo TBA credentials, limits and faults.

The credentials below are public demo values printed by ``revbridge sandbox netsuite``; they
authenticate against this sandbox only and mean nothing to a real NetSuite account.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from revbridge.netsuite.sandbox.faults import FaultSpec

DEMO_ACCOUNT_ID = "1234567_SB1"
DEMO_CONSUMER_KEY = "5a1d8c0e4b7f2a9d6e3c1b8a7f4e2d9c6b3a1f8e5d2c9b6a3f1e8d5c2b9a6f3e"
# Public demo values, printed at start-up: not secrets.
DEMO_CONSUMER_SECRET = "0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e"  # noqa: S105
DEMO_TOKEN_ID = "7c3e9a1f5b2d8c4e0a6f3b9d1e7c5a2f8b4d0e6c3a9f1b7d5e2c8a4f0b6d3e9a"  # noqa: S105
DEMO_TOKEN_SECRET = "e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d0c1b2a3f4e5d6c7b8a9f0e1d2"  # noqa: S105

CreditLimitHandling = Literal["enforce", "ignore"]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class SandboxConfig:
    """Everything a sandbox instance needs; all fields have demo defaults.

    ``data_path`` None keeps the data in memory for the life of the process.
    ``credit_limit_handling`` mirrors NetSuite's "Customer Credit Limit Handling" preference:
    ``enforce`` puts a customer over its credit limit on hold for new invoices.
    ``nonce_window`` is how far a request timestamp may be from the sandbox clock, and so how
    long a nonce must be remembered to refuse a replay.
    ``clock`` returns an aware UTC datetime; tests may move it to make invoices overdue.
    """

    account_id: str = DEMO_ACCOUNT_ID
    consumer_key: str = DEMO_CONSUMER_KEY
    consumer_secret: str = DEMO_CONSUMER_SECRET
    token_id: str = DEMO_TOKEN_ID
    token_secret: str = DEMO_TOKEN_SECRET
    data_path: Path | None = None
    concurrency_limit: int = 5
    faults: FaultSpec = field(default_factory=FaultSpec)
    credit_limit_handling: CreditLimitHandling = "enforce"
    nonce_window: timedelta = timedelta(minutes=5)
    clock: Callable[[], datetime] = utc_now

    def __post_init__(self) -> None:
        if self.concurrency_limit < 1:
            raise ValueError("concurrency_limit must be at least 1")
        if not self.account_id:
            raise ValueError("account_id must not be empty")
