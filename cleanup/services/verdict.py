"""What operators see: the purge's facts, whether the 24-hour promise holds, and whether what it
needs is in place (storage, beat rows: read-only, for cleanup/checks.py).

The verdict judges as deploy/prometheus/alerts.yml does (change a threshold in both): broken is
what pages, at risk what opens a ticket (or a schedule off or missing).
"""

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from django.db.migrations.recorder import MigrationRecorder
from django.db.models import Count, Min
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from jobs.models import Job

from .. import storage
from ..models import PendingFileDeletion, PurgeRun
from ..storage import StorageProbe
from .binding import configured_storage, verify_storage
from .files import FileDeletion, delete_pending_files
from .history import counted_runs
from .runs import last_purges, measure_backlog, purge_facts, seconds_since

PROMISE_BROKEN_AFTER = timedelta(minutes=90)
NO_SUCCESS_AFTER = timedelta(hours=3)
TICKET_AFTER = timedelta(hours=2)  # runs failing within it, or a file pending over it
FAILING = (PurgeRun.Status.FAILED, PurgeRun.Status.ABANDONED, PurgeRun.Status.FILES_PENDING)


@dataclass(frozen=True)
class Schedule:  # a beat row the promise depends on, as the migrations create it
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
    next_run_at: datetime | None = None  # None when disabled or missing (or not asked)
    # The first run due after the first `migrate`: no alert may say an earlier one is missing.
    first_run_due_at: datetime | None = None


def check_storage() -> StorageProbe | None:
    """The configured storage, probed (one listing, one versioning request); None: local files."""
    return storage.probe_s3(storage.get_storage())


def check_schedules(*, now: datetime | None = None) -> list[ScheduleState]:
    """As the database has them (DatabaseError: unreadable); with `now`, next and first runs."""
    rows = PeriodicTask.objects.in_bulk([s.name for s in SCHEDULES], field_name="name")
    migrations = MigrationRecorder.Migration.objects.filter(app="cleanup")
    deployed = now and migrations.aggregate(at=Min("applied"))["at"]
    return [
        ScheduleState(
            s,
            exists=True,
            enabled=row.enabled,
            runs=row.task,
            next_run_at=_next_fire(row.schedule, now) if now and row.enabled else None,
            first_run_due_at=_next_fire(row.schedule, deployed) if deployed else None,
        )
        if (row := rows.get(s.name))
        else ScheduleState(s, exists=False)
        for s in SCHEDULES
    ]


def purge_schedule(*, now: datetime) -> ScheduleState:
    return check_schedules(now=now)[0]


def _next_fire(schedule, after: datetime) -> datetime:
    # Celery's estimate is relative to its own clock (read twice): rounded to the second.
    fire = schedule.now() + schedule.remaining_estimate(after)
    return datetime.fromtimestamp(round(fire.timestamp()), tz=fire.tzinfo)


@dataclass
class PurgeStatus:
    """Is the 24-hour promise holding right now? Facts only, no personal data."""

    checked_at: datetime
    expired_jobs: int
    most_overdue_seconds: float | None  # None when no job is expired
    pending_files: int
    oldest_pending_seconds: float | None
    last_success: dict | None
    last_run: dict | None
    # Distinct last errors of pending names, most frequent first (e.g. Object Lock keeps one).
    pending_reasons: list[str] = field(default_factory=list)
    # Refused CLEANUP_STUCK_AFTER_ATTEMPTS times: not pending, alerted until gone or resolved.
    stuck_files: int = 0
    oldest_stuck_seconds: float | None = None
    stuck_reasons: list[str] = field(default_factory=list)
    # Never sent to storage (not a canonical key): not pending, no run tries them again.
    refused_files: int = 0
    refused_reasons: dict[str, int] | None = None
    # When asked: kind, where, endpoint, reachable, problem ("missing", "refused", ...), reason.
    storage: dict | None = None

    def problems(self, *, max_overdue: timedelta) -> list[str]:
        """Why the promise is at risk, given how late is too late; empty when it holds."""
        limit = max_overdue.total_seconds()
        found = []
        if self.most_overdue_seconds is not None and self.most_overdue_seconds > limit:
            found.append(
                f"{self.expired_jobs} expired job(s) still present, the oldest "
                f"{self.most_overdue_seconds / 60:.1f} min past its expiry"
            )
        if self.oldest_pending_seconds is not None and self.oldest_pending_seconds > limit:
            found.append(
                f"{self.pending_files} file deletion(s) pending, the oldest for "
                f"{self.oldest_pending_seconds / 60:.1f} min"
            )
        if self.stuck_files:  # whatever the limit: storage refused them again and again
            found.append(
                f"{self.stuck_files} file deletion(s) stuck, the oldest pending for "
                f"{(self.oldest_stuck_seconds or 0) / 60:.1f} min: "
                f"{'; '.join(self.stuck_reasons[:3])}"
            )
        if self.refused_files:  # waiting does not help: a person must look
            found.append(
                f"{self.refused_files} file name(s) refused, never sent to storage "
                f"({'; '.join(sorted(self.refused_reasons or {}))})"
            )
        return found

    def as_dict(self) -> dict:
        return {**asdict(self), "checked_at": self.checked_at.isoformat()}


