"""Whose clock decides what has expired: never one ahead of the database's. A fast worker clock
or a `now` from the future (or naive, read in the wrong zone) would delete jobs early."""

from datetime import datetime, timedelta

from django.db import connection
from django.utils import timezone

ALLOWED_AHEAD = timedelta(seconds=1)  # clock jitter between hosts: held back, not refused


class CutoffRefused(ValueError):
    """A cutoff that could delete jobs early; nothing was read or deleted."""


def purge_cutoff(now: datetime | str | None = None) -> datetime:
    """The instant before which jobs count as expired for a purge: the earlier of the database's
    clock and this process's, or of it and an aware `now` (or ISO 8601 text, from the broker)."""
    try:
        now = datetime.fromisoformat(now) if isinstance(now, str) else now
    except ValueError:
        raise CutoffRefused("the cutoff must be ISO 8601 with a UTC offset") from None
    if now is not None and (not isinstance(now, datetime) or timezone.is_naive(now)):
        raise CutoffRefused("now needs a time zone (naive is read as Asia/Seoul); nothing deleted")
    if connection.vendor not in ("sqlite", "postgresql"):
        raise CutoffRefused(f"cannot read a {connection.vendor} database's clock; nothing deleted")
    database = timezone.now()  # SQLite: an embedded database runs on this process's clock
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # Not now(): in a caller's transaction that is when it began (safe, needlessly late).
            cursor.execute("SELECT statement_timestamp()")
            database = cursor.fetchone()[0]
    if now is not None and now - database > ALLOWED_AHEAD:
        ahead = timedelta(seconds=round((now - database).total_seconds()))
        raise CutoffRefused(f"now is {ahead} ahead of the database clock; nothing was deleted")
    return min(database, timezone.now() if now is None else now)
