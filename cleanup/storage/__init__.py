"""Deleting and listing objects in the configured storage: the purge's only side effects outside
the database.

On S3 names go out in DeleteObjects requests of up to 1,000 keys (one request per key is ~80x
slower; s3.py), every version of them on a versioned bucket; on local files, one delete per name
(local.py). Either way, a name that is already gone counts as deleted, each name that could not be
deleted comes back with the reason, and only the storage's own failure (not one name's) marks it
unavailable. A name that breaks the upload-name rule the session was opened with (an allow-list,
jobs.models.UploadName, which services get from the file models' declaration) is never sent at
all: it comes back refused, with the reason. Only S3 and local file storage
are supported; anything else is refused (identity.py), before anything is deleted.

A run opens one session (`open_session(rule)`) and passes it to every call: what the session learns
of the storage (whether an S3 bucket is versioned) is asked once per run, not per batch.
"""

from collections.abc import Iterator

from django.core.files.storage import FileSystemStorage, storages

from . import local, names, s3
from .identity import StorageIdentity, identify, unsupported
from .outcome import DeleteOutcome, StoredObject, UnsupportedStorage, describe_error
from .probe import StorageProbe, probe_s3
from .s3 import S3_MAX_KEYS_PER_REQUEST, is_s3, retries_so_far

__all__ = [
    "S3_MAX_KEYS_PER_REQUEST",
    "DeleteOutcome",
    "StorageProbe",
    "StorageIdentity",
    "StoredObject",
    "UnsupportedStorage",
    "configured_identity",
    "delete_names",
    "describe_error",
    "get_storage",
    "is_s3",
    "list_objects",
    "probe_s3",
    "retries_so_far",
    "open_session",
    "names",
]


def get_storage():
    # Resolved on every call so a changed STORAGES setting (tests, reconfiguration) takes effect.
    return storages["default"]


def open_session(rule):
    """One run's handle on the default storage, refusing what breaks `rule` (the upload-name
    rule: `rule.prefix`, `rule.problem(name)`); see the module docstring."""
    storage = get_storage()
    if is_s3(storage):
        return s3.S3Session(storage, rule)
    if isinstance(storage, FileSystemStorage):
        return local.LocalSession(storage, rule)
    raise UnsupportedStorage(unsupported(storage))


def configured_identity() -> StorageIdentity:
    """Which storage this process is configured for; UnsupportedStorage for an unknown kind."""
    return identify(get_storage())


def delete_names(names_to_delete: list[str], *, session) -> DeleteOutcome:
    refused = {}
    sendable = []
    for name in names_to_delete:
        reason = session.rule.problem(name)
        if reason:
            refused[name] = reason
        else:
            sendable.append(name)
    outcome = session.delete_names(sendable) if sendable else DeleteOutcome()
    outcome.refused.update(refused)
    return outcome


def list_objects(prefix: str, *, session) -> Iterator[StoredObject]:
    """Every object whose name starts with `prefix/`, streamed: nothing holds the whole listing.

    On a versioned bucket, every key that still has any version or delete marker, with the bytes
    all its versions hold and its newest change.
    """
    prefix = prefix.strip("/") + "/"
    yield from session.list_objects(prefix)
