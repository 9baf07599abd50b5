from celery import shared_task

from .models import PurgeRun
from .services import purge_expired_jobs


@shared_task(name="delete_expired_jobs")
def delete_expired_jobs(batch_size=None, limit=None, trigger=PurgeRun.Trigger.BEAT):
    """Purge expired jobs; the return value is the run summary result backends and Flower show."""
    return purge_expired_jobs(batch_size=batch_size, limit=limit, trigger=trigger).as_dict()
