"""The storage binding: the database remembers which storage holds its files and every delete
checks it first, so a process with the wrong storage settings refuses instead of "deleting" names
that are not there. A storage is bound only once shown to hold the files the database names.
"""

import dataclasses
import logging
from collections import namedtuple
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


@dataclasses.dataclass
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
    row = StorageBinding.objects.filter(pk=1).first()
    if row is None:
        return BindingState(configured, None)
    bound = storage.StorageIdentity(row.kind, row.bucket, row.location)
    return BindingState(configured, bound, row.bound_at, row.bound_by, row.previous)


def verify_storage() -> storage.StorageIdentity:
    """The configured storage, if it is the one the database's files live in; else refuse.
    With nothing bound, it is bound once shown to hold the files the database names (rows
    written without a file save: bulk inserts, loaddata); with none named, nothing is at risk."""
    state = binding_state()
    if state.bound is None and any(_referenced_names()):
        _bind_verified(state.configured, by="verified: it holds the files the database names")
    elif state.bound and not state.matches:
        raise StorageNotVerified(
            f"the database's files are in {state.bound.describe()}, but this process is "
            f"configured for {state.configured.describe()}: refusing to delete anything. "
            f"Nothing was deleted. {HOW_TO_SWITCH}"
        )
    return state.configured


def ensure_storage_bound(*, by: str):
    """Before a file row is saved: bind the configured storage if nothing is bound (verified when
    the database names files); refuse another storage than the bound one (never purged)."""
    state = binding_state()
    if state.bound is None:
        _bind_verified(state.configured, by=by)
    elif not state.matches:
        raise StorageNotVerified(
            f"refusing to save a file row: the database's files are in "
            f"{state.bound.describe()}, but this process writes to "
            f"{state.configured.describe()}. {HOW_TO_SWITCH}"
        )


def _bind_verified(configured, *, by):
    _check_holds_files(configured)
    try:
        with transaction.atomic():
            StorageBinding.objects.create(pk=1, **_fields(configured, by))
    except IntegrityError:
        verify_storage()  # bound by someone else just now: it must be this storage
    else:
        logger.debug("storage.bound", extra={"kind": configured.kind, "by": by[:40]})


Rebinding = namedtuple("Rebinding", "state changed")  # the binding as it is now; whether changed


def bind_storage(*, by: str) -> Rebinding:
    """Bind the configured storage (the files were moved there), recording who, when, and what
    it replaced."""
    state = binding_state()
    if state.matches:
        return Rebinding(state, changed=False)
    _check_holds_files(state.configured)
    previous = state.bound.describe() if state.bound else ""
    StorageBinding.objects.update_or_create(
        pk=1, defaults={**_fields(state.configured, by), "previous": previous}
    )
    logger.warning(
        "storage.rebound",
        extra={"kind": state.configured.kind, "previous_kind": state.bound and state.bound.kind},
    )
    return Rebinding(binding_state(), changed=True)


def _fields(identity, by):
    return {**dataclasses.asdict(identity), "bound_at": timezone.now(), "bound_by": by[:150]}


SAMPLE_SIZE = 10  # names the database holds, looked for in a storage before it is bound


def _referenced_names() -> tuple[list[str], list[str]]:
    """A few names the database says are stored: the newest file rows', and pending names."""
    rows = []
    for model in file_models():
        for f in file_fields(model):
            newest = model._default_manager.exclude(**{f.attname: ""}).order_by("-pk")
            rows += newest.values_list(f.attname, flat=True)[:SAMPLE_SIZE]
    pending = PendingFileDeletion.objects.waiting().order_by("-pk")
    return (rows, []) if rows else ([], list(pending.values_list("name", flat=True)[:SAMPLE_SIZE]))


def _check_holds_files(configured):
    """Refuse unless `configured` holds every sampled file row's name, or (with no file rows) at
    least one pending name: a pending name may already be gone from any storage."""
    rows, pending = _referenced_names()
    if not (names := rows or pending):
        return
    live = storage.get_storage()
    try:
        held = sum(1 for name in names if not upload_rule().problem(name) and live.exists(name))
    except Exception as exc:  # noqa: BLE001 - unreachable or refused: nothing is verified
        found = f"they could not be checked ({storage.describe_error(exc)})"
    else:
        if held == len(names) or (pending and held):
            return
        found = f"{len(names) - held} of the {len(names)} checked are missing"
    raise StorageNotVerified(
        f"{configured.describe()} does not hold the files this database names: "
        f"{found}. Refusing to bind it. "
        "Nothing was deleted. Point this process at the storage that holds the files, or copy "
        'them there first, then run `python manage.py bind_storage --rebind` (README, "Safety").'
    )
