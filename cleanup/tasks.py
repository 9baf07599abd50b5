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
    record_unsent,
)
from .storage import describe_error

# How a run may end and still be a successful task. handed_over is a fan-out run passing the
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
    """Purge expired jobs, or fan a large backlog out; returns the run's summary (or the plan).

    Every run this purge starts, here or in a fan-out task, is in the group of this task's id.
    """
    run_fields = {"trigger": trigger, "requested_by": requested_by, "group": _task_id(self)}
    if limit is None:
        plan = plan_purge(batch_size=batch_size)
        if not plan.inline:
            # With no slot free, an earlier fan-out's tasks hold them all and take this backlog.
            kwargs = {"cutoff": plan.cutoff.isoformat(), "batch_size": plan.batch_size}
            _enqueue_chunks(self, plan.subtasks, {**kwargs, **run_fields})
            return {**plan.as_dict(), "group": run_fields["group"]}
    with _failing_with_the_run():
        run = purge_expired_jobs(
            batch_size=batch_size, limit=limit, task_id=_task_id(self), **run_fields
        )
    return _succeeded(run)


@shared_task(name="delete_expired_jobs_chunk", bind=True)
def delete_expired_jobs_chunk(self, cutoff, batch_size=None, **run_fields):
    """One time-bounded share of a fanned-out purge; enqueues its successor while work remains.

    `cutoff` is an ISO 8601 time with its UTC offset, never ahead of the database's clock: any
    other is refused (CutoffRefused, a ValueError) before anything is deleted. `run_fields`
    (trigger, requested_by, group) are the fan-out's, passed on to every successor.
    """
    with _failing_with_the_run():
        run = purge_expired_chunk(
            cutoff=parse_cutoff(cutoff), batch_size=batch_size, task_id=_task_id(self), **run_fields
        )
    if run.status == PurgeRun.Status.HANDED_OVER:
        _enqueue_chunks(self, 1, {"cutoff": cutoff, "batch_size": batch_size, **run_fields})
    return _succeeded(run)


def _enqueue_chunks(task, count, kwargs):
    # Fan-out tasks stay on the queue the purge came from, so a purge routed to its own queue
    # (and its own workers) stays there.
    queue = (task.request.delivery_info or {}).get("routing_key")
    try:
        for _ in range(count):
            delete_expired_jobs_chunk.apply_async(
                kwargs=kwargs, expires=SUBTASK_EXPIRES_SECONDS, queue=queue
            )
    except Exception as exc:
        # The purge's history must not read as done: a failed run in its group says why.
        record_unsent(error=describe_error(exc), **kwargs)
        raise


def _task_id(task) -> str:
    return task.request.id or ""


def _succeeded(run) -> dict:
    """The summary for Celery's result, or FAILURE with it when the run did not succeed."""
    if run.status not in SUCCESSFUL_ENDINGS:
        raise PurgeRunFailed(summarize_run(run), run.as_dict())
    return run.as_dict()


@contextmanager
def _failing_with_the_run():
    """A run that ended in an error recorded it before re-raising (`purge_result`): the task
    fails with that record as its error. Anything else fails the task as it is."""
    try:
        yield
    except Exception as exc:
        run = getattr(exc, "purge_result", None)
        if run is None:
            raise
        raise PurgeRunFailed(summarize_run(run), run.as_dict()) from exc


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
