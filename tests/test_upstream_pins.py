"""Library internals this project calls, pinned to the source they were read from.

cleanup/storage/s3.py turns names into S3 keys with django-storages' private
`S3Storage._normalize_name` and `clean_name`. An upgrade can change them without a test of ours
noticing; these fail instead, and say what to re-read. (The purge's cascade uses only public
Django API since its delete plan, cleanup/deletion.py: nothing of Django's is pinned.)
"""

import hashlib
import inspect

import django
import pytest
import storages
from storages import utils as storages_utils
from storages.backends.s3 import S3Storage

PINS = [
    # (what, its source's sha256, what of ours to re-check when it changes)
    (
        S3Storage._normalize_name,
        "db01f4b09871ca366097fe87159d1c8d8ede1ba24badc463ec93ac68a8da1ba4",
        "cleanup/storage/s3.py and names.py map names to S3 keys with it: check names still map "
        "to the same keys (the location prefix, the path checks)",
    ),
    (
        storages_utils.clean_name,
        "9aadae1384acaa3bda8a51284a529e0970d14e7a37ef170d75df9c2465eaa5a4",
        "cleanup/storage/s3.py and names.py map names to S3 keys with it: check names still map "
        "to the same keys (backslashes, '.', '..', trailing slashes)",
    ),
]


@pytest.mark.parametrize(
    "original, digest, recheck", PINS, ids=lambda p: getattr(p, "__qualname__", "")
)
def test_the_copied_or_private_upstream_code_is_the_one_we_read(original, digest, recheck):
    source = inspect.getsource(original)
    found = hashlib.sha256(source.encode()).hexdigest()
    assert found == digest, (
        f"{original.__module__}.{original.__qualname__} changed (Django {django.__version__}, "
        f"django-storages {storages.__version__}); {recheck}. Then pin the new source: {found}"
    )
