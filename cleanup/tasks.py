from datetime import timedelta

from celery import shared_task

from .models import PurgeRun
from .services import RECONCILE_GRACE, purge_expired_jobs, reconcile_storage


@shared_task(name="delete_expired_jobs")
def delete_expired_jobs(batch_size=None, limit=None, trigger=PurgeRun.Trigger.BEAT):
    """Purge expired jobs; the return value is the run summary result backends and Flower show."""
    return purge_expired_jobs(batch_size=batch_size, limit=limit, trigger=trigger).as_dict()


@shared_task(name="reconcile_storage")
def reconcile_storage_task(delete=False, grace_minutes=None):
    """Find (and with delete=True remove) stored objects no row or pending deletion names."""
    grace = RECONCILE_GRACE if grace_minutes is None else timedelta(minutes=grace_minutes)
    return reconcile_storage(delete=delete, grace=grace).as_dict()
