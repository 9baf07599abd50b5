"""The orphan reconciler: stored objects no row or pending deletion names, deleted if asked. It
cannot empty storage (docs/safety.md): it counts, may refuse, then deletes at most what it counted.
"""

import logging
import uuid
from contextlib import suppress
from datetime import datetime, timedelta
from itertools import islice

from django.conf import settings
from django.utils import timezone

from jobs.models import Job

from .. import storage
from ..models import PendingFileDeletion, PurgeRun, ReconcileRun
from ..storage.s3 import abort_upload, list_uploads
from .binding import verify_storage
from .clock import purge_cutoff
from .errors import StorageNotVerified
from .files import open_storage, pending_names, referenced_names

logger = logging.getLogger(__name__)

RECONCILE_GRACE = timedelta(minutes=60)
RECONCILE_EXAMPLES = 5
Status = ReconcileRun.Status
# What the log line says of a run: counts, never a name.
LOGGED = "status delete forced scanned young held orphans orphan_bytes deleted failed refused_keys"


class ReconcileFailed(Exception):
    """A reconcile refused or failed; raised by the Celery task so the failure is visible."""


def reconcile_storage(
    *,
    delete: bool = False,
    grace: timedelta = RECONCILE_GRACE,
    now: datetime | None = None,
    force: bool = False,
    trigger: str = PurgeRun.Trigger.SHELL,
) -> ReconcileRun:
    """Objects modified within `grace` of `now` (at most the database's clock) are never touched.
    A refusal deletes nothing: status "refused", the reason in `error`."""
    if not isinstance(grace, timedelta) or grace < timedelta(0):
        raise ValueError(f"grace must be a non-negative duration, got {grace!r}")
    result = ReconcileRun.objects.create(
        trigger=trigger, delete=delete, forced=force, cutoff=(now or purge_cutoff()) - grace
    )
    result.examples = []
    try:
        verify_storage()
        _passes(result, grace=grace)
    except StorageNotVerified as exc:
        result.status, result.error = Status.REFUSED, str(exc)
    except Exception as exc:  # noqa: BLE001 - listing failed: report it, the next run starts over
        result.error = storage.describe_error(exc)
    if result.status == Status.RUNNING:
        result.status = Status.FAILED if result.error else Status.SUCCEEDED
    result.finished_at = timezone.now()
    result.save()
    extra = {"run": result.pk, **{name: getattr(result, name) for name in LOGGED.split()}}
    extra.update(error=bool(result.error), duration_ms=int(result.duration_seconds * 1e3))
    logger.info("reconcile.run", extra=extra)
    return result


def _passes(result: ReconcileRun, *, grace: timedelta):
    # One session: on a versioned bucket, listed and deleted by versions.
    session = open_storage()
    _count(result, session)
    if result.delete and not result.error:
        if not result.forced and (refusal := _refusal(result)):
            result.status, result.error = Status.REFUSED, refusal
        elif result.orphans and not _deleted_orphans(result, session):
            return  # the storage failed a delete: the rest would too; the next run finds them
    _settle_uploads(result, session, grace=grace, abort=result.delete and not result.refused)


def _old_chunks(result: ReconcileRun, session):
    """The listing, streamed, by pages: each with its objects past the grace period."""
    listed = session.list_objects(f"{session.rule.prefix}/")
    while page := list(islice(listed, storage.S3_MAX_KEYS_PER_REQUEST)):
        yield page, [obj for obj in page if obj.modified <= result.cutoff]


def _orphans_in(chunk, session) -> tuple[list[storage.StoredObject], dict[str, str]]:
    """The chunk's orphans that may be deleted, and those that break the rule (name -> reason)."""
    names = [obj.name for obj in chunk]
    # Rows first, then pending names: a purge that commits in between moves a name from the first
    # to the second, so it is seen in one of them. The other order could miss it.
    held = referenced_names(names) | pending_names(names)
    orphans = [obj for obj in chunk if obj.name not in held]
    refused = {o.name: reason for o in orphans if (reason := session.rule.problem(o.name))}
    return [obj for obj in orphans if obj.name not in refused], refused


