"""The ERP system the crosswalk records links under is the configured adapter's name, the one
delivery (``MdmErp.erp_system``) finds them under, whatever the configuration's ``erp.kind``."""

from __future__ import annotations

from pathlib import Path

import pytest

from revbridge.config import parse_config
from revbridge.services.targets import build_erp, erp_system_name


def test_the_fake_erp_is_named_as_its_adapter_reports_not_by_its_kind(tmp_path: Path) -> None:
    settings = parse_config({"erp": {"kind": "fake"}}, None, tmp_path)
    assert erp_system_name(settings) == build_erp(settings).capabilities.name == "fake-erp"


@pytest.mark.parametrize("kind", ["netsuite", "tryton"])
def test_the_real_erps_are_named_as_their_adapters_report(kind: str, tmp_path: Path) -> None:
    settings = parse_config({"erp": {"kind": kind}}, None, tmp_path)
    assert erp_system_name(settings) == kind
