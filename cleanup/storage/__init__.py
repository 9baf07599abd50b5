"""Deleting and listing objects in the configured storage: the purge's only side effects outside
the database.

On S3 names go out in DeleteObjects requests of up to 1,000 keys (one request per key is ~80x
slower; s3.py); on local files, one delete per name (local.py). Either way, a name that is
already gone counts as deleted, and each name that could not be deleted comes back with the
reason. Only S3 and local file storage are supported; anything else is refused.
"""

from collections.abc import Iterator

from django.core.files.storage import FileSystemStorage, storages

from . import local, s3
from .outcome import DeleteOutcome, StoredObject, UnsupportedStorage, describe_error
from .probe import StorageProbe, probe_s3
from .s3 import S3_MAX_KEYS_PER_REQUEST, is_s3

__all__ = [
    "S3_MAX_KEYS_PER_REQUEST",
    "DeleteOutcome",
    "StorageProbe",
    "StoredObject",
    "UnsupportedStorage",
    "delete_names",
    "describe_error",
    "get_storage",
    "is_s3",
    "list_objects",
    "probe_s3",
]


def get_storage():
    # Resolved on every call so a changed STORAGES setting (tests, reconfiguration) takes effect.
    return storages["default"]


def delete_names(names: list[str]) -> DeleteOutcome:
    storage = get_storage()
    if is_s3(storage):
        return s3.delete_names(storage, names)
    if isinstance(storage, FileSystemStorage):
        return local.delete_names(storage, names)
    raise UnsupportedStorage(_unsupported(storage))


def list_objects(prefix: str) -> Iterator[StoredObject]:
    """Every object whose name starts with `prefix/`, streamed: nothing holds the whole listing."""
    storage = get_storage()
    prefix = prefix.strip("/") + "/"
    if is_s3(storage):
        yield from s3.list_objects(storage, prefix)
    elif isinstance(storage, FileSystemStorage):
        yield from local.list_objects(storage, prefix)
    else:
        raise UnsupportedStorage(_unsupported(storage))


def _unsupported(storage) -> str:
    kind = f"{type(storage).__module__}.{type(storage).__qualname__}"
    return f"{kind} is not supported: only S3 and local file storage are"
