"""The purge: deleting expired jobs with everything attached, and their files from storage."""

import contextlib
import functools
import importlib
import logging
import pkgutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime

from django.apps import apps
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.migrations.recorder import MigrationRecorder
from django.db.models import Value
from django.db.models.functions import Coalesce, Concat
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
from .files import (
    BatchFiles,
    FileDeletion,
    delete_pending_files,
    finish_batch_files,
    open_storage,
    start_batch_files,
)
from .runs import abandon_dead_runs, open_run

NOTHING_DELETED = "none: the run deleted nothing (refused or failed before its first batch)"

logger = logging.getLogger(__name__)


def purge_expired_jobs(
    *,
    now: datetime | None = None,
    batch_size: int | None = None,
    limit: int | None = None,
    dry_run: bool = False,
    should_stop=None,
    on_batch=None,
    stopped_status: str = PurgeRun.Status.INTERRUPTED,
    **run_fields,
) -> PurgeRun:
    """Delete jobs whose expires_at is before `now`, oldest first, `batch_size` per transaction,
    rows by the ORM cascade and files from storage after each commit; returns the run's record.

    The storage is verified first (StorageNotVerified otherwise). `should_stop()` is asked between
    batches; a run it stops ends `stopped_status`. `on_batch(jobs_deleted)` follows each batch.
    `run_fields` go into the record: trigger, requested_by, task_id, group. An exception that
    ends the run is re-raised once the run is recorded, with the record as `purge_result` (None
    if it could not be written). The cutoff is never ahead of the database's clock (clock.py).
    """
    batch_size = _check_sizes(batch_size, limit)
    cutoff = purge_cutoff(now)
    abandon_dead_runs()
    progress = _Progress(rows=dict.fromkeys((m._meta.label for m, _ in cascade_paths(Job)), 0))
    run = open_run(cutoff=cutoff, dry_run=dry_run, batch_size=batch_size, limit=limit, **run_fields)
    try:
        # Once per run, before the first row goes: a cascade the plan can honour, and the
        # storage its files live in.
        purge_plan().refuse_problems()
        verify_storage()
        if dry_run:
            _count_expired(cutoff, limit, progress)
        else:
            # Before the first batch: a storage the purge cannot delete from (an unsupported
            # backend) fails the run while every row is still there.
            session = open_storage()
            args = (cutoff, batch_size, limit, progress, should_stop, on_batch, session)
            _delete_expired(run, *args)
    except BaseException as exc:
        _record_failure(run, progress, exc)
        raise
    return _finish(run, progress, stopped_status if progress.stopped else None)


@dataclass
class _Progress:
    rows: dict[str, int]
    jobs: int = 0
    batches: int = 0
    files_to_delete: int = 0
    # The batches' file deletes, and the sweep's of names left by earlier runs.
    files: FileDeletion = field(default_factory=FileDeletion)
    sweep: FileDeletion = field(default_factory=FileDeletion)
    # Names pending since before this moment are the sweep's; the batches' names come later.
    started: datetime = field(default_factory=timezone.now)
    # The record() tokens of this run's committed batches: its own pending names.
    tokens: list = field(default_factory=list)
    stopped: bool = False

    def with_batch(self, per_model: dict[str, int]) -> "_Progress":
        """The counts once this batch commits; this progress changes only after it has."""
        rows = dict(self.rows)
        for label, count in per_model.items():
            rows[label] = rows.get(label, 0) + count
        jobs = self.jobs + per_model.get(Job._meta.label, 0)
        return replace(self, rows=rows, jobs=jobs, batches=self.batches + 1)

    def add_batch(self, after: "_Progress", token):
        self.rows, self.jobs, self.batches = after.rows, after.jobs, after.batches
        self.tokens.append(token)

    def left(self) -> tuple[int, int]:
        """(pending, stuck): this run's own names still waiting, read from the table (another
        run may have deleted some since), and the sweep's names it could not delete."""
        mine = PendingFileDeletion.objects.filter(batch__in=self.tokens)
        stuck = mine.stuck().count() + self.sweep.stuck
        return mine.not_stuck().count() + self.sweep.failed - self.sweep.stuck, stuck


# PurgeRun keeps batch_size and limit in PositiveIntegerFields; anything larger could not even
# be recorded, so it is refused before the run starts rather than failing inside it. (MAX_SIZE
# lives with the other bounds in fmr/parsing.py.)


def _check_sizes(batch_size, limit) -> int:
    batch_size = settings.CLEANUP_BATCH_SIZE if batch_size is None else batch_size
    check_positive("batch_size", batch_size)
    if limit is not None:
        check_positive("limit", limit)
    check_database_ready()
    return batch_size


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


