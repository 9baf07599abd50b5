from datetime import datetime

from celery import shared_task

from fmr.parsing import parse_minutes

from .models import PurgeRun
from .services import (
    RECONCILE_GRACE,
    SUBTASK_EXPIRES_SECONDS,
    ReconcileFailed,
    plan_purge,
    purge_expired_chunk,
    purge_expired_jobs,
    reconcile_storage,
)


@shared_task(name="delete_expired_jobs", bind=True)
def delete_expired_jobs(self, batch_size=None, limit=None, trigger=PurgeRun.Trigger.BEAT):
    """Purge expired jobs, or fan a large backlog out; returns the run (or fan-out) summary."""
    if limit is None:
        plan = plan_purge(batch_size=batch_size)
        if not plan.inline:
            for _ in range(plan.subtasks):
                _enqueue_chunk(self, plan.chunk_kwargs())
            return plan.as_dict()
    return purge_expired_jobs(batch_size=batch_size, limit=limit, trigger=trigger).as_dict()


@shared_task(name="delete_expired_jobs_chunk", bind=True)
def delete_expired_jobs_chunk(self, cutoff, batch_size=None):
    """One time-bounded share of a fanned-out purge; enqueues its successor while work remains."""
    chunk = purge_expired_chunk(cutoff=datetime.fromisoformat(cutoff), batch_size=batch_size)
    if chunk.more:
        _enqueue_chunk(self, {"cutoff": cutoff, "batch_size": batch_size})
    return chunk.as_dict()


def _enqueue_chunk(task, kwargs):
    # Subtasks stay on the queue the purge came from, so a purge routed to its own queue (and
    # its own workers) stays there.
    queue = (task.request.delivery_info or {}).get("routing_key")
    delete_expired_jobs_chunk.apply_async(
        kwargs=kwargs, expires=SUBTASK_EXPIRES_SECONDS, queue=queue
    )


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
