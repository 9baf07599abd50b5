"""Celery tasks around the services: a run that does not succeed fails its task (still acked)."""

from dataclasses import asdict

from celery import shared_task

from fmr.parsing import parse_minutes

from . import services
from .models import PurgeRun
from .report import summarize_run
from .storage import describe_error

BEAT = PurgeRun.Trigger.BEAT  # who calls them unless told: the schedule rows


class PurgeRunFailed(Exception):
    """The run is recorded and did not succeed; args: (summary, result)."""

    def __str__(self):
        return str(self.args[0])


@shared_task(name="delete_expired_jobs", bind=True)
def delete_expired_jobs(self, batch_size=None, limit=None, trigger=BEAT, requested_by=""):
    """Purge expired jobs, or fan a large backlog out, every run in the group of this task's id."""
    run_fields = {"trigger": trigger, "requested_by": requested_by, "group": self.request.id or ""}
    plan = services.plan_purge(batch_size=batch_size) if limit is None else None
    if plan and plan.fan_out:
        # With no slot free, an earlier fan-out's tasks hold them all and take this backlog.
        kwargs = {"cutoff": plan.cutoff.isoformat(), "batch_size": plan.batch_size}
        _enqueue_chunks(self, plan.subtasks_started, {**kwargs, **run_fields})
        return {**asdict(plan), **kwargs, "group": run_fields["group"]}
    return _finished(
        self, services.purge_expired_jobs, batch_size=batch_size, limit=limit, **run_fields
    )


@shared_task(name="delete_expired_jobs_chunk", bind=True)
def delete_expired_jobs_chunk(self, cutoff, batch_size=None, **run_fields):
    """One time-bounded share of a fan-out; enqueues its successor while work remains."""
    parsed = {"cutoff": services.purge_cutoff(cutoff), "batch_size": batch_size}
    result = _finished(self, services.purge_expired_chunk, **parsed, **run_fields)
    if result["status"] == PurgeRun.Status.HANDED_OVER:
        _enqueue_chunks(self, 1, {"cutoff": cutoff, "batch_size": batch_size, **run_fields})
    return result


def _finished(task, purge, **kwargs) -> dict:
    """The run's summary, or PurgeRunFailed with it once recorded (handed_over is routine)."""
    try:
        run = purge(task_id=task.request.id or "", **kwargs)
    except Exception as exc:
        if (run := getattr(exc, "purge_result", None)) is None:
            raise
        raise PurgeRunFailed(summarize_run(run), run.as_dict()) from exc
    if not (run.ok or run.status == PurgeRun.Status.HANDED_OVER):
        raise PurgeRunFailed(summarize_run(run), run.as_dict())
    return run.as_dict()


def _enqueue_chunks(task, count, kwargs):
    # Fan-out tasks stay on the queue the purge came from (and so on its workers).
    queue = (task.request.delivery_info or {}).get("routing_key")
    expires = services.SUBTASK_EXPIRES_SECONDS
    try:
        for _ in range(count):
            delete_expired_jobs_chunk.apply_async(kwargs=kwargs, expires=expires, queue=queue)
    except Exception as exc:
        # The purge's history must not read as done: a failed run in its group says why.
        services.record_unsent(error=describe_error(exc), **kwargs)
        raise


@shared_task(name="reconcile_storage")
def reconcile_storage_task(delete=False, grace_minutes=None, force=False, trigger=BEAT):
    """Find (delete=True: remove) stored objects nothing names; a refusal or failure raises."""
    # Kwargs come from the schedule row, which anyone with admin access can edit.
    grace = services.RECONCILE_GRACE if grace_minutes is None else parse_minutes(grace_minutes)
    if not isinstance(delete, bool) or not isinstance(force, bool):
        raise ValueError("delete and force must be true or false")
    run = services.reconcile_storage(delete=delete, grace=grace, force=force, trigger=trigger)
    if not run.ok:
        raise services.ReconcileFailed(f"reconcile run #{run.run_id} {run.status}: {run.error}")
    return run.as_dict()
