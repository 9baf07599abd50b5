"""Which storage a storage object is: what names its files, not how it is reached.

S3: the bucket and the key prefix (`location`), not the endpoint URL (the same bucket can be
reached through another endpoint, a proxy, a VPC endpoint). Local files: the MEDIA_ROOT directory,
resolved (symlinks followed), so two spellings of one directory are one storage.
"""

import os
from dataclasses import dataclass

from django.core.files.storage import FileSystemStorage

from .outcome import UnsupportedStorage
from .s3 import is_s3

S3 = "s3"
LOCAL = "local"


@dataclass(frozen=True)
class StorageIdentity:
    kind: str
    bucket: str = ""
    location: str = ""

    def describe(self) -> str:
        """For operators: backend, bucket, prefix or directory; never a file's name."""
        if self.kind == S3:
            prefix = f" (key prefix {self.location!r})" if self.location else ""
            return f"S3 bucket {self.bucket!r}{prefix}"
        return f"local files under {self.location}"


def identify(storage) -> StorageIdentity:
    if is_s3(storage):
        return StorageIdentity(S3, storage.bucket_name or "", (storage.location or "").strip("/"))
    if isinstance(storage, FileSystemStorage):
        return StorageIdentity(LOCAL, "", os.path.realpath(storage.location))
    raise UnsupportedStorage(unsupported(storage))


def unsupported(storage) -> str:
    kind = f"{type(storage).__module__}.{type(storage).__qualname__}"
    return f"{kind} is not supported: only S3 and local file storage are"
