"""What a storage operation tells its caller, whatever the backend."""

from dataclasses import dataclass, field
from datetime import datetime


class UnsupportedStorage(Exception):
    """The default storage is of a kind this package cannot delete from or list."""


@dataclass
class DeleteOutcome:
    deleted: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    # Never sent to storage: the name does not resolve to a key under the upload prefix (see
    # names.py), or locally its real path leaves it. Name -> reason (without the name).
    refused: dict[str, str] = field(default_factory=dict)
    requests: int = 0
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
