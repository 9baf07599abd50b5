"""Gone means gone on versioned buckets: a purged key loses every version and delete marker.

All against moto's S3 server over HTTP: versioning Enabled, Suspended and off, and a bucket with
Object Lock for versions that must not (yet) go.
"""

import json
import uuid
from collections import Counter
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from cleanup import storage
from cleanup.models import PendingFileDeletion, PurgeRun
from cleanup.services import purge_expired_jobs, purge_status, reconcile_storage
from cleanup.services.files import open_storage
from jobs.models import UPLOAD_PREFIX, JobFile
from tests.conftest import Bucket
from tests.helpers import NO_ROWS, expired_job, file_names, live_job, rows_of

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

GRACE = timedelta(minutes=60)


def versions_of(bucket, key) -> list[tuple[str, bool]]:
    """Every version and delete marker S3 still holds for exactly `key`: (version id, marker)."""
    found = []
    pages = bucket.client.get_paginator("list_object_versions").paginate(
        Bucket=bucket.name, Prefix=key
    )
    for page in pages:
        found += [(v["VersionId"], False) for v in page.get("Versions", []) if v["Key"] == key]
        found += [(m["VersionId"], True) for m in page.get("DeleteMarkers", []) if m["Key"] == key]
    return found


def everything_in(bucket) -> set[str]:
    """Every key with any version or delete marker left."""
    keys = set()
    for page in bucket.client.get_paginator("list_object_versions").paginate(Bucket=bucket.name):
        keys.update(v["Key"] for v in page.get("Versions", []))
        keys.update(m["Key"] for m in page.get("DeleteMarkers", []))
    return keys


def rewrite(bucket, key, times=2):
    """New versions of `key`, as a re-upload or an edit of the same object would leave."""
    for i in range(times):
        bucket.client.put_object(Bucket=bucket.name, Key=key, Body=f"v{i}".encode())


def set_versioning(bucket, status):
    bucket.client.put_bucket_versioning(
        Bucket=bucket.name, VersioningConfiguration={"Status": status}
    )


class RequestCounter:
    """The calls the storage's boto3 client makes, per operation.

    Calls, not HTTP attempts: moto's threaded server can answer a 500 while another thread
    changes the bucket, and botocore's retry of it is a second attempt of the same call.
    """

    def __init__(self):
        self.client = storage.get_storage().connection.meta.client
        self.sent = Counter()
        self.client.meta.events.register("before-call.s3", self._count)

    def _count(self, event_name, **kwargs):
        self.sent[event_name.rsplit(".", 1)[-1]] += 1

    def close(self):
        self.client.meta.events.unregister("before-call.s3", self._count)


@pytest.fixture
def requests_sent(s3_bucket):
    counter = RequestCounter()
    yield counter
    counter.close()


@pytest.fixture(params=["Enabled", "Suspended"])
def versioned_bucket(request, s3_bucket):
    """The test's bucket with versioning on (or on, then suspended: old versions stay)."""
    set_versioning(s3_bucket, "Enabled")
    s3_bucket.suspend_after_seeding = request.param == "Suspended"
    # moto 5.2 answers 500 to deleting any version of a key whose latest is a delete marker once
    # versioning is suspended (real S3 does not): delete markers are tested with it Enabled.
    s3_bucket.markers = request.param == "Enabled"
    return s3_bucket


@pytest.fixture
def locked_bucket(s3_bucket, settings):
    """A bucket created with Object Lock (so versioned), made the default storage."""
    name = f"fmr-lock-{uuid.uuid4().hex[:12]}"
    s3_bucket.client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    default = settings.STORAGES["default"]
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {**default, "OPTIONS": {**default["OPTIONS"], "bucket_name": name}},
    }
    return Bucket(s3_bucket.client, name)


def test_a_purge_on_a_versioned_bucket_leaves_no_version_and_no_delete_marker(versioned_bucket):
    bucket = versioned_bucket
    gone = expired_job()
    gone_names = file_names(gone)
    kept = live_job()
    kept_names = file_names(kept)
    for name in gone_names + kept_names:
        rewrite(bucket, name)
    if bucket.markers:
        # One purged key already carries a delete marker (deleted once without a version id).
        bucket.client.delete_object(Bucket=bucket.name, Key=gone_names[0])
    # A live key that merely starts with a purged key's name: a prefix listing returns it too.
    lookalike = gone_names[1] + ".edited.png"
    JobFile.objects.create(job=kept, kind=JobFile.Kind.AI_GENERATED, file=lookalike)
    rewrite(bucket, lookalike)
    if bucket.suspend_after_seeding:
        set_versioning(bucket, "Suspended")
        rewrite(bucket, gone_names[2], times=1)  # a "null" version on top of the old ones
    kept_versions = {name: versions_of(bucket, name) for name in kept_names + [lookalike]}

    result = purge_expired_jobs()

    assert result.ok and result.files_deleted == 4 and result.files_pending == 0
    assert rows_of(gone.pk) == NO_ROWS
    assert {name: versions_of(bucket, name) for name in gone_names} == dict.fromkeys(gone_names, [])
    # Live keys keep every version they had.
    assert {name: versions_of(bucket, name) for name in kept_versions} == kept_versions
    assert not PendingFileDeletion.objects.exists()


