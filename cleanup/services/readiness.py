"""Is what the purge needs in place before it first runs? Its storage answers, and beat's rows
for it exist, are enabled and run the right task. Read-only; cleanup/checks.py turns the
answers into messages with the fix."""

from dataclasses import dataclass

from django_celery_beat.models import PeriodicTask

from .. import storage
from ..storage import StorageProbe


@dataclass(frozen=True)
class Schedule:
    """A beat row the promise depends on, as the migrations create it."""

    name: str
    task: str
    crontab: str  # minute hour day-of-month month day-of-week, Asia/Seoul
    kwargs: str
    purpose: str  # what stops happening without it


# Written out by cleanup migrations 0002 and 0003 (change them together); admins own the rows.
SCHEDULES = (
    Schedule(
        name="delete-expired-jobs",
        task="delete_expired_jobs",
        crontab="0 * * * *",
        kwargs="{}",
        purpose="expired jobs are not deleted",
    ),
    Schedule(
        name="reconcile-storage",
        task="reconcile_storage",
        crontab="30 4 * * *",
        kwargs='{"delete": true, "grace_minutes": 60}',
        purpose="orphaned objects in storage are never deleted",
    ),
)


@dataclass(frozen=True)
class ScheduleState:
    schedule: Schedule
    exists: bool
    enabled: bool = False
    runs: str = ""  # the task the row runs


def check_storage() -> StorageProbe | None:
    """The configured storage, probed (one listing, one versioning request); None: local files."""
    return storage.probe_s3(storage.get_storage())


def check_schedules() -> list[ScheduleState]:
    """Each schedule the promise depends on, as the database has it (DatabaseError: unreadable)."""
    wanted = PeriodicTask.objects.filter(name__in=[s.name for s in SCHEDULES])
    rows = wanted.only("name", "task", "enabled").in_bulk(field_name="name")
    return [
        ScheduleState(s, exists=True, enabled=rows[s.name].enabled, runs=rows[s.name].task)
        if s.name in rows
        else ScheduleState(s, exists=False)
        for s in SCHEDULES
    ]
