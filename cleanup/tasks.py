"""Celery tasks: thin wrappers around cleanup.services that tell Celery the truth.

A run that ends `failed` or `files_pending` ends its task in FAILURE (after the run is
recorded), with the run's summary as the error, so Flower and result-based monitors see it.
A failed task is still acknowledged (task_acks_on_failure_or_timeout, Celery's default, set
explicitly in settings): acks_late redelivers only when a worker dies mid-task.
"""

from contextlib import contextmanager

from celery import shared_task

from fmr.parsing import parse_minutes

from .models import PurgeRun
from .report import summarize_run
from .services import (
    RECONCILE_GRACE,
    SUBTASK_EXPIRES_SECONDS,
    ReconcileFailed,
    parse_cutoff,
    plan_purge,
    purge_expired_chunk,
    purge_expired_jobs,
    reconcile_storage,
    release_subtask,
    start_fan_out,
)
from .storage import describe_error

# How a run may end and still be a successful task. handed_over is a fan-out subtask passing the
# rest to its successor: routine.
SUCCESSFUL_ENDINGS = {
    PurgeRun.Status.SUCCEEDED,
    PurgeRun.Status.HANDED_OVER,
    PurgeRun.Status.DRY_RUN,
}


class PurgeRunFailed(Exception):
    """The run is recorded and ended failed or with files pending; args: (summary, result)."""

    def __init__(self, summary, result=None):
        super().__init__(summary, result or {})

    def __str__(self):
        return str(self.args[0])


@shared_task(name="delete_expired_jobs", bind=True)
def delete_expired_jobs(
    self, batch_size=None, limit=None, trigger=PurgeRun.Trigger.BEAT, requested_by=""
):
    """Purge expired jobs, or fan a large backlog out; returns the run (or fan-out) summary."""
    if limit is None:
        plan = plan_purge(batch_size=batch_size)
        if not plan.inline:
            if not plan.subtasks:
                # An earlier fan-out's subtasks hold every slot and will take this backlog too.
                return plan.as_dict()
            fan_out = start_fan_out(
                plan=plan, trigger=trigger, requested_by=requested_by, task_id=_task_id(self)
            )
            _enqueue_subtasks(self, fan_out)
            return fan_out.as_dict()
    with _failing_with_the_run():
        result = purge_expired_jobs(
            batch_size=batch_size,
            limit=limit,
            trigger=trigger,
            requested_by=requested_by,
            task_id=_task_id(self),
        )
    return _succeeded(result, result.as_dict())


@shared_task(name="delete_expired_jobs_chunk", bind=True)
def delete_expired_jobs_chunk(self, cutoff, batch_size=None, parent_run_id=None):
    """One time-bounded share of a fanned-out purge; enqueues its successor while work remains.

    `cutoff` is an ISO 8601 time with its UTC offset, never ahead of the database's clock: any
    other is refused (CutoffRefused, a ValueError) before anything is deleted.
    """
    with _failing_with_the_run():
        chunk = purge_expired_chunk(
            cutoff=parse_cutoff(cutoff),
            batch_size=batch_size,
            parent_id=parent_run_id,
            task_id=_task_id(self),
        )
    if chunk.more:
        kwargs = {"cutoff": cutoff, "batch_size": batch_size, "parent_run_id": parent_run_id}
        try:
            _enqueue_chunk(self, kwargs)
        except Exception as exc:
            if parent_run_id is not None:
                release_subtask(parent_id=parent_run_id, error=describe_error(exc))
            raise
    return _succeeded(chunk.result, chunk.as_dict())


def _enqueue_subtasks(task, fan_out):
    sent = 0
    try:
        for _ in range(fan_out.plan.subtasks):
            _enqueue_chunk(task, fan_out.chunk_kwargs())
            sent += 1
    except Exception as exc:
        # The fan-out waits only for the subtasks that were sent.
        release_subtask(
            parent_id=fan_out.run_id,
            error=describe_error(exc),
            count=fan_out.plan.subtasks - sent,
        )
        raise


def _enqueue_chunk(task, kwargs):
    # Subtasks stay on the queue the purge came from, so a purge routed to its own queue (and
    # its own workers) stays there.
    queue = (task.request.delivery_info or {}).get("routing_key")
    delete_expired_jobs_chunk.apply_async(
        kwargs=kwargs, expires=SUBTASK_EXPIRES_SECONDS, queue=queue
    )


def _task_id(task) -> str:
    return task.request.id or ""


def _succeeded(result, summary: dict) -> dict:
    """The summary for Celery's result, or FAILURE with it when the run did not succeed."""
    if result.status not in SUCCESSFUL_ENDINGS:
        raise PurgeRunFailed(summarize_run(result), summary)
    return summary


@contextmanager
def _failing_with_the_run():
    """A run that ended in an error recorded it before re-raising (`purge_result`): the task
    fails with that record as its error. Anything else fails the task as it is."""
    try:
        yield
    except Exception as exc:
        result = getattr(exc, "purge_result", None)
        if result is None:
            raise
        raise PurgeRunFailed(summarize_run(result), result.as_dict()) from exc


@shared_task(name="reconcile_storage")
def reconcile_storage_task(
    delete=False, grace_minutes=None, force=False, trigger=PurgeRun.Trigger.BEAT
):
    """Find (and with delete=True remove) stored objects no row or pending deletion names.

    A refusal (a mass deletion, a storage the database does not know) or a failure raises, so the
    task shows as failed in Celery, never as a success that deleted nothing.
    """
    # Kwargs come from the schedule row, which anyone with admin access can edit.
    grace = RECONCILE_GRACE if grace_minutes is None else parse_minutes(grace_minutes)
    if not isinstance(delete, bool) or not isinstance(force, bool):
        raise ValueError("delete and force must be true or false")
    result = reconcile_storage(delete=delete, grace=grace, force=force, trigger=trigger)
    if not result.ok:
        raise ReconcileFailed(f"reconcile run #{result.run_id} {result.status}: {result.error}")
    return result.as_dict()
