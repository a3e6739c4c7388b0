"""The database's take of a shared rate schedule (``rate_bucket_take``, migration 0016) is
``Schedule.reserve``'s arithmetic: the same slots, the same window and the same next slot,
for any sequence of takes, on real PostgreSQL."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from revbridge.engine.ratelimit import Schedule
from revbridge.store.db import create_store_engine

_TAKE = text(
    "SELECT clock, counted, current_rate "
    "FROM rate_bucket_take('erp:t', :n, :lead, :catch_up, :margin, :clock)"
)

_steps = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=1.5, allow_nan=False),  # the clock moves on by
        st.integers(min_value=1, max_value=12),  # slots taken at once
        st.sampled_from([0.0, 0.002, 0.03]),  # the caller's lead
    ),
    min_size=1,
    max_size=25,
)


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    engine = create_store_engine(pg_url)
    yield engine
    engine.dispose()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rate=st.sampled_from([0.5, 1.0, 3.0, 7.5, 50.0]),
    burst=st.sampled_from([1.0, 2.0, 10.0]),
    catch_up=st.sampled_from([0.0, 0.1, 1.0]),
    margin=st.sampled_from([0.001, 0.02]),
    steps=_steps,
)
def test_the_database_takes_the_slots_the_python_schedule_takes(
    engine: Engine,
    rate: float,
    burst: float,
    catch_up: float,
    margin: float,
    steps: list[tuple[float, int, float]],
) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM rate_buckets"))
        conn.execute(
            text(
                "INSERT INTO rate_buckets "
                "(name, rate, configured_rate, burst, tat, recent, updated_at) "
                "VALUES ('erp:t', :rate, :rate, :burst, 0, '{}', now())"
            ),
            {"rate": rate, "burst": burst},
        )
    schedule = Schedule(tat=0.0, recent=deque())
    lag = max(burst / rate, catch_up)
    clock = 1_800_000_000.0
    for advance, n, lead in steps:
        clock += advance
        expected = []
        for _ in range(n):
            schedule.reserve(clock + lead, rate=rate, lag=lag, margin=margin)
            expected.append(schedule.recent[-1])
        with engine.begin() as conn:
            row = conn.execute(
                _TAKE,
                {"n": n, "lead": lead, "catch_up": catch_up, "margin": margin, "clock": clock},
            ).one()
            tat, recent = conn.execute(
                text("SELECT tat, recent FROM rate_buckets WHERE name = 'erp:t'")
            ).one()
        assert row.clock == clock
        assert row.current_rate == rate
        assert list(row.counted) == expected
        assert tat == schedule.tat
        assert list(recent) == list(schedule.recent)


def test_a_take_of_an_unknown_bucket_says_which(engine: Engine) -> None:
    with engine.begin() as conn, pytest.raises(Exception, match="no rate bucket erp:t"):
        conn.execute(_TAKE, {"n": 1, "lead": 0, "catch_up": 0.1, "margin": 0.02, "clock": None})
