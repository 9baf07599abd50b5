"""The orphan reconciler: stored objects that no row or pending deletion names."""

import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from django.utils import timezone

from jobs.models import UPLOAD_PREFIX

from .. import storage
from ..models import PendingFileDeletion
from .files import referenced_names

logger = logging.getLogger(__name__)

# The purge deletes every file a row or a pending deletion names. An object nothing names (an
# upload whose transaction rolled back, a crash between writing a file and its row, a write
# outside the ORM) would never expire; this finds those and, if asked, deletes them.

RECONCILE_GRACE = timedelta(minutes=60)
RECONCILE_EXAMPLES = 5


@dataclass
class ReconcileResult:
    delete: bool
    cutoff: datetime
    scanned: int = 0  # objects under the upload prefix
    scanned_bytes: int = 0
    young: int = 0  # newer than the grace period: maybe an upload in flight, not looked at
    held: int = 0  # named by a row or a pending deletion
    orphans: int = 0
    orphan_bytes: int = 0
    deleted: int = 0
    deleted_bytes: int = 0
    failed: int = 0
    requests: int = 0
    error: str = ""
    duration_seconds: float = 0.0
    # A few orphan keys (job ids and random hex, nothing about the user) for --verbosity 2.
    examples: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.error

    def as_dict(self) -> dict:
        data = asdict(self)
        data["cutoff"] = self.cutoff.isoformat()
        del data["examples"]
        return data


def reconcile_storage(
    *, delete: bool = False, grace: timedelta = RECONCILE_GRACE, now: datetime | None = None
) -> ReconcileResult:
    """Find objects under the jobs' upload prefix that nothing references; delete them if asked.

    Streams the listing and checks it against the database 1,000 names at a time, so memory does
    not grow with the bucket. Objects modified within `grace` of `now` are never touched.
    """
    if not isinstance(grace, timedelta) or grace < timedelta(0):
        raise ValueError(f"grace must be a non-negative duration, got {grace!r}")
    started = time.monotonic()
    result = ReconcileResult(delete=delete, cutoff=(now or timezone.now()) - grace)
    chunk: list[storage.StoredObject] = []
    try:
        # One session: a versioned bucket is listed by its versions (an orphan whose current
        # version is a delete marker still holds data) and its orphans lose every version.
        session = storage.open_session()
        for obj in storage.list_objects(UPLOAD_PREFIX, session=session):
            result.scanned += 1
            result.scanned_bytes += obj.size
            if obj.modified > result.cutoff:
                result.young += 1
                continue
            chunk.append(obj)
            if len(chunk) == storage.S3_MAX_KEYS_PER_REQUEST:
                _reconcile_chunk(chunk, result, session)
                chunk = []
        if chunk:
            _reconcile_chunk(chunk, result, session)
    except _StorageUnavailable:
        pass
    except Exception as exc:  # noqa: BLE001 - listing failed: report it, the next run starts over
        result.error = storage.describe_error(exc)
    result.duration_seconds = round(time.monotonic() - started, 3)
    logger.info(
        "reconcile.run",
        extra={
            "delete": delete,
            "scanned": result.scanned,
            "young": result.young,
            "held": result.held,
            "orphans": result.orphans,
            "orphan_bytes": result.orphan_bytes,
            "deleted": result.deleted,
            "failed": result.failed,
            "error": bool(result.error),
            "duration_ms": int(result.duration_seconds * 1000),
        },
    )
    return result


class _StorageUnavailable(Exception):
    pass


def _reconcile_chunk(chunk, result: ReconcileResult, session):
    names = [obj.name for obj in chunk]
    # Rows first, then pending names: a purge that commits in between moves a name from the first
    # to the second, so it is seen in one of them. The other order could miss it.
    held = referenced_names(names)
    held.update(PendingFileDeletion.objects.filter(name__in=names).values_list("name", flat=True))
    orphans = [obj for obj in chunk if obj.name not in held]
    result.held += len(chunk) - len(orphans)
    result.orphans += len(orphans)
    result.orphan_bytes += sum(obj.size for obj in orphans)
    room = RECONCILE_EXAMPLES - len(result.examples)
    result.examples.extend(obj.name for obj in orphans[:room])
    if not (result.delete and orphans):
        return
    outcome = storage.delete_names([obj.name for obj in orphans], session=session)
    sizes = {obj.name: obj.size for obj in orphans}
    result.requests += outcome.requests
    result.deleted += len(outcome.deleted)
    result.deleted_bytes += sum(sizes[name] for name in outcome.deleted)
    result.failed += len(outcome.failed)
    if outcome.failed:
        reasons = sorted(set(outcome.failed.values()))
        result.error = f"{result.failed} orphan(s) not deleted: {'; '.join(reasons[:3])}"
    if outcome.unavailable:
        # The rest would fail the same way; the next run finds them again.
        raise _StorageUnavailable
