"""A running process's fakes take their faults from the config file as it is now: removing
``down=1`` ends the outage without a restart (a worker used to fail its probes until it was
restarted), and adding it starts one."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from revbridge.config import load_settings
from revbridge.engine.ports import RecordKind
from revbridge.errors import TransientError
from revbridge.services.targets import build_erp, fake_salesforce
from revbridge.testing import FakeErp, FakeSalesforce

CONFIG = """\
[store]
url = "sqlite:///revbridge.db"

[erp]
kind = "fake"
state_file = "fake-erp.json"
faults = "{erp}"

[salesforce]
kind = "fake"
state_file = "fake-salesforce.json"
faults = "{sf}"
"""


def _write(path: Path, *, erp: str = "", sf: str = "", bump: int = 0) -> None:
    path.write_text(CONFIG.format(erp=erp, sf=sf), encoding="utf-8")
    # A later modification time, whatever the file system's resolution.
    stamp = path.stat().st_mtime_ns + bump * 1_000_000_000
    os.utime(path, ns=(stamp, stamp))


def _erp_call(erp: FakeErp) -> None:
    asyncio.run(erp.find(RecordKind.INVOICE, "INV-1"))


def _org_call(org: FakeSalesforce) -> None:
    asyncio.run(org.find("x"))


def test_removing_down_from_the_config_ends_the_outage_without_a_restart(tmp_path: Path) -> None:
    config = tmp_path / "revbridge.toml"
    _write(config, erp="down=1", sf="down=1")
    settings = load_settings(config)
    erp = build_erp(settings)
    org = fake_salesforce(settings)
    assert isinstance(erp, FakeErp)
    with pytest.raises(TransientError, match="down"):
        _erp_call(erp)
    with pytest.raises(TransientError, match="down"):
        _org_call(org)
    _write(config, bump=1)
    _erp_call(erp)
    _org_call(org)
    _write(config, erp="down=1", bump=2)
    with pytest.raises(TransientError, match="down"):
        _erp_call(erp)
    _org_call(org)


def test_an_unchanged_spec_keeps_its_counters_and_a_bad_edit_keeps_the_faults(
    tmp_path: Path,
) -> None:
    config = tmp_path / "revbridge.toml"
    _write(config, erp="fail_next=2")
    erp = build_erp(load_settings(config))
    assert isinstance(erp, FakeErp)
    with pytest.raises(TransientError):
        _erp_call(erp)
    _write(config, erp="fail_next=2", bump=1)  # saved again, same spec: one failure left
    with pytest.raises(TransientError):
        _erp_call(erp)
    _erp_call(erp)
    config.write_text("[erp\nfaults = ", encoding="utf-8")  # an edit half-saved
    os.utime(config, ns=(config.stat().st_mtime_ns + 3 * 10**9,) * 2)
    _erp_call(erp)
    _write(config, erp="down=maybe", bump=4)
    _erp_call(erp)


def test_a_changed_state_file_or_sharing_waits_for_a_restart_and_says_so(tmp_path: Path) -> None:
    """The fault spec is taken live; a new state file or sharing setting is not (the fake
    would split its records between two files), and the log says it waits for a restart."""
    from structlog.testing import capture_logs

    config = tmp_path / "revbridge.toml"
    _write(config)
    erp = build_erp(load_settings(config))
    assert isinstance(erp, FakeErp)
    edited = CONFIG.format(erp="latency_s=0.001", sf="").replace(
        'state_file = "fake-erp.json"', 'state_file = "other-erp.json"\nshared = true'
    )
    config.write_text(edited, encoding="utf-8")
    os.utime(config, ns=(config.stat().st_mtime_ns + 10**9,) * 2)
    with capture_logs() as logs:
        _erp_call(erp)
        _erp_call(erp)  # said once, not on every call
    assert erp.faults.latency_s == 0.001
    assert (erp.state_file, erp.shared) == (tmp_path / "fake-erp.json", False)
    waiting = [
        (e["setting"], e["was"], e["now"])
        for e in logs
        if e["event"] == "fake: setting changed, taken at the next start"
    ]
    assert waiting == [("state_file", "fake-erp.json", "other-erp.json"), ("shared", None, True)]
    assert [e["now"] for e in logs if e["event"] == "fake: faults changed"] == ["latency_s=0.001"]


def test_a_fake_built_after_the_file_changed_takes_the_file_not_the_settings_read_at_start(
    tmp_path: Path,
) -> None:
    """A worker reads its settings once, and builds a new fake from them for each
    reconciliation run: with the outage over in the file, the run's fake still had the
    start's `down=1` and took the file's mtime as seen, so it stayed down until the next
    edit (the post-outage reconciliation failed with "the system is down")."""
    from structlog.testing import capture_logs

    config = tmp_path / "revbridge.toml"
    _write(config, erp="down=1", sf="down=1")
    settings = load_settings(config)  # at the worker's start
    _write(config, bump=1)  # the outage is over
    erp = build_erp(settings)  # later, from the settings read at the start
    org = fake_salesforce(settings)
    assert isinstance(erp, FakeErp)
    with capture_logs() as logs:
        _erp_call(erp)
        _org_call(org)
    # Not news (the file changed before this fake was built): no warning for each run.
    assert not [e for e in logs if e["log_level"] == "warning"], logs
    _write(config, erp="down=1", bump=2)  # and it still follows the file
    with pytest.raises(TransientError, match="down"):
        _erp_call(erp)
