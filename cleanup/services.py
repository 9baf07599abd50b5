"""The purge: deleting expired jobs with everything attached, and their files from storage."""

import itertools
import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, connection, models, transaction
from django.db.migrations.executor import MigrationExecutor
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
    on_batch=None,
    stopped_status: str = PurgeRun.Status.INTERRUPTED,
) -> PurgeResult:
    """Delete jobs whose expires_at is before `now`, oldest first, `batch_size` per transaction.

    Every dependent row goes through the ORM cascade; every file is recorded as pending in the
    same transaction and deleted from storage after commit. `should_stop` is checked between
    batches so an interrupted run never leaves a batch half done; a run it stops is recorded with
    `stopped_status`. `on_batch(jobs_deleted)` is called after each batch with the run's total so
    far (for progress display).
    """
    batch_size = settings.CLEANUP_BATCH_SIZE if batch_size is None else batch_size
    _check_positive("batch_size", batch_size)
    if limit is not None:
        _check_positive("limit", limit)
    check_database_ready()
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
            _delete_expired(run, cutoff, batch_size, limit, progress, should_stop, on_batch)
    except BaseException as exc:
        interrupted = isinstance(exc, KeyboardInterrupt)
        status = PurgeRun.Status.INTERRUPTED if interrupted else PurgeRun.Status.FAILED
        _record_failure(run, progress, started, status, storage.describe_error(exc))
        raise
    if progress.stopped:
        status = stopped_status
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


# PurgeRun keeps batch_size and limit in PositiveIntegerFields; anything larger could not even
# be recorded, so it is refused before the run starts rather than failing inside it.
MAX_SIZE = 2_147_483_647


def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SIZE:
        raise ValueError(
            f"{name} must be a positive whole number up to {MAX_SIZE}, got {value!r}"
        )


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


def _delete_expired(run, cutoff, batch_size, limit, progress, should_stop, on_batch):
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
        if on_batch is not None:
            on_batch(progress.jobs)
        if len(ids) < size:
            break  # the backlog is done (or held by a purge beside this one): no empty SELECT
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
    max_parallel: int
    # Expired jobs counted, up to one batch more than the subtasks allowed could take at once.
    backlog: int
    # Subtasks still purging (their runs are open and recent).
    running: int
    # Subtasks to start now. With `inline`, none: the scheduled run purges by itself.
    subtasks: int

    @property
    def inline(self) -> bool:
        # One subtask at most is no parallelism: the scheduled run then purges by itself.
        return self.backlog <= self.batch_size or self.max_parallel == 1

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

    A backlog one batch can take is purged inline (any backlog, with `max_parallel` 1). A larger
    one is split over at most
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
    plan = PurgePlan(
        cutoff=cutoff, batch_size=batch_size, max_parallel=max_parallel, backlog=backlog,
        running=0, subtasks=0,
    )
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
        stopped_status=PurgeRun.Status.HANDED_OVER,
    )
    more = result.status == PurgeRun.Status.HANDED_OVER and Job.objects.expired(cutoff).exists()
    return ChunkResult(result=result, more=more)

# --- What operators see: status, retries --------------------------------------------------------


@dataclass
class PurgeStatus:
    """Is the 24-hour promise holding right now? Facts only, no personal data."""

    checked_at: datetime
    expired_jobs: int
    # How long the most overdue job has been past its expires_at; None when none is expired.
    most_overdue_seconds: float | None
    pending_files: int
    oldest_pending_seconds: float | None
    last_success: dict | None
    last_run: dict | None

    def problems(self, *, max_overdue: timedelta) -> list[str]:
        """Why the promise is at risk, given how late is too late; empty when it holds."""
        limit = max_overdue.total_seconds()
        found = []
        if self.most_overdue_seconds is not None and self.most_overdue_seconds > limit:
            found.append(
                f"{self.expired_jobs} expired job(s) still present, the oldest "
                f"{_minutes(self.most_overdue_seconds)} past its expiry"
            )
        if self.oldest_pending_seconds is not None and self.oldest_pending_seconds > limit:
            found.append(
                f"{self.pending_files} file deletion(s) pending, the oldest for "
                f"{_minutes(self.oldest_pending_seconds)}"
            )
        return found

    def as_dict(self) -> dict:
        data = asdict(self)
        data["checked_at"] = self.checked_at.isoformat()
        return data


