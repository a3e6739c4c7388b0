"""The documentation's examples are real: every example in docs/reference/events.md validates."""

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest

from revbridge.codec import decode_obj
from revbridge.core.events import EventType

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_event_type_has_a_valid_example_in_the_reference() -> None:
    text = (DOCS / "reference" / "events.md").read_text()
    blocks = re.findall(r"```json\n(\{\n.*?)\n```", text, flags=re.S)
    examples = [json.loads(b, parse_float=Decimal) for b in blocks]
    assert {decode_obj(e).type for e in examples} == set(EventType)


def test_the_runbook_names_the_commands_it_tells_operators_to_run() -> None:
    runbook = (DOCS / "how-to" / "erp-outage.md").read_text()
    for command in (
        "revbridge dr status",
        "revbridge dr pause",
        "revbridge dr resume",
        "revbridge dr drain",
    ):
        assert command in runbook


def test_the_fakes_how_to_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Python example of "try your set-up with the fakes" runs and prints what it says."""
    text = (DOCS / "how-to" / "try-your-set-up-with-the-fakes.md").read_text()
    (code,) = re.findall(r"## In your own tests\n\n```python\n(.*?)```", text, flags=re.S)
    monkeypatch.chdir(tmp_path)
    printed: list[str] = []
    exec(
        compile(code, "how-to", "exec"), {"print": lambda *a: printed.append(" ".join(map(str, a)))}
    )
    assert printed[0] == "first read: 503 Service Unavailable"
    assert printed[1].startswith("captured: ")
    assert int(printed[1].split()[1]) > 0
    assert printed[2].startswith("delivered: ")
    assert int(printed[2].split()[1]) > 0


def test_the_tryton_how_to_configuration_loads() -> None:
    """The [erp] tables the Tryton how-to tells users to write are a valid configuration."""
    import re
    import tomllib

    from revbridge.config import parse_config

    howto = (DOCS / "how-to" / "connect-tryton.md").read_text()
    (block,) = [b for b in re.findall(r"```toml\n(.*?)```", howto, re.S) if "[erp.tryton]" in b]
    settings = parse_config(tomllib.loads(block), None, DOCS)
    assert settings.raw.erp.tryton.url == "https://erp.example.com"
    assert settings.raw.erp.tryton.gl_account_map["2400 Deferred Revenue"] == "487000"