def purge_status(*, now: datetime | None = None, reach_storage: bool = False) -> PurgeStatus:
    """The facts a monitor needs; with `reach_storage`, whether storage answers (one listing)."""
    now = now or timezone.now()
    refused = PendingFileDeletion.objects.refused().values_list("refused_reason")
    refused = dict(refused.annotate(count=Count("pk")).order_by("refused_reason"))
    last_run, last_success = last_purges()
    return PurgeStatus(
        now,
        *measure_backlog(now=now),
        last_success=purge_facts(last_success),
        last_run=purge_facts(last_run),
        **_names("pending", PendingFileDeletion.objects.not_stuck(), now=now),
        **_names("stuck", PendingFileDeletion.objects.stuck(), now=now),
        refused_files=sum(refused.values()),
        refused_reasons=refused,
        storage=storage_reach() if reach_storage else None,
    )


def _names(kind: str, names, *, now: datetime) -> dict:
    """How many names, how long the oldest has waited, their last errors (most frequent first)."""
    found = names.aggregate(count=Count("pk"), oldest=Min("created_at"))
    errors = names.exclude(last_error="").values("last_error").annotate(n=Count("pk"))
    reasons = errors.order_by("-n", "last_error").values_list("last_error", flat=True)
    return {
        f"{kind}_files": found["count"],
        f"oldest_{kind}_seconds": seconds_since(found["oldest"], now=now),
        f"{kind}_reasons": list(reasons[:5]),
    }


def storage_reach() -> dict:  # local files need no network: they are there
    configured, probe = configured_storage(), check_storage()
    return {
        "kind": configured.kind,
        "where": configured.describe(),
        "endpoint": probe.endpoint if probe else None,
        "reachable": probe is None or probe.ok,
        "problem": probe.problem if probe else "",
        "reason": probe.reason if probe else "",
    }


def retention_verdict(*, status: PurgeStatus, schedule: ScheduleState) -> dict:
    """The state ("holding", "at risk" or "broken") and its reasons."""
    now = status.checked_at
    broken, at_risk = [], []
    if (status.most_overdue_seconds or 0) > PROMISE_BROKEN_AFTER.total_seconds():
        broken.append(
            f"{status.expired_jobs:,} expired job(s) still present, the oldest "
            f"{status.most_overdue_seconds / 3600:.1f} h past its expiry (more than 90 minutes)"
        )
    success = status.last_success and status.last_success["finished_at"]
    since = datetime.fromisoformat(success) if success else schedule.first_run_due_at
    if since and now - since > NO_SUCCESS_AFTER:
        broken.append(f"no successful purge for {(now - since).total_seconds() / 3600:.1f} h")
    if not schedule.enabled:
        word = "disabled" if schedule.exists else "missing"
        at_risk.append(f"the schedule {schedule.schedule.name} is {word}: no purge runs on its own")
    failing = counted_runs().filter(status__in=FAILING, finished_at__gte=now - TICKET_AFTER)
    if failing.exists():
        at_risk.append("runs failed, died or left files pending in the last 2 hours")
    if (status.oldest_pending_seconds or 0) > TICKET_AFTER.total_seconds():
        at_risk.append(f"{status.pending_files:,} file deletion(s) pending for over 2 hours")
    if status.stuck_files or status.refused_files:
        at_risk.append("stuck or refused file deletions need a person")
    state = "broken" if broken else "at risk" if at_risk else "holding"
    return {"state": state, "reasons": broken + at_risk}


def count_expired_jobs(*, now: datetime | None = None) -> int:
    return Job.objects.expired(now or timezone.now()).count()


def resolve_stuck_files(*, ids, by: str) -> int:
    """A person dealt with these stuck names (kept, no longer tried or counted); how many. Names
    not stuck stay pending: the purge still owns them."""
    return (
        PendingFileDeletion.objects.needs_a_person()
        .filter(pk__in=ids)
        .update(resolved_at=timezone.now(), resolved_by=by)
    )


def retry_pending_files(*, ids) -> FileDeletion:
    """Try these pending deletions now, whatever their backoff (refused names too: checked again);
    StorageNotVerified, nothing deleted, on an unknown storage."""
    verify_storage()
    chosen = PendingFileDeletion.objects.filter(pk__in=ids)
    chosen.update(next_attempt_at=timezone.now())
    names = list(chosen.values_list("name", flat=True))
    return delete_pending_files(names=names, storage_verified=True) if names else FileDeletion()
