"""Whose clock decides what has expired: never one that is ahead of the database's.

`expires_at` is written by web processes and compared by the database; a worker whose clock runs
fast, or a caller handing in a `now` from the future (or a naive wall time read in the wrong
zone), would delete jobs before their time. So the purge's cutoff is, by construction, never
later than the database's clock:

- without `now`: the earlier of the database's clock and this process's;
- with `now`: it must be aware, and at most ALLOWED_AHEAD later than the database's clock
  (anything more is a mistake, refused before anything is deleted); the cutoff is then the earlier
  of `now` and the database's clock, so even that second of slack deletes nothing early.
"""

from datetime import datetime, timedelta

from django.db import connection
from django.utils import timezone

# A `now` this little ahead of the database (clock jitter between hosts) is not refused, only
# held back to the database's clock; more than this is a caller's mistake.
ALLOWED_AHEAD = timedelta(seconds=1)


class CutoffRefused(ValueError):
    """A cutoff that could delete jobs early; nothing was read or deleted."""


def database_now() -> datetime:
    """The database's current time, aware (UTC)."""
    if connection.vendor == "sqlite":
        # An embedded database has no clock of its own: it runs on this process's.
        return timezone.now()
    if connection.vendor != "postgresql":
        raise CutoffRefused(
            f"cannot read the clock of a {connection.vendor} database; nothing was deleted"
        )
    with connection.cursor() as cursor:
        # statement_timestamp(), not now(): inside a caller's transaction now() is when that
        # transaction began, which is also safe but needlessly late.
        cursor.execute("SELECT statement_timestamp()")
        return cursor.fetchone()[0]


def purge_cutoff(now: datetime | None = None) -> datetime:
    """The instant before which jobs count as expired for a purge; never ahead of the database."""
    if now is not None:
        _check_aware(now, "now")
    database = database_now()
    if now is None:
        return min(database, timezone.now())
    ahead = now - database
    if ahead > ALLOWED_AHEAD:
        raise CutoffRefused(
            f"now is {_describe(ahead)} ahead of the database clock; a purge never runs ahead "
            "of it (jobs would go before their expiry). Nothing was deleted."
        )
    return min(now, database)


def parse_cutoff(text: str) -> datetime:
    """A subtask's cutoff as sent over the broker: an ISO 8601 time with its UTC offset."""
    try:
        cutoff = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise CutoffRefused(
            "the cutoff must be an ISO 8601 time with a UTC offset, e.g. "
            "2026-11-26T14:30:00+00:00; nothing was deleted"
        ) from None
    _check_aware(cutoff, "the cutoff")
    return cutoff


def _check_aware(moment, what):
    if not isinstance(moment, datetime):
        raise CutoffRefused(f"{what} must be a datetime, got {type(moment).__name__}")
    if timezone.is_naive(moment):
        raise CutoffRefused(
            f"{what} has no time zone: a naive time would be read as Asia/Seoul, hours off if it "
            "was meant as another zone. Pass an aware datetime (e.g. timezone.now()). Nothing "
            "was deleted."
        )


def _describe(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
