"""What operators see: is the promise holding, and retrying pending files."""

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from django.db import models
from django.utils import timezone

from fmr.parsing import parse_minutes
from jobs.models import Job

from .. import storage
from ..models import PendingFileDeletion
from .binding import configured_storage, verify_storage
from .files import FileDeletion, delete_pending_files
from .runs import last_purges, measure_backlog, purge_facts


@dataclass
class PurgeStatus:
    """Is the 24-hour promise holding right now? Facts only, no personal data."""

    checked_at: datetime
    expired_jobs: int
    # How long the most overdue job has been past its expires_at; None when none is expired.
    most_overdue_seconds: float | None
    pending_files: int
    oldest_pending_seconds: float | None
    last_success: dict | None
    last_run: dict | None
    # Why pending names failed so far (distinct last errors, most frequent first), e.g. a
    # version Object Lock keeps. Names that never failed yet have none.
    pending_reasons: list[str] = field(default_factory=list)
    # Names storage refused CLEANUP_STUCK_AFTER_ATTEMPTS times: not in pending_files; an alert
    # of their own until they go or a person marks them resolved in the admin.
    stuck_files: int = 0
    oldest_stuck_seconds: float | None = None
    stuck_reasons: list[str] = field(default_factory=list)
    # Names never sent to storage (not a canonical key under the upload prefix): how many, and
    # how many per reason. Not counted in pending_files: no run will try them again.
    refused_files: int = 0
    refused_reasons: dict[str, int] | None = None
    # Whether the configured storage answers (and its bucket exists), when it was asked: kind,
    # where, reachable, problem ("missing", "refused", "unreachable", ...), reason.
    storage: dict | None = None

    def problems(self, *, max_overdue: timedelta) -> list[str]:
        """Why the promise is at risk, given how late is too late; empty when it holds."""
        limit = max_overdue.total_seconds()
        found = []
        if self.most_overdue_seconds is not None and self.most_overdue_seconds > limit:
            found.append(
                f"{self.expired_jobs} expired job(s) still present, the oldest "
                f"{_minutes(self.most_overdue_seconds)} past its expiry"
            )
        if self.oldest_pending_seconds is not None and self.oldest_pending_seconds > limit:
            found.append(
                f"{self.pending_files} file deletion(s) pending, the oldest for "
                f"{_minutes(self.oldest_pending_seconds)}"
            )
        if self.stuck_files:
            # Stuck means storage refused it again and again: at risk now, whatever the limit.
            found.append(
                f"{self.stuck_files} file deletion(s) stuck, the oldest pending for "
                f"{_minutes(self.oldest_stuck_seconds or 0)}: {'; '.join(self.stuck_reasons[:3])}"
            )
        if self.refused_files:
            # No run will delete these: waiting longer does not help, a person must look.
            found.append(
                f"{self.refused_files} file name(s) refused, never sent to storage "
                f"({'; '.join(sorted(self.refused_reasons or {}))})"
            )
        return found

    def as_dict(self) -> dict:
        data = asdict(self)
        data["checked_at"] = self.checked_at.isoformat()
        return data


def purge_status(*, now: datetime | None = None, reach_storage: bool = False) -> PurgeStatus:
    """The facts a monitor needs: what is overdue, what is pending, when the purge last worked;
    with `reach_storage`, whether the storage answers (one bounded listing request on S3)."""
    now = now or timezone.now()
    backlog = measure_backlog(now=now)
    not_stuck = PendingFileDeletion.objects.not_stuck()
    stuck = PendingFileDeletion.objects.stuck()
    pending = not_stuck.aggregate(count=models.Count("pk"), oldest=models.Min("created_at"))
    stuck_facts = stuck.aggregate(count=models.Count("pk"), oldest=models.Min("created_at"))
    refused = dict(
        PendingFileDeletion.objects.refused()
        .values_list("refused_reason")
        .annotate(count=models.Count("pk"))
        .order_by("refused_reason")
    )
    # Whole purges: a fan-out's runs are one purge (runs.py). Dry runs delete nothing.
    last_run, last_success = last_purges()
    return PurgeStatus(
        checked_at=now,
        expired_jobs=backlog.expired,
        most_overdue_seconds=backlog.oldest_seconds,
        pending_files=pending["count"],
        oldest_pending_seconds=_age(now, pending["oldest"]),
        # A run that deleted everything it could; stuck names it could not are alerted below.
        last_success=purge_facts(last_success),
        last_run=purge_facts(last_run),
        pending_reasons=_reasons(not_stuck),
        stuck_files=stuck_facts["count"],
        oldest_stuck_seconds=_age(now, stuck_facts["oldest"]),
        stuck_reasons=_reasons(stuck),
        refused_files=sum(refused.values()),
        refused_reasons=refused,
        storage=storage_reach() if reach_storage else None,
    )


def storage_reach() -> dict:
    """Can the configured storage be reached, and does its bucket exist? Local files need no
    network: they are there."""
    configured = configured_storage()
    probe = storage.probe_s3(storage.get_storage())
    return {
        "kind": configured.kind,
        "where": configured.describe(),
        "endpoint": probe.endpoint if probe else None,
        "reachable": probe is None or probe.ok,
        "problem": probe.problem if probe else "",
        "reason": probe.reason if probe else "",
    }


def overdue_limit(minutes) -> timedelta:
    """`--max-overdue` / `?max_overdue=`: minutes (0 or more, fractions allowed, bounded, ASCII
    digits) as a timedelta; ValueError (fmr.parsing.InvalidValue) with the reason otherwise."""
    return parse_minutes(minutes)


def count_expired_jobs(*, now: datetime | None = None) -> int:
    return Job.objects.expired(now or timezone.now()).count()


def _reasons(pending, limit=5) -> list[str]:
    """The distinct last errors of these pending names, most frequent first (no names)."""
    return list(
        pending.exclude(last_error="")
        .values("last_error")
        .annotate(n=models.Count("pk"))
        .order_by("-n", "last_error")
        .values_list("last_error", flat=True)[:limit]
    )


def resolve_stuck_files(*, ids, by: str) -> int:
    """Record that a person dealt with these stuck names; returns how many were stuck.

    They stay as a record (who, when) and are no longer tried or counted; a name recorded again
    later is pending again. Names that are not stuck are left pending: the purge still owns them.
    """
    return (
        PendingFileDeletion.objects.needs_a_person()
        .filter(pk__in=ids)
        .update(resolved_at=timezone.now(), resolved_by=by)
    )


def retry_pending_files(*, ids) -> FileDeletion:
    """Make the chosen pending deletions due now and try them at once, whatever their backoff.

    Refuses (StorageNotVerified, nothing deleted) on a storage the database does not know.
    Refused names are tried again too: their reason is re-checked, and stays if it still holds.
    """
    verify_storage()
    now = timezone.now()
    chosen = PendingFileDeletion.objects.filter(pk__in=ids)
    chosen.update(next_attempt_at=now)
    names = list(chosen.values_list("name", flat=True))
    return delete_pending_files(names=names, storage_verified=True) if names else FileDeletion()


def _age(now, moment) -> float | None:
    return None if moment is None else round((now - moment).total_seconds(), 3)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"
