"""Parallel purge: a large backlog fanned out over Celery workers.

A fan-out leaves one run record of its own (the parent, with the trigger that was asked for)
and one per subtask, pointing at it; see runs.py for how the parent keeps up with them.
"""

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
from .purge import PurgeResult, check_positive, purge_expired_jobs
from .runs import (
    open_run,
    settle_fan_out,
    settle_fan_out_quietly,
    start_subtask,
)

logger = logging.getLogger(__name__)


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
    """Decide whether a scheduled run purges by itself or fans out, and into how many subtasks.

    A backlog one batch can take is purged inline (any backlog, with `max_parallel` 1). A larger
    one is split over at most
    `max_parallel` subtasks, counting the ones still running from an earlier run, so a beat that
    fires while the last purge is still going does not pile more workers on.
    """
    batch_size = settings.CLEANUP_BATCH_SIZE if batch_size is None else batch_size
    max_parallel = settings.CLEANUP_MAX_PARALLEL if max_parallel is None else max_parallel
    check_positive("batch_size", batch_size)
    check_positive("max_parallel", max_parallel)
    # The subtasks purge up to this cutoff, each checking it against the database clock again.
    cutoff = purge_cutoff(now)
    # Bounded: counting a million-job backlog exactly would cost more than the decision needs.
    backlog = Job.objects.expired(cutoff)[: batch_size * max_parallel + 1].count()
    plan = PurgePlan(
        cutoff=cutoff,
        batch_size=batch_size,
        max_parallel=max_parallel,
        backlog=backlog,
        running=0,
        subtasks=0,
    )
    if plan.inline:
        return plan
    plan.running = _running_subtasks()
    wanted = -(-backlog // batch_size)
    plan.subtasks = max(0, min(max_parallel - plan.running, wanted))
    logger.info(
        "purge.plan",
        extra={
            "backlog_at_least": backlog,
            "running": plan.running,
            "subtasks": plan.subtasks,
        },
    )
    return plan


@dataclass
class FanOut:
    """A fan-out's own run record, made before its subtasks are enqueued."""

    run_id: int
    plan: PurgePlan

    def chunk_kwargs(self) -> dict:
        return {**self.plan.chunk_kwargs(), "parent_run_id": self.run_id}

    def as_dict(self) -> dict:
        return {**self.plan.as_dict(), "run_id": self.run_id}


def start_fan_out(
    *, plan: PurgePlan, trigger: str, requested_by: str = "", task_id: str = ""
) -> FanOut:
    """Record the run of a fan-out about to start `plan.subtasks` subtasks; they report to it."""
    run = open_run(
        cutoff=plan.cutoff,
        trigger=trigger,
        requested_by=requested_by,
        task_id=task_id or "",
        status=PurgeRun.Status.FANNED_OUT,
        batch_size=plan.batch_size,
        heartbeat_at=timezone.now(),
        subtasks_started=plan.subtasks,
        subtasks_outstanding=plan.subtasks,
    )
    logger.info(
        "purge.fan_out",
        extra={"run": run.pk, "trigger": trigger, "subtasks": plan.subtasks},
    )
    return FanOut(run_id=run.pk, plan=plan)


def _running_subtasks() -> int:
    # A worker killed mid-run leaves its run open; after two subtask lengths it no longer counts.
    stale = timedelta(seconds=2 * settings.CLEANUP_SUBTASK_SECONDS + 60)
    return PurgeRun.objects.filter(
        trigger=PurgeRun.Trigger.TASK,
        status=PurgeRun.Status.RUNNING,
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
    *,
    cutoff: datetime,
    batch_size: int | None = None,
    seconds: float | None = None,
    parent_id: int | None = None,
    task_id: str = "",
) -> ChunkResult:
    """One subtask's share of a fanned-out purge: batches until `seconds` are used up.

    Subtasks running side by side take disjoint batches (SKIP LOCKED). Each leaves its own run
    record (trigger "task", pointing at its fan-out's run `parent_id`), and the fan-out's run is
    brought up to date when it ends. With `more`, the caller enqueues the successor, which takes
    this subtask's place in the fan-out (or calls `release_subtask` if it cannot). A naive
    cutoff, or one ahead of the database's clock, is refused before anything is deleted.
    """
    seconds = settings.CLEANUP_SUBTASK_SECONDS if seconds is None else seconds
    deadline = time.monotonic() + seconds
    checks = itertools.count()
    if parent_id is not None:
        start_subtask(parent_id=parent_id)
    try:
        result = purge_expired_jobs(
            now=cutoff,
            batch_size=batch_size,
            trigger=PurgeRun.Trigger.TASK,
            parent_id=parent_id,
            task_id=task_id,
            # Never before the first batch: every subtask makes progress, however small its
            # budget.
            should_stop=lambda: next(checks) > 0 and time.monotonic() >= deadline,
            stopped_status=PurgeRun.Status.HANDED_OVER,
        )
    except Exception:
        # Ended by an error (its run is recorded): no successor. A BaseException (the worker
        # shutting down) is not settled: the message goes back to the broker and runs again.
        if parent_id is not None:
            settle_fan_out_quietly(parent_id=parent_id, finished=1)
        raise
    more = result.status == PurgeRun.Status.HANDED_OVER and Job.objects.expired(cutoff).exists()
    if parent_id is not None:
        settle_fan_out(parent_id=parent_id, finished=0 if more else 1)
    return ChunkResult(result=result, more=more)
