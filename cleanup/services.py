"""The purge: deleting expired jobs with everything attached, and their files from storage."""

import itertools
import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, models, transaction
from django.utils import timezone

from jobs.models import Job

from . import storage
from .deletion import among, delete_cascading
from .models import PendingFileDeletion, PurgeRun
from .receivers import file_fields, gathering_deleted_files, models_with_files

logger = logging.getLogger("cleanup")

# Per-key failures (a bad key, a permission) back off so they do not cost every run a request;
# an outage of the whole endpoint does not: every name is retried as soon as a run comes.
RETRY_BASE = timedelta(minutes=1)
RETRY_MAX = timedelta(hours=1)


@dataclass
class FileDeletion:
    deleted: int = 0
    failed: int = 0
    requests: int = 0
    # Set when storage itself could not be reached, as opposed to some keys being refused.
    unavailable: str = ""
    errors: list[str] = field(default_factory=list)

    def add(self, other: "FileDeletion"):
        self.deleted += other.deleted
        self.failed += other.failed
        self.requests += other.requests
        self.unavailable = self.unavailable or other.unavailable
        self.errors.extend(e for e in other.errors if e not in self.errors)


@dataclass
class PurgeResult:
    run_id: int | None
    dry_run: bool
    cutoff: datetime
    status: str
    jobs_deleted: int
    rows_deleted: dict[str, int]
    files_deleted: int
    files_pending: int
    batches: int
    duration_seconds: float
    error: str = ""

    @property
    def rows_total(self) -> int:
        return sum(self.rows_deleted.values())

    @property
    def ok(self) -> bool:
        return self.status == PurgeRun.Status.SUCCEEDED

    def as_dict(self) -> dict:
        data = asdict(self)
        data["cutoff"] = self.cutoff.isoformat()
        data["rows_total"] = self.rows_total
        return data


def cascade_paths(model=Job, prefix=""):
    """Every model a Job delete cascades to, with the lookup path back to the job."""
    yield model, prefix
    for rel in model._meta.related_objects:
        if rel.on_delete is models.CASCADE:
            yield from cascade_paths(rel.related_model, f"{rel.field.name}__{prefix}")


def purge_expired_jobs(
    *,
    now: datetime | None = None,
    batch_size: int | None = None,
    limit: int | None = None,
    dry_run: bool = False,
    trigger: str = PurgeRun.Trigger.SHELL,
    should_stop=None,
) -> PurgeResult:
    """Delete jobs whose expires_at is before `now`, oldest first, `batch_size` per transaction.

    Every dependent row goes through the ORM cascade; every file is recorded as pending in the
    same transaction and deleted from storage after commit. `should_stop` is checked between
    batches so an interrupted run never leaves a batch half done.
    """
    batch_size = settings.CLEANUP_BATCH_SIZE if batch_size is None else batch_size
    _check_positive("batch_size", batch_size)
    if limit is not None:
        _check_positive("limit", limit)
    cutoff = now or timezone.now()
    run = PurgeRun.objects.create(
        trigger=trigger, cutoff=cutoff, batch_size=batch_size, limit=limit, dry_run=dry_run
    )
    started = time.monotonic()
    progress = _Progress(rows=dict.fromkeys((m._meta.label for m, _ in cascade_paths()), 0))
    try:
        if dry_run:
            _count_expired(cutoff, limit, progress)
        else:
            _delete_expired(run, cutoff, batch_size, limit, progress, should_stop)
    except BaseException as exc:
        interrupted = isinstance(exc, KeyboardInterrupt)
        status = PurgeRun.Status.INTERRUPTED if interrupted else PurgeRun.Status.FAILED
        _finish(run, progress, started, status, storage.describe_error(exc))
        raise
    if progress.stopped:
        status = PurgeRun.Status.INTERRUPTED
    elif progress.files.failed:
        status = PurgeRun.Status.FILES_PENDING
    else:
        status = PurgeRun.Status.SUCCEEDED
    error = ""
    if progress.files.failed:
        error = f"{progress.files.failed} file(s) left pending: {'; '.join(progress.files.errors[:3])}"
    return _finish(run, progress, started, status, error)


