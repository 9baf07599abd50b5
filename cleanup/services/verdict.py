"""Is the 24-hour promise holding? One verdict, by the rules of deploy/prometheus/alerts.yml.

broken: what pages (a job more than 90 minutes past its expiry; no successful purge for 3 hours
since the first run was due). at risk: what opens a ticket (runs failed, died or left files
pending in the last 2 hours; a file pending for 2 hours; stuck or refused names), and a
schedule that is off or missing, which no alert names but which breaks the promise within
hours. holding: none of these. Change a threshold here and in alerts.yml together.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.migrations.recorder import MigrationRecorder
from django.db.models import Min
from django_celery_beat.models import PeriodicTask

from ..models import PurgeRun
from .history import counted_runs

PROMISE_BROKEN_AFTER = timedelta(minutes=90)
NO_SUCCESS_AFTER = timedelta(hours=3)
FAILING_WITHIN = timedelta(hours=2)
PENDING_TOO_LONG = timedelta(hours=2)
FAILING = (PurgeRun.Status.FAILED, PurgeRun.Status.ABANDONED, PurgeRun.Status.FILES_PENDING)
SCHEDULE_NAME = "delete-expired-jobs"


@dataclass
class PurgeSchedule:
    exists: bool
    enabled: bool
    next_run_at: datetime | None  # None when disabled or missing
    # The first scheduled run after the first `migrate`: before it no purge was due, so no alert
    # may say one is missing.
    first_run_due_at: datetime | None


def purge_schedule(*, now: datetime) -> PurgeSchedule:
    row = PeriodicTask.objects.filter(name=SCHEDULE_NAME).first()
    deployed = MigrationRecorder.Migration.objects.filter(app="cleanup").aggregate(
        at=Min("applied")
    )["at"]
    if row is None:
        return PurgeSchedule(exists=False, enabled=False, next_run_at=None, first_run_due_at=None)
    return PurgeSchedule(
        exists=True,
        enabled=row.enabled,
        next_run_at=_next_fire(row.schedule, now) if row.enabled else None,
        first_run_due_at=_next_fire(row.schedule, deployed) if deployed else None,
    )


def _next_fire(schedule, after: datetime) -> datetime:
    # Celery's estimate is relative to its own clock: now + what remains = the fire time, to
    # the second (its clock is read twice; crontabs fire on whole minutes).
    fire = schedule.now() + schedule.remaining_estimate(after)
    return datetime.fromtimestamp(round(fire.timestamp()), tz=fire.tzinfo)


@dataclass
class Verdict:
    state: str  # "holding", "at risk" or "broken"
    reasons: list[str] = field(default_factory=list)


def retention_verdict(*, status, schedule: PurgeSchedule) -> Verdict:
    """`status`: a PurgeStatus; the same facts the metrics export, judged as the alerts judge."""
    now = status.checked_at
    broken, at_risk = [], []
    if (status.most_overdue_seconds or 0) > PROMISE_BROKEN_AFTER.total_seconds():
        broken.append(
            f"{status.expired_jobs:,} expired job(s) still present, the oldest "
            f"{_hours(status.most_overdue_seconds)} past its expiry (more than 90 minutes)"
        )
    success = status.last_success and status.last_success["finished_at"]
    since = datetime.fromisoformat(success) if success else schedule.first_run_due_at
    if since and now - since > NO_SUCCESS_AFTER:
        broken.append(f"no successful purge for {_hours((now - since).total_seconds())}")
    if not schedule.enabled:
        word = "disabled" if schedule.exists else "missing"
        at_risk.append(f"the schedule {SCHEDULE_NAME} is {word}: no purge runs on its own")
    failing = counted_runs().filter(status__in=FAILING, finished_at__gte=now - FAILING_WITHIN)
    if failing.exists():
        at_risk.append("runs failed, died or left files pending in the last 2 hours")
    if (status.oldest_pending_seconds or 0) > PENDING_TOO_LONG.total_seconds():
        at_risk.append(f"{status.pending_files:,} file deletion(s) pending for over 2 hours")
    if status.stuck_files or status.refused_files:
        at_risk.append("stuck or refused file deletions need a person")
    state = "broken" if broken else "at risk" if at_risk else "holding"
    return Verdict(state=state, reasons=broken + at_risk)


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"
