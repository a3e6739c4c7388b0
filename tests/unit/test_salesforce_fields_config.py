"""The org's write-back field names come from ``[salesforce.fields]``: renamed, left out, and
always treated as hub-owned by capture (no echo)."""

from pathlib import Path

import pytest

from revbridge.config import parse_config
from revbridge.errors import ConfigError
from revbridge.salesforce.capture import DEFAULT_ECHO_FIELDS
from revbridge.salesforce.writeback import GL_REFERENCE_OBJECTS, WriteBackSettings
from revbridge.services.targets import echo_fields, writeback_settings


def _settings(fields: dict[str, str], tmp_path: Path):  # type: ignore[no-untyped-def]
    return parse_config(
        {"salesforce": {"kind": "salesforce", "object_model": "revenue_cloud", "fields": fields}},
        None,
        tmp_path,
    )


def test_the_defaults_are_the_write_back_defaults(tmp_path: Path) -> None:
    """With no [salesforce.fields], the write-back writes exactly what it always wrote."""
    built = writeback_settings(_settings({}, tmp_path))
    assert built == WriteBackSettings(model="revenue_cloud")


def test_an_org_s_own_names_are_used_and_an_empty_name_is_not_written(tmp_path: Path) -> None:
    settings = _settings(
        {
            "credit_hold": "Hold_From_ERP__c",
            "tax_registration": "",
            "open_balance": "Open_AR__c",
            "gl_reference": "GL_Doc__c",
        },
        tmp_path,
    )
    built = writeback_settings(settings)
    assert built.credit_hold_field == "Hold_From_ERP__c"
    assert built.tax_registration_field is None
    assert built.open_balance_field == "Open_AR__c"
    assert built.gl_reference_fields == dict.fromkeys(GL_REFERENCE_OBJECTS, "GL_Doc__c")
    hub_owned = echo_fields(settings)
    assert {"Hold_From_ERP__c", "Open_AR__c", "GL_Doc__c"} <= hub_owned
    assert hub_owned >= DEFAULT_ECHO_FIELDS
    assert "" not in hub_owned


@pytest.mark.parametrize(
    ("key", "value"),
    [("credit_hold", ""), ("open_balance", "Open AR"), ("receipt", "1st__c")],
)
def test_a_name_that_is_no_field_api_name_is_refused_at_load(
    tmp_path: Path, key: str, value: str
) -> None:
    with pytest.raises(ConfigError, match=key):
        _settings({key: value}, tmp_path)
