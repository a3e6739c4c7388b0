"""The Streaming API's Bayeux/CometD long-polling endpoint, for Change Data Capture.

``POST /cometd/{version}`` takes a JSON array of Bayeux messages and answers a JSON array:

* ``/meta/handshake`` -> a ``clientId``, ``supportedConnectionTypes: ["long-polling"]``,
  ``ext: {"replay": true, "payload.format": true}`` and the advice ``{"reconnect": "retry",
  "interval": 0, "timeout": 110000}``;
* ``/meta/subscribe`` with ``subscription`` a change-event channel and the replay extension
  ``ext: {"replay": {channel: replayId}}`` (``-1`` new events, ``-2`` every retained event,
  ``N`` the events after ``N``; no replay map at all means ``-1``). An expired or never-issued
  replay id fails the subscription with ``400::The replayId {N} you provided was invalid...``;
* ``/meta/connect`` (``connectionType: "long-polling"``) answers with the data messages waiting
  on the client's subscriptions followed by its own reply, or waits for some up to the timeout
  (110 s, or less when the request's ``advice.timeout`` asks for less: ``0`` answers at once);
  the first connect of a session is answered at once, as CometD servers do;
* ``/meta/unsubscribe``, ``/meta/disconnect``.

A client that does not come back within the reconnect timeout (40 s after its last answer) is
forgotten: its next message gets ``403::Unknown client`` with ``advice.reconnect:
"handshake"``, and it must handshake and subscribe again (with the replay id it last
processed). Each data message is ``{"channel": <subscribed channel>, "data": {"schema",
"payload": {"ChangeEventHeader": ..., fields}, "event": {"replayId": N}}}``.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from revbridge.salesforce.sandbox.config import SandboxConfig
from revbridge.salesforce.sandbox.events import (
    REPLAY_NEW,
    ChangeEvents,
    InvalidReplayId,
    Subscription,
    UnknownChannel,
)

Message = dict[str, Any]

HANDSHAKE = "/meta/handshake"
CONNECT = "/meta/connect"
SUBSCRIBE = "/meta/subscribe"
UNSUBSCRIBE = "/meta/unsubscribe"
DISCONNECT = "/meta/disconnect"
LONG_POLLING = "long-polling"
UNKNOWN_CLIENT = "403::Unknown client"


@dataclass(slots=True)
class _Subscribed:
    subscription: Subscription
    cursor: int


@dataclass(slots=True)
class _Client:
    client_id: str
    last_seen: datetime
    subscriptions: dict[str, _Subscribed] = field(default_factory=dict)
    polling: int = 0
    connected: bool = False


class CometdServer:
    """Bayeux sessions over the org's retained change events."""

    def __init__(self, config: SandboxConfig, events: ChangeEvents) -> None:
        self._config = config
        self._events = events
        self._clients: dict[str, _Client] = {}
        # The most data messages one connect answer carries (tests lower it to split batches).
        self.max_events = config.cometd_max_events
        # Set when the sandbox shuts down: waiting connects end without touching the store.
        self.closed = False

    @property
    def _advice(self) -> dict[str, Any]:
        timeout_ms = int(self._config.cometd_timeout.total_seconds() * 1000)
        return {"reconnect": "retry", "interval": 0, "timeout": timeout_ms}

    def reset(self) -> None:
        """Forget every session; the configured batch size again."""
        self._clients.clear()
        self.max_events = self._config.cometd_max_events

    def _now(self) -> datetime:
        return self._config.clock.now()

    def _expired(self, client: _Client, now: datetime) -> bool:
        """Away (no connect waiting) for longer than the reconnect timeout."""
        return client.polling == 0 and now - client.last_seen > self._config.cometd_reconnect

    def _client(self, message: Message) -> _Client | None:
        """The live client the message names; an expired one is forgotten first."""
        client = self._clients.get(str(message.get("clientId", "")))
        if client is None:
            return None
        if self._expired(client, self._now()):
            del self._clients[client.client_id]
            return None
        return client

    def _expire(self) -> None:
        now = self._now()
        for client_id, client in list(self._clients.items()):
            if self._expired(client, now):
                del self._clients[client_id]

    @staticmethod
    def _reply(message: Message, successful: bool, **extra: Any) -> Message:
        reply: Message = {"channel": message.get("channel"), "successful": successful}
        for key in ("id", "clientId"):
            if key in message:
                reply[key] = message[key]
        reply.update(extra)
        return reply

    def _unknown_client(self, message: Message, **extra: Any) -> Message:
        return self._reply(
            message,
            False,
            error=UNKNOWN_CLIENT,
            advice={"reconnect": "handshake", "interval": 0},
            **extra,
        )

    async def handle(
        self, messages: list[Message], gone: Callable[[], Awaitable[bool]] | None = None
    ) -> list[Message]:
        """Answer one request's messages, in order; a connect may wait for events, until
        ``gone()`` says the requester hung up or the server closes."""
        out: list[Message] = []
        for message in messages:
            channel = message.get("channel")
            if channel == HANDSHAKE:
                out.append(self._handshake(message))
            elif channel == SUBSCRIBE:
                out.append(self._subscribe(message))
            elif channel == UNSUBSCRIBE:
                out.append(self._unsubscribe(message))
            elif channel == CONNECT:
                out += await self._connect(message, gone)
            elif channel == DISCONNECT:
                client = self._client(message)
                if client is None:
                    out.append(self._unknown_client(message))
                else:
                    del self._clients[client.client_id]
                    out.append(self._reply(message, True))
            else:
                out.append(self._reply(message, False, error=f"400::Unsupported channel {channel}"))
        return out

    def _handshake(self, message: Message) -> Message:
        types = message.get("supportedConnectionTypes") or []
        if not message.get("version") or LONG_POLLING not in types:
            return self._reply(
                message,
                False,
                error="400::Handshake must name version 1.0 and the long-polling connection type",
                supportedConnectionTypes=[LONG_POLLING],
                advice={"reconnect": "none", "interval": 0},
            )
        self._expire()
        client_id = secrets.token_urlsafe(18)
        self._clients[client_id] = _Client(client_id, self._now())
        return self._reply(
            message,
            True,
            clientId=client_id,
            version="1.0",
            minimumVersion="1.0",
            supportedConnectionTypes=[LONG_POLLING],
            ext={"replay": True, "payload.format": True},
            advice=self._advice,
        )

    def _subscribe(self, message: Message) -> Message:
        channel = str(message.get("subscription", ""))
        client = self._client(message)
        if client is None:
            return self._unknown_client(message, subscription=channel)
        client.last_seen = self._now()
        replay_map = (message.get("ext") or {}).get("replay")
        if isinstance(replay_map, dict):
            if channel not in replay_map:
                return self._reply(
                    message,
                    False,
                    subscription=channel,
                    error=f"400::The replayId for channel {{{channel}}} wasn't found using the "
                    f"provided replay ID map {{{replay_map}}}. Ensure that the channel name you "
                    "provided in the replay map is valid and matches the channel name used for "
                    "subscribing.",
                )
            replay_text = replay_map[channel]
        else:
            replay_text = REPLAY_NEW
        try:
            subscription = self._events.subscribe(channel, int(replay_text))
        except UnknownChannel:
            return self._reply(
                message,
                False,
                subscription=channel,
                error="400::The channel you requested to subscribe to does not exist "
                f"{{{channel}}}",
            )
        except InvalidReplayId as exc:
            return self._reply(message, False, subscription=channel, error=f"400::{exc}")
        except (TypeError, ValueError):
            return self._reply(
                message, False, subscription=channel, error="400::replayId must be a number"
            )
        client.subscriptions[channel] = _Subscribed(subscription, subscription.after_replay_id)
        return self._reply(message, True, subscription=channel)

    def _unsubscribe(self, message: Message) -> Message:
        channel = str(message.get("subscription", ""))
        client = self._client(message)
        if client is None:
            return self._unknown_client(message, subscription=channel)
        client.last_seen = self._now()
        client.subscriptions.pop(channel, None)
        return self._reply(message, True, subscription=channel)

    def _collect(self, client: _Client) -> list[Message]:
        limit = self.max_events
        out: list[Message] = []
        for channel, subscribed in client.subscriptions.items():
            if len(out) >= limit:
                break
            batch = self._events.fetch(subscribed.subscription, subscribed.cursor, limit - len(out))
            if not batch:
                continue
            subscribed.cursor = max(subscribed.cursor, batch[-1].replay_id)
            out += [self._events.message(e, channel) for e in self._events.deliverable(batch)]
        return out

    async def _connect(
        self, message: Message, gone: Callable[[], Awaitable[bool]] | None
    ) -> list[Message]:
        client = self._client(message)
        if client is None:
            return [self._unknown_client(message)]
        if message.get("connectionType", LONG_POLLING) != LONG_POLLING:
            return [self._reply(message, False, error="400::Unsupported connection type")]
        # As CometD servers do, the first connect of a session is answered at once.
        wait_s = self._config.cometd_timeout.total_seconds() if client.connected else 0.0
        client.connected = True
        asked = (message.get("advice") or {}).get("timeout")
        if isinstance(asked, int | float) and asked >= 0:
            wait_s = min(wait_s, asked / 1000)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        poll_s = self._config.event_poll_interval.total_seconds()
        client.polling += 1
        try:
            while True:
                if self.closed or (gone is not None and await gone()):
                    return []
                delivered = self._collect(client)
                if delivered or loop.time() >= deadline:
                    break
                await asyncio.sleep(min(poll_s, max(deadline - loop.time(), 0)))
        finally:
            client.polling -= 1
            client.last_seen = self._now()
        return [*delivered, self._reply(message, True, advice=self._advice)]
