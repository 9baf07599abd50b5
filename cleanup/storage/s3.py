"""S3 and S3-compatible servers (django-storages' S3Storage): bulk DeleteObjects, paged listing.

Gone means gone. On a bucket whose versioning is Enabled or Suspended, a DeleteObjects without
version ids only adds a delete marker: every earlier version stays readable. So a session reads
the bucket's versioning state once (GetBucketVersioning, at its first delete or listing) and, on a
versioned bucket, lists each name's versions and delete markers (ListObjectVersions, one listing
per folder of names, keys matched exactly: a prefix listing also returns longer keys) and deletes
each by version id, still up to 1,000 objects per DeleteObjects. A version Object Lock protects
(retention, legal hold) comes back in the answer's Errors; its name stays failed with S3's reason.
On an unversioned bucket nothing more is sent than one DeleteObjects per 1,000 names.

A far bucket answers each request in a round trip or more, so requests go several at once
(CLEANUP_S3_CONCURRENCY, within botocore's connection pool): a throttling answer halves that for
the call, each request answered at once adds one back (_Window).

One bad name never holds back another, and the storage's own trouble is never charged to a name.
Every answer is sorted by one table (`classify`, by S3 error code, then by HTTP status): a 5xx,
throttling (SlowDown, 429...), a timeout or a dropped connection is the storage's trouble, retried
by botocore (AWS_S3_CLIENT_CONFIG: standard mode, bounded attempts, exponential backoff with
jitter) and then left pending for the next run, every name of it, with no request split and no
attempt counted; a refusal of the bucket or the credentials is the same for every request. Only
an answer about one key (DeleteObjects' Errors) or a request rejected for what it carried (a 4xx
such as MalformedXML) counts against names; such a request is split in halves so the keys it can
take still go. Keys are the storage's location (key prefix) and '/' and the name: the names
sent have passed the upload-name rule, which every S3 server reads as the same key.
"""

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import botocore.exceptions as boto
from django.conf import settings
from storages.backends.s3 import S3Storage

from .outcome import DeleteOutcome, StoredObject, describe_error

# DeleteObjects takes at most this many objects (keys or key versions) per request.
S3_MAX_KEYS_PER_REQUEST = 1000

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

# S3 error codes (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html), first;
# a code not here goes by its HTTP status (STATUSES, then any 5xx is UNREACHABLE, any other
# answer REJECTED). Some servers send throttling with a 4xx status: the code wins.
CODES = {
    **dict.fromkeys(
        (
            "SlowDown",
            "ServiceUnavailable",
            "InternalError",
            "RequestTimeout",
            "Throttling",
            "ThrottlingException",
            "TooManyRequests",
            "RequestLimitExceeded",
            "BandwidthLimitExceeded",
            "OperationAborted",
        ),
        UNREACHABLE,
    ),
    **dict.fromkeys(("NoSuchBucket", "InvalidBucketName"), MISSING),
    **dict.fromkeys(
        (
            "AccessDenied",
            "AccountProblem",
            "AllAccessDisabled",
            "ExpiredToken",
            "InvalidAccessKeyId",
            "InvalidPayer",
            "InvalidSecurity",
            "InvalidToken",
            "NotSignedUp",
            "RequestTimeTooSkewed",
            "SignatureDoesNotMatch",
            "TokenRefreshRequired",
        ),
        REFUSED,
    ),
    **dict.fromkeys(
        (
            "PermanentRedirect",
            "TemporaryRedirect",
            "Redirect",
            "AuthorizationHeaderMalformed",
            "IllegalLocationConstraintException",
        ),
        WRONG_REGION,
    ),
    **dict.fromkeys(("NoSuchKey", "NoSuchVersion"), GONE),
}
STATUSES = {
    301: WRONG_REGION,
    307: WRONG_REGION,
    308: WRONG_REGION,
    401: REFUSED,
    403: REFUSED,
    404: MISSING,
    408: UNREACHABLE,
    429: UNREACHABLE,
}


