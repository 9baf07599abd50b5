"""The purge's past, from its run records: counters, a week for the plots, and the ledger.

Counters count finished runs, whose status never changes and counts only grow: they never go down.
The destruction ledger (CSV or JSON Lines) is hash-chained: each line's `hash` is sha256 over the
previous one's (GENESIS first: a file checks without the database) and this line's canonical
form, so an altered, removed or reordered line breaks the chain.
"""

import csv
import hashlib
import json
from collections.abc import Iterable, Iterator
from contextlib import suppress
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone

from django.core.files.storage import FileSystemStorage
from django.db import connection
from django.db.models import BigIntegerField, Count, Min, Sum
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce, TruncHour
from django.utils import timezone

from jobs.models import Job

from .. import storage
from ..deletion import cascade_paths
from ..models import PurgeRun

GENESIS = "0" * 64
# The ledger's fields around its per-model row counts (ledger_models()).
HEAD = (
    "run_id group started_at finished_at trigger requested_by status dry_run cutoff "
    "expired_at_start most_overdue_seconds_at_start"
).split()
TAIL = "rows_total files_deleted files_pending pending_files_at_end method reason".split()
# Ledger fields read off the run record: by another attribute name, and the local times.
ATTRS = {"run_id": "pk", "most_overdue_seconds_at_start": "oldest_expired_seconds_at_start"}
TIMES = ("started_at", "finished_at", "cutoff")
# Runs recorded before the method was: the purge has only ever worked this way.
UNRECORDED_METHOD = "rows: ORM cascade delete; files: storage delete (not recorded)"
SUMS = {"jobs": "jobs_deleted", "files": "files_deleted", "retries": "storage_retries"}


class LedgerBroken(ValueError):
    """A ledger file whose chain does not hold, naming the first bad line (1-based)."""


def counted_runs():
    return PurgeRun.objects.exclude(status=PurgeRun.Status.RUNNING)


def run_totals() -> list[dict]:
    """Per finished status, zeros included (increase() misses a series that appears at 1); one
    query, rows summing each model's count in rows_deleted (JSON)."""
    rows = sum(
        Coalesce(Cast(KeyTextTransform(label, "rows_deleted"), BigIntegerField()), 0)
        for label in ledger_models()
    )
    sums = {"runs": Count("pk"), "rows": Sum(rows)} | {k: Sum(f) for k, f in SUMS.items()}
    found = {row["status"]: row for row in counted_runs().values("status").annotate(**sums)}
    return [
        {"status": status} | {key: found.get(status, {}).get(key) or 0 for key in sums}
        for status in PurgeRun.Status.values
        if status != PurgeRun.Status.RUNNING
    ]