def purge_status(*, now: datetime | None = None) -> PurgeStatus:
    """The facts a monitor needs: what is overdue, what is pending, when the purge last worked."""
    now = now or timezone.now()
    expired = Job.objects.expired(now)
    oldest_expiry = expired.aggregate(oldest=models.Min("expires_at"))["oldest"]
    pending = PendingFileDeletion.objects.aggregate(
        count=models.Count("pk"), oldest=models.Min("created_at")
    )
    runs = PurgeRun.objects.filter(dry_run=False).order_by("-started_at", "-pk")
    return PurgeStatus(
        checked_at=now,
        expired_jobs=expired.count(),
        most_overdue_seconds=_age(now, oldest_expiry),
        pending_files=pending["count"],
        oldest_pending_seconds=_age(now, pending["oldest"]),
        last_success=_run_facts(runs.filter(status=PurgeRun.Status.SUCCEEDED).first()),
        last_run=_run_facts(runs.first()),
    )


def overdue_limit(minutes: str) -> timedelta:
    """`--max-overdue` / `?max_overdue=`: minutes (0 or more, fractions allowed) as a timedelta."""
    try:
        value = float(minutes)
    except (TypeError, ValueError):
        value = -1.0
    try:
        if not 0 <= value < float("inf"):
            raise OverflowError
        return timedelta(minutes=value)
    except OverflowError:
        raise ValueError(f"expected a number of minutes, 0 or more, got {minutes!r}") from None


def count_expired_jobs(*, now: datetime | None = None) -> int:
    return Job.objects.expired(now or timezone.now()).count()


def retry_pending_files(*, ids) -> FileDeletion:
    """Make the chosen pending deletions due now and try them at once, whatever their backoff."""
    now = timezone.now()
    chosen = PendingFileDeletion.objects.filter(pk__in=ids)
    chosen.update(next_attempt_at=now)
    names = list(chosen.values_list("name", flat=True))
    return delete_pending_files(names=names) if names else FileDeletion()


def _age(now, moment) -> float | None:
    return None if moment is None else round((now - moment).total_seconds(), 3)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def _run_facts(run: PurgeRun | None) -> dict | None:
    if run is None:
        return None
    return {
        "run_id": run.pk,
        "trigger": run.trigger,
        "status": run.status,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "jobs_deleted": run.jobs_deleted,
        "rows_deleted": dict(run.rows_deleted),
        "files_deleted": run.files_deleted,
        "files_pending": run.files_pending,
    }


# --- Orphan reconciler ------------------------------------------------------------------------
# The purge deletes every file a row or a pending deletion names. An object nothing names (an
# upload whose transaction rolled back, a crash between writing a file and its row, a write
# outside the ORM) would never expire; this finds those and, if asked, deletes them.

RECONCILE_GRACE = timedelta(minutes=60)
RECONCILE_EXAMPLES = 5


@dataclass
class ReconcileResult:
    delete: bool
    cutoff: datetime
    scanned: int = 0  # objects under the upload prefix
    scanned_bytes: int = 0
    young: int = 0  # newer than the grace period: maybe an upload in flight, not looked at
    held: int = 0  # named by a row or a pending deletion
    orphans: int = 0
    orphan_bytes: int = 0
    deleted: int = 0
    deleted_bytes: int = 0
    failed: int = 0
    requests: int = 0
    error: str = ""
    duration_seconds: float = 0.0
    # A few orphan keys (job ids and random hex, nothing about the user) for --verbosity 2.
    examples: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.error

    def as_dict(self) -> dict:
        data = asdict(self)
        data["cutoff"] = self.cutoff.isoformat()
        del data["examples"]
        return data


