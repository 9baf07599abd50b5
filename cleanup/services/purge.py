"""The purge: deleting expired jobs with everything attached, and their files from storage."""

import contextlib
import functools
import importlib
import logging
import pkgutil
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime

from django.apps import apps
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.migrations.recorder import MigrationRecorder
from django.db.models import Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from fmr.parsing import MAX_SIZE
from jobs.models import Job

from .. import storage
from ..deletion import cascade_paths, purge_plan
from ..file_models import file_fields, file_models
from ..models import PendingFileDeletion, PurgeRun
from .binding import verify_storage
from .clock import purge_cutoff
from .errors import PurgeNotPossible
from .files import FileDeletion, delete_pending_files
from .runs import abandon_dead_runs, open_run

logger = logging.getLogger(__name__)


@dataclass
class PurgeResult:
    """What a run did. A dry run deletes nothing: its *_deleted counts are 0 and its prediction
    is in would_delete_jobs / would_delete_rows / would_delete_files (0 and {} for real runs)."""

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
    would_delete_jobs: int = 0
    would_delete_rows: dict[str, int] = field(default_factory=dict)
    would_delete_files: int = 0
    trigger: str = ""
    parent_run_id: int | None = None
    # Files storage refused again that are stuck (purge_status alerts on them): not pending
    # above, and not a failure of this run.
    files_stuck: int = 0
    # File names never sent to storage (not a canonical key under the upload prefix).
    files_refused: int = 0

    @property
    def rows_total(self) -> int:
        return sum(self.rows_deleted.values())

    @property
    def would_delete_rows_total(self) -> int:
        return sum(self.would_delete_rows.values())

    @property
    def ok(self) -> bool:
        """It did all it set out to: purged everything (or, for a dry run, counted it)."""
        return self.status in (PurgeRun.Status.SUCCEEDED, PurgeRun.Status.DRY_RUN)

    def as_dict(self) -> dict:
        data = asdict(self)
        data["cutoff"] = self.cutoff.isoformat()
        data["rows_total"] = self.rows_total
        data["would_delete_rows_total"] = self.would_delete_rows_total
        return data


