"""Ages in alerts and status lines read as people say them."""

from datetime import timedelta

import pytest

from revbridge.core.durations import human_duration


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
