"""S3 over HTTP: deletes go out in bulk, per-key refusals and whole outages lose no file."""

import json
import threading
import uuid
from collections import Counter
from datetime import timedelta
from io import StringIO

import pytest
from botocore.config import Config
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from cleanup import storage
from cleanup.models import PendingFileDeletion, PurgeRun
from cleanup.services import purge_expired_jobs
from jobs.models import UPLOAD_PREFIX, Job, JobFile
from tests.helpers import (
    NO_ROWS,
    bind_test_storage,
    expired_job,
    file_names,
    job_ttl,
    live_job,
    rows_of,
)
from tests.s3proxy import ERROR, FORWARD, HANG, RESET
from tests.s3server import put_objects

pytestmark = pytest.mark.django_db


class S3Requests:
    """Counts the HTTP requests the storage's boto3 client sends, per operation (retries too)."""

    def __init__(self):
        self.client = storage.get_storage().connection.meta.client
        self.sent = Counter()
        self.client.meta.events.register("before-send.s3", self._count)

    def _count(self, event_name, **kwargs):
        self.sent[event_name.rsplit(".", 1)[-1]] += 1  # before-send.s3.<Operation>

    def close(self):
        self.client.meta.events.unregister("before-send.s3", self._count)


@pytest.fixture
def s3_requests(s3_bucket):
    counter = S3Requests()
    yield counter
    counter.close()


def seed_expired_jobs(bucket, jobs: int, files_per_job: int = 4) -> list[str]:
    """Expired jobs whose files exist in the bucket, without a Django save per object."""
    created = timezone.now() - job_ttl() - timedelta(hours=1)
    batch = Job.objects.bulk_create([Job(created_at=created) for _ in range(jobs)])
    rows = [
        JobFile(
            job=job,
            kind=JobFile.Kind.ORIGINAL if i == 0 else JobFile.Kind.AI_GENERATED,
            file=f"{UPLOAD_PREFIX}/{job.pk}/file{i}-{uuid.uuid4().hex}.png",
            size=8,
        )
        for job in batch
        for i in range(files_per_job)
    ]
    JobFile.objects.bulk_create(rows, batch_size=2000)
    names = [row.file.name for row in rows]
    put_objects(bucket.client, bucket.name, names)
    bind_test_storage()  # bulk_create saves no file through the ORM, so nothing bound it
    return names


@pytest.mark.slow
def test_a_2001_file_purge_sends_one_delete_request_per_1000_keys(s3_bucket, s3_requests):
    names = seed_expired_jobs(s3_bucket, jobs=667, files_per_job=3)
    assert len(s3_bucket.keys()) == 2_001

    result = purge_expired_jobs()

    assert result.jobs_deleted == 667
    assert result.files_deleted == 2_001 and result.files_pending == 0
    assert s3_requests.sent["DeleteObjects"] == 3  # 1,000 + 1,000 + 1 keys
    assert s3_requests.sent["DeleteObject"] == 0
    assert s3_bucket.keys().isdisjoint(names) and s3_bucket.keys() == set()
    assert not PendingFileDeletion.objects.exists()


def test_a_key_refused_in_the_errors_list_stays_pending_and_nothing_else_does(s3_bucket):
    jobs = [expired_job() for _ in range(3)]
    names = [name for job in jobs for name in file_names(job)]
    refused = names[5]
    s3_bucket.deny_deletes(refused)
    before = timezone.now()

    result = purge_expired_jobs()

    assert all(rows_of(job.pk) == NO_ROWS for job in jobs)
    assert s3_bucket.keys() == {refused}
    assert result.status == PurgeRun.Status.FILES_PENDING
    assert result.files_deleted == 11 and result.files_pending == 1
    assert "AccessDenied" in result.error
    pending = PendingFileDeletion.objects.get()
    assert pending.name == refused
    assert pending.attempts == 1
    assert "AccessDenied" in pending.last_error
    assert pending.next_attempt_at > before  # backed off: the next run does not spend a request

    # One bad key stalls nothing: a later purge deletes another job's files and leaves it be.
    other = expired_job()
    later = purge_expired_jobs()
    assert later.files_deleted == 4 and later.files_pending == 0
    assert s3_bucket.keys() == {refused}
    assert PendingFileDeletion.objects.get().attempts == 1

    # Allowed again and its back-off over: the next run deletes it.
    s3_bucket.client.delete_bucket_policy(Bucket=s3_bucket.name)
    PendingFileDeletion.objects.update(next_attempt_at=timezone.now())
    purge_expired_jobs()
    assert s3_bucket.keys() == set()
    assert not PendingFileDeletion.objects.exists()
    assert rows_of(other.pk) == NO_ROWS


