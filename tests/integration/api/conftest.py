"""An app over a real ledger (SQLite and PostgreSQL), a signed-request helper, tokens."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from revbridge.clock import SystemClock
from revbridge.config import Settings, parse_config
from revbridge.services import open_ledger
from revbridge.services.access import Role, create_token, sign
from revbridge.store.ledger import Ledger

SECRET = "whsec-test-only-0123456789"
ORG_ID = "00D5e000000RvBrEAK"


def make_settings(store_url: str, base: Path, **server: Any) -> Settings:
    return parse_config(
        {
            "store": {"url": store_url},
            "erp": {"state_file": str(base / "fake-erp.json")},
            "salesforce": {"state_file": str(base / "fake-salesforce.json")},
            "server": {"secure_cookies": False, **server},
            "security": {"salesforce_org_ids": [ORG_ID]},
        },
        None,
        base,
    )


@dataclass
class Hub:
    client: httpx.Client
    ledger: Ledger
    settings: Settings
    tokens: dict[str, str]

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def signed(
        self, path: str, body: bytes | str, *, t: int | None = None, content_type: str = ""
    ) -> Any:
        raw = body.encode() if isinstance(body, str) else body
        sig = sign(SECRET.encode(), raw, t if t is not None else int(time.time()))
        return self.client.post(
            path,
            content=raw,
            headers={
                "X-Revbridge-Signature": sig,
                "Content-Type": content_type or "application/json",
            },
        )


def build_hub(
    store_url: str, tmp_path: Path, *, run_workers: bool = False, **server: Any
) -> Iterator[Hub]:
    from revbridge.api.app import create_app

    settings = make_settings(store_url, tmp_path, **server)
    ledger = open_ledger(settings)
    now = SystemClock().now()
    tokens = {
        role.label: create_token(
            ledger.engine, name=f"{role.label}-1", role=role, now=now, actor="test"
        )
        for role in Role
    }
    from revbridge.api.server import run_in_thread

    app = create_app(settings, ledger=ledger, run_workers=run_workers)
    with run_in_thread(app) as base_url, httpx.Client(base_url=base_url, timeout=30) as client:
        yield Hub(client=client, ledger=ledger, settings=settings, tokens=tokens)
    ledger.engine.dispose()


@pytest.fixture
def hub(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hub]:
    monkeypatch.setenv("REVBRIDGE_WEBHOOK_SECRET", SECRET)
    yield from build_hub(store_url, tmp_path)


def envelopes(n: int, seed: int = 1) -> list[dict[str, Any]]:
    from revbridge.generate import generate_events

    return list(generate_events(n, seed=seed))


def jsonl(items: list[dict[str, Any]]) -> str:
    return "\n".join(json.dumps(i) for i in items) + "\n"
