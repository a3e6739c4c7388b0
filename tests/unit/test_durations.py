"""Ages in alerts and status lines read as people say them."""

from datetime import timedelta

import pytest

from revbridge.core.durations import human_duration, parse_duration


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        (timedelta(seconds=30.283892), "30 s"),  # no microseconds in an alert title
        (timedelta(minutes=4, seconds=12), "4 min 12 s"),
        (timedelta(hours=2, minutes=5, seconds=3), "2 h 5 min"),
        (timedelta(hours=2), "2 h"),
        (timedelta(days=3, hours=4, minutes=1), "3 d 4 h"),
        (59.6, "1 min"),
        (0.2, "0 s"),
        (-1.0, "0 s"),
    ],
)
def test_an_age_is_said_in_its_two_largest_units(duration: timedelta | float, text: str) -> None:
    assert human_duration(duration) == text


def test_a_written_duration_is_read_in_every_unit_and_anything_else_is_refused() -> None:
    assert parse_duration("50ms") == timedelta(milliseconds=50)
    assert parse_duration("2.5s") == timedelta(seconds=2.5)
    assert parse_duration("2m") == parse_duration("2min") == timedelta(minutes=2)
    assert parse_duration(" 2 h ") == timedelta(hours=2)
    assert parse_duration("7d") == timedelta(days=7)
    assert parse_duration("1w") == timedelta(weeks=1)
    for bad in ("", "soon", "-1s", "5", "1y", "2026-11-03"):
        with pytest.raises(ValueError, match="is not a duration"):
            parse_duration(bad)
