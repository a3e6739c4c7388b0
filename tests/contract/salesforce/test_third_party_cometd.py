"""A standard third-party CometD client (aiocometd-ng, over aiohttp) subscribes to the sandbox's
change events unchanged: only the bearer token and the replay map are added, through the
library's own extension points, as for a real org."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiocometd_ng import Client, ConnectionType
from aiocometd_ng.exceptions import ServerError
from aiocometd_ng.extensions import AuthExtension, Extension

from .conftest import Org
from .test_events import make_changes


class BearerAuth(AuthExtension):
    def __init__(self, token: str) -> None:
        self.token = token

    async def outgoing(self, payload: Any, headers: Any) -> None:
        headers["Authorization"] = f"Bearer {self.token}"

    async def incoming(self, payload: Any, headers: Any = None) -> None:
        return None


class Replay(Extension):
    """Salesforce's replay extension: ``ext.replay`` on every subscribe."""

    def __init__(self, replay: dict[str, int]) -> None:
        self.replay = replay

    async def outgoing(self, payload: Any, headers: Any) -> None:
        for message in payload:
            if message.get("channel") == "/meta/subscribe":
                message.setdefault("ext", {})["replay"] = dict(self.replay)

    async def incoming(self, payload: Any, headers: Any = None) -> None:
        for message in payload:
            event = (message.get("data") or {}).get("event") or {}
            if "replayId" in event:
                self.replay[message["channel"]] = event["replayId"]


def token(org: Org) -> str:
    return str(org.client.headers["Authorization"]).removeprefix("Bearer ")


async def receive(org: Org, replay: Replay, count: int) -> list[dict[str, Any]]:
    client = Client(
        f"{org.base_url}/cometd/62.0",
        ConnectionType.LONG_POLLING,
        auth=BearerAuth(token(org)),
        extensions=[replay],
    )
    async with client:
        await client.subscribe("/data/ChangeEvents")
        return [await asyncio.wait_for(client.receive(), 10) for _ in range(count)]


def test_aiocometd_receives_change_events_and_resumes(org: Org) -> None:
    account, invoice = make_changes(org)
    replay = Replay({"/data/ChangeEvents": -2})
    messages = asyncio.run(receive(org, replay, 3))
    headers = [m["data"]["payload"]["ChangeEventHeader"] for m in messages]
    assert [(h["entityName"], h["changeType"]) for h in headers] == [
        ("Account", "CREATE"),
        ("blng__Invoice__c", "CREATE"),
        ("blng__Invoice__c", "UPDATE"),
    ]
    assert headers[0]["recordIds"] == [account]
    assert headers[2]["recordIds"] == [invoice]
    # The library's replay map now holds the last replay id: a new session resumes after it.
    org.create("Account", {"Name": "After the restart"})
    later = asyncio.run(receive(org, replay, 1))
    assert later[0]["data"]["payload"]["Name"] == "After the restart"
    assert later[0]["data"]["event"]["replayId"] > messages[-1]["data"]["event"]["replayId"]


def test_aiocometd_sees_the_expired_replay_id_refusal(org: Org) -> None:
    make_changes(org)
    org.client.put("/sandbox/admin/faults", content="expire_replay_before=3")
    with pytest.raises(ServerError) as refused:
        asyncio.run(receive(org, Replay({"/data/ChangeEvents": 1}), 1))
    assert "The replayId {1} you provided was invalid" in str(refused.value.response)
