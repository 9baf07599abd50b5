"""Deleting objects from the configured storage: the purge's only side effect outside the database.

On S3 names go out in DeleteObjects requests of up to 1,000 keys (one request per key is ~80x
slower); elsewhere, one storage.delete per name. Either way, a name that is already gone counts
as deleted, and each name that could not be deleted comes back with the reason.
"""

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.core.files.storage import FileSystemStorage, storages

S3_MAX_KEYS_PER_REQUEST = 1000


class UnsupportedStorage(Exception):
    """The default storage is of a kind this module cannot list."""


@dataclass
class DeleteOutcome:
    deleted: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    requests: int = 0
    # Set when the storage as a whole failed (endpoint down, 5xx), not some keys in it.
    unavailable: str = ""


def get_storage():
    # Resolved on every call so a changed STORAGES setting (tests, reconfiguration) takes effect.
    return storages["default"]


def is_s3(storage) -> bool:
    try:
        from storages.backends.s3 import S3Storage
    except ImportError:  # pragma: no cover - django-storages is a hard dependency
        return False
    return isinstance(storage, S3Storage)


def delete_names(names: list[str]) -> DeleteOutcome:
    storage = get_storage()
    if is_s3(storage):
        return _delete_s3(storage, names)
    return _delete_one_by_one(storage, names)


def _delete_one_by_one(storage, names):
    outcome = DeleteOutcome()
    for name in names:
        outcome.requests += 1
        try:
            storage.delete(name)  # FileSystemStorage ignores names that are already gone.
        except Exception as exc:  # noqa: BLE001 - any storage error leaves the name pending
            outcome.failed[name] = describe_error(exc)
        else:
            outcome.deleted.append(name)
    if outcome.failed and not outcome.deleted:
        outcome.unavailable = next(iter(outcome.failed.values()))
    return outcome


def _delete_s3(storage, names):
    from storages.utils import clean_name

    outcome = DeleteOutcome()
    client = storage.connection.meta.client
    for start in range(0, len(names), S3_MAX_KEYS_PER_REQUEST):
        chunk = names[start : start + S3_MAX_KEYS_PER_REQUEST]
        key_to_name = {storage._normalize_name(clean_name(name)): name for name in chunk}
        outcome.requests += 1
        try:
            response = client.delete_objects(
                Bucket=storage.bucket_name,
                Delete={"Objects": [{"Key": key} for key in key_to_name], "Quiet": True},
            )
        except Exception as exc:  # noqa: BLE001 - endpoint down, 5xx, auth: every key stays pending
            outcome.unavailable = describe_error(exc)
            outcome.failed.update(dict.fromkeys(chunk, outcome.unavailable))
            # Later chunks would fail the same way; leave them pending untried.
            outcome.failed.update(dict.fromkeys(names[start + len(chunk) :], outcome.unavailable))
            return outcome
        # A 200 answer can still carry per-key failures; only those keys stay pending.
        errors = {}
        for error in response.get("Errors", []):
            if error.get("Code") == "NoSuchKey":
                continue
            reason = f"{error.get('Code', 'Error')}: {error.get('Message', '')}".strip()
            if error.get("Key") not in key_to_name:
                # An error we cannot pin to a key we sent: trust nothing in this answer.
                errors = dict.fromkeys(chunk, reason)
                break
            errors[key_to_name[error["Key"]]] = reason
        outcome.failed.update(errors)
        outcome.deleted.extend(name for name in chunk if name not in errors)
    return outcome


@dataclass(frozen=True)
class StoredObject:
    name: str  # the storage name, as a FileField holds it
    size: int
    modified: datetime  # aware, UTC


def list_objects(prefix: str) -> Iterator[StoredObject]:
    """Every object whose name starts with `prefix/`, streamed: nothing holds the whole listing."""
    storage = get_storage()
    prefix = prefix.strip("/") + "/"
    if is_s3(storage):
        yield from _list_s3(storage, prefix)
    elif isinstance(storage, FileSystemStorage):
        yield from _list_local(storage, prefix)
    else:
        raise UnsupportedStorage(
            f"cannot list {type(storage).__module__}.{type(storage).__qualname__}: only S3 and "
            "local file storage are supported"
        )


def _list_s3(storage, prefix):
    from storages.utils import clean_name

    client = storage.connection.meta.client
    key_prefix = storage._normalize_name(clean_name(prefix))
    # Keys come back with the storage's location in front; names in the database have none.
    location = key_prefix[: len(key_prefix) - len(prefix)]
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=storage.bucket_name, Prefix=key_prefix, PaginationConfig={"PageSize": 1000}
    )
    for page in pages:
        for obj in page.get("Contents", []):
            yield StoredObject(
                name=obj["Key"][len(location) :], size=obj["Size"], modified=obj["LastModified"]
            )


def _list_local(storage, prefix):
    root = storage.path("")
    stack = [storage.path(prefix)]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except FileNotFoundError:
            continue
        with entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    stat = entry.stat(follow_symlinks=False)
                    yield StoredObject(
                        name=os.path.relpath(entry.path, root).replace(os.sep, "/"),
                        size=stat.st_size,
                        modified=datetime.fromtimestamp(stat.st_mtime, tz=UTC),
                    )


def describe_error(exc: BaseException) -> str:
    """A short reason for operators; storage errors carry no personal data beyond the key."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:500]
