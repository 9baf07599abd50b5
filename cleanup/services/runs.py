"""Run records: the backlog a run starts with, runs whose process died, and fan-out parents.

A fan-out is one run (the parent, with the trigger that was asked for) and the runs of its
subtasks, which point at it. The parent's totals are always the sum of its subtasks' runs,
recomputed under a row lock whenever one of them finishes, so subtasks finishing side by side
cannot lose each other's counts. `subtasks_outstanding` counts the subtask messages not yet
done: a subtask that hands over to a successor passes its place on, one that ends gives it
back. At zero, with no subtask run still running, the parent takes its subtasks' outcome.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, models, transaction
from django.db.models import Q
from django.utils import timezone

from jobs.models import Job

from ..models import PurgeRun
from .ledger import destruction_method

logger = logging.getLogger(__name__)

# A queued subtask older than this is pointless: the next hourly run plans afresh.
SUBTASK_EXPIRES_SECONDS = 50 * 60
# A fan-out that has heard from no subtask for this long will hear from none: every subtask it
# could still be waiting for has expired in the queue (a margin for clocks on other hosts).
FAN_OUT_SILENCE = timedelta(seconds=SUBTASK_EXPIRES_SECONDS) + timedelta(minutes=10)

# What a fan-out parent's status is, given its subtasks' runs, worst first.
_WORST_FIRST = [
    PurgeRun.Status.FAILED,
    PurgeRun.Status.ABANDONED,
    PurgeRun.Status.INTERRUPTED,
    PurgeRun.Status.FILES_PENDING,
]


@dataclass
class Backlog:
    expired: int
    # How long the most overdue expired job has been past its expiry; None when none is.
    oldest_seconds: float | None


def measure_backlog(*, now: datetime) -> Backlog:
    """The expired jobs at `now`: one aggregate over the expires_at index."""
    found = Job.objects.expired(now).aggregate(
        count=models.Count("pk"), oldest=models.Min("expires_at")
    )
    oldest = found["oldest"]
    return Backlog(
        expired=found["count"],
        oldest_seconds=None if oldest is None else round((now - oldest).total_seconds(), 3),
    )


def open_run(*, cutoff: datetime, dry_run: bool = False, **fields) -> PurgeRun:
    """A new run's record, with what it starts from: the expired backlog at `cutoff` (history
    that cannot be recomputed later) and how it destroys data (the ledger). `fields` are the
    run's own: trigger, requested_by, task_id, batch size, status..."""
    backlog = measure_backlog(now=cutoff)
    return PurgeRun.objects.create(
        cutoff=cutoff,
        dry_run=dry_run,
        method=destruction_method(dry_run=dry_run),
        expired_at_start=backlog.expired,
        oldest_expired_seconds_at_start=backlog.oldest_seconds,
        **fields,
    )