def purge_expired_jobs(
    *,
    now: datetime | None = None,
    batch_size: int | None = None,
    limit: int | None = None,
    dry_run: bool = False,
    trigger: str = PurgeRun.Trigger.SHELL,
    requested_by: str = "",
    parent_id: int | None = None,
    task_id: str = "",
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
    far (for progress display). `requested_by` (admin runs), `parent_id` (a fan-out's subtask)
    and `task_id` (Celery) go into the run record.

    An exception that ends the run is re-raised after the run is recorded, carrying the
    recorded run as `purge_result` (None if the record could not be written).

    The cutoff is never ahead of the database's clock (services/clock.py): without `now`, the
    earlier of the database's and this process's clock; a naive `now`, or one more than a second
    ahead of the database, raises CutoffRefused (a ValueError) before anything is deleted.
    """
    batch_size = settings.CLEANUP_BATCH_SIZE if batch_size is None else batch_size
    check_positive("batch_size", batch_size)
    if limit is not None:
        check_positive("limit", limit)
    check_database_ready()
    cutoff = purge_cutoff(now)
    abandon_dead_runs()
    # Names pending since before this moment are the final sweep's; names this run records come
    # later, and each of them is counted by the batch that recorded it.
    sweep_due_before = timezone.now()
    run = open_run(
        cutoff=cutoff,
        dry_run=dry_run,
        trigger=trigger,
        requested_by=requested_by,
        parent_id=parent_id,
        task_id=task_id or "",
        batch_size=batch_size,
        limit=limit,
    )
    started = time.monotonic()
    progress = _Progress(rows=dict.fromkeys((m._meta.label for m, _ in cascade_paths(Job)), 0))
    try:
        # Once per run, before the first row goes: the storage its files live in.
        verify_storage()
        if dry_run:
            _count_expired(cutoff, limit, progress)
        else:
            # Before the first batch: a storage the purge cannot delete from (an unsupported
            # backend) fails the run while every row is still there.
            session = storage.open_session()
            _delete_expired(
                run,
                cutoff,
                batch_size,
                limit,
                progress,
                should_stop,
                on_batch,
                sweep_due_before,
                session,
            )
    except BaseException as exc:
        interrupted = isinstance(exc, KeyboardInterrupt)
        status = PurgeRun.Status.INTERRUPTED if interrupted else PurgeRun.Status.FAILED
        # A refusal's own words are written for operators; anything else is summarised.
        error = str(exc) if isinstance(exc, PurgeNotPossible) else storage.describe_error(exc)
        recorded = _record_failure(run, progress, started, status, error)
        with contextlib.suppress(AttributeError):  # an exception that takes no attributes
            exc.purge_result = recorded
        raise
    files = progress.files
    pending = files.failed - files.stuck
    if dry_run:
        status = PurgeRun.Status.DRY_RUN
    elif progress.stopped:
        status = stopped_status
    elif pending or files.refused:
        # Rows purged, but not every file is known to be gone: never a clean success.
        status = PurgeRun.Status.FILES_PENDING
    else:
        # Deleted everything it could: stuck names are purge_status's alert, not a failed run.
        status = PurgeRun.Status.SUCCEEDED
    problems = []
    if pending:
        problems.append(f"{pending} file(s) left pending: {'; '.join(files.errors[:3])}")
    if files.refused:
        problems.append(
            f"{files.refused} file name(s) refused, never sent to storage "
            f"({'; '.join(files.refused_reasons[:3])}); see purge_status"
        )
    if files.stuck and not pending:
        problems.append(
            f"{files.stuck} stuck file(s) still refused by storage: {'; '.join(files.errors[:3])}"
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

    def with_batch(self, per_model: dict[str, int]) -> "_Progress":
        """The counts once this batch commits; this progress changes only after it has."""
        rows = dict(self.rows)
        for label, count in per_model.items():
            rows[label] = rows.get(label, 0) + count
        return _Progress(
            rows=rows,
            jobs=self.jobs + per_model.get(Job._meta.label, 0),
            batches=self.batches + 1,
            files=self.files,
        )

    def add_batch(self, after: "_Progress"):
        self.rows, self.jobs, self.batches = after.rows, after.jobs, after.batches


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


def _delete_expired(
    run, cutoff, batch_size, limit, progress, should_stop, on_batch, sweep_due_before, session
):
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
            # The delete plan, one DELETE per model (see cleanup/deletion.py); it hands back the
            # names of the files that must go.
            cascade = purge_plan().delete(ids)
            names = cascade.file_names
            # The outbox: a pending row per name, committed with the batch (see record()).
            recorded_as = PendingFileDeletion.objects.record(names)
            per_model = cascade.per_model
            after = progress.with_batch(per_model)
            # The run's record commits with the batch: if the process dies in the file step
            # below, the record still shows exactly what was purged.
            _heartbeat(run, after)
        progress.add_batch(after)
        files = _delete_batch_files(names, recorded_as, progress.files, session)
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
        if on_batch is not None:
            on_batch(progress.jobs)
        if len(ids) < size:
            break  # the backlog is done (or held by a purge beside this one): no empty SELECT
    if not progress.files.unavailable:
        # Names left by earlier failures or crashes: this run finishes them.
        progress.files.add(
            delete_pending_files(
                due_before=sweep_due_before, session=session, storage_verified=True
            )
        )
    if progress.files.unavailable:
        # Storage is down, so the sweep stopped at its first failing chunk or never started: the
        # due names it did not get to are left pending by this run too. (The ones it tried were
        # pushed past `sweep_due_before` when they failed, so none is counted twice.)
        progress.files.failed += PendingFileDeletion.objects.due(sweep_due_before).count()


def _heartbeat(run, progress):
    PurgeRun.objects.filter(pk=run.pk).update(
        heartbeat_at=timezone.now(),
        batches=progress.batches,
        jobs_deleted=progress.jobs,
        rows_deleted=progress.rows,
        files_deleted=progress.files.deleted,
        files_pending=progress.files.failed,
    )


def _delete_batch_files(names, recorded_as, so_far: FileDeletion, session) -> FileDeletion:
    if so_far.unavailable:
        # Storage is down: don't spend every batch timing out. The names are safely pending.
        return FileDeletion(failed=len(names), errors=[so_far.unavailable])
    return delete_pending_files(
        names=names, recorded_as=recorded_as, session=session, storage_verified=True
    )


def _finish(run, progress, started, status, error) -> PurgeResult:
    run.finished_at = timezone.now()
    run.status = status
    run.batches = progress.batches
    if run.dry_run:
        # Nothing was deleted, and the record says so; the prediction has its own fields.
        run.would_delete_jobs = progress.jobs
        run.would_delete_rows = progress.rows
        run.would_delete_files = progress.files_to_delete
        run.rows_deleted = dict.fromkeys(progress.rows, 0)
    else:
        run.jobs_deleted = progress.jobs
        run.rows_deleted = progress.rows
        run.files_deleted = progress.files.deleted
        # Stuck names are purge_status's alert, not this run's failure (see the status above).
        run.files_pending = progress.files.failed - progress.files.stuck
    run.pending_files_at_end = PendingFileDeletion.objects.unresolved().count()
    run.files_refused = progress.files.refused
    run.error = error
    fields = [
        "finished_at",
        "status",
        "batches",
        "jobs_deleted",
        "rows_deleted",
        "files_deleted",
        "files_pending",
        "would_delete_jobs",
        "would_delete_rows",
        "would_delete_files",
        "pending_files_at_end",
        "files_refused",
        "error",
    ]
    # The last heartbeat stays (a run that never finished a batch gets its end as its last sign
    # of life); this instance never saw the heartbeats, so it must not write that column.
    PurgeRun.objects.filter(pk=run.pk).update(
        heartbeat_at=Coalesce("heartbeat_at", Value(run.finished_at)),
        **{name: getattr(run, name) for name in fields},
    )
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
        would_delete_jobs=run.would_delete_jobs,
        would_delete_rows=dict(run.would_delete_rows),
        would_delete_files=run.would_delete_files,
        trigger=run.trigger,
        parent_run_id=run.parent_id,
        files_stuck=progress.files.stuck,
        files_refused=run.files_refused,
    )
    fields = {"run": run.pk, "trigger": run.trigger, "status": status, "dry_run": run.dry_run}
    if run.dry_run:
        fields.update(
            would_delete_jobs=result.would_delete_jobs,
            would_delete_rows=result.would_delete_rows_total,
            would_delete_files=result.would_delete_files,
        )
    else:
        fields.update(
            jobs=result.jobs_deleted,
            rows=result.rows_total,
            files_deleted=result.files_deleted,
            files_pending=result.files_pending,
            files_stuck=result.files_stuck,
            files_refused=result.files_refused,
            batches=result.batches,
        )
    if run.parent_id:
        fields["parent"] = run.parent_id
    fields["duration_ms"] = int(result.duration_seconds * 1000)
    logger.info("purge.run", extra=fields)
    return result


# A purge that cannot run, or whose database goes away mid-run, says so in words an operator can
# act on, and still leaves a failed run record when the database lets it.

PURGE_APPS = ("jobs", "cleanup")


def check_database_ready():
    """Refuse to start on a database that lacks the purge's tables (never migrated, or behind).

    Compares the migrations on disk with those the database has applied, by module name: one
    query, and no import of the migration modules (which cost a fresh process ~30 ms a run).
    """
    recorder = MigrationRecorder(connection)
    applied = set(recorder.applied_migrations()) if recorder.has_table() else set()
    missing = [
        (app, name)
        for app in PURGE_APPS
        for name in _migrations_on_disk(app)
        if (app, name) not in applied
    ]
    if missing:
        apps = ", ".join(sorted({app for app, _ in missing}))
        raise PurgeNotPossible(
            f"the database {connection.settings_dict['NAME']!s} is not migrated "
            f"({len(missing)} migration(s) not applied, for {apps}); "
            "run `python manage.py migrate` first. Nothing was deleted."
        )


@functools.cache
def _migrations_on_disk(app_label) -> tuple[str, ...]:
    # As Django's MigrationLoader finds them: the modules of the app's migrations package.
    package = importlib.import_module(f"{apps.get_app_config(app_label).name}.migrations")
    return tuple(
        name
        for _, name, is_package in pkgutil.iter_modules(package.__path__)
        if not is_package and name[0] not in "_~"
    )


def _record_failure(run, progress, started, status, error) -> PurgeResult | None:
    try:
        return _finish(run, progress, started, status, error)
    except DatabaseError as exc:
        if connection.in_atomic_block:
            # A caller's transaction owns the connection; the record goes wherever it goes.
            logger.error(
                "purge.unrecorded", extra={"run": run.pk, "error": storage.describe_error(exc)}
            )
            return None
    # The failure was the connection itself (terminated, server restarted): the record is worth
    # one fresh connection.
    connection.close()
    try:
        return _finish(run, progress, started, status, error)
    except DatabaseError as exc:
        logger.error(
            "purge.unrecorded", extra={"run": run.pk, "error": storage.describe_error(exc)}
        )
        return None
