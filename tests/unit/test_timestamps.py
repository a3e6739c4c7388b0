"""One form for a time in JSON and one for people, in UTC and saying so (decision 0028)."""

import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

from pydantic import TypeAdapter

from revbridge.core.timestamps import human_timestamp, json_default, json_timestamp

PARIS = timezone(timedelta(hours=1))


def test_json_timestamps_are_utc_with_z_as_the_api_writes_them() -> None:
    api = TypeAdapter(datetime)
    for at in (
        datetime(2026, 11, 27, 22, 49, 25, 330359, tzinfo=UTC),
        datetime(2026, 10, 8, tzinfo=UTC),
    ):
        assert json_timestamp(at) == api.dump_python(at, mode="json")
    assert json_timestamp(datetime(2026, 10, 8, 1, 0, tzinfo=PARIS)) == "2026-10-08T00:00:00Z"
    assert json_timestamp(datetime(2026, 10, 8)) == "2026-10-08T00:00:00Z"  # the ledger's UTC


def test_people_read_the_time_to_the_second_with_the_zone() -> None:
    at = datetime(2026, 11, 27, 23, 49, 25, 330359, tzinfo=PARIS)
    assert human_timestamp(at) == "2026-11-27 22:49:25 UTC"


def test_json_default_writes_times_dates_and_the_rest() -> None:
    data: dict[str, object] = {
        "at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "on": date(2026, 1, 2),
        "amount": Decimal("1.10"),
    }
    assert json.loads(json.dumps(data, default=json_default)) == {
        "at": "2026-01-02T03:04:05Z",
        "on": "2026-01-02",
        "amount": "1.10",
    }
