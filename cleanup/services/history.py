"""The purge's past, from its run records: counters for monitors and a week for the plots.

Counters count finished runs only, each once (a fan-out's runs each count, as each deleted its
own share). A finished run's status never changes and its counts only grow (a run a later
purge marked abandoned adds the work it finished late), and run records are kept (the admin
cannot delete them, nothing prunes them), so the counters never go down. Deleting run records by
hand would lower them; Prometheus reads that as a counter reset.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import BigIntegerField, Count, Min, Q, Sum
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce
from django.utils import timezone

from ..models import PurgeRun
from .ledger import ledger_models


@dataclass
class RunTotals:
    status: str
    runs: int
    jobs: int
    rows: int
    files: int
    retries: int = 0


# A run still going has no final counts yet.
UNFINISHED = (PurgeRun.Status.RUNNING,)


def counted_runs():
    return PurgeRun.objects.exclude(status__in=UNFINISHED)


def run_totals() -> list[RunTotals]:
    """Per finished status, zeros included: finished runs, and the jobs, rows and files they
    deleted (one query). Every status from 0, so Prometheus' increase() sees the first run of
    each (a series that appears at 1 has no increase)."""
    # One sum per model in rows_deleted (a JSON object), under an alias a column name can take.
    aliases = {
        f"rows_{i}": Sum(Cast(KeyTextTransform(label, "rows_deleted"), BigIntegerField()))
        for i, label in enumerate(ledger_models())
    }
    totals = (
        counted_runs()
        .values("status")
        .order_by("status")
        .annotate(
            runs=Count("pk"),
            jobs=Sum("jobs_deleted"),
            files=Sum("files_deleted"),
            retries=Sum("storage_retries"),
            **aliases,
        )
    )
    found = {row["status"]: row for row in totals}
    return [
        RunTotals(
            status=status,
            runs=row.get("runs", 0),
            jobs=row.get("jobs") or 0,
            rows=sum(row.get(alias) or 0 for alias in aliases),
            files=row.get("files") or 0,
            retries=row.get("retries") or 0,
        )
        for status in PurgeRun.Status.values
        if status not in UNFINISHED
        for row in [found.get(status, {})]
    ]


@dataclass
class RetentionHistory:
    """A week of the purge, for the Retention page; times are aware (UTC), counts only."""

    since: datetime
    until: datetime
    # Jobs deleted in each hour of the week (every hour, zeros included), oldest first.
    purged_per_hour: list[tuple[datetime, int]]
    # At each run's start: expired jobs present and how overdue the oldest was (seconds).
    backlog: list[tuple[datetime, int, float | None]]
    # At each run's end: every pending file deletion.
    pending: list[tuple[datetime, int]]


def retention_history(*, now: datetime | None = None, days: int = 7) -> RetentionHistory:
    now = now or timezone.now()
    hour = _hour(now)
    since = hour - timedelta(days=days) + timedelta(hours=1)
    # From the first run of the week, and a day at least: a new deployment's few hours are not
    # squeezed against the right edge of an empty week.
    first = PurgeRun.objects.filter(started_at__gte=since).aggregate(at=Min("started_at"))["at"]
    since = max(since, _hour(min(hour - timedelta(hours=23), first or hour)))
    runs = PurgeRun.objects.filter(started_at__gte=since).order_by("started_at", "pk")
    backlog = runs.filter(expired_at_start__isnull=False).values_list(
        "started_at", "expired_at_start", "oldest_expired_seconds_at_start"
    )
    pending = (
        runs.filter(Q(pending_files_at_end__isnull=False) & Q(finished_at__isnull=False))
        .order_by("finished_at", "pk")
        .values_list("finished_at", "pending_files_at_end")
    )
    return RetentionHistory(
        since=since,
        until=now,
        purged_per_hour=_purged_per_hour(since, hour),
        backlog=list(backlog),
        pending=list(pending),
    )


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _purged_per_hour(since, hour) -> list[tuple[datetime, int]]:
    hours = int((hour - since).total_seconds() // 3600) + 1
    per_hour = dict.fromkeys((since + timedelta(hours=h) for h in range(hours)), 0)
    # A run's jobs count in the hour it last reported them (finished, or its last heartbeat).
    purged = (
        counted_runs()
        .filter(dry_run=False, jobs_deleted__gt=0)
        .annotate(at=Coalesce("finished_at", "heartbeat_at", "started_at"))
        .filter(at__gte=since)
        .values_list("at", "jobs_deleted")
    )
    for at, jobs in purged:
        if _hour(at) in per_hour:
            per_hour[_hour(at)] += jobs
    return sorted(per_hour.items())
