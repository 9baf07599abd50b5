"""Deleting and listing objects in the configured storage: the purge's only side effects outside
the database.

On S3 names go out in DeleteObjects requests of up to 1,000 keys (one request per key is ~80x
slower; s3.py); on local files, one delete per name (local.py). Either way, a name that is
already gone counts as deleted, and each name that could not be deleted comes back with the
reason. A name that is not the canonical key of an object under the upload prefix is never sent
at all: it comes back refused, with the reason (names.py). Only S3 and local file storage are
supported; anything else is refused (identity.py), before anything is deleted.
"""

from collections.abc import Iterator

from django.core.files.storage import FileSystemStorage, storages

from . import local, names, s3
from .identity import StorageIdentity, identify, unsupported
from .outcome import DeleteOutcome, StoredObject, UnsupportedStorage, describe_error
from .s3 import S3_MAX_KEYS_PER_REQUEST, is_s3

__all__ = [
    "S3_MAX_KEYS_PER_REQUEST",
    "DeleteOutcome",
    "StorageIdentity",
    "StoredObject",
    "UnsupportedStorage",
    "configured_identity",
    "delete_names",
    "describe_error",
    "get_storage",
    "is_s3",
    "list_objects",
    "names",
]


def get_storage():
    # Resolved on every call so a changed STORAGES setting (tests, reconfiguration) takes effect.
    return storages["default"]


def configured_identity() -> StorageIdentity:
    """Which storage this process is configured for; UnsupportedStorage for an unknown kind."""
    return identify(get_storage())


def delete_names(names_to_delete: list[str]) -> DeleteOutcome:
    storage = get_storage()
    if not (is_s3(storage) or isinstance(storage, FileSystemStorage)):
        raise UnsupportedStorage(unsupported(storage))
    refused = {}
    sendable = []
    for name in names_to_delete:
        reason = names.refusal(name, storage)
        if reason:
            refused[name] = reason
        else:
            sendable.append(name)
    backend = s3 if is_s3(storage) else local
    outcome = backend.delete_names(storage, sendable) if sendable else DeleteOutcome()
    outcome.refused.update(refused)
    return outcome


def list_objects(prefix: str) -> Iterator[StoredObject]:
    """Every object whose name starts with `prefix/`, streamed: nothing holds the whole listing."""
    storage = get_storage()
    prefix = prefix.strip("/") + "/"
    if is_s3(storage):
        yield from s3.list_objects(storage, prefix)
    elif isinstance(storage, FileSystemStorage):
        yield from local.list_objects(storage, prefix)
    else:
        raise UnsupportedStorage(unsupported(storage))
