"""rate buckets: a take is one statement, run by the database

Revision ID: 0016
Revises: 0015

``rate_bucket_take(name, n, lead, catch_up, margin)`` takes the next ``n`` slots of a shared
rate schedule in the statement that locks its row: the arithmetic of
``engine.ratelimit.Schedule.reserve`` (for a caller at the database clock plus ``lead``). So
the row is locked for microseconds instead of several round trips, and the window's call
times never leave the database. It returns the clock it read, the time each slot is counted
at, and the rate. ``tests/integration/test_rate_bucket_take.py`` holds it
to the Python arithmetic. PostgreSQL only: the shared bucket lives there (docs/decisions/0019).
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

# ``recent[lo:hi]`` is the window: the times of the last calls, oldest first. The loop mirrors
# ``Schedule.reserve`` line by line; ``lo`` and ``hi`` stand for its pops and appends.
_TAKE = """
CREATE FUNCTION rate_bucket_take(
    p_name text, p_n integer, p_lead float8, p_catch_up float8, p_margin float8,
    p_clock float8 DEFAULT NULL
) RETURNS TABLE (clock float8, counted float8[], current_rate float8)
LANGUAGE plpgsql AS $$
<<take>>
DECLARE
    b rate_buckets%ROWTYPE;
    horizon float8 := 1 + p_margin;
    cap integer;
    v_lag float8;
    v_at float8;
    slot float8;
    lo integer := 1;
    hi integer;
    recent float8[];
    took float8[] := '{}';
BEGIN
    -- The schedule is soft state: its commit waits for no disk flush.
    PERFORM set_config('synchronous_commit', 'off', true);
    SELECT * INTO b FROM rate_buckets WHERE name = p_name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no rate bucket %', p_name USING ERRCODE = 'no_data_found';
    END IF;
    -- Read once the row is locked (a clock given is a test's).
    clock := coalesce(p_clock, extract(epoch FROM clock_timestamp()));
    v_at := clock + p_lead;
    cap := greatest(1, floor(b.rate)::integer);
    v_lag := greatest(b.burst / b.rate, p_catch_up);
    recent := b.recent;
    hi := coalesce(array_length(recent, 1), 0);
    FOR i IN 1..p_n LOOP
        slot := greatest(b.tat, v_at - v_lag);
        WHILE lo <= hi AND recent[lo] <= slot - horizon LOOP
            lo := lo + 1;
        END LOOP;
        IF hi - lo + 1 >= cap THEN
            slot := greatest(slot, recent[hi - cap + 1] + horizon);
            WHILE lo <= hi AND recent[lo] <= slot - horizon LOOP
                lo := lo + 1;
            END LOOP;
        END IF;
        hi := hi + 1;
        recent[hi] := greatest(slot, v_at);
        took := took || recent[hi];
        IF hi - lo + 1 > cap THEN
            lo := hi - cap + 1;
        END IF;
        b.tat := slot + 1 / b.rate;
    END LOOP;
    UPDATE rate_buckets
    SET tat = b.tat, recent = coalesce(take.recent[lo:hi], '{}'), updated_at = clock_timestamp()
    WHERE name = p_name;
    counted := took;
    current_rate := b.rate;
    RETURN NEXT;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_TAKE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION rate_bucket_take(text, integer, float8, float8, float8, float8)")
