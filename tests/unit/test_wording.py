from revbridge.core.wording import agreeing, counted


def test_a_count_agrees_with_its_noun() -> None:
    assert counted(1, "item") == "1 item"
    assert counted(2, "item") == "2 items"
    assert counted(0, "item") == "0 items"
    assert counted(1, "delivery", "deliveries") == "1 delivery"
    assert counted(12, "delivery", "deliveries") == "12 deliveries"


def test_a_noun_alone_agrees_with_a_count() -> None:
    assert [agreeing(n, "key") for n in (0, 1, 2)] == ["keys", "key", "keys"]
    assert agreeing(3, "reconciliation") == "reconciliations"
    assert agreeing(1, "delivery", "deliveries") == "delivery"
    assert agreeing(2, "delivery", "deliveries") == "deliveries"


def test_a_dead_letters_reason_reads_as_written() -> None:
    from datetime import UTC, datetime, timedelta

    from revbridge.engine.retry import RetryPolicy

    now = datetime(2026, 11, 2, tzinfo=UTC)
    assert RetryPolicy(max_attempts=1).exhausted(1, now, now) == "gave up after 1 attempt"
    assert RetryPolicy().exhausted(12, now, now) == "gave up after 12 attempts"
    old = now - timedelta(days=8)
    assert RetryPolicy().exhausted(2, old, now) == "gave up: older than 7 d"
