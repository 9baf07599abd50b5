"""S3 and S3-compatible servers (django-storages' S3Storage): bulk DeleteObjects, paged listing."""

from storages.backends.s3 import S3Storage
from storages.utils import clean_name

from .outcome import DeleteOutcome, StoredObject, describe_error

# DeleteObjects takes at most this many keys per request.
S3_MAX_KEYS_PER_REQUEST = 1000


def is_s3(storage) -> bool:
    return isinstance(storage, S3Storage)


def delete_names(storage, names) -> DeleteOutcome:
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


def list_objects(storage, prefix):
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
