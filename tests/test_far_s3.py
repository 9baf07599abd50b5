"""Far S3 (issue 20): the purge keeps its speed when the bucket is a round trip away.

Proved by the timing of requests, not by throughput, so a busy machine cannot make it flaky:
through a proxy that adds a 200 ms round trip (bench/latency_proxy.py, a copy of the shared tool),
- DeleteObjects go several at once: their spans overlap, and 8 of them take well under the sum
  of their times (8 x 200 ms at least);
- the database work of batch N+1 runs while batch N's storage step is still under way, two
  batches' storage steps are in flight at once, and a storage step never touches the database
  (connections are per thread);
- a throttling bucket gets fewer requests at once, never more than attempts x requests.
"""

import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from django.db import connection
from django.db.backends.signals import connection_created

from cleanup.file_models import upload_rule
from cleanup.models import PendingFileDeletion, PurgeRun
from cleanup.services import purge_expired_jobs
from cleanup.storage import open_session, s3
from jobs.models import UPLOAD_PREFIX, Job
from tests.helpers import bulk_expired_jobs, stored
from tests.s3proxy import S3Proxy
from tests.s3server import free_port

PROXY = Path(__file__).resolve().parent.parent / "bench" / "latency_proxy.py"
RTT = 0.2
REQUESTS = 8


