"""Personal data and secrets never reach the logs; event ids and reasons do."""

from __future__ import annotations

import json

import pytest
import structlog

from revbridge.logs import redact_personal_data


def test_names_emails_addresses_and_tokens_are_redacted_but_ids_kept() -> None:
    """A log line about a customer keeps its event id and drops the person's details."""
    out = redact_personal_data(
        None,
        "info",
        {
            "event": "delivery failed for ana@example.com",
            "event_id": 42,
            "name": "Ana Lima",
            "payload": {"billing_address": {"line1": "1 Main St"}, "customer_id": "001A"},
            "token": "rb_secret",
        },
    )
    text = json.dumps(dict(out))
    assert "Ana Lima" not in text
    assert "ana@example.com" not in text
    assert "1 Main St" not in text
    assert "rb_secret" not in text
    assert out["event_id"] == 42
    assert out["payload"]["customer_id"] == "001A"


def test_the_configured_logger_redacts(capsys: pytest.CaptureFixture[str]) -> None:
    """The processor is in the chain the CLI and server configure (JSON logs)."""
    from revbridge.logs import configure

    configure("INFO", json_logs=True)
    try:
        structlog.get_logger("t").info("sent", email="li@example.com", event_id=7)
        line = capsys.readouterr().err.strip().splitlines()[-1]
    finally:
        configure("WARNING")
    record = json.loads(line)
    assert record["email"] == "[redacted]"
    assert record["event_id"] == 7
