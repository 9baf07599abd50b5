"""Can the purge reach its storage? One listing request and one versioning request, read-only.

What a person needs before the first hourly run fails: whether the bucket exists, whether the
credentials are accepted, whether the endpoint answers at all, and (for information) whether the
bucket keeps old versions. Each request is bounded by the S3 client's own timeouts and attempts
(AWS_S3_CONNECT_TIMEOUT, AWS_S3_READ_TIMEOUT, AWS_S3_MAX_ATTEMPTS), so a dead endpoint costs at
most MAX_ATTEMPTS x (CONNECT + READ) seconds.
"""

from dataclasses import dataclass

from botocore.exceptions import (
    ClientError,
    ConnectionError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)

from .outcome import describe_error
from .s3 import is_s3

# What went wrong, in the words the system check uses.
MISSING, REFUSED, UNREACHABLE, WRONG_REGION, FAILED = (
    "missing",
    "refused",
    "unreachable",
    "wrong-region",
    "failed",
)

# S3 error codes that mean "these credentials are not accepted or not allowed".
_REFUSED_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "TokenRefreshRequired",
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidSecurity",
}
_WRONG_REGION_CODES = {
    "PermanentRedirect",
    "AuthorizationHeaderMalformed",
    "IllegalLocationConstraintException",
}


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
        problem, reason = _classify(exc)
        return StorageProbe(**found, problem=problem, reason=reason)
    try:
        status = client.get_bucket_versioning(Bucket=storage.bucket_name).get("Status", "")
    except Exception as exc:  # noqa: BLE001 - informational only: say why it is unknown
        return StorageProbe(**found, versioning=None, versioning_reason=_classify(exc)[1])
    return StorageProbe(**found, versioning=status)


def _endpoint_of(storage) -> str:
    endpoint = getattr(storage, "endpoint_url", None)
    if endpoint:
        return endpoint
    region = getattr(storage, "region_name", None)
    return f"https://s3.{region}.amazonaws.com" if region else "https://s3.amazonaws.com"


def _classify(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = str(error.get("Message", "")).strip()
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        reason = f"{code}: {message}" if message else code or f"HTTP {status}"
        if code == "NoSuchBucket" or (status == 404 and code in {"", "404", "NotFound"}):
            return MISSING, reason
        if code in _REFUSED_CODES or status == 403:
            return REFUSED, reason
        if code in _WRONG_REGION_CODES or status == 301:
            return WRONG_REGION, reason
        if status is not None and status >= 500:
            return UNREACHABLE, reason
        return FAILED, reason
    reason = describe_error(exc)
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return REFUSED, reason
    if isinstance(exc, ConnectionError | HTTPClientError):  # refused, reset, timed out, DNS
        return UNREACHABLE, reason
    return FAILED, reason
