"""Can the purge reach its bucket? One listing and one versioning request, read-only, bounded by
the client's timeouts and attempts. `create_bucket` makes a missing one, private."""

from dataclasses import dataclass

from botocore.exceptions import ClientError

from .s3 import MISSING, REFUSED, STORAGE_KINDS, UNREACHABLE, WRONG_REGION, classify, explain, is_s3

__all__ = ["MISSING", "REFUSED", "UNREACHABLE", "WRONG_REGION", "probe_s3"]

# Every public-access switch on: neither an ACL nor a bucket policy can make an object public.
_SWITCHES = "BlockPublicAcls IgnorePublicAcls BlockPublicPolicy RestrictPublicBuckets"
ALL_BLOCKED = dict.fromkeys(_SWITCHES.split(), True)


@dataclass(frozen=True)
class StorageProbe:
    bucket: str
    endpoint: str  # the endpoint URL the client uses (AWS's regional one when none is set)
    region: str
    problem: str = ""  # "" when the bucket answered; else MISSING, REFUSED, ...
    reason: str = ""  # the error code and message, e.g. "NoSuchBucket: The specified bucket ..."
    versioning: str | None = None  # "Enabled", "Suspended", "" (never enabled), None (unread)
    versioning_reason: str = ""  # why it is unread

    @property
    def ok(self) -> bool:
        return not self.problem


def probe_s3(storage) -> StorageProbe | None:
    """The S3 bucket behind `storage`, probed; None for storage that is not S3 (local files)."""
    if not is_s3(storage):
        return None
    region = storage.region_name or ""
    endpoint = storage.endpoint_url or f"https://s3.{region}{'.' if region else ''}amazonaws.com"
    found = {"bucket": storage.bucket_name, "endpoint": endpoint, "region": region}
    try:
        client = storage.connection.meta.client
        client.list_objects_v2(Bucket=storage.bucket_name, MaxKeys=1)
    except Exception as exc:  # noqa: BLE001 - every failure is a finding, not a crash
        problem = classify(exc) if classify(exc) in STORAGE_KINDS else "failed"
        return StorageProbe(**found, problem=problem, reason=explain(exc, endpoint))
    try:
        status = client.get_bucket_versioning(Bucket=storage.bucket_name).get("Status", "")
    except Exception as exc:  # noqa: BLE001 - informational only: say why it is unknown
        return StorageProbe(**found, versioning_reason=explain(exc, endpoint))
    return StorageProbe(**found, versioning=status)


class BucketNotCreated(Exception):
    """Why the bucket could not be created (one line, for an operator)."""


def create_bucket(storage) -> str:
    """Create the bucket behind `storage` unless these credentials can use it; what was done."""
    probe = probe_s3(storage)
    if probe is None:
        raise BucketNotCreated("local files (AWS_STORAGE_BUCKET_NAME not set): no bucket to create")
    where = f"bucket '{probe.bucket}' at {probe.endpoint}"
    if probe.ok:
        return f"{where} already exists and these credentials can use it: nothing to do"
    if probe.problem != MISSING:
        raise BucketNotCreated(f"cannot create {where}: {probe.problem}: {probe.reason}")
    s3 = storage.connection.meta.client
    request = {"Bucket": probe.bucket, "ACL": "private"}
    if probe.region and probe.region != "us-east-1":  # us-east-1 takes no location constraint
        request["CreateBucketConfiguration"] = {"LocationConstraint": probe.region}
    try:
        s3.create_bucket(**request)
    except ClientError as exc:
        why = explain(exc, probe.endpoint)
        if not why.startswith("BucketAlreadyOwnedByYou"):  # another's name, or refused
            raise BucketNotCreated(f"cannot create {where}: {why}") from None
    try:
        s3.put_public_access_block(Bucket=probe.bucket, PublicAccessBlockConfiguration=ALL_BLOCKED)
    except ClientError as exc:  # a server without this API: the bucket stays private by its ACL
        why = explain(exc, probe.endpoint)
        return f"created {where}, private (ACL); public access block not set: {why}"
    return f"created {where}, private (ACL), public access blocked"