def _count(result: ReconcileRun, session):
    fits = PendingFileDeletion._meta.get_field("name").max_length
    for page, chunk in _old_chunks(result, session):
        result.scanned += len(page)
        result.scanned_bytes += sum(obj.size for obj in page)
        result.young += len(page) - len(chunk)
        orphans, refused = _orphans_in(chunk, session)
        # Refused keys become refused pending names for a person (a key too long: only counted).
        result.refused_keys += len(refused)
        PendingFileDeletion.objects.bulk_create(
            PendingFileDeletion(name=name, refused_reason=reason[:200])
            for name, reason in refused.items()
            if len(name) <= fits
        )
        result.held += len(chunk) - len(orphans) - len(refused)
        result.orphans += len(orphans)
        result.orphan_bytes += sum(obj.size for obj in orphans)
        room = RECONCILE_EXAMPLES - len(result.examples)
        result.examples.extend(obj.name for obj in orphans[:room])


def _refusal(result: ReconcileRun) -> str:
    past_grace, share = result.held + result.orphans, settings.CLEANUP_RECONCILE_MAX_ORPHAN_SHARE
    if past_grace and not Job.objects.exists() and not PendingFileDeletion.objects.exists():
        why = (
            "the database holds no job and no pending deletion, while storage holds "
            f"{past_grace} object(s) past the grace period: the wrong or an empty database (is "
            "DATABASE_URL the one that owns this storage?)"
        )
    elif result.orphans > share * past_grace:
        why = (
            f"{result.orphans} of the {past_grace} object(s) past the grace period look orphaned "
            f"({result.orphans / past_grace:.0%}), more than CLEANUP_RECONCILE_MAX_ORPHAN_SHARE "
            f"({share:.0%}): a wrong or half-restored database would look the same"
        )
    else:
        return ""
    return (
        f"refusing to delete: {why}. Nothing was deleted. Check the database and the storage, then "
        "run again with --force if every one of them really is an orphan."
    )


def _deleted_orphans(result: ReconcileRun, session) -> bool:
    # The counted orphans are the most this pass deletes: the share was decided on that count.
    room = result.orphans
    for _, chunk in _old_chunks(result, session):
        if room <= 0:
            break
        orphans = _orphans_in(chunk, session)[0][:room]
        room -= len(orphans)
        sizes = {obj.name: obj.size for obj in orphans}
        outcome = storage.delete_names(list(sizes), session=session)
        result.requests += outcome.requests
        result.deleted += len(outcome.deleted)
        result.deleted_bytes += sum(sizes[name] for name in outcome.deleted)
        if not_deleted := {**outcome.failed, **outcome.deferred, **outcome.refused}:
            result.failed += len(not_deleted)
            reasons = "; ".join(sorted(set(not_deleted.values()))[:3])
            result.error = f"{result.failed} orphan(s) not deleted: {reasons}"
        if outcome.unavailable:
            return False
    return True


def _settle_uploads(result: ReconcileRun, session, *, grace: timedelta, abort: bool):
    if not storage.is_s3(session.storage):
        return  # local files have no multipart uploads
    now = purge_cutoff()
    cutoff = min(result.cutoff, now - grace)
    uploads = list_uploads(session.storage, f"{session.rule.prefix}/")
    while page := list(islice(uploads, storage.S3_MAX_KEYS_PER_REQUEST)):
        ids = {_job_id(upload.name) for upload in page} - {None}
        live = set(Job.objects.live(now).filter(pk__in=ids).values_list("pk", flat=True))
        for upload in page:
            if upload.initiated > cutoff or _job_id(upload.name) in live:
                result.uploads_kept += 1
                continue
            result.uploads_orphaned += 1
            if abort:
                abort_upload(session.storage, upload)
                result.uploads_aborted += 1


def _job_id(name: str) -> uuid.UUID | None:
    # Uploads are named jobs/<job id>/...: anything else has no job.
    with suppress(IndexError, ValueError):
        return uuid.UUID(name.split("/")[1])
