"""The line under a batch class in `revbridge batch run`: its file, or why there is none."""

from __future__ import annotations

from revbridge.engine.batch import BatchReport


def report(**counts: int | str) -> BatchReport:
    return BatchReport(event_type="customer.upserted", target="erp", **counts)  # type: ignore[arg-type]


def test_a_class_with_nothing_due_says_so() -> None:
    assert report().detail() == "nothing due"


def test_a_run_whose_items_were_all_superseded_sent_nothing_and_says_why() -> None:
    # Before, it read "sent record by record to erp (no file)": nothing had been sent.
    assert report(items=3, superseded=3).detail() == (
        "nothing to send: 3 superseded by newer versions"
    )


def test_items_set_aside_are_named_beside_the_file() -> None:
    r = report(items=7, delivered=4, superseded=2, held=1, file_path="/x/customers.csv")
    assert r.detail() == "file /x/customers.csv; 2 superseded by newer versions, 1 held for review"


def test_waiting_and_held_items_alone_send_nothing() -> None:
    assert report(items=2, parked=1, held=1).detail() == (
        "nothing to send: 1 waiting for what they depend on, 1 held for review"
    )


def test_a_target_without_files_is_sent_record_by_record() -> None:
    assert report(items=5, delivered=4, superseded=1).detail() == (
        "sent record by record to erp (no file); 1 superseded by newer versions"
    )


def test_a_skipped_class_says_why_whatever_its_counts() -> None:
    assert report(items=0, skipped="erp is paused").detail() == "skipped: erp is paused"
