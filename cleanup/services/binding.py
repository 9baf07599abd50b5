"""The storage binding: the database remembers which storage holds its files and every delete
checks it first, so a process with the wrong storage settings refuses instead of "deleting" names
that are not there. A storage is bound only once shown to hold the files the database names.
"""

import dataclasses
import logging
from datetime import datetime

from django.utils import timezone

from .. import storage
from ..file_models import file_fields, file_models, upload_rule
from ..models import PendingFileDeletion, StorageBinding
from .errors import StorageNotVerified

logger = logging.getLogger(__name__)

HOW_TO_SWITCH = (
    "Fix this process's storage settings (AWS_STORAGE_BUCKET_NAME, AWS_LOCATION, MEDIA_ROOT) or, "
    'if the files were moved there, run `python manage.py bind_storage --rebind` (README "Safety").'
)
SAMPLE_SIZE = 10  # names the database holds, looked for in a storage before it is bound


@dataclasses.dataclass
class BindingState:
    configured: storage.StorageIdentity
    bound: storage.StorageIdentity | None
    bound_at: datetime | None = None
    bound_by: str = ""
    previous: str = ""
    changed: bool = False  # bind_storage just bound the configured storage

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
    if (row := StorageBinding.objects.filter(pk=1).first()) is None:
        return BindingState(configured, None)
    bound = storage.StorageIdentity(row.kind, row.bucket, row.location)
    return BindingState(configured, bound, row.bound_at, row.bound_by, row.previous)


def verify_storage() -> storage.StorageIdentity:
    """The configured storage, if the database's files live in it; else refuse. With nothing bound
    (rows loaded without a file save), it is bound once it holds the files the database names."""
    state = binding_state()
    if state.bound is None and _sample()[0]:
        _bind_verified(state.configured, by="verified: it holds the files the database names")
    _refuse_another(state, "delete anything. Nothing was deleted")
    return state.configured


def ensure_storage_bound(*, by: str):
    """Before saving a file row: bind the configured storage if none is, refuse another one."""
    state = binding_state()
    if state.bound is None:
        _bind_verified(state.configured, by=by)
    _refuse_another(state, "save a file row")


def _refuse_another(state: BindingState, what: str):
    if state.bound and not state.matches:
        raise StorageNotVerified(
            f"the database's files are in {state.bound.describe()}, but this process is "
            f"configured for {state.configured.describe()}: refusing to {what}. {HOW_TO_SWITCH}"
        )


def _bind_verified(configured, *, by, previous=None):
    _check_holds_files(configured)
    fields = {**dataclasses.asdict(configured), "bound_at": timezone.now(), "bound_by": by[:150]}
    if previous is not None:  # bind_storage: over whatever was bound
        StorageBinding.objects.update_or_create(pk=1, defaults={**fields, "previous": previous})
    elif StorageBinding.objects.get_or_create(pk=1, defaults=fields)[1]:
        logger.debug("storage.bound", extra={"kind": configured.kind, "by": by[:40]})
    else:
        verify_storage()  # bound by someone else just now: it must be this storage


def bind_storage(*, by: str) -> BindingState:
    """Rebind: the files were moved to the configured storage (recorded: who, when, what before)."""
    state = binding_state()
    if state.matches:
        return state
    previous = state.bound.describe() if state.bound else ""
    _bind_verified(state.configured, by=by, previous=previous)
    extra = {"kind": state.configured.kind, "previous_kind": state.bound and state.bound.kind}
    logger.warning("storage.rebound", extra=extra)
    return dataclasses.replace(binding_state(), changed=True)


def _sample() -> tuple[list[str], bool]:
    """A few names the database says are stored: the newest file rows' (all must be held), else
    pending names (one held is enough: a pending name may already be gone from any storage)."""
    rows = []
    for model in file_models():
        for f in file_fields(model):
            newest = model._default_manager.exclude(**{f.attname: ""}).order_by("-pk")
            rows += newest.values_list(f.attname, flat=True)[:SAMPLE_SIZE]
    if rows:
        return rows, True
    pending = PendingFileDeletion.objects.waiting().order_by("-pk")
    return list(pending.values_list("name", flat=True)[:SAMPLE_SIZE]), False


def _check_holds_files(configured):
    names, every = _sample()
    if not names:
        return
    live = storage.get_storage()
    try:
        held = sum(1 for name in names if not upload_rule().problem(name) and live.exists(name))
    except Exception as exc:  # noqa: BLE001 - unreachable or refused: nothing is verified
        found = f"they could not be checked ({storage.describe_error(exc)})"
    else:
        if held == len(names) or (held and not every):
            return
        found = f"{len(names) - held} of the {len(names)} checked are missing"
    raise StorageNotVerified(
        f"{configured.describe()} does not hold the files this database names: {found}. Refusing "
        f"to bind it. Nothing was deleted. {HOW_TO_SWITCH}"
    )