@dataclass
class _Progress:
    rows: dict[str, int]
    jobs: int = 0
    batches: int = 0
    files_to_delete: int = 0
    files: FileDeletion = field(default_factory=FileDeletion)
    stopped: bool = False


def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive whole number, got {value!r}")


def _expired_ids(cutoff, size, *, lock):
    expired = Job.objects.expired(cutoff).order_by("expires_at")
    if lock:
        # Several purges can run side by side: each takes rows no other one holds.
        expired = expired.select_for_update(skip_locked=True)
    return expired.values_list("pk", flat=True)[:size]


def _count_expired(cutoff, limit, progress):
    chosen = _expired_ids(cutoff, limit, lock=False)
    for model, path in cascade_paths():
        rows = model._default_manager.filter(**{f"{path}pk__in": chosen})
        progress.rows[model._meta.label] = rows.count()
        for f in file_fields(model):
            progress.files_to_delete += rows.exclude(**{f.name: ""}).count()
    progress.jobs = progress.rows[Job._meta.label]


def _delete_expired(run, cutoff, batch_size, limit, progress, should_stop):
    while limit is None or progress.jobs < limit:
        if should_stop is not None and should_stop():
            progress.stopped = True
            return
        size = batch_size if limit is None else min(batch_size, limit - progress.jobs)
        batch_started = time.monotonic()
        # durable: files are deleted right after this block, so it must really commit here,
        # not inside a caller's transaction that could still roll back.
        with transaction.atomic(durable=True):
            ids = list(_expired_ids(cutoff, size, lock=True))
            if not ids:
                break
            with gathering_deleted_files() as names:
                # The ORM cascade, one DELETE per model (see cleanup/deletion.py); the collector
                # reads nothing of Job but its key.
                _, per_model = delete_cascading(Job.objects.filter(among("pk", ids)).only("pk"))
            PendingFileDeletion.objects.record(names)
        progress.batches += 1
        progress.jobs += per_model.get(Job._meta.label, 0)
        for label, count in per_model.items():
            progress.rows[label] = progress.rows.get(label, 0) + count
        files = _delete_batch_files(names, progress.files)
        progress.files.add(files)
        logger.info(
            "purge.batch run=%s batch=%s jobs=%s rows=%s files_deleted=%s files_pending=%s "
            "duration_ms=%d",
            run.pk, progress.batches, per_model.get(Job._meta.label, 0),
            sum(per_model.values()), files.deleted, files.failed,
            (time.monotonic() - batch_started) * 1000,
        )
    if not progress.files.unavailable:
        # Names left by earlier failures or crashes: this run finishes them.
        progress.files.add(delete_pending_files())


def _delete_batch_files(names, so_far: FileDeletion) -> FileDeletion:
    if so_far.unavailable:
        # Storage is down: don't spend every batch timing out. The names are safely pending.
        return FileDeletion(failed=len(names), errors=[so_far.unavailable])
    return delete_pending_files(names=names)


def delete_pending_files(*, names: list[str] | None = None) -> FileDeletion:
    """Delete pending files from storage and forget the ones that are gone.

    With `names`, exactly those (just recorded by a delete); otherwise every pending name that
    is due. A name that a row still references is never deleted from storage.
    """
    result = FileDeletion()
    now = timezone.now()
    if names is not None:
        # One pass for a whole purge batch: storage splits its own requests (1,000 keys per S3
        # request, and stops at an outage), and the database side is one statement per step, so
        # a batch's file work costs the same few queries whatever the batch size.
        return _delete_chunk(names, now)
    while True:
        # Each pass deletes its names or pushes them past `now`, so this loop ends.
        chunk = list(
            PendingFileDeletion.objects.due(now)
            .order_by("next_attempt_at", "pk")
            .values_list("name", flat=True)[: storage.S3_MAX_KEYS_PER_REQUEST]
        )
        if not chunk:
            return result
        outcome = _delete_chunk(chunk, now)
        result.add(outcome)
        if outcome.unavailable:
            return result


