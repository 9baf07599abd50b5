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
class PurgePlan:  # asdict(): the task's result when it fans out
    fan_out: bool  # False: the scheduled run purges by itself (one batch takes it, or no parallel)
    cutoff: datetime
    batch_size: int
    backlog_at_least: int  # expired jobs, counted up to one batch more than the subtasks could take
    subtasks_running: int = 0  # their runs are open and recent
    subtasks_started: int = 0  # to start now


def plan_purge(*, batch_size: int | None = None, max_parallel: int | None = None) -> PurgePlan:
    """Purge inline, or fan out over `max_parallel` subtasks less those running (no pile-up)."""
    batch_size = settings.CLEANUP_BATCH_SIZE if batch_size is None else batch_size
    max_parallel = settings.CLEANUP_MAX_PARALLEL if max_parallel is None else max_parallel
    check_positive("batch_size", batch_size)
    check_positive("max_parallel", max_parallel)
    cutoff = purge_cutoff()  # each subtask checks it against the database clock again
    # Bounded: counting a million-job backlog exactly would cost more than the decision needs.
    backlog = Job.objects.expired(cutoff)[: batch_size * max_parallel + 1].count()
    if backlog <= batch_size or max_parallel == 1:
        return PurgePlan(False, cutoff, batch_size, backlog)
    # Runs in Celery workers (a task id); one a killed worker left open counts for two lengths.
    since = timezone.now() - timedelta(seconds=2 * settings.CLEANUP_SUBTASK_SECONDS + 60)
    running = PurgeRun.objects.filter(status=PurgeRun.Status.RUNNING, started_at__gte=since)
    running = running.exclude(task_id="").count()
    subtasks = max(0, min(max_parallel - running, -(-backlog // batch_size)))
    extra = {"backlog_at_least": backlog, "running": running, "subtasks": subtasks}
    logger.info("purge.plan", extra=extra)
    return PurgePlan(True, cutoff, batch_size, backlog, running, subtasks)


def purge_expired_chunk(*, cutoff: datetime, seconds: float | None = None, **fields) -> PurgeRun:
    """A fan-out task's batches for `seconds`; out of time with jobs left, it ends handed_over."""
    deadline = time.monotonic() + (settings.CLEANUP_SUBTASK_SECONDS if seconds is None else seconds)
    asked = itertools.count()

    def out_of_time():  # never before the first batch: every task makes some progress
        return next(asked) and time.monotonic() >= deadline and Job.objects.expired(cutoff).exists()

    return purge_expired_jobs(
        now=cutoff, should_stop=out_of_time, stopped_status=PurgeRun.Status.HANDED_OVER, **fields
    )
