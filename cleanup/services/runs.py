"""Run records: the backlog a run starts with, runs whose process died, and purges as groups.

A purge is one group of runs (PurgeRun.group): one run, or a fan-out's runs side by side and
the successors they hand over to, each taking its own batches (SKIP LOCKED). No run waits on or
settles another: a group's totals are its runs' sums, and its outcome is read from them.
"""

import logging
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Count, Max, Q
from django.utils import timezone

from jobs.models import Job

from ..models import PurgeRun
from .ledger import destruction_method

logger = logging.getLogger(__name__)

# A queued fan-out task older than this is pointless: the next hourly run plans afresh.
SUBTASK_EXPIRES_SECONDS = 50 * 60

Status = PurgeRun.Status
# What a purge's outcome is, given its runs' statuses, worst first.
_WORST_FIRST = [Status.FAILED, Status.ABANDONED, Status.INTERRUPTED, Status.FILES_PENDING]


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
    if not fields.get("group"):
        fields.pop("group", None)  # a run of its own: a group of its own
    fields.setdefault("method", destruction_method(dry_run=dry_run))
    return PurgeRun.objects.create(
        cutoff=cutoff,
        dry_run=dry_run,
        expired_at_start=backlog.expired,
        oldest_expired_seconds_at_start=backlog.oldest_seconds,
        **fields,
    )


def abandon_dead_runs():
    """Close the records of runs whose process died: killed runs cannot record themselves."""
    now = timezone.now()
    dead = PurgeRun.objects.filter(
        _silent_since(now - settings.CLEANUP_STALE_RUN), status=PurgeRun.Status.RUNNING
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


def record_unsent(*, cutoff: str, batch_size: int | None, error: str, **fields) -> PurgeRun:
    """Fan-out tasks the broker refused: a failed run in their group, which deleted nothing, so
    the purge never reads as done. The next purge takes what they would have."""
    return open_run(
        cutoff=datetime.fromisoformat(cutoff),
        batch_size=batch_size or settings.CLEANUP_BATCH_SIZE,
        status=Status.FAILED,
        finished_at=timezone.now(),
        method="none: the run was never started",
        error=f"fan-out task not enqueued: {error}",
        **fields,
    )


def _silent_since(moment: datetime) -> Q:
    """Runs whose last sign of life (their heartbeat, or their start) is before `moment`."""
    return Q(heartbeat_at__lt=moment) | Q(heartbeat_at__isnull=True, started_at__lt=moment)


def purge_outcome(runs: list[PurgeRun]) -> str:
    """A group's status: running while one of its runs is; else the worst way one ended; else
    handed_over while its latest run handed expired jobs on (its successor has not run)."""
    statuses = {run.status for run in runs}
    for status in [Status.RUNNING, *_WORST_FIRST]:
        if status in statuses:
            return status
    return max(runs, key=lambda run: (run.finished_at, run.pk)).status


def purge_facts(group: str | None) -> dict | None:
    """One purge (a group of runs) as operators see it: totals, outcome, and its runs."""
    runs = list(PurgeRun.objects.filter(group=group).order_by("started_at", "pk"))
    if not runs:
        return None
    rows: dict[str, int] = {}
    for run in runs:
        for label, count in run.rows_deleted.items():
            rows[label] = rows.get(label, 0) + count
    ended = [run.finished_at for run in runs if run.finished_at]
    first = runs[0]
    facts = {
        "run_id": first.pk,
        "group": group,
        "trigger": first.trigger,
        "requested_by": first.requested_by,
        "status": purge_outcome(runs),
        "started_at": first.started_at.isoformat(),
        "finished_at": max(ended).isoformat() if len(ended) == len(runs) else None,
        "rows_deleted": rows,
    }
    for name in ("jobs_deleted", "files_deleted", "files_pending", "files_refused"):
        facts[name] = sum(getattr(run, name) for run in runs)
    names = ["status", "started_at", "finished_at", "jobs_deleted", "files_deleted"]
    facts["runs"] = [{"run_id": run.pk, **_as_dict(run, names)} for run in runs]
    return facts


def _as_dict(run, names) -> dict:
    data = run.as_dict()
    return {name: data[name] for name in names}


def last_purges() -> tuple[str | None, str | None]:
    """The groups of the latest purge and of the latest successful one (None: none yet).

    Successful: none of its runs is running or ended badly, and its latest run succeeded (a
    handed-over one is still waiting for its successor). Dry runs delete nothing: never one.
    """
    runs = PurgeRun.objects.filter(dry_run=False)
    latest = runs.order_by("-started_at", "-pk").values_list("group", flat=True).first()
    unfinished = ~Q(status__in=[Status.SUCCEEDED, Status.HANDED_OVER])
    candidates = (
        runs.values("group")
        .annotate(ended=Max("finished_at"), unfinished=Count("pk", filter=unfinished))
        .filter(unfinished=0)
        .order_by("-ended")
        .values_list("group", flat=True)
    )
    for group in candidates.iterator():
        last = runs.filter(group=group).order_by("-finished_at", "-pk").first()
        if last.status == Status.SUCCEEDED:
            return latest, group
    return latest, None
