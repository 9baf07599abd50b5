"""The storage binding: the database remembers which storage holds its files.

Every delete from storage checks `verify_storage()` first, once per run, before it deletes a row
or an object. A process started with the wrong storage settings (no AWS_STORAGE_BUCKET_NAME, so
local files; another bucket; another MEDIA_ROOT) then refuses instead of "deleting" names that
are not there and forgetting the real objects for good.

The binding is written when the first file row is saved (`ensure_storage_bound`, from a
pre_save receiver) or by migration 0008 for a deployment that already had files, and changed
only on purpose, by `manage.py bind_storage --rebind` (`bind_storage`).
"""

import logging
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from .. import storage
from ..file_models import file_fields, file_models, upload_rule
from ..models import PendingFileDeletion, StorageBinding
from .errors import StorageNotVerified

logger = logging.getLogger(__name__)

HOW_TO_SWITCH = (
    "If this process is misconfigured, fix its storage settings (AWS_STORAGE_BUCKET_NAME, "
    "AWS_LOCATION, MEDIA_ROOT). If the files really were moved there, run "
    '`python manage.py bind_storage --rebind` (README, "Safety").'
)


@dataclass
class BindingState:
    configured: storage.StorageIdentity
    bound: storage.StorageIdentity | None
    bound_at: datetime | None = None
    bound_by: str = ""
    previous: str = ""

    @property
    def matches(self) -> bool:
        return self.bound == self.configured


def configured_storage() -> storage.StorageIdentity:
    try:
        return storage.configured_identity()
    except storage.UnsupportedStorage as exc:
        raise StorageNotVerified(f"the configured storage {exc}. Nothing was deleted.") from None


def binding_state() -> BindingState:
    configured = configured_storage()
    binding = StorageBinding.objects.filter(pk=1).first()
    if binding is None:
        return BindingState(configured=configured, bound=None)
    return BindingState(
        configured=configured,
        bound=_identity(binding),
        bound_at=binding.bound_at,
        bound_by=binding.bound_by,
        previous=binding.previous,
    )


def verify_storage() -> storage.StorageIdentity:
    """The configured storage, if it is the one the database's files live in; else refuse.

    With nothing bound and nothing stored (no file row, no pending name) nothing is at risk: the
    first file written binds its storage.
    """
    state = binding_state()
    if state.bound is None:
        sample = _referenced_sample()
        if not sample:
            return state.configured
        if _holds_any(sample):
            # Rows written without a file save (bulk inserts, loaddata, an old deployment): the
            # configured storage really holds their files, so it is the one; remember it.
            ensure_storage_bound(
                by=f"verified: it holds files the database names ({len(sample)} checked)"
            )
            return state.configured
        raise StorageNotVerified(
            "no storage is bound to this database, and none of the "
            f"{len(sample)} stored file(s) it names that were checked is in "
            f"{state.configured.describe()}: refusing to delete from it. Nothing was deleted. "
            "Check that this storage holds the files, then run "
            '`python manage.py bind_storage --rebind` to bind it (README, "Safety").'
        )
    if not state.matches:
        raise StorageNotVerified(
            f"the database's files are in {state.bound.describe()}, but this process is "
            f"configured for {state.configured.describe()}: refusing to delete anything. "
            f"Nothing was deleted. {HOW_TO_SWITCH}"
        )
    return state.configured


def ensure_storage_bound(*, by: str):
    """Before a file row is saved: bind the configured storage if nothing is bound yet; refuse a
    save into a storage other than the bound one (its file would never be purged)."""
    configured = configured_storage()
    binding = StorageBinding.objects.filter(pk=1).first()
    if binding is None:
        try:
            with transaction.atomic():
                StorageBinding.objects.create(pk=1, **_fields(configured, by))
        except IntegrityError:
            binding = StorageBinding.objects.get(pk=1)  # bound by someone else just now
        else:
            logger.debug("storage.bound", extra={"kind": configured.kind, "by": "first file"})
            return
    if _identity(binding) != configured:
        raise StorageNotVerified(
            f"refusing to save a file row: the database's files are in "
            f"{_identity(binding).describe()}, but this process writes to "
            f"{configured.describe()}. {HOW_TO_SWITCH}"
        )


@dataclass
class Rebinding:
    state: BindingState  # as it is now
    changed: bool


def bind_storage(*, by: str) -> Rebinding:
    """Bind the configured storage: after the files really were moved there (or to bind a
    deployment that has files and no binding). Records who and when, and what it replaced."""
    state = binding_state()
    if state.matches:
        return Rebinding(state=state, changed=False)
    previous = state.bound.describe() if state.bound else ""
    StorageBinding.objects.update_or_create(
        pk=1, defaults={**_fields(state.configured, by), "previous": previous}
    )
    logger.warning(
        "storage.rebound",
        extra={"kind": state.configured.kind, "previous_kind": state.bound and state.bound.kind},
    )
    return Rebinding(state=binding_state(), changed=True)


def _fields(identity, by):
    return {
        "kind": identity.kind,
        "bucket": identity.bucket,
        "location": identity.location,
        "bound_at": timezone.now(),
        "bound_by": by[:150],
    }


def _identity(binding) -> storage.StorageIdentity:
    return storage.StorageIdentity(binding.kind, binding.bucket, binding.location)


# How many of the names the database holds are looked for in an unbound storage.
SAMPLE_SIZE = 10


def _referenced_sample() -> list[str]:
    """A few names the database says are stored: the newest file rows, then pending names."""
    names = []
    for model in file_models():
        for f in file_fields(model):
            rows = model._default_manager.exclude(**{f.attname: ""}).order_by("-pk")
            names += rows.values_list(f.attname, flat=True)[:SAMPLE_SIZE]
    pending = PendingFileDeletion.objects.waiting().order_by("-pk")
    names += pending.values_list("name", flat=True)[:SAMPLE_SIZE]
    return names


def _holds_any(names) -> bool:
    """Whether the configured storage holds at least one of these names (as storage keys)."""
    live = storage.get_storage()
    for name in names:
        if upload_rule().problem(name):
            continue  # never looked up: it is not a key under the upload prefix
        try:
            if live.exists(name):
                return True
        except Exception:  # noqa: BLE001 - unreachable or refused: this cannot verify anything
            return False
    return False
