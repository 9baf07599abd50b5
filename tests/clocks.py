"""Clocks that disagree, for the never-early tests: a worker clock and a PostgreSQL clock that are
off by a chosen amount.

The worker's clock is `django.utils.timezone.now` in this process (patched: the environment, not
the code under test). The database's clock is offset for real, inside PostgreSQL: a schema holds
functions named like pg_catalog's clock functions (now(), statement_timestamp(), ...) that return
pg_catalog's value plus an offset, and the connection's search_path lists that schema before
pg_catalog, so every unqualified call in any query on this connection resolves to it.

Both changes are made inside the test's transaction (SET, not SET LOCAL, but rolled back with it),
so they vanish when the test's transaction does.
"""

from contextlib import contextmanager
from datetime import datetime, timedelta
from unittest import mock

from django.db import connection
from django.utils import timezone

SCHEMA = "fmr_test_clock"
CLOCK_FUNCTIONS = ("now", "statement_timestamp", "transaction_timestamp", "clock_timestamp")

_real_now = timezone.now


def real_now() -> datetime:
    return _real_now()


def offset_database_clock(offset: timedelta):
    """From now on (until the test's transaction ends) the database's clock is off by `offset`."""
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        for name in CLOCK_FUNCTIONS:
            cursor.execute(
                f"CREATE OR REPLACE FUNCTION {SCHEMA}.{name}() RETURNS timestamptz "
                f"LANGUAGE sql VOLATILE AS $$ SELECT pg_catalog.{name}() + "
                "coalesce(nullif(current_setting('fmr_test.clock_offset', true), ''), '0')"
                "::interval $$"
            )
        cursor.execute(
            "SELECT set_config('fmr_test.clock_offset', %s, false)",
            [f"{offset.total_seconds():.6f} seconds"],
        )
        cursor.execute(f"SET search_path = {SCHEMA}, pg_catalog, public")
        # The offset is really what an unqualified call sees.
        cursor.execute("SELECT statement_timestamp() - pg_catalog.statement_timestamp()")
        assert cursor.fetchone()[0] == offset


def database_clock() -> datetime:
    """What the database says the time is (offset, if it was offset)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        return cursor.fetchone()[0]


@contextmanager
def worker_clock_off_by(offset: timedelta):
    """The purge's process reads its clock `offset` away from the real time."""
    with mock.patch("django.utils.timezone.now", lambda: _real_now() + offset):
        yield