def _delete_chunk(names, now) -> FileDeletion:
    referenced = _still_referenced(names)
    outcome = storage.delete_names([n for n in names if n not in referenced])
    gone = outcome.deleted + list(referenced)
    deleted = sum(_forget_pending(part) for part in _param_chunks(gone))
    result = FileDeletion(
        deleted=min(deleted, len(outcome.deleted)), failed=len(outcome.failed),
        requests=outcome.requests,
    )
    if outcome.failed:
        result.unavailable = outcome.unavailable
        result.errors = sorted(set(outcome.failed.values()))
        _mark_failed(outcome.failed, now, backoff=not outcome.unavailable)
    return result


def _forget_pending(names) -> int:
    # Purges running side by side can delete the same pending names (one's final sweep, the
    # other's batch). Each forgets only rows no one else holds, so they neither wait on nor
    # deadlock with each other, and each name is counted by exactly one of them.
    # One statement: DELETE … WHERE id IN (SELECT id … FOR UPDATE SKIP LOCKED).
    mine = (
        PendingFileDeletion.objects.filter(among("name", names))
        .select_for_update(skip_locked=True)
        .order_by()
        .values("pk")
    )
    return PendingFileDeletion.objects.filter(pk__in=mine).delete()[0]


def _still_referenced(names) -> set[str]:
    # A name a live row still points at is not garbage, whatever the pending table says.
    referenced = set()
    for model in models_with_files():
        for f in file_fields(model):
            for part in _param_chunks(names):
                referenced.update(
                    model._default_manager.filter(among(f.attname, part)).values_list(
                        f.name, flat=True
                    )
                )
    return referenced


def _param_chunks(values):
    """`values` whole where the backend takes any number of query parameters (PostgreSQL)."""
    size = connection.features.max_query_params or max(len(values), 1)
    return [values[start : start + size] for start in range(0, len(values), size)]


def _mark_failed(failed: dict[str, str], now, *, backoff: bool):
    rows = list(PendingFileDeletion.objects.filter(name__in=failed))
    for row in rows:
        row.attempts += 1
        row.last_error = failed[row.name]
        delay = min(RETRY_BASE * 2 ** (row.attempts - 1), RETRY_MAX) if backoff else timedelta(0)
        row.next_attempt_at = now + delay
    PendingFileDeletion.objects.bulk_update(
        rows, ["attempts", "last_error", "next_attempt_at"], batch_size=500
    )


def _finish(run, progress, started, status, error) -> PurgeResult:
    run.finished_at = timezone.now()
    run.status = status
    run.batches = progress.batches
    run.jobs_deleted = progress.jobs
    run.rows_deleted = progress.rows
    run.files_deleted = progress.files_to_delete if run.dry_run else progress.files.deleted
    run.files_pending = progress.files.failed
    run.error = error
    run.save()
    result = PurgeResult(
        run_id=run.pk,
        dry_run=run.dry_run,
        cutoff=run.cutoff,
        status=status,
        jobs_deleted=run.jobs_deleted,
        rows_deleted=dict(run.rows_deleted),
        files_deleted=run.files_deleted,
        files_pending=run.files_pending,
        batches=run.batches,
        duration_seconds=round(time.monotonic() - started, 3),
        error=error,
    )
    logger.info(
        "purge.run run=%s trigger=%s status=%s dry_run=%s jobs=%s rows=%s files_deleted=%s "
        "files_pending=%s batches=%s duration_ms=%d",
        run.pk, run.trigger, status, run.dry_run, result.jobs_deleted, result.rows_total,
        result.files_deleted, result.files_pending, result.batches,
        result.duration_seconds * 1000,
    )
    return result


# --- Parallel purge: a large backlog fanned out over Celery workers ---------------------------

# A queued subtask older than this is pointless: the next hourly run plans afresh.
SUBTASK_EXPIRES_SECONDS = 50 * 60


