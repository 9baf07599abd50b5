"""S3 (django-storages' S3Storage): bulk DeleteObjects, several at once (CLEANUP_S3_CONCURRENCY,
an AIMD window); on a versioned bucket every version and delete marker of each key. One table
(`classify`) sorts every answer: the storage's trouble leaves every name pending, uncharged; only
an answer about one key, or a request rejected for what it carried (then halved), charges names."""

import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from itertools import chain, groupby
from operator import itemgetter
from typing import NamedTuple

import botocore.exceptions as boto
from django.conf import settings
from storages.backends.s3 import S3Storage

from .outcome import DeleteOutcome, StoredObject, describe_error

S3_MAX_KEYS_PER_REQUEST = 1000  # DeleteObjects' most objects (keys or key versions)
VERSIONED_STATES = ("Enabled", "Suspended")  # Suspended keeps every version made before

# What an S3 answer means to the purge.
UNREACHABLE = "unreachable"  # the storage's trouble (down, overloaded, throttling): back off
MISSING = "missing"  # no such bucket
REFUSED = "refused"  # credentials or access to the bucket
WRONG_REGION = "wrong-region"  # the bucket is elsewhere
REJECTED = "rejected"  # this request, for what it carried (or one key, in DeleteObjects' Errors)
GONE = "gone"  # a key or version already gone: the delete has nothing left to do
# The answers about the storage, not about what was sent: every request would get the same.
STORAGE_KINDS = {UNREACHABLE, MISSING, REFUSED, WRONG_REGION}

# Codes win over the HTTP status (some servers throttle with a 4xx); any other 5xx: UNREACHABLE.
_CODES = {
    UNREACHABLE: "SlowDown ServiceUnavailable InternalError RequestTimeout Throttling "
    "ThrottlingException TooManyRequests RequestLimitExceeded BandwidthLimitExceeded "
    "OperationAborted",
    MISSING: "NoSuchBucket InvalidBucketName",
    REFUSED: "AccessDenied AccountProblem AllAccessDisabled ExpiredToken InvalidAccessKeyId "
    "InvalidPayer InvalidSecurity InvalidToken NotSignedUp RequestTimeTooSkewed "
    "SignatureDoesNotMatch TokenRefreshRequired",
    WRONG_REGION: "PermanentRedirect TemporaryRedirect Redirect AuthorizationHeaderMalformed "
    "IllegalLocationConstraintException",
    GONE: "NoSuchKey NoSuchVersion",
}
CODES = {code: kind for kind, codes in _CODES.items() for code in codes.split()}
STATUSES = {301: WRONG_REGION, 307: WRONG_REGION, 308: WRONG_REGION, 404: MISSING}
STATUSES |= {401: REFUSED, 403: REFUSED, 408: UNREACHABLE, 429: UNREACHABLE}


def classify_answer(status: int | None, code: str = "") -> str:
    otherwise = UNREACHABLE if status and status >= 500 else REJECTED
    return CODES.get(code, STATUSES.get(status, otherwise))


