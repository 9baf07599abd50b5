"""What a storage operation tells its caller, whatever the backend."""

from dataclasses import dataclass, field
from datetime import datetime


class UnsupportedStorage(Exception):
    """The default storage is of a kind this package cannot delete from or list."""


@dataclass
class DeleteOutcome:
    deleted: list[str] = field(default_factory=list)
    # Names storage refused, each for itself (an answer about its key, or a request rejected
    # for what it carried): each counts an attempt against the name. Name -> reason.
    failed: dict[str, str] = field(default_factory=dict)
    # Names left for a later run through the storage's own trouble (an outage, a 5xx, throttling):
    # nothing counts against them. Name -> reason.
    deferred: dict[str, str] = field(default_factory=dict)
    # Never sent to storage: the name breaks the upload-name rule, or locally its real path leaves
    # the upload directory. Name -> reason (without the name).
    refused: dict[str, str] = field(default_factory=dict)
    requests: int = 0
    retries: int = 0  # requests the S3 client sent again (throttling, 5xx, connections)
    # Set when the storage as a whole failed (endpoint down, 5xx), not some keys in it.
    unavailable: str = ""


@dataclass(frozen=True)
class StoredObject:
    name: str  # the storage name, as a FileField holds it
    size: int
    modified: datetime  # aware, UTC


def describe_error(exc: BaseException) -> str:
    """A short reason for operators; storage errors carry no personal data beyond the key."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:500]
