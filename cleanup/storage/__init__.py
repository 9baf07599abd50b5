"""Deleting and listing objects in S3 (s3.py) or local files (local.py); any other storage is
refused. A name breaking the upload-name rule is never sent (DeleteOutcome says what happened)."""

# ruff: noqa: F401 - the imports below are the package's public names, re-exported.

import os
from dataclasses import dataclass

from django.core.files.storage import FileSystemStorage, storages

from . import local, names, s3
from .outcome import DeleteOutcome, StoredObject, UnsupportedStorage, describe_error
from .probe import StorageProbe, probe_s3
from .s3 import S3_MAX_KEYS_PER_REQUEST, is_s3


@dataclass(frozen=True)
class StorageIdentity:
    """A storage by what names its files (bucket, key prefix; real MEDIA_ROOT), not its endpoint."""

    kind: str  # "s3" or "local"
    bucket: str = ""
    location: str = ""

    def describe(self) -> str:
        if self.kind == "s3":
            prefix = f" (key prefix {self.location!r})" if self.location else ""
            return f"S3 bucket {self.bucket!r}{prefix}"
        return f"local files under {self.location}"


def get_storage():
    # Resolved on every call so a changed STORAGES setting (tests, reconfiguration) takes effect.
    return storages["default"]


def open_session(rule):
    """One run's handle on the default storage, refusing what breaks the upload-name `rule`."""
    session = s3.S3Session if configured_identity().kind == "s3" else local.LocalSession
    return session(get_storage(), rule)


def configured_identity() -> StorageIdentity:
    storage = get_storage()
    if is_s3(storage):
        return StorageIdentity("s3", storage.bucket_name or "", (storage.location or "").strip("/"))
    if isinstance(storage, FileSystemStorage):
        return StorageIdentity("local", "", os.path.realpath(storage.location))
    kind = f"{type(storage).__module__}.{type(storage).__qualname__}"
    raise UnsupportedStorage(f"{kind} is not supported: only S3 and local file storage are")


def delete_names(names_to_delete: list[str], *, session) -> DeleteOutcome:
    refused = {name: why for name in names_to_delete if (why := session.rule.problem(name))}
    sendable = [name for name in names_to_delete if name not in refused]
    outcome = session.delete_names(sendable) if sendable else DeleteOutcome()
    outcome.refused.update(refused)
    return outcome
