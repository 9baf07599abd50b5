"""Whose clock decides what has expired: never one ahead of the database's.

A fast worker clock or a `now` from the future (or naive, read in the wrong zone) would delete
jobs early: the cutoff is the earlier of the database's clock and this process's, or of it and an
aware `now` (refused when more than ALLOWED_AHEAD ahead)."""

from datetime import datetime, timedelta

from django.db import connection
from django.utils import timezone

ALLOWED_AHEAD = timedelta(seconds=1)  # clock jitter between hosts: held back, not refused


class CutoffRefused(ValueError):
    """A cutoff that could delete jobs early; nothing was read or deleted."""


def database_now() -> datetime:
    if connection.vendor == "sqlite":
        return timezone.now()  # an embedded database runs on this process's clock
    if connection.vendor != "postgresql":
        raise CutoffRefused(
            f"cannot read the clock of a {connection.vendor} database; nothing was deleted"
        )
    with connection.cursor() as cursor:
        # Not now(): inside a caller's transaction that is when it began (safe, needlessly late).
        cursor.execute("SELECT statement_timestamp()")
        return cursor.fetchone()[0]


def purge_cutoff(now: datetime | None = None) -> datetime:
    """The instant before which jobs count as expired for a purge; never ahead of the database."""
    if now is None:
        return min(database_now(), timezone.now())
    _check_aware(now, "now")
    database = database_now()
    ahead = (now - database).total_seconds()
    if ahead > ALLOWED_AHEAD.total_seconds():
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


def _describe(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.0f} min" if seconds < 2 * 3600 else f"{seconds / 3600:.1f} h"
