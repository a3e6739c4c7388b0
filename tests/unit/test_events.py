import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from revbridge.codec import DecodeError, decode_line, decode_obj, encode_envelope, encode_payload
from revbridge.core.events import (
    Event,
    EventType,
    JournalLine,
    RevenueRecognized,
    check_journal,
)
from revbridge.core.sfid import make_id
from revbridge.errors import UnbalancedJournal
from revbridge.generate import generate_events


def _invoice(**changes: Any) -> dict[str, Any]:
    env: dict[str, Any] = {
        "type": "invoice.posted",
        "source": "salesforce",
        "source_id": "a0X000000000001AAA",
        "source_version": "2026-10-01T09:00:00Z",
        "occurred_at": "2026-10-01T09:00:00Z",
        "data": {
            "invoice_id": "a0X000000000001AAA",
            "invoice_number": "INV-1",
            "customer_id": "0010000000000AAAAA",
            "currency": "USD",
            "invoice_date": "2026-10-01",
            "due_date": "2026-10-31",
            "lines": [
                {
                    "line_id": "1",
                    "description": "Subscription",
                    "quantity": "2",
                    "unit_price": "50",
                    "amount": "100.00",
                    "tax_amount": "8.00",
                }
            ],
            "subtotal": "100.00",
            "tax_total": "8.00",
            "total": "108.00",
        },
    }
    for path, value in changes.items():
        target = env
        *parents, last = path.split("__")
        for p in parents:
            target = target[int(p)] if p.isdigit() else target[p]
        target[last] = value
    return env


