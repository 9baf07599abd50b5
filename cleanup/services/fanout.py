"""Parallel purge: a large backlog fanned out over Celery workers, as runs side by side (each
taking its own batches, SKIP LOCKED) in the group of the request that started them (runs.py)."""

import itertools
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from jobs.models import Job

from ..models import PurgeRun
from .clock import purge_cutoff
from .purge import check_positive, purge_expired_jobs

logger = logging.getLogger(__name__)


@dataclass
class PurgePlan:
    cutoff: datetime
    batch_size: int
    max_parallel: int
    backlog: int  # expired jobs, counted up to one batch more than the subtasks could take
    running: int  # subtasks still purging (their runs are open and recent)
    subtasks: int  # subtasks to start now; none when `inline`

    @property
    def inline(self) -> bool:
        # One subtask at most is no parallelism: the scheduled run then purges by itself.
        return self.backlog <= self.batch_size or self.max_parallel == 1

    def as_dict(self) -> dict:
        return {
            "fan_out": not self.inline,
            "cutoff": self.cutoff.isoformat(),
            "batch_size": self.batch_size,
            "backlog_at_least": self.backlog,
            "subtasks_running": self.running,
            "subtasks_started": self.subtasks,
        }


def plan_purge(
    *, now: datetime | None = None, batch_size: int | None = None, max_parallel: int | None = None
) -> PurgePlan:
    """Purge inline (a backlog one batch takes), or fan out over at most `max_parallel` subtasks,
    counting those still running: a beat firing during a long purge piles no more on."""
    batch_size = settings.CLEANUP_BATCH_SIZE if batch_size is None else batch_size
    max_parallel = settings.CLEANUP_MAX_PARALLEL if max_parallel is None else max_parallel
    check_positive("batch_size", batch_size)
    check_positive("max_parallel", max_parallel)
    cutoff = purge_cutoff(now)  # each subtask checks it against the database clock again
    # Bounded: counting a million-job backlog exactly would cost more than the decision needs.
    backlog = Job.objects.expired(cutoff)[: batch_size * max_parallel + 1].count()
    plan = PurgePlan(cutoff, batch_size, max_parallel, backlog, running=0, subtasks=0)
    if plan.inline:
        return plan
    # Runs in Celery workers (a task id); one a killed worker left open counts for two lengths.
    since = timezone.now() - timedelta(seconds=2 * settings.CLEANUP_SUBTASK_SECONDS + 60)
    running = PurgeRun.objects.filter(status=PurgeRun.Status.RUNNING, started_at__gte=since)
    plan.running = running.exclude(task_id="").count()
    plan.subtasks = max(0, min(max_parallel - plan.running, -(-backlog // batch_size)))
    extra = {"backlog_at_least": backlog, "running": plan.running, "subtasks": plan.subtasks}
    logger.info("purge.plan", extra=extra)
    return plan


def purge_expired_chunk(
    *, cutoff: datetime, batch_size: int | None = None, seconds: float | None = None, **run_fields
) -> PurgeRun:
    """One fan-out task's batches for `seconds`; out of time with jobs left, it is handed_over."""
    seconds = settings.CLEANUP_SUBTASK_SECONDS if seconds is None else seconds
    deadline = time.monotonic() + seconds
    checks = itertools.count()

    def out_of_time():  # never before the first batch: every task makes some progress
        late = next(checks) > 0 and time.monotonic() >= deadline
        return late and Job.objects.expired(cutoff).exists()

    return purge_expired_jobs(
        now=cutoff,
        batch_size=batch_size,
        should_stop=out_of_time,
        stopped_status=PurgeRun.Status.HANDED_OVER,
        **run_fields,
    )