@pytest.mark.parametrize("outage", [RESET, ERROR])
def test_an_outage_mid_purge_purges_rows_keeps_files_pending_and_the_next_run_finishes(
    s3_bucket, s3_proxy, outage
):
    jobs = [expired_job(by=timedelta(minutes=10 - i)) for i in range(5)]  # purged in this order
    names = [name for job in jobs for name in file_names(job)]
    keep = live_job()
    kept = file_names(keep)
    client = storage.get_storage().connection.meta.client

    # The endpoint dies right after the first batch's files are deleted.
    def go_down(**kwargs):
        s3_proxy.set_mode(outage)

    client.meta.events.register("after-call.s3.DeleteObjects", go_down)
    out = StringIO()
    with pytest.raises(CommandError) as failed:
        call_command("purge_expired_jobs", "--batch-size", "1", "--json", stdout=out)
    client.meta.events.unregister("after-call.s3.DeleteObjects", go_down)

    assert all(rows_of(job.pk) == NO_ROWS for job in jobs)  # the database did not wait
    # The first batch's files went; batches whose storage steps were already under way beside
    # it may have gone too (whole batches: 4 files each); every other name is left pending.
    summary = json.loads(out.getvalue())
    deleted = summary["files_deleted"]
    assert deleted % 4 == 0 and 4 <= deleted <= 12, deleted
    pending = set(PendingFileDeletion.objects.values_list("name", flat=True))
    assert len(pending) == 20 - deleted and pending < set(names)
    assert f"{20 - deleted} file(s) left pending" in str(failed.value)
    # A reset shows up as either, depending on whether it hit the connect or the request.
    reasons = {ERROR: ["ServiceUnavailable"], RESET: ["EndpointConnection", "ConnectionClosed"]}[
        outage
    ]
    reason = next((r for r in reasons if r in str(failed.value)), f"one of {reasons}")
    assert reason in str(failed.value)
    assert summary["status"] == "files_pending" and summary["files_pending"] == 20 - deleted
    run = PurgeRun.objects.get(pk=summary["run_id"])
    assert run.files_pending == 20 - deleted and reason in run.error
    # Pending: every purged name still in the bucket, and any whose request the server carried
    # out while the answer was cut (the next run finds it gone); the live job's files all stay.
    assert set(kept) <= s3_bucket.keys() <= pending | set(kept)

    s3_proxy.set_mode(FORWARD)
    call_command("purge_expired_jobs", "--json", stdout=(out := StringIO()))

    assert json.loads(out.getvalue())["files_deleted"] == 20 - deleted
    assert not PendingFileDeletion.objects.exists()
    assert s3_bucket.keys() == set(kept)  # zero objects of deleted jobs, the live job's intact


def test_an_outage_costs_a_run_one_failed_request_not_one_per_batch(s3_bucket, s3_proxy, settings):
    for i in range(4):
        expired_job(by=timedelta(minutes=i + 1))
    s3_proxy.set_mode(ERROR)
    counter = S3Requests()

    result = purge_expired_jobs(batch_size=1)

    counter.close()
    assert result.jobs_deleted == 4 and result.files_pending == 16
    # Retries of that one request are bounded by AWS_S3_MAX_ATTEMPTS; no later batch tries.
    # (The run's first request is now its one read of the bucket's versioning state.)
    assert sum(counter.sent.values()) == settings.AWS_S3_CLIENT_CONFIG.retries["total_max_attempts"]
    assert PendingFileDeletion.objects.count() == 16


def test_the_storage_client_uses_the_bounded_timeouts_from_settings(s3_bucket, settings):
    # AWS_S3_CONNECT_TIMEOUT, AWS_S3_READ_TIMEOUT and AWS_S3_MAX_ATTEMPTS (environment) feed
    # django-storages' own AWS_S3_CLIENT_CONFIG; their defaults are 5 s, 30 s and 3 attempts.
    config = storage.get_storage().connection.meta.client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (5, 30)
    assert config.retries["total_max_attempts"] == 3
    assert (
        config.retries["total_max_attempts"]
        == (settings.AWS_S3_CLIENT_CONFIG.retries["total_max_attempts"])
    )


@pytest.mark.django_db(transaction=True)  # the purge runs in a thread: its own connection
@pytest.mark.slow
def test_an_endpoint_that_never_answers_does_not_hang_the_purge(s3_bucket, s3_proxy, settings):
    jobs = [expired_job(by=timedelta(minutes=i + 1)) for i in range(2)]
    names = [name for job in jobs for name in file_names(job)]
    settings.AWS_S3_CLIENT_CONFIG = Config(
        connect_timeout=1, read_timeout=1, retries={"mode": "standard", "total_max_attempts": 2}
    )
    settings.STORAGES = {**settings.STORAGES}  # a fresh storage object reads the new config
    s3_proxy.set_mode(HANG)
    results = []

    def purge():
        try:
            results.append(purge_expired_jobs(batch_size=1))
        finally:
            connection.close()

    run = threading.Thread(target=purge)

    run.start()
    run.join(60)  # seconds of timeouts, not botocore's default 60 s x 5 per request

    assert not run.is_alive(), "the purge hung on an endpoint that never answers"
    assert results[0].jobs_deleted == 2 and results[0].files_pending == 8
    assert "ReadTimeout" in results[0].error
    assert set(PendingFileDeletion.objects.values_list("name", flat=True)) == set(names)