def test_the_versioning_state_is_read_once_per_run_not_per_batch(versioned_bucket, requests_sent):
    jobs = [expired_job(by=timedelta(minutes=i + 1)) for i in range(3)]
    names = [name for job in jobs for name in file_names(job)]
    for name in names:
        rewrite(versioned_bucket, name)

    result = purge_expired_jobs(batch_size=1)

    assert result.batches == 3 and result.files_deleted == 12
    assert requests_sent.sent["GetBucketVersioning"] == 1
    # One listing per job directory, one DeleteObjects per batch: nothing per key.
    assert requests_sent.sent["ListObjectVersions"] == 3
    assert requests_sent.sent["DeleteObjects"] == 3
    assert all(versions_of(versioned_bucket, name) == [] for name in names)


def test_on_an_unversioned_bucket_a_batch_costs_no_extra_request(s3_bucket, requests_sent):
    jobs = [expired_job(by=timedelta(minutes=i + 1)) for i in range(3)]
    names = [name for job in jobs for name in file_names(job)]

    result = purge_expired_jobs(batch_size=1)

    assert result.ok and result.files_deleted == 12
    assert requests_sent.sent["ListObjectVersions"] == 0
    assert requests_sent.sent["GetBucketVersioning"] <= 1  # once per run, at most
    assert requests_sent.sent["DeleteObjects"] == 3
    assert everything_in(s3_bucket).isdisjoint(names)


def test_the_storage_layer_deletes_every_version_of_exactly_the_names_given(versioned_bucket):
    bucket = versioned_bucket
    names = [f"{UPLOAD_PREFIX}/{uuid.uuid4()}/photo-{i}.png" for i in range(3)]
    neighbours = [names[0] + "x", names[0][:-4]]  # longer and shorter than a purged key
    for name in names + neighbours:
        rewrite(bucket, name, times=3)
    if bucket.suspend_after_seeding:
        set_versioning(bucket, "Suspended")
    before = {name: versions_of(bucket, name) for name in neighbours}

    outcome = storage.delete_names(
        names + [f"{UPLOAD_PREFIX}/never/was.png"], session=open_storage()
    )

    assert not outcome.failed and not outcome.unavailable
    assert set(outcome.deleted) == set(names) | {f"{UPLOAD_PREFIX}/never/was.png"}
    assert all(versions_of(bucket, name) == [] for name in names)
    assert {name: versions_of(bucket, name) for name in neighbours} == before


def hold(bucket, key, *, legal_hold=False, retain_for=None):
    """Protect the current version of `key` with a legal hold or a retention period."""
    version = bucket.client.head_object(Bucket=bucket.name, Key=key)["VersionId"]
    if legal_hold:
        bucket.client.put_object_legal_hold(
            Bucket=bucket.name, Key=key, VersionId=version, LegalHold={"Status": "ON"}
        )
    if retain_for:
        bucket.client.put_object_retention(
            Bucket=bucket.name,
            Key=key,
            VersionId=version,
            Retention={"Mode": "COMPLIANCE", "RetainUntilDate": timezone.now() + retain_for},
        )
    return version


@pytest.mark.parametrize("protection", ["legal hold", "retention"])
def test_a_version_under_object_lock_stays_pending_with_the_reason_shown(
    locked_bucket, protection, staff_client
):
    bucket = locked_bucket
    gone = expired_job()
    names = file_names(gone)
    for name in names:
        rewrite(bucket, name)
    held_name = names[0]
    if protection == "legal hold":
        hold(bucket, held_name, legal_hold=True)
    else:
        hold(bucket, held_name, retain_for=timedelta(days=1))
    rewrite(bucket, held_name, times=1)  # the held version is no longer even the current one

    result = purge_expired_jobs()

    assert rows_of(gone.pk) == NO_ROWS
    assert result.files_deleted == 3 and result.files_pending == 1
    assert all(versions_of(bucket, name) == [] for name in names[1:])
    assert len(versions_of(bucket, held_name)) == 1  # only the held version is left
    pending = PendingFileDeletion.objects.get()
    assert pending.name == held_name
    assert "object lock" in pending.last_error.lower()
    # purge_status (text and JSON) and the admin show why it is still there.
    facts = purge_status()
    assert any("object lock" in reason.lower() for reason in facts.pending_reasons)
    out = StringIO()
    call_command("purge_status", stdout=out)
    assert "object lock" in out.getvalue().lower()
    out = StringIO()
    call_command("purge_status", "--json", stdout=out)
    assert any("object lock" in r.lower() for r in json.loads(out.getvalue())["pending_reasons"])
    page = staff_client.get("/admin/cleanup/pendingfiledeletion/").content.decode()
    assert "object lock" in page.lower()

    if protection != "legal hold":
        return  # a compliance retention cannot be lifted early, by anyone
    # Once the hold is lifted, the next run finishes the key.
    for version, _ in versions_of(bucket, held_name):
        bucket.client.put_object_legal_hold(
            Bucket=bucket.name, Key=held_name, VersionId=version, LegalHold={"Status": "OFF"}
        )
    PendingFileDeletion.objects.update(next_attempt_at=timezone.now())
    later = purge_expired_jobs()
    assert later.ok and later.files_deleted == 1
    assert versions_of(bucket, held_name) == []
    assert not PendingFileDeletion.objects.exists()


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


