"""Admin changes to the configuration: the routing policy and the ERP mappings.

An admin changes ``revbridge.toml`` itself, never a copy in memory only: the file stays the one
source of truth that `revbridge policy show`, the workers and the next start read. A change is

1. applied to the file's TOML document with tomlkit (comments and layout kept),
2. validated as a whole with the same loader every command uses (a bad cron, an unknown event
   type or key is refused with the file, the key and the reason; nothing is written),
3. written atomically (a temporary file beside it, then a rename: never half a file),
4. audited with the value before and after, and the admin's name.

What takes effect when: the policy applies to events ingested from then on (the server swaps
its settings at once; other processes on their next start); a mapping is read by an ERP adapter
when it is built, so running workers pick it up at their next start.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import tomlkit
import tomlkit.items

from revbridge.config import Settings, load_settings
from revbridge.core.events import EventType
from revbridge.errors import ConfigError
from revbridge.store.ledger import Ledger

MAPPINGS = ("currency_map", "gl_account_map", "item_map")
"""The ERP mappings an admin edits: ``[erp.netsuite]`` tables, canonical key -> ERP id."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigChange:
    """What one admin change did: the key, the value before and after, the settings now."""

    key: str
    before: Any
    after: Any
    settings: Settings


def _document(settings: Settings) -> tuple[Path, tomlkit.TOMLDocument]:
    if settings.path is None:
        raise ConfigError(
            "(built-in defaults)",
            "config",
            "there is no revbridge.toml to change: run `revbridge init` first",
        )
    return settings.path, tomlkit.parse(settings.path.read_text(encoding="utf-8"))


def _table(doc: tomlkit.TOMLDocument, *path: str) -> Any:
    """The table at ``path``, created (as a super table where it only holds tables)."""
    current: Any = doc
    for part in path:
        if part not in current:
            current[part] = tomlkit.table(is_super_table=part in ("policy", "events", "erp"))
        current = current[part]
    return current


def _plain(value: Any) -> Any:
    return value.unwrap() if isinstance(value, tomlkit.items.Item) else value


def _commit(
    settings: Settings,
    path: Path,
    doc: tomlkit.TOMLDocument,
    *,
    key: str,
    before: Any,
    after: Any,
    ledger: Ledger,
    actor: str,
    now: datetime,
) -> ConfigChange:
    text = tomlkit.dumps(doc)
    # Validate the whole file as the next command would read it, before anything is written.
    with tempfile.TemporaryDirectory(prefix="revbridge-config-") as scratch:
        candidate = Path(scratch) / path.name
        candidate.write_text(text, encoding="utf-8")
        try:
            load_settings(candidate, cwd=path.parent)
        except ConfigError as exc:
            raise ConfigError.of(str(path), exc.problems) from exc
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    ledger.audit(
        actor=actor,
        action="config.change",
        entity_type="config",
        entity_id=key,
        now=now,
        details={"file": str(path), "before": before, "after": after},
    )
    return ConfigChange(key=key, before=before, after=after, settings=load_settings(path))


def set_event_policy(
    settings: Settings,
    ledger: Ledger,
    *,
    event_type: str,
    pattern: str,
    schedule: str | None,
    rationale: str,
    actor: str,
    now: datetime,
) -> ConfigChange:
    """Classify ``event_type`` real-time or batch (with its cron schedule and rationale)."""
    try:
        kind = EventType(event_type)
    except ValueError:
        known = ", ".join(t.value for t in EventType)
        raise ConfigError(
            "policy", f"policy.events.{event_type}", f"unknown event type; known: {known}"
        ) from None
    path, doc = _document(settings)
    events = _table(doc, "policy", "events")
    before = _plain(events.get(kind.value))
    entry = tomlkit.table()
    entry["pattern"] = pattern
    if schedule is not None:
        entry["schedule"] = schedule
    entry["rationale"] = rationale
    events[kind.value] = entry
    return _commit(
        settings,
        path,
        doc,
        key=f"policy.events.{kind.value}",
        before=before,
        after=_plain(entry),
        ledger=ledger,
        actor=actor,
        now=now,
    )


def set_mapping(
    settings: Settings,
    ledger: Ledger,
    *,
    mapping: str,
    key: str,
    value: str | None,
    actor: str,
    now: datetime,
) -> ConfigChange:
    """Set (or, with ``value`` None, remove) one entry of an ERP mapping."""
    if mapping not in MAPPINGS:
        raise ConfigError(
            "mapping", f"erp.netsuite.{mapping}", f"not a mapping; known: {', '.join(MAPPINGS)}"
        )
    if not key.strip():
        raise ConfigError("mapping", f"erp.netsuite.{mapping}", "the key must not be empty")
    path, doc = _document(settings)
    table = _table(doc, "erp", "netsuite")
    if mapping not in table:
        table[mapping] = tomlkit.inline_table()
    entries = table[mapping]
    before = _plain(entries.get(key))
    if value is None:
        if key not in entries:
            raise ConfigError(str(path), f"erp.netsuite.{mapping}.{key}", "no such entry")
        del entries[key]
    else:
        entries[key] = value
    return _commit(
        settings,
        path,
        doc,
        key=f"erp.netsuite.{mapping}.{key}",
        before=before,
        after=value,
        ledger=ledger,
        actor=actor,
        now=now,
    )


def mappings(settings: Settings) -> dict[str, dict[str, str]]:
    """The ERP mappings in force."""
    ns = settings.raw.erp.netsuite
    return {name: dict(getattr(ns, name)) for name in MAPPINGS}
