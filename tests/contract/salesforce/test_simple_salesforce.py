"""The third-party client simple-salesforce, unchanged, against the sandbox over HTTPS."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceResourceNotFound,
)

from .conftest import Org


@pytest.fixture
def sf(tls_org: Org) -> Iterator[Salesforce]:
    session = requests.Session()
    assert tls_org.running.ca_cert is not None
    session.verify = str(tls_org.running.ca_cert)
    # REQUESTS_CA_BUNDLE in the environment would override session.verify otherwise.
    session.trust_env = False
    client = Salesforce(
        instance_url=tls_org.base_url,
        session_id=tls_org.password_token(),
        session=session,
        version="62.0",
    )
    yield client
    session.close()


def test_create_read_update_delete(sf: Salesforce) -> None:
    """simple-salesforce's sObject calls get the responses it expects."""
    created = sf.Account.create({"Name": "Simple Ltd", "BillingCity": "Lyon"})
    assert created["success"] is True
    account = sf.Account.get(created["id"])
    assert account["Name"] == "Simple Ltd"
    assert account["attributes"]["type"] == "Account"
    assert sf.Account.update(created["id"], {"BillingCity": "Nantes"}) == 204
    assert sf.Account.get(created["id"])["BillingCity"] == "Nantes"
    assert sf.Account.delete(created["id"]) == 204
    with pytest.raises(SalesforceResourceNotFound):
        sf.Account.get(created["id"])


def test_query_all_follows_next_records_url(sf: Salesforce) -> None:
    """query_all walks more than one page, honouring Sforce-Query-Options batchSize."""
    for start in range(0, 450, 150):
        sf.restful(
            "composite/sobjects",
            method="POST",
            json={
                "allOrNone": True,
                "records": [
                    {"attributes": {"type": "Account"}, "Name": f"Paged {n:03d}"}
                    for n in range(start, start + 150)
                ],
            },
        )
    first = sf.query(
        "SELECT Id, Name FROM Account WHERE Name LIKE 'Paged%' ORDER BY Name",
        headers={"Sforce-Query-Options": "batchSize=200"},
    )
    assert first["done"] is False
    assert first["totalSize"] == 450
    assert len(first["records"]) == 200
    everything = sf.query_all(
        "SELECT Id, Name FROM Account WHERE Name LIKE 'Paged%' ORDER BY Name",
        headers={"Sforce-Query-Options": "batchSize=200"},
    )
    names = [r["Name"] for r in everything["records"]]
    assert names == [f"Paged {n:03d}" for n in range(450)]


def test_upsert_by_external_id(sf: Salesforce) -> None:
    """Upsert creates (201), then updates (200) the record keyed by ERP_Customer_Number__c."""
    assert sf.Account.upsert("ERP_Customer_Number__c/C-9001", {"Name": "Upserted"}) == 201
    assert sf.Account.upsert("ERP_Customer_Number__c/C-9001", {"Name": "Upserted 2"}) == 200
    record = sf.Account.get_by_custom_id("ERP_Customer_Number__c", "C-9001")
    assert record["Name"] == "Upserted 2"
    rows = sf.query("SELECT Id FROM Account WHERE ERP_Customer_Number__c = 'C-9001'")
    assert rows["totalSize"] == 1


def test_errors_map_to_simple_salesforce_exceptions(sf: Salesforce) -> None:
    """Bad SOQL, unknown fields, missing records and ambiguous upserts raise the right errors."""
    with pytest.raises(SalesforceMalformedRequest) as malformed:
        sf.query("SELECT Id FROM Account WHERE")
    assert malformed.value.content[0]["errorCode"] == "MALFORMED_QUERY"
    with pytest.raises(SalesforceMalformedRequest) as invalid:
        sf.Account.create({"Name": "X", "No_Such_Field__c": 1})
    assert invalid.value.content[0]["errorCode"] == "INVALID_FIELD"
    with pytest.raises(SalesforceMalformedRequest) as required:
        sf.Account.create({"BillingCity": "Nowhere"})
    assert required.value.content[0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert required.value.content[0]["fields"] == ["Name"]
    with pytest.raises(SalesforceResourceNotFound):
        sf.Account.get("001000000000000AAA")
    sf.Account.create({"Name": "Twin A", "ERP_Id__c": "DUP-1"})
    sf.Account.create({"Name": "Twin B", "ERP_Id__c": "DUP-1"})
    with pytest.raises(SalesforceMoreThanOneRecord):
        sf.Account.upsert("ERP_Id__c/DUP-1", {"Name": "Which one?"})


def test_expired_session_raises_expired_session(sf: Salesforce, tls_org: Org) -> None:
    """After the token's TTL simple-salesforce sees SalesforceExpiredSession."""
    tls_org.config.clock.advance(tls_org.config.session_ttl * 2)
    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT Id FROM Account")
