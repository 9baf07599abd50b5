"""Framework internals this project copies or calls, pinned to the source they were read from.

cleanup/deletion.py copies `Collector.delete` (one DELETE per model instead of chunks of 100,
https://code.djangoproject.com/ticket/9519) and `Collector.related_objects`, and calls the
private `QuerySet._raw_delete`; cleanup/storage/s3.py turns names into S3 keys with django-storages'
private `S3Storage._normalize_name` and `clean_name`. An upgrade can change any of them without
a test of ours noticing; these fail instead, and say what to re-read.
"""

import hashlib
import inspect

import django
import pytest
import storages
from django.db.models.deletion import Collector, get_candidate_relations_to_delete
from django.db.models.query import QuerySet
from django.dispatch import Signal
from storages import utils as storages_utils
from storages.backends.s3 import S3Storage

PINS = [
    # (what, its source's sha256, what of ours to re-check when it changes)
    (
        Collector.delete,
        "6fc1aeb89d3dc298935b980f690feba4e8fcb5f12bdd67cf28ae0834ee029f59",
        "OneStatementCollector.delete in cleanup/deletion.py is a copy of it: carry over the "
        "upstream change (signal order, fast deletes, field updates, the pk reset)",
    ),
    (
        Collector.related_objects,
        "58f4920e45abc302dd7973d3eb1e0ca6938190ca1741d3d04c0cd9a7a83b5188",
        "OneStatementCollector.related_objects in cleanup/deletion.py overrides it for one "
        "foreign key: check it still returns the same rows",
    ),
    (
        Collector.can_fast_delete,
        "b041c3603b78bc9a84485c613c7968c2953031bb4311d812c47f820f9e8f91d6",
        "OneStatementCollector.can_fast_delete in cleanup/deletion.py relies on how it tells "
        "querysets from instances: file-bearing rows must still never be fast-deleted",
    ),
    (
        QuerySet._raw_delete,
        "e878941754cb71aba523df2bc0003a55ce9e282f4728679e623326153056e709",
        "cleanup/deletion.py calls this private method for each model's one DELETE: check its "
        "signature and that it still returns the row count",
    ),
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
    (
        Collector._has_signal_listeners,
        "248c623259b2814308eaa1af34acdbf8ece0c6808145a64d5a9f16e431b66c76",
        "OneStatementCollector._has_signal_listeners in cleanup/deletion.py overrides it to "
        "ignore the purge's own file receivers: check it is still what can_fast_delete asks",
    ),
    (
        Signal._live_receivers,
        "0a7af5d851f7fd8789bc95621f84ff0289b143671344692da26c68903a79caff",
        "cleanup/deletion.py reads the live receivers of pre/post_delete with it (a private "
        "method): check it still returns (sync receivers, async receivers)",
    ),
    (
        get_candidate_relations_to_delete,
        "0f12418a3f285e7cc5192ee7556c1ce7ebc8555ef6e355eb2b3fe29d45c2a912",
        "OneStatementCollector._cascades_unheard / _fast_delete walk the relations a delete "
        "cascades along with it: check they are still the relations Django collects",
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
