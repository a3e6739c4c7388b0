"""One error tree for revbridge.

::

    RevbridgeError
    ├── ConfigError            bad revbridge.toml: names the file, and each key and reason
    ├── UsageError             an operator command was given a value it cannot use
    ├── DomainError            a business rule was broken (never retried)
    │   ├── InvalidMoney       bad currency, over-precise amount, mixed currencies
    │   ├── UnbalancedJournal  debits and credits differ in some currency
    │   ├── InvalidEvent       an envelope or payload that is not a canonical event
    │   └── Held               a person must decide first (held for review, not a failure)
    ├── StoreError             the ledger could not be read or written
    └── DeliveryError          a call to an external system failed
        ├── TransientError     worth retrying (timeouts, 429, 5xx); may carry retry_after
        │   ├── RateLimited    the system said "too many requests": slow down, then retry
        │   └── AccessRefused  the system refuses the integration itself (credentials, token,
        │                      user, database): stop calling it, keep every event, alert
        └── TerminalError      retrying this record cannot help (validation, missing mapping,
                               a permission on this kind of record)

Third-party errors are translated once, at the boundary, with ``raise ... from exc``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta


class RevbridgeError(Exception):
    """Base of every error revbridge raises on purpose."""


class ConfigError(RevbridgeError):
    """The configuration is invalid. The message names the file and, for every problem found
    (``problems``: all of them at once, not only the first), the key and the reason; ``key``
    and ``reason`` are the first problem's."""

    def __init__(
        self, path: str, key: str, reason: str, *, more: Sequence[tuple[str, str]] = ()
    ) -> None:
        self.path = path
        self.key = key
        self.reason = reason
        self.problems: tuple[tuple[str, str], ...] = ((key, reason), *more)
        if more:
            listed = "".join(f"\n  {k}: {r}" for k, r in self.problems)
            super().__init__(f"{path}: {len(self.problems)} problems{listed}")
        else:
            super().__init__(f"{path}: {key}: {reason}")

    @classmethod
    def of(cls, path: str, problems: Sequence[tuple[str, str]]) -> ConfigError:
        """One error for all of ``problems`` (``(key, reason)`` pairs, at least one)."""
        (key, reason), *more = problems
        return cls(path, key, reason, more=more)


class UsageError(RevbridgeError, ValueError):
    """An operator command was given a value it cannot use (a drain rate of zero, say)."""


class DomainError(RevbridgeError, ValueError):
    """A business rule was broken. Retrying never helps."""


class InvalidMoney(DomainError):
    """An unknown currency, an amount more precise than its currency, or mixed currencies."""


class UnbalancedJournal(DomainError):
    """A journal entry whose debits and credits differ in at least one currency."""


class InvalidEvent(DomainError):
    """An envelope or payload that is not a valid canonical event."""


class Held(DomainError):
    """The record waits for a person's decision (``waits_for`` names it, e.g. ``review:12``).

    Not a failure: the delivery is held, neither retried nor dead-lettered, and released when
    the decision is made. A route that does not know holds still refuses the record (it is a
    ``DomainError``), so nothing is ever sent by mistake.
    """

    def __init__(self, message: str, *, waits_for: str) -> None:
        self.waits_for = waits_for
        super().__init__(message)


class StoreError(RevbridgeError):
    """The ledger could not be read or written."""


class DeliveryError(RevbridgeError):
    """A call to an external system failed."""


class TransientError(DeliveryError):
    """Worth retrying later; ``retry_after`` is the system's own hint, when it gave one."""

    def __init__(self, message: str, *, retry_after: timedelta | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class RateLimited(TransientError):
    """A rate or concurrency limit was hit (HTTP 429 or the system's own limit error)."""


class AccessRefused(TransientError):
    """The system refuses the integration itself, not a record: its credentials were
    rejected, its token revoked, its user locked, the database named is not there. Every call
    would fail alike until a person fixes it, so no event is to blame: the circuit opens at
    once, events keep their attempts and age (nothing is dead-lettered), the circuit's alert
    says why, and the half-open probe resumes delivery once access is back (decision 0038)."""


class TerminalError(DeliveryError):
    """Retrying cannot help: the request itself is wrong, or a mapping or permission is missing."""
