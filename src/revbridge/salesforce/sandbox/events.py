"""Change Data Capture for the sandbox: retained events and replay validation.

The org writes one event per record change, in the same transaction as the record (``Org``);
this module reads them back for subscribers. Delivery is the Streaming API's Bayeux/CometD
long-polling (``cometd.py``). Replay follows CometD: ``-1`` new events only, ``-2`` every
retained event, ``N`` the events after ``N``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from revbridge.salesforce.sandbox.config import SandboxConfig
from revbridge.salesforce.sandbox.faults import FaultState
from revbridge.salesforce.sandbox.schema import ObjectDef
from revbridge.salesforce.sandbox.store import Store, StoredEvent
from revbridge.salesforce.sandbox.values import format_datetime

ALL_CHANGE_EVENTS = "/data/ChangeEvents"
REPLAY_NEW = -1
REPLAY_ALL = -2


class UnknownChannel(ValueError):
    """No such change-event channel in this org."""


class InvalidReplayId(ValueError):
    """The replay id is outside retention or was never issued; the text is Salesforce's."""


@dataclass(frozen=True, slots=True)
class Subscription:
    """Where a subscriber starts: the channel filter (None = all) and the last replay id seen."""

    channel: str
    channel_filter: str | None
    after_replay_id: int


class ChangeEvents:
    """Reads retained change events for subscribers; the org writes them with each DML."""

    def __init__(
        self, config: SandboxConfig, store: Store, objects: dict[str, ObjectDef], faults: FaultState
    ) -> None:
        self._config = config
        self._store = store
        self._faults = faults
        self.channels = {ALL_CHANGE_EVENTS} | {
            f"/data/{o.change_event_name}" for o in objects.values() if o.change_events
        }

    def _retention_start(self) -> str:
        return format_datetime(self._config.clock.now() - self._config.event_retention)

    def _expired_through(self) -> int:
        """Replay ids at or below this are outside the retention window by fault injection."""
        before = self._faults.spec.expire_replay_before
        return 0 if before is None else before - 1

    def subscribe(self, channel: str, replay_id: int) -> Subscription:
        """Check ``channel`` and ``replay_id`` and say where delivery starts.

        A replay id is accepted only while the event it names is still retained and was issued;
        otherwise ``InvalidReplayId`` carries the Streaming API's message.
        """
        if channel not in self.channels:
            raise UnknownChannel(channel)
        oldest, newest = self._store.event_bounds(self._retention_start())
        expired_through = self._expired_through()
        first_retained = max(newest + 1 if oldest is None else oldest, expired_through + 1)
        channel_filter = None if channel == ALL_CHANGE_EVENTS else channel
        if replay_id == REPLAY_NEW:
            return Subscription(channel, channel_filter, newest)
        if replay_id == REPLAY_ALL:
            return Subscription(channel, channel_filter, first_retained - 1)
        if replay_id < first_retained or replay_id > newest:
            raise InvalidReplayId(
                f"The replayId {{{replay_id}}} you provided was invalid. Please provide a valid "
                "ID, -2 to replay all events, or -1 to replay only new events."
            )
        return Subscription(channel, channel_filter, replay_id)

    def fetch(self, subscription: Subscription, after: int, limit: int) -> list[StoredEvent]:
        floor = max(after, self._expired_through())
        return self._store.events_after(
            floor, subscription.channel_filter, self._retention_start(), limit
        )

    def deliverable(self, events: list[StoredEvent]) -> list[StoredEvent]:
        """``events`` as a subscriber receives them, with injected duplicates and reordering."""
        out: list[StoredEvent] = []
        for event in events:
            out.append(event)
            if self._faults.roll(self._faults.spec.duplicate_events):
                out.append(event)
        for i in range(len(out) - 1):
            if self._faults.roll(self._faults.spec.out_of_order):
                out[i], out[i + 1] = out[i + 1], out[i]
        return out

    @staticmethod
    def message(event: StoredEvent, channel: str) -> dict[str, Any]:
        """The Bayeux data message for ``event`` on the subscribed ``channel``."""
        data: dict[str, Any] = json.loads(event.payload)
        data["event"] = {"replayId": event.replay_id}
        return {"channel": channel, "data": data}
