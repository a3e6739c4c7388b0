"""Fault injection: the grammar, outages, error rates and latency, toggled at runtime."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
import pytest

from revbridge.salesforce.sandbox.faults import (
    FaultSpec,
    FaultSyntaxError,
    format_faults,
    parse_faults,
)

from .conftest import API, Org, OrgFactory


def test_grammar_parses_every_fault() -> None:
    """The documented example parses to the values it names and formats back to itself."""
    spec = parse_faults(
        "latency=50ms,error_rate=0.1,outage=10s,duplicate_events=0.05,out_of_order=5%,"
        "expire_replay_before=12,seed=7"
    )
    assert spec == FaultSpec(
        latency=timedelta(milliseconds=50),
        error_rate=0.1,
        outage=timedelta(seconds=10),
        duplicate_events=0.05,
        out_of_order=0.05,
        expire_replay_before=12,
        seed=7,
    )
    assert parse_faults(format_faults(spec)) == spec
    assert parse_faults("") == FaultSpec()
    assert parse_faults("outage=2m").outage == timedelta(minutes=2)


@pytest.mark.parametrize(
    "text",
    ["latency=50", "error_rate=2", "bogus=1", "seed=x", "latency", "seed=1,seed=2", "outage=-1s"],
)
def test_grammar_rejects_bad_input(text: str) -> None:
    """Unknown keys, missing units, rates outside [0, 1] and repeats are errors."""
    with pytest.raises(FaultSyntaxError):
        parse_faults(text)


def test_outage_makes_the_org_unavailable_until_it_ends(org: Org) -> None:
    """During an outage REST and the token endpoint answer 503; afterwards all is normal."""
    assert org.client.put("/sandbox/admin/faults", content="outage=10s").status_code == 200
    down = org.client.get(f"{API}/limits")
    assert down.status_code == 503
    assert down.json()[0]["errorCode"] == "SERVER_UNAVAILABLE"
    token = httpx.post(f"{org.base_url}/services/oauth2/token", data={"grant_type": "password"})
    assert token.status_code == 503
    org.config.clock.advance(timedelta(seconds=11))
    assert org.client.get(f"{API}/limits").status_code == 200


def test_error_rate_is_reproducible_with_a_seed(make_org: OrgFactory) -> None:
    """error_rate fails that share of calls with 500 UNKNOWN_EXCEPTION; a seed repeats them."""
    outcomes = []
    for _ in range(2):
        with make_org(faults="error_rate=0.5,seed=11") as org:
            statuses = [org.client.get(f"{API}/limits").status_code for _ in range(20)]
            outcomes.append(statuses)
            failed = next(
                r
                for r in (org.client.get(f"{API}/limits") for _ in range(50))
                if r.status_code == 500
            )
            assert failed.json()[0]["errorCode"] == "UNKNOWN_EXCEPTION"
    assert outcomes[0] == outcomes[1]
    assert set(outcomes[0]) == {200, 500}


def test_latency_and_clearing_faults(org: Org) -> None:
    """latency delays each call; PUT with an empty string clears every fault."""
    org.client.put("/sandbox/admin/faults", content='{"faults": "latency=300ms"}')
    started = time.monotonic()
    org.client.get(f"{API}/limits")
    assert time.monotonic() - started >= 0.3
    cleared = org.client.put("/sandbox/admin/faults", content="")
    assert cleared.json()["faults"] == ""
    started = time.monotonic()
    org.client.get(f"{API}/limits")
    assert time.monotonic() - started < 0.3
    bad = org.client.put("/sandbox/admin/faults", content="latency=fast")
    assert bad.status_code == 400
