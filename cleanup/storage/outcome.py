"""What a storage operation tells its caller, whatever the backend."""

from dataclasses import dataclass, field
from datetime import datetime


class UnsupportedStorage(Exception):
    """The default storage is of a kind this package cannot delete from or list."""


@dataclass
class DeleteOutcome:
    deleted: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # name -> reason: storage refused it
    deferred: dict[str, str] = field(default_factory=dict)  # the storage's trouble: no attempt
    refused: dict[str, str] = field(default_factory=dict)  # never sent (reasons hold no name)
    requests: int = 0
    retries: int = 0  # requests the S3 client sent again (throttling, 5xx, connections)
    unavailable: str = ""  # set when the storage as a whole failed, not some keys in it


@dataclass(frozen=True)
class StoredObject:
    name: str  # the storage name, as a FileField holds it
    size: int
    modified: datetime  # aware, UTC


def describe_error(exc: BaseException) -> str:
    """A short reason for operators; storage errors carry no personal data beyond the key."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:500]
