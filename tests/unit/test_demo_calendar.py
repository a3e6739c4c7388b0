"""The demo's business calendar (weekdays from the first of the month) and its verdict."""

from __future__ import annotations

from datetime import date

from revbridge.services.demo import business_days, first_business_day


def test_the_demo_month_starts_on_its_first_weekday() -> None:
    """A month that begins on a Sunday starts the demo on Monday the 2nd."""
    assert first_business_day(date(2026, 11, 26)) == date(2026, 11, 2)
    assert first_business_day(date(2026, 12, 9)) == date(2026, 12, 1)


def test_business_days_skip_the_weekend() -> None:
    """Five business days from a Thursday run to the next Wednesday."""
    days = business_days(date(2026, 10, 1), 5)
    assert [d.isoformat() for d in days] == [
        "2026-10-01",
        "2026-10-02",
        "2026-10-05",
        "2026-10-06",
        "2026-10-07",
    ]


def test_a_count_the_sandbox_disputes_fails_the_demo() -> None:
    """A hub count that a sandbox does not confirm is listed as a problem (exit 1)."""
    from pathlib import Path

    from revbridge.services.demo import Check, DemoReport

    report = DemoReport(config_path=Path("revbridge.toml"), store_url="sqlite://")
    report.checks = [
        Check(what="invoice.posted delivered", system="NetSuite", query="q", hub=20, sandbox=20),
        Check(what="payment.received delivered", system="NetSuite", query="q", hub=10, sandbox=9),
    ]
    assert report.problems == ["payment.received delivered: the hub says 10, NetSuite says 9"]


def test_the_demos_verdict_counts_in_words_that_agree() -> None:
    """ "1 dead letter", "1 event still waits": not "1 dead letter(s)", "1 event(s) wait"."""
    from pathlib import Path

    from revbridge.services.demo import DemoReport, Flow

    def flow(event_type: str, *, dead_letters: int, waiting: int) -> Flow:
        return Flow(
            event_type=event_type,
            direction="sf->erp",
            pattern="realtime",
            captured=3,
            delivered=1,
            batched=0,
            dead_letters=dead_letters,
            waiting=waiting,
        )

    report = DemoReport(config_path=Path("revbridge.toml"), store_url="sqlite://")
    report.flows = [
        flow("invoice.posted", dead_letters=1, waiting=1),
        flow("payment.received", dead_letters=1, waiting=0),
    ]
    assert report.problems == [
        "2 dead letters: see `revbridge dlq list`",
        "1 event still waits for delivery: see `revbridge status`",
    ]
