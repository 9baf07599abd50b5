"""Can the purge reach its storage? One listing request and one versioning request, read-only.

What a person needs before the first hourly run fails: whether the bucket exists, whether the
credentials are accepted, whether the endpoint answers at all, and (for information) whether the
bucket keeps old versions. Each request is bounded by the S3 client's own timeouts and attempts
(AWS_S3_CONNECT_TIMEOUT, AWS_S3_READ_TIMEOUT, AWS_S3_MAX_ATTEMPTS), so a dead endpoint costs at
most MAX_ATTEMPTS x (CONNECT + READ) seconds.
"""

from dataclasses import dataclass

from .s3 import (
    MISSING,
    REFUSED,
    STORAGE_KINDS,
    UNREACHABLE,
    WRONG_REGION,
    classify,
    explain,
    is_s3,
)

# What went wrong, in the words the system check uses: s3.classify's, and FAILED for the rest.
FAILED = "failed"
__all__ = ["FAILED", "MISSING", "REFUSED", "UNREACHABLE", "WRONG_REGION", "probe_s3"]


@dataclass(frozen=True)
class StorageProbe:
    bucket: str
    endpoint: str  # the endpoint URL the client uses (AWS's regional one when none is set)
    region: str
    problem: str = ""  # "" when the bucket answered; else MISSING, REFUSED, ...
    reason: str = ""  # the error code and message, e.g. "NoSuchBucket: The specified bucket ..."
    # The bucket's versioning status: "Enabled", "Suspended", "" when never enabled, None when
    # it could not be read (versioning_reason says why).
    versioning: str | None = None
    versioning_reason: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem


def probe_s3(storage) -> StorageProbe | None:
    """The S3 bucket behind `storage`, probed; None for storage that is not S3 (local files)."""
    if not is_s3(storage):
        return None
    found = {
        "bucket": storage.bucket_name,
        "endpoint": _endpoint_of(storage),
        "region": getattr(storage, "region_name", None) or "",
    }
    try:
        client = storage.connection.meta.client
        client.list_objects_v2(Bucket=storage.bucket_name, MaxKeys=1)
    except Exception as exc:  # noqa: BLE001 - every failure is a finding, not a crash
        problem, reason = _classify(exc, found["endpoint"])
        return StorageProbe(**found, problem=problem, reason=reason)
    try:
        status = client.get_bucket_versioning(Bucket=storage.bucket_name).get("Status", "")
    except Exception as exc:  # noqa: BLE001 - informational only: say why it is unknown
        return StorageProbe(
            **found, versioning=None, versioning_reason=explain(exc, found["endpoint"])
        )
    return StorageProbe(**found, versioning=status)


def _endpoint_of(storage) -> str:
    endpoint = getattr(storage, "endpoint_url", None)
    if endpoint:
        return endpoint
    region = getattr(storage, "region_name", None)
    return f"https://s3.{region}.amazonaws.com" if region else "https://s3.amazonaws.com"


def _classify(exc: BaseException, endpoint: str) -> tuple[str, str]:
    kind = classify(exc)
    return (kind if kind in STORAGE_KINDS else FAILED), explain(exc, endpoint)