@dataclass
class PurgePlan:
    cutoff: datetime
    batch_size: int
    # Expired jobs counted, up to one batch more than the subtasks allowed could take at once.
    backlog: int
    # Subtasks still purging (their runs are open and recent).
    running: int
    # Subtasks to start now. With `inline`, none: the scheduled run purges by itself.
    subtasks: int

    @property
    def inline(self) -> bool:
        return self.backlog <= self.batch_size

    def chunk_kwargs(self) -> dict:
        return {"cutoff": self.cutoff.isoformat(), "batch_size": self.batch_size}

    def as_dict(self) -> dict:
        return {
            "fan_out": not self.inline, "cutoff": self.cutoff.isoformat(),
            "batch_size": self.batch_size, "backlog_at_least": self.backlog,
            "subtasks_running": self.running, "subtasks_started": self.subtasks,
        }


def plan_purge(
    *, now: datetime | None = None, batch_size: int | None = None, max_parallel: int | None = None
) -> PurgePlan:
    """Decide whether a scheduled run purges by itself or fans out, and into how many subtasks.

    A backlog one batch can take is purged inline. A larger one is split over at most
    `max_parallel` subtasks, counting the ones still running from an earlier run, so a beat that
    fires while the last purge is still going does not pile more workers on.
    """
    batch_size = settings.CLEANUP_BATCH_SIZE if batch_size is None else batch_size
    max_parallel = settings.CLEANUP_MAX_PARALLEL if max_parallel is None else max_parallel
    _check_positive("batch_size", batch_size)
    _check_positive("max_parallel", max_parallel)
    cutoff = now or timezone.now()
    # Bounded: counting a million-job backlog exactly would cost more than the decision needs.
    backlog = Job.objects.expired(cutoff)[: batch_size * max_parallel + 1].count()
    plan = PurgePlan(cutoff=cutoff, batch_size=batch_size, backlog=backlog, running=0, subtasks=0)
    if plan.inline:
        return plan
    plan.running = _running_subtasks()
    wanted = -(-backlog // batch_size)
    plan.subtasks = max(0, min(max_parallel - plan.running, wanted))
    logger.info(
        "purge.plan backlog_at_least=%s running=%s subtasks=%s", backlog, plan.running,
        plan.subtasks,
    )
    return plan


def _running_subtasks() -> int:
    # A worker killed mid-run leaves its run open; after two subtask lengths it no longer counts.
    stale = timedelta(seconds=2 * settings.CLEANUP_SUBTASK_SECONDS + 60)
    return PurgeRun.objects.filter(
        trigger=PurgeRun.Trigger.TASK, status=PurgeRun.Status.RUNNING,
        started_at__gte=timezone.now() - stale,
    ).count()


@dataclass
class ChunkResult:
    result: PurgeResult
    # Expired jobs remain and the subtask ran out of time: it should be enqueued again.
    more: bool

    def as_dict(self) -> dict:
        return {**self.result.as_dict(), "more": self.more}


def purge_expired_chunk(
    *, cutoff: datetime, batch_size: int | None = None, seconds: float | None = None
) -> ChunkResult:
    """One subtask's share of a fanned-out purge: batches until `seconds` are used up.

    Subtasks running side by side take disjoint batches (SKIP LOCKED). Each leaves its own run
    record (trigger "task"), so a fanned-out purge's totals are the sum of its runs.
    """
    seconds = settings.CLEANUP_SUBTASK_SECONDS if seconds is None else seconds
    deadline = time.monotonic() + seconds
    checks = itertools.count()
    result = purge_expired_jobs(
        now=cutoff, batch_size=batch_size, trigger=PurgeRun.Trigger.TASK,
        # Never before the first batch: every subtask makes progress, however small its budget.
        should_stop=lambda: next(checks) > 0 and time.monotonic() >= deadline,
    )
    more = result.status == PurgeRun.Status.INTERRUPTED and Job.objects.expired(cutoff).exists()
    return ChunkResult(result=result, more=more)
