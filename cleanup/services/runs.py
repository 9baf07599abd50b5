"""Run records, and purges as groups of runs (PurgeRun.group: one run, or a fan-out's runs and
successors). No run settles another: a group's totals are its runs' sums, its outcome theirs."""

import logging
from datetime import datetime

from django.conf import settings
from django.db.models import Count, Max, Min, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from jobs.models import Job

from ..models import PurgeRun
from .history import destruction_method

logger = logging.getLogger(__name__)

# A queued fan-out task older than this is pointless: the next hourly run plans afresh.
SUBTASK_EXPIRES_SECONDS = 50 * 60

Status = PurgeRun.Status
# A purge's outcome is the first of these among its runs' statuses, else its latest run's.
OUTCOME_ORDER = ["running", "failed", "abandoned", "interrupted", "files_pending"]
RUN_FIELDS = ["run_id", "status", "started_at", "finished_at", "jobs_deleted", "files_deleted"]
FIRST_RUN = ["run_id", "group", "trigger", "requested_by", "started_at"]  # a purge's, its first's
SUMMED = ["jobs_deleted", "files_deleted", "files_pending", "files_refused"]


def seconds_since(moment: datetime | None, *, now: datetime) -> float | None:
    return None if moment is None else round((now - moment).total_seconds(), 3)


def measure_backlog(*, now: datetime) -> tuple[int, float | None]:
    """Expired jobs at `now`, and the oldest one's seconds past expiry (None: none); one query."""
    found = Job.objects.expired(now).aggregate(count=Count("pk"), oldest=Min("expires_at"))
    return found["count"], seconds_since(found["oldest"], now=now)


def open_run(*, cutoff: datetime, dry_run: bool = False, **fields) -> PurgeRun:
    """A new run's record: the backlog at `cutoff` (no one can recompute it later), its method."""
    expired, oldest = measure_backlog(now=cutoff)
    fields = {k: v for k, v in fields.items() if v or k != "group"}  # no group: one of its own
    fields.setdefault("method", destruction_method(dry_run=dry_run))
    backlog = {"expired_at_start": expired, "oldest_expired_seconds_at_start": oldest}
    return PurgeRun.objects.create(cutoff=cutoff, dry_run=dry_run, **backlog, **fields)


def abandon_dead_runs():
    """Close the records of runs whose process died: killed runs cannot record themselves."""
    now, stale = timezone.now(), settings.CLEANUP_STALE_RUN
    silent = PurgeRun.objects.alias(seen=Coalesce("heartbeat_at", "started_at"))  # last seen
    count = silent.filter(status=Status.RUNNING, seen__lt=now - stale).update(
        status=Status.ABANDONED,
        finished_at=now,
        error=f"no batch for over {stale.total_seconds() // 60:.0f} min: the process died",
    )
    if count:
        logger.warning("purge.abandoned", extra={"runs": count})


def record_unsent(*, cutoff: str, batch_size: int | None, error: str, **fields) -> PurgeRun:
    """Fan-out tasks the broker refused: a failed run in their group, so it never reads as done."""
    return open_run(
        cutoff=datetime.fromisoformat(cutoff),
        batch_size=batch_size or settings.CLEANUP_BATCH_SIZE,
        status=Status.FAILED,
        finished_at=timezone.now(),
        method="none: the run was never started",
        error=f"fan-out task not enqueued: {error}",
        **fields,
    )


def purge_facts(group: str | None) -> dict | None:
    """One purge (a group of runs) as operators see it: totals, outcome, and its runs."""
    runs = list(PurgeRun.objects.filter(group=group).order_by("pk"))  # the first opened first
    if not runs:
        return None
    labels = dict.fromkeys(label for run in runs for label in run.rows_deleted)
    ended = [run.finished_at for run in runs if run.finished_at]
    status = next((s for s in OUTCOME_ORDER if s in {run.status for run in runs}), None)
    data = [run.as_dict() for run in runs]
    return {
        **{name: data[0][name] for name in FIRST_RUN},
        "status": status or max(runs, key=lambda run: (run.finished_at, run.pk)).status,
        "finished_at": max(ended).isoformat() if len(ended) == len(runs) else None,
        "rows_deleted": {k: sum(run.rows_deleted.get(k, 0) for run in runs) for k in labels},
        **{name: sum(run[name] for run in data) for name in SUMMED},
        "runs": [{name: run[name] for name in RUN_FIELDS} for run in data],
    }


def last_purges() -> tuple[str | None, str | None]:
    """The groups of the latest purge and of the latest successful one (not dry runs), or None."""
    runs = PurgeRun.objects.filter(dry_run=False)
    latest = runs.order_by("-started_at", "-pk").values_list("group", flat=True).first()
    unfinished = Count("pk", filter=~Q(status__in=[Status.SUCCEEDED, Status.HANDED_OVER]))
    done = runs.values("group").annotate(ended=Max("finished_at"), left=unfinished).filter(left=0)
    for group in done.order_by("-ended").values_list("group", flat=True).iterator():
        if runs.filter(group=group).latest("finished_at", "pk").status == Status.SUCCEEDED:
            return latest, group
    return latest, None
