"""The org's daily API request allocation, counted over a rolling 24 hours in hourly buckets."""

from __future__ import annotations

from datetime import datetime, timedelta

from revbridge.salesforce.sandbox.store import Store


def _hour(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H")


class ApiUsage:
    """Counts REST, composite and Bulk calls; the versions list and the token endpoint are free."""

    def __init__(self, store: Store, daily_limit: int) -> None:
        self._store = store
        self.daily_limit = daily_limit

    def used(self, now: datetime) -> int:
        return self._store.requests_since(_hour(now - timedelta(hours=23)))

    def count(self, now: datetime) -> None:
        self._store.count_request(_hour(now))

    def header(self, now: datetime) -> str:
        """The ``Sforce-Limit-Info`` value."""
        return f"api-usage={self.used(now)}/{self.daily_limit}"