def _delete_expired(run, cutoff, batch_size, limit, progress, should_stop, on_batch, session):
    # Batch N's storage step runs in `thread` while batch N+1's rows are deleted here: at most one
    # batch's files in flight. Only this thread touches the database. Its names are in the outbox,
    # committed, before the step starts: if the run dies (an exception, Ctrl-C), the executor
    # still waits for the step, but its outcome is never recorded, so its names stay pending and
    # the next run's sweep finishes them (a missing name counts as deleted).
    with ThreadPoolExecutor(1, thread_name_prefix="purge-storage") as thread:
        in_flight = None
        while limit is None or progress.jobs < limit:
            if should_stop is not None and should_stop():
                progress.stopped = True
                break
            size = batch_size if limit is None else min(batch_size, limit - progress.jobs)
            batch = _delete_batch(run, cutoff, size, progress)
            if in_flight is not None:
                _finish_batch(run, in_flight, progress)
            in_flight = batch and _start_batch(batch, progress, session, thread)
            if batch is None or batch.jobs < size:
                break  # the backlog is done (or held by a purge beside this one): no empty SELECT
            if on_batch is not None:
                on_batch(progress.jobs)
        if in_flight is not None:
            _finish_batch(run, in_flight, progress)
    if not progress.files.unavailable:
        # Names left by earlier failures or crashes: this run finishes them.
        progress.sweep = delete_pending_files(
            due_before=progress.started, session=session, storage_verified=True
        )
    if progress.files.unavailable or progress.sweep.unavailable:
        # Storage is down, so the sweep stopped at its first failing chunk or never started: the
        # due names it did not get to are left pending by this run too. (The ones it tried were
        # pushed past `progress.started` when they failed, so none is counted twice.)
        progress.sweep.failed += PendingFileDeletion.objects.due(progress.started).count()


@dataclass
class _Batch:
    jobs: int
    number: int
    names: list[str]
    token: object  # what record() put on the batch's pending rows
    per_model: dict[str, int]
    started: float  # time.monotonic()
    files: BatchFiles | FileDeletion | None = None


def _delete_batch(run, cutoff, size, progress) -> _Batch | None:
    """One batch's rows in one transaction, with its outbox; None when nothing is left."""
    started = time.monotonic()
    # durable: files are deleted once this block ends, so it must really commit here,
    # not inside a caller's transaction that could still roll back.
    with transaction.atomic(durable=True):
        ids = list(_expired_ids(cutoff, size, lock=True))
        if not ids:
            return None
        # The delete plan, one DELETE per model (see cleanup/deletion.py); it hands back the
        # names of the files that must go.
        cascade = purge_plan().delete(ids)
        # The outbox: a pending row per name, committed with the batch (see record()).
        recorded_as = PendingFileDeletion.objects.record(cascade.file_names)
        after = progress.with_batch(cascade.per_model)
        # The run's record commits with the batch: if the process dies in the file step
        # below, the record still shows exactly what was purged.
        _heartbeat(run, after)
    progress.add_batch(after, recorded_as)
    names, per_model = cascade.file_names, cascade.per_model
    return _Batch(len(ids), after.batches, names, recorded_as, per_model, started)


def _start_batch(batch, progress, session, thread) -> _Batch:
    if progress.files.unavailable:
        # Storage is down: don't spend every batch timing out. The names are safely pending.
        batch.files = FileDeletion(failed=len(batch.names), errors=[progress.files.unavailable])
    else:
        batch.files = start_batch_files(batch.names, batch.token, session, thread)
    return batch


def _finish_batch(run, batch, progress):
    files = batch.files
    if isinstance(files, BatchFiles):
        files = finish_batch_files(files)
    progress.files.add(files)
    logger.info(
        "purge.batch",
        extra={
            "run": run.pk,
            "batch": batch.number,
            "jobs": batch.jobs,
            "rows": sum(batch.per_model.values()),
            "files_deleted": files.deleted,
            "files_pending": files.failed,
            "duration_ms": int((time.monotonic() - batch.started) * 1000),
        },
    )


def _heartbeat(run, progress):
    # Only while it runs: a run a later purge marked abandoned keeps what that purge wrote.
    PurgeRun.objects.filter(pk=run.pk, status=PurgeRun.Status.RUNNING).update(
        heartbeat_at=timezone.now(),
        batches=progress.batches,
        jobs_deleted=progress.jobs,
        rows_deleted=progress.rows,
        files_deleted=progress.files.deleted,
        files_pending=progress.files.failed,
    )