def test_the_reconciler_deletes_every_version_of_an_orphan_and_keeps_live_keys_versions(
    versioned_bucket,
):
    bucket = versioned_bucket
    kept = live_job()
    kept_names = file_names(kept)
    for name in kept_names:
        rewrite(bucket, name)
    orphan = f"{UPLOAD_PREFIX}/{uuid.uuid4()}/original-{uuid.uuid4().hex}.png"
    rewrite(bucket, orphan, times=3)
    # Only noncurrent versions and a delete marker: a plain listing does not show it at all.
    hidden = f"{UPLOAD_PREFIX}/{uuid.uuid4()}/original-{uuid.uuid4().hex}.png"
    rewrite(bucket, hidden, times=2)
    if bucket.markers:
        bucket.client.delete_object(Bucket=bucket.name, Key=hidden)
        assert hidden not in bucket.keys() and versions_of(bucket, hidden)
    if bucket.suspend_after_seeding:
        set_versioning(bucket, "Suspended")
    kept_versions = {name: versions_of(bucket, name) for name in kept_names}

    found = reconcile_storage(now=timezone.now() + GRACE + timedelta(seconds=5), grace=GRACE)
    assert found.orphans == 2 and found.held == 4

    result = reconcile_storage(
        delete=True, now=timezone.now() + GRACE + timedelta(seconds=5), grace=GRACE
    )

    assert result.ok and result.deleted == 2 and result.failed == 0
    assert versions_of(bucket, orphan) == [] and versions_of(bucket, hidden) == []
    assert {name: versions_of(bucket, name) for name in kept_names} == kept_versions


def test_the_reconciler_leaves_an_orphan_with_a_recent_version_alone(s3_bucket):
    set_versioning(s3_bucket, "Enabled")
    orphan = f"{UPLOAD_PREFIX}/{uuid.uuid4()}/original-{uuid.uuid4().hex}.png"
    rewrite(s3_bucket, orphan, times=2)
    s3_bucket.client.delete_object(Bucket=s3_bucket.name, Key=orphan)

    # Its newest version (the delete marker) is younger than the grace period.
    result = reconcile_storage(delete=True, now=timezone.now(), grace=GRACE)

    assert result.young == 1 and result.deleted == 0
    assert len(versions_of(s3_bucket, orphan)) == 3


def test_a_run_record_says_succeeded_only_when_every_version_went(locked_bucket):
    gone = expired_job()
    names = file_names(gone)
    hold(locked_bucket, names[0], legal_hold=True)

    result = purge_expired_jobs()

    assert result.status == PurgeRun.Status.FILES_PENDING
    assert PurgeRun.objects.get(pk=result.run_id).files_pending == 1


def test_a_held_version_becomes_stuck_and_a_person_can_resolve_it(locked_bucket, settings, staff):
    settings.CLEANUP_STUCK_AFTER_ATTEMPTS = 2
    gone = expired_job()
    held_name = file_names(gone)[0]
    hold(locked_bucket, held_name, legal_hold=True)

    assert purge_expired_jobs().status == PurgeRun.Status.FILES_PENDING
    PendingFileDeletion.objects.update(next_attempt_at=timezone.now())
    second = purge_expired_jobs()  # refused twice: stuck

    assert second.status == PurgeRun.Status.SUCCEEDED and second.files_stuck == 1
    facts = purge_status()
    assert facts.stuck_files == 1 and facts.pending_files == 0
    assert any("object lock" in reason.lower() for reason in facts.stuck_reasons)
    assert facts.problems(max_overdue=timedelta(days=1))

    client = Client()
    client.force_login(staff)
    row = PendingFileDeletion.objects.get()
    client.post(
        "/admin/cleanup/pendingfiledeletion/",
        {"action": "mark_resolved", "_selected_action": [row.pk]},
    )
    row.refresh_from_db()
    assert row.resolved_by == staff.username and row.resolved_at is not None
    assert purge_status().stuck_files == 0 and not purge_status().problems(
        max_overdue=timedelta(days=1)
    )
    assert len(versions_of(locked_bucket, held_name)) == 1  # still held; a person's decision