def reconcile_storage(
    *, delete: bool = False, grace: timedelta = RECONCILE_GRACE, now: datetime | None = None
) -> ReconcileResult:
    """Find objects under the jobs' upload prefix that nothing references; delete them if asked.

    Streams the listing and checks it against the database 1,000 names at a time, so memory does
    not grow with the bucket. Objects modified within `grace` of `now` are never touched.
    """
    from jobs.models import UPLOAD_PREFIX

    if not isinstance(grace, timedelta) or grace < timedelta(0):
        raise ValueError(f"grace must be a non-negative duration, got {grace!r}")
    started = time.monotonic()
    result = ReconcileResult(delete=delete, cutoff=(now or timezone.now()) - grace)
    chunk: list[storage.StoredObject] = []
    try:
        for obj in storage.list_objects(UPLOAD_PREFIX):
            result.scanned += 1
            result.scanned_bytes += obj.size
            if obj.modified > result.cutoff:
                result.young += 1
                continue
            chunk.append(obj)
            if len(chunk) == storage.S3_MAX_KEYS_PER_REQUEST:
                _reconcile_chunk(chunk, result)
                chunk = []
        if chunk:
            _reconcile_chunk(chunk, result)
    except _StorageUnavailable:
        pass
    except Exception as exc:  # noqa: BLE001 - listing failed: report it, the next run starts over
        result.error = storage.describe_error(exc)
    result.duration_seconds = round(time.monotonic() - started, 3)
    logger.info(
        "reconcile.run delete=%s scanned=%s young=%s held=%s orphans=%s orphan_bytes=%s "
        "deleted=%s failed=%s error=%s duration_ms=%d",
        delete, result.scanned, result.young, result.held, result.orphans, result.orphan_bytes,
        result.deleted, result.failed, bool(result.error), result.duration_seconds * 1000,
    )
    return result


class _StorageUnavailable(Exception):
    pass


def _reconcile_chunk(chunk, result: ReconcileResult):
    names = [obj.name for obj in chunk]
    # Rows first, then pending names: a purge that commits in between moves a name from the first
    # to the second, so it is seen in one of them. The other order could miss it.
    held = _still_referenced(names)
    held.update(PendingFileDeletion.objects.filter(name__in=names).values_list("name", flat=True))
    orphans = [obj for obj in chunk if obj.name not in held]
    result.held += len(chunk) - len(orphans)
    result.orphans += len(orphans)
    result.orphan_bytes += sum(obj.size for obj in orphans)
    room = RECONCILE_EXAMPLES - len(result.examples)
    result.examples.extend(obj.name for obj in orphans[:room])
    if not (result.delete and orphans):
        return
    outcome = storage.delete_names([obj.name for obj in orphans])
    sizes = {obj.name: obj.size for obj in orphans}
    result.requests += outcome.requests
    result.deleted += len(outcome.deleted)
    result.deleted_bytes += sum(sizes[name] for name in outcome.deleted)
    result.failed += len(outcome.failed)
    if outcome.failed:
        reasons = sorted(set(outcome.failed.values()))
        result.error = f"{result.failed} orphan(s) not deleted: {'; '.join(reasons[:3])}"
    if outcome.unavailable:
        # The rest would fail the same way; the next run finds them again.
        raise _StorageUnavailable


# --- Failing clearly ----------------------------------------------------------------------------
# A purge that cannot run, or whose database goes away mid-run, says so in words an operator can
# act on, and still leaves a failed run record when the database lets it.

PURGE_APPS = ("jobs", "cleanup")


class PurgeNotPossible(Exception):
    """The purge cannot run against this database at all; nothing was read or changed."""


def check_database_ready():
    """Refuse to start on a database that lacks the purge's tables (never migrated, or behind)."""
    executor = MigrationExecutor(connection)
    targets = [node for node in executor.loader.graph.leaf_nodes() if node[0] in PURGE_APPS]
    missing = executor.migration_plan(targets)
    if missing:
        apps = ", ".join(sorted({migration.app_label for migration, _ in missing}))
        raise PurgeNotPossible(
            f"the database {connection.settings_dict['NAME']!s} is not migrated "
            f"({len(missing)} migration(s) not applied, for {apps}); "
            "run `python manage.py migrate` first. Nothing was deleted."
        )


def _record_failure(run, progress, started, status, error):
    try:
        _finish(run, progress, started, status, error)
        return
    except DatabaseError as exc:
        if connection.in_atomic_block:
            # A caller's transaction owns the connection; the record goes wherever it goes.
            logger.error("purge.run run=%s could not record its failure: %s", run.pk,
                         storage.describe_error(exc))
            return
    # The failure was the connection itself (terminated, server restarted): the record is worth
    # one fresh connection.
    connection.close()
    try:
        _finish(run, progress, started, status, error)
    except DatabaseError as exc:
        logger.error("purge.run run=%s could not record its failure: %s", run.pk,
                     storage.describe_error(exc))
