"""Create the configured S3 bucket, private, once (the runbook's step 2 without the AWS CLI).
Idempotent: a bucket these credentials can already use is left as it is."""

from botocore.exceptions import ClientError

from .probe import MISSING, probe_s3

# Every public-access switch on: neither an ACL nor a bucket policy can make an object public.
ALL_BLOCKED = dict.fromkeys(
    ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
)


class BucketNotCreated(Exception):
    """Why the bucket could not be created (one line, for an operator)."""


def create_bucket(storage) -> str:
    """Create the bucket behind `storage`; returns what was done, in one line."""
    probe = probe_s3(storage)
    if probe is None:
        raise BucketNotCreated(
            "the default storage is local files (AWS_STORAGE_BUCKET_NAME is not set): "
            "there is no bucket to create"
        )
    where = f"bucket '{probe.bucket}' at {probe.endpoint}"
    if probe.ok:
        return f"{where} already exists and these credentials can use it: nothing to do"
    if probe.problem != MISSING:
        raise BucketNotCreated(f"cannot create {where}: {probe.problem}: {probe.reason}")
    client = storage.connection.meta.client
    request = {"Bucket": probe.bucket, "ACL": "private"}
    if probe.region and probe.region != "us-east-1":  # us-east-1 takes no location constraint
        request["CreateBucketConfiguration"] = {"LocationConstraint": probe.region}
    try:
        client.create_bucket(**request)
    except ClientError as exc:
        if not _reason(exc).startswith("BucketAlreadyOwnedByYou"):  # another's name, or refused
            raise BucketNotCreated(f"cannot create {where}: {_reason(exc)}") from None
    try:
        client.put_public_access_block(
            Bucket=probe.bucket, PublicAccessBlockConfiguration=ALL_BLOCKED
        )
    except ClientError as exc:  # a server without this API: the bucket stays private by its ACL
        return f"created {where}, private (ACL); public access block not set: {_reason(exc)}"
    return f"created {where}, private (ACL), public access blocked"


def _reason(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    return f"{error.get('Code', '')}: {error.get('Message', '')}".strip(": ")