def retention_history(*, now: datetime | None = None, days: int = 7) -> dict:
    """A week of the purge for the Retention page, counts only, aware times (UTC), oldest first:
    `purged_per_hour` (every hour, zeros included), `backlog` (at each run's start: expired jobs
    and the oldest's overdue seconds) and `pending` (at each run's end: every pending deletion)."""
    now = now or timezone.now()
    hour = _hour(now)
    since = hour - timedelta(days=days, hours=-1)
    # From the week's first run, and a day at least: a new deployment's few hours are not
    # squeezed against the right edge of an empty week.
    first = PurgeRun.objects.filter(started_at__gte=since).aggregate(at=Min("started_at"))["at"]
    since = max(since, _hour(min(hour - timedelta(hours=23), first or hour)))
    runs = PurgeRun.objects.filter(started_at__gte=since).order_by("started_at", "pk")
    backlog = runs.filter(expired_at_start__isnull=False).values_list(
        "started_at", "expired_at_start", "oldest_expired_seconds_at_start"
    )
    ended = runs.filter(pending_files_at_end__isnull=False, finished_at__isnull=False)
    pending = ended.order_by("finished_at", "pk").values_list("finished_at", "pending_files_at_end")
    hours = int((hour - since).total_seconds() // 3600) + 1
    per_hour = dict.fromkeys((since + timedelta(hours=h) for h in range(hours)), 0)
    # A run's jobs count in the hour it last reported them (finished, or its last heartbeat).
    at = TruncHour(Coalesce("finished_at", "heartbeat_at", "started_at"), tzinfo=dt_timezone.utc)
    purged = counted_runs().filter(dry_run=False).annotate(at=at).filter(at__range=(since, hour))
    per_hour |= dict(purged.values_list("at").annotate(Sum("jobs_deleted")))
    return {
        "since": since,
        "until": now,
        "purged_per_hour": sorted(per_hour.items()),
        "backlog": [*backlog],
        "pending": [*pending],
    }


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def destruction_method(*, dry_run: bool) -> str:
    """How a run started now destroys data, in words, as the run record keeps it."""
    if dry_run:
        return "none: dry run (counted only, nothing deleted)"
    used = storage.get_storage()
    if storage.is_s3(used):
        files = f"S3 DeleteObjects on bucket {used.bucket_name}"
    elif isinstance(used, FileSystemStorage):
        files = f"local file delete under {used.location}"
    else:
        files = f"{type(used).__name__} (not supported: files left pending)"
    rows = f"ORM cascade delete, one transaction per batch ({connection.vendor})"
    return f"rows: {rows}; files: storage delete, {files}"


def ledger_models() -> list[str]:
    """The models a purge deletes rows of, in cascade order: the ledger's columns."""
    return [model._meta.label for model, _ in cascade_paths(Job)]


def ledger_fields() -> list[str]:
    return [*HEAD, *ledger_models(), *TAIL, "hash"]


def purge_log(*, since: date, until: date) -> Iterator[dict]:
    """Every run started from `since` to `until` (both days included, Asia/Seoul), oldest first,
    as chained ledger lines; ValueError for a bad range, before any read."""
    if since > until:
        raise ValueError(f"--since {since.isoformat()} is after --until {until.isoformat()}")
    zone = timezone.get_default_timezone()
    runs = PurgeRun.objects.filter(
        started_at__gte=datetime.combine(since, time.min, tzinfo=zone),
        started_at__lt=datetime.combine(until + timedelta(days=1), time.min, tzinfo=zone),
    ).order_by("started_at", "pk")
    return _chained(runs, ledger_models())


def _chained(runs, models: list[str]) -> Iterator[dict]:
    previous = GENESIS
    for run in runs.iterator(chunk_size=500):
        rows = {label: (run.rows_deleted or {}).get(label, 0) for label in models}
        line = {key: getattr(run, ATTRS.get(key, key)) for key in HEAD} | rows
        line |= {key: line[key] and timezone.localtime(line[key]).isoformat() for key in TIMES}
        line |= {"rows_total": sum(rows.values())} | {key: getattr(run, key) for key in TAIL[1:4]}
        line["method"] = run.method or UNRECORDED_METHOD
        line["reason"] = run.error.splitlines()[0] if run.error else ""
        previous = line["hash"] = _hash(previous, line)
        yield line


def _hash(previous: str, line: dict) -> str:
    # Canonical: every value but the hash as CSV spells it, in field order, as one JSON array.
    cells = as_csv_row({key: value for key, value in line.items() if key != "hash"})
    return hashlib.sha256((previous + json.dumps(cells, ensure_ascii=False)).encode()).hexdigest()


def as_csv_row(line: dict) -> list[str]:
    return [
        "" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
        for v in line.values()
    ]


def verify_ledger(text: Iterable[str]) -> tuple[int, str]:
    """(lines, last hash) of a ledger file (CSV with its header, or JSON Lines) whose chain holds;
    LedgerBroken naming the first line that is not what the export wrote."""
    text = list(text)
    if text and text[0].lstrip().startswith("{"):
        lines = [(n, raw) for n, raw in enumerate(text, 1) if raw.strip()]
    else:
        lines = enumerate(csv.DictReader(text), 2)
    previous, count = GENESIS, 0
    for number, line in lines:
        with suppress(ValueError):
            line = json.loads(line) if isinstance(line, str) else line
        if not isinstance(line, dict) or "hash" not in line:
            raise LedgerBroken(f"line {number}: not a ledger line (no hash)")
        if _hash(previous, line) != line["hash"]:
            raise LedgerBroken(f"line {number}: hash does not match: altered, removed or reordered")
        previous, count = line["hash"], count + 1
    return count, previous
