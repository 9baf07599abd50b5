"""S3 and S3-compatible servers (django-storages' S3Storage): bulk DeleteObjects, paged listing.

Gone means gone. On a bucket whose versioning is Enabled or Suspended, a DeleteObjects without
version ids only adds a delete marker: every earlier version stays readable. So a session reads
the bucket's versioning state once (GetBucketVersioning, at its first delete or listing) and, on a
versioned bucket, lists each name's versions and delete markers (ListObjectVersions, one listing
per folder of names, keys matched exactly: a prefix listing also returns longer keys) and deletes
each by version id, still up to 1,000 objects per DeleteObjects. A version Object Lock protects
(retention, legal hold) comes back in the answer's Errors; its name stays failed with S3's reason.
On an unversioned bucket nothing more is sent than one DeleteObjects per 1,000 names.

One bad name never holds back another. Storage is "unavailable" only when the storage says so:
connection refused or reset, timeouts, a 5xx that a key-independent request (HeadBucket) confirms,
or a bucket-level refusal (no such bucket, credentials, access to the bucket). A request rejected
as a whole for what is in it (S3: 400 MalformedXML for a key with a control character) is split in
halves until the keys it can take are deleted and the ones it cannot are failed one by one.
"""

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import botocore.exceptions as boto
from storages.backends.s3 import S3Storage
from storages.utils import clean_name

from .outcome import DeleteOutcome, StoredObject, describe_error

# DeleteObjects takes at most this many objects (keys or key versions) per request.
S3_MAX_KEYS_PER_REQUEST = 1000

VERSIONED_STATES = ("Enabled", "Suspended")  # Suspended keeps every version made before
# Version listings of a batch run this many at a time (botocore's connection pool holds 10).
LISTING_THREADS = 8

# Answers about the bucket or the credentials, not about what a request carried: every request
# would get the same, so they mean storage is unavailable to this run.
BUCKET_LEVEL_CODES = {
    "AccessDenied",
    "AccountProblem",
    "AllAccessDisabled",
    "AuthorizationHeaderMalformed",
    "ExpiredToken",
    "InvalidAccessKeyId",
    "InvalidBucketName",
    "InvalidToken",
    "NoSuchBucket",
    "PermanentRedirect",
    "RequestTimeTooSkewed",
    "SignatureDoesNotMatch",
    "TokenRefreshRequired",
}
# A key or version already gone: the delete has nothing left to do.
GONE_CODES = {"NoSuchKey", "NoSuchVersion"}


def is_s3(storage) -> bool:
    return isinstance(storage, S3Storage)


class StorageUnavailable(Exception):
    """The storage itself failed (endpoint down, 5xx, the bucket refusing this run)."""


class _RequestRejected(Exception):
    """One request was refused for what it carried; other requests may well succeed."""