def _finish(run, progress, status=None, error=None) -> PurgeRun:
    """Write the run's end. Only a running run takes a status: one a later purge marked
    abandoned keeps its status, end and error, and takes in its late work as counts only."""
    pending, stuck = progress.left()
    files = FileDeletion()
    files.add(progress.files)
    files.add(progress.sweep)
    if status is None:
        status = _status(run, pending, files)
    counts = _counts(run, progress, files, pending, stuck)
    now = timezone.now()
    mine = PurgeRun.objects.filter(pk=run.pk)
    ended = mine.filter(status=PurgeRun.Status.RUNNING).update(
        status=status,
        finished_at=now,
        error=_problems(pending, stuck, files) if error is None else error,
        pending_files_at_end=PendingFileDeletion.objects.unresolved().count(),
        # A run that never finished a batch gets its end as its last sign of life.
        heartbeat_at=Coalesce("heartbeat_at", Value(now)),
        **counts,
    )
    if not ended:
        late = f"; it then finished late ({status}) at {now.isoformat()}, counts as of then"
        mine.update(error=Concat("error", Value(late)), **counts)
    run.refresh_from_db()
    _log(run)
    return run


def _counts(run, progress, files, pending, stuck) -> dict:
    counts = {
        "batches": progress.batches,
        "files_refused": files.refused,
        "files_stuck": stuck,
        "storage_retries": files.retries,
    }
    if run.dry_run:
        # Nothing was deleted, and the record says so; the prediction has its own fields.
        return counts | {
            "would_delete_jobs": progress.jobs,
            "would_delete_rows": progress.rows,
            "would_delete_files": progress.files_to_delete,
            "rows_deleted": dict.fromkeys(progress.rows, 0),
        }
    return counts | {
        "jobs_deleted": progress.jobs,
        "rows_deleted": progress.rows,
        "files_deleted": files.deleted,
        "files_pending": pending,
    }


def _status(run, pending, files) -> str:
    if run.dry_run:
        return PurgeRun.Status.DRY_RUN
    if pending or files.refused:
        # Rows purged, but not every file is known to be gone: never a clean success.
        return PurgeRun.Status.FILES_PENDING
    # Deleted everything it could: stuck names are purge_status's alert, not a failed run.
    return PurgeRun.Status.SUCCEEDED


def _problems(pending, stuck, files) -> str:
    problems = []
    if pending:
        problems.append(f"{pending} file(s) left pending: {'; '.join(files.errors[:3])}")
    if files.refused:
        problems.append(
            f"{files.refused} file name(s) refused, never sent to storage "
            f"({'; '.join(files.refused_reasons[:3])}); see purge_status"
        )
    if stuck and not pending:
        problems.append(
            f"{stuck} stuck file(s) still refused by storage: {'; '.join(files.errors[:3])}"
        )
    return "; ".join(problems)


def _log(run):
    fields = {"run": run.pk, "trigger": run.trigger, "status": run.status, "dry_run": run.dry_run}
    if run.dry_run:
        fields.update(
            would_delete_jobs=run.would_delete_jobs,
            would_delete_rows=run.would_delete_rows_total,
            would_delete_files=run.would_delete_files,
        )
    else:
        names = ["files_deleted", "files_pending", "files_stuck", "files_refused", "batches"]
        fields.update(jobs=run.jobs_deleted, rows=run.rows_total)
        fields.update({name: getattr(run, name) for name in names})
    fields["duration_ms"] = int(run.duration.total_seconds() * 1000)
    logger.info("purge.run", extra=fields)


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


def _record_failure(run, progress, exc):
    """Record the run that `exc` ended, and hang the record on `exc` as `purge_result`."""
    interrupted = isinstance(exc, KeyboardInterrupt)
    status = PurgeRun.Status.INTERRUPTED if interrupted else PurgeRun.Status.FAILED
    # A refusal's own words are written for operators; anything else is summarised.
    error = str(exc) if isinstance(exc, PurgeNotPossible) else storage.describe_error(exc)
    if isinstance(exc, PurgeNotPossible):  # only verify_storage() raises it inside a run
        error = f"Never started: refused before its first row. {error}"
    elif not (progress.batches or progress.files.deleted):
        error = f"Nothing was deleted: {error}"
    recorded = None
    for attempt in range(2):
        try:
            if not progress.batches and not progress.sweep.requests:
                # Refused or failed before deleting anything: no way of deleting was used.
                PurgeRun.objects.filter(pk=run.pk).update(method=NOTHING_DELETED)
            recorded = _finish(run, progress, status, error)
            break
        except DatabaseError as failure:
            if attempt or connection.in_atomic_block:
                # A caller's transaction owns the connection; the record goes wherever it goes.
                logger.error(
                    "purge.unrecorded",
                    extra={"run": run.pk, "error": storage.describe_error(failure)},
                )
                break
            # The failure was the connection itself (terminated, server restarted): the record
            # is worth one fresh connection.
            connection.close()
    with contextlib.suppress(AttributeError):  # an exception that takes no attributes
        exc.purge_result = recorded
