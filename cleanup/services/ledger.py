"""The destruction ledger: how each run destroyed data, and every run over a range of days.

What a privacy audit asks to see of each destruction: when, why (trigger, and who for admin
runs), how much per model, the files, the outcome and the method. Counts only: no job ids, no
file names, no error texts (a storage error can quote a file's name).
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.core.files.storage import FileSystemStorage
from django.db import connection
from django.utils import timezone

from jobs.models import Job

from .. import storage
from ..deletion import cascade_paths
from ..models import PurgeRun


def destruction_method(*, dry_run: bool) -> str:
    """How a run started now destroys data, in words, as the run record keeps it."""
    if dry_run:
        return "none: dry run (counted only, nothing deleted)"
    rows = f"rows: ORM cascade delete, one transaction per batch ({connection.vendor})"
    return f"{rows}; files: storage delete, {_storage_method()}"


def _storage_method() -> str:
    used = storage.get_storage()
    if storage.is_s3(used):
        return f"S3 DeleteObjects on bucket {used.bucket_name}"
    if isinstance(used, FileSystemStorage):
        return f"local file delete under {used.location}"
    return f"{type(used).__name__} (not supported: files left pending)"


def ledger_models() -> list[str]:
    """The models a purge deletes rows of, in cascade order: the ledger's columns."""
    return [model._meta.label for model, _ in cascade_paths(Job)]


@dataclass
class LedgerEntry:
    run_id: int
    group: str
    started_at: datetime
    finished_at: datetime | None
    trigger: str
    requested_by: str
    status: str
    dry_run: bool
    jobs_deleted: int
    rows_deleted: dict[str, int]
    files_deleted: int
    files_pending: int
    method: str

    @property
    def rows_total(self) -> int:
        return sum(self.rows_deleted.values())

    def as_dict(self) -> dict:
        return {
            "run_id": self.run_id,
            "group": self.group,
            "started_at": _local(self.started_at),
            "finished_at": _local(self.finished_at),
            "trigger": self.trigger,
            "requested_by": self.requested_by,
            "status": self.status,
            "dry_run": self.dry_run,
            "jobs_deleted": self.jobs_deleted,
            "rows_deleted": self.rows_deleted,
            "rows_total": self.rows_total,
            "files_deleted": self.files_deleted,
            "files_pending": self.files_pending,
            "method": self.method,
        }


def ledger_range(*, since: date, until: date) -> tuple[datetime, datetime]:
    """From the start of `since` to the end of `until` (inclusive), in the project's time zone."""
    if since > until:
        raise ValueError(f"--since {since.isoformat()} is after --until {until.isoformat()}")
    zone = timezone.get_default_timezone()
    start = datetime.combine(since, time.min, tzinfo=zone)
    end = datetime.combine(until + timedelta(days=1), time.min, tzinfo=zone)
    return start, end


def purge_log(*, since: date, until: date) -> Iterator[LedgerEntry]:
    """Every run started between the two days (both included, Asia/Seoul), oldest first,
    streamed. A bad range raises ValueError here, before anything is read."""
    start, end = ledger_range(since=since, until=until)
    return _entries(start, end)


def _entries(start, end) -> Iterator[LedgerEntry]:
    models = ledger_models()
    runs = PurgeRun.objects.filter(started_at__gte=start, started_at__lt=end).order_by(
        "started_at", "pk"
    )
    for run in runs.iterator(chunk_size=500):
        rows = dict.fromkeys(models, 0)
        rows.update(run.rows_deleted or {})
        yield LedgerEntry(
            run_id=run.pk,
            group=run.group,
            started_at=run.started_at,
            finished_at=run.finished_at,
            trigger=run.trigger,
            requested_by=run.requested_by,
            status=run.status,
            dry_run=run.dry_run,
            jobs_deleted=run.jobs_deleted,
            rows_deleted=rows,
            files_deleted=run.files_deleted,
            files_pending=run.files_pending,
            # Runs recorded before the method was: the purge has only ever worked this way.
            method=run.method or "rows: ORM cascade delete; files: storage delete (not recorded)",
        )


def _local(moment: datetime | None) -> str | None:
    return timezone.localtime(moment).isoformat() if moment else None