def _reject(env: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(DecodeError) as info:
        decode_obj(json.loads(json.dumps(env)))
    return info.value.rejection.code, info.value.rejection.reason


def test_a_valid_invoice_decodes_with_exact_amounts_and_provenance() -> None:
    event = decode_obj(_invoice())
    assert event.type is EventType.INVOICE_POSTED
    assert event.data.total == Decimal("108.00")  # type: ignore[union-attr]
    assert event.idempotency_key == (
        "salesforce:invoice.posted:a0X000000000001AAA:2026-10-01T09:00:00Z"
    )
    assert event.subject_ref == "invoice:a0X000000000001AAA"
    assert event.depends_on == ("customer:0010000000000AAAAA",)


def test_json_numbers_are_read_as_exact_decimals_never_floats() -> None:
    """0.1 + 0.2 style float damage cannot reach the ledger: numbers are parsed from text."""
    line = json.dumps(_invoice()).replace('"108.00"', "108.00").replace('"8.00"', "8.0")
    event = decode_line(line)
    assert encode_payload(event.type, event.data).count('"108.00"') == 1


@pytest.mark.parametrize(
    ("change", "code", "fragment"),
    [
        ({"data__total": "108.001"}, "invalid_money", "108.001 USD has more decimals"),
        (
            {"data__lines__0__tax_amount": "8.001"},
            "invalid_money",
            "lines[0].tax_amount: 8.001 USD has more decimals",
        ),
        ({"data__currency": "ABC"}, "invalid_money", "unknown currency 'ABC'"),
        ({"data__total": "109.00"}, "schema_violation", "total: 109.00 is not subtotal"),
        ({"data__subtotal": "90.00"}, "schema_violation", "subtotal: 90.00 is not the sum"),
        ({"data__due_date": "2026-09-01"}, "schema_violation", "due_date: before invoice_date"),
        ({"occurred_at": "2026-10-01T09:00:00"}, "schema_violation", "timezone-aware"),
        ({"data__lines": []}, "schema_violation", "at least one line"),
        ({"data__mystery": 1}, "schema_violation", "data.mystery: unknown field"),
        ({"type": "invoice.paid"}, "schema_violation", "unknown event type 'invoice.paid'"),
        ({"source_id": ""}, "schema_violation", "source_id"),
    ],
)
def test_bad_input_is_rejected_with_what_where_and_why(
    change: dict[str, Any], code: str, fragment: str
) -> None:
    got_code, reason = _reject(_invoice(**change))
    assert got_code == code
    assert fragment in reason


def _one_of_each_type() -> dict[str, dict[str, Any]]:
    firsts: dict[str, dict[str, Any]] = {}
    for env in generate_events(200, seed=5):
        firsts.setdefault(env["type"], json.loads(json.dumps(env)))
    assert set(firsts) == {t.value for t in EventType}
    return firsts


@pytest.mark.parametrize(
    ("event_type", "field"),
    [
        ("customer.upserted", "customer_id"),
        ("invoice.posted", "invoice_id"),
        ("payment.received", "payment_id"),
        ("credit_memo.issued", "credit_memo_id"),
        ("revenue.recognized", "schedule_entry_id"),
        ("gl.posted", "erp_journal_id"),
    ],
)
def test_a_source_id_that_is_not_the_id_of_the_record_carried_is_refused(
    event_type: str, field: str
) -> None:
    """An envelope naming one record and carrying another is bad input, refused when it is
    read (quarantined), never stored to be delivered under the wrong name."""
    env = _one_of_each_type()[event_type]
    record = env["data"][field]
    env["source_id"] = "a0X000000000999AAA"
    code, reason = _reject(env)
    assert code == "schema_violation"
    assert reason == (
        f"source_id: 'a0X000000000999AAA' is not data.{field} {record!r}, the record this "
        f"{event_type} carries; an envelope's source_id is its record's id"
    )


def test_a_salesforce_id_in_its_15_character_form_names_the_same_record() -> None:
    env = _invoice()
    env["data"]["invoice_id"] = make_id("a0X", 1)  # a0X000000000001EAA
    env["source_id"] = make_id("a0X", 1)[:15]
    assert decode_obj(env).source_id == "a0X000000000001"
    env["source_id"] = make_id("a0x", 1)[:15]  # the other record: 15 characters are exact
    assert "is not data.invoice_id" in _reject(env)[1]


@pytest.mark.parametrize(
    "event_type", ["customer.credit_status_changed", "erp.payment.received", "reporting.refreshed"]
)
def test_the_erp_keys_its_own_envelopes(event_type: str) -> None:
    """The ERP's captures key a credit status, a payment and a refresh by the ERP's own
    record (an internal id, ``credit:<number>``, ``payment:<internal id>``), not by an id in
    the payload: those envelopes are accepted as they come."""
    env = _one_of_each_type()[event_type]
    env["source_id"] = "credit:4077"
    assert decode_obj(env).source_id == "credit:4077"


def test_invalid_json_has_its_own_code() -> None:
    with pytest.raises(DecodeError) as info:
        decode_line('{"type": "invoice.posted", ')
    assert info.value.rejection.code == "invalid_json"


def test_unbalanced_revenue_journal_is_rejected() -> None:
    env = {
        "type": "revenue.recognized",
        "source": "salesforce",
        "source_id": "a0R1",
        "source_version": "1",
        "occurred_at": "2026-10-31T23:00:00+00:00",
        "data": {
            "schedule_entry_id": "a0R1",
            "schedule_id": "RS-1",
            "period": "2026-10",
            "entry_date": "2026-10-31",
            "lines": [
                {"account": "2400", "debit": "100.00", "currency": "EUR"},
                {"account": "4000", "credit": "99.99", "currency": "EUR"},
            ],
        },
    }
    code, reason = _reject(env)
    assert code == "unbalanced_journal"
    assert "EUR: debits 100.00 != credits 99.99" in reason


def _jpy_payment(applications: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "type": "payment.received",
        "source": "salesforce",
        "source_id": "a0P1",
        "source_version": "1",
        "occurred_at": "2026-10-31T23:00:00+00:00",
        "data": {
            "payment_id": "a0P1",
            "customer_id": "001A",
            "currency": "JPY",
            "amount": "1000",
            "received_on": "2026-10-31",
            "method": "card",
            "applications": applications,
        },
    }


def test_payment_cannot_apply_more_than_it_brings() -> None:
    code, reason = _reject(_jpy_payment([{"invoice_id": "a0X1", "amount": "1200"}]))
    assert code == "schema_violation"
    assert "1200 JPY applied is more than the payment amount of 1000" in reason


@pytest.mark.parametrize(
    ("applications", "code", "fragment"),
    [
        (
            [{"invoice_id": "a0X1", "amount": "10"}, {"invoice_id": "a0X2", "amount": "1.5"}],
            "invalid_money",
            "applications[1].amount: 1.5 JPY has more decimals than JPY allows",
        ),
        (
            [{"invoice_id": "a0X1", "amount": "0"}],
            "schema_violation",
            "applications[0].amount: 0 must be greater than zero",
        ),
        (
            [{"invoice_id": "a0X1", "amount": "10"}, {"invoice_id": "a0X1", "amount": "20"}],
            "schema_violation",
            "applications: an invoice may appear only once",
        ),
    ],
)
def test_a_bad_application_is_named_by_its_place(
    applications: list[dict[str, str]], code: str, fragment: str
) -> None:
    got_code, reason = _reject(_jpy_payment(applications))
    assert got_code == code
    assert fragment in reason


_amounts = st.integers(min_value=1, max_value=10**9).map(lambda c: Decimal(c).scaleb(-2))


@given(st.lists(_amounts, min_size=1, max_size=8))
def test_a_journal_balances_exactly_when_debits_equal_credits(amounts: list[Decimal]) -> None:
    """Splitting a total over several credit lines balances; one cent off never does."""
    total = sum(amounts, Decimal(0))
    lines = [JournalLine(account="1200", debit=total, currency="USD")] + [
        JournalLine(account="4000", credit=a, currency="USD") for a in amounts
    ]
    check_journal(tuple(lines))
    lines[0] = JournalLine(account="1200", debit=total + Decimal("0.01"), currency="USD")
    with pytest.raises(UnbalancedJournal):
        check_journal(tuple(lines))


def test_journals_balance_per_currency_not_in_total() -> None:
    lines = (
        JournalLine(account="1", debit=Decimal(100), currency="USD"),
        JournalLine(account="2", credit=Decimal(100), currency="EUR"),
    )
    with pytest.raises(UnbalancedJournal, match="USD"):
        RevenueRecognized(
            schedule_entry_id="x",
            schedule_id="y",
            period="2026-01",
            entry_date=date(2026, 1, 31),
            lines=lines,
        )


def test_a_naive_occurred_at_is_refused_by_the_core_too() -> None:
    data = decode_obj(_invoice()).data
    with pytest.raises(ValueError, match="timezone-aware"):
        Event(
            type=EventType.INVOICE_POSTED,
            source="s",
            source_id="1",
            source_version="1",
            occurred_at=datetime(2026, 1, 1),
            data=data,
        )


@given(st.integers(min_value=0, max_value=10_000))
def test_every_generated_event_is_valid_and_round_trips(seed: int) -> None:
    """The generator feeds demo, tests and benchmarks: all nine types, all valid, stable."""
    for env in generate_events(60, seed=seed, days=5):
        event = decode_obj(json.loads(json.dumps(env), parse_float=Decimal))
        again = decode_obj(json.loads(json.dumps(encode_envelope(event))))
        assert again == event


def test_the_generator_covers_all_nine_types_and_several_currencies() -> None:
    envs = list(generate_events(3000, seed=7, end=datetime(2026, 11, 1, tzinfo=UTC)))
    assert {e["type"] for e in envs} == {t.value for t in EventType}
    assert {e["data"]["currency"] for e in envs if "currency" in e["data"]} >= {"USD", "EUR", "JPY"}
    assert list(generate_events(50, seed=3)) == list(generate_events(50, seed=3))


def _record_ids(envs: list[dict[str, object]]) -> set[str]:
    """Every id and number of a data set that names a record (source ids, document numbers,
    customer numbers, references)."""
    ids: set[str] = set()
    for env in envs:
        ids.add(str(env["source_id"]))
        data = env["data"]
        assert isinstance(data, dict)
        for key, value in data.items():
            if isinstance(value, str) and (key.endswith(("_id", "_number")) or key == "reference"):
                ids.add(value)
    return ids


def test_two_data_sets_never_share_a_record_id_unless_seeded_alike() -> None:
    """Two runs without a seed, or with different seeds, make new records (ids, invoice and
    customer numbers, references); the same seed makes the very same events."""
    first, second = list(generate_events(300)), list(generate_events(300))
    assert not _record_ids(first) & _record_ids(second)
    assert not _record_ids(list(generate_events(300, seed=1))) & _record_ids(
        list(generate_events(300, seed=2))
    )
    assert list(generate_events(300, seed=5)) == list(generate_events(300, seed=5))
    with pytest.raises(ValueError, match="seed"):
        list(generate_events(1, seed=-1))


def test_a_payloads_record_kind_is_the_kind_its_plan_delivers() -> None:
    """``record_kind`` (by payload type, for the batch route) agrees with ``plan_for`` (by
    payload, for each delivery) for every event type."""
    from revbridge.codec import decode_payload
    from revbridge.core.events import EventType
    from revbridge.engine.dispatch import plan_for, record_kind
    from revbridge.generate import generate_events

    seen = set()
    for env in generate_events(400, seed=3):
        data = decode_payload(EventType(env["type"]), json.dumps(env["data"]))
        assert record_kind(type(data)) == plan_for(data, "key").kind
        seen.add(env["type"])
    assert len(seen) >= 7
