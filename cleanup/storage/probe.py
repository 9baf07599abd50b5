"""Can the purge reach its bucket? One listing and one versioning request, read-only, each bounded
by the client's timeouts and attempts (AWS_S3_CONNECT_TIMEOUT, _READ_TIMEOUT, _MAX_ATTEMPTS)."""

from dataclasses import dataclass

from .s3 import MISSING, REFUSED, STORAGE_KINDS, UNREACHABLE, WRONG_REGION, classify, explain, is_s3

FAILED = "failed"  # what s3.classify does not name as the storage's own trouble
__all__ = ["FAILED", "MISSING", "REFUSED", "UNREACHABLE", "WRONG_REGION", "probe_s3"]


@dataclass(frozen=True)
class StorageProbe:
    bucket: str
    endpoint: str  # the endpoint URL the client uses (AWS's regional one when none is set)
    region: str
    problem: str = ""  # "" when the bucket answered; else MISSING, REFUSED, ...
    reason: str = ""  # the error code and message, e.g. "NoSuchBucket: The specified bucket ..."
    # "Enabled", "Suspended", "" when never enabled, None when unread (versioning_reason says why).
    versioning: str | None = None
    versioning_reason: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem


def probe_s3(storage) -> StorageProbe | None:
    """The S3 bucket behind `storage`, probed; None for storage that is not S3 (local files)."""
    if not is_s3(storage):
        return None
    region = getattr(storage, "region_name", None) or ""
    endpoint = getattr(storage, "endpoint_url", None) or (
        f"https://s3.{region}.amazonaws.com" if region else "https://s3.amazonaws.com"
    )
    found = {"bucket": storage.bucket_name, "endpoint": endpoint, "region": region}
    try:
        client = storage.connection.meta.client
        client.list_objects_v2(Bucket=storage.bucket_name, MaxKeys=1)
    except Exception as exc:  # noqa: BLE001 - every failure is a finding, not a crash
        problem = classify(exc) if classify(exc) in STORAGE_KINDS else FAILED
        return StorageProbe(**found, problem=problem, reason=explain(exc, endpoint))
    try:
        status = client.get_bucket_versioning(Bucket=storage.bucket_name).get("Status", "")
    except Exception as exc:  # noqa: BLE001 - informational only: say why it is unknown
        return StorageProbe(**found, versioning_reason=explain(exc, endpoint))
    return StorageProbe(**found, versioning=status)
