"""What the bucket keeps besides its objects: its lifecycle configuration, and incomplete
multipart uploads (their parts hold an upload's bytes, yet no object listing shows them).

Names here are storage names, as a FileField holds them; keys carry the storage's `location`
(AWS_LOCATION) in front, added and removed only in this module.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from botocore.exceptions import ClientError

from jobs.models import UPLOAD_PREFIX

NO_LIFECYCLE = "NoSuchLifecycleConfiguration"


@dataclass(frozen=True)
class Upload:
    name: str
    upload_id: str
    initiated: datetime  # aware, UTC


def key_prefix(storage, name: str = f"{UPLOAD_PREFIX}/") -> str:
    """The key of `name` (by default the upload prefix, as lifecycle rules and listings take it)."""
    location = (storage.location or "").strip("/")
    return f"{location}/{name}" if location else name


def _client(storage):
    return storage.connection.meta.client


def read_lifecycle(storage) -> list[dict]:
    """The bucket's lifecycle rules as S3 returns them; none when it has no configuration."""
    try:
        answer = _client(storage).get_bucket_lifecycle_configuration(Bucket=storage.bucket_name)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == NO_LIFECYCLE:
            return []
        raise
    return answer.get("Rules", [])


def write_lifecycle(storage, rules: list[dict]):
    _client(storage).put_bucket_lifecycle_configuration(
        Bucket=storage.bucket_name, LifecycleConfiguration={"Rules": rules}
    )


def list_uploads(storage) -> Iterator[Upload]:
    """Every incomplete multipart upload under the upload prefix, paged (1,000 per request)."""
    keys = key_prefix(storage)
    start = len(keys) - len(f"{UPLOAD_PREFIX}/")
    pages = (
        _client(storage)
        .get_paginator("list_multipart_uploads")
        .paginate(Bucket=storage.bucket_name, Prefix=keys, PaginationConfig={"PageSize": 1000})
    )
    try:
        for page in pages:
            for upload in page.get("Uploads", []):
                yield Upload(upload["Key"][start:], upload["UploadId"], upload["Initiated"])
    except ClientError as exc:
        # A server without the call (s3rver) cannot show its uploads; the rest of a reconcile
        # still runs.
        if exc.response.get("Error", {}).get("Code") != "NotImplemented":
            raise


def abort_upload(storage, upload: Upload):
    """Its parts are deleted; an upload already gone (completed or aborted) counts as done."""
    key = key_prefix(storage, upload.name)
    try:
        _client(storage).abort_multipart_upload(
            Bucket=storage.bucket_name, Key=key, UploadId=upload.upload_id
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
            raise
