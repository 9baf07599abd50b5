"""The purge: deleting expired jobs with everything attached, and their files from storage."""

import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Q
from django.utils import timezone

from fmr.parsing import MAX_SIZE
from jobs.models import Job

from .. import storage
from ..deletion import among, cascade_paths, delete_cascading
from ..file_models import file_fields, file_models, names_of
from ..models import PendingFileDeletion, PurgeRun
from .binding import verify_storage
from .errors import PurgeNotPossible
from .files import FileDeletion, delete_pending_files

logger = logging.getLogger(__name__)


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
    # File names never sent to storage (not a canonical key under the upload prefix).
    files_refused: int = 0

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
    same transaction and deleted from storage after commit. Before anything is deleted the
    configured storage is checked against the one the database's files live in
    (StorageNotVerified, recorded as a failed run, when it is not). `should_stop` is checked between
    batches so an interrupted run never leaves a batch half done; a run it stops is recorded with
    `stopped_status`. `on_batch(jobs_deleted)` is called after each batch with the run's total so
    far (for progress display).
    """
    batch_size = settings.CLEANUP_BATCH_SIZE if batch_size is None else batch_size
    check_positive("batch_size", batch_size)
    if limit is not None:
        check_positive("limit", limit)
    check_database_ready()
    _abandon_dead_runs()
    cutoff = now or timezone.now()
    run = PurgeRun.objects.create(
        trigger=trigger, cutoff=cutoff, batch_size=batch_size, limit=limit, dry_run=dry_run
    )
    started = time.monotonic()
    progress = _Progress(rows=dict.fromkeys((m._meta.label for m, _ in cascade_paths(Job)), 0))
    try:
        # Once per run, before the first row goes: the storage its files live in.
        verify_storage()
        if dry_run:
            _count_expired(cutoff, limit, progress)
        else:
            _delete_expired(run, cutoff, batch_size, limit, progress, should_stop, on_batch)
    except PurgeNotPossible as exc:
        _record_failure(run, progress, started, PurgeRun.Status.FAILED, str(exc))
        raise
    except BaseException as exc:
        interrupted = isinstance(exc, KeyboardInterrupt)
        status = PurgeRun.Status.INTERRUPTED if interrupted else PurgeRun.Status.FAILED
        _record_failure(run, progress, started, status, storage.describe_error(exc))
        raise
    files = progress.files
    if progress.stopped:
        status = stopped_status
    elif files.failed or files.refused:
        # Rows purged, but not every file is known to be gone: never a clean success.
        status = PurgeRun.Status.FILES_PENDING
    else:
        status = PurgeRun.Status.SUCCEEDED
    problems = []
    if files.failed:
        problems.append(f"{files.failed} file(s) left pending: {'; '.join(files.errors[:3])}")
    if files.refused:
        problems.append(
            f"{files.refused} file name(s) refused, never sent to storage "
            f"({'; '.join(files.refused_reasons[:3])}); see purge_status"
        )
    return _finish(run, progress, started, status, "; ".join(problems))


@dataclass
class _Progress:
    rows: dict[str, int]
    jobs: int = 0
    batches: int = 0
    files_to_delete: int = 0
    files: FileDeletion = field(default_factory=FileDeletion)
    stopped: bool = False


# PurgeRun keeps batch_size and limit in PositiveIntegerFields; anything larger could not even
# be recorded, so it is refused before the run starts rather than failing inside it. (MAX_SIZE
# lives with the other bounds in fmr/parsing.py.)


def check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SIZE:
        raise ValueError(f"{name} must be a positive whole number up to {MAX_SIZE}, got {value!r}")


def _expired_ids(cutoff, size, *, lock):
    expired = Job.objects.expired(cutoff).order_by("expires_at")
    if lock:
        # Several purges can run side by side: each takes rows no other one holds.
        expired = expired.select_for_update(skip_locked=True)
    return expired.values_list("pk", flat=True)[:size]


def _count_expired(cutoff, limit, progress):
    chosen = _expired_ids(cutoff, limit, lock=False)
    for model, path in cascade_paths(Job):
        rows = model._default_manager.filter(**{f"{path}pk__in": chosen})
        progress.rows[model._meta.label] = rows.count()
        if model not in file_models():
            continue
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
            # The ORM cascade, one DELETE per model (see cleanup/deletion.py); the collector reads
            # nothing of Job but its key, and hands back the rows whose files must go.
            cascade = delete_cascading(
                Job.objects.filter(among("pk", ids)).only("pk"), file_models=file_models()
            )
            names = [
                name
                for rows in cascade.file_rows.values()
                for row in rows
                for name in names_of(row)
            ]
            PendingFileDeletion.objects.record(names)
            per_model = cascade.per_model
        progress.batches += 1
        progress.jobs += per_model.get(Job._meta.label, 0)
        for label, count in per_model.items():
            progress.rows[label] = progress.rows.get(label, 0) + count
        files = _delete_batch_files(names, progress.files)
        progress.files.add(files)
        logger.info(
            "purge.batch",
            extra={
                "run": run.pk,
                "batch": progress.batches,
                "jobs": per_model.get(Job._meta.label, 0),
                "rows": sum(per_model.values()),
                "files_deleted": files.deleted,
                "files_pending": files.failed,
                "duration_ms": int((time.monotonic() - batch_started) * 1000),
            },
        )
        _heartbeat(run, progress)
        if on_batch is not None:
            on_batch(progress.jobs)
        if len(ids) < size:
            break  # the backlog is done (or held by a purge beside this one): no empty SELECT
    if not progress.files.unavailable:
        # Names left by earlier failures or crashes: this run finishes them.
        progress.files.add(delete_pending_files(storage_verified=True))


def _heartbeat(run, progress):
    PurgeRun.objects.filter(pk=run.pk).update(
        heartbeat_at=timezone.now(),
        batches=progress.batches,
        jobs_deleted=progress.jobs,
        rows_deleted=progress.rows,
        files_deleted=progress.files.deleted,
    )


def _abandon_dead_runs():
    """Close the records of runs whose process died: killed runs cannot record themselves."""
    now = timezone.now()
    dead = PurgeRun.objects.filter(status=PurgeRun.Status.RUNNING).filter(
        Q(heartbeat_at__lt=now - settings.CLEANUP_STALE_RUN)
        | Q(heartbeat_at__isnull=True, started_at__lt=now - settings.CLEANUP_STALE_RUN)
    )
    minutes = int(settings.CLEANUP_STALE_RUN.total_seconds() // 60)
    count = dead.update(
        status=PurgeRun.Status.ABANDONED,
        finished_at=now,
        error=f"no batch finished for over {minutes} min: the process died (killed, OOM, host "
        "lost). Its committed batches stay purged; files it left pending go with later runs.",
    )
    if count:
        logger.warning("purge.abandoned", extra={"runs": count})


def _delete_batch_files(names, so_far: FileDeletion) -> FileDeletion:
    if so_far.unavailable:
        # Storage is down: don't spend every batch timing out. The names are safely pending.
        return FileDeletion(failed=len(names), errors=[so_far.unavailable])
    return delete_pending_files(names=names, storage_verified=True)


def _finish(run, progress, started, status, error) -> PurgeResult:
    run.finished_at = timezone.now()
    run.status = status
    run.batches = progress.batches
    run.jobs_deleted = progress.jobs
    run.rows_deleted = progress.rows
    run.files_deleted = progress.files_to_delete if run.dry_run else progress.files.deleted
    run.files_pending = progress.files.failed
    run.files_refused = progress.files.refused
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
        files_refused=run.files_refused,
    )
    logger.info(
        "purge.run",
        extra={
            "run": run.pk,
            "trigger": run.trigger,
            "status": status,
            "dry_run": run.dry_run,
            "jobs": result.jobs_deleted,
            "rows": result.rows_total,
            "files_deleted": result.files_deleted,
            "files_pending": result.files_pending,
            "files_refused": result.files_refused,
            "batches": result.batches,
            "duration_ms": int(result.duration_seconds * 1000),
        },
    )
    return result


# A purge that cannot run, or whose database goes away mid-run, says so in words an operator can
# act on, and still leaves a failed run record when the database lets it.

PURGE_APPS = ("jobs", "cleanup")


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
            logger.error(
                "purge.unrecorded", extra={"run": run.pk, "error": storage.describe_error(exc)}
            )
            return
    # The failure was the connection itself (terminated, server restarted): the record is worth
    # one fresh connection.
    connection.close()
    try:
        _finish(run, progress, started, status, error)
    except DatabaseError as exc:
        logger.error(
            "purge.unrecorded", extra={"run": run.pk, "error": storage.describe_error(exc)}
        )