def abandon_dead_runs():
    """Close the records of runs whose process died: killed runs cannot record themselves.

    Then close fan-outs that will hear from no subtask again, and bring the parents of the runs
    just abandoned up to date.
    """
    now = timezone.now()
    dead = PurgeRun.objects.filter(
        _silent_since(now - settings.CLEANUP_STALE_RUN), status=PurgeRun.Status.RUNNING
    )
    parents = set(dead.exclude(parent=None).values_list("parent_id", flat=True))
    minutes = int(settings.CLEANUP_STALE_RUN.total_seconds() // 60)
    count = dead.update(
        status=PurgeRun.Status.ABANDONED,
        finished_at=now,
        error=f"no batch finished for over {minutes} min: the process died (killed, OOM, host "
        "lost). Its committed batches stay purged; files it left pending go with later runs.",
    )
    if count:
        logger.warning("purge.abandoned", extra={"runs": count})
    silent = PurgeRun.objects.filter(
        _silent_since(now - FAN_OUT_SILENCE), status=PurgeRun.Status.FANNED_OUT
    ).exclude(subtask_runs__status=PurgeRun.Status.RUNNING)
    for parent_id in parents | set(silent.values_list("pk", flat=True)):
        settle_fan_out(parent_id=parent_id, silent_since=now - FAN_OUT_SILENCE)


def _silent_since(moment: datetime) -> Q:
    """Runs whose last sign of life (their heartbeat, or their start) is before `moment`."""
    return Q(heartbeat_at__lt=moment) | Q(heartbeat_at__isnull=True, started_at__lt=moment)


def start_subtask(*, parent_id: int):
    """A subtask of this fan-out is starting: the fan-out is alive."""
    PurgeRun.objects.filter(pk=parent_id).update(heartbeat_at=timezone.now())


def settle_fan_out(
    *,
    parent_id: int,
    finished: int = 0,
    note: str = "",
    silent_since: datetime | None = None,
):
    """Bring a fan-out parent up to date with its subtasks' runs; close it once they are done.

    `finished` subtask messages are done and hand over to no successor; `note` is kept in the
    parent's error (a subtask that could not be enqueued). With `silent_since`, a parent whose
    last sign of life is older is closed even with subtasks outstanding: they never came.
    """
    with transaction.atomic():
        parent = PurgeRun.objects.select_for_update().filter(pk=parent_id).first()
        if parent is None:
            return
        # Read after the lock: every subtask run that finished before it is counted.
        subtasks = list(parent.subtask_runs.all())
        parent.subtasks_outstanding = max(parent.subtasks_outstanding - finished, 0)
        _add_up(parent, subtasks)
        if note:
            parent.error = "; ".join(filter(None, [parent.error, note]))[:2000]
        now = timezone.now()
        running = any(s.status == PurgeRun.Status.RUNNING for s in subtasks)
        silent = silent_since is not None and (parent.heartbeat_at or parent.started_at) < (
            silent_since
        )
        closing = parent.status == PurgeRun.Status.FANNED_OUT and not running
        if closing and (parent.subtasks_outstanding == 0 or silent):
            parent.status, parent.error = _outcome(parent, subtasks)
            parent.finished_at = now
            logger.info(
                "purge.fan_out_done",
                extra={
                    "run": parent.pk,
                    "status": parent.status,
                    "subtask_runs": len(subtasks),
                    "jobs": parent.jobs_deleted,
                    "files_deleted": parent.files_deleted,
                    "files_pending": parent.files_pending,
                },
            )
        elif parent.status != PurgeRun.Status.FANNED_OUT and not running:
            # Word from a closed fan-out's subtask (a run abandoned late): the status follows,
            # the error written at closing stays.
            parent.status = _outcome(parent, subtasks)[0]
        if silent_since is None:
            parent.heartbeat_at = now  # word from a subtask, not a check from another purge
        parent.save()


def release_subtask(*, parent_id: int, error: str, count: int = 1):
    """Subtasks that were never enqueued (the broker refused): the fan-out waits for none."""
    settle_fan_out(
        parent_id=parent_id, finished=count, note=f"{count} subtask(s) not enqueued: {error}"
    )


def settle_fan_out_quietly(**kwargs):
    # After a failed subtask the database may be what failed: its error is the one that counts.
    try:
        settle_fan_out(**kwargs)
    except DatabaseError as exc:
        logger.error(
            "purge.fan_out_unrecorded",
            extra={"run": kwargs.get("parent_id"), "error": type(exc).__name__},
        )


def _add_up(parent, subtasks):
    rows: dict[str, int] = {}
    for subtask in subtasks:
        for label, count in (subtask.rows_deleted or {}).items():
            rows[label] = rows.get(label, 0) + count
    parent.rows_deleted = rows
    for name in ("batches", "jobs_deleted", "files_deleted", "files_pending"):
        setattr(parent, name, sum(getattr(s, name) for s in subtasks))
    # What was pending when the fan-out's last subtask run ended.
    ended = [s for s in subtasks if s.finished_at and s.pending_files_at_end is not None]
    if ended:
        last = max(ended, key=lambda s: s.finished_at)
        parent.pending_files_at_end = last.pending_files_at_end


def _outcome(parent, subtasks) -> tuple[str, str]:
    """The parent's status and error: done only when every subtask is, and none went wrong.

    While a fan-out is open its error holds only notes (subtasks not enqueued); they are kept
    after the summary of what went wrong.
    """
    by_status: dict[str, list] = {}
    for subtask in subtasks:
        by_status.setdefault(subtask.status, []).append(subtask)
    lost = parent.subtasks_outstanding
    problems = []
    for status in _WORST_FIRST:
        runs = by_status.get(status, [])
        if runs:
            reasons = list(dict.fromkeys(r.error for r in runs if r.error))[:3]
            problems.append(
                f"{len(runs)} of {len(subtasks)} subtask run(s) {status}"
                + (f" ({' | '.join(reasons)})" if reasons else "")
            )
    if lost:
        problems.append(
            f"{lost} subtask(s) never finished (expired in the queue or lost with their "
            "worker); the next run purges what they left"
        )
    pending_elsewhere = parent.files_pending and not by_status.get(PurgeRun.Status.FILES_PENDING)
    if pending_elsewhere:
        problems.append(f"{parent.files_pending} file(s) left pending by handed-over subtasks")
    error = "; ".join([*problems, parent.error] if parent.error else problems)[:2000]
    # A note is a subtask that could not even be enqueued: the fan-out failed at that.
    if by_status.get(PurgeRun.Status.FAILED) or parent.error:
        return PurgeRun.Status.FAILED, error
    if lost or by_status.get(PurgeRun.Status.ABANDONED):
        return PurgeRun.Status.ABANDONED, error
    if by_status.get(PurgeRun.Status.INTERRUPTED):
        return PurgeRun.Status.INTERRUPTED, error
    if by_status.get(PurgeRun.Status.FILES_PENDING) or parent.files_pending:
        return PurgeRun.Status.FILES_PENDING, error
    return PurgeRun.Status.SUCCEEDED, error