@pytest.fixture
def far_bucket(s3_server, s3_bucket, settings, request):
    """The test's bucket behind a 200 ms round trip (or the test's `rtt`, indirect)."""
    rtt = getattr(request, "param", RTT)
    port = free_port()
    target = s3_server.endpoint_url.removeprefix("http://")
    proxy = subprocess.Popen(
        [sys.executable, str(PROXY), "--listen", f"127.0.0.1:{port}", "--target", target]
        + ["--rtt-ms", str(rtt * 1000)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert "latency proxy" in proxy.stdout.readline()  # printed once it listens
        options = settings.STORAGES["default"]["OPTIONS"]
        settings.STORAGES = {
            **settings.STORAGES,
            "default": {
                **settings.STORAGES["default"],
                "OPTIONS": {**options, "endpoint_url": f"http://127.0.0.1:{port}"},
            },
        }
        yield s3_bucket
    finally:
        proxy.terminate()
        proxy.wait(10)


class Spans:
    """When each DeleteObjects started and ended, from botocore's events on the client."""

    def __init__(self, client):
        self.spans, self._open, self._lock = [], {}, threading.Lock()
        events = client.meta.events
        events.register("before-call.s3.DeleteObjects", self.start, unique_id="far-start")
        events.register("after-call.s3.DeleteObjects", self.end, unique_id="far-end")
        events.register("after-call-error.s3.DeleteObjects", self.end, unique_id="far-error")
        self._events = events

    def start(self, **kwargs):
        with self._lock:
            self._open[threading.get_ident()] = time.monotonic()

    def end(self, **kwargs):
        with self._lock:
            self.spans.append((self._open.pop(threading.get_ident()), time.monotonic()))

    def most_at_once(self) -> int:
        return max(sum(s <= start < e for s, e in self.spans) for start, _ in self.spans)

    def close(self):
        for uid in ("far-start", "far-end", "far-error"):
            for event in ("before-call", "after-call", "after-call-error"):
                self._events.unregister(f"{event}.s3.DeleteObjects", unique_id=uid)


def names(count) -> list[str]:
    return [f"{UPLOAD_PREFIX}/{uuid.uuid4()}/photo.png" for _ in range(count)]


@pytest.mark.django_db
def test_eight_delete_objects_through_a_far_bucket_overlap(far_bucket, settings):
    assert settings.CLEANUP_S3_CONCURRENCY == 8
    session = open_session(upload_rule())
    spans = Spans(session.client)
    try:
        session.delete_names(names(1))  # the versioning state, asked once per session
        spans.spans.clear()
        started = time.monotonic()
        outcome = session.delete_names(names(REQUESTS * s3.S3_MAX_KEYS_PER_REQUEST))
        took = time.monotonic() - started
    finally:
        spans.close()

    assert len(outcome.deleted) == REQUESTS * 1000 and not outcome.unavailable
    assert len(spans.spans) == REQUESTS
    assert spans.most_at_once() >= REQUESTS // 2, spans.spans
    # One after another they would take the sum of their times (each a round trip at least, and
    # moto's own work): at once, well under half of it, whatever the machine's load.
    one_by_one = sum(end - start for start, end in spans.spans)
    assert one_by_one > REQUESTS * RTT
    assert took < one_by_one / 2, f"{took:.2f}s for {REQUESTS} requests of {one_by_one:.2f}s"


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
# A 1 s round trip: a batch of 2 jobs' rows take far less even on a loaded CI machine.
@pytest.mark.parametrize("far_bucket", [1.0], indirect=True)
def test_the_next_batch_runs_in_the_database_while_storage_deletes_the_last(
    far_bucket, monkeypatch
):
    jobs = bulk_expired_jobs(6)  # 3 batches of 2 jobs, 8 file names each (rows, no objects)
    gone = [f.file.name for job in jobs for f in job.files.all()]
    storage_steps, statements, threads = [], [], set()

    def timed_delete(self, names, original=s3.S3Session.delete_names):
        started = time.monotonic()
        try:
            return original(self, names)
        finally:
            storage_steps.append((started, time.monotonic()))

    def timed_statement(execute, sql, params, many, context):
        statements.append((time.monotonic(), sql))
        return execute(sql, params, many, context)

    def opened(connection, **kwargs):
        threads.add(threading.current_thread().name)

    monkeypatch.setattr(s3.S3Session, "delete_names", timed_delete)
    connection_created.connect(opened, dispatch_uid="far-s3-threads")
    try:
        with connection.execute_wrapper(timed_statement):
            run = purge_expired_jobs(batch_size=2)
    finally:
        connection_created.disconnect(dispatch_uid="far-s3-threads")

    assert run.status == PurgeRun.Status.SUCCEEDED, run.error
    assert (run.jobs_deleted, run.batches, run.files_deleted, run.files_pending) == (6, 3, 24, 0)
    assert not Job.objects.exists() and not PendingFileDeletion.objects.exists()
    assert stored(gone) == []
    # Each batch's storage step (a round trip at least) overlaps the next batch's rows going.
    job_deletes = [at for at, sql in statements if sql.startswith('DELETE FROM "jobs_job"')]
    assert len(job_deletes) == 3 and len(storage_steps) == 3
    storage_steps.sort()  # recorded as each ends: steps side by side end in any order
    # (It starts once its batch commits, in a thread that may get the CPU a little after this
    # one has sent the next DELETE: what shows the overlap is that it ends after it.)
    for (_, ended), next_delete in zip(storage_steps[:2], job_deletes[1:], strict=True):
        assert next_delete < ended
    # And two batches' storage steps are in flight at once: the second starts before the first
    # ends (each a round trip at least).
    assert storage_steps[1][0] < storage_steps[0][1], storage_steps
    # The storage thread never opened a database connection.
    assert not any(name.startswith("purge-storage") for name in threads), threads


@pytest.mark.django_db
def test_a_throttling_far_bucket_gets_fewer_requests_at_once_and_no_more_in_all(
    s3_server, s3_bucket, settings
):
    attempts = settings.AWS_S3_CLIENT_CONFIG.retries["total_max_attempts"]
    with S3Proxy(s3_server.endpoint_url) as proxy:
        options = {**settings.STORAGES["default"]["OPTIONS"], "endpoint_url": proxy.endpoint_url}
        settings.STORAGES = {
            **settings.STORAGES,
            "default": {**settings.STORAGES["default"], "OPTIONS": options},
        }
        session = open_session(upload_rule())
        session.delete_names(names(1))
        assert session.window.limit == 8
        proxy.throttle_deletes(503, "SlowDown")
        sent = names(REQUESTS * s3.S3_MAX_KEYS_PER_REQUEST)
        outcome = session.delete_names(sent)

    assert outcome.unavailable and "SlowDown" in outcome.unavailable
    assert set(outcome.deferred) == set(sent) and not outcome.failed and not outcome.deleted
    assert 1 <= proxy.deletes <= attempts * REQUESTS  # never split, at most attempts x requests
    assert session.window.limit < 8  # multiplicative decrease
