"""The purge: expired jobs with everything attached, batch by batch, and their files."""

import collections
import contextlib
import functools
import logging
import os
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
from ..deletion import cascade_paths, purge_plan, through_indexes
from ..file_models import file_fields, file_models
from ..models import PendingFileDeletion, PurgeRun
from .binding import verify_storage
from .clock import purge_cutoff
from .errors import PurgeNotPossible
from .files import (
    FileDeletion,
    delete_pending_files,
    finish_deleting,
    open_storage,
    referenced_names,
    start_deleting,
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
    """Delete jobs expired before `now` (never ahead of the database's clock), oldest first,
    `batch_size` per transaction, their files after each commit; returns the run's record.
    `should_stop()` is asked between batches, `on_batch(jobs_deleted)` after each; an exception
    that ends the run is re-raised once recorded, the record as its `purge_result` (or None)."""
    batch_size = settings.CLEANUP_BATCH_SIZE if batch_size is None else batch_size
    check_positive("batch_size", batch_size)
    if limit is not None:
        check_positive("limit", limit)
    check_database_ready()
    cutoff = purge_cutoff(now)
    abandon_dead_runs()
    progress = _Progress(rows=dict.fromkeys((m._meta.label for m, _ in cascade_paths(Job)), 0))
    run = open_run(cutoff=cutoff, dry_run=dry_run, batch_size=batch_size, limit=limit, **run_fields)
    try:
        _purge(run, progress, should_stop, on_batch)
    except BaseException as exc:
        _record_failure(run, progress, exc)
        raise
    return _finish(run, progress, stopped_status if progress.stopped else None)


def _purge(run, progress, should_stop, on_batch):
    purge_plan().refuse_problems()
    verify_storage()
    if run.dry_run:
        chosen = _expired_ids(run.cutoff, run.limit, lock=False)
        for model, path in cascade_paths(Job):
            rows = model._default_manager.filter(**{f"{path}pk__in": chosen})
            progress.rows[model._meta.label] = rows.count()
            if model in file_models():
                for f in file_fields(model):
                    progress.files_to_delete += rows.exclude(**{f.name: ""}).count()
        progress.jobs = progress.rows[Job._meta.label]
        return
    session = open_storage()
    _delete_expired(run, progress, should_stop, on_batch, session)
    if not progress.files.unavailable:
        progress.sweep = delete_pending_files(
            due_before=progress.started, session=session, storage_verified=True
        )
    if progress.files.unavailable or progress.sweep.unavailable:
        # Storage is down: the due names the sweep did not get to are left pending by this run
        # too (those it tried were pushed past `progress.started`, so none counts twice).
        progress.sweep.failed += PendingFileDeletion.objects.due(progress.started).count()


@dataclass
class _Progress:
    rows: dict[str, int]
    jobs: int = 0
    batches: int = 0
    files_to_delete: int = 0
    files: FileDeletion = field(default_factory=FileDeletion)  # the batches' file deletes
    sweep: FileDeletion = field(default_factory=FileDeletion)  # of names left by earlier runs
    # Names pending since before this moment are the sweep's; the batches' names come later.
    started: datetime = field(default_factory=timezone.now)
    tokens: list = field(default_factory=list)  # record()'s, of the committed batches' names
    stopped: bool = False

    def with_batch(self, per_model: dict[str, int]) -> "_Progress":
        """The counts once this batch commits; this progress changes only after it has."""
        rows = {**self.rows, **{k: self.rows.get(k, 0) + n for k, n in per_model.items()}}
        jobs = self.jobs + per_model.get(Job._meta.label, 0)
        return replace(self, rows=rows, jobs=jobs, batches=self.batches + 1)


def check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SIZE:
        raise ValueError(f"{name} must be a positive whole number up to {MAX_SIZE}, got {value!r}")


def _expired_ids(cutoff, size, *, lock):
    expired = Job.objects.expired(cutoff).order_by("expires_at")
    if lock:
        # Several purges can run side by side: each takes rows no other one holds.
        expired = expired.select_for_update(skip_locked=True)
    return expired.values_list("pk", flat=True)[:size]


def _delete_expired(run, progress, should_stop, on_batch, session):
    # Up to STORAGE_STEPS batches' storage steps run in `threads` (one window of requests) while
    # this thread, the only one touching the database, deletes the next batch's rows. Their names
    # are in the committed outbox first: if the run dies, the next run's sweep finishes them.
    limit, in_flight = run.limit, collections.deque()
    with ThreadPoolExecutor(STORAGE_STEPS, thread_name_prefix="purge-storage") as threads:
        while limit is None or progress.jobs < limit:
            if should_stop is not None and should_stop():
                progress.stopped = True
                break
            size = run.batch_size if limit is None else min(run.batch_size, limit - progress.jobs)
            batch = _delete_batch(run, size, progress)
            if batch is None:
                break
            if len(in_flight) == STORAGE_STEPS:
                _finish_batch(*in_flight.popleft(), progress)
            log, started, names, token, held = batch
            if progress.files.unavailable:  # storage is down: don't spend every batch timing out
                files = FileDeletion(failed=len(names), errors=[progress.files.unavailable])
            else:
                files = start_deleting(names, token, session, threads, held=held)
            in_flight.append((log, started, files))
            if log["jobs"] < size:
                break  # the backlog is done (or held by a purge beside this one): no empty SELECT
            if on_batch is not None:
                on_batch(progress.jobs)
        while in_flight:
            _finish_batch(*in_flight.popleft(), progress)


# A batch of 1,000 jobs is 4 DeleteObjects: three batches keep CLEANUP_S3_CONCURRENCY's 8 busy
# while the oldest is being finished.
STORAGE_STEPS = 3


def _delete_batch(run, size, progress):
    """One batch's rows in one transaction, with its outbox; None when nothing is left."""
    started = time.monotonic()
    # durable: its files are deleted next, so it must commit here, not in a caller's transaction.
    with transaction.atomic(durable=True), through_indexes():
        ids = list(_expired_ids(run.cutoff, size, lock=True))
        if not ids:
            return None
        cascade = purge_plan().delete(ids)
        token = PendingFileDeletion.objects.record(cascade.file_names)  # the outbox
        # Before commit, while its outbox rows are this batch's alone (no sweep beside it has them).
        held = referenced_names(cascade.file_names, recorded_as=token)
        after = progress.with_batch(cascade.per_model)
        # The record commits with the batch: exact if the process dies. Only while it runs: a run
        # a later purge marked abandoned keeps what that purge wrote.
        PurgeRun.objects.filter(pk=run.pk, status=PurgeRun.Status.RUNNING).update(
            heartbeat_at=timezone.now(),
            batches=after.batches,
            jobs_deleted=after.jobs,
            rows_deleted=after.rows,
            files_deleted=after.files.deleted,
            files_pending=after.files.failed,
        )
    progress.rows, progress.jobs, progress.batches = after.rows, after.jobs, after.batches
    progress.tokens.append(token)
    log = {"run": run.pk, "batch": after.batches, "jobs": len(ids), "rows": cascade.total}
    return log, started, cascade.file_names, token, held


def _finish_batch(log, started, files, progress):
    if not isinstance(files, FileDeletion):
        files = finish_deleting(files)
    progress.files.add(files)
    duration_ms = int((time.monotonic() - started) * 1000)
    extra = {"files_deleted": files.deleted, "files_pending": files.failed}
    logger.info("purge.batch", extra={**log, **extra, "duration_ms": duration_ms})


def _finish(run, progress, status=None, error=None) -> PurgeRun:
    """Write the run's end; a run a later purge marked abandoned takes its late work as counts."""
    # This run's names still in the table, and the sweep's it left.
    left, sweep = PendingFileDeletion.objects.filter(batch__in=progress.tokens), progress.sweep
    stuck = left.stuck().count() + sweep.stuck
    pending = left.not_stuck().count() + sweep.failed - sweep.stuck
    files = FileDeletion().add(progress.files).add(progress.sweep)
    counts = {"batches": progress.batches, "files_refused": files.refused, "files_stuck": stuck}
    counts["storage_retries"] = files.retries
    if run.dry_run:  # nothing was deleted, and the record says so
        status = status or PurgeRun.Status.DRY_RUN
        counts |= {"would_delete_jobs": progress.jobs, "would_delete_rows": progress.rows}
        counts |= {"would_delete_files": progress.files_to_delete}
        counts["rows_deleted"] = dict.fromkeys(progress.rows, 0)
    else:  # not every file known to be gone: never a clean success
        failed = pending or files.refused
        status = status or (PurgeRun.Status.FILES_PENDING if failed else PurgeRun.Status.SUCCEEDED)
        counts |= {"jobs_deleted": progress.jobs, "rows_deleted": progress.rows}
        counts |= {"files_deleted": files.deleted, "files_pending": pending}
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


def _log(run):
    fields = {"run": run.pk, "trigger": run.trigger, "status": run.status, "dry_run": run.dry_run}
    if run.dry_run:
        fields["would_delete_jobs"] = run.would_delete_jobs
        fields["would_delete_rows"] = run.would_delete_rows_total
        fields["would_delete_files"] = run.would_delete_files
    else:
        fields |= {"jobs": run.jobs_deleted, "rows": run.rows_total}
        fields |= {n: getattr(run, n) for n in _RUN_FILE_COUNTS}
    fields["duration_ms"] = int(run.duration.total_seconds() * 1000)
    logger.info("purge.run", extra=fields)


_RUN_FILE_COUNTS = ("files_deleted", "files_pending", "files_stuck", "files_refused", "batches")


def _problems(pending, stuck, files) -> str:
    errors, refused = "; ".join(files.errors[:3]), "; ".join(files.refused_reasons[:3])
    problems = [f"{pending} file(s) left pending: {errors}"] if pending else []
    if files.refused:
        problems.append(
            f"{files.refused} file name(s) refused, never sent to storage ({refused}); "
            "see purge_status"
        )
    if stuck and not pending:
        problems.append(f"{stuck} stuck file(s) still refused by storage: {errors}")
    return "; ".join(problems)


def check_database_ready():
    """Refuse a database behind the migrations on disk (by module name: importing costs ~30 ms)."""
    recorder = MigrationRecorder(connection)
    applied = set(recorder.applied_migrations()) if recorder.has_table() else set()
    on_disk = {(app, name) for app in ("jobs", "cleanup") for name in _migrations_on_disk(app)}
    missing = on_disk - applied
    if missing:
        apps = ", ".join(sorted({app for app, _ in missing}))
        raise PurgeNotPossible(
            f"the database {connection.settings_dict['NAME']!s} is not migrated "
            f"({len(missing)} migration(s) not applied, for {apps}); "
            "run `python manage.py migrate` first. Nothing was deleted."
        )


@functools.cache
def _migrations_on_disk(app_label) -> tuple[str, ...]:
    found = pkgutil.iter_modules([os.path.join(apps.get_app_config(app_label).path, "migrations")])
    return tuple(name for _, name, is_package in found if not is_package and name[0] not in "_~")


def _record_failure(run, progress, exc):
    """Record the run that `exc` ended, in an operator's words, as `exc.purge_result`."""
    interrupted = isinstance(exc, KeyboardInterrupt)
    status = PurgeRun.Status.INTERRUPTED if interrupted else PurgeRun.Status.FAILED
    error = storage.describe_error(exc)
    if isinstance(exc, PurgeNotPossible):  # only verify_storage()'s, in words for operators
        error = f"Never started: refused before its first row. {exc}"
    elif not progress.batches and not progress.files.deleted:
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
                reason = storage.describe_error(failure)
                logger.error("purge.unrecorded", extra={"run": run.pk, "error": reason})
                break
            connection.close()  # the connection itself failed: worth one fresh connection
    with contextlib.suppress(AttributeError):  # an exception that takes no attributes
        exc.purge_result = recorded