def classify(exc: BaseException) -> str:
    """What a failed S3 call means: by its answer, or, with none, by how it failed."""
    if isinstance(exc, boto.ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return classify_answer(status, str(exc.response.get("Error", {}).get("Code", "")))
    if isinstance(exc, boto.NoCredentialsError | boto.PartialCredentialsError):
        return REFUSED
    if isinstance(exc, boto.ConnectionError | boto.HTTPClientError):
        return UNREACHABLE  # refused, reset, timed out, DNS
    return REJECTED  # refused before sending (parameter validation) or unknown


def explain(exc: BaseException, endpoint: str) -> str:
    """The failure in an operator's words, with no key in it."""
    unreachable = classify(exc) == UNREACHABLE
    if isinstance(exc, boto.ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code, message = str(error.get("Code", "")), str(error.get("Message", "")).strip()
        said = f"{code}: {message}" if message else code or f"HTTP {status}"
        return f"storage unavailable at {endpoint}: {said} (HTTP {status})" if unreachable else said
    if unreachable:
        return f"storage unreachable at {endpoint} ({type(exc).__name__})"
    # A connection error quotes the URL, whose query string can hold a key: drop the query.
    return re.sub(r"\?[^\s\"']*", "", describe_error(exc))


# Retries botocore made, per thread (the calling thread runs the client's events).
_retries = threading.local()


def _count_retries(context=None, **kwargs):
    attempt = ((context or {}).get("retries") or {}).get("attempt", 1)
    _retries.count = retries_so_far() + max(attempt - 1, 0)


def retries_so_far() -> int:
    return getattr(_retries, "count", 0)


def is_s3(storage) -> bool:
    return isinstance(storage, S3Storage)


class StorageUnavailable(Exception):
    """The storage itself failed (endpoint down, 5xx, the bucket refusing this run)."""


class _RequestRejected(Exception):
    """One request was refused for what it carried; other requests may well succeed."""


class S3Session:
    """One run's dealings with the bucket; what it learns of the bucket it asks only once."""

    def __init__(self, storage, rule):
        self.storage, self.rule = storage, rule  # the upload-name rule (file_models.upload_rule())
        self.bucket, self.key_prefix = storage.bucket_name, key_prefix(storage, "")
        self._versioned = None
        # Set once the storage fails a request: the session (one run, its batches' calls side by
        # side) sends no more, and every name it is given stays pending, uncharged.
        self.unavailable = ""
        self._counting, self._asking = threading.Lock(), threading.Lock()
        self.window = _Window(settings.CLEANUP_S3_CONCURRENCY)
        # Shared with the request threads (boto3 clients are thread-safe); hooks once per client.
        self.client = storage.connection.meta.client
        self.endpoint = self.client.meta.endpoint_url
        for event in ("after-call.s3", "after-call-error.s3"):
            self.client.meta.events.register(event, _count_retries, unique_id=f"fmr-{event}")

    def delete_names(self, names) -> DeleteOutcome:
        keys = {name: self.key_prefix + name for name in names}
        sent = DeleteOutcome()  # by key, until it is returned
        try:
            if self._is_versioned(sent):
                objects = self._versions_of(sorted(set(keys.values())), sent)
            else:
                objects = [{"Key": key} for key in sorted(keys.values())]
            step = S3_MAX_KEYS_PER_REQUEST
            parts = [objects[start : start + step] for start in range(0, len(objects), step)]
            self._in_parallel(lambda part: self._delete_part(part, sent), parts)
        except StorageUnavailable as exc:  # the versioning state or a listing: nothing was sent
            self.unavailable = sent.unavailable = str(exc)
            sent.deferred.update(dict.fromkeys(keys.values(), sent.unavailable))
        kept, start = sent.deferred.keys() | sent.failed.keys(), len(self.key_prefix)
        sent.deleted = [name for name, key in keys.items() if key not in kept]
        sent.failed = {k[start:]: why for k, why in sent.failed.items() if k not in sent.deferred}
        sent.deferred = {key[start:]: why for key, why in sent.deferred.items()}
        return sent

    def _in_parallel(self, task, items) -> list:
        with ThreadPoolExecutor(self.window.most) as pool:
            return list(pool.map(task, items))

    def _delete_part(self, objects, sent):
        # Once the storage has failed a request, the parts not yet sent stay pending, untried.
        try:
            if self.unavailable:
                raise StorageUnavailable(self.unavailable)
            self._delete_objects(objects, sent)
        except StorageUnavailable as exc:
            self.unavailable = self.unavailable or str(exc)
            sent.unavailable = sent.unavailable or str(exc)
            sent.deferred.update(dict.fromkeys((o["Key"] for o in objects), str(exc)))

    def _delete_objects(self, objects, sent):
        delete = {"Objects": objects, "Quiet": True}
        try:
            response = self._call("delete_objects", sent, Bucket=self.bucket, Delete=delete)
        except _RequestRejected as exc:
            if len(objects) == 1:
                sent.failed.setdefault(objects[0]["Key"], str(exc))
                return
            # Halve it: the objects that are fine still go, only the bad ones are left failing.
            self._delete_objects(objects[: len(objects) // 2], sent)
            self._delete_objects(objects[len(objects) // 2 :], sent)
            return
        # A 200 answer can still carry per-object failures; only those keys stay pending.
        keys = {obj["Key"] for obj in objects}
        for error in response.get("Errors", []):
            kind = classify_answer(None, str(error.get("Code", "")))
            reason = f"{error.get('Code', 'Error')}: {error.get('Message', '')}".strip()
            if kind == GONE:
                continue
            if error.get("Key") not in keys:
                # An error not about a key we sent: trust nothing in this answer, charge no key.
                sent.deferred.update(dict.fromkeys(keys - sent.deferred.keys(), reason))
                return
            # An InternalError or SlowDown about one key is still the storage's trouble.
            (sent.deferred if kind == UNREACHABLE else sent.failed).setdefault(error["Key"], reason)

    def _is_versioned(self, sent) -> bool:
        with self._asking:  # once per session, though its batches' calls run side by side
            if self.unavailable:  # an outage costs a run one failed request, not one per batch
                raise StorageUnavailable(self.unavailable)
            if self._versioned is None:
                try:
                    answer = self._call("get_bucket_versioning", sent, Bucket=self.bucket)
                except (StorageUnavailable, _RequestRejected) as exc:  # no delete is known final
                    self.unavailable = str(exc)
                    if classify(exc.__cause__) != UNREACHABLE:
                        self.unavailable = f"cannot read the bucket's versioning state: {exc}"
                    raise StorageUnavailable(self.unavailable) from exc.__cause__
                self._versioned = answer.get("Status") in VERSIONED_STATES
        return self._versioned

    def _versions_of(self, keys, sent) -> list[dict]:
        """Every version and delete marker of exactly these keys, as DeleteObjects takes them."""
        folders: dict[str, list[str]] = {}
        for key in keys:
            # A job's files share a folder: one listing for all (a top-level key: its own name).
            folders.setdefault(key[: key.rfind("/") + 1] or key, []).append(key)
        listed = self._in_parallel(lambda plan: self._list_plan(*plan, sent), folders.items())
        if self.unavailable:
            raise StorageUnavailable(self.unavailable)
        return [obj for found in listed for obj in found]

    def _list_plan(self, prefix, wanted, sent) -> list[dict]:
        try:  # a folder of one key: that key's own listing
            return self._list_versions(prefix if len(wanted) > 1 else wanted[0], wanted, sent)
        except StorageUnavailable as exc:
            self.unavailable = self.unavailable or str(exc)
        except _RequestRejected as exc:
            if len(wanted) == 1:
                sent.failed[wanted[0]] = str(exc)
            else:  # the folder listing was refused: list each key alone
                return [obj for key in wanted for obj in self._list_plan(key, [key], sent)]
        return []

    def _list_versions(self, prefix, wanted, sent) -> list[dict]:
        wanted_set, last, found = set(wanted), max(wanted), []
        kwargs = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": S3_MAX_KEYS_PER_REQUEST}
        while True:
            page = self._call("list_object_versions", sent, **kwargs)
            for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
                if item["Key"] in wanted_set:
                    found.append({"Key": item["Key"], "VersionId": item["VersionId"]})
            next_key = page.get("NextKeyMarker")
            # Listings come in key order: past the last wanted key, nothing more is ours.
            if not page.get("IsTruncated") or not next_key or next_key > last:
                return found
            kwargs["KeyMarker"] = next_key
            kwargs.pop("VersionIdMarker", None)
            if page.get("NextVersionIdMarker"):
                kwargs["VersionIdMarker"] = page["NextVersionIdMarker"]

    def _call(self, operation, sent, **kwargs):
        """One request, in the window, counted in `sent` (retries: this thread's)."""
        retried = retries_so_far()
        try:
            with self.window.slot():
                answer = getattr(self.client, operation)(**kwargs)
        except Exception as exc:  # sorted by the one table: the storage's failure or the request's
            if classify(exc) == UNREACHABLE:
                self.window.adjust(strained=True)
            if classify(exc) in STORAGE_KINDS:
                raise StorageUnavailable(explain(exc, self.endpoint)) from exc
            raise _RequestRejected(explain(exc, self.endpoint)) from exc
        finally:
            with self._counting:
                sent.requests += 1
                sent.retries += retries_so_far() - retried
        # botocore retried it (throttling, a 5xx, a dropped connection): the storage is strained.
        self.window.adjust(strained=retries_so_far() > retried)
        return answer

    def list_objects(self, prefix):
        """Every key with any version left, the bytes of all its versions and its newest change."""
        versioned = self._is_versioned(DeleteOutcome())
        operation = "list_object_versions" if versioned else "list_objects_v2"
        pages = self.client.get_paginator(operation).paginate(
            Bucket=self.bucket, Prefix=self.key_prefix + prefix, PaginationConfig={"PageSize": 1000}
        )
        by_key, listed = itemgetter("Key"), ("Contents", "Versions", "DeleteMarkers")
        # A page in key order: a key's versions may run on into the next page.
        items = (sorted(chain(*(page.get(k, []) for k in listed)), key=by_key) for page in pages)
        for key, versions in groupby(chain.from_iterable(items), key=by_key):
            versions = list(versions)
            size = sum(version.get("Size", 0) for version in versions)
            newest = max(version["LastModified"] for version in versions)
            yield StoredObject(key[len(self.key_prefix) :], size, newest)  # names have no location


class _Window:
    """In-flight requests, AIMD up to `most`: a retry halves the limit, a clean answer adds one."""

    def __init__(self, most: int):
        self.most = self.limit = most
        self.busy, self._changed = 0, threading.Condition()

    @contextmanager
    def slot(self):
        with self._changed:
            self._changed.wait_for(lambda: self.busy < self.limit)
            self.busy += 1
        try:
            yield
        finally:
            with self._changed:
                self.busy -= 1
                self._changed.notify_all()

    def adjust(self, *, strained: bool):
        with self._changed:
            self.limit = max(1, self.limit // 2) if strained else min(self.most, self.limit + 1)
            self._changed.notify_all()


# Besides objects: lifecycle rules and incomplete multipart uploads (bytes no listing shows).


class Upload(NamedTuple):
    name: str
    upload_id: str
    initiated: datetime  # aware, UTC


def key_prefix(storage, name: str) -> str:
    """The key of `name` (a name, or the upload prefix as lifecycle rules and listings take it)."""
    location = (storage.location or "").strip("/")
    return f"{location}/{name}" if location else name


@contextmanager
def _unless(code: str):
    """S3's `code` answer is no error here: there is nothing to do."""
    try:
        yield
    except boto.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != code:
            raise


def read_lifecycle(storage) -> list[dict]:
    """The bucket's lifecycle rules as S3 returns them; none when it has no configuration."""
    client = storage.connection.meta.client
    with _unless("NoSuchLifecycleConfiguration"):
        answer = client.get_bucket_lifecycle_configuration(Bucket=storage.bucket_name)
        return answer.get("Rules", [])
    return []


def write_lifecycle(storage, rules: list[dict]):
    storage.connection.meta.client.put_bucket_lifecycle_configuration(
        Bucket=storage.bucket_name, LifecycleConfiguration={"Rules": rules}
    )


def list_uploads(storage, prefix: str) -> Iterator[Upload]:
    """Every incomplete multipart upload under `prefix` (the upload prefix and its slash)."""
    start, client = len(key_prefix(storage, "")), storage.connection.meta.client
    pages = client.get_paginator("list_multipart_uploads").paginate(
        Bucket=storage.bucket_name, Prefix=key_prefix(storage, prefix), MaxUploads=1000
    )
    with _unless("NotImplemented"):  # s3rver has no such call: the rest of a reconcile runs
        for upload in chain.from_iterable(page.get("Uploads", []) for page in pages):
            yield Upload(upload["Key"][start:], upload["UploadId"], upload["Initiated"])


def abort_upload(storage, upload: Upload):
    """Its parts are deleted; an upload already gone (completed or aborted) counts as done."""
    key, s3 = key_prefix(storage, upload.name), storage.connection.meta.client
    with _unless("NoSuchUpload"):
        s3.abort_multipart_upload(Bucket=storage.bucket_name, Key=key, UploadId=upload.upload_id)
