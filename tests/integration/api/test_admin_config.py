"""An admin changes the routing policy and the ERP mappings through the ops API: the change
lands in revbridge.toml with its comments kept, is validated before anything is written, is
audited with the value before and after, and is refused to anyone below admin."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from revbridge.clock import SystemClock
from revbridge.config import INIT_TEMPLATE, load_settings
from revbridge.core.events import EventType
from revbridge.services import open_ledger
from revbridge.services.access import Role, create_token
from revbridge.store.ledger import Ledger
from revbridge.store.schema import audit_log


@dataclass
class Admin:
    client: httpx.Client
    ledger: Ledger
    config: Path
    tokens: dict[str, str]

    def as_(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


@pytest.fixture
def admin(store_url: str, tmp_path: Path) -> Iterator[Admin]:
    from revbridge.api.app import create_app
    from revbridge.api.server import run_in_thread

    config = tmp_path / "revbridge.toml"
    text = INIT_TEMPLATE.replace('url = "sqlite:///revbridge.db"', f'url = "{store_url}"', 1)
    text = text.replace("[server]\n", "[server]\nsecure_cookies = false\n", 1)
    config.write_text(text, encoding="utf-8")
    settings = load_settings(config)
    ledger = open_ledger(settings)
    now = SystemClock().now()
    tokens = {
        role.label: create_token(
            ledger.engine, name=f"{role.label}-a", role=role, now=now, actor="t"
        )
        for role in Role
    }
    app = create_app(settings, ledger=ledger, run_workers=False)
    with run_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield Admin(client, ledger, config, tokens)
    ledger.engine.dispose()


def _audit(ledger: Ledger) -> list[tuple[str, str, dict[str, object]]]:
    with ledger.engine.connect() as conn:
        rows = conn.execute(
            select(audit_log.c.actor, audit_log.c.entity_id, audit_log.c.details).where(
                audit_log.c.action == "config.change"
            )
        ).all()
    return [(a, e, d if isinstance(d, dict) else json.loads(d)) for a, e, d in rows]


def test_an_admin_reclassifies_an_event_type_in_the_file(admin: Admin) -> None:
    """customer.upserted becomes real-time: the file says so (comments kept), the next load
    and the running server agree, and the audit log has before and after."""
    body = {"pattern": "realtime", "rationale": "Sales needs new accounts in the ERP at once."}
    answer = admin.client.put(
        "/api/v1/admin/policy/customer.upserted", json=body, headers=admin.as_("admin")
    )
    assert answer.status_code == 200, answer.text
    text = admin.config.read_text()
    assert "# The hybrid map." in text  # the template's comments survive
    assert tomllib.loads(text)["policy"]["events"]["customer.upserted"]["pattern"] == "realtime"
    assert load_settings(admin.config).policy.for_type(
        EventType.CUSTOMER_UPSERTED
    ).pattern.value == ("realtime")
    rows = admin.client.get("/api/v1/policy", headers=admin.as_("viewer")).json()
    assert {r["type"]: r["pattern"] for r in rows}["customer.upserted"] == "realtime"
    ((actor, key, details),) = _audit(admin.ledger)
    assert (actor, key) == ("token:admin-a", "policy.events.customer.upserted")
    assert details["before"] is None
    assert details["after"]["pattern"] == "realtime"


def test_a_bad_change_is_refused_and_the_file_is_untouched(admin: Admin) -> None:
    """A batch class with a broken cron names the key and why; nothing is written or audited."""
    before = admin.config.read_bytes()
    answer = admin.client.put(
        "/api/v1/admin/policy/gl.posted",
        json={"pattern": "batch", "schedule": "every night", "rationale": "x"},
        headers=admin.as_("admin"),
    )
    assert answer.status_code == 400
    assert "policy.events" in answer.text
    assert "gl.posted" in answer.text
    unknown = admin.client.put(
        "/api/v1/admin/policy/invoice.voided",
        json={"pattern": "realtime", "rationale": "x"},
        headers=admin.as_("admin"),
    )
    assert unknown.status_code == 400
    assert "unknown event type" in unknown.text
    assert admin.config.read_bytes() == before
    assert _audit(admin.ledger) == []


def test_only_an_admin_changes_configuration(admin: Admin) -> None:
    """An operator may replay and pause, not reconfigure: 403, and the file is untouched."""
    before = admin.config.read_bytes()
    for path in ("/api/v1/admin/policy/gl.posted", "/api/v1/admin/mappings/item_map/SKU-1"):
        answer = admin.client.put(
            path,
            json={"pattern": "realtime", "rationale": "x", "value": "7"},
            headers=admin.as_("operator"),
        )
        assert answer.status_code == 403
    assert admin.config.read_bytes() == before


def test_an_admin_sets_and_removes_an_erp_mapping(admin: Admin) -> None:
    """A GL account mapping is added, shown, removed; removing it twice is refused."""
    path = "/api/v1/admin/mappings/gl_account_map/4000"
    put = admin.client.put(path, json={"value": "54"}, headers=admin.as_("admin"))
    assert put.status_code == 200
    assert put.json()["restart_workers"] is True
    shown = admin.client.get("/api/v1/admin/mappings", headers=admin.as_("admin")).json()
    assert shown["gl_account_map"] == {"4000": "54"}
    assert load_settings(admin.config).raw.erp.netsuite.gl_account_map == {"4000": "54"}
    assert admin.client.delete(path, headers=admin.as_("admin")).status_code == 200
    assert load_settings(admin.config).raw.erp.netsuite.gl_account_map == {}
    again = admin.client.delete(path, headers=admin.as_("admin"))
    assert again.status_code == 400
    assert "no such entry" in again.text
    assert [key for _, key, _ in _audit(admin.ledger)] == [
        "erp.netsuite.gl_account_map.4000",
        "erp.netsuite.gl_account_map.4000",
    ]
