"""Fault injection: outages, random failures and responses lost after the write committed."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests

from revbridge.netsuite.sandbox import FaultSpec, parse_fault_spec
from tests.contract.netsuite.conftest import NetSuiteClient, error_codes


def test_the_fault_spec_grammar_reads_every_key() -> None:
    spec = parse_fault_spec(
        "outage=30s,latency=50ms,error_rate=0.1,throttle_rate=0.2,"
        "lost_response_rate=0.05,lost_response=error,seed=7"
    )
    assert spec == FaultSpec(
        outage=timedelta(seconds=30),
        latency=timedelta(milliseconds=50),
        error_rate=0.1,
        throttle_rate=0.2,
        lost_response_rate=0.05,
        lost_response="error",
        seed=7,
    )
    assert parse_fault_spec(spec.describe()) == spec


@pytest.mark.parametrize("bad", ["outage", "latency=fast", "error_rate=2", "colour=red", "seed=x"])
def test_a_bad_fault_spec_names_its_mistake(bad: str) -> None:
    with pytest.raises(ValueError, match=bad.split("=")[0]):
        parse_fault_spec(bad)


def test_an_outage_answers_503_until_it_is_lifted(client: NetSuiteClient) -> None:
    assert client.admin("PUT", "/faults", {"spec": "outage=on"}).json()["outageActive"] is True
    response = client.get("/record/v1/customer")
    assert response.status_code == 503
    assert error_codes(response) == ["SERVICE_UNAVAILABLE"]
    client.admin("DELETE", "/faults")
    assert client.get("/record/v1/customer").status_code == 200


def test_a_timed_outage_ends_by_itself(client: NetSuiteClient) -> None:
    client.admin("PUT", "/faults", {"spec": "outage=200ms"})
    assert client.get("/record/v1/customer").status_code == 503
    import time

    time.sleep(0.3)
    assert client.get("/record/v1/customer").status_code == 200


def test_a_dropped_response_still_leaves_the_record_committed(client: NetSuiteClient) -> None:
    client.admin("PUT", "/faults", {"spec": "lost_response_rate=1"})
    with pytest.raises(requests.exceptions.RequestException):
        client.put("/record/v1/customer/eid:SF-LOST", {"companyName": "Lost Response Ltd"})
    client.admin("DELETE", "/faults")
    found = client.get("/record/v1/customer/eid:SF-LOST")
    assert found.status_code == 200
    assert found.json()["companyName"] == "Lost Response Ltd"
    # The retry a careful client makes is an upsert, so it does not duplicate the customer.
    retry = client.put("/record/v1/customer/eid:SF-LOST", {"companyName": "Lost Response Ltd"})
    assert retry.status_code == 204
    assert client.get("/record/v1/customer").json()["totalResults"] == 1


def test_a_lost_response_in_error_mode_is_a_500_after_commit(client: NetSuiteClient) -> None:
    client.admin("PUT", "/faults", {"spec": "lost_response_rate=1,lost_response=error"})
    response = client.post("/record/v1/customer", {"companyName": "Committed Anyway"})
    assert response.status_code == 500
    client.admin("DELETE", "/faults")
    assert client.get("/record/v1/customer").json()["totalResults"] == 1


def test_random_errors_follow_the_seed(client: NetSuiteClient) -> None:
    def run() -> list[int]:
        client.admin("PUT", "/faults", {"spec": "error_rate=0.5,seed=7"})
        return [client.get("/record/v1/customer").status_code for _ in range(12)]

    first, second = run(), run()
    assert first == second
    assert set(first) - {200} <= {500, 503}
    assert 200 in first
    assert len(set(first)) > 1


def test_a_refused_write_is_not_lost_but_answered(client: NetSuiteClient) -> None:
    client.admin("PUT", "/faults", {"spec": "lost_response_rate=1"})
    response = client.post("/record/v1/customer", {"colour": "red"})
    assert response.status_code == 400
