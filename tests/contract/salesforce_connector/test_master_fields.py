"""The customer master's Account fields over real HTTP: the ERP's tax registration and the
owner's values written back land on the Account."""

from __future__ import annotations

from revbridge.salesforce.writeback import SalesforceWriteBack

from .conftest import Org, run


def test_the_erps_tax_registration_lands_on_the_account(org: Org) -> None:
    """``Tax_Registration__c`` holds the ERP's tax id; a name goes to ``Name`` beside it, and
    a web site to the standard ``Website``."""
    account = org.create("Account", {"Name": "Initech (edited)"})

    async def go() -> None:
        port = SalesforceWriteBack(org.client())
        try:
            await port.revert_account_fields(
                account, {"tax_id": "US-222", "name": "Initech", "website": "initech.example"}
            )
        finally:
            await port.close()

    run(go())
    (row,) = org.records("SELECT Name, Tax_Registration__c, Website FROM Account")
    assert (row["Name"], row["Tax_Registration__c"], row["Website"]) == (
        "Initech",
        "US-222",
        "initech.example",
    )


def test_a_web_site_field_left_blank_is_not_written(org: Org) -> None:
    """``[salesforce] website_field = ""`` (an integration user that cannot see ``Website``):
    the revert writes the name and leaves the web site out, instead of failing the whole
    update on a field the user cannot write."""
    from dataclasses import replace

    from revbridge.salesforce.writeback import WriteBackSettings

    account = org.create("Account", {"Name": "Initech (edited)", "Website": "edited.example"})

    async def go() -> None:
        settings = replace(WriteBackSettings(), website_field=None)
        port = SalesforceWriteBack(org.client(), settings)
        try:
            await port.revert_account_fields(
                account, {"name": "Initech", "website": "initech.example"}
            )
        finally:
            await port.close()

    run(go())
    (row,) = org.records("SELECT Name, Website FROM Account")
    assert (row["Name"], row["Website"]) == ("Initech", "edited.example")
