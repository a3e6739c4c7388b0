"""A Bayeux/CometD long-polling subscriber for the Streaming API (Change Data Capture).

Salesforce serves CometD at ``{instance}/cometd/{version}`` (durable replay from API 37.0), with
the OAuth bearer token on every request. One subscriber holds one Bayeux session on one channel::

    handshake   -> clientId (the session), supportedConnectionTypes ["long-polling"]
    subscribe   -> subscription=<channel>, ext.replay={<channel>: replayId}
                   (-1 new events, -2 every retained event, N the events after N)
    connect     -> the data messages waiting on the channel, then the connect reply; the server
                   holds the request up to its timeout (110 s) when nothing waits, less when the
                   request's advice.timeout asks for less (0 answers at once)
    disconnect  -> ends the session

No maintained CometD library fits (``aiocometd-ng`` and ``aiosfstream-ng`` need aiohttp, and the
connector's calls all go through ``SalesforceClient``: its token cache, renewal on 401, error
translation and logging), so this is a small client of its own.

Failures: an expired or unknown replay id fails the subscription (``400::The replayId {N} you
provided was invalid...``) and raises ``InvalidReplayId``; a server that forgot the session
(``403::Unknown client``, ``advice.reconnect: "handshake"``, e.g. after the 40 s reconnect
timeout) is answered by a new handshake and subscription from ``replay_id``, the last replay id
the caller acknowledged, so nothing is skipped; any other refusal is ``StreamingError``
(terminal). HTTP failures are ``SalesforceClient``'s (401 renews the token once; 5xx and
transport errors are ``TransientError``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from revbridge.errors import TerminalError, TransientError
from revbridge.salesforce.client import SalesforceClient, loads

log = logging.getLogger(__name__)

Message = dict[str, Any]
REPLAY_NEW = -1
REPLAY_ALL = -2
# The HTTP read timeout of a long poll: the server's answer may take this long beyond the wait.
_POLL_MARGIN = timedelta(seconds=30)
# How often in a row a forgotten session is re-established before giving up.
_MAX_REHANDSHAKES = 3


class StreamingError(TerminalError):
    """The Streaming API refused a handshake, subscription or connect."""


class InvalidReplayId(StreamingError):
    """The replay id is outside the retention window (or was never issued)."""


def replay_id_of(message: Message) -> int:
    """The replay id a CDC data message carries in ``data.event.replayId``."""
    return int(message["data"]["event"]["replayId"])


class CometdSubscriber:
    """One Bayeux session subscribed to ``channel``; ``wait`` is how long a connect may be held
    by the server when no event waits (zero: ``receive`` returns at once, empty when drained)."""

    def __init__(
        self,
        client: SalesforceClient,
        channel: str,
        *,
        wait: timedelta = timedelta(0),
    ) -> None:
        self.client = client
        self.channel = channel
        self.wait = wait
        self.replay_id = REPLAY_NEW
        self.client_id: str | None = None
        self.handshakes = 0
        self._message_id = 0

    @property
    def path(self) -> str:
        return f"/cometd/{self.client.api_version}"

    def _message(self, channel: str, **fields: Any) -> Message:
        self._message_id += 1
        message: Message = {"channel": channel, "id": str(self._message_id), **fields}
        if self.client_id is not None and channel != "/meta/handshake":
            message["clientId"] = self.client_id
        return message

    async def _send(
        self, messages: Sequence[Message], timeout: timedelta | None = None
    ) -> list[Message]:
        response = await self.client.request(
            "POST", self.path, body=list(messages), timeout=timeout
        )
        answer = loads(response.content)
        if not isinstance(answer, list):
            raise StreamingError(f"salesforce streaming: unexpected answer {type(answer).__name__}")
        return [m for m in answer if isinstance(m, dict)]

    @staticmethod
    def _reply(answer: list[Message], channel: str) -> Message:
        for message in answer:
            if message.get("channel") == channel:
                return message
        raise StreamingError(f"salesforce streaming: no {channel} reply")

    async def subscribe(self, replay_id: int) -> None:
        """Handshake (a new session) and subscribe from ``replay_id``."""
        self.client_id = None
        answer = await self._send(
            [
                self._message(
                    "/meta/handshake",
                    version="1.0",
                    minimumVersion="1.0",
                    supportedConnectionTypes=["long-polling"],
                    ext={"replay": True},
                )
            ]
        )
        reply = self._reply(answer, "/meta/handshake")
        if not reply.get("successful"):
            raise StreamingError(f"salesforce streaming handshake refused: {reply.get('error')}")
        self.client_id = str(reply["clientId"])
        self.handshakes += 1
        answer = await self._send(
            [
                self._message(
                    "/meta/subscribe",
                    subscription=self.channel,
                    ext={"replay": {self.channel: replay_id}},
                )
            ]
        )
        reply = self._reply(answer, "/meta/subscribe")
        if not reply.get("successful"):
            error = str(reply.get("error", ""))
            if "replayId" in error and "invalid" in error:
                raise InvalidReplayId(f"salesforce streaming: {error}")
            raise StreamingError(f"salesforce streaming subscription refused: {error}")
        self.replay_id = replay_id
        log.info(
            "salesforce streaming: subscribed to %s from replay id %s", self.channel, replay_id
        )

    async def receive(self) -> list[Message]:
        """One connect: the data messages for the channel, in the order delivered."""
        if self.client_id is None:
            await self.subscribe(self.replay_id)
        for _ in range(_MAX_REHANDSHAKES):
            wait_ms = int(self.wait.total_seconds() * 1000)
            answer = await self._send(
                [
                    self._message(
                        "/meta/connect",
                        connectionType="long-polling",
                        advice={"timeout": wait_ms},
                    )
                ],
                timeout=self.wait + _POLL_MARGIN,
            )
            reply = self._reply(answer, "/meta/connect")
            if reply.get("successful"):
                return [m for m in answer if m.get("channel") == self.channel and "data" in m]
            advice = reply.get("advice") or {}
            if advice.get("reconnect") != "handshake":
                raise StreamingError(f"salesforce streaming connect refused: {reply.get('error')}")
            log.info(
                "salesforce streaming: session forgotten (%s); handshaking again from replay id %s",
                reply.get("error"),
                self.replay_id,
            )
            await self.subscribe(self.replay_id)
        raise StreamingError("salesforce streaming: the server keeps forgetting the session")

    async def close(self) -> None:
        """Disconnect (best effort: the server forgets an idle session anyway)."""
        if self.client_id is None:
            return
        try:
            await self._send([self._message("/meta/disconnect")])
        except (TransientError, TerminalError) as exc:  # closing must not mask the outcome
            log.info("salesforce streaming: disconnect failed: %s", type(exc).__name__)
        finally:
            self.client_id = None