def classify_answer(status: int | None, code: str = "") -> str:
    """What an S3 answer (its HTTP status and error code) means; see CODES."""
    if code in CODES:
        return CODES[code]
    if status in STATUSES:
        return STATUSES[status]
    return UNREACHABLE if status and status >= 500 else REJECTED


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
    if isinstance(exc, boto.ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code, message = str(error.get("Code", "")), str(error.get("Message", "")).strip()
        said = f"{code}: {message}" if message else code or f"HTTP {status}"
        if classify(exc) == UNREACHABLE:
            return f"storage unavailable at {endpoint}: {said} (HTTP {status})"
        return said
    if classify(exc) == UNREACHABLE:
        return f"storage unreachable at {endpoint} ({type(exc).__name__})"
    # Connection errors quote the request's URL, whose query string can hold a listing's prefix
    # (a job's folder, a file's key): keep the endpoint and the bucket, drop the query.
    return re.sub(r"\?[^\s\"']*", "", describe_error(exc))


# Retries botocore made, per thread (the calling thread runs the client's events): a session
# reads the difference before and after its calls.
_retries = threading.local()


def _count_retries(context=None, **kwargs):
    attempt = ((context or {}).get("retries") or {}).get("attempt", 1)
    _retries.count = retries_so_far() + max(attempt - 1, 0)


def retries_so_far() -> int:
    """Retries botocore has made for S3 calls in this thread (the purge's sessions)."""
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
        self.storage = storage
        self.rule = rule  # the upload-name rule (cleanup.file_models.upload_rule())
        self.bucket = storage.bucket_name
        location = (storage.location or "").strip("/")
        self.key_prefix = f"{location}/" if location else ""
        self._versioned = None
        self._client = None
        self.window = _Window(settings.CLEANUP_S3_CONCURRENCY)
        self.client  # noqa: B018 - resolved in the run's thread (see below), before any other

    @property
    def client(self):
        # The storage keeps one connection per thread; the session keeps the run's thread's and
        # shares it with the storage and request threads (boto3 clients are thread-safe), so
        # every request of a run goes through one client and its event hooks.
        if self._client is None:
            self._client = self.storage.connection.meta.client
            events = self._client.meta.events
            # Same ids on every session: registered once per client, however many runs use it.
            events.register("after-call.s3", _count_retries, unique_id="fmr-retries")
            events.register("after-call-error.s3", _count_retries, unique_id="fmr-retries-error")
        return self._client

    @property
    def endpoint(self) -> str:
        return self.client.meta.endpoint_url

    # --- deleting -------------------------------------------------------------------------------

    def delete_names(self, names) -> DeleteOutcome:
        outcome = DeleteOutcome()
        retried = retries_so_far()
        keys = {name: self.key_prefix + name for name in names}
        failed: dict[str, str] = {}
        deferred: dict[str, str] = {}
        self.window.stopped = ""
        try:
            if self._is_versioned(outcome):
                objects = self._versions_of(set(keys.values()), failed, outcome)
            else:
                objects = [{"Key": key} for key in sorted(keys.values())]
            parts = [
                objects[start : start + S3_MAX_KEYS_PER_REQUEST]
                for start in range(0, len(objects), S3_MAX_KEYS_PER_REQUEST)
            ]
            self._in_parallel(self._delete_part, parts, failed, deferred, outcome)
            outcome.unavailable = self.window.stopped
        except StorageUnavailable as exc:  # the versioning state or a listing: nothing was sent
            outcome.unavailable = str(exc)
            deferred.update(dict.fromkeys(keys.values(), outcome.unavailable))
        for name, key in keys.items():
            if key in deferred:
                outcome.deferred[name] = deferred[key]
            elif key in failed:
                outcome.failed[name] = failed[key]
            else:
                outcome.deleted.append(name)
        outcome.retries += retries_so_far() - retried
        return outcome

    def _in_parallel(self, task, items, failed, deferred, outcome) -> list:
        """`task(item, counted)` for each item, in threads, at most the window's requests in
        flight; each keeps its own counts (merged here, keyed by S3 key). Returns the results."""
        self.client  # noqa: B018 - resolved here, in the run's thread, for the pool's threads
        with ThreadPoolExecutor(self.window.most) as pool:
            done = list(pool.map(lambda item: self._counted(task, item), items))
        for _, counted in done:
            failed.update(counted.failed)
            deferred.update(counted.deferred)
            outcome.requests += counted.requests
            outcome.retries += counted.retries
        return [result for result, _ in done]

    def _counted(self, task, item) -> tuple:
        counted = DeleteOutcome()
        retried = retries_so_far()  # this thread's
        result = task(item, counted)
        counted.retries = retries_so_far() - retried
        return result, counted

    def _delete_part(self, objects, counted):
        # Once the storage has failed a request, every later one would fail the same way: the
        # parts not yet sent stay pending, untried, and cost the bucket nothing.
        if self.window.stopped:
            counted.deferred.update(dict.fromkeys((o["Key"] for o in objects), self.window.stopped))
            return
        try:
            self._delete_objects(objects, counted.failed, counted.deferred, counted)
        except StorageUnavailable as exc:
            self.window.stopped = self.window.stopped or str(exc)
            counted.deferred.update(dict.fromkeys((o["Key"] for o in objects), str(exc)))

    def _delete_objects(self, objects, failed, deferred, outcome):
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
            self._delete_objects(objects[:middle], failed, deferred, outcome)
            self._delete_objects(objects[middle:], failed, deferred, outcome)
            return
        # A 200 answer can still carry per-object failures; only those keys stay pending.
        sent = {obj["Key"] for obj in objects}
        for error in response.get("Errors", []):
            kind = classify_answer(None, str(error.get("Code", "")))
            if kind == GONE:
                continue
            reason = f"{error.get('Code', 'Error')}: {error.get('Message', '')}".strip()
            if error.get("Key") not in sent:
                # An error we cannot pin to a key we sent: trust nothing in this answer, and
                # charge no key for it.
                for key in sent:
                    deferred.setdefault(key, reason)
                return
            # An InternalError or SlowDown about one key is still the storage's trouble.
            (deferred if kind == UNREACHABLE else failed).setdefault(error["Key"], reason)

    # --- versions -------------------------------------------------------------------------------

    def _is_versioned(self, outcome) -> bool:
        if self._versioned is None:
            outcome.requests += 1
            try:
                answer = self.client.get_bucket_versioning(Bucket=self.bucket)
            except Exception as exc:  # unknown versioning: no delete can be known final
                reason = explain(exc, self.endpoint)
                if classify(exc) != UNREACHABLE:
                    reason = f"cannot read the bucket's versioning state: {reason}"
                raise StorageUnavailable(reason) from exc
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
        # One listing per folder is one round trip per job: several at once, so a batch of
        # thousands of jobs does not wait for them one after another.
        listed = self._in_parallel(self._list_plan, plans, failed, {}, outcome)
        if self.window.stopped:
            raise StorageUnavailable(self.window.stopped)
        return [obj for found in listed for obj in found]

    def _list_plan(self, plan, counted) -> list[dict]:
        prefix, wanted = plan
        try:
            return self._list_versions(prefix, wanted, counted)
        except StorageUnavailable as exc:
            self.window.stopped = self.window.stopped or str(exc)
        except _RequestRejected as exc:
            if len(wanted) == 1:
                counted.failed[wanted[0]] = str(exc)
                return []
            # The folder listing was refused: list each key alone.
            found = []
            for key in wanted:
                try:
                    found += self._list_versions(key, [key], counted)
                except _RequestRejected as one:
                    counted.failed[key] = str(one)
            return found
        return []

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
        retried = retries_so_far()
        try:
            with self.window.slot():
                answer = getattr(self.client, operation)(**kwargs)
        except Exception as exc:  # sorted by the one table: the storage's failure or the request's
            reason = explain(exc, self.endpoint)
            if classify(exc) == UNREACHABLE:
                self.window.shrink()
            if classify(exc) in STORAGE_KINDS:
                raise StorageUnavailable(reason) from exc
            raise _RequestRejected(reason) from exc
        # botocore retried it (throttling, a 5xx, a dropped connection): the storage is under
        # strain, so fewer requests at once; an answer at the first try earns one more.
        if retries_so_far() > retried:
            self.window.shrink()
        else:
            self.window.grow()
        return answer

    # --- listing --------------------------------------------------------------------------------

    def list_objects(self, prefix):
        client = self.client
        # Keys come back with the storage's location in front; names in the database have none.
        location = self.key_prefix
        key_prefix = location + prefix
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


class _Window:
    """Requests in flight, at most `most`: additive increase, multiplicative decrease (TCP's
    congestion control): a request botocore had to retry (throttling, a 5xx) halves how many go
    at once, each answered at the first try adds one back. botocore's retries back off with
    jitter between attempts (AWS_S3_CLIENT_CONFIG); this thins out the requests themselves."""

    def __init__(self, most: int):
        self.most = self.limit = most
        self.busy = 0
        self.stopped = ""  # set once the storage has failed a request of this call: send no more
        self._changed = threading.Condition()

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

    def shrink(self):
        with self._changed:
            self.limit = max(1, self.limit // 2)

    def grow(self):
        with self._changed:
            self.limit = min(self.most, self.limit + 1)
            self._changed.notify_all()


@dataclass
class _KeyVersions:
    key: str
    size: int
    modified: datetime