class S3Session:
    """One run's dealings with the bucket; what it learns of the bucket it asks only once."""

    def __init__(self, storage):
        self.storage = storage
        self.bucket = storage.bucket_name
        self._versioned = None
        self._client = None

    @property
    def client(self):
        # The storage keeps one connection per thread; the session keeps the one of the thread
        # that first used it and shares it with its listing threads (boto3 clients are
        # thread-safe), rather than building a boto3 session in each of them.
        if self._client is None:
            self._client = self.storage.connection.meta.client
        return self._client

    # --- deleting -------------------------------------------------------------------------------

    def delete_names(self, names) -> DeleteOutcome:
        outcome = DeleteOutcome()
        try:
            versioned = self._is_versioned(outcome)
            for start in range(0, len(names), S3_MAX_KEYS_PER_REQUEST):
                self._delete_chunk(
                    names[start : start + S3_MAX_KEYS_PER_REQUEST], versioned, outcome
                )
        except StorageUnavailable as exc:
            # Every later request would fail the same way: leave the rest pending, untried.
            outcome.unavailable = str(exc)
            decided = set(outcome.deleted) | set(outcome.failed)
            outcome.failed.update({n: outcome.unavailable for n in names if n not in decided})
        return outcome

    def _delete_chunk(self, chunk, versioned, outcome):
        keys = {}
        for name in chunk:
            try:
                keys[name] = self.storage._normalize_name(clean_name(name))
            except Exception as exc:  # noqa: BLE001 - the message would repeat the name
                outcome.failed[name] = f"{type(exc).__name__}: the name maps to no key here"
        wanted = set(keys.values())
        failed: dict[str, str] = {}
        if versioned:
            objects = self._versions_of(wanted, failed, outcome)
        else:
            objects = [{"Key": key} for key in sorted(wanted)]
        for start in range(0, len(objects), S3_MAX_KEYS_PER_REQUEST):
            self._delete_objects(objects[start : start + S3_MAX_KEYS_PER_REQUEST], failed, outcome)
        for name, key in keys.items():
            if key in failed:
                outcome.failed[name] = failed[key]
            else:
                outcome.deleted.append(name)

    def _delete_objects(self, objects, failed, outcome):
        try:
            response = self._call(
                "delete_objects",
                outcome,
                Bucket=self.bucket,
                Delete={"Objects": objects, "Quiet": True},
            )
        except _RequestRejected as exc:
            if len(objects) == 1:
                failed.setdefault(objects[0]["Key"], str(exc))
                return
            # Something in this request made it unacceptable as a whole: halve it, so the objects
            # that are fine still go in this run and only the bad ones are left failing.
            middle = len(objects) // 2
            self._delete_objects(objects[:middle], failed, outcome)
            self._delete_objects(objects[middle:], failed, outcome)
            return
        # A 200 answer can still carry per-object failures; only those keys stay pending.
        sent = {obj["Key"] for obj in objects}
        for error in response.get("Errors", []):
            if error.get("Code") in GONE_CODES:
                continue
            reason = f"{error.get('Code', 'Error')}: {error.get('Message', '')}".strip()
            if error.get("Key") not in sent:
                # An error we cannot pin to a key we sent: trust nothing in this answer.
                for key in sent:
                    failed.setdefault(key, reason)
                return
            failed.setdefault(error["Key"], reason)

    # --- versions -------------------------------------------------------------------------------

    def _is_versioned(self, outcome) -> bool:
        if self._versioned is None:
            outcome.requests += 1
            try:
                answer = self.client.get_bucket_versioning(Bucket=self.bucket)
            except Exception as exc:  # unknown versioning: no delete can be known final
                raise StorageUnavailable(
                    f"cannot read the bucket's versioning state: {_describe(exc)}"
                ) from exc
            self._versioned = answer.get("Status") in VERSIONED_STATES
        return self._versioned

    def _versions_of(self, keys, failed, outcome) -> list[dict]:
        """Every version and delete marker of exactly these keys, as DeleteObjects takes them."""
        folders: dict[str, list[str]] = {}
        for key in sorted(keys):
            folders.setdefault(key[: key.rfind("/") + 1], []).append(key)
        plans = []
        for folder, members in folders.items():
            # A job's files share a folder: one listing for all of them. A single key, or keys
            # at the top of the bucket, are listed by their own name.
            if folder and len(members) > 1:
                plans.append((folder, members))
            else:
                plans.extend((key, [key]) for key in members)
        self.client  # noqa: B018 - resolved here, in the run's thread, for the listing threads
        # One listing per folder is one round trip per job: several at once, so a batch of
        # thousands of jobs does not wait for them one after another.
        with ThreadPoolExecutor(LISTING_THREADS) as pool:
            listed = list(pool.map(self._list_plan, plans))
        objects = []
        for found, refused, requests in listed:
            objects += found
            failed.update(refused)
            outcome.requests += requests
        return objects

    def _list_plan(self, plan) -> tuple[list[dict], dict[str, str], int]:
        prefix, wanted = plan
        counted = DeleteOutcome()  # this thread's own request count
        refused = {}
        try:
            found = self._list_versions(prefix, wanted, counted)
        except _RequestRejected as exc:
            if len(wanted) == 1:
                return [], {wanted[0]: str(exc)}, counted.requests
            found = []
            for key in wanted:  # the folder listing was refused: list each key alone
                try:
                    found += self._list_versions(key, [key], counted)
                except _RequestRejected as one:
                    refused[key] = str(one)
        return found, refused, counted.requests

    def _list_versions(self, prefix, wanted, outcome) -> list[dict]:
        wanted_set, last = set(wanted), max(wanted)
        found = []
        kwargs = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": S3_MAX_KEYS_PER_REQUEST}
        while True:
            page = self._call("list_object_versions", outcome, **kwargs)
            for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
                if item["Key"] in wanted_set:
                    found.append({"Key": item["Key"], "VersionId": item["VersionId"]})
            next_key = page.get("NextKeyMarker")
            # Listings come in key order: past the last wanted key, nothing more is ours.
            if not page.get("IsTruncated") or not next_key or next_key > last:
                return found
            kwargs["KeyMarker"] = next_key
            if page.get("NextVersionIdMarker"):
                kwargs["VersionIdMarker"] = page["NextVersionIdMarker"]
            else:
                kwargs.pop("VersionIdMarker", None)

    # --- talking to S3 ----------------------------------------------------------------------------

    def _call(self, operation, outcome, **kwargs):
        outcome.requests += 1
        try:
            return getattr(self.client, operation)(**kwargs)
        except Exception as exc:  # sorted below: the storage's failure or the request's
            reason = _describe(exc)
            kind = _kind_of_failure(exc)
            if kind == "storage" or (kind == "maybe storage" and not self._answers(outcome)):
                raise StorageUnavailable(reason) from exc
            raise _RequestRejected(reason) from exc

    def _answers(self, outcome) -> bool:
        """Does the bucket answer a request that carries no key at all?"""
        outcome.requests += 1
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception:  # noqa: BLE001 - any failure here is the storage's
            return False
        return True

    # --- listing --------------------------------------------------------------------------------

    def list_objects(self, prefix):
        client = self.client
        key_prefix = self.storage._normalize_name(clean_name(prefix))
        # Keys come back with the storage's location in front; names in the database have none.
        location = key_prefix[: len(key_prefix) - len(prefix)]
        if self._is_versioned(DeleteOutcome()):
            for key, size, modified in self._keys_with_versions(key_prefix):
                yield StoredObject(name=key[len(location) :], size=size, modified=modified)
            return
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=key_prefix, PaginationConfig={"PageSize": 1000}
        )
        for page in pages:
            for obj in page.get("Contents", []):
                yield StoredObject(
                    name=obj["Key"][len(location) :], size=obj["Size"], modified=obj["LastModified"]
                )

    def _keys_with_versions(self, key_prefix):
        """Every key that has any version or delete marker left, with the bytes all its versions
        hold and its newest change: a key whose current version is a delete marker, or that has
        only old versions, still holds data."""
        pages = self.client.get_paginator("list_object_versions").paginate(
            Bucket=self.bucket, Prefix=key_prefix, PaginationConfig={"PageSize": 1000}
        )
        current = None
        for page in pages:
            items = page.get("Versions", []) + page.get("DeleteMarkers", [])
            for item in sorted(items, key=lambda i: i["Key"]):
                if current is not None and item["Key"] != current.key:
                    yield current.key, current.size, current.modified
                    current = None
                if current is None:
                    current = _KeyVersions(item["Key"], 0, item["LastModified"])
                current.size += item.get("Size", 0)
                current.modified = max(current.modified, item["LastModified"])
        if current is not None:
            yield current.key, current.size, current.modified


@dataclass
class _KeyVersions:
    key: str
    size: int
    modified: datetime


def _describe(exc) -> str:
    # Connection errors quote the request's URL, whose query string can hold a listing's prefix
    # (a job's folder, a file's key): keep the endpoint and the bucket, drop the query.
    return re.sub(r"\?[^\s\"']*", "", describe_error(exc))


def _kind_of_failure(exc) -> str:
    """'storage': the storage failed; 'maybe storage': a 5xx that may also be one request's
    fault (some servers answer a body they cannot parse with 500); 'request': this request."""
    if isinstance(exc, boto.ConnectionError | boto.HTTPClientError | boto.NoCredentialsError):
        return "storage"  # refused, reset, timed out, or nothing to sign with
    if not isinstance(exc, boto.ClientError):
        return "request"  # refused before sending (parameter validation) or unknown
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    code = exc.response.get("Error", {}).get("Code", "")
    if code in BUCKET_LEVEL_CODES or status in (301, 307, 403, 404):
        return "storage"
    if status >= 500 or code in {"SlowDown", "ServiceUnavailable", "InternalError"}:
        return "maybe storage"
    return "request"
